"""Gold and corrupted solutions through the code grader: MBPP (974) and HumanEval (164).

    python scripts/code_gold.py [--mbpp PATH] [--workers N]

Prints how many reference / canonical solutions pass (all should) and how many corrupted ones
pass (none should). MBPP corruption rebinds every declared entry point to a function returning
``None``; HumanEval corruption returns an object of a fresh class from the function body.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from trafl.rewards.code import run_many
from trafl.tasks import get_task

DEFAULT_MBPP = Path(__file__).resolve().parents[2] / "shared/data/mbpp/mbpp.jsonl"


def corrupt_mbpp(row: dict) -> str:
    names = json.loads(row["tests"]).get("entry_points") or []
    return row["reference"] + "".join(f"\n\n{name} = lambda *a, **k: None\n" for name in names)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mbpp", default=str(DEFAULT_MBPP), help="the MBPP jsonl copy")
    parser.add_argument("--workers", type=int, default=2, help="parallel gradings")
    args = parser.parse_args(argv)
    if Path(args.mbpp).is_file():
        rows = get_task("mbpp").load("all", path=args.mbpp)
        tests = [r["tests"] for r in rows]
        gold = run_many([r["reference"] for r in rows], tests, workers=args.workers, timeout=30)
        bad = run_many([corrupt_mbpp(r) for r in rows], tests, workers=args.workers, timeout=30)
        print(f"MBPP gold pass {sum(r.ok for r in gold)} / {len(rows)}")
        print(f"MBPP corrupted pass {sum(r.ok for r in bad)} / {len(rows)}")
    else:
        print(f"MBPP: skipped (no copy at {args.mbpp})")
    task = get_task("humaneval", workers=args.workers)
    rows = task.load()
    good = task.grade_batch([r["canonical_solution"] for r in rows], rows)
    wrong = task.grade_batch(["    class _Wrong:\n        pass\n    return _Wrong()\n"] * len(rows), rows)
    print(f"HumanEval gold pass {sum(good)} / {len(rows)}")
    print(f"HumanEval corrupted pass {sum(wrong)} / {len(rows)}")


if __name__ == "__main__":
    main()
