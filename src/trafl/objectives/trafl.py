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

from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch

from trafl.errors import ConfigError
from trafl.objectives.base import Objective, clip_range
from trafl.objectives.functional import (
    RewardTransform,
    clip_fraction,
    clipped_importance_weight,
    partition_logz,
    trafl_residual,
    transform_rewards,
    vargrad_logz,
)
from trafl.objectives.group import RolloutGroup
from trafl.objectives.logz import LogZHead, LogZMode, pooled_prompt_features
from trafl.objectives.options import ObjectiveOptions
from trafl.utils.config import option

#: TraFL's off-policy weights: ``none``, or ``clipped`` ``sg(clip(exp(s_theta - s_old)))``.
ImportanceWeight = Literal["none", "clipped"]
IMPORTANCE_WEIGHTS: tuple[ImportanceWeight, ...] = get_args(ImportanceWeight)
#: The default total tilt ``L * beta`` (nats per unit of the transformed reward).
DEFAULT_TILT = 5.0


@dataclass
class TraFLOptions(ObjectiveOptions):
    beta: float | None = option(
        None,
        "Reward temperature per token of the normalised surrogate: the target is pi_ref * exp(L_norm * beta * r~). "
        "Default (null): DEFAULT_TILT / L = 5 / L, a total tilt of 5 nats on the reward whatever the canvas length "
        "(chosen on the CPU study's validation split, docs/study.md).",
        min=0.0,
    )
    reward_transform: RewardTransform = option(
        "group_norm",
        "Reward transform r~: group_norm (r - mean) / (std + eps), loo (leave-one-out), raw.",
    )
    logz: LogZMode = option(
        "vargrad",
        "Log-partition logZ(x): a learned head on the reference's prompt features, the same "
        "on the policy trunk, VarGrad (the detached group mean), or partition (the target's "
        "own normaliser E_ref[exp(L beta r~)], self-normalised importance estimate over the group).",
    )
    importance_weight: ImportanceWeight = option(
        "clipped", "Off-policy weight w: none, or sg(clip(exp(s_theta - s_old)))."
    )
    epsilon: float = option(0.2, "Clip range of the importance weight (lower side).", min=0.0)
    epsilon_high: float | None = option(None, "Upper clip (default: epsilon).", min=0.0)
    logz_width: int = option(256, "Width of the learned logZ head's hidden layers.", min=1)


class TraFL(Objective):
    name = "trafl"
    Options = TraFLOptions
    options: TraFLOptions
    summary = "trajectory balance towards pi_ref exp(beta r~) / Z"
    on_policy_rollouts = False  # the residual vanishes for every y at the target: any full-support sampler serves

    def __init__(self, options: TraFLOptions | None = None, *, hidden_size: int | None = None, **kwargs: Any):
        super().__init__(options, **kwargs)
        o = self.options
        self.beta = o.beta
        self.reward_transform = o.reward_transform
        self.logz_mode = o.logz
        self.importance_weight = o.importance_weight
        self.eps_low, self.eps_high = clip_range(o.epsilon, o.epsilon_high)
        self.logz_head: LogZHead | None = None
        if o.logz in ("learned", "learned_policy"):
            if hidden_size is None:
                raise ConfigError(f"logz='{o.logz}' needs hidden_size (the model's hidden size) for its head")
            self.logz_head = LogZHead(hidden_size, o.logz_width)

    def prepare(
        self,
        group: RolloutGroup,
        *,
        reference: Any = None,
        old_policy: Any = None,
        generator: torch.Generator | None = None,
        num_iterations: int = 1,
    ) -> RolloutGroup:
        group = super().prepare(
            group, reference=reference, old_policy=old_policy, generator=generator, num_iterations=num_iterations
        )
        if self.logz_mode == "learned":
            with torch.no_grad():
                group.logz_features = pooled_prompt_features(reference, group.prompt_ids, group.prompt_attention_mask)
        return group

    def beta_for(self, group: RolloutGroup) -> float:
        """``beta`` per token: the option, or ``DEFAULT_TILT / L`` for this batch's canvas length ``L``."""
        return self.beta if self.beta is not None else DEFAULT_TILT / group.completion.shape[1]

    def log_partition(
        self,
        policy: Any,
        group: RolloutGroup,
        s_theta: torch.Tensor,
        s_ref: torch.Tensor,
        r_tilde: torch.Tensor,
        s_old: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``[N]`` ``logZ(x)`` of each row's prompt."""
        beta = self.beta_for(group)
        if self.logz_mode == "vargrad":
            return vargrad_logz(s_theta, s_ref, r_tilde, beta, group.group_size)
        if self.logz_mode == "partition":
            old = s_theta.detach() if s_old is None else s_old
            return partition_logz(
                s_ref, old, r_tilde, beta, group.lengths(self.length_norm).to(s_theta.dtype), group.group_size
            )
        if self.logz_mode == "learned":
            if group.logz_features is None:
                raise ConfigError("logz='learned' needs prompt features: call prepare(group, reference=...)")
            features = group.logz_features
        else:
            features = pooled_prompt_features(policy, group.prompt_ids, group.prompt_attention_mask)
        if self.logz_head is None:  # __init__ builds the head for both learned modes
            raise ConfigError(f"logz='{self.logz_mode}' has no head: build TraFL with hidden_size")
        return self.logz_head(features).to(s_theta.dtype).repeat_interleave(group.group_size)

    def loss(self, policy: Any, group: RolloutGroup) -> tuple[torch.Tensor, dict[str, float]]:
        lengths = group.lengths(self.length_norm)
        current = self.policy_surrogate(policy, group)
        s_theta = current.value / lengths
        s_ref = self.ref_surrogate(group).value.to(s_theta.dtype) / lengths
        s_old = self.old_surrogate(group, current).value.to(s_theta.dtype) / lengths
        r_tilde = transform_rewards(group.rewards.to(s_theta.dtype), self.reward_transform).reshape(-1)
        logz = self.log_partition(policy, group, s_theta, s_ref, r_tilde, s_old)
        delta = trafl_residual(logz, s_theta, s_ref, r_tilde, self.beta_for(group))
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
