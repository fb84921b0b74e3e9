"""The objective registry: ``get_objective(name, **options)`` and the mapping from ``TrainConfig``."""

from __future__ import annotations

import inspect
from typing import Any

from trafl.errors import ConfigError
from trafl.objectives.base import Objective
from trafl.objectives.diffu_grpo import DiffuGRPO
from trafl.objectives.espo import ESPO
from trafl.objectives.justgrpo import JustGRPO
from trafl.objectives.trafl import TraFL

OBJECTIVES: dict[str, type[Objective]] = {cls.name: cls for cls in (TraFL, ESPO, JustGRPO, DiffuGRPO)}


def _accepted(cls: type[Objective]) -> set[str]:
    names: set[str] = set()
    for klass in (cls, Objective):
        names |= {p for p in inspect.signature(klass.__init__).parameters if p not in ("self", "surrogate_options")}
    return names


def get_objective(name: str, **options: Any) -> Objective:
    """Build the objective ``name`` (``trafl``, ``espo``, ``justgrpo``, ``diffu_grpo``)."""
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown objective {name!r}; expected one of {sorted(OBJECTIVES)}")
    cls = OBJECTIVES[name]
    unknown = set(options) - _accepted(cls)
    if unknown:
        raise ConfigError(f"objective '{name}' got unknown options {sorted(unknown)}; accepted: {sorted(_accepted(cls))}")
    return cls(**options)


def objective_from_config(cfg: Any, *, hidden_size: int | None = None, micro_batch_size: int | None = None) -> Objective:
    """Build the objective a :class:`trafl.train.config.TrainConfig` describes."""
    common = dict(
        surrogate=getattr(cfg, "surrogate", None),
        length_norm=cfg.length_norm,
        num_mc=cfg.num_mc,
        antithetic=cfg.antithetic,
        p_mask_prompt=cfg.p_mask_prompt,
        chunk_size=cfg.ar_chunk_size,
        micro_batch_size=micro_batch_size,
        epsilon=cfg.epsilon,
        epsilon_high=cfg.epsilon_high,
        beta=cfg.beta,
    )
    if cfg.method == "trafl":
        common.update(reward_transform=cfg.reward_transform, logz=cfg.logz,
                      importance_weight=cfg.importance_weight,
                      hidden_size=hidden_size if cfg.logz != "vargrad" else None)
    return get_objective(cfg.method, **common)
