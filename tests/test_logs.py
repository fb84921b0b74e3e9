"""Library progress messages go through ``logging``; the ``trafl`` command shows them on stderr."""

import logging

from trafl.eval.evaluate import log_to_stderr
from trafl.utils.logs import CurrentStderrHandler, configure_cli_logging


def test_cli_logging_shows_library_info_on_the_current_stderr(capsys, monkeypatch):
    monkeypatch.setattr(logging.getLogger("trafl"), "handlers", [])  # restored after the test
    monkeypatch.setattr(logging.getLogger("trafl"), "level", logging.NOTSET)
    configure_cli_logging()
    configure_cli_logging()  # idempotent
    handlers = [h for h in logging.getLogger("trafl").handlers if isinstance(h, CurrentStderrHandler)]
    assert len(handlers) == 1
    log_to_stderr("cell 1/4 done")
    logging.getLogger("trafl.demo").debug("not shown at INFO")
    captured = capsys.readouterr()
    assert captured.err == "cell 1/4 done\n" and captured.out == ""


def test_library_does_not_print_without_a_handler(capsys, monkeypatch):
    logger = logging.getLogger("trafl")
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logger, "level", logging.NOTSET)
    log_to_stderr("progress")
    assert capsys.readouterr() == ("", "")
