"""The evaluation half of a study: score models on one split's prompts, read back what was sampled.

Every model is sampled with the study's sampler (one setting per temperature) through
:func:`trafl.eval.evaluate.run_evaluation`, whose per-cell cache makes a rerun (or a study that adds
models) sample only what is missing. The helpers below read the cached generations for the
report's denoising cost and example completions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trafl.eval.cache import Cell, cache_path
from trafl.sampling.settings import SamplerSettings
from trafl.utils.io import read_jsonl


@dataclass(frozen=True)
class EvalSettings:
    """What a study scores its models on and how it samples them."""

    task: str  # registered task name
    split: str  # 'test' (held out) or 'validation' (for choosing settings)
    prompts: int  # the first N prompts of the split
    n: int  # samples per prompt (pass@k's unbiased estimator over n)
    temperatures: tuple[float, ...]  # evaluation temperatures of the final models
    sampler: SamplerSettings  # steps, block length and remasking (its temperature is replaced per cell)
    seed: int = 0  # seed of the evaluation's sampling noise
    batch_size: int = 48  # sequences per forward pass while sampling

    def rows(self) -> list[dict]:
        """The prompts scored: the first ``prompts`` rows of ``split``."""
        from trafl.tasks import get_task

        return get_task(self.task).load(self.split)[: self.prompts]


def evaluate(settings: EvalSettings, models: dict[str, Path], out_dir: Path, temperatures, rows: list[dict]) -> dict:
    """``results.json`` of ``models`` (``{label: model dir}``, ``base`` among them) on ``rows`` at
    ``temperatures``, cached under ``out_dir``; paired differences are taken to ``base``."""
    from trafl.eval.evaluate import EvalPlan, ModelSpec, TaskSpec, run_evaluation
    from trafl.eval.generation import SamplerGenerator, SamplerSweep
    from trafl.tasks import get_task

    s = settings.sampler
    sweep = SamplerSweep(steps=s.steps, block_length=s.block_length, remasking=s.remasking)
    specs = [
        ModelSpec(
            label, str(path), (lambda p=path: SamplerGenerator.from_pretrained(str(p), sweep, device="cpu")), sweep
        )
        for label, path in models.items()
    ]
    plan = EvalPlan(
        n=settings.n,
        temperatures=list(temperatures),
        gen_lengths=[s.gen_length],
        seed=settings.seed,
        batch_size=settings.batch_size,
    )
    task = get_task(settings.task)
    return run_evaluation(specs, [TaskSpec(task, rows)], plan, out_dir, base="base", progress=None)


def _cached(out_dir: Path, cell: dict) -> list[dict]:
    """The cached generation records of one result cell (those that hold completions)."""
    path = cache_path(out_dir, Cell(cell["model"], cell["task"], cell["temperature"], cell["gen_length"]))
    return [r for r in read_jsonl(path) if "completions" in r]


def denoising_cost(out_dir: Path, results: dict, temperature: float, forward_passes: int) -> dict:
    """Forward passes and mean completion length (tokens before EOS) per sample, per model."""
    cost = {}
    for cell in results["results"]:
        if cell["temperature"] != temperature:
            continue
        lengths = [len(c) for r in _cached(out_dir, cell) for c in r["completions"]]
        cost[cell["model"]] = {
            "forward_passes": forward_passes,
            "completion_length": sum(lengths) / max(len(lengths), 1),
        }
    return cost


def example_samples(out_dir: Path, results: dict, rows: list[dict], temperature: float) -> dict:
    """Up to 8 sampled completions (``ok`` marks the correct ones) of the base and every method's
    first seed, for the first shortcut and the first no-shortcut prompt."""
    ids = results["results"][0]["problem_ids"]
    pick = {}
    for pid, row in zip(ids, rows):
        key = "shortcut" if row.get("has_shortcut") else "no_shortcut"
        if key not in pick:
            pick[key] = (pid, row["prompt"])
    out = {}
    for cell in results["results"]:
        if cell["temperature"] != temperature or not (cell["model"] == "base" or cell["model"].endswith("-s0")):
            continue
        records = {r["problem_id"]: r for r in _cached(out_dir, cell)}
        out[cell["model"]] = {
            prompt: [
                c + (" ok" if ok else "") for c, ok in zip(records[pid]["completions"][:8], records[pid]["correct"][:8])
            ]
            for pid, prompt in pick.values()
            if pid in records
        }
    return out


def shortcut_split(results: dict, rows: list[dict]) -> dict[str, bool] | None:
    """``{problem id: has a shortcut}`` when the task's rows say so, else ``None``."""
    if "has_shortcut" not in rows[0]:
        return None
    return {pid: bool(row.get("has_shortcut")) for pid, row in zip(results["results"][0]["problem_ids"], rows)}
