"""Several processes on CPU (gloo): data parallel and FSDP2 runs equal one process with as many
micro-batches, a killed FSDP run resumes bit-identically from its sharded checkpoint, SFT runs on
two processes like on one, and the GPU-only sharded check exits cleanly without GPUs.

Every launch picks a free port (``torchrun --standalone``, ``accelerate launch --main_process_port 0``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from rl_toys import make_model_dir
from safetensors.torch import load_file
from test_sft import _reverse_data
from test_train import BASE, REPO, _env, _final_params, _flags

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
# What a user runs on GPUs, with the two overrides CPU needs (two processes, no bf16 autocast).
FSDP = [
    sys.executable,
    "-m",
    "accelerate.commands.launch",
    "--config_file",
    str(REPO / "configs/accelerate/fsdp.yaml"),
    "--num_processes",
    "2",
    "--mixed_precision",
    "no",
    "--main_process_port",
    "0",
]
RL = {**BASE, "max_steps": 2, "method": "trafl", "logz": "learned", "per_device_train_batch_size": 4}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("base") / "model")


def _train(launcher, flags, timeout=300, **kw):
    cmd = [*launcher, "-m", "trafl.cli", "train", *flags, "--quiet"]
    if launcher is FSDP:  # accelerate launch spells "-m" as "--module"
        cmd = [*launcher, "--module", "trafl.cli", "train", *flags, "--quiet"]
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture(scope="module")
def one_process(model_dir, tmp_path_factory):
    """Two RL steps on one process with two micro-batches per step (the reference of both tests)."""
    out = tmp_path_factory.mktemp("one")
    run = _train(
        [sys.executable], _flags({**RL, "model": model_dir, "output_dir": out, "gradient_accumulation_steps": 2})
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return out


def _compare_to_one_process(one, two, model_dir, label):
    """Equal to the last bits that matter: both runs compute the same two updates on the same global
    batches. Gradients are averaged in a different order (each micro-batch's loss / 2 summed on one
    process; per-process gradients summed and halved across two), and on CPU with gloo the results agree
    to the last bit here; the bound 1e-5 (updates are ~1e-3) leaves room for a reduction that rounds
    differently, but not for a different batch or a missed micro-batch (both change weights by ~1e-3)."""
    a, b = _final_params(one), _final_params(two)
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    base = load_file(str(model_dir / "model.safetensors"))
    moved = max(float((a[k] - base[k]).abs().max()) for k in a)
    print(f"\n{label}: max |1-proc - 2-proc| = {worst:.2e}; max update size = {moved:.2e}")
    assert moved > 1e-4
    assert worst < 1e-5
    ha = torch.load(Path(one) / "final" / "objective_head.pt")
    hb = torch.load(Path(two) / "final" / "objective_head.pt")
    assert all(torch.allclose(ha[k], hb[k], atol=1e-5) for k in ha)


@pytest.mark.slow
def test_two_process_data_parallel_equals_one_process(model_dir, one_process, tmp_path):
    # torchrun sets the process-group environment accelerate reads (gloo on CPU): DDP.
    two = _train(TORCHRUN, _flags({**RL, "model": model_dir, "output_dir": tmp_path}))
    assert two.returncode == 0, two.stderr[-3000:]
    _compare_to_one_process(one_process, tmp_path, model_dir, "DDP")


@pytest.mark.slow
def test_fsdp_two_processes_equal_one_process(model_dir, one_process, tmp_path):
    """Full fine-tuning: the frozen reference copy is sharded too (each process holds half of it) and
    scores the same reference log-probabilities, so the updates equal one process's."""
    two = _train(FSDP, _flags({**RL, "model": model_dir, "output_dir": tmp_path}))
    assert two.returncode == 0, two.stderr[-3000:]
    held = re.findall(
        r"reference: the frozen copy is sharded by FSDP2 over 2 processes \(this one holds (\d+) of (\d+)", two.stderr
    )
    assert held, two.stderr[-3000:]
    local, total = map(int, held[0])
    print(f"\nFSDP reference: this process holds {local} of {total} parameters")
    assert local <= total // 2 + 64  # half of every parameter (rounded up per tensor), not the whole copy
    _compare_to_one_process(one_process, tmp_path, model_dir, "FSDP")


