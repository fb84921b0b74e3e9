"""The post-training loop: rollouts -> rewards -> ``num_iterations`` inner updates -> next batch.

One optimizer *step* ``k`` of :class:`RLTrainer`:

1. take the step's prompts (:mod:`trafl.train.data`; this process gets its slice, in micro-batches of
   ``per_device_train_batch_size / num_generations`` prompts);
2. per micro-batch, sample and score ``G = num_generations`` completions per prompt
   (:mod:`trafl.train.rollout`), then ``objective.prepare`` (:meth:`trafl.train.update.PolicyUpdate.prepare`);
3. ``num_iterations`` inner updates on the prepared micro-batches (:mod:`trafl.train.update`).

Every random draw is a function of ``(seed, step, position, ...)`` (:mod:`trafl.utils.seed`), so a run
resumed from a checkpoint continues bit-identically, and a data-parallel run on ``n`` processes sees the
same global batch as one process with ``n`` times the accumulation. The accelerator, the run folder,
resume, checkpoints, metrics and the final export are the shared scaffold's (:class:`trafl.utils.run.Run`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from trafl.objectives import objective_from_config
from trafl.objectives.logz import hidden_size_of
from trafl.objectives.reference import make_reference
from trafl.sampling.settings import SamplerSettings
from trafl.train.config import TrainConfig
from trafl.train.data import prompt_indices_for_step, split_for_process, training_rows
from trafl.train.policy import DenoiserView, base_model, load_policy, save_merged
from trafl.train.reference import shard_reference
from trafl.train.rollout import Rollout, check_sharded_sampler, clock, resolve_reward_weights
from trafl.train.update import PolicyUpdate, average
from trafl.utils.run import Run
from trafl.utils.run_dir import TRAIN_RUN, FieldRules
from trafl.utils.seed import step_seed

logger = logging.getLogger(__name__)

#: On ``--resume``: the optimizers' hyper-parameters live in their restored state (a new value would be
#: ignored), and the model, the method and the adapters' and head's shapes define the checkpoint.
TRAIN_RESUME_RULES = FieldRules(
    restored=("learning_rate", "logz_lr", "weight_decay", "adam_beta1", "adam_beta2"),
    fixed=("model", "method", "use_peft", "lora_r", "lora_alpha", "lora_target_modules", "logz"),
    ignored=("resume", "overwrite", "output_dir"),
)


@dataclass
class TrainResult:
    output_dir: Path
    steps: int
    history: list[dict] = field(default_factory=list)


class RLTrainer:
    """Wires model, sampler, task rewards and objective. See the module docstring for one step."""

    def __init__(
        self,
        cfg: TrainConfig,
        *,
        rows: list[dict] | None = None,
        task: Any = None,
        reward_fns: Sequence[Callable[..., list[float]]] | None = None,
        accelerator: Any = None,
        progress: bool = True,
    ):
        self.cfg = cfg
        # Before anything is loaded: the accelerator, the seed, and the run folder's rules.
        self.run = Run(cfg, TRAIN_RUN, TRAIN_RESUME_RULES, accelerator=accelerator, progress=progress)
        self.run.open()
        self.accelerator, self.device = self.run.accelerator, self.run.device
        check_sharded_sampler(self.accelerator, cfg.sampler)
        if task is None:
            from trafl.tasks import get_task

            task = get_task(cfg.task, **cfg.task_options)
        self.task = task
        self.rows = training_rows(cfg, self.task, rows)
        if reward_fns is not None:
            reward_fns, default_weights = list(reward_fns), None
        else:
            reward_fns = self.task.reward_functions()
            default_weights = getattr(self.task, "default_reward_weights", lambda: None)()
        weights = resolve_reward_weights(cfg.reward_weights, len(reward_fns), cfg.task, default_weights)
        self.prompts_per_micro = cfg.per_device_train_batch_size // cfg.num_generations
        self.prompts_per_step = self.prompts_per_micro * cfg.gradient_accumulation_steps * self.run.world

        self.model, self.tokenizer = load_policy(cfg, self.device)
        base = base_model(self.model)
        self.objective = objective_from_config(cfg, hidden_size=hidden_size_of(base))
        # The reference exists only when the objective reads it (a full fine-tuning copy is a model's size).
        self.reference = make_reference(self.model) if self.objective.needs_reference else None
        self.reference = shard_reference(self.accelerator, self.reference)  # FSDP / ZeRO-3: a shard per process
        self.objective.to(self.device)
        view = DenoiserView(self.model, base)  # the rollout policy: sampling needs no gradient synchronisation
        self.update = PolicyUpdate.build(cfg, self.accelerator, self.model, self.objective, self.reference, view)
        self.wrapped, self.head_optimizer = self.update.wrapped, self.update.head_optimizer
        self.rollout = Rollout(
            model=view,
            module=self.model,
            tokenizer=self.tokenizer,
            task=self.task,
            reward_fns=reward_fns,
            reward_weights=weights,
            sampler=self.sampler,
            num_generations=cfg.num_generations,
            max_prompt_length=cfg.max_prompt_length,
            prompt_truncation=cfg.prompt_truncation,
            nan_rewards=cfg.nan_rewards,
            seed=cfg.seed,
            device=self.device,
        )
        self.step = 0

    @cached_property
    def sampler(self) -> SamplerSettings:
        """The rollout sampler's settings; when they approximate the sampler (a KV cache, a threshold)
        and the objective's estimator assumes on-policy rollouts, logs one warning."""
        settings = self.cfg.sampler
        if settings.approximate and self.objective.on_policy_rollouts and self.accelerator.is_main_process:
            logger.warning(
                "method '%s' assumes its rollouts follow the policy's own law, but the rollout sampler is "
                "approximate (rollout_cache=%s, rollout_threshold=%s): its gradient is biased. TraFL's objective "
                "does not need on-policy rollouts; see 'Fast rollouts' in docs/training.md.",
                self.cfg.method,
                settings.cache,
                settings.threshold,
            )
        return settings

    def train_step(self, step: int) -> dict[str, float]:
        """Optimizer step ``step`` (0-based): rollouts and ``prepare`` per micro-batch, then the update."""
        cfg, per = self.cfg, self.prompts_per_micro
        rank, world = self.run.rank, self.run.world
        torch.manual_seed(step_seed(cfg.seed, step, rank, 0, "global"))  # dropout etc.
        indices = prompt_indices_for_step(len(self.rows), self.prompts_per_step, step, cfg.seed)
        mine = split_for_process(indices, rank, world)
        positions = [rank * len(mine) + m * per for m in range(cfg.gradient_accumulation_steps)]
        groups, reward_metrics = [], []
        times = {"time/rollout_s": 0.0, "time/reward_s": 0.0, "time/prepare_s": 0.0}  # summed over micro-batches
        for m, position in enumerate(positions):
            group, metrics, _ = self.rollout([self.rows[i] for i in mine[m * per : (m + 1) * per]], step, position)
            for key in ("time/rollout_s", "time/reward_s"):
                times[key] += metrics.pop(key)
            t0 = clock(self.device)
            groups.append(self.update.prepare(group, step, position))
            times["time/prepare_s"] += clock(self.device) - t0
            reward_metrics.append(metrics)
        update = self.update(groups, step, positions)
        record = {**average(reward_metrics), **update}
        for key in ("rewards/nan_count", "rollout/truncated_prompts"):  # counts: summed over micro-batches
            record[key] = sum(d[key] for d in reward_metrics)
        record.update(times, **{"time/update_s": update["time/update_s"]})
        n_tokens = per * cfg.gradient_accumulation_steps * cfg.num_generations * cfg.max_completion_length
        record["rollout_tokens_per_s"] = n_tokens / max(times["time/rollout_s"], 1e-9)
        record["rollout/approximate"] = float(self.sampler.approximate)
        record = _mean_over_processes(self.accelerator, record)
        record["lr"] = self.update.scheduler.get_last_lr()[0]
        if self.sampler.approximate:  # which approximation, next to the numbers it produced
            record["rollout/cache"], record["rollout/threshold"] = self.sampler.cache, self.sampler.threshold
        return record

    def save_final(self) -> Path:
        """``final/``: the model (or LoRA adapter) and tokenizer, with the objective's head; with LoRA and
        ``save_merged``, ``final-merged/`` too (:func:`trafl.train.policy.save_merged`)."""
        head = lambda folder: torch.save(self.objective.state_dict(), folder / "objective_head.pt")  # noqa: E731
        final = self.run.export("final", self.wrapped, self.tokenizer, head)
        if self.cfg.use_peft and self.cfg.save_merged and self.accelerator.is_main_process:
            save_merged(self.cfg, final, self.tokenizer, self.run.out / "final-merged")
        self.accelerator.wait_for_everyone()
        return final

    def train(self) -> TrainResult:
        cfg, run = self.cfg, self.run
        self.step = run.start()
        history: list[dict] = []
        bar = run.progress_bar(f"train[{cfg.method}]", self.step)
        while self.step < cfg.max_steps:
            record = {"step": self.step + 1, **self.train_step(self.step)}
            self.step += 1
            history.append(record)
            if self.step % cfg.logging_steps == 0 or self.step == cfg.max_steps:
                run.log(record, self.step)
            bar.update(1)
            bar.set_postfix(reward=f"{record['reward']:.3f}", loss=f"{record['loss']:.4f}")
            if run.due(cfg.save_steps, self.step):
                run.save(self.step, self.wrapped, self.tokenizer)
        bar.close()
        run.close()
        self.save_final()
        return TrainResult(run.out, self.step, history)


def _mean_over_processes(accelerator: Any, values: dict[str, float]) -> dict[str, float]:
    if accelerator.num_processes == 1:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=accelerator.device)
    return dict(zip(keys, accelerator.reduce(t, reduction="mean").tolist()))


def run_train(cfg: TrainConfig, progress: bool = True, **kwargs: Any) -> TrainResult:
    return RLTrainer(cfg, progress=progress, **kwargs).train()
