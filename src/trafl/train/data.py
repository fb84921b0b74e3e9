"""Prompt order and per-step prompt selection for the RL loop.

The prompt stream is a seeded permutation of the dataset, re-shuffled each epoch. Step ``k`` takes
the next ``prompts_per_step`` prompts; process ``rank`` gets a contiguous slice of them, split into
micro-batches of ``prompts_per_micro`` prompts. Everything is a pure function of
``(seed, step, rank)``, so a resumed run and a run on a different number of processes see the same
global batch at the same step. The seeds themselves come from :mod:`trafl.utils.seed`.
"""

from __future__ import annotations

from typing import Any

from trafl.errors import DataError
from trafl.utils.seed import seeded_rng, step_seed

__all__ = ["prompt_indices_for_step", "split_for_process", "step_seed", "training_rows"]


def prompt_indices_for_step(num_prompts: int, prompts_per_step: int, step: int, seed: int) -> list[int]:
    """The global prompt indices of optimizer step ``step`` (0-based)."""
    start = step * prompts_per_step
    out = []
    for pos in range(start, start + prompts_per_step):
        epoch, offset = divmod(pos, num_prompts)
        order = _epoch_order(num_prompts, seed, epoch)
        out.append(order[offset])
    return out


_ORDER_CACHE: dict[tuple[int, int, int], list[int]] = {}


def _epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    key = (n, seed, epoch)
    if key not in _ORDER_CACHE:
        order = list(range(n))
        seeded_rng(seed, epoch).shuffle(order)
        if len(_ORDER_CACHE) > 8:
            _ORDER_CACHE.clear()
        _ORDER_CACHE[key] = order
    return _ORDER_CACHE[key]


def split_for_process(indices: list[int], rank: int, world: int) -> list[int]:
    """Contiguous equal slice of the step's prompts for process ``rank``."""
    if len(indices) % world:
        raise ValueError(f"{len(indices)} prompts per step cannot be split evenly over {world} processes")
    per = len(indices) // world
    return indices[rank * per : (rank + 1) * per]


def training_rows(cfg: Any, task: Any, rows: list[dict] | None = None) -> list[dict]:
    """The training rows (``rows``, else the task's ``cfg.dataset_split`` of ``cfg.dataset_path``), checked:
    not empty, each with ``prompt`` and the task's required columns. ``cfg.max_prompts`` keeps the first N
    rows in the dataset's own order; the per-epoch shuffle (:func:`prompt_indices_for_step`) draws from those."""
    if rows is None:
        rows = task.load(cfg.dataset_split or task.train_split, path=cfg.dataset_path)
    if not rows:
        raise DataError(
            f"task '{cfg.task}': the training dataset is empty" + (f" ({cfg.dataset_path})" if cfg.dataset_path else "")
        )
    needed = ["prompt"] + list(getattr(task, "required_columns", ()))
    for i, row in enumerate(rows):
        missing = [c for c in needed if c not in row]
        if missing:
            raise DataError(f"task '{cfg.task}': training row {i} lacks column(s) {missing} (it has {sorted(row)})")
    return rows[: cfg.max_prompts] if cfg.max_prompts else rows
