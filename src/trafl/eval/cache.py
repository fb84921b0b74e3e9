"""The generation cache: one JSONL file per (model, task, temperature, length) cell.

Line 1 is ``{"meta": {...}}``, the settings that produced the cell; every further line is one
finished problem ``{"problem_id", "completions", "correct", "answer_keys"}``, plus
``"commit_steps"`` (``[n][L]`` ints) and ``"content_lengths"`` (``[n]``) when the generator returns
denoising paths (:class:`~trafl.eval.generation.PathGenerator`), appended (and
fsynced) as soon as the problem is generated and graded. A run that is killed loses at most the
problem being written (a torn last line is ignored on reading) and, rerun with the same settings,
skips every problem already in the file. Rerunning with different settings is refused rather than
silently mixing samples. Records without ``commit_steps`` (files written before paths were
recorded, or by a generator without them) still load; their problems just have no path metrics.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from trafl.errors import ConfigError, DataError
from trafl.utils.io import append_jsonl, read_jsonl


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


class CellCache:
    """Finished problems of one cell, read from and appended to its JSONL file."""

    def __init__(self, path: str | Path, meta: dict) -> None:
        self.path = Path(path)
        self.meta = meta
        self.records: dict[str, dict] = {}
        drop_torn_tail(self.path)
        lines = read_jsonl(self.path)
        if lines:
            stored = lines[0].get("meta")
            if stored is None:
                raise DataError(f"{self.path}: first line must be the cell's {{'meta': ...}} record")
            if stored != meta:
                diff = sorted(k for k in set(stored) | set(meta) if stored.get(k) != meta.get(k))
                details = "; ".join(f"{k}: cached {stored.get(k)!r} vs now {meta.get(k)!r}" for k in diff)
                raise ConfigError(
                    f"{self.path} was generated with different settings ({details}); "
                    "use a fresh --out directory or delete this file to regenerate"
                )
            for rec in lines[1:]:
                self.records[str(rec["problem_id"])] = rec
        else:
            # A file holding only a torn meta line is rewritten from scratch.
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("")
            append_jsonl(self.path, {"meta": meta})

    def __contains__(self, problem_id: str) -> bool:
        return problem_id in self.records

    def add(self, record: dict) -> None:
        append_jsonl(self.path, record)
        self.records[str(record["problem_id"])] = record
