"""Configuration of ``trafl sft``."""

from __future__ import annotations

from dataclasses import dataclass

from trafl.errors import ConfigError
from trafl.models.loading import TrainDtype
from trafl.utils.config import option
from trafl.utils.devices import check_device
from trafl.utils.schedule import SchedulerType


@dataclass
class SFTConfig:
    data: str = option("", "JSONL file of training examples with string fields 'prompt' and 'completion'.")
    output_dir: str = option(
        "runs/sft", "Directory the final model (Hugging Face format) and checkpoints are written to."
    )
    model: str = option(
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
    completion_length: int = option(
        32, "Tokens of the completion canvas (= the gen_length to sample at); completions are EOS-padded to it.", min=1
    )
    extra_completion_lengths: list[int] = option(
        [],
        "Shorter canvases to train at as well: an example whose answer (with its EOS) fits several of "
        "completion_length and these is padded to one of them, drawn once per example (seeded), so that the "
        "model can be sampled at each (LLaDA pads each batch to its longest example).",
    )
    max_steps: int = option(2000, "Optimizer steps to run.", min=1)
    batch_size: int = option(64, "Examples per optimizer step, over all processes.", min=1)
    gradient_accumulation_steps: int = option(
        1, "Micro-batches per optimizer step on each process: a micro-batch is batch_size / (processes x this).", min=1
    )
    learning_rate: float = option(1e-3, "Peak learning rate of AdamW.", min=0.0)
    weight_decay: float = option(0.01, "AdamW weight decay.", min=0.0)
    warmup_steps: int = option(100, "Linear warm-up steps before the cosine decay.", min=0)
    lr_schedule: SchedulerType = option("cosine", "Learning-rate schedule after warm-up.")
    max_grad_norm: float = option(1.0, "Gradient clipping norm (0 disables).", min=0.0)
    eps: float = option(1e-3, "Lower bound of the masking rate: p_mask = (1 - eps) t + eps.", min=0.0, max=1.0)
    semi_ar_block_length: int = option(
        0,
        "Block length of the semi-autoregressive corruption (0: off): a share semi_ar_fraction of examples "
        "are masked as the block sampler sees them (earlier blocks clean, one block partly masked, later blocks "
        "all masks), so that a model sampled with that block length learns to end its answer without seeing "
        "the EOS tail; a divisor of completion_length.",
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
    eval_every: int = option(200, "Steps between held-out loss evaluations (0: only at the end).", min=0)
    save_every: int = option(500, "Steps between resumable checkpoints (0: only the final model).", min=0)
    seed: int = option(0, "Random seed (data order, masking, initialisation).")
    device: str = option(
        "auto",
        "'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:1', ... (under accelerate launch the process's device is used).",
    )
    dtype: TrainDtype = option("float32", "Parameter dtype; bf16 autocast is used on CUDA when 'bfloat16'.")
    use_chat_template: bool = option(True, "Wrap prompts in the tokenizer's chat template when it has one.")
    resume: bool = option(
        False,
        "Continue the run in output_dir from its newest checkpoint (a folder without one starts fresh; changed "
        "fields are listed; a change the restored optimizer would ignore is refused).",
    )
    overwrite: bool = option(
        False, "Replace the run already in output_dir (its files are removed first); without it such a run is kept."
    )
    num_threads: int = option(0, "torch CPU threads (0: torch's default).", min=0)

    def validate(self) -> None:
        if not self.data:
            raise ConfigError("config field 'data': a JSONL file of prompt/completion pairs is required")
        if self.resume and self.overwrite:
            raise ConfigError(
                "config fields 'resume' and 'overwrite' exclude each other: continue the run or replace it"
            )
        if self.batch_size % self.gradient_accumulation_steps:
            raise ConfigError(
                f"config field 'batch_size' ({self.batch_size}) must be a multiple of 'gradient_accumulation_steps' "
                f"({self.gradient_accumulation_steps})"
            )
        for n in self.extra_completion_lengths:
            if not 0 < n < self.completion_length:
                raise ConfigError(
                    f"config field 'extra_completion_lengths': {n} must lie between 1 and completion_length - 1 "
                    f"({self.completion_length - 1})"
                )
        for field, n in [("completion_length", self.completion_length)] + [
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
        check_device(self.device)
