"""Where library messages go: trafl's modules log progress through ``logging`` (one logger per
module, all under ``trafl``) and never print; a command-line entry point calls
:func:`configure_cli_logging` so that its user sees them on stderr."""

from __future__ import annotations

import logging
import sys


class CurrentStderrHandler(logging.StreamHandler):
    """Writes each record to whatever ``sys.stderr`` is at that moment (it follows redirections,
    e.g. a test's captured stderr, instead of keeping the stream it was created with)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure_cli_logging(level: int = logging.INFO) -> None:
    """Show messages of ``level`` and above from the ``trafl`` loggers on stderr, as the bare
    message (idempotent: a second call does not add a second handler)."""
    logger = logging.getLogger("trafl")
    if not any(isinstance(h, CurrentStderrHandler) for h in logger.handlers):
        handler = CurrentStderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)
