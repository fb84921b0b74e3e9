"""``trafl eval``: pass@k and diversity of one or more models over tasks, temperatures and lengths.

    trafl eval --model base=ckpt/base --model trafl=ckpt/trafl --task gsm8k,math500 --n 16 \\
        --temperatures 0.3,0.6,0.9 --gen-lengths 256,512 --block-length 32 --base base --out runs/eval
    trafl eval --config eval.yaml [--field value ...]

The settings are an :class:`EvalConfig` (YAML and/or flags), validated before any model loads: the
sampler's rules (:func:`trafl.sampling.settings.check_sampler`) for every completion length of the
sweep, the labels, the data paths. Writes ``OUT/generations/*.jsonl`` (the cache, keyed on the
models' weights and the problems' content: rerun the same command to resume), ``OUT/results.json``,
``OUT/results.md`` and ``OUT/plots/*.png``; with ``--judge-model`` also the LLM judge's
approach-diversity comparison of every model with ``--base`` (:mod:`trafl.eval.judge`). At the end
it prints the pass@k table of each task and the path of ``results.md`` (``--json``: a one-line JSON
summary instead, for scripts). See docs/eval.md.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trafl.errors import CheckpointError, ConfigError
from trafl.eval.generation import SamplerSweep
from trafl.models.kv_cache import CacheMode
from trafl.sampling.remasking import Remasking
from trafl.sampling.settings import sampler_option
from trafl.utils.config import add_config_arguments, load_config, option, overrides_from_args
from trafl.utils.devices import check_device

#: The eval config's names of the sampler settings it sweeps (for error messages).
SWEEP_NAMES = {"gen_length": "gen_lengths", "temperature": "temperatures"}


@dataclass
class EvalConfig:
    model: list[str] = option(
        [],
        "[LABEL=]DIR: a checkpoint directory or Hub id; repeat --model for several models "
        "(LABEL names it in tables and plots). Required.",
        repeat=True,
    )
    task: list[str] = option(
        [],
        "Task name(s) (trafl.tasks.task_names() or package.module:Class); repeatable, "
        "each may be comma-separated. Required.",
        repeat=True,
    )
    task_options: dict[str, Any] = option(
        {},
        "Options given to every task (as a training config's task_options), e.g. {prompt_template: d1} to "
        "score a model trained on d1's prompt with it; each task must accept them. On the command line "
        "prompt_template=d1.",
    )
    out: str = option("", "Output directory (also the generation cache: rerun to resume). Required.")
    n: int = option(16, "Samples per problem (pass@k for k = 1..n).", min=1)
    temperatures: list[float] = option([0.3, 0.6, 0.9], "Sampling temperatures (comma-separated).", min=0.0)
    gen_lengths: list[int] = option([256, 512], "Completion lengths in tokens (comma-separated).", min=1)
    steps: int | list[int] | None = option(
        None,
        "Denoising steps: one value for every length or one per gen_lengths "
        "entry (default: the length, one token per step).",
        min=1,
    )
    block_length: int = sampler_option(
        "block_length", help="Semi-autoregressive block length (capped at each completion length; must divide it)."
    )
    remasking: Remasking = sampler_option("remasking")
    cache: CacheMode = sampler_option("cache")
    threshold: float | None = sampler_option("threshold")
    seed: int = option(0, "Seed of the per-sample noise.")
    limit: int | None = option(None, "Evaluate only the first LIMIT problems of each task.", min=1)
    batch_size: int = option(4, "Problems per sampler call (does not change the results).", min=1)
    base: str | None = option(None, "Label of the model the gap plot and table (and the judge) compare against.")
    data_path: list[str] = option(
        [], "TASK=PATH: read TASK's problems from a local JSONL/JSON file instead of the Hub (repeatable).", repeat=True
    )
    bar_k: int | None = option(None, "k of the per-length bar plot (pass@k, 1 <= k <= n; default min(5, n)).")
    transfer_tasks: list[str] = option([], "Held-out tasks for the transfer panel (comma-separated).")
    device: str | None = option(None, "Torch device (default: CPU).")
    dtype: str | None = option(None, "Model dtype, e.g. bfloat16 (default: as stored).")
    trust_remote_code: bool = option(False, "Allow checkpoints' own modeling code (Dream).")
    plots: bool = option(True, "Write the PNG figures (--no-plots: skip them).")
    judge_model: str | None = option(
        None,
        "LLM judge of approach diversity (docs/eval.md): a local Hugging Face "
        "causal LM (directory or Hub id), or the model name at --judge-url. "
        "Compares every model with --base on the problems both solved. "
        "Default: no judge.",
    )
    judge_url: str | None = option(
        None,
        "Base URL of an OpenAI-compatible endpoint serving --judge-model "
        "(e.g. http://localhost:8000/v1); default: load the judge locally.",
    )
    judge_api_key_env: str = option(
        "OPENAI_API_KEY", "Environment variable holding the endpoint's API key (local servers usually need none)."
    )
    judge_max_tokens: int = option(1024, "Longest judge answer in tokens.", min=1)
    judge_limit: int | None = option(
        None,
        "Judge at most this many problems per (model, task, temperature, "
        "length) cell (default: every problem both solved).",
        min=1,
    )

    def validate(self) -> None:
        from trafl.eval.report import check_bar_k

        for name in ("model", "task", "out"):
            if not getattr(self, name):
                raise ConfigError(f"config field '{name}' is required (--{name.replace('_', '-')})")
        if not self.temperatures or not self.gen_lengths:
            raise ConfigError("config fields 'temperatures' and 'gen_lengths' must not be empty")
        for length in self.gen_lengths:
            self.sweep.at(length, names=SWEEP_NAMES)
        check_bar_k(self.resolved_bar_k, self.n)
        labels = [label for label, _ in self.models]
        if self.base is not None and self.base not in labels:
            raise ConfigError(f"config field 'base': '{self.base}' is not one of the model labels {labels}")
        if self.judge_model is not None and (self.base is None or len(labels) < 2):
            raise ConfigError(
                "config field 'judge_model': the judge compares every model with --base; give --base "
                f"and at least two models (got base {self.base!r}, models {labels})"
            )
        self.data_paths  # noqa: B018  (checks the TASK=PATH entries)
        if self.task_options:
            from trafl.tasks import check_task_options

            options = {name: check_task_options(name, self.task_options) for name in self.task_names}
            self.task_options = options[self.task_names[0]]
        check_device(self.device, allow_auto=False, hint="use --device cpu or leave --device out (CPU)")

    # --- the validated fields, parsed --------------------------------------------------------------
    @property
    def sweep(self) -> SamplerSweep:
        steps = self.steps
        if isinstance(steps, list):
            if len(steps) == 1:
                steps = steps[0]
            elif len(steps) != len(self.gen_lengths):
                raise ConfigError(
                    f"config field 'steps': gives {len(steps)} values for {len(self.gen_lengths)} "
                    "gen_lengths; give one or one per length"
                )
            else:
                steps = dict(zip(self.gen_lengths, steps))
        return SamplerSweep(
            steps=steps,
            block_length=self.block_length,
            remasking=self.remasking,
            cache=self.cache,
            threshold=self.threshold,
        )

    @property
    def task_names(self) -> list[str]:
        return [t.strip() for value in self.task for t in value.split(",") if t.strip()]

    @property
    def models(self) -> list[tuple[str, str]]:
        return parse_models(self.model)

    @property
    def data_paths(self) -> dict[str, str]:
        return parse_data_paths(self.data_path, self.task_names)

    @property
    def resolved_bar_k(self) -> int:
        return min(5, self.n) if self.bar_k is None else self.bar_k


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file of EvalConfig fields (command-line flags override it).")
    parser.add_argument("--quiet", action="store_true", help="No progress messages.")
    parser.add_argument(
        "--json",
        action="store_true",
        help="At the end print a one-line JSON summary (paths of results.json, results.md, plots; "
        "number of cells) instead of the pass@k table.",
    )
    add_config_arguments(parser, EvalConfig)
    parser.add_argument(
        "--no-plots",
        dest="cfg__plots",
        action="store_const",
        const="false",
        help="Skip the PNG figures (plots: false).",
    )


def parse_models(values: list[str]) -> list[tuple[str, str]]:
    """``[(label, path)]`` from ``LABEL=DIR`` or ``DIR`` (label: the directory's name)."""
    models = []
    for value in values:
        label, sep, path = value.partition("=")
        if not sep or "/" in label or not label:
            label, path = Path(value.rstrip("/")).name or value, value
        models.append((label, path))
    labels = [m[0] for m in models]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"--model labels {labels} are not distinct; write --model LABEL=DIR")
    return models


