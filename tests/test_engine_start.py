"""A run whose vLLM engine cannot start stops with one line naming the engine's own error, and
gives resume advice only when a complete checkpoint exists to resume from.

Before: "a Ray actor died (The actor died because of an error raised in its creation task,
ray::LLMEngineActor.__init__() (pid=...)); rerun with --load_checkpoint ...", with nothing saved.
"""

import os
import shutil
import subprocess

import pytest

from openrlhf.cli.train_knowrl import with_resume_advice
from openrlhf.utils.ray_utils import remote_error_line

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Ray's text for an actor whose constructor raised: header, remote traceback, the exception.
RAY_CREATION_ERROR = """The actor died because of an error raised in its creation task, \
ray::LLMEngineActor.__init__() (pid=4242, ip=10.0.0.1, actor_id=ab12, repr=<LLMEngineActor object at 0x7f>)
  File "/work/openrlhf/rollout/vllm_engine.py", line 161, in __init__
    self.llm = LLM(**kwargs)
               ^^^^^^^^^^^^^
  File "/venv/vllm/config/model.py", line 90, in __post_init__
    raise ValueError(msg)
ValueError: first cause

The above exception was the direct cause of the following exception:

ray::LLMEngineActor.__init__() (pid=4242, ip=10.0.0.1, actor_id=ab12, repr=<LLMEngineActor object at 0x7f>)
  File "/venv/vllm/engine/arg_utils.py", line 1200, in create_model_config
    return ModelConfig(
           ^^^^^^^^^^^^
{last}
"""


def test_remote_error_line_names_the_raised_exception():
    text = RAY_CREATION_ERROR.format(last="RuntimeError: Cannot find any model weights with `/m`")
    assert remote_error_line(text) == "RuntimeError: Cannot find any model weights with `/m`"


def test_remote_error_line_adds_the_detail_of_a_validation_error():
    text = RAY_CREATION_ERROR.format(last=(
        "pydantic_core._pydantic_core.ValidationError: 1 validation error for ModelConfig\n"
        "  Value error, User-specified max_model_len (9000) is greater than the derived max_model_len "
        "(max_position_embeddings=2048) [type=value_error, input_value=ArgsKwargs(()), input_type=ArgsKwargs]\n"
        "    For further information visit https://errors.pydantic.dev/2.11/v/value_error"))
    assert remote_error_line(text) == (
        "pydantic_core._pydantic_core.ValidationError: 1 validation error for ModelConfig: Value error, "
        "User-specified max_model_len (9000) is greater than the derived max_model_len "
        "(max_position_embeddings=2048)")


def test_remote_error_line_without_traceback_is_the_first_line():
    assert remote_error_line("The actor died unexpectedly before finishing this task.\n\tclass_name: X") == \
        "The actor died unexpectedly before finishing this task."


def test_resume_advice_only_with_a_complete_checkpoint(tmp_path):
    ckpt = tmp_path / "ckpt"
    assert with_resume_advice("policy rank 0 died", str(ckpt)) == "policy rank 0 died"
    (ckpt / "iter_0001").mkdir(parents=True)    # an interrupted save: no state file
    assert "--load_checkpoint" not in with_resume_advice("policy rank 0 died", str(ckpt))
    (ckpt / "iter_0001" / "knowrl_state.json").write_text("{}")
    assert with_resume_advice("policy rank 0 died", str(ckpt)).endswith(
        "; rerun with --load_checkpoint to resume from the last complete checkpoint")


@pytest.mark.e2e
def test_engine_that_cannot_start_is_named_without_resume_advice(tmp_path):
    """A model folder without weights: the tokenizer and config load (the checks before Ray
    pass), vLLM fails in the engine's constructor."""
    from tiny_model import build_tiny_model, tiny_train_command

    model = build_tiny_model(tmp_path / "tiny")
    broken = tmp_path / "no_weights"
    shutil.copytree(model, broken)
    for name in os.listdir(broken):
        if name.endswith((".safetensors", ".bin")):
            os.remove(broken / name)
    proc = subprocess.run(tiny_train_command(broken, tmp_path / "run"), cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("knowrl-train: error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    assert errors[0].startswith("knowrl-train: error: vLLM engine 0 failed to start: RuntimeError: Cannot find any "
                                "model weights"), errors[0]
    assert "load_checkpoint" not in proc.stderr
    assert "Traceback" not in proc.stderr
