"""diffu-GRPO (d1): token-level GRPO on the one-step mean-field surrogate with a k3 KL.

    logp_t      = log p(y_t | x~, all of y masked)   (x~: prompt tokens masked with prob p_mask_prompt)
    rho_t       = exp(logp_theta,t - logp_old,t)
    A(x, y)     = r - mean_G r
    KL_t        = exp(logp_ref,t - logp_theta,t) - (logp_ref,t - logp_theta,t) - 1
    loss        = - mean_{(x,y)} (1 / L_norm) sum_t [ min(rho_t A, clip(rho_t, 1-eps_low, 1+eps_high) A) - beta KL_t ]
"""

from __future__ import annotations

from typing import Any

import torch

from trafl.objectives.base import Objective, clip_range
from trafl.objectives.functional import clip_fraction, k3_kl, mean_centred, ppo_clip
from trafl.objectives.group import RolloutGroup


class DiffuGRPO(Objective):
    name = "diffu_grpo"
    default_surrogate = "onestep"

    def __init__(self, *, beta: float = 0.04, epsilon: float = 0.2, epsilon_high: float | None = None,
                 **surrogate_options: Any):
        super().__init__(**surrogate_options)
        self.needs_reference = beta > 0
        self.beta = beta
        self.eps_low, self.eps_high = clip_range(epsilon, epsilon_high)

    def loss(self, policy: Any, group: RolloutGroup) -> tuple[torch.Tensor, dict[str, float]]:
        logp, log_ratio = self.token_log_ratio(policy, group)
        advantage = mean_centred(group.rewards.to(logp.dtype)).reshape(-1, 1)
        per_token = ppo_clip(log_ratio, advantage, self.eps_low, self.eps_high)
        weights = self.token_weights(group).to(logp.dtype)
        metrics = {"diffu_grpo/clip_fraction": float(clip_fraction(log_ratio, self.eps_low, self.eps_high))}
        if self.beta > 0:
            kl = k3_kl(logp, self.ref_surrogate(group).token_logp.to(logp.dtype))
            per_token = per_token - self.beta * kl
            metrics["kl"] = float(((kl * weights).sum(dim=1)).mean().detach())
        loss = -(per_token * weights).sum(dim=1).mean()
        metrics["loss"] = float(loss.detach())
        return loss, metrics
