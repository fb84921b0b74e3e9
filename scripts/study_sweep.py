"""Choose the study's settings on the validation split (never on held-out prompts).

Trains each variant on the training prompts with the demo's budget (``trafl.study.runs.train_fields``
of the demo's settings plus the variant's overrides), then scores every finished run and the base on the validation
prompts (letter sets disjoint from both train and test) at one temperature, and writes a table of
seed-mean pass@1 / pass@16, paired differences to the base, distinct answers and path entropy::

    python scripts/study_sweep.py --out runs/sweep --variants "trafl_gn_b1_vg:method=trafl,beta=1,reward_transform=group_norm,logz=vargrad" --seeds 0,1
    python scripts/study_sweep.py --out runs/sweep --eval-only

Variants are ``name:key=value,...`` with any ``trafl train`` field or objective option; runs are
labelled ``name-s<seed>`` and skipped when already trained, so several processes can train
different variants into the same ``--out`` and one ``--eval-only`` call scores them all.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from trafl.demo import DemoConfig, ensure_base, eval_settings
from trafl.eval.paired import paired_difference
from trafl.study.analysis import method_cells, parse_label, path_summary
from trafl.study.evaluation import evaluate
from trafl.study.runs import Run, reward_ends, train_fields, train_run, trained_runs
from trafl.utils.config import load_config
from trafl.utils.io import atomic_write_text


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, body = text.partition(":")
    items = [item for item in body.split(",") if item]
    bad = [item for item in items if "=" not in item]
    if not name or bad:
        raise SystemExit(f"--variants {text!r}: expected name:key=value,key=value (bad: {bad or 'empty name'})")
    return name, dict(item.split("=", 1) for item in items)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--variants", nargs="*", default=[])
    p.add_argument("--seeds", default="0")
    p.add_argument("--eval-only", action="store_true")
    p.add_argument("--eval-prompts", type=int, default=180)
    p.add_argument("--eval-n", type=int, default=32)
    p.add_argument("--temperature", type=float, default=0.9)
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--num-threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.num_threads)
    out = Path(args.out)
    cfg = load_config(
        DemoConfig,
        None,
        {
            "eval_split": "validation",
            "eval_prompts": args.eval_prompts,
            "eval_n": args.eval_n,
            "k_max": args.k,
            "num_threads": args.num_threads,
            "eval_temperatures": [args.temperature],
            "frontier_temperature": args.temperature,
            "checkpoints": 1,
        },
    )
    base = ensure_base(cfg, out)
    runs = [
        Run(
            f"{name}-s{seed}",
            {**train_fields(cfg, o.get("method", "trafl"), seed, base, out / "runs" / f"{name}-s{seed}"), **o},
        )
        for name, o in map(parse_variant, args.variants)
        for seed in (int(s) for s in args.seeds.split(","))
    ]
    for run in runs:
        if (seconds := train_run(run, out)[1]) is not None:
            print(f"{run.label}: trained in {seconds:.0f} s", flush=True)
    if args.variants and not args.eval_only:
        return
    models = {"base": base, **trained_runs(out)}
    settings = eval_settings(cfg)
    rows = settings.rows()
    results = evaluate(settings, models, out / "eval", [args.temperature], rows)
    base_cell = next(c for c in results["results"] if c["model"] == "base")
    names = sorted({parse_label(m)[0] for m in models if m != "base"})
    lines = [
        f"Validation split: {len(rows)} prompts x {args.eval_n} samples, T = {args.temperature}; seed means; "
        "paired differences to the base (s.e. over prompts).",
        "",
        f"| variant | seeds | train reward first -> last 10 | pass@1 | pass@{args.k} | pass@1 - base | pass@{args.k} - base | "
        "distinct correct | order entropy |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| base | — | — | {100 * base_cell['pass_at_k'][0]:.1f} | {100 * base_cell['pass_at_k'][args.k - 1]:.1f} | — | — | "
        f"{base_cell['distinct_correct']['mean']:.2f} | {path_summary(base_cell)['order_entropy']:.2f} |",
    ]
    table = {}
    for name in names:
        cells = method_cells(results, name, args.temperature)
        rewards = [reward_ends(out / "runs" / c["model"], window=10) for c in cells]
        d1, dk = paired_difference(cells, base_cell, 1), paired_difference(cells, base_cell, args.k)
        per_seed_k = [paired_difference([c], base_cell, args.k)["diff"] for c in cells]
        ent = [path_summary(c)["order_entropy"] for c in cells]
        table[name] = {
            "seeds": len(cells),
            "pass@1": d1["model"],
            f"pass@{args.k}": dk["model"],
            "d1": d1,
            "dk": dk,
            "per_seed_dk": per_seed_k,
            "rewards": rewards,
        }
        lines.append(
            f"| {name} | {len(cells)} | "
            + ", ".join(f"{a:.2f} -> {b:.2f}" for a, b in rewards)
            + f" | {100 * d1['model']:.1f} | {100 * dk['model']:.1f} | {100 * d1['diff']:+.1f} +- {100 * d1['stderr']:.1f} | "
            f"{100 * dk['diff']:+.1f} +- {100 * dk['stderr']:.1f} (seeds: {', '.join(f'{100 * v:+.1f}' for v in per_seed_k)}) | "
            f"{sum(c['distinct_correct']['mean'] for c in cells) / len(cells):.2f} | {sum(ent) / len(ent):.2f} |"
        )
    text = "\n".join(lines) + "\n"
    atomic_write_text(out / "validation.md", text)
    (out / "validation.json").write_text(json.dumps(table, indent=1))
    print(text)


if __name__ == "__main__":
    main()