def parse_data_paths(values: list[str], tasks: list[str]) -> dict[str, str]:
    paths = {}
    for value in values:
        task, sep, path = value.partition("=")
        if not sep or not task or not path:
            raise ConfigError(f"--data-path expects TASK=PATH, got {value!r}")
        if task not in tasks:
            raise ConfigError(f"--data-path names task '{task}', which is not among --task {tasks}")
        if not Path(path).is_file():
            raise ConfigError(f"--data-path {task}: file '{path}' does not exist")
        paths[task] = path
    return paths


def check_model_source(path: str) -> None:
    """Fail fast (before hours of sampling) on a model directory that cannot be loaded."""
    p = Path(path).expanduser()
    if not p.exists():
        from trafl.models.loading import is_hub_id

        if is_hub_id(path):  # not ./x, x/, runs/x with a runs/ folder here, ...
            return  # a Hub id; resolved when the model is loaded
        raise CheckpointError(f"--model: directory '{path}' does not exist")
    if not p.is_dir():
        raise CheckpointError(f"--model: '{path}' is a file; expected a checkpoint directory")
    config = p / "config.json"
    if not config.is_file() or not os.access(config, os.R_OK):
        raise CheckpointError(f"--model: '{path}' has no readable config.json; expected a saved checkpoint directory")
    try:
        json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"--model: {config} is not valid JSON ({exc})") from exc


