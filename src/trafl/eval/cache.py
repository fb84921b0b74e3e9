"""The generation cache: one JSONL file per (model, task, temperature, length) cell.

Line 1 is ``{"meta": {...}}``, what produced the cell; every further line is one finished problem
``{"problem_id", "row_sha256", "completions", "correct", "answer_keys"}``, plus ``"commit_steps"``
(``[n][L]`` ints) and ``"content_lengths"`` (``[n]``) when the generator returns denoising paths
(:class:`~trafl.eval.generation.PathGenerator`), appended (and fsynced) as soon as the problem is
generated and graded. A run that is killed loses at most the problem being written (a torn last line
is ignored on reading) and, rerun, skips every problem already in the file.

The meta's fields fall in three groups, because a mismatch means different things:

* the *content* the samples came from, :data:`CONTENT_FIELDS` (the fingerprints of the model's
  weights and tokenizer, :mod:`trafl.eval.fingerprint`). These change outside the command (a model
  retrained into the same folder), so a mismatch means the cached samples are stale: the cell is
  restarted (rewritten atomically with the new meta) and regenerated, with one warning naming what
  changed. A cell file without them (written before content keys) is regenerated the same way.
* :data:`INFO_FIELDS` (the model's path): recorded for the reader, not compared, so the same bytes
  moved to another folder still resume.
* everything else, the *settings* of the command (task, temperature, length, n, seed, sampler): a
  mismatch is refused with a :class:`~trafl.errors.ConfigError` naming the fields, rather than
  overwriting samples that are valid for the settings they were drawn with.

Per problem, ``row_sha256`` (:func:`~trafl.eval.fingerprint.row_fingerprint`) keys the record on the
problem's content: :meth:`CellCache.drop_stale` removes the records of problems whose row changed, so
they are regenerated and never mixed with the new rows. Records without ``commit_steps`` (written by
a generator without paths) still load; their problems just have no path metrics.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from trafl.errors import ConfigError, DataError
from trafl.utils.io import append_jsonl, atomic_write_text, read_jsonl

logger = logging.getLogger(__name__)

#: Meta fields naming the content the samples came from -> how messages name them. A mismatch
#: regenerates the cell.
CONTENT_FIELDS: dict[str, str] = {"model_fingerprint": "model weights", "tokenizer_fingerprint": "tokenizer"}
#: Meta fields recorded but not compared.
INFO_FIELDS: frozenset[str] = frozenset({"model_path"})


@dataclass(frozen=True)
class Cell:
    """One evaluation setting: a model (by label), a task, a temperature and a completion length."""

    model: str
    task: str
    temperature: float
    gen_length: int

    def slug(self) -> str:
        safe = lambda s: re.sub(r"[^A-Za-z0-9_.-]+", "_", s)  # noqa: E731
        return f"{safe(self.model)}__{safe(self.task)}__T{self.temperature:g}__L{self.gen_length}"


def cache_path(out_dir: str | Path, cell: Cell) -> Path:
    return Path(out_dir) / "generations" / f"{cell.slug()}.jsonl"


def drop_torn_tail(path: Path) -> None:
    """Cut a final line left without its newline by a killed writer, so appends start clean."""
    if not path.exists():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as fh:
            fh.truncate(data.rfind(b"\n") + 1)


def check_settings(path: Path, stored: dict, meta: dict) -> None:
    """Raise :class:`ConfigError` naming every setting (a meta field outside :data:`CONTENT_FIELDS`
    and :data:`INFO_FIELDS`) whose cached value differs from this run's."""
    ignored = set(CONTENT_FIELDS) | INFO_FIELDS
    keys = sorted((set(stored) | set(meta)) - ignored)
    diff = [k for k in keys if stored.get(k) != meta.get(k)]
    if diff:
        details = "; ".join(f"{k}: cached {stored.get(k)!r} vs now {meta.get(k)!r}" for k in diff)
        raise ConfigError(
            f"{path} was generated with different settings ({details}); "
            "use a fresh --out directory or delete this file to regenerate"
        )


def stale_content(path: Path, stored: dict, meta: dict) -> str | None:
    """Why the cached samples no longer describe this run's model (``None`` when they do): the
    message of the warning that announces the regeneration."""
    missing = [name for key, name in CONTENT_FIELDS.items() if key in meta and key not in stored]
    if missing:
        return f"{path} records no fingerprint of the {' and '.join(missing)} (written by an older trafl): regenerating"
    changed = [name for key, name in CONTENT_FIELDS.items() if stored.get(key) != meta.get(key)]
    if changed:
        return f"{' and '.join(changed)} changed since {path} was generated: regenerating"
    return None


def _jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


class CellCache:
    """Finished problems of one cell, read from and appended to its JSONL file.

    Opening it applies the rules of the module docstring: settings that differ are refused, content
    that differs restarts the file, anything else resumes.
    """

    def __init__(self, path: str | Path, meta: dict) -> None:
        self.path = Path(path)
        self.meta = meta
        self.records: dict[str, dict] = {}
        drop_torn_tail(self.path)
        lines = read_jsonl(self.path)
        if not lines:  # a new cell, or a file holding only a torn meta line
            self._rewrite()
            return
        stored = lines[0].get("meta")
        if not isinstance(stored, dict):
            raise DataError(f"{self.path}: first line must be the cell's {{'meta': ...}} record")
        check_settings(self.path, stored, meta)
        reason = stale_content(self.path, stored, meta)
        if reason is not None:
            logger.warning(reason)
            self._rewrite()
            return
        self.meta = stored  # informational fields stay those of the run that generated the samples
        for rec in lines[1:]:
            self.records[str(rec["problem_id"])] = rec

    def _rewrite(self) -> None:
        """Replace the file, in one atomic rename, by the meta line and the records kept."""
        atomic_write_text(self.path, _jsonl([{"meta": self.meta}, *self.records.values()]))

    def drop_stale(self, row_hashes: Mapping[str, str]) -> list[str]:
        """Forget (and remove from the file) the records of problems whose content changed:
        ``row_hashes`` maps each problem id of this run to its row's fingerprint, and a cached record
        of that id with another ``row_sha256`` (or none) is stale. Returns the stale ids."""
        stale = [
            pid for pid, h in row_hashes.items() if pid in self.records and self.records[pid].get("row_sha256") != h
        ]
        if stale:
            for pid in stale:
                del self.records[pid]
            self._rewrite()
            shown = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
            logger.warning(
                f"task rows changed for {len(stale)} problem(s) ({shown}) since {self.path} was generated: "
                "regenerating them"
            )
        return stale

    def __contains__(self, problem_id: str) -> bool:
        return problem_id in self.records

    def add(self, record: dict) -> None:
        append_jsonl(self.path, record)
        self.records[str(record["problem_id"])] = record
