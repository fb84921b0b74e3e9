"""Regenerate the tables of docs/plan.md: ``trafl plan`` for every paper config on 8 x 80 GiB GPUs.

    python scripts/plan_table.py            # print the tables
    python scripts/plan_table.py --write    # replace them in docs/plan.md (between the markers)

The model is LLaDA-8B-Instruct's config.json (tests/fixtures/llada8b_instruct_config.json); the
prompt width is each config's ``max_prompt_length``, the worst case. ``tests/test_plan.py``
checks that docs/plan.md holds exactly this output.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trafl.plan.parallel import load_accelerate_config
from trafl.plan.planner import (
    GIB,
    PlanConfig,
    load_model_config,
    load_train_config,
    make_plan,
)

REPO = Path(__file__).resolve().parents[1]

MODEL = REPO / "tests" / "fixtures" / "llada8b_instruct_config.json"
ACCELERATE = ("ddp", "zero2", "zero3", "fsdp")
BEGIN, END = "<!-- plan_table: begin -->", "<!-- plan_table: end -->"
EXPLICIT = {  # the two cases: G = 16, L = 512
    "full fine-tuning": ["use_peft=false", "num_generations=16", "per_device_train_batch_size=16"],
    "LoRA r128": ["use_peft=true", "lora_r=128", "num_generations=16", "per_device_train_batch_size=16"],
}
TERMS = (
    "parameters",
    "gradients",
    "optimizer",
    "reference",
    "gathered",
    "buffers",
    "activations",
    "rollout",
    "scoring",
)


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def _cell(plan) -> str:
    return f"{plan.total / GIB:.1f} {'✓' if plan.fits else '✗'}"


def _plan(train_path: Path, accel: str, overrides: list[str] | None = None, checkpointing: bool | None = None):
    pc = PlanConfig(
        model=_rel(MODEL),
        train_config=_rel(train_path),
        accelerate_config=f"configs/accelerate/{accel}.yaml",
        train_overrides=list(overrides or []),
        gradient_checkpointing=checkpointing,
    )
    return make_plan(
        pc,
        model=load_model_config(str(MODEL)),
        train=load_train_config(str(train_path), overrides),
        par=load_accelerate_config(REPO / "configs" / "accelerate" / f"{accel}.yaml"),
    )


def _rows(inputs: dict) -> str:
    """``R x T``, with the canvases alive at once when the objective backpropagates per chunk."""
    live = "" if inputs["graph_rows"] == inputs["scored_rows"] else f" ({inputs['graph_rows']} at once)"
    return f"{inputs['scored_rows']}{live} x {inputs['prompt_length'] + inputs['completion_length']}"


def _headroom(plans: list) -> str:
    """The smallest total's setup and the share of the GPU it leaves free."""
    best = min(plans, key=lambda p: p.total)
    return f"{best.inputs['parallel'].split()[0]} {1 - best.total / best.capacity:.0%}"


def config_table(paths: list[Path]) -> str:
    rows = [
        "| config | weights | rows x T | ckpt | " + " | ".join(ACCELERATE) + " | free (best) |",
        "|---|---|---|---|" + "---|" * (len(ACCELERATE) + 1),
    ]
    for path in paths:
        plans = [_plan(path, a) for a in ACCELERATE]
        i = plans[0].inputs
        rows.append(
            f"| `{path.stem}` | {i['weights']} | {_rows(i)} "
            f"| {'yes' if i['gradient_checkpointing'] else 'no'} | "
            + " | ".join(_cell(p) for p in plans)
            + f" | {_headroom(plans)} |"
        )
    return "\n".join(rows)


def explicit_table() -> str:
    base = REPO / "configs" / "paper" / "llada8b_gsm8k_512_trafl.yaml"
    rows = [
        "| weights | accelerate | ckpt | " + " | ".join(TERMS) + " | total | verdict |",
        "|---|---|---|" + "---|" * len(TERMS) + "---|---|",
    ]
    for name, overrides in EXPLICIT.items():
        for accel in ("zero2", "zero3", "fsdp"):
            for ckpt in (True, False):
                p = _plan(base, accel, overrides, ckpt)
                rows.append(
                    f"| {name} | {accel} | {'yes' if ckpt else 'no'} | "
                    + " | ".join(f"{p.terms[t] / GIB:.1f}" for t in TERMS)
                    + f" | {p.total / GIB:.1f} | {p.verdict} |"
                )
    return "\n".join(rows)


def render() -> str:
    paper = sorted((REPO / "configs" / "paper").glob("*.yaml"))
    published = sorted((REPO / "configs" / "paper" / "published").glob("*.yaml"))
    return "\n\n".join(
        [
            BEGIN,
            (
                "**LLaDA-8B, G = 16, L = 512, TraFL (ELBO, 2 draws: 32 scored rows of T = 1024), 8 x 80 GiB** "
                "(GiB per GPU; `configs/paper/llada8b_gsm8k_512_trafl.yaml` with G and the micro-batch set to 16):"
            ),
            explicit_table(),
            f"**The {len(paper)} matched configs (`configs/paper/*.yaml`)**, GiB per GPU on 8 x 80 GiB, ✓ fits with "
            "10% headroom:",
            config_table(paper),
            "**The published recipes (`configs/paper/published/*.yaml`)**:",
            config_table(published),
            END,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="Replace the tables in docs/plan.md.")
    args = parser.parse_args(argv)
    text = render()
    if not args.write:
        print(text)
        return 0
    doc = REPO / "docs" / "plan.md"
    old = doc.read_text()
    if BEGIN not in old or END not in old:
        raise SystemExit(f"{doc} lacks the markers {BEGIN} ... {END}")
    head, rest = old.split(BEGIN, 1)
    doc.write_text(head + text + rest.split(END, 1)[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
