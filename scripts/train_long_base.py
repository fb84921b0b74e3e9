"""Train the long-answer base (``count_range``, 512-token canvases) with ``trafl sft`` inside a wall-clock budget.

The shipped ``src/trafl/assets/long_base`` was trained with this script on one GPU (through
``scripts/gpu_long_base.sh``, which also benchmarks the result); its README gives the commands, the
fixed-step configs that reproduce them (``configs/sft/long_base*.yaml``) and the measured accuracy.
It

1. writes the SFT pairs: one per training puzzle of :mod:`trafl.tasks.synthetic.count_range`
   (45,603 pairs, answers of 203-479 characters), unless the file exists;
2. times a few SFT updates of each preset at the run's batch size on the run's device (same collate,
   model, loss and optimizer as ``trafl sft``; the first updates are warm-up and not counted), and sets
   ``max_steps`` so that all presets, run side by side and, at worst, one after the other on the
   device, end inside ``--budget-s``: the cosine schedule then runs to its end, which a run
   stopped by a timer would not;
3. runs ``trafl sft --config configs/sft/long_base.yaml`` for each preset, side by side, each in its
   own process and output directory (``OUT/PRESET/model``), with resumable checkpoints; a run that
   outlives ``--hard-limit-s`` is stopped, and its newest checkpoint is kept.

Usage (the two GPU stages of the shipped base: plain masking from scratch, then the semi-autoregressive
corruption, ``trafl sft --semi-ar-block-length``)::

    python scripts/train_long_base.py --presets mini,tiny --budget-s 240 --semi-ar-block-length 0 --device cuda --out runs/long_base_gpu
    python scripts/train_long_base.py --presets mini --init runs/long_base_gpu/mini/model --learning-rate 1e-3 \
        --budget-s 140 --device cuda --out runs/long_base_gpu2
    python scripts/train_long_base.py --presets mini --max-steps 20 --batch-size 4 --device cpu --out /tmp/lb  # smoke

Then measure every sampler variant on the result::

    python benchmarks/run.py --sections long --long-model runs/long_base_gpu/mini/model --device cuda
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import get_args

import torch

from trafl.models.loading import TrainDtype

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs/sft/long_base.yaml"


def write_data(path: Path) -> int:
    """The SFT pairs of every count_range training puzzle (one correct answer each)."""
    from trafl.tasks import get_task

    if path.is_file():
        return sum(1 for _ in path.open())
    return get_task("count_range").write_sft(path, samples_per_prompt=1)


def time_update(model_name: str, data: Path, batch_size: int, device: str, dtype: str, repeats: int = 6) -> float:
    """Seconds per SFT update of ``preset`` at ``batch_size`` on ``device`` (median over ``repeats`` after 3
    warm-up updates): the loss, backward and AdamW step of :mod:`trafl.sft.trainer` on real pairs."""
    from trafl.sft.config import SFTConfig
    from trafl.sft.data import collate, encode_pairs, read_pairs
    from trafl.sft.loss import forward_process, masked_diffusion_loss
    from trafl.sft.trainer import init_model_and_tokenizer

    rows = read_pairs(data)
    cfg = SFTConfig(data=str(data), model=model_name, max_completion_length=512)
    model, tok = init_model_and_tokenizer(cfg, rows)
    model.to(device).train()
    pairs = encode_pairs(rows[:batch_size], tok, cfg.max_completion_length)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    use_bf16 = dtype == "bfloat16" and device.startswith("cuda")
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16)
    times = []
    for i in range(3 + repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        # the trainer collates on the host every step: timing the model work alone (0.028 s) planned stage 2
        # of the shipped base where a step took about 0.05 s, and its time limit cut it short
        batch = {k: v.to(device) for k, v in collate(pairs, tok.pad_token_id).items()}
        noisy, masked, p_mask = forward_process(
            batch["input_ids"], batch["completion_mask"], model.config.mask_token_id, cfg.eps
        )
        with autocast:
            logits = model(noisy, attention_mask=batch["attention_mask"]).logits
            loss = masked_diffusion_loss(logits, batch["input_ids"], masked, p_mask, batch["completion_mask"])
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        float(loss.detach())  # the trainer reads the loss every step
        if i >= 3:
            times.append(time.perf_counter() - t0)
    del model, opt
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return sorted(times)[len(times) // 2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="mini", help="comma-separated model presets, trained side by side")
    parser.add_argument("--out", default="runs/long_base_gpu", help="output root: OUT/PRESET/ per preset")
    parser.add_argument(
        "--data", default=None, help="SFT pairs (default: OUT/count_range_sft.jsonl, written if absent)"
    )
    parser.add_argument("--device", default="cuda", help="device of every run")
    parser.add_argument("--dtype", default="bfloat16", choices=get_args(TrainDtype), help="bf16 autocast on CUDA")
    parser.add_argument("--init", default=None, help="continue this model directory instead of a fresh preset")
    parser.add_argument("--semi-ar-block-length", type=int, default=32, help="SFT semi_ar_block_length (0: off)")
    parser.add_argument("--semi-ar-fraction", type=float, default=0.5, help="SFT semi_ar_fraction")
    parser.add_argument("--batch-size", type=int, default=256, help="pairs per optimizer step")
    parser.add_argument("--learning-rate", type=float, default=2e-3, help="peak AdamW learning rate")
    parser.add_argument("--budget-s", type=float, default=240.0, help="wall-clock budget of the training runs")
    parser.add_argument("--max-steps", type=int, default=0, help="steps per run (0: from the budget and the timing)")
    parser.add_argument("--min-steps", type=int, default=200, help="never plan fewer steps than this")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads per run")
    parser.add_argument(
        "--hard-limit-s",
        type=float,
        default=0.0,
        help="stop runs still going after this long (0: twice the budget + 60 s)",
    )
    args = parser.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(args.data) if args.data else out / "count_range_sft.jsonl"
    t0 = time.perf_counter()
    n_pairs = write_data(data)
    print(f"data: {n_pairs} pairs in {data} ({time.perf_counter() - t0:.0f} s)", flush=True)

    presets = [p for p in args.presets.split(",") if p]
    plan = {}
    for preset in presets:
        if args.max_steps:
            steps, per_step = args.max_steps, None
        else:
            per_step = time_update(args.init or preset, data, args.batch_size, args.device, args.dtype)
            # side by side, at worst serialised on the device: each run gets budget / #presets of device time
            steps = max(args.min_steps, int(args.budget_s / (per_step * len(presets) * 1.15)))
        plan[preset] = {"steps": steps, "s_per_update": per_step}
        print(f"{preset}: {per_step if per_step is None else round(per_step, 4)} s/update -> {steps} steps", flush=True)

    procs = {}
    for preset in presets:
        steps = plan[preset]["steps"]
        run_dir = out / preset
        cmd = [
            sys.executable, "-m", "trafl.cli", "sft",
            "--config", str(CONFIG),
            "--data", str(data),
            "--model", args.init or preset,
            "--output-dir", str(run_dir),
            "--max-steps", str(steps),
            "--batch-size", str(args.batch_size),
            "--learning-rate", str(args.learning_rate),
            "--warmup-steps", str(max(1, min(200, steps // 20))),
            "--eval-steps", str(max(1, steps // 10)),
            "--save-steps", str(max(1, steps // 4)),
            "--device", args.device,
            "--bf16", str(args.dtype == "bfloat16").lower(),  # trafl sft: bf16 autocast on CUDA
            "--semi-ar-block-length", str(args.semi_ar_block_length),
            "--semi-ar-fraction", str(args.semi_ar_fraction),
            "--num-threads", str(args.threads),
            "--resume",
            "--quiet",
        ]  # fmt: skip
        run_dir.mkdir(parents=True, exist_ok=True)
        log = open(run_dir / "sft.log", "a")
        procs[preset] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log, time.perf_counter())
    deadline = time.perf_counter() + (args.hard_limit_s or 2 * args.budget_s + 60)
    summary = {}
    for preset, (proc, log, started) in procs.items():
        try:
            rc = proc.wait(timeout=max(1.0, deadline - time.perf_counter()))
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        log.close()
        wall = time.perf_counter() - started
        summary[preset] = {**plan[preset], "returncode": rc, "wall_s": round(wall, 1)}
        print(f"{preset}: exit {rc} after {wall:.0f} s", flush=True)
        print((out / preset / "sft.log").read_text()[-600:], flush=True)
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if all(s["returncode"] == 0 for s in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
