"""Configuration of ``trafl train``.

Field names follow TRL's ``GRPOConfig`` where the concept is the same (``num_generations``,
``max_completion_length``, ``num_iterations``, ``beta``, ``epsilon``, ``learning_rate``,
``per_device_train_batch_size``, ...). Batch semantics, as in TRL: ``per_device_train_batch_size``
counts *completions* per process per micro-step; one optimizer step consumes
``per_device_train_batch_size * gradient_accumulation_steps * num_processes`` completions, i.e.
that number divided by ``num_generations`` prompts. Each micro-batch holds whole groups.

The fields every run has (seed, optimizer, checkpoints, device, ...) come from
:class:`trafl.utils.run_config.RunConfig`, shared with ``trafl sft``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from trafl.errors import ConfigError
from trafl.models.kv_cache import CacheMode
from trafl.objectives.base import SameAs
from trafl.objectives.options import ObjectiveOptions
from trafl.objectives.registry import OBJECTIVES, MethodName, all_option_names, make_options, objective_class
from trafl.sampling.remasking import Remasking
from trafl.sampling.settings import TRAIN_NAMES, SamplerSettings, check_sampler, sampler_from, sampler_option
from trafl.train.rewards import NanRewards
from trafl.train.rollout import PromptTruncation
from trafl.utils.config import Renamed, option, option_of
from trafl.utils.run_config import RunConfig

METHODS = tuple(OBJECTIVES)

#: Trainer fields whose default depends on the method (``None`` in the dataclass = "the method's
#: recipe", see ``Objective.train_defaults``), with the value used when the recipe sets none.
RECIPE_FIELDS = {"num_iterations": 1, "temperature": 0.9, "block_length": 32, "diffusion_steps": 128}


@dataclass
class TrainConfig(RunConfig):
    RENAMED: ClassVar[dict[str, Renamed]] = {
        "generation_batch_size": Renamed(
            None,
            why="it was accepted but never read (every micro-batch's completions are sampled in one call); "
            "remove it, and lower per_device_train_batch_size to sample fewer completions at once",
        ),
    }

    # --- what to train -------------------------------------------------------------------------
    model: str = option_of(
        RunConfig,
        "model",
        "",
        "Base model: a directory in Hugging Face format or a hub id (e.g. GSAI-ML/LLaDA-8B-Instruct).",
    )
    method: MethodName = option("trafl", "Post-training objective.")
    task: str = option("", "Task name from the registry (trafl.tasks), e.g. gsm8k, math, mbpp, countdown.")
    task_options: dict[str, Any] = option(
        {},
        "Options of the task (its constructor's keyword arguments), checked at load time, e.g. "
        "{prompt_template: d1, rewards: d1} for gsm8k, {source: prm800k} for math; on the command line "
        "prompt_template=d1,rewards=d1. The math tasks' options: docs/training.md, 'Prompt templates and reward sets'.",
    )
    dataset_path: str | None = option(
        None,
        "Local JSONL/JSON file or dataset directory (hub-style snapshot or save_to_disk) for the task's training split (default: the task's own source).",
    )
    dataset_split: str | None = option(None, "Split to train on (default: the task's train split).")
    max_prompts: int | None = option(
        None,
        "Use only the first N rows of the training split, in the dataset's own order (the seeded per-epoch "
        "shuffle then draws from those N).",
        min=1,
    )
    output_dir: str = option_of(
        RunConfig, "output_dir", "runs/train", "Run directory: checkpoints, metrics.jsonl, final model."
    )
    trust_remote_code: bool = option(False, "Allow transformers remote code (needed for Dream).")

    # --- rollouts (the sampler is the policy) -------------------------------------------------
    num_generations: int = option(8, "G: completions sampled per prompt (the group).", min=2)
    max_completion_length: int = option(256, "Completion canvas length L (the sampler's gen_length).", min=1)
    max_prompt_length: int = option(
        512,
        "Longest prompt in tokens (chat template included); what happens to a longer one: prompt_truncation.",
        min=1,
    )
    prompt_truncation: PromptTruncation = option(
        "error",
        "A prompt over max_prompt_length tokens: 'error' stops the run naming it; 'left' keeps its last "
        "max_prompt_length tokens, as d1's and ESPO's trainers do (counted in metrics as rollout/truncated_prompts).",
    )
    diffusion_steps: int | None = option(
        None,
        "Sampler denoising steps for the whole completion (default: the method's recipe, else 128; "
        "espo, justgrpo: max_completion_length).",
        min=1,
    )
    block_length: int | None = option(
        None,
        "Sampler semi-autoregressive block length, divides max_completion_length "
        "(default: the method's recipe, else 32; justgrpo: 1).",
        min=1,
    )
    temperature: float | None = option(
        None, "Rollout sampling temperature (default: the method's recipe, else 0.9; espo, justgrpo: 1.0).", min=0.0
    )
    allow_any_rollout_order: bool = option(
        False,
        "Let an objective whose likelihood assumes left-to-right rollouts (justgrpo) train on another sampler "
        "(its gradient is then biased): without it such a combination is an error.",
    )
    remasking: Remasking = sampler_option("remasking", help="Sampler remasking rule.")
    rollout_cache: CacheMode = sampler_option(
        "cache",
        help="Rollout sampler's block KV cache: none (exact, default), prefix or dual (approximate, faster; "
        "native LLaDA models only). See 'Fast rollouts' in docs/training.md.",
    )
    rollout_threshold: float | None = sampler_option(
        "threshold",
        help="Rollout sampler's confidence-threshold parallel decoding: null (exact, default) or a "
        "confidence in [0, 1] (approximate, fewer forward passes).",
    )
    # --- optimisation ---------------------------------------------------------------------------
    max_steps: int = option_of(
        RunConfig, "max_steps", 100, "Optimizer steps (each on one rollout batch, repeated num_iterations times)."
    )
    per_device_train_batch_size: int = option(
        8, "Completions per process per micro-step; a multiple of num_generations.", min=1
    )
    gradient_accumulation_steps: int = option_of(
        RunConfig, "gradient_accumulation_steps", 1, "Micro-steps accumulated per optimizer step."
    )
    num_iterations: int | None = option(
        None,
        "mu: inner updates on each rollout batch, old policy = the rollout policy "
        "(default: the method's recipe: espo 8, diffu_grpo and wd1 12, spg 4, else 1).",
        min=1,
    )
    learning_rate: float = option_of(
        RunConfig, "learning_rate", 1e-5, "Peak learning rate of AdamW for the policy (LoRA or full)."
    )
    logz_lr: float = option(1e-3, "Learning rate of TraFL's logZ head (its own parameter group).", min=0.0)
    adam_beta1: float = option(0.9, "AdamW beta1.", min=0.0, max=1.0)
    adam_beta2: float = option(0.99, "AdamW beta2.", min=0.0, max=1.0)
    gradient_checkpointing: bool = option(False, "Recompute activations in the backward pass to save memory.")

    # --- LoRA ------------------------------------------------------------------------------------
    use_peft: bool = option(False, "Train LoRA adapters (reference = adapters disabled, no second copy).")
    lora_r: int = option(128, "LoRA rank.", min=1)
    lora_alpha: int = option(256, "LoRA alpha.", min=1)
    lora_dropout: float = option(0.05, "LoRA dropout.", min=0.0, max=1.0)
    lora_target_modules: list[str] = option(
        ["q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out"],
        "Module names LoRA adapts (LLaDA's names).",
    )
    lora_allow_unmatched_targets: bool = option(
        False,
        "Accept lora_target_modules names that match no module of the model (skipped, with a warning). Off: such "
        "a name is an error naming the model's linear layers (peft itself skips it silently when another name "
        "matches). On only for a list written for another architecture on purpose.",
    )

    save_merged: bool = option(
        True, "With use_peft: also save the base with the adapters merged in (output_dir/final-merged)."
    )

    # --- objective ------------------------------------------------------------------------------
    objective: Any = dataclasses.field(
        default=None,
        metadata={
            "help": "The method's options (its Options dataclass), given as flat keys: see docs/objectives.md.",
            "flatten": True,
        },
    )
    reward_weights: list[float] | None = option(
        None,
        "Weights of the task's reward functions (default: the task's own; for most tasks 1 for correctness, 0 for "
        "the rest; a reward set of the math tasks fixes its own, e.g. d1: all 1).",
    )
    nan_rewards: NanRewards = option(
        "zero",
        "What to do when a reward function returns NaN: 'zero' replaces it by 0 and counts it in "
        "metrics (rewards/nan_count); 'error' stops the run.",
    )

    # --- bookkeeping ------------------------------------------------------------------------------
    seed: int = option_of(RunConfig, "seed", 0, "Random seed (prompt order, rollouts, masks, initialisation).")
    logging_steps: int = option(1, "Write metrics every N steps.", min=1)

    # --- loading: the method's options arrive as flat keys next to the trainer's own ------------------
    @classmethod
    def extra_keys(cls) -> list[str]:
        return all_option_names()

    @classmethod
    def split_values(cls, values: dict[str, Any], source: str) -> dict[str, Any]:
        """Move the method's option keys into ``objective`` (a typed, validated options object)."""
        method = values.get("method", "trafl")
        if method not in OBJECTIVES:
            raise ConfigError(
                f"config field 'method': expected one of {', '.join(map(repr, OBJECTIVES))}, got {method!r}"
            )
        own = {f.name for f in dataclasses.fields(cls)}
        pulled = {k: values[k] for k in list(values) if k not in own}
        rest = {k: v for k, v in values.items() if k in own}
        nested = rest.pop("objective", None)
        if isinstance(nested, ObjectiveOptions):
            nested = {f.name: getattr(nested, f.name) for f in dataclasses.fields(nested)}
        known = set(all_option_names())
        unknown = [k for k in pulled if k not in known]
        if unknown:
            from trafl.utils.config import _unknown_key_error

            raise _unknown_key_error(cls, unknown[0], source)
        rest["objective"] = make_options(method, {**(nested or {}), **pulled}, source)
        return rest

    def recipe(self) -> dict[str, Any]:
        """The trainer-field defaults of this method's recipe, resolved for this config (a
        :class:`~trafl.objectives.base.SameAs` value takes that field's value here)."""
        cls = objective_class(self.method)
        values = {**RECIPE_FIELDS, **cls.train_defaults}
        if cls.rollout_order == "left_to_right":
            values.update(block_length=1, diffusion_steps=SameAs("max_completion_length"))
        return {k: getattr(self, v.field) if isinstance(v, SameAs) else v for k, v in values.items()}

    def validate(self) -> None:
        if self.objective is None:
            self.objective = make_options(self.method)
        recipe = self.recipe()
        for name in RECIPE_FIELDS:
            if getattr(self, name) is None:
                setattr(self, name, recipe[name])
        if objective_class(self.method).rollout_order == "left_to_right" and not self.allow_any_rollout_order:
            if self.block_length != 1 or self.diffusion_steps != self.max_completion_length:
                raise ConfigError(
                    f"method '{self.method}' trains on the left-to-right likelihood of its own rollouts, so it samples "
                    f"left to right (block_length 1, diffusion_steps = max_completion_length = {self.max_completion_length}); "
                    f"got block_length {self.block_length}, diffusion_steps {self.diffusion_steps}. Leave both unset, or "
                    "set allow_any_rollout_order: true to train on another sampler (a biased gradient)."
                )
        for name in ("model", "task"):
            if not getattr(self, name):
                raise ConfigError(f"config field '{name}' is required")
        self.check_task()
        if self.per_device_train_batch_size % self.num_generations:
            raise ConfigError(
                f"config field 'per_device_train_batch_size' ({self.per_device_train_batch_size}) must be a "
                f"multiple of 'num_generations' ({self.num_generations}): each micro-batch holds whole groups"
            )
        check_sampler(self.sampler, TRAIN_NAMES)
        self.objective.bind_rollout(self.max_completion_length, self.block_length)
        if self.objective.surrogate == "trajectory" and self.remasking != "random":
            raise ConfigError("config field 'surrogate': 'trajectory' is exact only with remasking: random")
        super().validate()

    def check_task(self) -> None:
        """``task_options`` typed against the task's options (the task is looked up only when options are given)."""
        if self.task_options:
            from trafl.tasks import check_task_options

            self.task_options = check_task_options(self.task, self.task_options)

    @property
    def sampler(self) -> SamplerSettings:
        """The rollout sampler's settings (after ``validate`` has resolved the recipe defaults)."""
        return sampler_from(self, TRAIN_NAMES)

    @property
    def resolved_surrogate(self) -> str:
        return self.objective.surrogate
