"""``trafl plan``: predict per-GPU memory and FLOPs of a ``trafl train`` run before launching it.

    trafl plan --model llada-8b --train-config configs/paper/llada8b_gsm8k_512_trafl.yaml \\
        --accelerate-config configs/accelerate/zero2.yaml [--gpu-memory-gib 80] [--json]
    trafl plan --model tests/fixtures/llada8b_instruct_config.json --train-config X.yaml \\
        --train-overrides use_peft=false num_generations=16

Also ``python -m trafl.plan ...``. The formulas are in docs/plan.md. Exit status 0 when the run
fits, 1 when it does not, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
from typing import get_type_hints

from trafl.utils.config import literal_choices, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from trafl.plan.planner import PlanConfig

    parser.add_argument("--config", help="YAML file of PlanConfig fields (flags override it).")
    parser.add_argument("--model", help="Preset name or config.json (file or directory).")
    parser.add_argument("--train-config", help="TrainConfig YAML.")
    parser.add_argument("--accelerate-config", help="accelerate config YAML (default: one process).")
    parser.add_argument(
        "--train-overrides",
        nargs="*",
        default=None,
        metavar="KEY=VALUE",
        help="TrainConfig overrides, e.g. use_peft=false num_generations=16.",
    )
    parser.add_argument("--gpu-memory-gib", type=float, help="GPU memory in GiB (default 80).")
    parser.add_argument("--headroom", type=float, help="Fraction kept free (default 0.1).")
    parser.add_argument("--prompt-length", type=int, help="Padded prompt width (default: max_prompt_length).")
    parser.add_argument("--gradient-checkpointing", metavar="true|false", help="Override the train config's.")
    for name in ("weights_dtype", "device", "attention"):  # their values: the PlanConfig field's Literal
        values = literal_choices(get_type_hints(PlanConfig)[name])
        default = PlanConfig.__dataclass_fields__[name].default
        parser.add_argument("--" + name.replace("_", "-"), help=f"{', '.join(values or ())} (default {default}).")
    parser.add_argument("--json", action="store_true", help="Print the plan as JSON.")
    parser.set_defaults(_plan_fields=[f for f in PlanConfig.__dataclass_fields__])


def run(args: argparse.Namespace) -> int:
    from trafl.plan.planner import PlanConfig, format_plan, make_plan

    overrides = {k: getattr(args, k) for k in args._plan_fields if getattr(args, k, None) is not None}
    pc = load_config(PlanConfig, args.config, overrides)
    plan = make_plan(pc)
    print(json.dumps(plan.to_dict(), indent=2) if args.json else format_plan(plan))
    return 0 if plan.fits else 1
