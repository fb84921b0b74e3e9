"""Training checkpoints that a crash can never leave half-written, on one process or many.

A checkpoint is a directory ``<run>/checkpoint-<step>`` holding

* ``state/``: what :meth:`accelerate.Accelerator.save_state` writes: the model and the optimizer
  (one shard per process under FSDP and DeepSpeed ZeRO, whole otherwise), every object registered with
  ``accelerator.register_for_checkpointing`` (the scheduler; TraFL's logZ head and its optimizer;
  SFT registers nothing else) and each process's RNG states;
* ``trainer_state.json``: the step and any JSON-able extra state of the trainer;
* ``model/``: the model (or the LoRA adapter) in Hugging Face format, written once from the gathered
  full state, for inspection and reuse.

Every process writes into one hidden temporary sibling ``.checkpoint-<step>.tmp-*`` (the main process
names it and broadcasts the name); after a barrier the main process renames it into place, so
``checkpoint-*`` directories are always complete. Leftovers of a killed run start with ``.`` and are
ignored (and removed on the next save). Checkpoints of trafl 0.1 (one ``trainer_state.pt`` per
checkpoint, written by a single process) cannot be resumed from: :func:`latest_checkpoint` says so.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from trafl.errors import CheckpointError
from trafl.utils.io import commit_directory, make_tmp_sibling

_CKPT = re.compile(r"^checkpoint-(\d+)$")
STATE_FILE = "trainer_state.json"
ACCELERATE_DIR = "state"
MODEL_DIR = "model"
_OLD_STATE_FILE = "trainer_state.pt"


@contextmanager
def shared_atomic_directory(accelerator: Any, path: str | Path) -> Iterator[Path]:
    """Yield, on every process, the same temporary sibling of ``path``; rename it into place at the end.

    All processes must enter (it synchronises them). On success the main process fsyncs the files and
    replaces ``path`` by the temporary directory in one rename, after every process has written.
    """
    from accelerate.utils import broadcast_object_list

    path = Path(path)
    name = [None]
    if accelerator.is_main_process:
        name = [str(make_tmp_sibling(path))]
    if accelerator.num_processes > 1:
        broadcast_object_list(name, from_process=0)
    tmp = Path(name[0])
    yield tmp
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        commit_directory(tmp, path)
    accelerator.wait_for_everyone()


def export_pretrained(accelerator: Any, model: Any, directory: str | Path, tokenizer: Any = None) -> None:
    """Write the (possibly sharded) ``model`` in Hugging Face format, once, from its gathered state.

    Every process must call it: under FSDP / ZeRO-3 ``accelerator.get_state_dict`` gathers the shards
    (a collective) into a full state on the main process, which alone writes ``directory``. A LoRA model
    writes its adapter (peft picks the adapter's tensors from the full state).
    """
    state = accelerator.get_state_dict(model)
    if accelerator.is_main_process:
        accelerator.unwrap_model(model).save_pretrained(directory, state_dict=state)
        if tokenizer is not None:
            tokenizer.save_pretrained(directory)


def save_checkpoint(
    accelerator: Any,
    run_dir: str | Path,
    step: int,
    *,
    model: Any,
    tokenizer: Any = None,
    extra: dict[str, Any] | None = None,
    keep_last: int | None = 2,
    export_model: bool = True,
) -> Path:
    """Write ``run_dir/checkpoint-<step>`` from every process and prune older ones beyond ``keep_last``.

    ``model`` is the prepared (wrapped) model; the optimizer and the registered objects are the
    accelerator's. ``extra`` must be JSON-serialisable.
    """
    run_dir = Path(run_dir)
    if accelerator.is_main_process:
        for stale in run_dir.glob(".checkpoint-*.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
    accelerator.wait_for_everyone()
    target = run_dir / f"checkpoint-{step}"
    with shared_atomic_directory(accelerator, target) as tmp:
        accelerator.save_state(str(tmp / ACCELERATE_DIR))
        if export_model:
            export_pretrained(accelerator, model, tmp / MODEL_DIR, tokenizer)
        if accelerator.is_main_process:  # last: a directory with this file is complete
            (tmp / STATE_FILE).write_text(json.dumps({"step": step, "extra": extra or {}}) + "\n")
    if accelerator.is_main_process and keep_last:
        for old in list_checkpoints(run_dir)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return target


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = []
    for p in run_dir.iterdir():
        m = _CKPT.match(p.name)
        if m and p.is_dir() and (p / STATE_FILE).is_file() and (p / ACCELERATE_DIR).is_dir():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def checkpoint_step(path: str | Path) -> int:
    """The optimizer step a checkpoint folder ``checkpoint-<step>`` was written at."""
    m = _CKPT.match(Path(path).name)
    if m is None:
        raise CheckpointError(f"{path}: not a checkpoint folder (expected a name checkpoint-<step>)")
    return int(m.group(1))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run; an error if the run holds only old-format ones."""
    ckpts = list_checkpoints(run_dir)
    if ckpts:
        return ckpts[-1]
    run_dir = Path(run_dir)
    old = sorted(run_dir.glob(f"checkpoint-*/{_OLD_STATE_FILE}")) if run_dir.is_dir() else []
    if old:
        raise CheckpointError(
            f"{old[-1].parent} was written by trafl 0.1 (single-process '{_OLD_STATE_FILE}'), which this version "
            "cannot resume from; start a new run (its 'model/' directory is still a usable starting model)"
        )
    return None


def load_checkpoint(accelerator: Any, path: str | Path) -> dict[str, Any]:
    """Restore a checkpoint written by :func:`save_checkpoint` on every process; returns
    ``{"step": ..., "extra": {...}}``. The prepared model, optimizer and registered objects must be
    the same (in the same order) as when it was written."""
    path = Path(path)
    accelerator.load_state(str(path / ACCELERATE_DIR))
    return json.loads((path / STATE_FILE).read_text())
