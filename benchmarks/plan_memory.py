"""Measured vs predicted memory of one training forward/backward (``trafl plan``'s activation and
parameter terms), on CPU (default) or a GPU (``--gpu``).

    python benchmarks/plan_memory.py                    # tiny + small presets, full FT / LoRA, +/- checkpointing
    python benchmarks/plan_memory.py --presets tiny     # the quick subset (seconds)
    python benchmarks/plan_memory.py --gpu              # the same cases on CUDA, bf16 autocast

How CPU memory is measured. torch's CPU tensors come from ``malloc``, which tracemalloc does not see,
and the torch profiler's memory events do not give a peak. Each case therefore runs in a *fresh
subprocess* started with ``MALLOC_MMAP_THRESHOLD_=65536``: every allocation above 64 KiB (every
activation here) is its own ``mmap``, returned to the kernel on ``free``, so the resident set
follows the live tensors instead of glibc's heap high-water mark. The subprocess

1. reads ``VmRSS`` before and after building the model: the *parameter* term;
2. runs one small warm-up forward/backward (kernels, thread pools, and the gradients, which stay
   allocated: ``zero_grad(set_to_none=False)``, so gradients are not counted as activations);
3. resets the kernel's peak-RSS counter (``echo 5 > /proc/self/clear_refs``) and reads ``VmRSS``;
4. runs the measured forward/backward (``token_logprobs`` of the completion positions, the loss
   every trafl surrogate builds on) and reads ``VmHWM``: peak minus step 3 is the *activation* term
   (saved tensors plus the backward's transient buffers).

Every case runs twice, side by side: ``chunked`` (trafl's LLaDA scores the targets a chunk of tokens at a
time and keeps no logits) and ``logits`` (the same model through its full logits, the path of denoisers
that do not score targets, and trafl's only path before); the ``chunked / logits`` column is their
measured activation ratio. A last pair on ``tiny`` runs JustGRPO's loss on the exact left-to-right
likelihood (``B L`` canvases in chunks): backpropagated per chunk (``chunked``) or once through every
chunk's graph (``logits``).

On GPU the same steps read ``torch.cuda.memory_allocated`` / ``max_memory_allocated``. Each case
prints predicted, measured and their ratio; the records are appended to ``--out``
(``benchmarks/results.jsonl``) like ``benchmarks/run.py`` does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CASES = {
    # preset: (rows, prompt, completion)
    "tiny": (8, 32, 96),
    "small": (2, 64, 192),
}
LORA = {
    "rank": 16,
    "targets": ("q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out"),
    "dropout": 0.05,
}
VOCAB = {"tiny": 4096, "small": None}  # tiny's 64-id vocabulary would hide the logits terms
#: How the completion is scored: ``chunked`` (trafl's LLaDA: target log-probs a chunk of tokens at a time,
#: no logits kept) or ``logits`` (the full logits, as for a denoiser that does not score targets); for the
#: ordered case, ``chunked`` = JustGRPO's backward per forward chunk, ``logits`` = one backward at the end.
PATHS = ("chunked", "logits")
#: JustGRPO's exact left-to-right likelihood on tiny: rows, prompt, completion (rows x completion canvases), chunk.
ORDERED = (2, 16, 64, 16)
#: tiny with 16 x 256 = 4096 completion tokens: four chunks of the target log-probs (the cases above fit in one).
LONG = (16, 32, 256)


def _status(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def worker(case: dict) -> dict:
    """One measurement, in this (fresh) process. Returns measured and predicted bytes."""
    import torch

    from trafl.likelihood.tokens import token_logprobs
    from trafl.models import build_model, enable_checkpointing
    from trafl.plan.activations import Lora, training_peak
    from trafl.plan.shape import ModelShape, count_parameters, lora_parameters
    from trafl.train.policy import output_head_names

    torch.set_num_threads(1)
    gpu = case["gpu"]
    device = "cuda" if gpu else "cpu"
    overrides = {"vocab_size": case["vocab"], "embedding_size": case["vocab"]} if case["vocab"] else {}

    def now() -> int:
        return torch.cuda.memory_allocated() if gpu else _status("VmRSS")

    warm = build_model("micro", device=device)  # warm the lazy imports: code is not a parameter
    if case["lora"]:
        from peft import LoraConfig, get_peft_model

        get_peft_model(warm, LoraConfig(r=2, target_modules=["q_proj"]))
    del warm
    torch.manual_seed(0)
    before = now()
    model = build_model(case["preset"], device=device, dtype=torch.bfloat16 if gpu else None, **overrides)
    lora = None
    if case["lora"]:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model,
            LoraConfig(
                r=LORA["rank"],
                lora_alpha=2 * LORA["rank"],
                lora_dropout=LORA["dropout"],
                target_modules=list(LORA["targets"]),
                bias="none",
                exclude_modules=output_head_names(model),
            ),
        )
        lora = Lora(LORA["rank"], LORA["targets"], LORA["dropout"] > 0)
    params_measured = now() - before
    if case["checkpointing"]:
        enable_checkpointing(model)
    model.train()
    config = model.config
    shape = ModelShape.from_config(config)
    vocab = shape.vocab
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if gpu else torch.autocast("cpu", enabled=False)

    scorer = model if case["path"] == "chunked" else LogitsOnly(model)

    def step(rows: int, prompt: int, completion: int) -> None:
        g = torch.Generator().manual_seed(1)
        ids = torch.randint(3, vocab, (rows, prompt + completion), generator=g).to(device)
        attn = torch.ones_like(ids)
        attn[0, : prompt // 4] = 0  # left padding: the SDPA path with a mask, as in training
        if case["surrogate"] == "ordered":
            justgrpo_step(scorer, ids, attn, prompt, case["chunk"], case["path"] == "chunked", autocast)
            return
        with autocast:
            logp = token_logprobs(scorer, ids, attn, ids[:, prompt:], prompt)
            loss = logp.mean()
        loss.backward()

    step(2 if case["surrogate"] == "ordered" else 1, 4, 4)  # warm-up; the gradients stay allocated
    for p in model.parameters():
        if p.grad is not None:
            p.grad.zero_()
    rows, prompt, completion = case["rows"], case["prompt"], case["completion"]
    if gpu:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    else:
        _reset_peak()
    base = now()
    step(rows, prompt, completion)
    if gpu:
        torch.cuda.synchronize()
    peak = (torch.cuda.max_memory_allocated() if gpu else _status("VmHWM")) - base

    s = 2 if gpu else 4
    n_params = count_parameters(shape)
    n_lora = lora_parameters(shape, LORA["rank"], LORA["targets"]) if lora else 0
    params_predicted = n_params * s + n_lora * 4  # peft keeps the adapters in float32
    graph_rows = rows
    if case["surrogate"] == "ordered":  # B L canvases; per chunk: one chunk's graph at a time
        graph_rows = case["chunk"] if case["path"] == "chunked" else rows * completion
    act = training_peak(
        shape,
        graph_rows,
        prompt + completion,
        completion,
        s,
        lora=lora,
        mask_bytes=1 if gpu else s,
        checkpointing=case["checkpointing"],
        full_logits=case["path"] == "logits" and case["surrogate"] == "tokens",
    )
    return {
        "params_predicted": params_predicted,
        "params_measured": params_measured,
        "act_predicted": act["peak"],
        "act_saved": act["saved"],
        "act_measured": peak,
        "n_params": n_params,
        "n_lora": n_lora,
    }


class LogitsOnly:
    """The model seen through the plain denoiser contract (logits only): ``token_logprobs``'s full-logits path."""

    def __init__(self, model):
        self.model, self.config = model, None
        self.mask_token_id = model.config.mask_token_id

    def __call__(self, input_ids, attention_mask=None):
        return self.model(input_ids, attention_mask=attention_mask).logits


