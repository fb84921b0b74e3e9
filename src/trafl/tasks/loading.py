"""Where task rows come from: a local JSONL / JSON file, or the Hugging Face hub.

The hub path needs the optional ``datasets`` package (imported only when used); without it, or
offline, pass a local file instead (``path=...``, or ``dataset_path`` in a training config).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable

from trafl.errors import DataError


def read_records(path: str | Path) -> list[dict]:
    """Rows of a JSONL file (one object per line), a JSON array, or a ``.jsonl.gz`` file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"dataset file not found: {path}")
    if path.suffix == ".gz":
        import gzip

        text = gzip.open(path, "rt", encoding="utf-8").read()
    else:
        text = path.read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            rows = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not a valid JSON array ({exc.msg})") from exc
    else:
        rows = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
    bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict)), None)
    if bad is not None:
        raise DataError(f"{path}: row {bad + 1} is not a JSON object")
    return rows


def load_hub(hub_id: str, split: str, config: str | None = None, **kwargs: Any) -> list[dict]:
    """Rows of a hub dataset split through ``datasets.load_dataset``."""
    try:
        import datasets
    except ImportError as exc:
        raise DataError(
            f"loading '{hub_id}' from the Hugging Face hub needs the 'datasets' package: "
            "`pip install datasets`, or pass a local JSONL file (path=... / dataset_path)"
        ) from exc
    try:
        ds = datasets.load_dataset(hub_id, config, split=split, **kwargs)
    except Exception as exc:  # network, unknown split, ...
        raise DataError(f"could not load {hub_id} (config={config}, split={split}) from the hub: {exc}") from exc
    return [dict(r) for r in ds]


def require(row: dict, fields: Iterable[str], source: str) -> None:
    missing = [f for f in fields if f not in row]
    if missing:
        raise DataError(f"{source}: row is missing field(s) {', '.join(missing)} (has: {', '.join(row)})")


def first_field(row: dict, names: Iterable[str], source: str) -> Any:
    """The value of the first of ``names`` present in ``row``."""
    names = list(names)
    for name in names:
        if name in row and row[name] is not None:
            return row[name]
    raise DataError(f"{source}: row has none of the fields {', '.join(names)} (has: {', '.join(row)})")


def convert(rows: list[dict], fn: Callable[[dict], dict | None], limit: int | None) -> list[dict]:
    """Apply ``fn`` to every raw row (``None`` drops it), then keep the first ``limit``."""
    out = [r for r in (fn(row) for row in rows) if r is not None]
    return out[:limit] if limit is not None else out
