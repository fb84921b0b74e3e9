"""The post-training loop: rollouts -> rewards -> ``num_iterations`` inner updates -> next batch.

One optimizer *step* ``k`` of :class:`RLTrainer`:

1. take the step's prompts (:mod:`trafl.train.data`; this process gets its slice, in micro-batches of
   ``per_device_train_batch_size / num_generations`` prompts);
2. sample ``G = num_generations`` completions per prompt with the sampler (the rollout policy), each
   row with its own generator seeded by ``(seed, k, prompt position, sample)``;
3. score them with the task's reward functions (:mod:`trafl.train.rewards`);
4. ``objective.prepare``: draw the surrogate's masks once (common random numbers) and cache the
   reference's (and, for ``num_iterations > 1``, the rollout policy's) surrogates;
5. ``num_iterations`` times: accumulate the objective's gradient over the micro-batches, clip,
   step the policy optimizer and the logZ head's optimizer.

Every random draw is a function of ``(seed, step, rank, ...)``, so a run resumed from a checkpoint
(parameters, optimizers, scheduler, step) continues bit-identically, and a data-parallel run on
``n`` processes sees the same global batch as one process with ``n`` times the accumulation.

The model and its optimizer run on an :class:`accelerate.Accelerator` configured by the launcher
(``accelerate launch --config_file configs/accelerate/<ddp|fsdp|zero2|zero3>.yaml``; see
:mod:`trafl.utils.distributed`). Checkpoints and the final model go through accelerate
(:mod:`trafl.utils.checkpoint`), so they are right when each process holds only a shard.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from trafl.errors import ConfigError, DataError
from trafl.objectives import RolloutGroup, objective_from_config
from trafl.objectives.logz import hidden_size_of
from trafl.objectives.reference import make_reference
from trafl.sampling.settings import SamplerSettings
from trafl.train.config import TrainConfig
from trafl.train.data import prompt_indices_for_step, split_for_process, step_seed
from trafl.train.rewards import compute_rewards
from trafl.utils.checkpoint import (
    checkpoint_step,
    export_pretrained,
    load_checkpoint,
    save_checkpoint,
    shared_atomic_directory,
)
from trafl.utils.config import save_config, to_dict
from trafl.utils.distributed import configure_deepspeed, make_accelerator, micro_batch, shards_parameters
from trafl.utils.io import append_jsonl, atomic_directory
from trafl.utils.run_dir import (
    TRAIN_RUN,
    FieldRules,
    check_resume_step,
    open_run_dir,
    record_resume,
    resume_changes,
    truncate_metrics,
)
from trafl.utils.schedule import make_scheduler

logger = logging.getLogger(__name__)

#: On ``--resume``: the optimizers' hyper-parameters live in their restored state (a new value would be
#: ignored), and the model, the method and the adapters' and head's shapes define the checkpoint.
TRAIN_RESUME_RULES = FieldRules(
    restored=("learning_rate", "logz_lr", "weight_decay", "adam_beta1", "adam_beta2"),
    fixed=("model", "method", "use_peft", "lora_r", "lora_alpha", "lora_target_modules", "logz"),
    ignored=("resume", "overwrite", "output_dir"),
)


class DenoiserView:
    """Calls the (possibly DDP/FSDP-wrapped) model but exposes the unwrapped model's config."""

    def __init__(self, wrapped: Any, unwrapped: Any):
        self.wrapped, self.config = wrapped, unwrapped.config
        self.mask_token_id = unwrapped.config.mask_token_id

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.wrapped(*args, **kwargs)


@dataclass
class TrainResult:
    output_dir: Path
    steps: int
    history: list[dict] = field(default_factory=list)


