"""Content fingerprints that key the generation cache: the model's weights, its tokenizer, each problem.

A cell's cached generations are valid only for the bytes that produced them, not for a folder name:
a model retrained into the same folder must not be served its predecessor's samples. So the cache
meta (:mod:`trafl.eval.cache`) records

* ``model_fingerprint``: for a local directory, ``"sha256:<hex>"``, the SHA-256 of one line
  ``name<TAB>size<TAB>sha256(bytes)`` per *model file*, sorted by name. Model files are the top-level
  regular files (symlinks followed) that loading the model reads: ``config.json``,
  ``adapter_config.json``, every ``*.safetensors`` (full weights, shards, LoRA adapters), the
  ``pytorch_model*.bin`` / ``adapter_model*.bin`` weights, the ``*.index.json`` shard maps and the
  checkpoint's own code (``*.py`` other than ``tokenization_*.py``, for ``trust_remote_code``).
  Other files (README, optimizer or trainer state, plots) do not count, so they cannot trigger a
  needless regeneration.
* ``tokenizer_fingerprint``: the same over the tokenizer files: ``tokenizer*``,
  ``tokenization_*.py``, ``special_tokens_map.json``, ``added_tokens.json``, ``vocab.*``,
  ``merges.txt``, ``chat_template.*``, ``*.tiktoken``, ``spiece.model`` (the chat template changes the
  prompts, so it belongs here); ``"none"`` when the directory has none.
* for a Hub id that is not a local directory: ``"hub:<id>@<commit>"``, the commit that the local
  Hugging Face cache resolves ``main`` to (read offline; no network), for both fingerprints (weights
  and tokenizer live in the same repository revision); just ``"hub:<id>"`` when the id is not in the
  local cache, so a cache keyed on the bare id is only as good as the id.
* anything else (a :class:`~trafl.eval.evaluate.ModelSpec` whose generator is built in Python):
  ``"path:<path>"``; such callers can pass their own fingerprint.

Each problem's record carries ``row_sha256`` (:func:`row_fingerprint`, the SHA-256 of the row as
canonical JSON), so a problem whose content changed is regenerated on its own and raising ``--limit``
still reuses every unchanged problem.

Every byte of every model file is hashed (SHA-256 streamed in 1 MiB chunks: 0.9-1.4 GB/s on one
core of the 2-core development machine, measured on a 100 MB file, so 11-18 s for a 16 GB model).
Sampling the bytes would be faster but could miss an edit confined to a few tensors (a partial
fine-tune, an embedding row), and a stale cache hit is a wrong result. To keep reruns cheap,
:class:`FileHashMemo` remembers each file's hash under its (size, mtime, ctime, inode, device): a
rerun re-reads only files that were written since. Any write or replacement of a file moves its
ctime (which no program can set back) or its inode; a remembered hash is trusted only if it was taken
at least ``settle_ns`` (2 s) after the file last changed, because two writes within one filesystem
clock tick can leave the timestamps equal.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trafl.utils.io import atomic_write_json

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20

#: Exact names of tokenizer files besides the ``tokenizer*`` / ``tokenization_*.py`` / ``vocab.*`` /
#: ``chat_template.*`` / ``*.tiktoken`` patterns of :func:`is_tokenizer_file`.
TOKENIZER_NAMES = frozenset({"special_tokens_map.json", "added_tokens.json", "merges.txt", "spiece.model"})
#: Exact names of model files besides the suffix and prefix rules of :func:`is_model_file`.
MODEL_NAMES = frozenset({"config.json", "adapter_config.json"})


@dataclass(frozen=True)
class ModelFingerprint:
    """What a model's generations depend on besides the settings: its weights and its tokenizer."""

    model: str
    tokenizer: str


def is_tokenizer_file(name: str) -> bool:
    """Whether a file of a checkpoint directory belongs to the tokenizer (see the module docstring)."""
    return (
        name in TOKENIZER_NAMES
        or name.startswith(("tokenizer", "tokenization_", "vocab.", "chat_template."))
        or name.endswith(".tiktoken")
    )


def is_model_file(name: str) -> bool:
    """Whether a file of a checkpoint directory is read when the model (weights, adapter, config,
    remote code) is loaded (see the module docstring)."""
    if is_tokenizer_file(name):
        return False
    return (
        name in MODEL_NAMES
        or name.endswith((".safetensors", ".index.json", ".py"))
        or (name.endswith(".bin") and name.startswith(("pytorch_model", "adapter_model")))
    )


