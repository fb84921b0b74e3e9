"""One study from trained runs to report: train every run, evaluate finals and checkpoints, analyse.

:class:`Study` describes a study (its runs, checkpoints, evaluation and frontier); :func:`run_study`
carries it out stage by stage. Every stage writes its results under ``out`` as it finishes and is
skipped when rerun (trained runs by their final model, evaluations by their per-cell cache), so an
interrupted study resumes where it stopped; ``study.json`` keeps the wall time of each stage as it
was when the stage ran. ``trafl demo`` builds its study from :class:`trafl.demo.DemoConfig`; the
scripts that compare variants (``scripts/study_sweep.py``, ``scripts/fast_rollouts.py``) call
:func:`train_runs` and :func:`~trafl.study.evaluation.evaluate` for their own tables.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trafl.study.evaluation import EvalSettings, denoising_cost, evaluate, example_samples, shortcut_split
from trafl.study.runs import Run, checkpoint_models, train_run, training_rewards
from trafl.utils.config import to_dict
from trafl.utils.io import atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Study:
    """A study: a base, runs (method x seed) compared on one evaluation, and checkpoints along training."""

    out: Path  # every stage's results (runs/, eval/, frontier/, report.md, study.json)
    base: Path  # the base model (the paired differences' reference, the frontier's step 0)
    runs: tuple[Run, ...]  # labelled <method>-s<seed>
    methods: tuple[str, ...]  # the methods the runs' labels name, in the report's order
    evaluation: EvalSettings
    max_steps: int  # RL steps of every run (the frontier's last point)
    checkpoints: int  # checkpoints kept per run, evenly spaced; all but the last join the frontier
    frontier_temperature: float  # the frontier's (and checks a, c, d's) temperature; among evaluation's
    k_max: int  # largest k of the tables and checks
    config: Any  # the settings the report describes and study.json records (a DemoConfig)
    log: Callable[[str], None] = logger.info

    def frontier_checkpoints(self, label: str) -> dict[int, Path]:
        """A run's checkpoints on the frontier: every kept one before the final model (the last point)."""
        every = max(1, self.max_steps // self.checkpoints)
        kept = checkpoint_models(self.out / "runs" / label)
        return {step: path for step, path in kept.items() if step <= every * (self.checkpoints - 1)}


def read_timings(out: Path) -> dict[str, float]:
    """The stage timings of a previous run of the study in ``out`` (empty for a new one)."""
    previous = out / "study.json"
    return json.loads(previous.read_text())["timings_s"] if previous.is_file() else {}


def train_runs(
    runs: Sequence[Run], out: Path, timings: dict[str, float] | None = None, log: Callable = logger.info
) -> dict[str, Path]:
    """Train every run not yet trained; ``{label: final model}``. A run's time goes to
    ``timings['train/<label>']`` when it trains (or when no time was recorded for it)."""
    finals = {}
    for run in runs:
        t = time.perf_counter()
        finals[run.label], seconds = train_run(run, out, log)
        key = f"train/{run.label}"
        if timings is not None and (seconds is not None or key not in timings):
            timings[key] = time.perf_counter() - t
    return finals


def run_study(study: Study, timings: dict[str, float] | None = None) -> dict:
    """Train, evaluate (finals at every temperature, the frontier at its own), analyse and report.

    ``timings`` (default: the previous run's, :func:`read_timings`) holds the stages already timed:
    those the caller ran (the base) and those of a previous run, kept for the stages skipped now. Writes ``eval/``, ``frontier/``, plots, ``report.md`` and ``study.json``."""
    from trafl.study.analysis import analyse
    from trafl.study.plots import write_study_plots
    from trafl.study.report import render_report, render_summary

    out, ev, cfg = study.out, study.evaluation, study.config
    timings = read_timings(out) if timings is None else timings
    trained = train_runs(study.runs, out, timings, study.log)
    finals = {"base": study.base, **trained}
    frontier_models = {"base": study.base}
    for run in study.runs:
        frontier_models.update({f"{run.label}@{s}": p for s, p in study.frontier_checkpoints(run.label).items()})

    rows = ev.rows()
    t = time.perf_counter()
    study.log(
        f"evaluating {len(finals)} models on {len(rows)} {ev.split} prompts x {ev.n} samples "
        f"at T = {', '.join(map(str, ev.temperatures))}"
    )
    results = evaluate(ev, finals, out / "eval", ev.temperatures, rows)
    study.log(f"evaluating {len(frontier_models) - 1} checkpoints along training at T = {study.frontier_temperature}")
    frontier = evaluate(ev, frontier_models, out / "frontier", [study.frontier_temperature], rows)
    timings["eval"] = max(timings.get("eval", 0.0), time.perf_counter() - t)  # cached reruns are shorter

    analysis = analyse(
        results,
        frontier,
        methods=list(study.methods),
        k_max=study.k_max,
        frontier_temperature=study.frontier_temperature,
        shortcut=shortcut_split(results, rows),
        denoising=denoising_cost(out / "eval", results, study.frontier_temperature, ev.sampler.steps),
        final_step=study.max_steps,
    )
    analysis["samples"] = example_samples(out / "eval", results, rows, study.frontier_temperature)
    analysis["training_reward"] = training_rewards(out, [run.label for run in study.runs])
    timings["total"] = sum(v for k, v in timings.items() if k != "total")
    plots = write_study_plots(analysis, results, out, k_max=study.k_max)
    summary = render_summary(analysis, timings, quick=getattr(cfg, "quick", False))
    atomic_write_text(out / "report.md", render_report(analysis, results, cfg, timings, plots, out))
    atomic_write_json(
        out / "study.json",
        {"checks": analysis["checks"], "analysis": analysis, "timings_s": timings, "config": to_dict(cfg)},
    )
    print(summary)
    study.log(f"report: {out / 'report.md'}")
    return {
        "results": results,
        "frontier": frontier,
        "analysis": analysis,
        "checks": analysis["checks"],
        "timings": timings,
        "plots": plots,
    }
