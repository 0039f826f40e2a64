"""The KnowRL classification workload through TRL's `GRPOTrainer`, for the peer row of the suite.

Same model, the same classification prompts (our template, chat format and `Label:` prefill),
the same number of samples per task, the same largest answer length and the same group
consensus reward: TRL's reward callback sees the whole generation batch, in which the
`num_generations` completions of one prompt are consecutive, so it groups them by prompt and
scores each group with `openrlhf.knowrl.reward.consensus`. One optimizer step per rollout of
`tasks x n` samples on both sides; KL coefficient 1e-4 with a reference model on both sides.

Generation in TRL is `transformers`' `generate` (TRL's vLLM modes need a CUDA vLLM), which is
the point of the comparison: what a user of the common alternative gets on this machine.
The timed figure is samples per second over the optimizer steps after the first (warm-up).
"""

from __future__ import annotations

import time


def consensus_reward_for_trl(answer_prefix: str):
    from openrlhf.knowrl.prompts import parse_answer
    from openrlhf.knowrl.reward import RewardGroup, consensus

    def reward(prompts, completions, **_):
        groups: dict[str, list[int]] = {}
        for i, prompt in enumerate(prompts):
            groups.setdefault(prompt, []).append(i)
        rewards = [0.0] * len(completions)
        for prompt, rows in groups.items():
            texts = [completions[i] for i in rows]
            labels = [parse_answer(t, answer_prefix) for t in texts]
            group = RewardGroup(task=prompt, gen_label=None, labels=labels, texts=texts)
            for i, value in zip(rows, consensus(group)):
                rewards[i] = float(value)
        return rewards

    reward.__name__ = "knowrl_consensus"
    return reward


def bench_trl(model_path: str, prompt_texts: list[str], n: int, max_tokens: int, tasks_per_step: int,
              steps: int, answer_prefix: str, threads: int) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    torch.set_num_threads(threads)
    micro_tasks = min(4, tasks_per_step)
    if tasks_per_step % micro_tasks:
        raise ValueError("tasks_per_step must be a multiple of 4 (or at most 4)")
    rows = [{"prompt": prompt_texts[i % len(prompt_texts)]} for i in range(tasks_per_step * steps)]
    config = GRPOConfig(
        output_dir="/tmp/knowrl-trl-peer", use_cpu=True, bf16=False, report_to="none", save_strategy="no",
        logging_steps=1, max_steps=steps, seed=0, shuffle_dataset=False,
        num_generations=n, max_completion_length=max_tokens, temperature=1.0, top_p=1.0,
        per_device_train_batch_size=micro_tasks * n, gradient_accumulation_steps=tasks_per_step // micro_tasks,
        beta=1e-4, learning_rate=1e-6, gradient_checkpointing=False, disable_dropout=True,
        dataloader_num_workers=0)

    step_times: list[float] = []

    class StepClock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            step_times.append(time.perf_counter() - self.start)

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    trainer = GRPOTrainer(model=model_path, reward_funcs=consensus_reward_for_trl(answer_prefix), args=config,
                          train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                          callbacks=[StepClock()])
    start = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - start
    timed = step_times[1:] or step_times
    samples_per_step = tasks_per_step * n
    lengths = [row["completions/mean_length"] for row in trainer.state.log_history
               if "completions/mean_length" in row]
    return {"framework": "trl", "steps": len(step_times), "step_s": step_times,
            "samples_per_step": samples_per_step, "train_wall_s": total,
            "mean_completion_tokens": sum(lengths) / len(lengths) if lengths else None,
            "samples_per_s": samples_per_step * len(timed) / sum(timed)}
