"""Where library messages go: trafl's modules log progress through ``logging`` (one logger per
module, all under ``trafl``) and never print; a command-line entry point calls
:func:`configure_cli_logging` so that its user sees them on stderr."""

from __future__ import annotations

import logging
import os
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


def tame_library_output() -> None:
    """Turn off transformers' per-file progress bars ("Loading weights", "Writing model shards"), which
    every checkpoint save and model load of a run would repeat between trafl's own progress lines;
    warnings stay, and so do huggingface_hub's download bars (a long download deserves one). Every
    ``trafl`` command calls this; ``--quiet`` goes further (:func:`quiet_library_output`)."""
    import transformers.utils.logging as transformers_logging

    transformers_logging.disable_progress_bar()


def quiet_library_output() -> None:
    """Silence the progress bars and warnings of transformers, huggingface_hub and datasets (``--quiet``).

    Those libraries print their own bars ("Loading weights", "Writing model shards", downloads) and
    warnings on stderr whatever trafl's own progress settings say; under ``--quiet`` only errors are
    left. datasets is imported by few commands and costs a second to import: when it is not loaded
    yet, its environment switch is set instead, which it reads when it is imported."""
    import huggingface_hub.utils
    import transformers.utils.logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    huggingface_hub.utils.disable_progress_bars()
    datasets = sys.modules.get("datasets")
    if datasets is None:
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("DATASETS_VERBOSITY", "error")
        return
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
