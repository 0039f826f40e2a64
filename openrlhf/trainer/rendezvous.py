"""Rendezvous of a torch.distributed group on a port nobody else can take.

Picking a free port (bind to port 0, read it, close) and binding it again later leaves a gap in
which any process on the node can take the port, and the group then fails to start with
EADDRINUSE. Here the first rank's TCPStore binds port 0 itself and keeps the socket for the
group's life; the port it got is what the other ranks are told, and they connect to it as clients.
Both the DeepSpeed groups (policy, reference) and the weight-sync group rendezvous this way.
"""

from __future__ import annotations

import datetime

import torch.distributed as dist


def open_store(host: str, world_size: int, timeout_s: float) -> dist.TCPStore:
    """The first rank's store: listens on a port the OS picks (read it as `store.port`) and keeps
    it bound until the store is dropped. `host` is the address the other ranks will reach it at.
    Returns at once; the clients may connect later, within `timeout_s` of their own start."""
    return dist.TCPStore(host, 0, world_size, True, timeout=datetime.timedelta(seconds=timeout_s),
                         wait_for_workers=False)


def join_store(host: str, port: int, world_size: int, timeout_s: float) -> dist.TCPStore:
    """A client of the store `open_store` made at `host`:`port`. Raises (a torch DistStoreError)
    when it cannot connect within `timeout_s`."""
    return dist.TCPStore(host, port, world_size, False, timeout=datetime.timedelta(seconds=timeout_s),
                         wait_for_workers=False)