def _mean_over_processes(accelerator: Any, values: dict[str, float]) -> dict[str, float]:
    if accelerator is None or accelerator.num_processes == 1:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=accelerator.device)
    t = accelerator.reduce(t, reduction="mean")
    return dict(zip(keys, t.tolist()))


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
        self.progress = progress
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        cpu = cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available())
        self.accelerator = accelerator or make_accelerator(cpu)
        self.rank = self.accelerator.process_index
        self.world = self.accelerator.num_processes
        self.device = self.accelerator.device
        self.out = Path(cfg.output_dir)
        # Before anything is loaded: refuse to mix this run with another one in the folder.
        self.resume_from = open_run_dir(
            self.out,
            TRAIN_RUN,
            resume=cfg.resume,
            overwrite=cfg.overwrite,
            is_main=self.accelerator.is_main_process,
        )
        self.accelerator.wait_for_everyone()
        if shards_parameters(self.accelerator) and (cfg.rollout_cache != "none" or cfg.rollout_threshold is not None):
            # Each forward is a collective under sharded parameters: a threshold that ends one process's
            # block early would leave the others waiting, and the windowed cache forward bypasses the
            # sharding hooks of the model's root.
            raise ConfigError(
                "config fields 'rollout_cache' / 'rollout_threshold': the fast sampler is not supported when "
                "parameters are sharded (FSDP, ZeRO-3); use the exact sampler, or DDP / ZeRO-2"
            )

        # --- task, data and rewards -------------------------------------------------------------
        if task is None:
            from trafl.tasks import get_task

            task = get_task(cfg.task)
        self.task = task
        self.rows = (
            rows if rows is not None else task.load(cfg.dataset_split or task.train_split, path=cfg.dataset_path)
        )
        self._check_rows()
        self.reward_fns = list(reward_fns) if reward_fns is not None else task.reward_functions()
        if cfg.reward_weights is None:
            self.reward_weights = [1.0] + [0.0] * (len(self.reward_fns) - 1)
        else:
            self.reward_weights = list(cfg.reward_weights)
        if len(self.reward_weights) != len(self.reward_fns):
            raise ConfigError(
                f"config field 'reward_weights' has {len(self.reward_weights)} entries but task "
                f"'{cfg.task}' has {len(self.reward_fns)} reward functions"
            )

        # --- batch geometry ---------------------------------------------------------------------
        self.prompts_per_micro = cfg.per_device_train_batch_size // cfg.num_generations
        self.prompts_per_step = self.prompts_per_micro * cfg.gradient_accumulation_steps * self.world

        # --- model, reference, objective, optimizers ----------------------------------------------
        torch.manual_seed(cfg.seed)
        self.model, self.tokenizer = self._load_model()
        self.objective = objective_from_config(cfg, hidden_size=hidden_size_of(self._base_model()))
        # The reference exists only when the objective reads it (a full fine-tuning copy is a model's size).
        self.reference = make_reference(self.model) if self.objective.needs_reference else None
        self.objective.to(self.device)
        policy_params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            policy_params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, betas=(cfg.adam_beta1, cfg.adam_beta2)
        )
        head = list(self.objective.parameters())
        # The logZ head has its own optimizer (its own learning rate), synchronised by hand across
        # processes: it lives outside the wrapped model.
        self.head_optimizer = (
            torch.optim.AdamW(head, lr=cfg.logz_lr, betas=(cfg.adam_beta1, cfg.adam_beta2)) if head else None
        )
        self.scheduler = make_scheduler(self.optimizer, cfg.lr_scheduler_type, cfg.warmup_steps, cfg.max_steps)
        configure_deepspeed(self.accelerator, cfg.per_device_train_batch_size, cfg.max_grad_norm)
        self.wrapped, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)
        # Saved and restored by accelerator.save_state / load_state on every process, in this order (the
        # scheduler is not prepared: accelerate would step it once per process).
        self.accelerator.register_for_checkpointing(
            self.scheduler, self.objective, *([self.head_optimizer] if self.head_optimizer is not None else [])
        )
        self.policy = DenoiserView(self.wrapped, self._base_model())
        self.rollout_view = DenoiserView(self.model, self._base_model())
        self.step = 0

    # ------------------------------------------------------------------------------------------
    def _base_model(self) -> Any:
        m = self.model
        return m.get_base_model() if hasattr(m, "get_base_model") else m

    def _load_model(self) -> tuple[Any, Any]:
        from trafl.models import enable_checkpointing, load_pretrained

        model, tokenizer = load_pretrained(self.cfg.model, trust_remote_code=self.cfg.trust_remote_code)
        model.to(self.device)
        if self.cfg.gradient_checkpointing:
            enable_checkpointing(model)
        if self.cfg.use_peft:
            from peft import LoraConfig, get_peft_model

            lora = LoraConfig(
                r=self.cfg.lora_r,
                lora_alpha=self.cfg.lora_alpha,
                lora_dropout=self.cfg.lora_dropout,
                target_modules=list(self.cfg.lora_target_modules),
                bias="none",
                exclude_modules=_output_head_names(model),
            )
            model = get_peft_model(model, lora)
        model.train()
        return model, tokenizer

    def _check_rows(self) -> None:
        if not self.rows:
            raise DataError(
                f"task '{self.cfg.task}': the training dataset is empty"
                + (f" ({self.cfg.dataset_path})" if self.cfg.dataset_path else "")
            )
        needed = ["prompt"] + list(getattr(self.task, "required_columns", ()))
        for i, row in enumerate(self.rows):
            missing = [c for c in needed if c not in row]
            if missing:
                raise DataError(
                    f"task '{self.cfg.task}': training row {i} lacks column(s) {missing} (it has {sorted(row)})"
                )
        if self.cfg.max_prompts:
            self.rows = self.rows[: self.cfg.max_prompts]

    # ------------------------------------------------------------------------------------------
    def encode_prompts(self, rows: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded prompt ids and attention mask for ``rows``."""
        tok = self.tokenizer
        chat = bool(getattr(tok, "chat_template", None))
        encoded = []
        for row in rows:
            text = self.task.format_prompt(row, tok)
            ids = tok(text, add_special_tokens=not chat)["input_ids"]
            if len(ids) > self.cfg.max_prompt_length:
                raise DataError(
                    f"prompt of {len(ids)} tokens exceeds max_prompt_length={self.cfg.max_prompt_length}: {text[:80]!r}"
                )
            encoded.append(ids)
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        width = max(len(x) for x in encoded)
        ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        attn = torch.zeros_like(ids)
        for i, x in enumerate(encoded):
            ids[i, width - len(x) :] = torch.tensor(x, dtype=torch.long)
            attn[i, width - len(x) :] = 1
        return ids.to(self.device), attn.to(self.device)

    @cached_property
    def sampler(self) -> SamplerSettings:
        """The rollout sampler's settings. On first use, when they approximate the sampler (a KV cache,
        a threshold) and the objective's estimator assumes on-policy rollouts, logs one warning."""
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

    @torch.no_grad()
    def rollout(
        self, rows: list[dict], step: int, first_position: int
    ) -> tuple[RolloutGroup, dict[str, float], list[str]]:
        """Sample G completions for each row, score them; returns the group and reward metrics (with
        ``time/rollout_s``, ``time/reward_s`` and ``rollout/num_forward``, the sampler's forward
        passes per sequence)."""
        from trafl.sampling import completion_lengths, decode_completions, generate

        cfg = self.cfg
        G = cfg.num_generations
        t0 = _clock(self.device)
        prompt_ids, prompt_mask = self.encode_prompts(rows)
        gens = [
            torch.Generator(device=self.device).manual_seed(step_seed(cfg.seed, step, first_position + i, j))
            for i in range(len(rows))
            for j in range(G)
        ]
        was_training = self.model.training
        self.model.eval()
        out = generate(
            self.rollout_view,
            prompt_ids,
            prompt_mask,
            settings=self.sampler,
            num_samples=G,
            mask_token_id=self._base_model().config.mask_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
            generator=gens,
            fill_eos=True,
        )
        self.model.train(was_training)
        t1 = _clock(self.device)
        texts = decode_completions(self.tokenizer, out.completion, self.tokenizer.eos_token_id)
        prompts = [row["prompt"] for row in rows for _ in range(G)]
        columns = {k: [row.get(k) for row in rows for _ in range(G)] for k in rows[0] if k != "prompt"}
        rewards, _, metrics = compute_rewards(
            self.reward_fns, self.reward_weights, prompts, texts, columns, self.cfg.nan_rewards
        )
        metrics["time/rollout_s"], metrics["time/reward_s"] = t1 - t0, _clock(self.device) - t1
        metrics["rollout/num_forward"] = float(out.num_forward)
        group = RolloutGroup(
            input_ids=out.sequences,
            attention_mask=out.attention_mask,
            prompt_length=out.prompt_length,
            rewards=rewards.view(len(rows), G).to(self.device),
            eos_token_id=self.tokenizer.eos_token_id,
            commit_step=out.commit_step,
            temperature=cfg.temperature,
        )
        lengths = completion_lengths(out.completion, self.tokenizer.eos_token_id)
        metrics["completion_length"] = float(lengths.float().mean())
        return group, metrics, texts

    # ------------------------------------------------------------------------------------------
    def train_step(self, step: int) -> dict[str, float]:
        cfg = self.cfg
        torch.manual_seed(step_seed(cfg.seed, step, self.rank, 0, "global"))  # dropout etc.
        indices = prompt_indices_for_step(len(self.rows), self.prompts_per_step, step, cfg.seed)
        mine = split_for_process(indices, self.rank, self.world)
        offset = self.rank * len(mine)

        groups, reward_metrics = [], []
        times = {"time/rollout_s": 0.0, "time/reward_s": 0.0, "time/prepare_s": 0.0}  # summed over micro-batches
        for m in range(cfg.gradient_accumulation_steps):
            sl = slice(m * self.prompts_per_micro, (m + 1) * self.prompts_per_micro)
            rows = [self.rows[i] for i in mine[sl]]
            group, metrics, _ = self.rollout(rows, step, offset + sl.start)
            for key in ("time/rollout_s", "time/reward_s"):
                times[key] += metrics.pop(key)
            t0 = _clock(self.device)
            gen = torch.Generator(device=self.device).manual_seed(
                step_seed(cfg.seed, step, offset + sl.start, 0, "noise")
            )
            old = self.rollout_view if cfg.num_iterations > 1 else None
            self.model.eval()
            group = self.objective.prepare(
                group, reference=self.reference, old_policy=old, generator=gen, num_iterations=cfg.num_iterations
            )
            self.model.train()
            times["time/prepare_s"] += _clock(self.device) - t0
            groups.append(group)
            reward_metrics.append(metrics)

        t1 = _clock(self.device)
        update_metrics: list[dict[str, float]] = []
        for iteration in range(cfg.num_iterations):
            self.optimizer.zero_grad(set_to_none=True)
            if self.head_optimizer is not None:
                self.head_optimizer.zero_grad(set_to_none=True)
            for m, group in enumerate(groups):
                last = m == len(groups) - 1
                # dropout (LoRA's) of the micro-batch at global prompt position p: the same draw on any process count
                torch.manual_seed(step_seed(cfg.seed, step, offset + m * self.prompts_per_micro, iteration, "dropout"))
                with micro_batch(self.accelerator, self.wrapped, last), self._autocast():
                    loss, metrics = self.objective(self.policy, group.for_iteration(iteration))
                    if not torch.isfinite(loss):
                        raise FloatingPointError(f"non-finite loss {float(loss)} at step {step}; metrics {metrics}")
                    self.accelerator.backward(loss / len(groups))
                update_metrics.append(metrics)
            self._sync_head_grads()
            if cfg.max_grad_norm:
                grad_norm = self.accelerator.clip_grad_norm_(
                    [p for p in self.model.parameters() if p.requires_grad], cfg.max_grad_norm
                )
                if self.head_optimizer is not None:
                    torch.nn.utils.clip_grad_norm_(self.objective.parameters(), cfg.max_grad_norm)
            else:
                grad_norm = torch.tensor(float("nan"))
            self.optimizer.step()
            if self.head_optimizer is not None:
                self.head_optimizer.step()
        self.scheduler.step()
        t_update = _clock(self.device) - t1

        record = {**_average(reward_metrics), **_average(update_metrics)}
        record["rewards/nan_count"] = sum(d["rewards/nan_count"] for d in reward_metrics)
        record["grad_norm"] = float(grad_norm)
        record.update(times)
        record["time/update_s"] = t_update
        n_tokens = (
            self.prompts_per_micro * cfg.gradient_accumulation_steps * cfg.num_generations * cfg.max_completion_length
        )
        record["rollout_tokens_per_s"] = n_tokens / max(times["time/rollout_s"], 1e-9)
        record["rollout/approximate"] = float(self.sampler.approximate)
        record = _mean_over_processes(self.accelerator, record)
        record["lr"] = self.scheduler.get_last_lr()[0]
        if self.sampler.approximate:  # which approximation, next to the numbers it produced
            record["rollout/cache"], record["rollout/threshold"] = self.sampler.cache, self.sampler.threshold
        return record

    def _autocast(self):
        if self.cfg.bf16 and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def _sync_head_grads(self) -> None:
        if self.world == 1 or self.head_optimizer is None:
            return
        for p in self.objective.parameters():
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            p.grad.copy_(self.accelerator.reduce(p.grad, reduction="mean"))

    # ------------------------------------------------------------------------------------------
    def save(self, step: int) -> None:
        """``checkpoint-<step>``, written by every process (see :mod:`trafl.utils.checkpoint`)."""
        save_checkpoint(
            self.accelerator,
            self.out,
            step,
            model=self.wrapped,
            tokenizer=self.tokenizer,
            keep_last=self.cfg.save_total_limit,
        )

    def maybe_resume(self) -> None:
        """Restore the checkpoint :func:`open_run_dir` chose (``--resume``). The random state needs no
        restoring: every draw of a step is seeded by ``(seed, step, ...)`` (accelerate restores it anyway).

        Before loading: a checkpoint past ``max_steps`` and a changed field the restored optimizer would
        override are refused; every other changed field is applied, logged and kept in ``resumes.jsonl``.
        Metrics of steps after the checkpoint are dropped (all of them when resuming finds no checkpoint)."""
        if not self.cfg.resume:
            return
        ckpt, main = self.resume_from, self.accelerator.is_main_process
        if ckpt is not None:
            step = checkpoint_step(ckpt)
            check_resume_step(step, self.cfg.max_steps, ckpt)
            changes = resume_changes(self.out / TRAIN_RUN.config, to_dict(self.cfg), TRAIN_RESUME_RULES, step)
            self.step = load_checkpoint(self.accelerator, ckpt)["step"]
            if main:
                record_resume(self.out, self.step, changes)
        if main:
            truncate_metrics(self.out / TRAIN_RUN.metrics, self.step)
        self.accelerator.wait_for_everyone()

    def save_final(self) -> Path:
        """``final/``: the model (or LoRA adapter) in Hugging Face format from the gathered state, the
        tokenizer and the objective's head; with LoRA and ``save_merged``, ``final-merged/`` too (the
        base model reloaded on the main process with the saved adapter merged in)."""
        final = self.out / "final"
        with shared_atomic_directory(self.accelerator, final) as tmp:
            export_pretrained(self.accelerator, self.wrapped, tmp, self.tokenizer)
            if self.accelerator.is_main_process:
                torch.save(self.objective.state_dict(), tmp / "objective_head.pt")
        if self.cfg.use_peft and self.cfg.save_merged and self.accelerator.is_main_process:
            from peft import PeftModel

            from trafl.models import load_pretrained

            base, _ = load_pretrained(self.cfg.model, trust_remote_code=self.cfg.trust_remote_code)
            merged = PeftModel.from_pretrained(base, str(final)).merge_and_unload()
            with atomic_directory(self.out / "final-merged") as tmp:
                merged.save_pretrained(tmp)
                self.tokenizer.save_pretrained(tmp)
        self.accelerator.wait_for_everyone()
        return final

    def train(self) -> TrainResult:
        cfg = self.cfg
        self.maybe_resume()
        if self.accelerator.is_main_process:
            save_config(cfg, self.out / "train_config.yaml")
        loggers = _ExtraLoggers(cfg.report_to, self.out, to_dict(cfg)) if self.accelerator.is_main_process else None
        history: list[dict] = []
        bar = tqdm(
            total=cfg.max_steps,
            initial=self.step,
            desc=f"train[{cfg.method}]",
            dynamic_ncols=True,
            disable=not (self.progress and self.accelerator.is_main_process),
        )
        while self.step < cfg.max_steps:
            record = self.train_step(self.step)
            self.step += 1
            record = {"step": self.step, **record}
            history.append(record)
            if self.accelerator.is_main_process and (self.step % cfg.logging_steps == 0 or self.step == cfg.max_steps):
                append_jsonl(self.out / "metrics.jsonl", record)
                loggers.log(record, self.step)
            bar.update(1)
            bar.set_postfix(reward=f"{record['reward']:.3f}", loss=f"{record['loss']:.4f}")
            if cfg.save_steps and self.step % cfg.save_steps == 0 and self.step < cfg.max_steps:
                self.save(self.step)
        bar.close()
        if loggers:
            loggers.close()
        self.save_final()
        return TrainResult(self.out, self.step, history)


def _clock(device: torch.device) -> float:
    """``time.perf_counter()`` after the device's queued work is done (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def _output_head_names(model: Any) -> list[str]:
    """The output head's module name: LoRA never adapts it, even when its name matches a target
    (LLaDA calls both the blocks' down projection and the LM head ``ff_out``; d1 and ESPO adapt only
    the blocks' seven projections)."""
    get = getattr(model, "get_output_embeddings", None)
    head = get() if callable(get) else None
    return [name for name, module in model.named_modules() if head is not None and module is head]


def _average(dicts: list[dict[str, float]]) -> dict[str, float]:
    keys = {k for d in dicts for k in d}
    return {k: sum(d.get(k, 0.0) for d in dicts) / len(dicts) for k in sorted(keys)}


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


def run_train(cfg: TrainConfig, progress: bool = True, **kwargs: Any) -> TrainResult:
    return RLTrainer(cfg, progress=progress, **kwargs).train()
