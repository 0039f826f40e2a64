"""LoRA adapters on the policy, with PEFT (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large
Language Models"): W' = W + (alpha / r) * B A, only A [r, in] and B [out, r] trained.

What the rest of the trainer needs from an adapted model lives here: wrapping an HF model
(`add_lora`), the linear layers a user can target (`linear_layer_names`), and the model's
weights as the vLLM engines and HF exports know them, with every adapter merged in
(`merged_weights`): the HF parameter names of the base model and W + (alpha/r) B A for each
adapted weight, computed on the fly, so the training copy is never modified.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

ADAPTER = "default"   # PEFT's name for the one adapter we train
ALL_LINEAR = "all-linear"


@dataclass(frozen=True)
class LoraSettings:
    """--lora_rank r (> 0), --lora_alpha, --lora_dropout, --target_modules (comma-separated module
    names, or "all-linear": every linear layer but the output head). `identity_init`: B starts
    at 0 so the adapted model starts equal to the base (PEFT's default); False draws B at random
    (tests use it to get an adapter that changes the outputs without training)."""

    rank: int
    alpha: float
    dropout: float = 0.0
    target_modules: str = ALL_LINEAR
    identity_init: bool = True

    def targets(self) -> str | list[str]:
        return ALL_LINEAR if self.target_modules == ALL_LINEAR else [
            t.strip() for t in self.target_modules.split(",") if t.strip()]


def linear_layer_names(model: torch.nn.Module) -> list[str]:
    """The distinct short names of `model`'s linear layers (q_proj, up_proj, ...) without the
    output head, sorted: what --target_modules can name."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                   if isinstance(module, torch.nn.Linear) and module is not head})


def check_targets(model: torch.nn.Module, settings: LoraSettings) -> None:
    """ValueError naming the model's linear layers when --target_modules matches none of them."""
    if settings.target_modules == ALL_LINEAR:
        return
    linear = linear_layer_names(model)
    missing = [t for t in settings.targets() if t not in linear]
    if missing or not settings.targets():
        raise ValueError(f"--target_modules {settings.target_modules}: {', '.join(missing) or 'nothing'} matches no "
                         f"linear layer of the model; its linear layers are {', '.join(linear)} (or use all-linear)")


def add_lora(model: torch.nn.Module, settings: LoraSettings) -> torch.nn.Module:
    """`model` wrapped in a PEFT LoRA adapter: the base weights frozen, the adapter trainable.
    Raises ValueError for targets that match nothing (`check_targets`)."""
    from peft import LoraConfig, get_peft_model

    check_targets(model, settings)
    config = LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=settings.targets(), task_type="CAUSAL_LM", bias="none",
                        init_lora_weights=settings.identity_init)
    return get_peft_model(model, config)


def is_lora(model: torch.nn.Module) -> bool:
    """`model` is a PEFT model (`add_lora`)."""
    return hasattr(model, "peft_config")


def hf_name(peft_name: str) -> str:
    """A PEFT parameter name as the base model's HF checkpoint names it
    (base_model.model.model.layers.0.q_proj.base_layer.weight -> model.layers.0.q_proj.weight)."""
    return peft_name.removeprefix("base_model.model.").replace(".base_layer.", ".")


@dataclass
class MergedWeight:
    """One weight of the base model as the engines get it: `name` (HF), `base` the parameter, and
    `layer` the PEFT LoRA layer whose delta is added (None: the weight is not adapted).
    `params` are what must be whole (ZeRO-3 gathered) to compute `value()`."""

    name: str
    base: torch.nn.Parameter
    layer: torch.nn.Module | None = None

    @property
    def params(self) -> list[torch.nn.Parameter]:
        if self.layer is None:
            return [self.base]
        return [self.base, self.layer.lora_A[ADAPTER].weight, self.layer.lora_B[ADAPTER].weight]

    def value(self) -> torch.Tensor:
        """W, or W + (alpha/r) B A for an adapted weight (a new tensor; `base` is not modified)."""
        if self.layer is None:
            return self.base
        return self.base + self.layer.get_delta_weight(ADAPTER).to(self.base.dtype)


def merged_weights(model: torch.nn.Module) -> list[MergedWeight]:
    """Every weight of the base model in `model.named_parameters()` order, adapters left out and
    merged into the weight they adapt. A plain (not PEFT) model gives its own parameters."""
    if not is_lora(model):
        return [MergedWeight(name, p) for name, p in model.named_parameters()]
    layers = {f"{name}.base_layer.weight": module for name, module in model.named_modules()
              if hasattr(module, "lora_A") and ADAPTER in getattr(module, "lora_A", {})}
    return [MergedWeight(hf_name(name), p, layers.get(name)) for name, p in model.named_parameters()
            if ".lora_" not in name]


def iter_trainable(model: torch.nn.Module) -> Iterator[tuple[str, torch.nn.Parameter]]:
    """The parameters the optimizer updates."""
    return ((n, p) for n, p in model.named_parameters() if p.requires_grad)
