"""TraFL (Trajectory Flow baLancing): trajectory balance towards a reward-tilted reference.

Target:  pi*(y|x) = pi_ref(y|x) exp(beta_eff r~(x,y)) / Z(x).

    delta(x, y) = logZ_phi(x) + s_theta(y|x) - s_ref(y|x) - beta * r~(x, y)
    loss        = mean_{(x,y)} w(x, y) * delta(x, y)^2

``s = surrogate / L_norm`` (with ``length_norm="canvas"``, ``beta_eff = L * beta``: ``beta`` is per
token). ``r~`` is the transformed reward (``group_norm``, ``loo``, ``raw``); ``w`` is ``1``
(``importance_weight="none"``) or ``sg(clip(exp(s_theta - s_old), 1 - eps, 1 + eps_high))``
(``clipped``); ``logZ`` comes from :mod:`trafl.objectives.logz`. ``delta = 0`` for every ``y`` means
``exp(s_theta) / exp(s_ref) = exp(beta r~) / Z``: with an exact surrogate (``log pi``) that is
``pi_theta = pi*``.
"""

from __future__ import annotations

from typing import Any

import torch

from trafl.errors import ConfigError
from trafl.objectives.base import Objective, clip_range
from trafl.objectives.functional import (
    REWARD_TRANSFORMS,
    clip_fraction,
    clipped_importance_weight,
    transform_rewards,
    trafl_residual,
    vargrad_logz,
)
from trafl.objectives.group import RolloutGroup
from trafl.objectives.logz import LOGZ_MODES, LogZHead, pooled_prompt_features

IMPORTANCE_WEIGHTS = ("none", "clipped")


class TraFL(Objective):
    name = "trafl"
    default_surrogate = "elbo"

    def __init__(self, *, beta: float = 0.05, reward_transform: str = "group_norm", logz: str = "learned",
                 importance_weight: str = "clipped", epsilon: float = 0.2, epsilon_high: float | None = None,
                 hidden_size: int | None = None, logz_width: int = 256, **surrogate_options: Any):
        super().__init__(**surrogate_options)
        if reward_transform not in REWARD_TRANSFORMS:
            raise ConfigError(f"reward_transform must be one of {REWARD_TRANSFORMS}, got {reward_transform!r}")
        if logz not in LOGZ_MODES:
            raise ConfigError(f"logz must be one of {LOGZ_MODES}, got {logz!r}")
        if importance_weight not in IMPORTANCE_WEIGHTS:
            raise ConfigError(f"importance_weight must be one of {IMPORTANCE_WEIGHTS}, got {importance_weight!r}")
        self.beta = beta
        self.reward_transform = reward_transform
        self.logz_mode = logz
        self.importance_weight = importance_weight
        self.eps_low, self.eps_high = clip_range(epsilon, epsilon_high)
        self.logz_head: LogZHead | None = None
        if logz != "vargrad":
            if hidden_size is None:
                raise ConfigError(f"logz='{logz}' needs hidden_size (the model's hidden size) for its head")
            self.logz_head = LogZHead(hidden_size, logz_width)

    def prepare(self, group: RolloutGroup, *, reference: Any = None, old_policy: Any = None,
                generator: torch.Generator | None = None) -> RolloutGroup:
        group = super().prepare(group, reference=reference, old_policy=old_policy, generator=generator)
        if self.logz_mode == "learned":
            with torch.no_grad():
                group.logz_features = pooled_prompt_features(reference, group.prompt_ids, group.prompt_attention_mask)
        return group

    def log_partition(self, policy: Any, group: RolloutGroup, s_theta: torch.Tensor, s_ref: torch.Tensor,
                      r_tilde: torch.Tensor) -> torch.Tensor:
        """``[N]`` ``logZ(x)`` of each row's prompt."""
        if self.logz_mode == "vargrad":
            return vargrad_logz(s_theta, s_ref, r_tilde, self.beta, group.group_size)
        if self.logz_mode == "learned":
            if group.logz_features is None:
                raise ConfigError("logz='learned' needs prompt features: call prepare(group, reference=...)")
            features = group.logz_features
        else:
            features = pooled_prompt_features(policy, group.prompt_ids, group.prompt_attention_mask)
        return self.logz_head(features).to(s_theta.dtype).repeat_interleave(group.group_size)

    def loss(self, policy: Any, group: RolloutGroup) -> tuple[torch.Tensor, dict[str, float]]:
        lengths = group.lengths(self.length_norm)
        current = self.policy_surrogate(policy, group)
        s_theta = current.value / lengths
        s_ref = self.ref_surrogate(group).value.to(s_theta.dtype) / lengths
        s_old = self.old_surrogate(group, current).value.to(s_theta.dtype) / lengths
        r_tilde = transform_rewards(group.rewards.to(s_theta.dtype), self.reward_transform).reshape(-1)
        logz = self.log_partition(policy, group, s_theta, s_ref, r_tilde)
        delta = trafl_residual(logz, s_theta, s_ref, r_tilde, self.beta)
        if self.importance_weight == "clipped":
            w = clipped_importance_weight(s_theta - s_old, self.eps_low, self.eps_high)
        else:
            w = torch.ones_like(delta)
        loss = (w * delta.pow(2)).mean()
        metrics = {
            "loss": float(loss.detach()),
            "trafl/delta_mean": float(delta.detach().mean()),
            "trafl/delta_abs": float(delta.detach().abs().mean()),
            "trafl/logz": float(logz.detach().mean()),
            "trafl/log_ratio_ref": float((s_theta - s_ref).detach().mean()),
            "trafl/weight_mean": float(w.mean()),
            "trafl/clip_fraction": float(clip_fraction(s_theta - s_old, self.eps_low, self.eps_high)),
        }
        return loss, metrics
