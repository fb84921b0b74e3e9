"""The fields every training run has, shared by ``trafl train`` and ``trafl sft``.

:class:`RunConfig` is the base dataclass of :class:`trafl.train.config.TrainConfig` and
:class:`trafl.sft.config.SFTConfig`; :class:`trafl.utils.run.Run` (accelerator, seeding, run folder,
resume, checkpoints, logging, export) reads only these fields. Names follow TRL's ``TrainingArguments``
where TRL has the concept. A subclass gives its own default with :func:`trafl.utils.config.option_of`;
the field keeps its place and its constraints.
"""

from __future__ import annotations

from dataclasses import dataclass

from trafl.errors import ConfigError
from trafl.utils.config import option
from trafl.utils.devices import check_device
from trafl.utils.schedule import SchedulerType

#: The optional loggers next to the metrics file.
REPORTERS = ("tensorboard", "wandb")


@dataclass
class RunConfig:
    # --- what to train, where ----------------------------------------------------------------------
    model: str = option("", "The model to start from: a directory in Hugging Face format or a hub id.")
    output_dir: str = option("runs/run", "Run directory: config, metrics, checkpoints and the final model.")
    seed: int = option(0, "Random seed: every random draw of the run derives from it (trafl.utils.seed).")

    # --- optimisation -------------------------------------------------------------------------------
    max_steps: int = option(100, "Optimizer steps to run.", min=1)
    learning_rate: float = option(1e-5, "Peak learning rate of AdamW.", min=0.0)
    weight_decay: float = option(0.0, "AdamW weight decay.", min=0.0)
    lr_scheduler_type: SchedulerType = option("constant", "Learning-rate schedule after warm-up.")
    warmup_steps: int = option(0, "Linear warm-up steps.", min=0)
    max_grad_norm: float = option(1.0, "Gradient clipping norm (0 disables).", min=0.0)
    gradient_accumulation_steps: int = option(1, "Micro-batches accumulated per optimizer step.", min=1)
    bf16: bool = option(False, "bf16 autocast of the forward passes (CUDA only; ignored on CPU).")

    # --- bookkeeping ----------------------------------------------------------------------------------
    save_steps: int = option(50, "Write a resumable checkpoint every N optimizer steps (0: only at the end).", min=0)
    save_total_limit: int = option(2, "Keep at most this many checkpoints.", min=1)
    report_to: list[str] = option([], "Extra loggers: tensorboard and/or wandb (only when installed).")
    resume: bool = option(
        False,
        "Continue the run in output_dir from its newest checkpoint (a folder without one starts fresh; changed "
        "fields are listed; a change the restored optimizer would ignore is refused).",
    )
    overwrite: bool = option(
        False, "Replace the run already in output_dir (its files are removed first); without it such a run is kept."
    )
    device: str = option(
        "auto",
        "'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:1', ... (under accelerate launch the process's device "
        "is used).",
    )
    num_threads: int = option(0, "torch CPU threads (0: torch's default).", min=0)

    def validate(self) -> None:
        """The checks of the shared fields; a subclass's ``validate`` calls this first."""
        if self.resume and self.overwrite:
            raise ConfigError(
                "config fields 'resume' and 'overwrite' exclude each other: continue the run or replace it"
            )
        for logger in self.report_to:
            if logger not in REPORTERS:
                raise ConfigError(f"config field 'report_to': unknown logger '{logger}' (tensorboard, wandb)")
        check_device(self.device)
