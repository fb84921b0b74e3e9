"""``trafl train``: RL post-training (TraFL or a baseline) of a dLLM on a task's rewards.

Single process: ``trafl train --config configs/X.yaml [--field value ...]``.
Several processes / GPUs: ``accelerate launch --config_file configs/accelerate/ddp.yaml -m trafl.cli train ...``.

Prints one JSON line at the end: ``output_dir``, ``steps`` and the mean training reward over the
last 10 % of the steps (``reward_last_10pct_mean``, over ``reward_last_10pct_steps`` steps), read
from the run's ``metrics.jsonl`` so that a resumed run reports its whole window.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path

from trafl.objectives.registry import add_objective_arguments
from trafl.train.config import TrainConfig
from trafl.utils.config import add_config_arguments, load_config, overrides_from_args

#: The share of the last steps, in percent, whose mean reward the summary reports.
SUMMARY_PERCENT = 10
#: The per-step metrics of a run, in its output_dir.
METRICS_FILE = "metrics.jsonl"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file of TrainConfig fields (command-line flags override it).")
    parser.add_argument("--quiet", action="store_true", help="No progress bar.")
    add_config_arguments(parser, TrainConfig)
    add_objective_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from trafl.train.trainer import run_train

    cfg = load_config(TrainConfig, args.config, overrides_from_args(args))
    result = run_train(cfg, progress=not args.quiet)
    from accelerate import PartialState

    if not PartialState().is_main_process:  # one summary per run, not per process
        return 0
    mean, n = summary_reward(run_rewards(result.output_dir, result.history), result.steps)
    summary = {
        "output_dir": str(result.output_dir),
        "steps": result.steps,
        "reward_last_10pct_mean": mean,
        "reward_last_10pct_steps": n,
    }
    print(json.dumps(summary))
    return 0


def run_rewards(output_dir: str | Path, history: list[dict]) -> dict[int, float]:
    """``{step: reward}`` of the whole run: ``metrics.jsonl`` in ``output_dir`` (every logged step,
    those of earlier processes of a resumed run included), completed by this process's ``history``
    (every step it ran, logged or not)."""
    from trafl.utils.io import read_jsonl

    rewards: dict[int, float] = {}
    for record in [*read_jsonl(Path(output_dir) / METRICS_FILE), *history]:
        if "step" in record and "reward" in record:
            rewards[int(record["step"])] = float(record["reward"])
    return rewards


def summary_reward(rewards: Mapping[int, float], steps: int) -> tuple[float | None, int]:
    """(mean reward, number of steps averaged) over the last 10 % of ``steps`` (at least one step).

    The last step's reward alone is one noisy draw (a 30-step run once reported 0.0); the steps of
    the window that were never recorded (``logging_steps`` > 1 before a resume) are left out, and
    the count says how many were averaged. ``rewards`` is ``{step: reward}`` (:func:`run_rewards`)."""
    window = max(1, (steps * SUMMARY_PERCENT + 99) // 100)  # integer ceil: 0.1 * 30 > 3 in floats
    values = [r for step, r in rewards.items() if steps - window < step <= steps]
    return (sum(values) / len(values), len(values)) if values else (None, 0)
