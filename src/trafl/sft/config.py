"""Configuration of ``trafl sft``.

The fields every run has (model, output_dir, seed, the optimizer's, checkpoints, device) come from
:class:`trafl.utils.run_config.RunConfig`, with TRL's names; this class adds the data and the masking.
``batch_size`` keeps its own name: it counts examples over *all* processes (TRL's
``per_device_train_batch_size`` counts per process), so that a run's data stream and update do not
depend on how many processes share it. The names of trafl 0.1's first SFT config (``completion_length``, ``lr_schedule``,
``eval_every``, ``save_every``, ``dtype``) still load, with a warning naming the new field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, get_args

from trafl.errors import ConfigError
from trafl.models.loading import TrainDtype
from trafl.utils.config import Renamed, option, option_of
from trafl.utils.run_config import RunConfig
from trafl.utils.schedule import SchedulerType


def _bf16_from_dtype(value: Any) -> bool:
    """The old ``dtype`` field: 'bfloat16' meant bf16 autocast on CUDA (parameters stayed float32)."""
    if value in get_args(TrainDtype):
        return value == "bfloat16"
    raise ConfigError(f"config field 'dtype' (now 'bf16'): expected 'float32' or 'bfloat16', got {value!r}")


@dataclass
class SFTConfig(RunConfig):
    RENAMED: ClassVar[dict[str, Renamed]] = {
        "completion_length": Renamed("max_completion_length"),
        "lr_schedule": Renamed("lr_scheduler_type"),
        "eval_every": Renamed("eval_steps"),
        "save_every": Renamed("save_steps"),
        "dtype": Renamed("bf16", _bf16_from_dtype),
    }

    data: str = option("", "JSONL file of training examples with string fields 'prompt' and 'completion'.")
    output_dir: str = option_of(
        RunConfig,
        "output_dir",
        "runs/sft",
        "Directory the final model (Hugging Face format) and checkpoints are written to.",
    )
    model: str = option_of(
        RunConfig,
        "model",
        "tiny",
        "Where to start: a preset name (micro, tiny, small) trains from scratch with a character "
        "tokenizer built from the data; a model directory or hub id continues that checkpoint.",
    )
    eval_data: str | None = option(
        None, "Optional held-out JSONL (same fields) for the masked-token loss; default: a split of --data."
    )
    eval_fraction: float = option(
        0.05, "Fraction of --data held out for evaluation when --eval-data is not given.", min=0.0, max=0.5
    )
    max_completion_length: int = option(
        32,
        "Tokens of the completion canvas (= the gen_length to sample at); completions are EOS-padded to it "
        "(was completion_length).",
        min=1,
    )
    extra_completion_lengths: list[int] = option(
        [],
        "Shorter canvases to train at as well: an example whose answer (with its EOS) fits several of "
        "max_completion_length and these is padded to one of them, drawn once per example (seeded), so that the "
        "model can be sampled at each (LLaDA pads each batch to its longest example).",
    )
    max_steps: int = option_of(RunConfig, "max_steps", 2000)
    batch_size: int = option(
        64,
        "Examples per optimizer step, over all processes (not TRL's per_device_train_batch_size, which counts "
        "per process: a global count keeps the data stream and the update the same on any number of processes).",
        min=1,
    )
    gradient_accumulation_steps: int = option_of(
        RunConfig,
        "gradient_accumulation_steps",
        1,
        "Micro-batches per optimizer step on each process: a micro-batch is batch_size / (processes x this).",
    )
    learning_rate: float = option_of(RunConfig, "learning_rate", 1e-3)
    weight_decay: float = option_of(RunConfig, "weight_decay", 0.01)
    warmup_steps: int = option_of(RunConfig, "warmup_steps", 100)
    lr_scheduler_type: SchedulerType = option_of(
        RunConfig, "lr_scheduler_type", "cosine", "Learning-rate schedule after warm-up (was lr_schedule)."
    )
    eps: float = option(1e-3, "Lower bound of the masking rate: p_mask = (1 - eps) t + eps.", min=0.0, max=1.0)
    semi_ar_block_length: int = option(
        0,
        "Block length of the semi-autoregressive corruption (0: off): a share semi_ar_fraction of examples "
        "are masked as the block sampler sees them (earlier blocks clean, one block partly masked, later blocks "
        "all masks), so that a model sampled with that block length learns to end its answer without seeing "
        "the EOS tail; a divisor of max_completion_length.",
        min=0,
    )
    semi_ar_fraction: float = option(
        0.5,
        "Share of examples given the semi-autoregressive corruption when semi_ar_block_length > 0.",
        min=0.0,
        max=1.0,
    )
    semi_ar_end_share: float = option(
        0.0,
        "Share of the semi-autoregressive draws that take the block holding the answer's end (its first EOS) "
        "instead of a uniform block; the loss is reweighted by 1 / (K q_k), so its expectation is unchanged "
        "and more of the signal goes to where to stop (0: uniform blocks).",
        min=0.0,
        max=1.0,
    )
    eval_steps: int = option(
        200, "Steps between held-out loss evaluations (0: only at the end; was eval_every).", min=0
    )
    save_steps: int = option_of(
        RunConfig,
        "save_steps",
        500,
        "Steps between resumable checkpoints (0: only the final model; was save_every).",
    )
    seed: int = option_of(RunConfig, "seed", 0, "Random seed (data order, masking, initialisation).")
    bf16: bool = option_of(
        RunConfig,
        "bf16",
        False,
        "bf16 autocast of the forward passes on CUDA; parameters stay float32 (was dtype: bfloat16).",
    )
    use_chat_template: bool = option(True, "Wrap prompts in the tokenizer's chat template when it has one.")

    def validate(self) -> None:
        if not self.data:
            raise ConfigError("config field 'data': a JSONL file of prompt/completion pairs is required")
        if self.batch_size % self.gradient_accumulation_steps:
            raise ConfigError(
                f"config field 'batch_size' ({self.batch_size}) must be a multiple of 'gradient_accumulation_steps' "
                f"({self.gradient_accumulation_steps})"
            )
        for n in self.extra_completion_lengths:
            if not 0 < n < self.max_completion_length:
                raise ConfigError(
                    f"config field 'extra_completion_lengths': {n} must lie between 1 and max_completion_length - 1 "
                    f"({self.max_completion_length - 1})"
                )
        for field, n in [("max_completion_length", self.max_completion_length)] + [
            ("extra_completion_lengths", n) for n in self.extra_completion_lengths
        ]:
            if self.semi_ar_block_length and n % self.semi_ar_block_length:
                raise ConfigError(
                    f"config field 'semi_ar_block_length' ({self.semi_ar_block_length}) must divide '{field}' "
                    f"({n}): the block sampler needs gen_length to be a multiple of block_length"
                )
        if self.semi_ar_end_share and not (self.semi_ar_block_length and self.semi_ar_fraction):
            raise ConfigError(
                f"config field 'semi_ar_end_share' ({self.semi_ar_end_share}) needs the semi-autoregressive "
                "corruption on: set 'semi_ar_block_length' and 'semi_ar_fraction' above 0"
            )
        if self.warmup_steps > self.max_steps:
            raise ConfigError(
                f"config field 'warmup_steps' ({self.warmup_steps}) exceeds 'max_steps' ({self.max_steps})"
            )
        super().validate()
