"""A run's output folder: never replaced, mixed or resumed by accident.

``trafl train`` and ``trafl sft`` write one run per folder: its config (``train_config.yaml`` /
``sft_config.yaml``), its metrics (``metrics.jsonl`` / ``sft_metrics.jsonl``), ``checkpoint-<step>/``
folders and the finished model (``final/`` / ``model/``). This module decides, before any training,
what a new run may do with a folder (:func:`open_run_dir`):

* an empty folder (or one holding only other files, such as the SFT data): start;
* a folder holding a run's files: refuse, unless ``resume`` (continue from its newest checkpoint) or
  ``overwrite`` (move the old run's files aside in one rename each, then delete them, and say so);
* ``resume`` without a checkpoint: start fresh and say so, unless the folder holds a finished model,
  which a fresh run would replace (refused: pass ``overwrite``);

and, on resume, what changed since the saved config (:func:`resume_changes`): fields the restored
optimizer and scheduler would silently override are refused, fields the checkpoint's shapes fix are
refused, every other change is applied and listed. Metrics past the checkpoint's step are dropped
(:func:`truncate_metrics`), so a metrics file never holds two runs or a step twice.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from trafl.errors import ConfigError
from trafl.utils.checkpoint import latest_checkpoint
from trafl.utils.io import _fsync_dir, append_jsonl, atomic_write_text, read_jsonl

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunLayout:
    """The names of one kind of run's files inside its output folder."""

    command: str  # "trafl train" / "trafl sft", for messages
    config: str  # the saved config, e.g. "train_config.yaml"
    metrics: str  # the metrics file, e.g. "metrics.jsonl"
    model: str  # the finished model's folder, e.g. "final"
    others: tuple[str, ...] = ()  # further outputs of a run (glob patterns), e.g. "final-merged", "tensorboard"

    def run_files(self, out: Path) -> list[Path]:
        """The files and folders of a run present in ``out`` (checkpoints included), sorted by name."""
        if not out.is_dir():
            return []
        found = {out / name for name in (self.config, self.metrics, self.model) if (out / name).exists()}
        for pattern in ("checkpoint-*", ".checkpoint-*.tmp-*", *self.others):
            found.update(out.glob(pattern))
        return sorted(found)


TRAIN_RUN = RunLayout(
    "trafl train",
    "train_config.yaml",
    "metrics.jsonl",
    "final",
    ("final-merged", "tensorboard", "wandb", "resumes.jsonl"),
)
SFT_RUN = RunLayout(
    "trafl sft", "sft_config.yaml", "sft_metrics.jsonl", "model", ("tensorboard", "wandb", "resumes.jsonl")
)


def open_run_dir(
    out: str | Path, layout: RunLayout, *, resume: bool, overwrite: bool, is_main: bool = True
) -> Path | None:
    """Check what a new run may do with ``out``; returns the checkpoint to resume from (or ``None``).

    Raises :class:`ConfigError` when ``out`` holds another run's files and neither ``resume`` nor
    ``overwrite`` is set, when both are set, and when ``resume`` finds a finished model but no
    checkpoint. With ``overwrite`` the old run's files are removed first (on the main process).
    """
    out = Path(out)
    if resume and overwrite:
        raise ConfigError("config fields 'resume' and 'overwrite' exclude each other: continue the run or replace it")
    present = layout.run_files(out)
    names = ", ".join(_display(p) for p in present)
    if overwrite:
        if present and is_main:
            remove_run_files(out, present)
            logger.warning("%s --overwrite: removed the earlier run's files from %s (%s)", layout.command, out, names)
        return None
    if not resume:
        if present:
            raise ConfigError(
                f"output_dir {out} already holds a run ({names}); pass --resume to continue it from its newest "
                f"checkpoint, or --overwrite to replace it (or choose another --output-dir)"
            )
        return None
    ckpt = latest_checkpoint(out)
    if ckpt is not None:
        return ckpt
    if (out / layout.model).exists():
        raise ConfigError(
            f"--resume: {out} holds a finished run ({layout.model}/) but no checkpoint-* to continue from; "
            f"pass --overwrite to replace it, or choose another --output-dir"
        )
    if is_main:  # a warning when a killed run's files (config, metrics) are there, else a note
        log = logger.warning if present else logger.info
        log("%s --resume: no checkpoint in %s: starting a fresh run", layout.command, out)
    return None


