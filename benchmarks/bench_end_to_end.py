"""The end-to-end sections of benchmarks/run.py: ``grading`` (code-reward grading throughput) and
``demo`` (``trafl demo`` from scratch against its time budget).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from benchmarks.harness import print_side_by_side, side_by_side

DEMO_BUDGET_S = {False: 15 * 60.0, True: 3 * 60.0}


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
    print_side_by_side(
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
    print_side_by_side(
        f"trafl demo{' --quick' if args.quick else ''} from scratch (budget {budget:.0f} s)",
        rows,
        ["stage", "seconds", "over_budget"],
    )
    record["demo"] = {"quick": args.quick, "wall_s": wall, "budget_s": budget, "stages_s": stages}
