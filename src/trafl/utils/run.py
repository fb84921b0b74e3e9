"""What every training run does around its optimizer steps, shared by ``trafl train`` and ``trafl sft``.

A :class:`Run` is made from a :class:`~trafl.utils.run_config.RunConfig` before anything is loaded:

1. ``Run(...)``: the accelerator (:func:`make_run_accelerator`: the ``device`` field, ``cuda:N``
   included, and ``num_threads``), then the global generators seeded with ``seed``
   (:func:`trafl.utils.seed.seed_everything`);
2. :meth:`Run.open`, after the trainer's own checks that need the accelerator (so that a refused
   config never touches the folder): the run folder (:func:`trafl.utils.run_dir.open_run_dir`): a folder holding another run is refused
   unless ``resume`` or ``overwrite``; on ``resume`` the checkpoint is chosen and checked at once (a step
   past ``max_steps``, a changed field the restored optimizer would ignore), so a refused resume costs no
   model load.

The trainer then builds its model and optimizer, registers what else a checkpoint holds, and calls
:meth:`Run.start`: it loads the chosen checkpoint (returns its step), drops metrics past it and saves
the config. Each step's record goes through :meth:`Run.log` (``metrics.jsonl`` plus TensorBoard / W&B
when ``report_to`` asks), checkpoints through :meth:`Run.save`, and the finished model through
:meth:`Run.export`. Every method is called on every process (saving and exporting are collectives
under sharded parameters); what only the main process writes, it alone writes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from trafl.errors import ConfigError
from trafl.utils.checkpoint import (
    checkpoint_step,
    export_pretrained,
    load_checkpoint,
    save_checkpoint,
    shared_atomic_directory,
)
from trafl.utils.config import save_config, to_dict, upgrade_keys
from trafl.utils.distributed import make_accelerator
from trafl.utils.io import append_jsonl
from trafl.utils.run_config import RunConfig
from trafl.utils.run_dir import (
    FieldRules,
    RunLayout,
    check_resume_step,
    open_run_dir,
    record_resume,
    resume_changes,
    truncate_metrics,
)
from trafl.utils.seed import seed_everything


def make_run_accelerator(device: str, num_threads: int = 0, accelerator: Any = None) -> Any:
    """The accelerator of a run whose config asks for ``device`` ('auto', 'cpu', 'cuda', 'cuda:N').

    ``cuda:N`` makes GPU ``N`` the current device first: accelerate runs a single process on the current
    one (under ``accelerate launch`` each process's own device wins). ``num_threads`` (0: torch's default)
    sets torch's CPU threads. A given ``accelerator`` is used as it is."""
    if num_threads:
        torch.set_num_threads(num_threads)
    if accelerator is not None:
        return accelerator
    if device.startswith("cuda:"):
        torch.cuda.set_device(torch.device(device))
    return make_accelerator(device == "cpu" or (device == "auto" and not torch.cuda.is_available()))


