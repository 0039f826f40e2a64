"""The rollout samples from the distribution the trainer scores: nucleus truncation (--top_p < 1)
is refused before anything starts, and the engines run in the policy's dtype, not the
checkpoint's (vLLM's "auto")."""


import pytest
import torch

from openrlhf.cli.train_knowrl import main
from openrlhf.rollout.vllm_engine import engine_dtype
from openrlhf.utils.dtypes import policy_dtype


def test_top_p_below_one_is_refused_with_the_reason(tmp_path, capsys):
    import ray

    dirs = ["--save_path", str(tmp_path / "s"), "--ckpt_path", str(tmp_path / "c"), "--log_dir", str(tmp_path / "l")]
    assert main(dirs + ["--top_p", "0.9", "--dry_run"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert err.startswith("knowrl-train: error: --top_p 0.9:") and "full softmax" in err
    assert "use --top_p 1 and a lower --temperature" in err
    assert not ray.is_initialized()


@pytest.mark.parametrize("bf16,expected", [(False, torch.float32), (True, torch.bfloat16)])
def test_engines_run_in_the_policy_dtype(bf16, expected):
    assert policy_dtype(bf16) == expected
    # the string vLLM receives names the same torch dtype: never "auto" (the checkpoint's dtype)
    assert getattr(torch, engine_dtype(bf16)) == expected
