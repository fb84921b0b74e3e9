"""Measure the spread of the toy learning check, the basis of its margin (``rl_toys.LEARNING_MARGIN``).

    python tests/learning_spread.py                      # 4 methods x 8 seeds x 3 kernel sets x 1, 2 threads
    python tests/learning_spread.py --methods diffu_grpo --seeds 4 --kernels avx2 --threads 1

A short RL run's outcome depends on float rounding: two CPUs whose kernels round differently follow
different trajectories after a few steps. So the check is run, per method, over seeds and over the
CPU kernel sets torch can be told to use (``ATEN_CPU_CAPABILITY``: ``avx512``, ``avx2``,
``default`` = no SIMD; each in its own process, since torch reads it at import), at 1 and 2 threads.
Prints, per method, the mean, standard deviation and minimum of :func:`rl_toys.learning_gain`, how
many standard deviations the margin lies below the mean, and whether every run clears it; exits 1 if
one does not. About 15 minutes on 2 cores with the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parent
sys.path[:0] = [str(TESTS), str(TESTS.parent / "src")]

from rl_toys import LEARNING_MARGIN, LEARNING_SETTINGS, LEARNING_STEPS, DigitTask, learning_gain  # noqa: E402


def worker(methods: list[str], seeds: int, threads: list[int]) -> None:
    """Run the learning check for every (method, seed, threads) in this process; one JSON line each."""
    from rl_toys import make_model_dir
    from test_train import cfg_for

    from trafl.train.trainer import run_train

    tmp = Path(tempfile.mkdtemp())
    model_dir = make_model_dir(tmp / "model")
    for method in methods:
        for seed in range(seeds):
            for n in threads:
                over = {"method": method, "max_steps": LEARNING_STEPS, "seed": seed, "num_threads": n}
                cfg = cfg_for(model_dir, tmp / f"{method}-{seed}-{n}", **over, **LEARNING_SETTINGS[method])
                rewards = [r["reward"] for r in run_train(cfg, progress=False, task=DigitTask()).history]
                row = {"method": method, "seed": seed, "threads": n, "gain": learning_gain(rewards)}
                print(json.dumps(row), flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default=",".join(LEARNING_SETTINGS))
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--kernels", default="avx512,avx2,default", help="ATEN_CPU_CAPABILITY values to run under")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    methods, threads = args.methods.split(","), [int(t) for t in args.threads.split(",")]
    if args.worker:
        worker(methods, args.seeds, threads)
        return 0
    rows = []
    for kernel in args.kernels.split(","):
        env = {**os.environ, "ATEN_CPU_CAPABILITY": kernel}
        cmd = [sys.executable, __file__, "--worker", "--methods", args.methods, "--seeds", str(args.seeds)]
        out = subprocess.run([*cmd, "--threads", args.threads], env=env, capture_output=True, text=True, check=True)
        rows += [{**json.loads(line), "kernel": kernel} for line in out.stdout.splitlines() if line.startswith("{")]
    print(
        f"learning_gain over {args.seeds} seeds x kernels {args.kernels} x threads {args.threads}; margin {LEARNING_MARGIN}"
    )
    print("| method | runs | mean | sd | min | (mean - margin) / sd | all clear |")
    print("|---|---|---|---|---|---|---|")
    ok = True
    for method in methods:
        gains = [r["gain"] for r in rows if r["method"] == method]
        mean, sd = statistics.mean(gains), statistics.pstdev(gains)
        clear = min(gains) > LEARNING_MARGIN
        ok &= clear
        z = (mean - LEARNING_MARGIN) / sd if sd else float("inf")
        print(f"| {method} | {len(gains)} | {mean:.3f} | {sd:.3f} | {min(gains):.3f} | {z:.1f} | {clear} |")
    by_threads: dict[tuple, dict[int, float]] = {}
    for r in rows:
        by_threads.setdefault((r["method"], r["seed"], r["kernel"]), {})[r["threads"]] = r["gain"]
    moved = sum(len(set(v.values())) > 1 for v in by_threads.values())
    print(f"runs whose gain changed with the thread count: {moved} of {len(by_threads)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