class Run:
    """One run's accelerator, folder, resume, checkpoints, metrics and export (see the module docstring)."""

    def __init__(
        self,
        cfg: RunConfig,
        layout: RunLayout,
        rules: FieldRules,
        *,
        accelerator: Any = None,
        progress: bool = True,
    ):
        self.cfg, self.layout, self.progress = cfg, layout, progress
        self.accelerator = make_run_accelerator(cfg.device, cfg.num_threads, accelerator)
        self.rank, self.world = self.accelerator.process_index, self.accelerator.num_processes
        self.device, self.is_main = self.accelerator.device, self.accelerator.is_main_process
        self.rules, self.out = rules, Path(cfg.output_dir)
        self.resume_from: Path | None = None
        self.changes: dict[str, tuple] = {}
        self._loggers: _ExtraLoggers | None = None
        seed_everything(cfg.seed)  # the same initialisation on every process

    def open(self) -> None:
        """Decide what this run may do with ``output_dir`` before anything is loaded; on ``resume``, choose
        the checkpoint and refuse a resume it cannot honour (see the module docstring)."""
        cfg, layout = self.cfg, self.layout
        self.resume_from = open_run_dir(
            self.out, layout, resume=cfg.resume, overwrite=cfg.overwrite, is_main=self.is_main
        )
        if self.resume_from is not None:
            step = checkpoint_step(self.resume_from)
            check_resume_step(step, cfg.max_steps, self.resume_from)
            saved = str(self.out / layout.config)
            upgrade = lambda values: upgrade_keys(type(cfg), values, saved, saved=True)  # noqa: E731
            self.changes = resume_changes(self.out / layout.config, to_dict(cfg), self.rules, step, upgrade)
        self.accelerator.wait_for_everyone()

    def start(self) -> int:
        """Load the checkpoint chosen at opening (the model, optimizer and registered objects must be
        prepared); drop the metrics past its step (all of them on a fresh start); save the config.
        Returns the step to continue from (0 on a fresh start)."""
        step = 0
        if self.resume_from is not None:
            step = load_checkpoint(self.accelerator, self.resume_from)["step"]
            if self.is_main:
                record_resume(self.out, step, self.changes)
        if self.is_main:
            truncate_metrics(self.out / self.layout.metrics, step)
            save_config(self.cfg, self.out / self.layout.config)
            self._loggers = _ExtraLoggers(self.cfg.report_to, self.out, to_dict(self.cfg))
        self.accelerator.wait_for_everyone()
        return step

    def progress_bar(self, desc: str, initial: int) -> tqdm:
        """The bar over ``max_steps``, shown on the main process unless progress is off."""
        return tqdm(
            total=self.cfg.max_steps,
            initial=initial,
            desc=desc,
            dynamic_ncols=True,
            disable=not (self.progress and self.is_main),
        )

    def log(self, record: dict[str, Any], step: int) -> None:
        """Append ``record`` to the metrics file and the extra loggers (main process only)."""
        if self.is_main:
            append_jsonl(self.out / self.layout.metrics, record)
            if self._loggers is not None:
                self._loggers.log(record, step)

    def save(self, step: int, model: Any, tokenizer: Any = None) -> Path:
        """``checkpoint-<step>`` (the accelerator's state and the model in Hugging Face format), keeping
        the newest ``save_total_limit``."""
        return save_checkpoint(
            self.accelerator, self.out, step, model=model, tokenizer=tokenizer, keep_last=self.cfg.save_total_limit
        )

    def due(self, every: int, step: int) -> bool:
        """Whether something done every ``every`` steps (0: never) is due after step ``step``, before the last."""
        return bool(every) and step % every == 0 and step < self.cfg.max_steps

    def export(self, name: str, model: Any, tokenizer: Any = None, extra: Callable[[Path], None] | None = None) -> Path:
        """``output_dir/<name>``: the model in Hugging Face format from its gathered state, and the tokenizer,
        written atomically; ``extra(folder)`` adds files on the main process."""
        path = self.out / name
        with shared_atomic_directory(self.accelerator, path) as tmp:
            export_pretrained(self.accelerator, model, tmp, tokenizer)
            if extra is not None and self.is_main:
                extra(tmp)
        return path

    def close(self) -> None:
        if self._loggers is not None:
            self._loggers.close()
            self._loggers = None


class _ExtraLoggers:
    """Optional TensorBoard / W&B loggers, created only when asked for (and installed)."""

    def __init__(self, report_to: list[str], out: Path, config: dict):
        self.tb = self.wandb = None
        if "tensorboard" in report_to:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise ConfigError(
                    "report_to includes 'tensorboard' but it is not installed: pip install tensorboard"
                ) from exc
            self.tb = SummaryWriter(str(out / "tensorboard"))
        if "wandb" in report_to:
            try:
                import wandb
            except ImportError as exc:
                raise ConfigError("report_to includes 'wandb' but it is not installed: pip install wandb") from exc
            self.wandb = wandb.init(project="trafl", config=config, dir=str(out))

    def log(self, record: dict, step: int) -> None:
        scalars = {k: v for k, v in record.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(k, v, step)
        if self.wandb is not None:
            self.wandb.log(scalars, step=step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()
