"""The policy update on one step's rollout batch: ``objective.prepare``, then ``num_iterations`` inner updates.

For each micro-batch ``m`` (its first prompt at global position ``p_m`` of step ``k``),
:meth:`PolicyUpdate.prepare` draws the surrogate's masks once from a generator seeded by
``step_seed(seed, k, p_m, 0, "noise")`` (common random numbers for every inner iteration) and caches the
reference's surrogates (and, for ``num_iterations > 1``, the rollout policy's). Then inner iteration
``i`` of :meth:`PolicyUpdate.__call__` computes

    g_i = (1 / M) sum_m grad L(theta; group_m, iteration i)

over the ``M`` micro-batches (gradients synchronised across processes on the last one only; the logZ
head's by hand: it lives outside the wrapped model), clips ``g_i`` to ``max_grad_norm`` and steps the
policy's and the head's optimizers. The scheduler steps once per optimizer step. Dropout (LoRA's) of
micro-batch ``m`` in iteration ``i`` is seeded by ``step_seed(seed, k, p_m, i, "dropout")``: the same
draw on any process count.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from trafl.objectives import RolloutGroup
from trafl.train.policy import DenoiserView, base_model
from trafl.train.rollout import clock
from trafl.utils.distributed import configure_deepspeed, micro_batch
from trafl.utils.schedule import make_scheduler
from trafl.utils.seed import step_seed


def average(dicts: list[dict[str, float]]) -> dict[str, float]:
    """The mean of each key over ``dicts`` (a key missing from one counts as 0 there)."""
    keys = {k for d in dicts for k in d}
    return {k: sum(d.get(k, 0.0) for d in dicts) / len(dicts) for k in sorted(keys)}


@dataclass
class PolicyUpdate:
    """Prepares micro-batches and runs the inner updates. ``policy`` is the callable the objective
    differentiates (the wrapped model), ``model`` the unwrapped one (its mode and parameters), ``wrapped``
    the prepared model (gradient synchronisation), ``old_policy`` the rollout policy's view."""

    accelerator: Any
    model: torch.nn.Module
    wrapped: Any
    policy: Any
    old_policy: Any
    objective: Any
    reference: Any
    optimizer: Any
    head_optimizer: Any
    scheduler: Any
    num_iterations: int
    max_grad_norm: float
    bf16: bool
    seed: int

    @classmethod
    def build(
        cls, cfg: Any, accelerator: Any, model: Any, objective: Any, reference: Any, old_policy: Any
    ) -> PolicyUpdate:
        """The update of ``cfg`` (a :class:`~trafl.train.config.TrainConfig`): AdamW on the policy's trainable
        parameters, the logZ head's own AdamW (its own learning rate ``logz_lr``; none without a head), the
        scheduler, and the model and optimizer prepared by ``accelerator``, which also saves and restores
        the scheduler, the objective and the head's optimizer with every checkpoint (in this order)."""
        betas = (cfg.adam_beta1, cfg.adam_beta2)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, betas=betas)
        head = list(objective.parameters())
        head_optimizer = torch.optim.AdamW(head, lr=cfg.logz_lr, betas=betas) if head else None
        scheduler = make_scheduler(optimizer, cfg.lr_scheduler_type, cfg.warmup_steps, cfg.max_steps)
        configure_deepspeed(accelerator, cfg.per_device_train_batch_size, cfg.max_grad_norm)
        wrapped, optimizer = accelerator.prepare(model, optimizer)
        # not prepared: accelerate would step the scheduler once per process
        accelerator.register_for_checkpointing(scheduler, objective, *([head_optimizer] if head else []))
        return cls(
            accelerator=accelerator,
            model=model,
            wrapped=wrapped,
            policy=DenoiserView(wrapped, base_model(model)),
            old_policy=old_policy,
            objective=objective,
            reference=reference,
            optimizer=optimizer,
            head_optimizer=head_optimizer,
            scheduler=scheduler,
            num_iterations=cfg.num_iterations,
            max_grad_norm=cfg.max_grad_norm,
            bf16=cfg.bf16,
            seed=cfg.seed,
        )

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    def prepare(self, group: RolloutGroup, step: int, position: int) -> RolloutGroup:
        """``objective.prepare`` of the micro-batch whose first prompt sits at global ``position``, in eval mode."""
        gen = torch.Generator(device=self.device).manual_seed(step_seed(self.seed, step, position, 0, "noise"))
        old = self.old_policy if self.num_iterations > 1 else None
        self.model.eval()
        group = self.objective.prepare(
            group, reference=self.reference, old_policy=old, generator=gen, num_iterations=self.num_iterations
        )
        self.model.train()
        return group

    def __call__(self, groups: list[RolloutGroup], step: int, positions: list[int]) -> dict[str, float]:
        """The ``num_iterations`` inner updates on the prepared ``groups`` (first prompts at ``positions``)
        and the scheduler's step; returns the objective's metrics averaged over every micro-batch and
        iteration, ``grad_norm`` (of the last iteration, before clipping) and ``time/update_s``."""
        t0 = clock(self.device)
        metrics: list[dict[str, float]] = []
        for iteration in range(self.num_iterations):
            metrics += self._accumulate(groups, step, positions, iteration)
            grad_norm = self._clip()
            self.optimizer.step()
            if self.head_optimizer is not None:
                self.head_optimizer.step()
        self.scheduler.step()
        return {**average(metrics), "grad_norm": float(grad_norm), "time/update_s": clock(self.device) - t0}

    def _accumulate(
        self, groups: list[RolloutGroup], step: int, positions: list[int], iteration: int
    ) -> list[dict[str, float]]:
        """Zero the gradients, then add each micro-batch's ``grad L / M``; the head's are averaged over processes."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.head_optimizer is not None:
            self.head_optimizer.zero_grad(set_to_none=True)
        metrics = []
        for m, (group, position) in enumerate(zip(groups, positions)):
            torch.manual_seed(step_seed(self.seed, step, position, iteration, "dropout"))
            last = m == len(groups) - 1
            chunked = self.objective.loss_chunks(self.policy, group.for_iteration(iteration))
            if chunked is not None:
                metrics.append(self._backward_per_chunk(chunked, len(groups), last, step))
                continue
            with micro_batch(self.accelerator, self.wrapped, last), self._autocast():
                loss, values = self.objective(self.policy, group.for_iteration(iteration))
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"non-finite loss {float(loss)} at step {step}; metrics {values}")
                self.accelerator.backward(loss / len(groups))
            metrics.append(values)
        if self.accelerator.num_processes > 1 and self.head_optimizer is not None:
            for p in self.objective.parameters():
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                p.grad.copy_(self.accelerator.reduce(p.grad, reduction="mean"))
        return metrics

    def _backward_per_chunk(self, chunked: Any, num_micro: int, last_micro: bool, step: int) -> dict[str, float]:
        """One micro-batch whose loss comes in pieces (``objective.loss_chunks``): each piece's forward and
        backward (``/ num_micro``) in turn; returns the objective's metrics (:meth:`ChunkedLoss.finish`).

        Gradients are synchronised on the last piece of the last micro-batch only, except under FSDP, where
        every piece reduce-scatters its gradients: FSDP2 accumulates skipped reductions in *unsharded*
        gradients (the whole model's, per process), which is what sharding is there to avoid. (DeepSpeed
        reduces its partitions at every backward and steps only on the last piece.)"""
        from accelerate.utils import DistributedType

        every = self.accelerator.distributed_type == DistributedType.FSDP
        for j, piece in enumerate(chunked):
            sync = every or (last_micro and j == len(chunked) - 1)
            with micro_batch(self.accelerator, self.wrapped, sync), self._autocast():
                part = piece()
                if not torch.isfinite(part):
                    raise FloatingPointError(f"non-finite loss piece {float(part)} (chunk {j}) at step {step}")
                self.accelerator.backward(part / num_micro)
        loss, values = chunked.finish()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {float(loss)} at step {step}; metrics {values}")
        return values

    def _clip(self) -> torch.Tensor:
        """Clip the policy's and the head's gradients to ``max_grad_norm`` (0: no clipping, norm NaN)."""
        if not self.max_grad_norm:
            return torch.tensor(float("nan"))
        params = [p for p in self.model.parameters() if p.requires_grad]
        grad_norm = self.accelerator.clip_grad_norm_(params, self.max_grad_norm)
        if self.head_optimizer is not None:
            torch.nn.utils.clip_grad_norm_(self.objective.parameters(), self.max_grad_norm)
        return grad_norm

    def _autocast(self):
        if self.bf16 and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()
