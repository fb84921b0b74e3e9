"""Training checkpoints that a crash can never leave half-written.

A checkpoint is a directory ``<run>/checkpoint-<step>`` holding

* ``trainer_state.pt``: the trainable parameters, optimizer, scheduler, every RNG state, the step and
  any extra state (e.g. the logZ head, the data-order position);
* ``model/``: the model in Hugging Face format (or the LoRA adapter), for inspection and reuse.

It is written into a hidden temporary sibling and renamed into place in one step
(:func:`trafl.utils.io.atomic_directory`), so ``checkpoint-*`` directories are always complete;
temporary leftovers of a killed run start with ``.`` and are ignored (and removed on the next save).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import torch

from trafl.utils.io import atomic_directory
from trafl.utils.seed import rng_state, set_rng_state

_CKPT = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "trainer_state.pt"


def trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters with ``requires_grad`` (all of them for full fine-tuning, the adapters for LoRA)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    missing = [n for n in state if n not in params]
    if missing:
        raise KeyError(f"checkpoint has parameters the model lacks: {missing[:5]}")
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    extra: dict[str, Any] | None = None,
    tokenizer: Any = None,
    keep_last: int | None = 2,
    save_model_files: bool = True,
) -> Path:
    """Write ``run_dir/checkpoint-<step>`` atomically and prune older ones beyond ``keep_last``."""
    run_dir = Path(run_dir)
    for stale in run_dir.glob(".checkpoint-*.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    target = run_dir / f"checkpoint-{step}"
    with atomic_directory(target) as tmp:
        state = {
            "step": step,
            "trainable": trainable_state(model),
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "rng": rng_state(),
            "extra": extra or {},
        }
        torch.save(state, tmp / STATE_FILE)
        if save_model_files and hasattr(model, "save_pretrained"):
            model.save_pretrained(tmp / "model")
            if tokenizer is not None:
                tokenizer.save_pretrained(tmp / "model")
    if keep_last:
        for old in list_checkpoints(run_dir)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return target


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = []
    for p in run_dir.iterdir():
        m = _CKPT.match(p.name)
        if m and p.is_dir() and (p / STATE_FILE).is_file():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    ckpts = list_checkpoints(run_dir)
    return ckpts[-1] if ckpts else None


def load_checkpoint(
    path: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Restore a checkpoint written by :func:`save_checkpoint`; returns its state dict."""
    state = torch.load(Path(path) / STATE_FILE, map_location="cpu", weights_only=False)
    load_trainable_state(model, state["trainable"])
    if optimizer is not None and state["optimizer"] is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    if restore_rng:
        set_rng_state(state["rng"])
    return state
