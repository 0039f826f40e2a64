"""Prompts as the engines get them: token ids of the chat-formatted text, and the
--prompt_max_len budget. A prompt over the budget is dropped; the first drop of each kind of
prompt is printed once per run, since a growing pool can lengthen prompts mid-run, and the
metrics count the drops every iteration (knowrl/<kind>_prompts_too_long)."""

from __future__ import annotations

from tqdm import tqdm

# what a drop means to the user, and the fix besides raising --prompt_max_len, per kind
_DROPS = {"introspection": ("task-writing", "write no tasks", "or lower --few_shot_examples"),
          "classification": ("classification", "leave their tasks unclassified", "or lower --max_task_chars")}


class PromptBudget:
    """Encodes prompts with `tokenizer` and checks them against `max_len` tokens."""

    def __init__(self, tokenizer, max_len: int):
        self.tokenizer = tokenizer
        self.max_len = max_len
        self.warned: set[str] = set()   # prompt kinds already warned about

    def encode(self, prompt: str) -> list[int]:
        """Token ids of a chat-formatted prompt. The chat template already wrote any BOS, so the
        engines get ids, not text (vLLM would add special tokens a second time)."""
        return self.tokenizer(prompt, add_special_tokens=False, verbose=False).input_ids

    def fitting(self, kind: str, encoded: list[list[int]], iteration: int) -> list[bool]:
        """Which of the `kind` ("introspection" or "classification") prompts fit the budget; warns
        once per kind, naming `iteration`, when some do not."""
        fits = [len(ids) <= self.max_len for ids in encoded]
        if all(fits) or kind in self.warned:
            return fits
        self.warned.add(kind)
        what, effect, fix = _DROPS[kind]
        tqdm.write(f"[knowrl] warning: iteration {iteration}: {fits.count(False)} of {len(fits)} {what} prompts "
                   f"are longer than --prompt_max_len {self.max_len} (up to "
                   f"{max(len(ids) for ids in encoded)} tokens) and {effect}: raise --prompt_max_len {fix}; "
                   f"knowrl/{kind}_prompts_too_long counts them (warned once)")
        return fits