def justgrpo_step(policy, ids, attn, prompt: int, chunk: int, per_chunk: bool, autocast) -> None:
    """JustGRPO's loss on the exact left-to-right likelihood of ``ids``'s completions (``B L`` canvases,
    ``chunk`` per forward) and its backward: per chunk (``per_chunk``) or once through every chunk's graph."""
    import torch

    from trafl.objectives import RolloutGroup, get_objective

    rows = ids.shape[0]
    rewards = torch.arange(rows, dtype=torch.float32).reshape(1, rows)  # one group, every sample informative
    group = RolloutGroup(ids, attn, prompt, rewards, eos_token_id=None)
    objective = get_objective("justgrpo", ar_chunk_size=chunk)
    group = objective.prepare(group).for_iteration(0)
    with autocast:
        if per_chunk:
            for piece in objective.loss_chunks(policy, group):
                piece().backward()
            return
        loss, _ = objective(policy, group)
    loss.backward()


def run_case(case: dict) -> dict:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(case)], env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode:
        raise RuntimeError(f"worker failed for {case}:\n{proc.stderr[-3000:]}")
    return {**case, **json.loads(proc.stdout.strip().splitlines()[-1])}


def _case(
    preset: str,
    shape: tuple[int, int, int],
    gpu: bool,
    path: str,
    *,
    lora: bool = False,
    checkpointing: bool = True,
    surrogate: str = "tokens",
    chunk: int = 0,
) -> dict:
    """One worker case: ``shape`` = (rows, prompt, completion)."""
    rows, prompt, completion = shape
    return {
        "preset": preset,
        "vocab": VOCAB[preset],
        "rows": rows,
        "prompt": prompt,
        "completion": completion,
        "lora": lora,
        "checkpointing": checkpointing,
        "gpu": gpu,
        "path": path,
        "surrogate": surrogate,
        "chunk": chunk,
    }


