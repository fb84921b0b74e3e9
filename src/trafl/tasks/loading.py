"""Where task rows come from: a local JSONL / JSON file, a local dataset directory, or the
Hugging Face hub.

:func:`load_rows` is the one entry point of the task modules. A directory goes the hub's way
(:func:`load_hub`, through the ``datasets`` package): a snapshot laid out like a hub repository
(parquet / JSON files, with or without a ``README.md`` that declares configs and splits), or a
directory written by ``datasets``' ``save_to_disk``. Offline, point a task at such a directory or a
file (``path=...``, or ``dataset_path`` in a training config).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

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


def load_rows(path: str | Path | None, hub_id: str, split: str | None, config: str | None = None) -> list[dict]:
    """A task's raw rows: from ``path`` when given (a JSONL/JSON file, or a dataset directory read
    like a hub repository), else from ``hub_id`` on the hub."""
    if path is None:
        return load_hub(hub_id, split, config)
    if Path(path).is_dir():
        return load_hub(str(path), split, config)
    return read_records(path)


def load_hub(hub_id: str, split: str | None, config: str | None = None, **kwargs: Any) -> list[dict]:
    """Rows of split ``split`` of a hub dataset, or of a local directory in its place: one written
    by ``save_to_disk`` (a ``DatasetDict``, or a single ``Dataset`` taken as the requested split),
    or a hub-style snapshot read by ``datasets.load_dataset``. ``config`` applies where the source
    declares configs (a snapshot without them has only ``default``)."""
    try:
        import datasets
    except ImportError as exc:
        raise DataError(
            f"loading '{hub_id}' needs the 'datasets' package (a trafl dependency; reinstall trafl), "
            "or pass a local JSONL file (path=... / dataset_path)"
        ) from exc
    if split is None:
        raise DataError(f"{hub_id}: no split given and the task has no default split")
    local = Path(hub_id)
    if local.is_dir():
        if (local / "dataset_dict.json").is_file() or (local / "state.json").is_file():
            return _load_saved(datasets, local, split)
        config = _local_config(datasets, local, config)
        splits = datasets.get_dataset_split_names(str(local), config)
        if split not in splits:
            raise DataError(f"{local}: no split '{split}' (config {config}); available: {', '.join(splits)}")
    try:
        ds = datasets.load_dataset(hub_id, config, split=split, **kwargs)
    except Exception as exc:  # network, unknown split, ...
        raise DataError(f"could not load {hub_id} (config={config}, split={split}): {exc}") from exc
    return [dict(r) for r in ds]


def _load_saved(datasets: Any, local: Path, split: str) -> list[dict]:
    saved = datasets.load_from_disk(str(local))
    if isinstance(saved, datasets.DatasetDict):
        if split not in saved:
            raise DataError(f"{local}: no split '{split}' in the saved DatasetDict; available: {', '.join(saved)}")
        saved = saved[split]
    return [dict(r) for r in saved]


def _local_config(datasets: Any, local: Path, config: str | None) -> str | None:
    """``config`` if the directory declares it; ``None`` for a directory without configs."""
    names = datasets.get_dataset_config_names(str(local))
    if config in names:
        return config
    if names == ["default"]:
        return None
    raise DataError(f"{local}: no config '{config}'; available: {', '.join(names)}")


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
