"""A tiny random Llama model built offline, for fast tests of training, rollout and evaluation.

``build_tiny_model(dir)`` trains a byte-level BPE tokenizer (vocabulary about 1,000) on a few
sentences, wraps it as a ``PreTrainedTokenizerFast`` with a ChatML-style chat template
(``<|im_start|>``/``<|im_end|>``, ``<|im_end|>`` is the end-of-sequence token), builds a
randomly initialised ``LlamaForCausalLM`` (hidden 64, head_dim 64 because vLLM-CPU rejects 16)
and saves both into ``dir``. Nothing is downloaded; it takes a few seconds and under 2 MB.
The result is deterministic for a given ``seed``. Its answers are random text, so tests can
check plumbing and file formats, not quality.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_CORPUS = [
    "Can you do the task below completely and correctly on your own?",
    "It is feasible if you can. It is infeasible if you cannot.",
    "Label: feasible\nReason: I can answer this simple question.",
    "Label: infeasible\nReason: the task needs information that was not given.",
    "Task: Write a short poem about the sea in four lines.",
    "Task: Predict the exact closing price of a stock next year.",
    "What is the capital city of France? Paris is the capital of France.",
    "The quick brown fox jumps over the lazy dog 0123456789.",
    "Here are some example tasks. Now write new tasks, each on its own line.",
    "Summarise the attached report in three bullet points; translate it into German.",
    "Who will win the football world cup held four years from now?",
    "Prove the Riemann hypothesis, decipher Linear A, and compute the determinant of a matrix.",
]


def build_tiny_model(out_dir: str | os.PathLike, *, vocab_size: int = 1000, num_layers: int = 1,
                     seed: int = 0, num_heads: int = 1, label_answers: bool = False) -> str:
    """Write a tiny random Llama model with its tokenizer into ``out_dir``; return the path.
    `num_heads` attention heads of width 64 (2 lets vLLM split the model over 2 tensor-parallel
    workers); one key/value head, which vLLM replicates. `label_answers`: a few hundred steps of
    training (seconds) teach it to continue "Label:" with " feasible" or " infeasible" about
    equally often, so classification answers parse and consensus rewards are not all 0.

    Reuses the folder when it already holds a model built by this function.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(out_dir)
    marker = out / "tiny_model.json"
    if marker.is_file() and (out / "config.json").is_file():
        return str(out)
    out.mkdir(parents=True, exist_ok=True)

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)

    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                     pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    hf_tok.chat_template = CHAT_TEMPLATE
    hf_tok.model_max_length = 1024

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(hf_tok), hidden_size=64 * num_heads, intermediate_size=128 * num_heads,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=1, head_dim=64, max_position_embeddings=1024,
        bos_token_id=hf_tok.bos_token_id, eos_token_id=hf_tok.eos_token_id, pad_token_id=hf_tok.pad_token_id,
        tie_word_embeddings=True, torch_dtype="float32",
    )
    model = LlamaForCausalLM(config).to(torch.float32)
    model.generation_config.eos_token_id = hf_tok.eos_token_id
    model.generation_config.pad_token_id = hf_tok.pad_token_id
    if label_answers:
        _teach_labels(model, hf_tok, seed)
    model.save_pretrained(out)
    hf_tok.save_pretrained(out)
    marker.write_text(json.dumps({"built_by": "tests/tiny_model.py", "seed": seed, "vocab_size": len(hf_tok),
                                  "num_layers": num_layers, "label_answers": label_answers}) + "\n")
    return str(out)


def _teach_labels(model, tokenizer, seed: int, steps: int = 400) -> None:
    """Train `model` in place on chat-formatted answers "Label: feasible|infeasible" (drawn at
    random) and "Task: <sentence>\nTask: <sentence>", so that it answers the classification
    prefill with either label and the task-writing prefill with task-like lines."""
    import random

    import torch

    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        texts = [tokenizer.apply_chat_template(
            [{"role": "user", "content": " ".join(rng.sample(_CORPUS, 3))}], tokenize=False, add_generation_prompt=True)
            + (f"Label: {rng.choice(['feasible', 'infeasible'])}<|im_end|>" if j % 2 else
               "Task: " + "\nTask: ".join(rng.sample(_CORPUS, 2)) + "<|im_end|>") for j in range(8)]
        batch = tokenizer(texts, return_tensors="pt", padding=True)
        labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


