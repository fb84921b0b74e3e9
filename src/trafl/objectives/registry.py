"""The objective registry: the single source of method names, their options and their defaults.

Adding an objective is one module (an :class:`~trafl.objectives.base.Objective` subclass with its
``Options`` dataclass) plus one entry in ``OBJECTIVES`` below and its name in ``MethodName`` (the
type of ``TrainConfig.method``; checked against ``OBJECTIVES`` on import); ``trafl train --method``,
its flags, config validation and the defaults table in the docs all read these.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Literal, get_args

from trafl.errors import ConfigError, TraflError
from trafl.objectives.base import Objective
from trafl.objectives.diffu_grpo import DiffuGRPO
from trafl.objectives.espo import ESPO
from trafl.objectives.justgrpo import JustGRPO
from trafl.objectives.options import ObjectiveOptions
from trafl.objectives.spg import SPG
from trafl.objectives.trafl import TraFL
from trafl.objectives.wd1 import Wd1
from trafl.utils.config import config_from_dict

OBJECTIVES: dict[str, type[Objective]] = {cls.name: cls for cls in (TraFL, ESPO, JustGRPO, DiffuGRPO, Wd1, SPG)}
#: The registered method names as a type, for config fields that name a method.
MethodName = Literal["trafl", "espo", "justgrpo", "diffu_grpo", "wd1", "spg"]
if tuple(OBJECTIVES) != get_args(MethodName):
    raise TraflError(f"MethodName {get_args(MethodName)} must list the registry's objectives {tuple(OBJECTIVES)}")


def objective_class(name: str) -> type[Objective]:
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown objective {name!r}; expected one of {sorted(OBJECTIVES)}")
    return OBJECTIVES[name]


def option_names(name: str) -> list[str]:
    """The option fields of objective ``name``."""
    return [f.name for f in dataclasses.fields(objective_class(name).Options)]


def all_option_names() -> list[str]:
    """Every option name of any registered objective, in first-seen order."""
    seen: dict[str, None] = {}
    for cls in OBJECTIVES.values():
        seen.update({f.name: None for f in dataclasses.fields(cls.Options)})
    return list(seen)


def make_options(
    name: str, values: dict[str, Any] | None = None, source: str = "objective options"
) -> ObjectiveOptions:
    """Typed, validated options of objective ``name`` from raw ``values`` (the rest take the authors' defaults)."""
    values = dict(values or {})
    own = set(option_names(name))
    foreign = [k for k in values if k not in own]
    if foreign:
        owners = {k: sorted(m for m in OBJECTIVES if k in option_names(m)) for k in foreign}
        detail = "; ".join(f"'{k}' belongs to {', '.join(v) or 'no objective'}" for k, v in owners.items())
        raise ConfigError(
            f"{source}: objective '{name}' has no option(s) {sorted(foreign)} ({detail}); "
            f"its options: {', '.join(sorted(own))}"
        )
    return config_from_dict(objective_class(name).Options, values, source)


def get_objective(
    name: str, *, hidden_size: int | None = None, micro_batch_size: int | None = None, **options: Any
) -> Objective:
    """Build the objective ``name`` with ``options`` (its ``Options`` fields; the rest keep their defaults)."""
    return _build(objective_class(name), make_options(name, options), hidden_size, micro_batch_size)


def objective_from_config(
    cfg: Any, *, hidden_size: int | None = None, micro_batch_size: int | None = None
) -> Objective:
    """Build the objective a :class:`trafl.train.config.TrainConfig` describes (its resolved options)."""
    return _build(objective_class(cfg.method), cfg.objective, hidden_size, micro_batch_size)


def _build(
    cls: type[Objective], options: ObjectiveOptions, hidden_size: int | None, micro_batch_size: int | None
) -> Objective:
    """``cls(options)``, handing ``hidden_size`` only to objectives that take it (a learned logZ head)."""
    kwargs: dict[str, Any] = {"micro_batch_size": micro_batch_size}
    if "hidden_size" in inspect.signature(cls.__init__).parameters:
        kwargs["hidden_size"] = hidden_size
    return cls(options, **kwargs)


def add_objective_arguments(parser: Any) -> None:
    """Every objective option as ``--option-name`` (flat, next to the trainer's fields); the help names
    the methods that have it and their defaults. Values reach ``overrides_from_args`` like any field."""
    group = parser.add_argument_group("objective options (each method's own; defaults are its authors')")
    for opt in all_option_names():
        owners, help_text = [], ""
        for name, cls in OBJECTIVES.items():
            fields = {f.name: f for f in dataclasses.fields(cls.Options)}
            if opt in fields:
                owners.append(f"{name} {fields[opt].default!r}")
                help_text = help_text or fields[opt].metadata.get("help", "")
        extra = {"nargs": "?", "const": "true"} if isinstance(_default(opt), bool) else {}
        group.add_argument(
            "--" + opt.replace("_", "-"),
            dest=f"cfg__{opt}",
            default=None,
            metavar="V",
            help=f"{help_text} [defaults: {'; '.join(owners)}]".replace("%", "%%"),
            **extra,
        )


def _default(opt: str) -> Any:
    for cls in OBJECTIVES.values():
        for f in dataclasses.fields(cls.Options):
            if f.name == opt:
                return f.default
    return None


def defaults_table() -> str:
    """A Markdown table of every method's option defaults and recipe trainer defaults (docs/objectives.md)."""
    names = list(OBJECTIVES)
    rows = ["| option | " + " | ".join(f"`{n}`" for n in names) + " |", "|---|" + "---|" * len(names)]
    for opt in all_option_names():
        cells = []
        for n in names:
            fields = {f.name: f for f in dataclasses.fields(OBJECTIVES[n].Options)}
            cells.append(f"`{fields[opt].default!r}`" if opt in fields else "—")
        rows.append(f"| `{opt}` | " + " | ".join(cells) + " |")
    trainer_keys: dict[str, None] = {}
    for n in names:
        trainer_keys.update(dict.fromkeys(OBJECTIVES[n].train_defaults))
    for key in trainer_keys:
        cells = [
            f"`{OBJECTIVES[n].train_defaults[key]!r}`" if key in OBJECTIVES[n].train_defaults else "(trainer default)"
            for n in names
        ]
        rows.append(f"| `{key}` (trainer) | " + " | ".join(cells) + " |")
    rows.append("| rollouts | " + " | ".join(OBJECTIVES[n].rollout_order or "any sampler" for n in names) + " |")
    return "\n".join(rows)
