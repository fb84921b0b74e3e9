"""What every objective shares: the surrogate, the rollout-time caches and the common call.

Use::

    objective = get_objective("trafl", beta=0.05, hidden_size=4096)
    group = objective.prepare(group, reference=ref, old_policy=policy if mu > 1 else None,
                              generator=g)            # once per rollout batch, no gradients
    for _ in range(mu):
        loss, metrics = objective(policy, group)       # differentiable in policy (and the head)
        loss.backward(); ...

``prepare`` draws the surrogate's randomness once, so the policy, the old policy and the reference
are evaluated on the same masks (common random numbers) at every inner iteration.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar

import torch
from torch import nn

from trafl.errors import ConfigError
from trafl.likelihood import LENGTH_NORMS, Surrogate, SurrogateOutput, loss_positions
from trafl.objectives.group import RolloutGroup


def clip_range(epsilon: float, epsilon_high: float | None) -> tuple[float, float]:
    """``(eps_low, eps_high)`` of a clipped ratio; ``epsilon_high`` defaults to ``epsilon``."""
    return epsilon, (epsilon if epsilon_high is None else epsilon_high)


class Objective(nn.Module):
    """Base class: holds the surrogate and the length normalisation; subclasses define ``loss``."""

    name: ClassVar[str] = ""
    default_surrogate: ClassVar[str] = "elbo"
    needs_reference: ClassVar[bool] = True

    def __init__(self, *, surrogate: str | None = None, length_norm: str = "canvas", num_mc: int = 2,
                 antithetic: bool = True, p_mask_prompt: float = 0.15, chunk_size: int = 64,
                 micro_batch_size: int | None = None):
        super().__init__()
        if length_norm not in LENGTH_NORMS:
            raise ConfigError(f"length_norm must be one of {LENGTH_NORMS}, got {length_norm!r}")
        self.length_norm = length_norm
        self.surrogate = Surrogate(surrogate or self.default_surrogate, num_mc=num_mc, antithetic=antithetic,
                                   p_mask_prompt=p_mask_prompt, chunk_size=chunk_size,
                                   micro_batch_size=micro_batch_size)

    # ---- rollout time -------------------------------------------------------------------------
    def prepare(self, group: RolloutGroup, *, reference: Any = None, old_policy: Any = None,
                generator: torch.Generator | None = None) -> RolloutGroup:
        """Draw the surrogate noise and cache the old-policy and reference surrogates (no grad)."""
        batch = group.batch
        noise = self.surrogate.draw(batch, generator)
        with torch.no_grad():
            old = None if old_policy is None else self.surrogate.evaluate(old_policy, batch, noise, group.commit_step)
            ref = None
            if self.needs_reference:
                if reference is None:
                    raise ConfigError(f"objective '{self.name}' needs a reference model")
                ref = self.surrogate.evaluate(reference, batch, noise, group.commit_step)
        return replace(group, noise=noise, old=old, ref=ref)

    # ---- update time --------------------------------------------------------------------------
    def policy_surrogate(self, policy: Any, group: RolloutGroup) -> SurrogateOutput:
        return self.surrogate.evaluate(policy, group.batch, group.noise, group.commit_step)

    def old_surrogate(self, group: RolloutGroup, current: SurrogateOutput) -> SurrogateOutput:
        """The rollout policy's surrogate; with one inner iteration it is the current one, detached."""
        return group.old if group.old is not None else current.detach()

    def token_log_ratio(self, policy: Any, group: RolloutGroup) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log pi_theta,t, log pi_theta,t - log pi_old,t)``, both ``[N, L]``, for token-level objectives."""
        current = self.policy_surrogate(policy, group)
        logp = current.token_logp
        return logp, logp - self.old_surrogate(group, current).token_logp.to(logp.dtype)

    def ref_surrogate(self, group: RolloutGroup) -> SurrogateOutput:
        if group.ref is None:
            raise ConfigError(f"objective '{self.name}' needs reference surrogates: call prepare(group, reference=...)")
        return group.ref

    def token_weights(self, group: RolloutGroup) -> torch.Tensor:
        """``[N, L]`` ``1[t counts] / L_norm`` for token-level objectives."""
        counts = loss_positions(group.completion, group.eos_token_id, self.length_norm).float()
        return counts / group.lengths(self.length_norm).unsqueeze(1)

    def loss(self, policy: Any, group: RolloutGroup) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def forward(self, policy: Any, group: RolloutGroup) -> tuple[torch.Tensor, dict[str, float]]:
        if group.noise is None and self.surrogate.name in ("elbo", "onestep"):
            raise ConfigError(f"objective '{self.name}': call prepare(group, ...) before computing the loss")
        return self.loss(policy, group)
