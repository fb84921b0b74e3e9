"""Post-training objectives over rollout groups: TraFL and the GRPO-family baselines.

* :class:`TraFL` (``trafl``) — trajectory balance towards ``pi_ref exp(beta r~) / Z``;
* :class:`ESPO` (``espo``) — sequence-level PPO on the ELBO, leave-one-out advantages;
* :class:`JustGRPO` (``justgrpo``) — token GRPO on the exact autoregressive likelihood;
* :class:`DiffuGRPO` (``diffu_grpo``) — d1's token GRPO on the one-step surrogate with k3 KL.
* :class:`Wd1` (``wd1``) — wd1's ratio-free likelihood weighted by group softmaxes of +-advantages.

Each is built by :func:`get_objective`, prepared once per rollout batch with
``objective.prepare(group, reference=..., old_policy=..., generator=...)`` and called as
``loss, metrics = objective(policy, group)``. The maths lives in :mod:`trafl.objectives.functional`.
"""

from trafl.objectives.base import Objective
from trafl.objectives.diffu_grpo import DiffuGRPO
from trafl.objectives.espo import ESPO
from trafl.objectives.functional import (
    REWARD_TRANSFORMS,
    clipped_importance_weight,
    group_normalise,
    k3_kl,
    loo_advantage,
    mean_centred,
    partition_logz,
    ppo_clip,
    trafl_residual,
    transform_rewards,
    vargrad_logz,
)
from trafl.objectives.group import RolloutGroup
from trafl.objectives.justgrpo import JustGRPO
from trafl.objectives.logz import LOGZ_MODES, LogZHead, hidden_size_of, pooled_prompt_features
from trafl.objectives.reference import (
    AdapterDisabledReference,
    FrozenReference,
    is_peft_model,
    make_reference,
    reference_mode,
)
from trafl.objectives.registry import OBJECTIVES, get_objective, objective_from_config
from trafl.objectives.trafl import IMPORTANCE_WEIGHTS, TraFL

__all__ = [
    "IMPORTANCE_WEIGHTS",
    "LOGZ_MODES",
    "OBJECTIVES",
    "REWARD_TRANSFORMS",
    "AdapterDisabledReference",
    "DiffuGRPO",
    "ESPO",
    "FrozenReference",
    "JustGRPO",
    "LogZHead",
    "Objective",
    "RolloutGroup",
    "TraFL",
    "clipped_importance_weight",
    "get_objective",
    "group_normalise",
    "hidden_size_of",
    "is_peft_model",
    "k3_kl",
    "loo_advantage",
    "make_reference",
    "mean_centred",
    "objective_from_config",
    "partition_logz",
    "pooled_prompt_features",
    "ppo_clip",
    "reference_mode",
    "trafl_residual",
    "transform_rewards",
    "vargrad_logz",
]
