"""``trafl sft``: masked-diffusion supervised fine-tuning from a JSONL of prompt/completion pairs."""

from __future__ import annotations

import argparse
import json

from trafl.sft.config import SFTConfig
from trafl.utils.config import add_config_arguments, load_config, overrides_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file of SFTConfig fields (command-line flags override it).")
    parser.add_argument("--quiet", action="store_true", help="No progress bar.")
    add_config_arguments(parser, SFTConfig)


def run(args: argparse.Namespace) -> int:
    from trafl.sft.trainer import run_sft

    cfg = load_config(SFTConfig, args.config, overrides_from_args(args))
    result = run_sft(cfg, progress=not args.quiet)
    from accelerate.state import PartialState

    if not PartialState().is_main_process:  # one summary per run, not per process
        return 0
    print(
        json.dumps(
            {
                "model": str(result.output_dir),
                "steps": result.steps,
                "eval_loss_start": round(result.initial_eval_loss, 4),
                "eval_loss_end": round(result.final_eval_loss, 4),
            }
        )
    )
    return 0