def run(args: argparse.Namespace) -> int:
    from trafl.eval.evaluate import EvalPlan, ModelSpec, TaskSpec, load_task_rows, log_to_stderr, run_evaluation
    from trafl.eval.generation import SamplerGenerator
    from trafl.eval.report import render_markdown, render_summary
    from trafl.tasks import get_task
    from trafl.utils.io import atomic_write_json, atomic_write_text

    cfg = load_config(EvalConfig, args.config, overrides_from_args(args))
    plan = EvalPlan(
        n=cfg.n,
        temperatures=list(cfg.temperatures),
        gen_lengths=list(cfg.gen_lengths),
        seed=cfg.seed,
        limit=cfg.limit,
        batch_size=cfg.batch_size,
    )
    plan.validate()
    tasks = {name: get_task(name, **cfg.task_options) for name in cfg.task_names}
    for _, path in cfg.models:
        check_model_source(path)

    specs = [
        TaskSpec(task, load_task_rows(task, path=cfg.data_paths.get(name), limit=plan.limit), name)
        for name, task in tasks.items()
    ]
    sweep = cfg.sweep
    model_specs = [
        ModelSpec(
            label,
            path,
            (
                lambda p=path: SamplerGenerator.from_pretrained(
                    p, sweep, device=cfg.device, dtype=cfg.dtype, trust_remote_code=cfg.trust_remote_code
                )
            ),
            sweep,
        )
        for label, path in cfg.models
    ]
    out = Path(cfg.out)
    results = run_evaluation(
        model_specs, specs, plan, out, base=cfg.base, progress=None if args.quiet else log_to_stderr
    )
    report = render_markdown(results)
    if cfg.judge_model is not None:
        results["judge"] = run_judge(cfg, results, specs, out)
        atomic_write_json(out / "results.json", results)
        from trafl.eval.judge import render_judge_markdown

        report += "\n" + render_judge_markdown(results["judge"]["comparisons"], cfg.judge_model)
    atomic_write_text(out / "results.md", report)
    plots = []
    if cfg.plots:
        from trafl.eval.plots import write_plots

        plots = write_plots(
            results, out, base=cfg.base, bar_k=cfg.resolved_bar_k, transfer_tasks=list(cfg.transfer_tasks)
        )
    if args.json:
        print(json.dumps(run_summary(results, out, plots)))
    else:
        print(render_summary(results))
        print(f"\nFull report: {out / 'results.md'}")
    return 0


def run_summary(results: dict, out: Path, plots: list[Path]) -> dict:
    """What ``--json`` prints: where the outputs are and how many cells were evaluated."""
    return {
        "results": str(out / "results.json"),
        "report": str(out / "results.md"),
        "plots": [str(p) for p in plots],
        "cells": len(results["results"]),
    }


def run_judge(cfg: EvalConfig, results: dict, specs: list, out: Path) -> dict:
    """The ``judge`` entry of ``results.json``: the judge's settings and its comparisons."""
    from trafl.eval import judge as judge_lib
    from trafl.eval.evaluate import problem_ids

    judge = judge_lib.make_judge(
        cfg.judge_model,
        url=cfg.judge_url,
        max_tokens=cfg.judge_max_tokens,
        api_key_env=cfg.judge_api_key_env,
        device=cfg.device,
        dtype=cfg.dtype,
        trust_remote_code=cfg.trust_remote_code,
    )
    problems = {
        spec.name: dict(zip(problem_ids(spec.rows), (spec.task.prompt_text(r) for r in spec.rows))) for spec in specs
    }
    comparisons = judge_lib.judge_against_base(
        judge, results, out, problems, cfg.base, seed=cfg.seed, limit=cfg.judge_limit
    )
    return {
        "model": cfg.judge_model,
        "url": cfg.judge_url,
        "seed": cfg.seed,
        "limit": cfg.judge_limit,
        "comparisons": comparisons,
    }
