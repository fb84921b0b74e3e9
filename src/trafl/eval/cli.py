"""``trafl eval``: pass@k and diversity of one or more models over tasks, temperatures and lengths.

    trafl eval --model base=ckpt/base --model trafl=ckpt/trafl --task gsm8k,math500 --n 16 \\
        --temperatures 0.3,0.6,0.9 --gen-lengths 256,512 --block-length 32 --base base --out runs/eval

Writes ``OUT/generations/*.jsonl`` (the cache: rerun the same command to resume), ``OUT/results.json``,
``OUT/results.md`` and ``OUT/plots/*.png``. See docs/eval.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

from trafl.errors import CheckpointError, ConfigError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", action="append", required=True, metavar="[LABEL=]DIR",
                        help="Checkpoint directory or Hub id (repeat for several models; LABEL names it in tables and plots).")
    parser.add_argument("--task", action="append", required=True, metavar="NAME[,NAME]", help="Task name(s) (repeatable).")
    parser.add_argument("--out", required=True, help="Output directory (also the generation cache: rerun to resume).")
    parser.add_argument("--n", type=int, default=16, help="Samples per problem (pass@k for k = 1..n).")
    parser.add_argument("--temperatures", default="0.3,0.6,0.9", help="Comma-separated sampling temperatures.")
    parser.add_argument("--gen-lengths", default="256,512", help="Comma-separated completion lengths (tokens).")
    parser.add_argument("--steps", default=None,
                        help="Denoising steps: one value for every length or one per --gen-lengths entry (default: the length).")
    parser.add_argument("--block-length", type=int, default=32, help="Semi-autoregressive block length.")
    parser.add_argument("--remasking", default="low_confidence", choices=("low_confidence", "random"),
                        help="Which masked positions the sampler commits at each step.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the per-sample noise.")
    parser.add_argument("--limit", type=int, default=None, help="Evaluate only the first LIMIT problems of each task.")
    parser.add_argument("--batch-size", type=int, default=4, help="Problems per sampler call (does not change the results).")
    parser.add_argument("--base", default=None, help="Label of the model the gap plot and table compare against.")
    parser.add_argument("--data-path", action="append", default=[], metavar="TASK=PATH",
                        help="Read TASK's problems from a local JSONL/JSON file instead of the Hub.")
    parser.add_argument("--bar-k", type=int, default=None,
                        help="k of the per-length bar plot (pass@k, 1 <= k <= n; default min(5, n)).")
    parser.add_argument("--transfer-tasks", default="", help="Comma-separated held-out tasks for the transfer panel.")
    parser.add_argument("--device", default=None, help="Torch device (default: CPU).")
    parser.add_argument("--dtype", default=None, help="Model dtype, e.g. bfloat16 (default: as stored).")
    parser.add_argument("--trust-remote-code", action="store_true", help="Allow checkpoints' own modeling code (Dream).")
    parser.add_argument("--no-plots", action="store_true", help="Skip the PNG figures.")
    parser.add_argument("--quiet", action="store_true", help="No progress messages.")


def parse_list(text: str, cast: type, flag: str) -> list:
    try:
        values = [cast(v) for v in str(text).split(",") if v.strip()]
    except ValueError as exc:
        raise ConfigError(f"{flag} expects comma-separated {cast.__name__} values, got {text!r}") from exc
    if not values:
        raise ConfigError(f"{flag} is empty")
    return values


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


def parse_steps(text: str | None, lengths: list[int]) -> int | dict[int, int] | None:
    if text is None:
        return None
    steps = parse_list(text, int, "--steps")
    if len(steps) == 1:
        return steps[0]
    if len(steps) != len(lengths):
        raise ConfigError(f"--steps gives {len(steps)} values for {len(lengths)} --gen-lengths; give one or one per length")
    return dict(zip(lengths, steps))


def check_model_source(path: str) -> None:
    """Fail fast (before hours of sampling) on a model directory that cannot be loaded."""
    p = Path(path).expanduser()
    if not p.exists():
        if _HUB_ID.match(path) and not path.startswith((".", "~", "/")):
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
    from trafl.eval.generation import SamplerGenerator, SamplerSettings
    from trafl.eval.report import check_bar_k, render_markdown
    from trafl.tasks import get_task
    from trafl.utils.io import atomic_write_text

    plan = EvalPlan(n=args.n, temperatures=parse_list(args.temperatures, float, "--temperatures"),
                    gen_lengths=parse_list(args.gen_lengths, int, "--gen-lengths"), seed=args.seed,
                    limit=args.limit, batch_size=args.batch_size)
    plan.validate()
    bar_k = min(5, plan.n) if args.bar_k is None else args.bar_k
    check_bar_k(bar_k, plan.n)
    settings = SamplerSettings(steps=parse_steps(args.steps, plan.gen_lengths), block_length=args.block_length,
                               remasking=args.remasking)
    for length in plan.gen_lengths:
        settings.check(length)
    task_names = [t.strip() for value in args.task for t in value.split(",") if t.strip()]
    tasks = {name: get_task(name) for name in task_names}
    data_paths = parse_data_paths(args.data_path, task_names)
    models = parse_models(args.model)
    if args.base is not None and args.base not in [label for label, _ in models]:
        raise ConfigError(f"--base '{args.base}' is not one of the model labels {[label for label, _ in models]}")
    for _, path in models:
        check_model_source(path)

    specs = [TaskSpec(task, load_task_rows(task, path=data_paths.get(name), limit=plan.limit), name)
             for name, task in tasks.items()]
    model_specs = [
        ModelSpec(label, path, (lambda p=path: SamplerGenerator.from_pretrained(
            p, settings, device=args.device, dtype=args.dtype, trust_remote_code=args.trust_remote_code)), settings)
        for label, path in models
    ]
    out = Path(args.out)
    results = run_evaluation(model_specs, specs, plan, out, base=args.base,
                             progress=None if args.quiet else log_to_stderr)
    atomic_write_text(out / "results.md", render_markdown(results))
    plots = []
    if not args.no_plots:
        from trafl.eval.plots import write_plots

        transfer = [t.strip() for t in args.transfer_tasks.split(",") if t.strip()]
        plots = write_plots(results, out, base=args.base, bar_k=bar_k, transfer_tasks=transfer)
    print(json.dumps({"results": str(out / "results.json"), "report": str(out / "results.md"),
                      "plots": [str(p) for p in plots], "cells": len(results["results"])}))
    return 0
