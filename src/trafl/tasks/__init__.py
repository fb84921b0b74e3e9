"""Tasks: datasets, prompt templates and reward functions behind one registry.

``get_task(name)`` returns a :class:`~trafl.tasks.base.Task`; ``TASKS`` lists the registered names.
A new task is one module defining a ``Task`` subclass plus one line in ``_REGISTRY``.
"""

from __future__ import annotations

import importlib

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


def get_task(name: str, **kwargs) -> Task:
    """The task registered as ``name``; ``"package.module:ClassName"`` imports a user's own task."""
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
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"task '{name}': bad options {sorted(kwargs)} ({exc})") from exc


def task_names() -> list[str]:
    return sorted(_REGISTRY)


__all__ = ["Task", "get_task", "register", "task_names"]
