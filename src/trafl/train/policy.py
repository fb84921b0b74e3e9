"""The policy being trained: the base model loaded (optionally with LoRA adapters) and the view the
objective and the sampler call.

LoRA adapts the configured projections but never the output head (see :func:`output_head_names`); the
reference of a LoRA policy is the same model with its adapters disabled (:mod:`trafl.objectives.reference`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from trafl.errors import ConfigError
from trafl.utils.io import atomic_directory

logger = logging.getLogger(__name__)


class DenoiserView:
    """Calls the (possibly DDP/FSDP-wrapped) model but exposes the unwrapped model's config."""

    def __init__(self, wrapped: Any, unwrapped: Any):
        self.wrapped, self.config = wrapped, unwrapped.config
        self.mask_token_id = unwrapped.config.mask_token_id

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.wrapped(*args, **kwargs)


def base_model(model: Any) -> Any:
    """The model under a LoRA wrapper (the model itself without one)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def output_head_names(model: Any) -> list[str]:
    """The output head's module name: LoRA never adapts it, even when its name matches a target
    (LLaDA calls both the blocks' down projection and the LM head ``ff_out``; trafl's default list
    adapts the blocks' seven projections, ``ff_out`` among them, and never the head. d1 and ESPO pass
    Llama's names, of which peft finds only ``q_proj, k_proj, v_proj, up_proj`` in LLaDA: 4 per block,
    never the head)."""
    get = getattr(model, "get_output_embeddings", None)
    head = get() if callable(get) else None
    return [name for name, module in model.named_modules() if head is not None and module is head]


def lora_target_counts(model: torch.nn.Module, targets: Sequence[str], exclude: Sequence[str] = ()) -> dict[str, int]:
    """How many modules of ``model`` each LoRA target name selects, by peft's rule for a list of names:
    a module whose dotted name is the target or ends with ``"." + target`` (``exclude``: names never adapted)."""
    skip = set(exclude)
    names = [n for n, _ in model.named_modules() if n and n not in skip]
    return {t: sum(n == t or n.endswith("." + t) for n in names) for t in targets}


def linear_module_names(model: torch.nn.Module) -> list[str]:
    """The distinct last components of the names of ``model``'s linear layers (what a target can name)."""
    return sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})


def check_lora_targets(
    model: torch.nn.Module, targets: Sequence[str], exclude: Sequence[str], allow_unmatched: bool
) -> dict[str, int]:
    """Log how many modules each target adapts; a target that adapts nothing is an error naming the model's
    linear layers, unless ``allow_unmatched`` (a list written for another architecture on purpose, e.g. the
    Llama names d1 and ESPO pass to LLaDA, of which peft adapts only the ones LLaDA has)."""
    counts = lora_target_counts(model, targets, exclude)
    logger.info("LoRA targets (modules adapted): %s", ", ".join(f"{t} {c}" for t, c in counts.items()))
    unmatched = [t for t, c in counts.items() if c == 0]
    if unmatched and not allow_unmatched:
        raise ConfigError(
            f"config field 'lora_target_modules': {unmatched} match no module of {type(model).__name__} "
            f"(its linear layers: {', '.join(linear_module_names(model))}); fix the names, or set "
            "lora_allow_unmatched_targets: true to keep a list written for another architecture"
        )
    if unmatched:
        logger.warning("LoRA targets %s match no module and are skipped (lora_allow_unmatched_targets)", unmatched)
    return counts


def load_policy(cfg: Any, device: torch.device) -> tuple[torch.nn.Module, Any]:
    """``(model, tokenizer)`` of ``cfg.model`` on ``device``, in training mode: with gradient
    checkpointing when ``cfg.gradient_checkpointing``, with LoRA adapters (``lora_*``) when ``cfg.use_peft``."""
    from trafl.models import enable_checkpointing, load_pretrained

    model, tokenizer = load_pretrained(cfg.model, trust_remote_code=cfg.trust_remote_code)
    model.to(device)
    if cfg.gradient_checkpointing:
        enable_checkpointing(model)
    if cfg.use_peft:
        from peft import LoraConfig, get_peft_model

        head = output_head_names(model)
        check_lora_targets(model, cfg.lora_target_modules, head, cfg.lora_allow_unmatched_targets)
        lora = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=list(cfg.lora_target_modules),
            bias="none",
            exclude_modules=head,
        )
        model = get_peft_model(model, lora)
    model.train()
    return model, tokenizer


def save_merged(cfg: Any, adapter: Path, tokenizer: Any, path: Path) -> None:
    """The base ``cfg.model`` reloaded with the LoRA adapter saved in ``adapter`` merged in, written
    atomically to ``path`` with the tokenizer (main process only: it loads a full model)."""
    from peft import PeftModel

    from trafl.models import load_pretrained

    base, _ = load_pretrained(cfg.model, trust_remote_code=cfg.trust_remote_code)
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    with atomic_directory(path) as tmp:
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
