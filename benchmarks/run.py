"""trafl's benchmark: every figure side by side in one run, printed as ratios of medians over repeats.

    python benchmarks/run.py                  # all sections (about 10-15 min on 2 CPU cores)
    python benchmarks/run.py --quick          # smaller shapes, a smoke run (about 1-2 min)
    python benchmarks/run.py --sections sampler,elbo --repeats 5

Sections:

* ``sampler``: tokens/s of the LLaDA reference loop (:mod:`reference_sampler`, full forward every
  step, no cache) and of trafl's sampler without cache, with the prefix / dual block KV cache and
  with threshold decoding, at several (batch, gen length, steps, block) settings on a
  random-weight tiny model; checks that trafl's uncached sampler is token-identical to the
  reference at temperature 0 (the run exits with status 1 if not).
* ``threshold``: the same variants on the trained demo model at a long canvas (a trained model
  is needed: threshold decoding only helps where the model is confident, e.g. on EOS tails).
* ``accuracy``: pass@1 / pass@16 on the demo task's held-out prompts for every variant with the trained model
  at its own completion length, and the fraction of samples identical to the exact sampler's.
* ``elbo``: the Monte-Carlo ELBO estimator's cost over the bare forward passes it needs.
* ``train``: one update of each objective (TraFL / ESPO / JustGRPO / diffu-GRPO) at equal settings, then one
  rollout batch's whole update at each method's own recipe (ESPO 8 inner iterations on its 4-draw ELBO with
  fresh noise per iteration, d1 12 with fresh prompt masks, JustGRPO and TraFL 1).
* ``rlstep``: an RL step's wall time split into rollout / reward / prepare / update with exact and with
  fast rollouts (dual cache + threshold 0.9), at the demo's shapes and on the long base at L = 256.
* ``grading``: code-reward grading throughput (programs/s, ``--grading-workers`` sandboxes in
  parallel) on the same MBPP reference programs with the old assert-append harness (``append``,
  gameable: one process per program) and the grading path (``isolated``: a trusted grader process
  plus the sandboxed program serving calls over frames); ratios are over ``append``. Needs the MBPP
  copy (``--mbpp``).
* ``demo`` (opt-in, not in the default list: it takes the demo's own ~11 minutes): runs
  ``trafl demo`` (``--quick`` with ``--quick``) from scratch in a temporary directory as a
  subprocess with torch's default threads, and reports its wall time and each stage's time against
  the budget (15 min full, 3 min quick).
* ``long`` (opt-in: about 1 h on 2 CPU cores with the defaults, 3 min on one H200 with
  ``--device cuda``): the speed-ups on a model that answers at long canvases, the shipped
  ``count_range`` base (:mod:`trafl.tasks.synthetic.count_range`, answers of 203-479 characters), at
  L = 256 and 512, block 32, steps = L, T = 0: tokens/s of the exact sampler, the prefix and dual
  caches and dual + threshold 0.9 and 0.99 (``--long-variants``) at batch 1 and 8 (ratios over the exact
  sampler, interleaved per chunk of prompts), forward passes per sequence, and per variant on
  ``--long-prompts`` held-out prompts exact-match accuracy (standard error ``sqrt(p(1-p)/n)``), its
  paired difference to the exact sampler on the same prompts (with its standard error), partial
  credit, the share of adjacent numbers that count up by one, and the misses by where they leave
  the answer (ran past ``b`` / stopped early / a wrong number). Prompts come from the ``test`` split;
  ``--long-split validation`` with variants such as ``dual+thr0.99`` is for choosing a threshold
  without touching the test prompts.

Peak memory is reported per variant. Every section's record (with the machine) is appended to the
JSON-lines file ``--out`` (default ``benchmarks/results.jsonl``) so that changes can be compared.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import format_table, machine, peak_memory, side_by_side, timed  # noqa: E402
from benchmarks.reference_sampler import reference_generate  # noqa: E402
from benchmarks.steps import METHODS, build_objective, make_trainable, random_group, rollout_batch_update, update_step  # noqa: E402
from trafl.likelihood import CanvasBatch, draw_elbo_masks, elbo  # noqa: E402
from trafl.likelihood.tokens import mask_completion  # noqa: E402
from trafl.models import build_model, get_logits, load_pretrained  # noqa: E402
from trafl.models.kv_cache import CACHE_MODES  # noqa: E402
from trafl.sampling import SamplerSettings, generate, row_generators  # noqa: E402
from trafl.tasks.base import EvalSplit  # noqa: E402
from trafl.utils.io import append_jsonl  # noqa: E402

SECTIONS = ("sampler", "threshold", "accuracy", "elbo", "train", "rlstep", "grading")
OPT_IN_SECTIONS = ("demo", "long")
DEMO_BUDGET_S = {False: 15 * 60.0, True: 3 * 60.0}
from trafl.demo import ASSET_BASE  # noqa: E402

DEFAULT_TRAINED = str(ASSET_BASE)  # the trained base shipped for trafl demo (decoy_rule since the study moved to it)
TRAINED_TASK = "decoy_rule"
LONG_BASE = str(Path(__file__).resolve().parents[1] / "src/trafl/assets/long_base")
# gen_length -> count_range's max_count (answers of 4 count - 1 characters: <= 251 fit L = 256 with their EOS)
LONG_SETTINGS = {256: 63, 512: 120}
# threshold 0.99: the smallest tau within 1 point of exact at both L on the validation split (docs/performance.md)
LONG_VARIANTS = ("trafl", "prefix", "dual", "dual+thr0.9", "dual+thr0.99")

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


def _memory_of(fns: dict[str, Callable[[], Any]]) -> dict[str, float]:
    return {name: round(peak_memory(fn)[0], 1) for name, fn in fns.items()}


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


def _print_side_by_side(title: str, rows: list[dict], columns: list[str]) -> None:
    print(f"\n## {title}\n")
    print(format_table(rows, columns))


# ----------------------------------------------------------------------------------------------
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
        memory = _memory_of(fns)
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
    _print_side_by_side(
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
    _print_side_by_side(
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
    _print_side_by_side(
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
    _print_side_by_side(
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


def bench_elbo(args, record: dict) -> None:
    torch.manual_seed(0)
    model = build_model("tiny")
    n, k, p, gen_length = (4, 2, 16, 32) if args.quick else (16, 2, 16, 128)
    group = random_group(
        1, n, p, gen_length, model.config.vocab_size, model.config.eos_token_id, model.config.mask_token_id
    )
    batch = CanvasBatch(group.input_ids, group.attention_mask, p)
    masks = draw_elbo_masks(n, gen_length, k, generator=torch.Generator().manual_seed(0))
    noisy = mask_completion(
        batch.input_ids.repeat_interleave(k, 0), masks.masked.reshape(n * k, -1), p, model.config.mask_token_id
    )
    attn = batch.attention_mask.repeat_interleave(k, 0)

    def bare_nograd():
        with torch.no_grad():
            return get_logits(model, noisy, attn)

    def elbo_nograd():
        with torch.no_grad():
            return elbo(model, batch, masks).value

    def bare_grad():
        model.zero_grad(set_to_none=True)
        get_logits(model, noisy, attn)[:, p:].float().logsumexp(-1).sum().backward()

    def elbo_grad():
        model.zero_grad(set_to_none=True)
        elbo(model, batch, masks).value.sum().backward()

    fns = {
        "bare forward": bare_nograd,
        "elbo (no grad)": elbo_nograd,
        "bare fwd+bwd": bare_grad,
        "elbo fwd+bwd": elbo_grad,
    }
    sbs = side_by_side(fns, baseline="bare forward", repeats=args.repeats)
    memory = _memory_of(fns)
    bare_of = {
        "bare forward": "bare forward",
        "elbo (no grad)": "bare forward",
        "bare fwd+bwd": "bare fwd+bwd",
        "elbo fwd+bwd": "bare fwd+bwd",
    }
    rows = [
        {
            "variant": name,
            "median_s": sbs.median_time(name),
            "memory_MiB": memory[name],
            "cost_over_bare": statistics.median(v / b for v, b in zip(sbs.times[name], sbs.times[bare_of[name]])),
        }
        for name in fns
    ]
    _print_side_by_side(
        f"ELBO estimator over its bare forward passes (N={n} completions x K={k} masks, P={p}, "
        f"L={gen_length}, tiny model)",
        rows,
        ["variant", "median_s", "cost_over_bare", "memory_MiB"],
    )
    record["elbo"] = {"rows": rows, "N": n, "K": k, "L": gen_length}


def _update_setups(g: int, p: int, gen_length: int) -> dict[str, tuple]:
    """Per method: its objective (default options), a fresh tiny policy, the reference, one random
    rollout group (1 prompt x G) and an AdamW: what one update needs."""
    out = {}
    for method in METHODS:
        torch.manual_seed(0)
        policy = build_model("tiny")
        objective = build_objective(method, policy.config.d_model)
        reference, opt = make_trainable(policy, objective)
        group = random_group(
            1, g, p, gen_length, policy.config.vocab_size, policy.config.eos_token_id, policy.config.mask_token_id
        )
        out[method] = (objective, policy, reference, group, opt)
    return out


def bench_train(args, record: dict) -> None:
    g, p, gen_length = (4, 8, 16) if args.quick else (8, 16, 32)
    rows, fns = [], {}
    for method, (objective, policy, reference, group, opt) in _update_setups(g, p, gen_length).items():
        fns[method] = lambda o=objective, m=policy, r=reference, gr=group, op=opt: update_step(o, m, r, gr, op)
    sbs = side_by_side(fns, baseline="trafl", repeats=args.repeats)
    memory = _memory_of(fns)
    for method in METHODS:
        rows.append(
            {
                "method": method,
                "median_s": sbs.median_time(method),
                "time_over_trafl": sbs.median_time(method) / sbs.median_time("trafl"),
                "peak_MiB": memory[method],
            }
        )
    _print_side_by_side(
        f"one inner update per objective (G={g}, P={p}, L={gen_length}, each method's default options: "
        f"TraFL ELBO K=2, ESPO its ELBO K=4 (2 coupled pairs), JustGRPO autoregressive, diffu-GRPO "
        f"one-step; one inner iteration each (ESPO's recipe runs 8, d1's 12); tiny model, full fine-tuning)",
        rows,
        ["method", "median_s", "time_over_trafl", "peak_MiB"],
    )
    record["train"] = {"rows": rows, "G": g, "P": p, "L": gen_length}
    record["train_recipe"] = _bench_train_recipe(args, g, p, gen_length)


def _bench_train_recipe(args, g: int, p: int, gen_length: int) -> dict:
    """One rollout batch's whole update at each method's own recipe (its inner iterations, its
    Monte-Carlo draws and per-iteration noise): what a method pays per batch of rollouts."""
    from trafl.objectives.registry import objective_class

    rows, fns = [], {}
    for method, (objective, policy, reference, group, opt) in _update_setups(g, p, gen_length).items():
        mu = objective_class(method).train_defaults.get("num_iterations", 1)
        fns[method] = lambda o=objective, m=policy, r=reference, gr=group, op=opt, n=mu: rollout_batch_update(
            o, m, r, gr, op, n
        )
        surrogate = objective.options.surrogate
        rows.append(
            {
                "method": method,
                "num_iterations": mu,
                "surrogate": surrogate,
                "num_mc": objective.options.num_mc if surrogate == "elbo" else "-",
            }
        )
    sbs = side_by_side(fns, baseline="trafl", repeats=args.repeats)
    for row in rows:
        row["median_s"] = sbs.median_time(row["method"])
        row["time_over_trafl"] = row["median_s"] / sbs.median_time("trafl")
    _print_side_by_side(
        f"one rollout batch's update at each method's recipe (G={g}, P={p}, L={gen_length}: prepare "
        "with old policy and per-iteration noise, then num_iterations x (loss + backward + AdamW); "
        "tiny model, full fine-tuning)",
        rows,
        ["method", "num_iterations", "surrogate", "num_mc", "median_s", "time_over_trafl"],
    )
    return {"rows": rows, "G": g, "P": p, "L": gen_length}


def bench_rlstep(args, record: dict) -> None:
    """An RL step's time split with exact and fast rollouts (benchmarks/rl_step.py): TraFL at the demo's
    shapes (decoy_rule base, L = 5) and on the long-answer base at L = 256 (block 32, one token per step)."""
    from benchmarks.rl_step import step_split
    from trafl.demo import DemoConfig, train_fields
    from trafl.tasks import get_task
    from trafl.utils.config import load_config

    steps = 1 if args.quick else 4
    demo = train_fields(load_config(DemoConfig, None, {}), "trafl", 0, Path(DEFAULT_TRAINED), Path("unused"))
    demo.update(num_threads=torch.get_num_threads())
    shapes = {"demo (decoy_rule, L=5, 8 prompts x G=8)": (demo, None)}
    if Path(args.long_model, "config.json").is_file():
        gen_length = 256
        long_fields = {
            **{k: demo[k] for k in ("method", "seed", "device", "num_threads", "beta", "reward_transform", "logz")},
            "model": args.long_model,
            "task": "count_range",
            "num_generations": 4,
            "per_device_train_batch_size": 8,
            "max_completion_length": gen_length,
            "diffusion_steps": gen_length,
            "block_length": 32,
            "temperature": 0.9,
            "max_prompt_length": 16,
            "learning_rate": 1e-4,
        }
        task = get_task("count_range", max_count=LONG_SETTINGS[gen_length])
        shapes[f"long base (count_range, L={gen_length}, 2 prompts x G=4)"] = (long_fields, task)
    out = {}
    for name, (fields, task) in shapes.items():
        rows = step_split(fields, steps, task=task)
        columns = [
            "rollouts",
            "rollout_s",
            "reward_s",
            "prepare_s",
            "update_s",
            "step_s",
            "rollout_share",
            "forwards/seq",
            "rollout_speedup",
            "step_speedup",
        ]
        _print_side_by_side(
            f"TraFL step time split, {name}: medians over {steps} steps per arm, arms alternating", rows, columns
        )
        out[name] = rows
    record["rlstep"] = out


def bench_grading(args, record: dict) -> None:
    from trafl.rewards.code import run_many
    from trafl.tasks import get_task

    if not Path(args.mbpp).is_file():
        print(f"\n## grading: skipped (no MBPP copy at {args.mbpp})")
        return
    rows = get_task("mbpp").load("all", path=args.mbpp)[: 40 if args.quick else 200]
    programs, tests = [r["reference"] for r in rows], [r["tests"] for r in rows]
    fns, passed = {}, {}
    for method in ("append", "isolated"):

        def grade(m=method):
            results = run_many(programs, tests, workers=args.grading_workers, timeout=30, method=m)
            passed[m] = sum(r.ok for r in results)

        fns[method] = grade
    sbs = side_by_side(fns, baseline="append", repeats=args.repeats)
    out = [
        {
            "method": m,
            "programs/s": len(programs) / sbs.median_time(m),
            "median_s": sbs.median_time(m),
            "time_over_append": sbs.median_time(m) / sbs.median_time("append"),
            "passed": passed[m],
        }
        for m in fns
    ]
    _print_side_by_side(
        f"grading {len(programs)} MBPP reference programs, {args.grading_workers} parallel sandboxes",
        out,
        ["method", "programs/s", "median_s", "time_over_append", "passed"],
    )
    record["grading"] = {"rows": out, "programs": len(programs), "workers": args.grading_workers}


def bench_demo(args, record: dict) -> None:
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory(prefix="trafl-demo-bench-") as scratch:
        tmp = args.demo_out or scratch
        if Path(tmp, "study.json").exists():
            raise SystemExit(f"--demo-out {tmp} already holds a demo run; the timing needs a fresh directory")
        cmd = [sys.executable, "-m", "trafl.cli", "demo", "--out", tmp] + (["--quick"] if args.quick else [])
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        stages = json.loads((Path(tmp) / "study.json").read_text())["timings_s"]
    budget = DEMO_BUDGET_S[args.quick]
    rows = [{"stage": k, "seconds": v} for k, v in stages.items() if k != "total"]
    rows.append({"stage": "wall (process)", "seconds": wall, "over_budget": wall / budget})
    _print_side_by_side(
        f"trafl demo{' --quick' if args.quick else ''} from scratch (budget {budget:.0f} s)",
        rows,
        ["stage", "seconds", "over_budget"],
    )
    record["demo"] = {"quick": args.quick, "wall_s": wall, "budget_s": budget, "stages_s": stages}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {SECTIONS + OPT_IN_SECTIONS} (default: all but {OPT_IN_SECTIONS})",
    )
    parser.add_argument("--quick", action="store_true", help="small shapes: a smoke run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats per measurement (median)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: on a shared 2-core machine two threads ran ~40x slower; 0: torch's default)",
    )
    parser.add_argument(
        "--trained-model", default=DEFAULT_TRAINED, help="trained model directory (default: the demo base)"
    )
    parser.add_argument("--accuracy-length", type=int, default=5, help="completion length of the accuracy check")
    parser.add_argument("--accuracy-block", type=int, default=5, help="block length of the accuracy check")
    parser.add_argument("--accuracy-temperature", type=float, default=0.6)
    parser.add_argument("--long-model", default=LONG_BASE, help="long section: the count_range base")
    parser.add_argument(
        "--long-prompts", type=int, default=104, help="long section: held-out prompts per L (batches of 8)"
    )
    parser.add_argument("--long-lengths", default="256,512", help="long section: canvas lengths, of 256 and 512")
    parser.add_argument(
        "--long-single", type=int, default=3, help="long section: prompts timed at batch 1 (0: no batch-1 timing)"
    )
    parser.add_argument(
        "--long-variants",
        default=",".join(LONG_VARIANTS),
        help="long section: sampler variants, the exact one ('trafl') first; also <cache>+thr<tau>, e.g. dual+thr0.99",
    )
    parser.add_argument(
        "--long-split",
        default="test",
        choices=get_args(EvalSplit),
        help="long section: count_range split of the prompts; choose settings (e.g. a threshold) on validation, "
        "report test once",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="long section: device of the model and the sampler (e.g. cuda; others run on CPU)",
    )
    parser.add_argument("--out", default=str(Path(__file__).with_name("results.jsonl")), help="JSON-lines results file")
    parser.add_argument(
        "--mbpp",
        default=str(Path(__file__).resolve().parents[2] / "shared/data/mbpp/mbpp.jsonl"),
        help="grading section: the MBPP jsonl copy",
    )
    parser.add_argument("--grading-workers", type=int, default=2, help="grading section: parallel sandboxes")
    parser.add_argument(
        "--demo-out", default=None, help="demo section: keep the demo's run here (default: a temporary directory)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sections = [s for s in args.sections.split(",") if s]
    unknown = set(sections) - set(SECTIONS + OPT_IN_SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {SECTIONS + OPT_IN_SECTIONS}")
    info = machine()
    print(f"# trafl benchmark  {time.strftime('%Y-%m-%d %H:%M:%S')}\nmachine: {json.dumps(info)}")
    record: dict[str, Any] = {"time": time.time(), "machine": info, "quick": args.quick, "repeats": args.repeats}
    ok = True
    for section in sections:
        t0 = time.perf_counter()
        if section == "sampler":
            ok &= bench_sampler(args, record)
        else:
            {
                "threshold": bench_threshold,
                "accuracy": bench_accuracy,
                "long": bench_long,
                "elbo": bench_elbo,
                "train": bench_train,
                "rlstep": bench_rlstep,
                "grading": bench_grading,
                "demo": bench_demo,
            }[section](args, record)
        print(f"({section}: {time.perf_counter() - t0:.0f} s)")
    append_jsonl(args.out, record)
    print(f"\nappended to {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
