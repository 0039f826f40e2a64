"""Process groups start back to back without a port race: the port a group's first rank publishes
is bound (by its TCPStore) from the moment it is published until the group is gone, so another
process that tries to take it in between gets EADDRINUSE, and the group still forms.

The old code published a port it had just released (bind to port 0, close), so the "other
process" below took it and the group then failed with EADDRINUSE. Real gloo groups on CPU, no
Ray: the vLLM side of the weight sync is the real `_join_weight_sync` run on a stand-in for a
vLLM worker (it only reads `worker.rank`), because starting engines would not test anything more
here. NCCL cannot run on this machine; the code path is the same with backend "nccl".
"""

import datetime
import errno
import multiprocessing
import socket
import threading
import types

import pytest
import torch

from openrlhf.rollout.vllm_engine import _join_weight_sync
from openrlhf.trainer.model_worker import ModelWorker
from openrlhf.trainer.weight_sync import ParamMeta

GROUPS = 25


def assert_port_held(port: int) -> None:
    """What another process on the node would do in the gap: try to bind the published port."""
    with socket.socket() as thief:
        with pytest.raises(OSError) as caught:
            thief.bind(("", port))
    assert caught.value.errno == errno.EADDRINUSE, caught.value


def _rank(rank: int, to_parent, from_parent, results) -> None:
    """One rank of a 2-rank DeepSpeed-style group, formed GROUPS times in a row through
    `ModelWorker.open_rendezvous` / `set_rendezvous` / `init_distributed`."""
    torch.set_num_threads(1)
    for _ in range(GROUPS):
        worker = ModelWorker(rank, 2, 1)
        if rank == 0:
            to_parent.put(worker.open_rendezvous("127.0.0.1"))
        worker.set_rendezvous(*from_parent.get(timeout=60))
        worker.init_distributed("gloo", datetime.timedelta(seconds=60))
        total = torch.tensor([rank + 1.0])
        torch.distributed.all_reduce(total)
        torch.distributed.destroy_process_group()
        results.put(float(total))


def test_default_groups_start_back_to_back_on_held_ports():
    ctx = multiprocessing.get_context("spawn")
    published, to_rank0, to_rank1, results = ctx.Queue(), ctx.Queue(), ctx.Queue(), ctx.Queue()
    ranks = [ctx.Process(target=_rank, args=(0, published, to_rank0, results)),
             ctx.Process(target=_rank, args=(1, None, to_rank1, results))]
    for p in ranks:
        p.start()
    try:
        for _ in range(GROUPS):
            host, port = published.get(timeout=120)
            assert_port_held(port)
            to_rank0.put((host, port))
            to_rank1.put((host, port))
        sums = [results.get(timeout=120) for _ in range(2 * GROUPS)]
    finally:
        for p in ranks:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    assert sums == [3.0] * (2 * GROUPS)
    assert [p.exitcode for p in ranks] == [0, 0]


def run_together(threads: list[threading.Thread]) -> None:
    """Start every thread, then wait for all (the ranks of one group must meet)."""
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)


def test_weight_sync_groups_start_back_to_back_on_held_ports():
    """Policy rank 0 plus one engine with two tensor-parallel workers (world 3), GROUPS times,
    as restarts of an engine re-form the group; each group carries one bucket."""
    metas = [ParamMeta("w", (4, 3), "torch.float32"), ParamMeta("b", (3,), "torch.float32")]
    for i in range(GROUPS):
        policy = ModelWorker(0, 1, None)
        host, port = policy.open_weight_sync(3, 60.0, host="127.0.0.1")
        assert_port_held(port)
        engine_workers = [types.SimpleNamespace(rank=r) for r in range(2)]
        errors = []

        def run(fn, *args):
            try:
                fn(*args)
            except Exception as exc:  # noqa: BLE001 - reported by the assert below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(policy.init_weight_sync, 3, 60.0))]
        threads += [threading.Thread(target=run, args=(_join_weight_sync, w, host, port, 1, 3, False, 60.0))
                    for w in engine_workers]
        run_together(threads)
        assert not errors, errors

        sent = [torch.full((4, 3), float(i)), torch.arange(3.0) + i]
        received = {}
        threads = [threading.Thread(target=run, args=(policy.sync_group.send_bucket, sent))]
        threads += [threading.Thread(target=run, args=(
            lambda w: received.__setitem__(w.rank, w.knowrl_sync_group.receive_bucket(metas, "cpu")), w))
            for w in engine_workers]
        run_together(threads)
        assert not errors, errors
        for rank in range(2):
            assert [name for name, _ in received[rank]] == ["w", "b"]
            assert all(torch.equal(got, want) for (_, got), want in zip(received[rank], sent))