def cases(presets: list[str], gpu: bool, paths: tuple[str, ...] = PATHS) -> list[dict]:
    """Every preset x weights x checkpointing, scored by each path (``chunked`` then ``logits``), then on
    ``tiny`` a longer batch (:data:`LONG`, several chunks) and JustGRPO's ordered likelihood backpropagated
    per chunk and all at once."""
    out = []
    for preset in presets:
        for lora in (False, True):
            for ckpt in (False, True):
                out += [_case(preset, CASES[preset], gpu, path, lora=lora, checkpointing=ckpt) for path in paths]
        if preset == "tiny":
            for ckpt in (False, True):
                out += [_case(preset, LONG, gpu, path, checkpointing=ckpt) for path in paths]
            rows, prompt, completion, chunk = ORDERED
            ordered = (rows, prompt, completion)
            out += [_case(preset, ordered, gpu, path, surrogate="ordered", chunk=chunk) for path in paths]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="tiny,small", help="Comma-separated presets (tiny, small).")
    parser.add_argument("--gpu", action="store_true", help="Measure on CUDA (bf16 autocast) instead of CPU.")
    parser.add_argument(
        "--out", default=str(Path(__file__).with_name("results.jsonl")), help="JSON-lines file to append to."
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    from benchmarks.harness import format_table, machine
    from trafl.utils.io import append_jsonl

    rows = []
    for case in cases(args.presets.split(","), args.gpu):
        r = run_case(case)
        mib = 2**20
        rows.append(
            {
                "preset": r["preset"] if r["surrogate"] == "tokens" else f"{r['preset']} justgrpo",
                "path": r["path"],
                "weights": "lora" if r["lora"] else "full",
                "ckpt": r["checkpointing"],
                "N x T": (
                    f"{r['rows']}x{r['prompt'] + r['completion']}"
                    if r["surrogate"] == "tokens"
                    else f"{r['rows'] * r['completion']}/{r['chunk']}x{r['prompt'] + r['completion']}"
                ),
                "params pred MiB": r["params_predicted"] / mib,
                "params meas MiB": r["params_measured"] / mib,
                "params ratio": r["params_predicted"] / r["params_measured"],
                "act pred MiB": r["act_predicted"] / mib,
                "act meas MiB": r["act_measured"] / mib,
                "act ratio": r["act_predicted"] / r["act_measured"],
            }
        )
        if r["path"] == "logits" and len(rows) > 1 and rows[-2]["path"] == "chunked":  # side by side
            rows[-2]["act meas: chunked / logits"] = rows[-2]["act meas MiB"] / rows[-1]["act meas MiB"]
        print(json.dumps(rows[-1]), flush=True)
    for row in rows:
        row.setdefault("act meas: chunked / logits", "-")
    print(format_table(rows, list(rows[0])))
    append_jsonl(args.out, {"time": time.time(), "machine": machine(), "plan_memory": {"gpu": args.gpu, "rows": rows}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
