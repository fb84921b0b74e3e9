"""TraFL on fast rollouts against TraFL on exact rollouts, in the study's regime (issue 16).

TraFL's squared trajectory-balance residual has the same minimiser whatever distribution the
rollouts come from (as long as it covers the target's support), so it may learn from an approximate
sampler (block KV cache + confidence-threshold decoding) without bias; ratio-based objectives assume
on-policy rollouts. This script checks the claim where the study runs: the demo's settings
(``trafl.study.runs.train_fields`` of ``trafl.demo.DemoConfig``: the shipped ``decoy_rule`` base, its budget, TraFL's chosen options),
``--seeds`` seeds per arm, the two arms differing only in the rollout sampler::

    python scripts/fast_rollouts.py --out runs/fast-rollouts            # 4 seeds, 240 held-out prompts x 16
    python scripts/fast_rollouts.py --out runs/fast-rollouts --quick    # smoke run

It writes ``report.md`` / ``report.json`` with, per arm: the wall time of a training step split
into rollout / reward / prepare / update (means over steps), the sampler's forward passes per
sequence, held-out pass@1..16 at the frontier temperature, and the difference fast - exact twice:
paired per prompt (s.e. over prompts of the seed-averaged per-prompt pass@k: how well the prompts
measure these runs) and between seeds (Welch s.e. over the seeds' pass@k: how much another training
seed would move it; from 2 seeds per arm). Resumable: finished runs and cached
generations are reused.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from trafl.demo import DemoConfig, ensure_base, eval_settings
from trafl.eval.paired import paired_difference, seed_difference
from trafl.study.evaluation import evaluate
from trafl.study.runs import Run, reward_ends, train_fields, train_run
from trafl.utils.config import load_config
from trafl.utils.io import atomic_write_json, atomic_write_text, read_jsonl

ARMS = {"exact": {}, "fast": {"rollout_cache": "dual", "rollout_threshold": 0.9}}
TIMES = ("time/rollout_s", "time/reward_s", "time/prepare_s", "time/update_s")


def step_times(run_dir: Path) -> dict[str, float]:
    """Means over a run's logged steps of each part of the step, the rollout share and the forward passes."""
    records = read_jsonl(run_dir / "metrics.jsonl")
    out = {key: sum(r[key] for r in records) / len(records) for key in TIMES}
    total = sum(out.values())
    out["step_s"] = total
    out["rollout_share"] = out["time/rollout_s"] / total
    out["num_forward"] = sum(r["rollout/num_forward"] for r in records) / len(records)
    out["reward_first10"], out["reward_last10"] = reward_ends(run_dir, window=10)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="Output directory (resumable).")
    p.add_argument("--seeds", type=int, default=4, help="Training seeds per arm (>= 2 for the between-seed s.e.).")
    p.add_argument("--quick", action="store_true", help="Smoke run: 1 seed, 12 steps, 48 prompts x 8 samples.")
    p.add_argument("--num-threads", type=int, default=1, help="torch CPU threads.")
    args = p.parse_args(argv)
    torch.set_num_threads(args.num_threads)
    overrides = {"num_threads": args.num_threads, "checkpoints": 1}
    if args.quick:
        overrides.update(max_steps=12, eval_prompts=48, eval_n=8, k_max=8)
        args.seeds = 1
    compare(Path(args.out), args.seeds, overrides)