def sha256_of_file(path: str | Path) -> str:
    """The hex SHA-256 of a file's bytes, streamed in 1 MiB chunks (memory stays flat for any size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


class FileHashMemo:
    """SHA-256 of files, remembered across runs in a JSON file (``None``: in memory only).

    An entry is ``{absolute path: {"stat": [size, mtime_ns, ctime_ns, inode, device], "sha256",
    "hashed_ns"}}`` and is used only while the file's stat is unchanged and if it was hashed at least
    ``settle_ns`` after the file's last change (see the module docstring). A missing or unreadable
    memo file is an empty memo: it only ever saves time.
    """

    def __init__(self, path: str | Path | None = None, *, settle_ns: int = 2_000_000_000) -> None:
        self.path = Path(path) if path is not None else None
        self.settle_ns = settle_ns
        self.entries = self._load()
        self.changed = False

    def _load(self) -> dict[str, dict]:
        if self.path is None or not self.path.is_file():
            return {}
        try:
            entries = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            logger.warning("ignoring unreadable file-hash memo %s (%s); hashing every file again", self.path, exc)
            return {}
        if not isinstance(entries, dict):
            logger.warning("ignoring file-hash memo %s: expected a JSON object; hashing every file again", self.path)
            return {}
        return entries

    def trusted(self, entry: object, st: os.stat_result) -> bool:
        """Whether a memo entry holds the hash of the file whose stat is ``st``."""
        if (
            not isinstance(entry, dict)
            or entry.get("stat") != _stat_key(st)
            or not isinstance(entry.get("sha256"), str)
        ):
            return False
        hashed_ns = entry.get("hashed_ns")
        return isinstance(hashed_ns, int) and hashed_ns - max(st.st_mtime_ns, st.st_ctime_ns) >= self.settle_ns

    def sha256(self, path: Path) -> str:
        """The file's SHA-256, from the memo when it can be trusted, else read and hashed."""
        key = str(path.resolve())
        before = path.stat()
        entry = self.entries.get(key)
        if self.trusted(entry, before):
            return entry["sha256"]  # type: ignore[index]
        digest = sha256_of_file(path)
        hashed_ns = time.time_ns()
        if _stat_key(path.stat()) == _stat_key(before):  # not written while it was read
            self.entries[key] = {"stat": _stat_key(before), "sha256": digest, "hashed_ns": hashed_ns}
            self.changed = True
        return digest

    def save(self) -> None:
        """Write the memo atomically (only when it learnt something and has a file)."""
        if self.path is not None and self.changed:
            atomic_write_json(self.path, self.entries, indent=None)
            self.changed = False


def files_fingerprint(files: list[Path], memo: FileHashMemo) -> str:
    """``"sha256:<hex>"`` over ``name<TAB>size<TAB>sha256`` lines of ``files`` sorted by name;
    ``"none"`` for no files."""
    if not files:
        return "none"
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.name):
        digest.update(f"{path.name}\t{path.stat().st_size}\t{memo.sha256(path)}\n".encode())
    return f"sha256:{digest.hexdigest()}"


def directory_files(directory: Path) -> list[Path]:
    """The top-level regular files of a checkpoint directory (symlinks followed, as loading does)."""
    return [p for p in sorted(directory.iterdir()) if p.is_file()]


def hub_revision(hub_id: str, cache_dir: str | Path | None = None) -> str | None:
    """The commit the local Hugging Face cache resolves ``hub_id``'s ``main`` to, or ``None`` when
    the id is not cached (never goes to the network)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(hub_id, "config.json", cache_dir=cache_dir)
    if not isinstance(found, str):
        return None
    return Path(found).parent.name  # .../snapshots/<commit>/config.json


def model_fingerprint(
    path: str, memo: FileHashMemo | None = None, *, hub_cache_dir: str | Path | None = None
) -> ModelFingerprint:
    """The :class:`ModelFingerprint` of a checkpoint directory or Hub id (see the module docstring)."""
    local = Path(path).expanduser()
    if local.is_dir():
        memo = memo if memo is not None else FileHashMemo()
        files = directory_files(local)
        return ModelFingerprint(
            model=files_fingerprint([p for p in files if is_model_file(p.name)], memo),
            tokenizer=files_fingerprint([p for p in files if is_tokenizer_file(p.name)], memo),
        )
    from trafl.models.loading import is_hub_id

    if is_hub_id(path):
        revision = hub_revision(path, hub_cache_dir)
        key = f"hub:{path}@{revision}" if revision else f"hub:{path}"
        return ModelFingerprint(model=key, tokenizer=key)
    return ModelFingerprint(model=f"path:{path}", tokenizer=f"path:{path}")


def row_fingerprint(row: Mapping[str, Any]) -> str:
    """The hex SHA-256 of a problem row as canonical JSON (sorted keys; values JSON cannot hold are
    written with ``str``), so the same content always gives the same key."""
    text = json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
