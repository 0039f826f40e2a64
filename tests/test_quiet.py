"""Evaluation keeps training's quiet default: library warnings off unless --verbose.

Checked on the loggers' levels in a fresh interpreter (the levels are read from the environment
when vLLM and torch are imported), not on third-party log text."""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PROBE = """
import json, logging, os, sys
from evaluation.engine import prepare_env
prepare_env(use_gpu=False, quiet=sys.argv[1] == "quiet")
import vllm  # noqa: F401  (configures its logger from VLLM_LOGGING_LEVEL at import)
print(json.dumps({"vllm": logging.getLogger("vllm").getEffectiveLevel(),
                  "torch_cpp": os.environ.get("TORCH_CPP_LOG_LEVEL"),
                  "transformers": os.environ.get("TRANSFORMERS_VERBOSITY")}))
"""


def probe(mode: str) -> dict:
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("VLLM_LOGGING_LEVEL", "TORCH_CPP_LOG_LEVEL", "TRANSFORMERS_VERBOSITY")}
    proc = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_eval_engine_is_quiet_by_default_and_verbose_on_request():
    import logging

    quiet, verbose = probe("quiet"), probe("verbose")
    assert quiet == {"vllm": logging.ERROR, "torch_cpp": "ERROR", "transformers": "error"}
    assert verbose["vllm"] < logging.ERROR and verbose["torch_cpp"] is None and verbose["transformers"] is None


def test_run_eval_quiets_before_torch_loads():
    """TORCH_CPP_LOG_LEVEL is read once, when torch is imported: run_eval must set it first."""
    source = (REPO / "evaluation" / "run_eval.py").read_text()
    main = source[source.index("def main("):]
    assert main.index("quiet_libraries(args.verbose, in_process_vllm=True)") < main.index("import torch")


def test_ray_token_notice_is_hidden_through_a_logger_ray_has():
    """knowrl-train hides Ray's "token authentication is enabled" notice of a local run by raising
    one logger's level; if Ray moves that notice, the level would silently do nothing."""
    import importlib

    from openrlhf.cli.train_knowrl import RAY_AUTH_NOTICE_LOGGER

    module = importlib.import_module(RAY_AUTH_NOTICE_LOGGER)
    assert module.logger.name == RAY_AUTH_NOTICE_LOGGER
    assert callable(module.enable_token_auth_by_default), "the local-cluster default that logs the notice"