def compare(out: Path, seeds: int, overrides: dict) -> dict:
    """Train ``seeds`` runs per arm with the demo's settings (``overrides``: DemoConfig fields), score
    them and the base, write ``report.json`` / ``report.md`` under ``out``; returns the report's table."""
    cfg = load_config(DemoConfig, None, overrides)
    temperature = cfg.frontier_temperature
    base = ensure_base(cfg, out)

    runs = {
        arm: [
            Run(
                f"trafl_{arm}-s{s}",
                {**train_fields(cfg, "trafl", cfg.seed + s, base, out / "runs" / f"trafl_{arm}-s{s}"), **sampler},
            )
            for s in range(seeds)
        ]
        for arm, sampler in ARMS.items()
    }
    times: dict[str, dict] = {}
    for run in (run for arm_runs in runs.values() for run in arm_runs):
        if (seconds := train_run(run, out)[1]) is not None:
            print(f"{run.label}: trained in {seconds:.0f} s", flush=True)
        times[run.label] = step_times(run.run_dir(out))

    models = {"base": base, **{run.label: run.final(out) for arm_runs in runs.values() for run in arm_runs}}
    settings = eval_settings(cfg)
    rows = settings.rows()
    results = evaluate(settings, models, out / "eval", [temperature], rows)
    cells = {c["model"]: c for c in results["results"] if c["temperature"] == temperature}
    ks = [k for k in (1, 2, 4, 8, 16) if k <= cfg.k_max]
    exact, fast = ([cells[run.label] for run in runs[arm]] for arm in ("exact", "fast"))
    table = {
        "settings": {
            "task": cfg.task,
            "split": cfg.eval_split,
            "prompts": len(rows),
            "n": cfg.eval_n,
            "temperature": temperature,
            "seeds": seeds,
            "max_steps": cfg.max_steps,
            "arms": ARMS,
        },
        "times": times,
        "pass_at_k": {
            arm: {k: paired_difference(cs, cells["base"], k)["model"] for k in ks}
            for arm, cs in (("exact", exact), ("fast", fast))
        },
        "base_pass_at_k": {k: paired_difference(exact, cells["base"], k)["base"] for k in ks},
        "fast_minus_exact": {k: paired_difference(fast, exact, k) for k in ks},
        "fast_minus_exact_seeds": {k: seed_difference(fast, exact, k) for k in ks} if seeds >= 2 else None,
        "vs_base": {
            arm: {k: paired_difference(cs, cells["base"], k) for k in ks}
            for arm, cs in (("exact", exact), ("fast", fast))
        },
    }
    atomic_write_json(out / "report.json", table)

    lines = [
        f"TraFL on exact vs fast rollouts ({cfg.task}, {cfg.max_steps} steps, {seeds} seed(s) per arm; "
        f"fast = block KV cache 'dual' + threshold 0.9). Held-out: {len(rows)} {cfg.eval_split} prompts x "
        f"{cfg.eval_n} samples at T = {temperature}.",
        "",
        "Step time (means over steps, seconds):",
        "",
        "| run | rollout | reward | prepare | update | rollout share | forwards / sequence | train reward first -> last 10 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, t in times.items():
        lines.append(
            f"| {label} | {t['time/rollout_s']:.3f} | {t['time/reward_s']:.3f} | {t['time/prepare_s']:.3f} | "
            f"{t['time/update_s']:.3f} | {100 * t['rollout_share']:.0f}% | {t['num_forward']:.2f} | "
            f"{t['reward_first10']:.2f} -> {t['reward_last10']:.2f} |"
        )
    lines += [
        "",
        "Held-out pass@k (%; seed means) and differences (s.e. over prompts, and over seeds):",
        "",
        "| k | base | exact | fast | fast - exact (s.e. over prompts) | (s.e. over seeds) | per seed: exact / fast "
        "| exact - base | fast - base |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for k in ks:
        d, de, df = table["fast_minus_exact"][k], table["vs_base"]["exact"][k], table["vs_base"]["fast"][k]
        by_seed = "- | -"  # one seed per arm: no between-seed s.e.
        if table["fast_minus_exact_seeds"]:
            ds = table["fast_minus_exact_seeds"][k]  # a = fast, b = exact
            exact_s, fast_s = (" ".join(f"{100 * v:.1f}" for v in ds[key]) for key in ("seeds_b", "seeds_a"))
            by_seed = f"{100 * ds['diff']:+.1f} +- {100 * ds['stderr']:.1f} | {exact_s} / {fast_s}"
        lines.append(
            f"| {k} | {100 * table['base_pass_at_k'][k]:.1f} | {100 * table['pass_at_k']['exact'][k]:.1f} | "
            f"{100 * table['pass_at_k']['fast'][k]:.1f} | {100 * d['diff']:+.1f} +- {100 * d['stderr']:.1f} | "
            f"{by_seed} | {100 * de['diff']:+.1f} +- {100 * de['stderr']:.1f} | "
            f"{100 * df['diff']:+.1f} +- {100 * df['stderr']:.1f} |"
        )
    text = "\n".join(lines) + "\n"
    atomic_write_text(out / "report.md", text)
    print(text)
    return table


if __name__ == "__main__":
    main()
