"""The sampler sections of benchmarks/run.py: ``sampler`` (tokens/s of the reference loop and of trafl's
sampler variants, token identity at T = 0), ``threshold`` and ``accuracy`` (the variants on the trained
demo model); and the variants' names and sampler closures that the ``long`` section reuses.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks.harness import memory_of, print_side_by_side, side_by_side
from benchmarks.reference_sampler import reference_generate
from trafl.demo import ASSET_BASE
from trafl.models import build_model, load_pretrained
from trafl.models.kv_cache import CACHE_MODES
from trafl.sampling import SamplerSettings, generate, row_generators

DEFAULT_TRAINED = str(ASSET_BASE)  # the trained base shipped for trafl demo (decoy_rule since the study moved to it)
TRAINED_TASK = "decoy_rule"

# (batch, gen_length, steps, block_length)
SAMPLER_SETTINGS = [(1, 256, 256, 32), (4, 256, 256, 32), (4, 256, 128, 32)]
SAMPLER_SETTINGS_QUICK = [(2, 64, 64, 16)]

# name -> (cache, threshold)
VARIANTS: dict[str, tuple[str, float | None]] = {
    "trafl": ("none", None),
    "prefix": ("prefix", None),
    "dual": ("dual", None),
    "thr0.9": ("none", 0.9),
    "dual+thr0.9": ("dual", 0.9),
}


def _sampler_fn(
    model, ids, attn, gen_length, steps, block, cache, threshold, temperature=0.0, num_samples=1, seed=0
) -> Callable[[], Any]:
    def run():
        gens = row_generators(seed, ids.shape[0], num_samples) if temperature > 0 else None
        return generate(
            model,
            ids,
            attn,
            settings=SamplerSettings(
                gen_length=gen_length,
                steps=steps,
                block_length=block,
                temperature=temperature,
                cache=cache,
                threshold=threshold,
            ),
            num_samples=num_samples,
            generator=gens,
        )

    return run


def parse_variant(name: str) -> tuple[str, float | None]:
    """A sampler variant's ``(cache, threshold)`` from its name: one of ``VARIANTS``, or
    ``"<cache>+thr<tau>"`` with cache ``none`` / ``prefix`` / ``dual`` and ``0 <= tau <= 1``
    (``"dual+thr0.99"``), for threshold sweeps."""
    if name in VARIANTS:
        return VARIANTS[name]
    cache, sep, tau = name.partition("+thr")
    try:
        threshold = float(tau)
    except ValueError:
        threshold = -1.0
    if not sep or cache not in CACHE_MODES or not 0.0 <= threshold <= 1.0:
        raise SystemExit(
            f"sampler variant {name!r}: expected one of {sorted(VARIANTS)} or '<cache>+thr<tau>' with cache "
            f"one of {'/'.join(CACHE_MODES)} and 0 <= tau <= 1 (e.g. dual+thr0.99)"
        )
    return cache, threshold


def bench_sampler(args, record: dict) -> bool:
    torch.manual_seed(0)
    model = build_model("tiny").eval()
    mask_id = model.config.mask_token_id
    settings = SAMPLER_SETTINGS_QUICK if args.quick else SAMPLER_SETTINGS
    identical_all, rows = True, []
    for batch, gen_length, steps, block in settings:
        g = torch.Generator().manual_seed(1)
        ids = torch.randint(3, model.config.vocab_size, (batch, 16), generator=g)
        attn = torch.ones_like(ids)
        attn[0, :4] = 0  # one left-padded prompt
        fns = {
            "reference": lambda: reference_generate(
                model, ids, attn, gen_length=gen_length, steps=steps, block_length=block, mask_token_id=mask_id
            )
        }
        for name, (cache, thr) in VARIANTS.items():
            fns[name] = _sampler_fn(model, ids, attn, gen_length, steps, block, cache, thr)
        ref_tokens = fns["reference"]()
        ours = fns["trafl"]()
        identical = torch.equal(ref_tokens, ours.sequences)
        identical_all &= identical
        sbs = side_by_side(fns, baseline="reference", repeats=args.repeats)
        memory = memory_of(fns)
        agree = {name: float((fns[name]().completion == ours.completion).float().mean()) for name in VARIANTS}
        for name in fns:
            rows.append(
                {
                    "batch": batch,
                    "L": gen_length,
                    "steps": steps,
                    "block": block,
                    "variant": name,
                    "tokens/s": batch * gen_length / sbs.median_time(name),
                    "median_s": sbs.median_time(name),
                    "x_reference": sbs.speedup(name),
                    "x_trafl": statistics.median(t / v for t, v in zip(sbs.times["trafl"], sbs.times[name])),
                    "agree_exact": agree.get(name, 1.0),
                    "peak_MiB": memory[name],
                    "identical_T0": identical if name == "trafl" else "",
                }
            )
    print_side_by_side(
        "sampler, random-weight tiny model, T=0 (x_*: median speed-up over repeats)",
        rows,
        [
            "batch",
            "L",
            "steps",
            "block",
            "variant",
            "tokens/s",
            "median_s",
            "x_reference",
            "x_trafl",
            "agree_exact",
            "peak_MiB",
            "identical_T0",
        ],
    )
    print(
        f"\ntoken identity of trafl's uncached sampler with the reference loop at T=0: "
        f"{'PASS' if identical_all else 'FAIL'}"
    )
    record["sampler"] = {"rows": rows, "token_identical": identical_all}
    return identical_all


def _trained(args):
    path = Path(args.trained_model)
    if not (path / "config.json").exists():
        print(f"\n(skipped: no trained model at {path}; pass --trained-model DIR)")
        return None, None
    model, tok = load_pretrained(str(path))
    return model.eval(), tok


def bench_threshold(args, record: dict) -> None:
    model, tok = _trained(args)
    if model is None:
        return
    from trafl.sampling import decode_completions
    from trafl.tasks import get_task

    task = get_task(TRAINED_TASK)
    rows_data = task.load("test")[: (2 if args.quick else 8)]
    enc = tok([task.format_prompt(r, tok) for r in rows_data], return_tensors="pt", padding=True)
    prompt_len = enc.input_ids.shape[1]
    room = model.config.max_sequence_length - prompt_len
    block = 32
    gen_length = min(256 if not args.quick else 64, room // block * block)
    fns, nfe = {}, {}
    for name, (cache, thr) in VARIANTS.items():
        fns[name] = _sampler_fn(model, enc.input_ids, enc.attention_mask, gen_length, gen_length, block, cache, thr)
        nfe[name] = fns[name]().num_forward
    sbs = side_by_side(fns, baseline="trafl", repeats=args.repeats)
    exact = fns["trafl"]()
    rows = []
    for name in fns:
        out = fns[name]()
        answers = decode_completions(tok, out.completion, tok.eos_token_id)
        rows.append(
            {
                "variant": name,
                "L": gen_length,
                "block": block,
                "forward_passes": nfe[name],
                "median_s": sbs.median_time(name),
                "x_trafl": sbs.speedup(name),
                "agree_exact": float((out.completion == exact.completion).float().mean()),
                "solved": sum(task.is_correct(a, r) for a, r in zip(answers, rows_data)),
            }
        )
    print_side_by_side(
        f"threshold decoding and cache, trained {TRAINED_TASK} model, {len(rows_data)} prompts, T=0, "
        f"steps=L (one token per step)",
        rows,
        ["variant", "L", "block", "forward_passes", "median_s", "x_trafl", "agree_exact", "solved"],
    )
    record["threshold"] = {"rows": rows, "model": args.trained_model}


def bench_accuracy(args, record: dict) -> None:
    model, tok = _trained(args)
    if model is None:
        return
    from trafl.eval.passk import pass_at_k
    from trafl.sampling import decode_completions
    from trafl.tasks import get_task

    task = get_task(TRAINED_TASK)
    data = task.load("test")[: (20 if args.quick else 100)]
    n, gen_length = 16, args.accuracy_length
    enc = tok([task.format_prompt(r, tok) for r in data], return_tensors="pt", padding=True)
    rows, exact = [], None
    for name, (cache, thr) in VARIANTS.items():
        t0 = time.perf_counter()
        out = _sampler_fn(
            model,
            enc.input_ids,
            enc.attention_mask,
            gen_length,
            gen_length,
            args.accuracy_block,
            cache,
            thr,
            temperature=args.accuracy_temperature,
            num_samples=n,
        )()
        seconds = time.perf_counter() - t0
        exact = out if exact is None else exact
        texts = decode_completions(tok, out.completion, tok.eos_token_id)
        correct = torch.tensor([task.is_correct(texts[i], data[i // n]) for i in range(len(texts))]).view(len(data), n)
        c = correct.sum(dim=1).tolist()
        p1 = torch.tensor([pass_at_k(n, ci, 1) for ci in c])
        p16 = torch.tensor([pass_at_k(n, ci, 16) for ci in c])
        se = lambda x: float(x.std(unbiased=True) / len(x) ** 0.5)  # noqa: E731
        rows.append(
            {
                "variant": name,
                "pass@1": 100 * float(p1.mean()),
                "se1": 100 * se(p1),
                "pass@16": 100 * float(p16.mean()),
                "se16": 100 * se(p16),
                "same_as_exact": float((out.completion == exact.completion).all(dim=1).float().mean()),
                "forward_passes": out.num_forward,
                "seconds": seconds,
            }
        )
    print_side_by_side(
        f"accuracy on {TRAINED_TASK} ({len(data)} test prompts x {n} samples, T={args.accuracy_temperature}, "
        f"L={gen_length}, block={args.accuracy_block}, steps=L; pass@k in %, se = standard error over prompts; "
        f"same_as_exact = share of samples identical to the exact sampler's with the same seeds)",
        rows,
        ["variant", "pass@1", "se1", "pass@16", "se16", "same_as_exact", "forward_passes", "seconds"],
    )
    record["accuracy"] = {
        "rows": rows,
        "model": args.trained_model,
        "n": n,
        "prompts": len(data),
        "temperature": args.accuracy_temperature,
        "gen_length": gen_length,
        "block_length": args.accuracy_block,
    }
