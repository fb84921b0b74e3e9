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
import sys
import time
from pathlib import Path
from typing import Any, get_args

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_end_to_end import bench_demo, bench_grading  # noqa: E402
from benchmarks.bench_long import LONG_BASE, LONG_VARIANTS, bench_long  # noqa: E402
from benchmarks.bench_sampling import DEFAULT_TRAINED, bench_accuracy, bench_sampler, bench_threshold  # noqa: E402
from benchmarks.bench_training import bench_elbo, bench_rlstep, bench_train  # noqa: E402
from benchmarks.harness import machine  # noqa: E402
from trafl.tasks.base import EvalSplit  # noqa: E402
from trafl.utils.io import append_jsonl  # noqa: E402

SECTIONS = ("sampler", "threshold", "accuracy", "elbo", "train", "rlstep", "grading")
OPT_IN_SECTIONS = ("demo", "long")


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
