"""The evaluation loop: every (model, task, temperature, length) cell, ``n`` samples per problem.

For each cell the problems not yet in the cell's cache are generated ``batch_size`` problems at a
time, graded with the task's correctness check, and appended to the cache; then the cell's numbers
(:mod:`trafl.eval.passk`, :mod:`trafl.eval.diversity`, and :mod:`trafl.eval.paths` when the
generator returns denoising paths) are computed from the cache alone. Noise
seeds depend on (problem id, sample index, temperature, length, seed) only, so ``batch_size``
and interruptions do not change the results.

The cache is keyed on content (:mod:`trafl.eval.fingerprint`): each model's weights and tokenizer
are fingerprinted once per run, before its first cell, and each problem's record carries its row's
fingerprint, so retrained weights in the same folder or changed problems are regenerated rather than
read back from a stale cache (:mod:`trafl.eval.cache`).
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from trafl.errors import ConfigError, DataError
from trafl.eval import fingerprint as fingerprints
from trafl.eval.cache import Cell, CellCache, cache_path
from trafl.eval.diversity import distinct_correct, normalise_text, summarise_distinct
from trafl.eval.fingerprint import FileHashMemo, ModelFingerprint, row_fingerprint
from trafl.eval.generation import PathGenerator, SamplerSweep, TextGenerator, sample_seed
from trafl.eval.passk import summarise_pass_at_k
from trafl.eval.paths import path_metrics, summarise_paths
from trafl.tasks.base import Task
from trafl.utils.io import atomic_write_json

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1

#: Where :class:`~trafl.eval.fingerprint.FileHashMemo` keeps the hashes of model files, under OUT.
FILE_HASHES = Path("generations") / "file_hashes.json"


@dataclass
class EvalPlan:
    """What to evaluate. ``batch_size`` (problems per generator call) does not change the results."""

    n: int = 16
    temperatures: list[float] = field(default_factory=lambda: [0.3, 0.6, 0.9])
    gen_lengths: list[int] = field(default_factory=lambda: [256, 512])
    seed: int = 0
    limit: int | None = None
    batch_size: int = 4

    def validate(self) -> None:
        if self.n < 1:
            raise ConfigError(f"--n must be >= 1, got {self.n}")
        if not self.temperatures or any(t < 0 for t in self.temperatures):
            raise ConfigError(f"--temperatures must be a non-empty list of values >= 0, got {self.temperatures}")
        if not self.gen_lengths or any(length < 1 for length in self.gen_lengths):
            raise ConfigError(f"--gen-lengths must be a non-empty list of positive integers, got {self.gen_lengths}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit must be >= 1, got {self.limit}")


@dataclass
class ModelSpec:
    """A model to evaluate: its label in tables and plots, where it came from, and a factory that
    builds its :class:`TextGenerator` when its turn comes (so only one model is in memory).

    ``fingerprint`` keys its cached generations; ``None`` (the default) computes it from ``path``
    (:func:`~trafl.eval.fingerprint.model_fingerprint`: the bytes of a local directory's model and
    tokenizer files, a Hub id's cached revision, else the path itself). A generator built in Python
    can pass its own, e.g. a hash of whatever determines its output.
    """

    label: str
    path: str
    make_generator: Callable[[], TextGenerator]
    sampler: SamplerSweep | None = None
    fingerprint: ModelFingerprint | None = None

    def sampler_settings(self, gen_length: int) -> dict:
        return self.sampler.describe(gen_length) if self.sampler is not None else {}

    def resolve_fingerprint(self, memo: FileHashMemo) -> ModelFingerprint:
        """The given fingerprint, else the one of ``path`` (hashing only files the memo lacks)."""
        if self.fingerprint is not None:
            return self.fingerprint
        return fingerprints.model_fingerprint(self.path, memo)


@dataclass
class TaskSpec:
    """A task, its evaluation rows (already loaded) and the name it is reported under
    (default: the task's registry name)."""

    task: Task
    rows: list[dict]
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or self.task.name or type(self.task).__name__

    @cached_property
    def row_hashes(self) -> dict[str, str]:
        """``problem id -> row fingerprint`` (computed once: every cell of the task uses it)."""
        return dict(zip(problem_ids(self.rows), (row_fingerprint(r) for r in self.rows)))


def load_task_rows(task: Task, *, path: str | None = None, limit: int | None = None) -> list[dict]:
    """The task's evaluation split (or the local file ``path``), at most ``limit`` rows."""
    rows = task.load(task.eval_split, path=path, limit=limit)
    if limit is not None:
        rows = rows[:limit]
    if not rows:
        where = f"file {path}" if path else f"split {task.eval_split!r}"
        raise DataError(f"task '{task.name}': {where} has no rows to evaluate")
    return rows


def problem_ids(rows: Sequence[dict]) -> list[str]:
    """Stable problem identities: the rows' ``id`` (or ``task_id``) when present and unique,
    else the row's position."""
    for key in ("id", "task_id"):
        ids = [str(r[key]) for r in rows if r.get(key) is not None]
        if len(ids) == len(rows) and len(set(ids)) == len(ids):
            return ids
    return [str(i) for i in range(len(rows))]


def generate_and_grade(
    generator: TextGenerator, task: Task, rows: Sequence[dict], ids: Sequence[str], cell: Cell, n: int, seed: int
) -> list[dict]:
    """Cache records of ``rows``: ``n`` completions each, graded, with their answer keys and the
    row's fingerprint, and with ``commit_steps`` / ``content_lengths`` when the generator is a
    :class:`PathGenerator`."""
    prompts = [task.format_prompt(r, getattr(generator, "tokenizer", None)) for r in rows]
    seeds = [[sample_seed(seed, pid, j, cell.temperature, cell.gen_length) for j in range(n)] for pid in ids]
    kwargs = dict(n=n, temperature=cell.temperature, gen_length=cell.gen_length, seeds=seeds)
    paths = generator.generate_with_paths(prompts, **kwargs) if isinstance(generator, PathGenerator) else None
    completions = paths.texts if paths is not None else generator.generate(prompts, **kwargs)
    if len(completions) != len(rows) or any(len(c) != n for c in completions):
        raise ValueError(
            f"generator returned {[len(c) for c in completions]} completions; expected {n} for each of {len(rows)} prompts"
        )
    flat = [c for per_problem in completions for c in per_problem]
    flat_rows = [r for r in rows for _ in range(n)]
    correct = [bool(x) for x in task.grade_batch(flat, flat_rows)]
    records = []
    for i, (pid, row) in enumerate(zip(ids, rows)):
        comps = completions[i]
        record = {
            "problem_id": pid,
            "row_sha256": row_fingerprint(row),
            "completions": comps,
            "correct": correct[i * n : (i + 1) * n],
            "answer_keys": [task.answer_key(c, row) for c in comps],
        }
        if paths is not None:
            record["commit_steps"] = paths.commit_steps[i]
            record["content_lengths"] = paths.content_lengths[i]
        records.append(record)
    return records


def summarise_cell_paths(records: Sequence[dict]) -> dict | None:
    """The cell's ``paths`` entry: :func:`~trafl.eval.paths.summarise_paths` over the problems whose
    cache record has ``commit_steps`` (``None`` when none has: a generator without paths, or a cache
    written before paths were recorded), plus per-problem ``distinct_orders``, ``order_entropy`` and
    ``distinct_correct_paths`` in the order of ``problem_ids``."""
    with_paths = [r for r in records if r.get("commit_steps")]
    if not with_paths:
        return None
    per = [
        path_metrics(r["commit_steps"], r["correct"], r["answer_keys"], r.get("content_lengths")) for r in with_paths
    ]
    out = summarise_paths(per)
    out["problem_ids"] = [r["problem_id"] for r in with_paths]
    for key in ("distinct_orders", "order_entropy", "distinct_correct_paths"):
        out[f"per_problem_{key}"] = [m[key] for m in per]
    return out


def summarise_cell(cell: Cell, task: Task, records: Sequence[dict], n: int, sampler: dict) -> dict:
    """The results.json entry of one cell (see docs/eval.md for the schema)."""
    num_correct = [sum(r["correct"]) for r in records]
    passk = summarise_pass_at_k(num_correct, n)
    answers = [distinct_correct(r["answer_keys"], r["correct"]) for r in records]
    texts = [distinct_correct([normalise_text(c) for c in r["completions"]], r["correct"]) for r in records]
    return {
        "model": cell.model,
        "task": cell.task,
        "task_kind": task.kind,
        "temperature": cell.temperature,
        "gen_length": cell.gen_length,
        "n": n,
        "num_problems": len(records),
        "k": list(range(1, n + 1)),
        "pass_at_k": passk.mean,
        "stderr": passk.stderr,
        "distinct_correct": summarise_distinct(answers).to_dict(),
        "distinct_correct_texts": summarise_distinct(texts).to_dict(),
        "sampler": sampler,
        "problem_ids": [r["problem_id"] for r in records],
        "num_correct": num_correct,
        "num_distinct_correct": answers,
        "paths": summarise_cell_paths(records),
    }


def evaluate_cell(
    generator_fn: Callable[[], TextGenerator],
    spec: TaskSpec,
    cell: Cell,
    plan: EvalPlan,
    out_dir: Path,
    meta: dict,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Fill the cell's cache (skipping finished problems whose row is unchanged) and summarise it.

    ``generator_fn`` is only called when some problem still needs generating.
    """
    ids = problem_ids(spec.rows)
    cache = CellCache(cache_path(out_dir, cell), meta)
    cache.drop_stale(spec.row_hashes)
    todo = [i for i, pid in enumerate(ids) if pid not in cache]
    if todo:
        generator = generator_fn()
        for start in range(0, len(todo), plan.batch_size):
            chunk = todo[start : start + plan.batch_size]
            for record in generate_and_grade(
                generator, spec.task, [spec.rows[i] for i in chunk], [ids[i] for i in chunk], cell, plan.n, plan.seed
            ):
                cache.add(record)
            if progress:
                progress(f"{cell.slug()}: {len(ids) - len(todo) + start + len(chunk)}/{len(ids)} problems")
    records = [cache.records[pid] for pid in ids]
    return summarise_cell(cell, spec.task, records, plan.n, meta["sampler"])


def versions() -> dict:
    import torch
    import transformers

    import trafl

    return {
        "trafl": trafl.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def run_evaluation(
    models: Sequence[ModelSpec],
    tasks: Sequence[TaskSpec],
    plan: EvalPlan,
    out_dir: str | Path,
    *,
    base: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Evaluate every cell, write ``results.json`` atomically after each one, return the results.

    Each model is fingerprinted once, before its first cell (its files' hashes are remembered in
    ``OUT/generations/file_hashes.json``, so a rerun re-reads only files written since).
    """
    plan.validate()
    labels = [m.label for m in models]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"model labels must be distinct, got {labels}; name them with --model LABEL=DIR")
    if base is not None and base not in labels:
        raise ConfigError(f"--base '{base}' is not one of the evaluated models {labels}")
    out_dir = Path(out_dir)
    results = {
        "schema_version": SCHEMA_VERSION,
        "versions": versions(),
        "settings": {
            "n": plan.n,
            "temperatures": list(plan.temperatures),
            "gen_lengths": list(plan.gen_lengths),
            "seed": plan.seed,
            "limit": plan.limit,
        },
        "models": {m.label: m.path for m in models},
        "fingerprints": {},
        "tasks": {t.name: t.task.kind for t in tasks},
        # code tasks: how many problems are graded as assert tests (isolated) or stdin/stdout (io); docs/sandbox.md
        "grading": {t.name: t.task.grading_methods(t.rows) for t in tasks if hasattr(t.task, "grading_methods")},
        "base": base,
        "results": [],
    }
    memo = FileHashMemo(out_dir / FILE_HASHES)
    for model in models:
        fingerprint = model.resolve_fingerprint(memo)
        memo.save()
        results["fingerprints"][model.label] = {"model": fingerprint.model, "tokenizer": fingerprint.tokenizer}
        if progress:
            progress(f"{model.label}: model {short(fingerprint.model)}, tokenizer {short(fingerprint.tokenizer)}")
        generator: list[TextGenerator] = []

        def lazy() -> TextGenerator:
            if not generator:
                generator.append(model.make_generator())
            return generator[0]

        for spec in tasks:
            for length in plan.gen_lengths:
                for temperature in plan.temperatures:
                    cell = Cell(model.label, spec.name, float(temperature), int(length))
                    meta = {
                        "model_path": model.path,
                        "model_fingerprint": fingerprint.model,
                        "tokenizer_fingerprint": fingerprint.tokenizer,
                        "task": spec.name,
                        "temperature": cell.temperature,
                        "gen_length": cell.gen_length,
                        "n": plan.n,
                        "seed": plan.seed,
                        "sampler": model.sampler_settings(cell.gen_length),
                    }
                    results["results"].append(evaluate_cell(lazy, spec, cell, plan, out_dir, meta, progress))
                    atomic_write_json(out_dir / "results.json", results)
        generator.clear()
    atomic_write_json(out_dir / "results.json", results)
    return results


def short(fingerprint: str) -> str:
    """A fingerprint for a progress line: ``sha256:`` digests cut to 12 hex digits."""
    return fingerprint[: len("sha256:") + 12] if fingerprint.startswith("sha256:") else fingerprint


def log_to_stderr(message: str) -> None:
    """A progress message, logged at INFO (the ``trafl`` command shows it on stderr)."""
    logger.info(message)