@pytest.mark.slow
def test_fsdp_lora_saves_the_gathered_adapter_and_merged_model(model_dir, tmp_path):
    lora = {
        **RL,
        "model": model_dir,
        "use_peft": True,
        "lora_r": 4,
        "lora_alpha": 8,
        "lora_target_modules": "q_proj,v_proj",
    }
    one = _train([sys.executable], _flags({**lora, "output_dir": tmp_path / "one", "gradient_accumulation_steps": 2}))
    assert one.returncode == 0, one.stderr[-3000:]
    two = _train(FSDP, _flags({**lora, "output_dir": tmp_path / "two"}))
    assert two.returncode == 0, two.stderr[-3000:]
    a = load_file(str(tmp_path / "one" / "final" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "two" / "final" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and any("lora_B" in k for k in a)
    moved = max(float(v.abs().max()) for k, v in a.items() if "lora_B" in k)  # lora_B starts at 0
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    print(f"\nFSDP LoRA: max |1-proc - 2-proc| = {worst:.2e}; max lora_B = {moved:.2e}")
    assert moved > 1e-4 and worst < 1e-5
    ma = load_file(str(tmp_path / "one" / "final-merged" / "model.safetensors"))
    mb = load_file(str(tmp_path / "two" / "final-merged" / "model.safetensors"))
    assert ma.keys() == mb.keys() and max(float((ma[k] - mb[k]).abs().max()) for k in ma) < 1e-5


@pytest.mark.slow
def test_fsdp_kill_and_resume_is_bit_identical(model_dir, tmp_path):
    common = {**RL, "model": model_dir, "max_steps": 4, "save_steps": 1, "save_total_limit": 5}
    full = _train(FSDP, _flags({**common, "output_dir": tmp_path / "full"}))
    assert full.returncode == 0, full.stderr[-3000:]
    # the checkpoint holds one model shard per process, and a full HF export of the gathered model
    state = tmp_path / "full" / "checkpoint-3" / "state"
    assert sorted(p.name for p in (state / "pytorch_model_fsdp_0").glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    exported = load_file(str(tmp_path / "full" / "checkpoint-3" / "model" / "model.safetensors"))
    base = load_file(str(model_dir / "model.safetensors"))
    assert {k: v.shape for k, v in exported.items()} == {k: v.shape for k, v in base.items()}

    run = tmp_path / "killed"
    # its own session: SIGKILL reaches the launcher and both workers at once, like a lost node
    proc = subprocess.Popen(
        [*FSDP, "--module", "trafl.cli", "train", *_flags({**common, "output_dir": run}), "--quiet"],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while not (run / "checkpoint-2").exists():
        assert proc.poll() is None, "training ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (run / "final").exists()
    resumed = _train(FSDP, _flags({**common, "output_dir": run}) + ["--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = _final_params(tmp_path / "full"), _final_params(run)
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed FSDP run differs from the uninterrupted one"
    ha = torch.load(tmp_path / "full" / "final" / "objective_head.pt")
    hb = torch.load(run / "final" / "objective_head.pt")
    assert all(torch.equal(ha[k], hb[k]) for k in ha)
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]


@pytest.mark.slow
def test_sft_two_processes_equal_one_process(tmp_path):
    data = tmp_path / "d.jsonl"
    _reverse_data(data, 64, seed=0)
    common = dict(
        data=data,
        model="micro",
        max_completion_length=5,
        max_steps=3,
        batch_size=8,
        learning_rate=3e-3,
        warmup_steps=0,
        eval_steps=0,
        save_steps=0,
        num_threads=1,
        device="cpu",
        eval_fraction=0.1,
    )
    sft = ["-m", "trafl.cli", "sft", "--quiet"]
    one = subprocess.run(
        [sys.executable, *sft, *_flags({**common, "output_dir": tmp_path / "one", "gradient_accumulation_steps": 2})],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run(
        [*TORCHRUN, *sft, *_flags({**common, "output_dir": tmp_path / "two"})],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    a = load_file(str(tmp_path / "one" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "model" / "model.safetensors"))
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    print(f"\nSFT: max |1-proc - 2-proc| = {worst:.2e}")
    assert worst < 1e-5  # see _compare_to_one_process; no sampling here, so nothing can flip
    la = [json.loads(x)["loss"] for x in (tmp_path / "one" / "sft_metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x)["loss"] for x in (tmp_path / "two" / "sft_metrics.jsonl").read_text().splitlines()]
    assert len(la) == 3 and la == pytest.approx(lb, abs=1e-5)


def test_gpu_sharded_check_without_gpus_exits_cleanly(tmp_path):
    script = REPO / "benchmarks" / "gpu_sharded_check.py"
    help_ = subprocess.run([sys.executable, str(script), "--help"], env=_env(), capture_output=True, text=True)
    assert help_.returncode == 0 and "--configs" in help_.stdout
    if torch.cuda.device_count() >= 2:
        pytest.skip("GPUs present: the script would run the real check")
    run = subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path / "r.json")],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "needs at least 2 CUDA GPUs" in run.stdout
    assert json.loads((tmp_path / "r.json").read_text())["status"] == "skipped"


def test_checkpoint_directories_are_atomic_pruned_and_restored(tmp_path):
    """One process: the same code path the sharded runs take (accelerate save_state/load_state)."""
    from accelerate import Accelerator

    from trafl.errors import CheckpointError
    from trafl.utils.checkpoint import (
        latest_checkpoint,
        list_checkpoints,
        load_checkpoint,
        save_checkpoint,
    )

    acc = Accelerator(cpu=True)
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    head = torch.nn.Linear(2, 1)
    model, opt = acc.prepare(model, opt)
    acc.register_for_checkpointing(head)
    (tmp_path / ".checkpoint-7.tmp-dead").mkdir()  # a killed save's leftover
    saved = {}
    for step in (1, 2, 3):
        model(torch.ones(1, 3)).sum().backward()
        opt.step()
        head.weight.data += 1
        saved[step] = (model.weight.detach().clone(), head.weight.detach().clone())
        save_checkpoint(acc, tmp_path, step, model=model, keep_last=2, export_model=False, extra={"cursor": step})
    assert [p.name for p in list_checkpoints(tmp_path)] == ["checkpoint-2", "checkpoint-3"]
    assert not list(tmp_path.glob(".checkpoint-*"))
    (tmp_path / "checkpoint-9").mkdir()  # no trainer_state.json: incomplete, never loaded
    assert latest_checkpoint(tmp_path).name == "checkpoint-3"
    with torch.no_grad():
        model.weight.zero_()
        head.weight.zero_()
    state = load_checkpoint(acc, tmp_path / "checkpoint-2")
    assert state == {"step": 2, "extra": {"cursor": 2}}
    assert torch.equal(model.weight, saved[2][0]) and torch.equal(head.weight, saved[2][1])

    old = tmp_path / "old"
    (old / "checkpoint-5").mkdir(parents=True)
    (old / "checkpoint-5" / "trainer_state.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="trafl 0.1.*cannot resume"):
        latest_checkpoint(old)


def test_deepspeed_on_cpu_processes_is_a_clear_error(model_dir, tmp_path):
    env = {**_env(), "ACCELERATE_USE_DEEPSPEED": "true"}  # what accelerate launch sets for zero2/zero3.yaml
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "trafl.cli",
            "train",
            *_flags({**RL, "model": model_dir, "output_dir": tmp_path}),
            "--quiet",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode != 0
    assert "DeepSpeed ZeRO needs GPUs" in run.stderr


@pytest.mark.slow
def test_fast_sampler_with_sharded_parameters_is_a_clear_error(model_dir, tmp_path):
    # Every forward is a collective under FSDP: a threshold that ends a block early on one process would
    # hang the other, so the combination stops before any rollout.
    run = _train(FSDP, _flags({**RL, "model": model_dir, "output_dir": tmp_path, "rollout_threshold": 0.9}))
    assert run.returncode != 0
    assert "rollout_threshold" in run.stderr and "sharded" in run.stderr, run.stderr[-2000:]


#: JustGRPO (full fine-tuning): its loss is backpropagated per forward chunk of its ordered likelihood.
JUSTGRPO = {
    **{k: v for k, v in RL.items() if k not in ("logz", "diffusion_steps", "block_length", "temperature")},
    "method": "justgrpo",
    "ar_chunk_size": 3,
}


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["ddp", "fsdp"])
def test_justgrpo_backward_per_chunk_two_processes_equal_one_process(model_dir, tmp_path, launcher):
    """Per-chunk backward synchronises gradients once per step under DDP (no_sync on every other piece) and
    reduce-scatters every piece under FSDP (never an unsharded accumulation): both equal one process."""
    one = _train(
        [sys.executable],
        _flags({**JUSTGRPO, "model": model_dir, "output_dir": tmp_path / "one", "gradient_accumulation_steps": 2}),
    )
    assert one.returncode == 0, one.stderr[-3000:]
    two = _train(
        TORCHRUN if launcher == "ddp" else FSDP,
        _flags({**JUSTGRPO, "model": model_dir, "output_dir": tmp_path / "two"}),
    )
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = _final_params(tmp_path / "one"), _final_params(tmp_path / "two")
    base = load_file(str(model_dir / "model.safetensors"))
    moved = max(float((a[k] - base[k]).abs().max()) for k in a)
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    print(f"\nJustGRPO {launcher}: max |1-proc - 2-proc| = {worst:.2e}; max update size = {moved:.2e}")
    assert moved > 1e-4 and worst < 1e-5
