"""The ``long`` section of benchmarks/run.py: the sampler variants' speed and accuracy on the shipped
``count_range`` base at long canvases (L = 256 and 512).
"""

from __future__ import annotations

import statistics
from pathlib import Path

import torch

from benchmarks.bench_sampling import _sampler_fn, parse_variant
from benchmarks.harness import print_side_by_side, timed
from trafl.models import load_pretrained

LONG_BASE = str(Path(__file__).resolve().parents[1] / "src/trafl/assets/long_base")
# gen_length -> count_range's max_count (answers of 4 count - 1 characters: <= 251 fit L = 256 with their EOS)
LONG_SETTINGS = {256: 63, 512: 120}
# threshold 0.99: the smallest tau within 1 point of exact at both L on the validation split (docs/performance.md)
LONG_VARIANTS = ("trafl", "prefix", "dual", "dual+thr0.9", "dual+thr0.99")


def _percent_mean_se(xs: list[float]) -> tuple[float, float]:
    """Mean and its standard error (``stdev / sqrt(n)``; 0 for one value), both in %."""
    se = statistics.stdev(xs) / len(xs) ** 0.5 if len(xs) > 1 else 0.0
    return 100 * statistics.mean(xs), 100 * se


def bench_long(args, record: dict) -> None:
    from trafl.sampling import decode_completions
    from trafl.tasks import get_task
    from trafl.tasks.synthetic.count_range import MISS_KINDS, miss_kind, partial_credit, step_share

    path = Path(args.long_model)
    if not (path / "config.json").exists():
        print(f"\n## long: skipped (no model at {path}; pass --long-model DIR)")
        return
    device = torch.device(args.device)
    model, tok = load_pretrained(str(path))
    model.to(device).eval()
    batch, block = 8, 32
    n_prompts = 8 if args.quick else args.long_prompts
    n_single = min(1, args.long_single) if args.quick else args.long_single
    rows, lengths = [], [int(x) for x in args.long_lengths.split(",")]
    variants = [v for v in args.long_variants.split(",") if v]
    if not variants or variants[0] != "trafl":
        raise SystemExit(
            f"--long-variants: 'trafl' (the exact sampler) first, then any of {LONG_VARIANTS} or dual+thr<tau>"
        )
    settings = {name: parse_variant(name) for name in variants}
    split = args.long_split
    for gen_length, max_count in LONG_SETTINGS.items():
        if gen_length not in lengths or (args.quick and gen_length != 256):
            continue
        task = get_task("count_range", max_count=max_count, num_eval=max(n_prompts, 200))
        data = task.load(split)[:n_prompts]
        enc = tok([task.format_prompt(r, tok) for r in data], return_tensors="pt", padding=True).to(device)
        correct = {name: [] for name in variants}
        partial = {name: [] for name in variants}
        steps_ok = {name: [] for name in variants}
        same = {name: [] for name in variants}
        nfe = {name: [] for name in variants}
        kinds = {name: [] for name in variants}
        times = {bs: {name: [] for name in variants} for bs in (1, batch)}
        for bs, starts in ((batch, range(0, len(data), batch)), (1, range(n_single))):
            for start in starts:  # each chunk is one interleaved repeat of every variant
                ids, attn = enc.input_ids[start : start + bs], enc.attention_mask[start : start + bs]
                exact = None
                for name in variants:
                    cache, thr = settings[name]
                    seconds, out = timed(_sampler_fn(model, ids, attn, gen_length, gen_length, block, cache, thr))
                    times[bs][name].append(seconds)
                    if bs == 1:
                        continue
                    exact = out if exact is None else exact
                    texts = decode_completions(tok, out.completion, tok.eos_token_id)
                    correct[name] += [task.is_correct(t, r) for t, r in zip(texts, data[start : start + bs])]
                    partial[name] += [
                        partial_credit(t.strip(), r["a"], r["b"]) for t, r in zip(texts, data[start : start + bs])
                    ]
                    steps_ok[name] += [step_share(t.strip()) for t in texts]
                    kinds[name] += [miss_kind(t, r["a"], r["b"]) for t, r in zip(texts, data[start : start + bs])]
                    same[name] += (out.completion == exact.completion).all(dim=1).tolist()
                    nfe[name].append(out.num_forward)
        for name in variants:
            p, n = sum(correct[name]) / len(correct[name]), len(correct[name])
            diffs = [int(c) - int(e) for c, e in zip(correct[name], correct["trafl"])]  # paired, per prompt
            (partial_pct, se_partial), (steps_pct, se_steps), (diff_pct, se_diff) = (
                _percent_mean_se(xs) for xs in (partial[name], steps_ok[name], diffs)
            )
            row = {
                "L": gen_length,
                "variant": name,
                "prompts": n,
                "accuracy": 100 * p,
                "se": 100 * (p * (1 - p) / n) ** 0.5,
                "partial": partial_pct,
                "se_partial": se_partial,
                "steps_ok": steps_pct,
                "se_steps": se_steps,
                "diff_vs_exact": diff_pct,
                "se_diff": se_diff,
                "same_as_exact": sum(same[name]) / n,
                "forward_passes": statistics.mean(nfe[name]),
                **{kind: kinds[name].count(kind) for kind in MISS_KINDS[1:]},
            }
            for bs in (1, batch):
                t = times[bs][name]
                if not t:  # --long-single 0: no batch-1 timing
                    continue
                row[f"tok/s b{bs}"] = bs * gen_length / statistics.median(t)
                row[f"x_exact b{bs}"] = statistics.median(e / v for e, v in zip(times[bs]["trafl"], t))
            rows.append(row)
    print_side_by_side(
        f"long answers: count_range base ({path.name}), {split} prompts, block {block}, steps = L, T = 0; accuracy = exact match in % "
        f"(se = sqrt(p(1-p)/n)), diff_vs_exact = paired difference of exact match to the exact sampler on the same prompts (se_diff: its standard error), partial = mean share of numbers right at their place, steps_ok = share of adjacent "
        f"numbers that count up by one, ran_past / stopped_early / wrong = the misses by where they leave the answer (count_range.miss_kind), over the batch-{batch} runs; x_exact = median over chunks of "
        f"t_exact / t_variant (batch 1: {n_single} prompts)",
        rows,
        [
            "L",
            "variant",
            "prompts",
            "accuracy",
            "se",
            "partial",
            "se_partial",
            "steps_ok",
            "se_steps",
            "diff_vs_exact",
            "se_diff",
            "same_as_exact",
            "forward_passes",
            "ran_past",
            "stopped_early",
            "wrong",
            "tok/s b1",
            "x_exact b1",
            "tok/s b8",
            "x_exact b8",
        ],
    )
    record["long"] = {
        "rows": rows,
        "model": str(path),
        "split": split,
        "block_length": block,
        "batch": batch,
        "single_prompts": n_single,
        "temperature": 0.0,
        "device": str(device),
    }
