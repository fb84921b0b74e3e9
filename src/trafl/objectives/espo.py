"""ESPO: sequence-level PPO on the ELBO.

    rho(x, y) = exp( (ELBO_theta(y|x) - ELBO_old(y|x)) / L_norm )
    A(x, y)   = r(x, y) - mean_{y' != y} r(x, y')                       (leave-one-out)
    loss      = - mean_{(x,y)} min(rho A, clip(rho, 1 - eps_low, 1 + eps_high) A)
                + beta * mean_{(x,y)} 0.5 * (ELBO_theta(y|x) - ELBO_ref(y|x))^2 / L_norm
"""

from __future__ import annotations

from typing import Any

import torch

from trafl.objectives.base import Objective, clip_range
from trafl.objectives.functional import clip_fraction, loo_advantage, ppo_clip
from trafl.objectives.group import RolloutGroup


class ESPO(Objective):
    name = "espo"
    default_surrogate = "elbo"

    def __init__(self, *, beta: float = 0.0, epsilon: float = 0.2, epsilon_high: float | None = None,
                 **surrogate_options: Any):
        super().__init__(**surrogate_options)
        self.needs_reference = beta > 0
        self.beta = beta
        self.eps_low, self.eps_high = clip_range(epsilon, epsilon_high)

    def loss(self, policy: Any, group: RolloutGroup) -> tuple[torch.Tensor, dict[str, float]]:
        lengths = group.lengths(self.length_norm)
        current = self.policy_surrogate(policy, group)
        elbo_theta = current.value
        log_ratio = (elbo_theta - self.old_surrogate(group, current).value.to(elbo_theta.dtype)) / lengths
        advantage = loo_advantage(group.rewards.to(elbo_theta.dtype)).reshape(-1)
        policy_term = ppo_clip(log_ratio, advantage, self.eps_low, self.eps_high)
        loss = -policy_term.mean()
        metrics = {"espo/clip_fraction": float(clip_fraction(log_ratio, self.eps_low, self.eps_high))}
        if self.beta > 0:
            diff = elbo_theta - self.ref_surrogate(group).value.to(elbo_theta.dtype)
            kl = (0.5 * diff.pow(2) / lengths).mean()
            loss = loss + self.beta * kl
            metrics["kl"] = float(kl.detach())
        metrics["loss"] = float(loss.detach())
        return loss, metrics
