"""Tasks: datasets, prompt templates and reward functions behind one registry.

``get_task(name)`` returns a :class:`~trafl.tasks.base.Task`; ``TASKS`` lists the registered names.
A new task is one module defining a ``Task`` subclass plus one line in ``_REGISTRY``.
"""

from __future__ import annotations

import importlib

from trafl.tasks.base import Task

# name -> "module:ClassName"; modules are imported on first use.
_REGISTRY: dict[str, str] = {}


def register(name: str, target: str) -> None:
    _REGISTRY[name] = target


def get_task(name: str, **kwargs) -> Task:
    if name not in _REGISTRY:
        from trafl.errors import ConfigError

        raise ConfigError(f"unknown task '{name}'; valid tasks: {', '.join(sorted(_REGISTRY))}")
    module_name, cls_name = _REGISTRY[name].split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls(**kwargs)


def task_names() -> list[str]:
    return sorted(_REGISTRY)


__all__ = ["Task", "get_task", "register", "task_names"]