@dataclass
class ResumedRuns:
    """Two runs of the same training: `straight` never stopped; `split` stopped by its time
    budget after iteration 1 (`stopped`, with what its folders held then) and resumed (`resumed`)."""
    straight: Path
    split: Path
    stopped: subprocess.CompletedProcess
    resumed: subprocess.CompletedProcess
    checkpoints_at_stop: list
    state_at_stop: dict
    exported_at_stop: bool


def straight_and_resumed_runs(model_dir: str, tmp_path: Path, *extra: str, iterations: int = 3) -> ResumedRuns:
    """Train `iterations` iterations twice with `extra` flags: straight through, and stopped by
    --max_train_minutes after iteration 1 then resumed with --load_checkpoint. Asserts that every
    run exits 0 and that the resumed run's records and metrics of every iteration, and its task
    pool at the end, equal the straight run's (timings aside)."""
    from openrlhf.knowrl.checkpoint import complete_checkpoints

    root = Path(__file__).resolve().parent.parent
    straight, split = Path(tmp_path) / "straight", Path(tmp_path) / "split"

    def train(out, *flags):
        argv = tiny_train_command(model_dir, out, "--num_iterations", str(iterations), "--save_steps", "1",
                                  "--max_ckpt_num", "2", *extra, *flags)
        proc = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
        return proc

    train(straight)
    stopped = train(split, "--max_train_minutes", "0.0001")
    checkpoints = complete_checkpoints(str(split / "ckpt"))
    state = json.loads((split / "ckpt" / checkpoints[-1] / "knowrl_state.json").read_text()) if checkpoints else {}
    exported = (split / "model" / "config.json").is_file()
    resumed = train(split, "--load_checkpoint")
    assert "resumed from" in resumed.stdout

    def records(run, i):
        path = run / "logs" / "iterations" / f"iter_{i:04d}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]

    def metrics(run):
        rows = [json.loads(line) for line in (run / "logs" / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in row.items() if not k.startswith("timing/")} for row in rows]

    for i in range(1, iterations + 1):
        assert records(straight, i) == records(split, i), f"iteration {i} differs after the resume"
    assert metrics(straight) == metrics(split)
    last = f"iter_{iterations:04d}"
    pools = [json.loads((run / "ckpt" / last / "knowrl_state.json").read_text())["pool"] for run in (straight, split)]
    assert pools[0] == pools[1]
    return ResumedRuns(straight, split, stopped, resumed, checkpoints, state, exported)


def set_context(model_dir: str | os.PathLike, tokens: int) -> str:
    """Make the model in ``model_dir`` say its context is ``tokens`` long (``max_position_embeddings``
    in config.json and ``model_max_length`` in tokenizer_config.json, which vLLM both read); the
    weights have no position table, so any length works. Returns the folder."""
    for name, key in (("config.json", "max_position_embeddings"), ("tokenizer_config.json", "model_max_length")):
        path = Path(model_dir) / name
        data = json.loads(path.read_text())
        data[key] = tokens
        path.write_text(json.dumps(data, indent=2) + "\n")
    return str(model_dir)


def tiny_train_command(model_dir: str, out_dir, *extra: str) -> list[str]:
    """The training CLI on a tiny model with everything small; `extra` flags override these
    (argparse keeps the last value). Outputs go to out_dir/{model,ckpt,logs}."""
    out = Path(out_dir)
    return [sys.executable, "-m", "openrlhf.cli.train_knowrl", "--pretrain", str(model_dir),
            "--save_path", str(out / "model"), "--ckpt_path", str(out / "ckpt"), "--log_dir", str(out / "logs"),
            "--num_iterations", "3", "--rollout_batch_size", "2", "--n_samples_per_prompt", "2",
            "--introspection_prompts", "2", "--tasks_per_introspection", "2", "--prompt_max_len", "768",
            "--generate_max_len", "8", "--introspection_max_len", "24", "--train_batch_size", "4",
            "--micro_train_batch_size", "2",
            # a random model answers at random: keep every group so the update always runs
            "--min_group_reward", "0", "--max_group_reward", "1", "--actor_timeout", "600", *extra]


if __name__ == "__main__":  # pragma: no cover - manual use: python tests/tiny_model.py DIR
    print(build_tiny_model(sys.argv[1] if len(sys.argv) > 1 else "tiny_model"))
