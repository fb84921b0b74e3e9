"""The training sections of benchmarks/run.py: ``elbo`` (the ELBO estimator's cost over bare forward
passes), ``train`` (one update of each objective, then each method's recipe) and ``rlstep`` (an RL
step's time split with exact and fast rollouts).
"""

from __future__ import annotations

import statistics
from pathlib import Path

import torch

from benchmarks.bench_long import LONG_SETTINGS
from benchmarks.bench_sampling import DEFAULT_TRAINED
from benchmarks.harness import memory_of, print_side_by_side, side_by_side
from benchmarks.steps import METHODS, build_objective, make_trainable, random_group, rollout_batch_update, update_step
from trafl.likelihood import CanvasBatch, draw_elbo_masks, elbo
from trafl.likelihood.tokens import mask_completion
from trafl.models import build_model, get_logits


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
    memory = memory_of(fns)
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
    print_side_by_side(
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
        objective = build_objective(method, policy.config.d_model, gen_length)
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
    memory = memory_of(fns)
    for method in METHODS:
        rows.append(
            {
                "method": method,
                "median_s": sbs.median_time(method),
                "time_over_trafl": sbs.median_time(method) / sbs.median_time("trafl"),
                "peak_MiB": memory[method],
            }
        )
    print_side_by_side(
        f"one inner update per objective (G={g}, P={p}, L={gen_length}, each method's default options: "
        f"TraFL ELBO K=2, ESPO its ELBO K=4 (2 coupled pairs), JustGRPO autoregressive, diffu-GRPO and wd1 "
        f"one-step, SPG 2 block-wise draws (8 blocks); one inner iteration each (ESPO's recipe runs 8, d1's and "
        f"wd1's 12, SPG's 4); tiny model, full fine-tuning)",
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
    print_side_by_side(
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
    from trafl.demo import DemoConfig
    from trafl.study.runs import train_fields
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
        print_side_by_side(
            f"TraFL step time split, {name}: medians over {steps} steps per arm, arms alternating", rows, columns
        )
        out[name] = rows
    record["rlstep"] = out
