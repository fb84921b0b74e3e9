"""GPU check of sharded training: FSDP and DeepSpeed ZeRO-2/3 runs equal one process and resume exactly.

    python benchmarks/gpu_sharded_check.py                          # fsdp, zero2, zero3 on 2 GPUs
    python benchmarks/gpu_sharded_check.py --configs fsdp,zero3 --num-processes 4

The CPU test suite checks data parallel and FSDP2 with gloo (tests/test_distributed.py); DeepSpeed has
no CPU path, so ZeRO is checked here, on one node with at least two CUDA GPUs. For each accelerate
config ``configs/accelerate/<name>.yaml`` (launched as a user would, with ``--num_processes n
--mixed_precision no`` so that runs are comparable in float32), on the toy task and tiny model of
:mod:`trafl.testing` (the trainer tests' toys):

1. equality: two RL steps on ``n`` processes vs one process (one GPU) with ``n`` times the gradient
   accumulation; reports the largest parameter difference and passes below ``--tolerance``;
2. kill and resume: an uninterrupted sharded run (a checkpoint every step) vs one SIGKILLed (launcher
   and workers) after ``checkpoint-2`` and continued with ``--resume``. CUDA kernels need not be
   deterministic, so the uninterrupted run is repeated: the resumed run passes when it is no further
   from the first run than the repeat is (``--tolerance`` added).

Without two CUDA GPUs it says so and exits 0 (``"status": "skipped"`` in ``--out``); a DeepSpeed
config is skipped when ``deepspeed`` is not installed. Exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
CONFIGS = ("fsdp", "zero2", "zero3")
RL = dict(
    task="trafl.testing:DigitTask",
    method="trafl",
    logz="learned",
    num_generations=4,
    per_device_train_batch_size=4,
    max_completion_length=4,
    diffusion_steps=4,
    block_length=4,
    temperature=1.0,
    max_prompt_length=16,
    learning_rate=3e-3,
    logz_lr=1e-2,
    max_grad_norm=1.0,
    save_steps=0,
    seed=0,
)


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def _flags(values: dict) -> list[str]:
    out = []
    for k, v in values.items():
        out += [f"--{k.replace('_', '-')}", str(v)]
    return out + ["--quiet"]


def _launch(config: str, n: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(REPO / "configs" / "accelerate" / f"{config}.yaml"),
        "--num_processes",
        str(n),
        "--mixed_precision",
        "no",
        "--main_process_port",
        "0",
        "--module",
        "trafl.cli",
        "train",
    ]


def _run(cmd: list[str], env: dict[str, str], timeout: int) -> None:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd[:8])} ... failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


def _final(run_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run_dir / "final" / "model.safetensors"))


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    if a.keys() != b.keys():
        raise RuntimeError(f"different parameter names: {sorted(a.keys() ^ b.keys())[:5]}")
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def check_config(config: str, n: int, model: Path, work: Path, tolerance: float, timeout: int) -> dict:
    """The equality and kill/resume checks of one accelerate config; returns their numbers."""
    env = _env()
    base = {**RL, "model": model}
    one, many = work / f"{config}-one", work / f"{config}-many"
    t0 = time.perf_counter()
    _run(
        [
            sys.executable,
            "-m",
            "trafl.cli",
            "train",
            *_flags({**base, "max_steps": 2, "gradient_accumulation_steps": n, "output_dir": one}),
        ],
        _env(CUDA_VISIBLE_DEVICES=os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]),
        timeout,
    )
    _run(_launch(config, n) + _flags({**base, "max_steps": 2, "output_dir": many}), env, timeout)
    equality = _max_diff(_final(one), _final(many))

    resume = {**base, "max_steps": 5, "save_steps": 1, "save_total_limit": 5}
    full, again, killed = work / f"{config}-full", work / f"{config}-again", work / f"{config}-killed"
    _run(_launch(config, n) + _flags({**resume, "output_dir": full}), env, timeout)
    _run(_launch(config, n) + _flags({**resume, "output_dir": again}), env, timeout)
    proc = subprocess.Popen(
        _launch(config, n) + _flags({**resume, "output_dir": killed}),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + timeout
    while not (killed / "checkpoint-2").exists():
        if proc.poll() is not None:
            raise RuntimeError(f"{config}: the run to kill ended (code {proc.returncode}) before checkpoint-2")
        if time.time() > deadline:
            raise RuntimeError(f"{config}: no checkpoint-2 after {timeout} s")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    _run(_launch(config, n) + _flags({**resume, "output_dir": killed}) + ["--resume"], env, timeout)
    noise = _max_diff(_final(full), _final(again))
    resumed = _max_diff(_final(full), _final(killed))
    return {
        "config": config,
        "num_processes": n,
        "equality_max_abs_diff": equality,
        "rerun_max_abs_diff": noise,
        "resume_max_abs_diff": resumed,
        "equal": equality <= tolerance,
        "resumes": resumed <= noise + tolerance,
        "seconds": time.perf_counter() - t0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default=",".join(CONFIGS), help=f"comma-separated, of {', '.join(CONFIGS)}")
    parser.add_argument("--num-processes", type=int, default=2, help="processes (GPUs) of the sharded runs")
    parser.add_argument("--tolerance", type=float, default=1e-5, help="largest parameter difference that passes")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per launch")
    parser.add_argument("--out", default="gpu_sharded_check.json")
    args = parser.parse_args(argv)
    configs = [c for c in args.configs.split(",") if c]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        parser.error(f"unknown config(s) {unknown}; choose from {', '.join(CONFIGS)}")

    report: dict = {"configs": configs, "num_processes": args.num_processes, "results": []}
    gpus = torch.cuda.device_count()
    if gpus < max(2, args.num_processes):
        message = (
            f"gpu_sharded_check needs at least 2 CUDA GPUs ({max(2, args.num_processes)} for "
            f"--num-processes {args.num_processes}); this machine has {gpus}. Nothing to check here: "
            "on CPU, tests/test_distributed.py covers data parallel and FSDP."
        )
        print(message)
        Path(args.out).write_text(json.dumps({**report, "status": "skipped", "reason": message}, indent=2))
        return 0

    from trafl.testing import make_model_dir

    failed = False
    with tempfile.TemporaryDirectory(prefix="gpu_sharded_check-") as tmp:
        work = Path(tmp)
        model = make_model_dir(work / "model")
        for config in configs:
            if config.startswith("zero") and importlib.util.find_spec("deepspeed") is None:
                result = {"config": config, "skipped": "deepspeed is not installed (pip install deepspeed)"}
            else:
                try:
                    result = check_config(config, args.num_processes, model, work, args.tolerance, args.timeout)
                    failed |= not (result["equal"] and result["resumes"])
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    result, failed = {"config": config, "error": str(exc)}, True
            report["results"].append(result)
            print(json.dumps(result), flush=True)
    report["status"] = "failed" if failed else "passed"
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"{report['status']}; wrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
