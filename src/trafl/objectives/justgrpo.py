"""JustGRPO: token-level GRPO on the exact left-to-right (autoregressive) likelihood.

    rho_t(x, y) = exp( log p_theta(y_t | x, y_<t) - log p_old(y_t | x, y_<t) )
    A(x, y)     = (r - mean_G r) / (std_G r + 1e-4)
    loss        = - mean_{(x,y)} (1 / L_norm) sum_t min(rho_t A, clip(rho_t, 1 - eps_low, 1 + eps_high) A)

No KL term and no reference model.
"""

from __future__ import annotations

from typing import Any

import torch

from trafl.objectives.base import Objective, clip_range
from trafl.objectives.functional import clip_fraction, group_normalise, ppo_clip
from trafl.objectives.group import RolloutGroup


class JustGRPO(Objective):
    name = "justgrpo"
    default_surrogate = "autoregressive"
    needs_reference = False

    def __init__(self, *, epsilon: float = 0.2, epsilon_high: float | None = None, beta: float = 0.0,
                 **surrogate_options: Any):
        super().__init__(**surrogate_options)
        self.eps_low, self.eps_high = clip_range(epsilon, epsilon_high)

    def loss(self, policy: Any, group: RolloutGroup) -> tuple[torch.Tensor, dict[str, float]]:
        logp, log_ratio = self.token_log_ratio(policy, group)
        advantage = group_normalise(group.rewards.to(logp.dtype)).reshape(-1, 1)
        per_token = ppo_clip(log_ratio, advantage, self.eps_low, self.eps_high)
        loss = -(per_token * self.token_weights(group).to(logp.dtype)).sum(dim=1).mean()
        return loss, {"loss": float(loss.detach()),
                      "justgrpo/clip_fraction": float(clip_fraction(log_ratio, self.eps_low, self.eps_high))}
