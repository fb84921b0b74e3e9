"""Checking a config's ``device`` field against the machine, at validation time.

A device that is named but not there (``cuda`` on a CPU-only torch, ``cuda:3`` with two GPUs,
``mps`` off a Mac) must stop a run before it starts: otherwise accelerate quietly runs on the CPU
while the run's config still records the device that was asked for. Every config with a ``device``
field calls :func:`check_device` from its ``validate()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trafl.errors import ConfigError

if TYPE_CHECKING:
    import torch

#: What a device field accepts, for the error on a string torch does not parse.
EXPECTED = "'cpu', 'cuda', 'cuda:N' or 'mps'"


def check_device(
    value: str | None,
    field: str = "device",
    *,
    allow_auto: bool = True,
    hint: str = "use --device cpu or auto",
) -> None:
    """Raise :class:`ConfigError` unless ``value`` names a device this machine has.

    ``None`` (and ``'auto'`` when ``allow_auto``) leave the choice to the command and always pass.
    ``hint`` ends each message: what the user can write instead.
    """
    if value is None or (allow_auto and value == "auto"):
        return
    import torch

    try:
        device = torch.device(value)
    except (RuntimeError, ValueError, TypeError):
        expected = f"'auto', {EXPECTED}" if allow_auto else EXPECTED
        raise ConfigError(f"config field '{field}': {value!r} is not a torch device (expected {expected})") from None
    problem = _missing(device)
    if problem:
        raise ConfigError(f"config field '{field}': '{value}' was requested but {problem}; {hint}")


def _missing(device: torch.device) -> str | None:
    """Why ``device`` is not usable here, or ``None`` when it is."""
    import torch

    if device.type == "cuda":
        if not torch.cuda.is_available():
            return f"torch.cuda.is_available() is False (this torch: {torch.__version__})"
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            return f"only {count} CUDA device{'s' if count != 1 else ''} {'are' if count != 1 else 'is'} visible"
        return None
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            return f"torch.backends.mps.is_available() is False (this torch: {torch.__version__})"
        return None
    backend = getattr(torch, device.type, None)  # xpu, npu, ...: the backends that say whether they are there
    available = getattr(backend, "is_available", None)
    if device.type != "cpu" and callable(available) and not available():
        return f"torch.{device.type}.is_available() is False (this torch: {torch.__version__})"
    return None
