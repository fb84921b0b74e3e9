"""Tasks: datasets, prompt templates and reward functions behind one registry.

``get_task(name, **options)`` returns a :class:`~trafl.tasks.base.Task`; ``task_names()`` lists the
registered names. A new task is one module defining a ``Task`` subclass plus one line in
``_REGISTRY``. A task's options are its constructor's typed keyword arguments (:func:`task_options`);
:func:`check_task_options` validates a config's ``task_options`` against them.
"""

from __future__ import annotations

import importlib
import inspect
import typing
from typing import Any

from trafl.tasks.base import Task

# name -> "module:ClassName"; modules are imported on first use.
_REGISTRY: dict[str, str] = {
    "gsm8k": "trafl.tasks.math_tasks:GSM8K",
    "math": "trafl.tasks.math_tasks:MATHTrain",
    "math500": "trafl.tasks.math_tasks:MATH500",
    "minerva_math": "trafl.tasks.math_tasks:MinervaMath",
    "humaneval": "trafl.tasks.code_tasks:HumanEval",
    "mbpp": "trafl.tasks.code_tasks:MBPP",
    "livecodebench": "trafl.tasks.code_tasks:LiveCodeBench",
    "kodcode": "trafl.tasks.code_tasks:CodeTraining",
    "acecode": "trafl.tasks.code_tasks:AceCode",
    "countdown": "trafl.tasks.synthetic.countdown:Countdown",
    "subset_sum": "trafl.tasks.synthetic.subset_sum:SubsetSum",
    "decoy_rule": "trafl.tasks.synthetic.decoy_rule:DecoyRule",
    "count_range": "trafl.tasks.synthetic.count_range:CountRange",
}


def register(name: str, target: str) -> None:
    _REGISTRY[name] = target


def task_class(name: str) -> type[Task]:
    """The class of the task registered as ``name`` (or ``"package.module:ClassName"``)."""
    from trafl.errors import ConfigError

    if name in _REGISTRY:
        target = _REGISTRY[name]
    elif ":" in name:
        target = name
    else:
        raise ConfigError(
            f"unknown task '{name}'; valid tasks: {', '.join(sorted(_REGISTRY))} "
            "(or 'package.module:ClassName' for a task of your own)"
        )
    module_name, cls_name = target.split(":", 1)
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"task '{name}': cannot import {target} ({exc})") from exc
    return cls


def get_task(name: str, **kwargs) -> Task:
    """The task registered as ``name``; ``"package.module:ClassName"`` imports a user's own task."""
    from trafl.errors import ConfigError

    cls = task_class(name)
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"task '{name}': bad options {sorted(kwargs)} ({exc})") from exc


def task_names() -> list[str]:
    return sorted(_REGISTRY)


def task_options(name: str) -> dict[str, tuple[Any, Any]]:
    """``option -> (type, default)`` of task ``name``: the keyword parameters of its constructor and of
    the base constructors it forwards ``**kwargs`` to (in method-resolution order)."""
    found: dict[str, tuple[Any, Any]] = {}
    for klass in task_class(name).__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        hints = typing.get_type_hints(init)
        params = list(inspect.signature(init).parameters.values())[1:]
        for p in params:
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in found:
                found[p.name] = (hints.get(p.name, Any), p.default)
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return found


def check_task_options(name: str, options: dict[str, Any], field: str = "task_options") -> dict[str, Any]:
    """``options`` converted to the types of task ``name``'s options; an unknown option or a bad value is
    a ``ConfigError`` naming ``<field>.<option>``, the task and what it accepts."""
    from trafl.errors import ConfigError
    from trafl.utils.config import _coerce, _describe

    accepted = task_options(name)
    listing = ", ".join(f"{k} ({_describe(tp)}, default {d!r})" for k, (tp, d) in accepted.items()) or "none"
    out = {}
    for key, value in options.items():
        if key not in accepted:
            raise ConfigError(
                f"config field '{field}.{key}': task '{name}' has no option '{key}'; its options: {listing}"
            )
        try:
            out[key] = _coerce(value, accepted[key][0], f"{field}.{key}")
        except ConfigError as exc:
            raise ConfigError(f"{exc} (task '{name}'; its options: {listing})") from exc
    return out


__all__ = ["Task", "check_task_options", "get_task", "register", "task_class", "task_names", "task_options"]