def remove_run_files(out: Path, paths: Iterable[Path]) -> None:
    """Move ``paths`` into one hidden folder of ``out`` (a rename each), then delete that folder.

    A kill part-way leaves every file either in place or in the hidden ``.trafl-overwritten-*``
    folder, never half-deleted; the next ``--overwrite`` removes such a leftover too.
    """
    trash = Path(tempfile.mkdtemp(prefix=".trafl-overwritten-", dir=out))
    for path in paths:
        path.rename(trash / path.name)
    _fsync_dir(out)
    for old in out.glob(".trafl-overwritten-*"):
        shutil.rmtree(old, ignore_errors=True)


def truncate_metrics(path: str | Path, step: int) -> None:
    """Keep only the records of ``path`` with ``step <= step`` (atomically): a resumed run appends after them."""
    path = Path(path)
    if not path.exists():
        return
    kept = [r for r in read_jsonl(path) if r.get("step", 0) <= step]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


@dataclass(frozen=True)
class FieldRules:
    """How a resumed run treats a changed config field.

    ``restored``: fields whose value lives in the restored optimizer or scheduler state (a new value would
    be silently ignored), so a change is refused; ``fixed``: fields that define the checkpoint itself
    (the model, the method, the parameters' shapes), refused too; ``ignored``: bookkeeping fields that
    never matter to a resume (``resume``, ``overwrite``). Every other change is applied and listed.
    """

    restored: tuple[str, ...]
    fixed: tuple[str, ...]
    ignored: tuple[str, ...] = ("resume", "overwrite")


def config_diff(saved: Mapping[str, Any], now: Mapping[str, Any], ignored: Iterable[str] = ()) -> dict[str, tuple]:
    """``{field: (saved value, new value)}`` for every field whose value differs (``ignored`` skipped)."""
    skip = set(ignored)
    keys = [k for k in {**saved, **now} if k not in skip]
    return {k: (saved.get(k), now.get(k)) for k in keys if saved.get(k) != now.get(k)}


def resume_changes(
    config_file: Path,
    now: Mapping[str, Any],
    rules: FieldRules,
    step: int,
    upgrade: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> dict[str, tuple]:
    """Compare the run's saved config with ``now``; refuse what a resume cannot honour, return the rest.

    Raises :class:`ConfigError` naming every refused field with both values. A missing saved config (a
    run killed before writing it) compares as empty: nothing to refuse. ``upgrade`` maps the saved keys
    to today's fields first (a run saved before a field was renamed; :func:`trafl.utils.config.upgrade_keys`).
    """
    if not config_file.exists():
        return {}
    saved = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
    if upgrade is not None:
        saved = upgrade(saved)
    changes = config_diff(saved, now, rules.ignored)
    refused = {k: v for k, v in changes.items() if k in rules.restored or k in rules.fixed}
    if refused:
        detail = "; ".join(f"'{k}' saved {a!r}, now {b!r}" for k, (a, b) in refused.items())
        why = []
        if any(k in rules.restored for k in refused):
            why.append("the restored optimizer and scheduler state would silently keep the saved value")
        if any(k in rules.fixed for k in refused):
            why.append("the checkpoint was made with the saved value")
        raise ConfigError(
            f"--resume from step {step} of {config_file.parent}: {detail} ({'; '.join(why)}). Resume with the "
            "saved value, or start a new run (--overwrite or another --output-dir)"
        )
    return changes


def record_resume(out: Path, step: int, changes: Mapping[str, tuple]) -> None:
    """Log the applied changes and append them to ``out/resumes.jsonl`` (one line per resume)."""
    if changes:
        listed = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changes.items())
        logger.warning("resuming from step %d with changed config fields (applied from now on): %s", step, listed)
    else:
        logger.info("resuming from step %d with the saved config", step)
    append_jsonl(out / "resumes.jsonl", {"step": step, "changed": {k: list(v) for k, v in changes.items()}})


def check_resume_step(ckpt_step: int, max_steps: int, ckpt: Path) -> None:
    """A checkpoint past ``max_steps`` cannot be continued to ``max_steps``: refuse instead of training nothing."""
    if ckpt_step > max_steps:
        raise ConfigError(
            f"--resume: {ckpt} is at step {ckpt_step}, past max_steps={max_steps}; pass --max-steps {ckpt_step} "
            "or more to continue it, or --overwrite to start over"
        )


def _display(path: Path) -> str:
    return path.name + ("/" if path.is_dir() else "")
