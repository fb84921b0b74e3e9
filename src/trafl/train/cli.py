"""``trafl train``: RL post-training (TraFL or a baseline) of a dLLM on a task's rewards.

Single process: ``trafl train --config configs/X.yaml [--field value ...]``.
Several processes / GPUs: ``accelerate launch --config_file configs/accelerate/ddp.yaml -m trafl.cli train ...``.
"""

from __future__ import annotations

import argparse
import json

from trafl.objectives.registry import add_objective_arguments
from trafl.train.config import TrainConfig
from trafl.utils.config import add_config_arguments, load_config, overrides_from_args


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
    last = result.history[-1] if result.history else {}
    print(json.dumps({"output_dir": str(result.output_dir), "steps": result.steps, "final_reward": last.get("reward")}))
    return 0
