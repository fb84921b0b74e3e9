"""GPU-scale check: one TraFL step of a LLaDA-8B-shaped model on one GPU (no network needed).

    python benchmarks/gpu_check.py --gen-lengths 256,512            # llada-8b shape, bf16, on cuda
    python benchmarks/gpu_check.py --shape tiny --device cpu --dtype float32 --gen-lengths 16 --group-size 4

Random weights (nothing is downloaded), LoRA r=128 (peft) on every projection, gradient
checkpointing. For each completion length ``L`` it reports

* rollout tokens/s of the sampler for ``G`` samples of one prompt, uncached and with the dual
  block KV cache (and the dual cache with threshold decoding);
* the time and the peak GPU memory of one TraFL update on that group (``prepare``: ELBO masks, the
  reference's ELBO and the logZ features without gradient, micro-batched by ``--micro-batch``
  canvases; then the policy ELBO forward/backward, split into ``--chunks`` row chunks whose
  gradients accumulate to exactly the full-group gradient, and the AdamW step);
* the model-FLOPs utilisation of the policy forward/backward: ``3 x`` the forward FLOPs
  (``2 x`` parameters per token + attention ``4 T^2 d`` per layer and canvas; the usual convention,
  recomputation not counted) over the time, divided by ``--peak-tflops``.

Results are printed and written as JSON to ``--out``.
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

from benchmarks.harness import machine, timed  # noqa: E402
from benchmarks.steps import build_objective, make_trainable, random_group, update_step  # noqa: E402
from trafl.models import build_model, enable_checkpointing  # noqa: E402
from trafl.models.loading import DTYPES, TrainDtype  # noqa: E402
from trafl.models.presets import PRESETS  # noqa: E402
from trafl.sampling import SamplerSettings, generate, row_generators  # noqa: E402

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out"]
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense bf16 tensor-core peaks


def forward_flops(config: Any, rows: int, seq_len: int) -> float:
    """Model FLOPs of one forward over ``rows`` canvases of ``seq_len`` tokens.

        F = rows * ( 2 * N_matmul * T  +  n_layers * 4 * T^2 * d )

    with ``N_matmul`` the parameters used in matrix products per token (attention and MLP
    projections of every layer, and the output head).
    """
    d, layers = config.d_model, config.n_layers
    kv = config.effective_n_kv_heads * config.head_dim
    per_layer = d * d * 2 + 2 * d * kv + 3 * d * config.effective_mlp_hidden_size
    n_matmul = layers * per_layer + d * config.effective_embedding_size
    return rows * (2.0 * n_matmul * seq_len + layers * 4.0 * seq_len**2 * d)


def peak_tflops_of(device: torch.device, override: float | None) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def build_policy(shape: str, device: torch.device, dtype: torch.dtype, lora_r: int, seed: int = 0):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    model = build_model(shape, device=device, dtype=dtype)
    enable_checkpointing(model)
    lora = LoraConfig(r=lora_r, lora_alpha=2 * lora_r, lora_dropout=0.0, target_modules=LORA_TARGETS, bias="none")
    policy = get_peft_model(model, lora)
    policy.train()
    return policy, model.config


def check_length(policy, config, device: torch.device, gen_length: int, args) -> dict[str, Any]:
    g, p = args.group_size, args.prompt_length
    steps = args.steps or gen_length
    block = min(args.block_length, gen_length)
    result: dict[str, Any] = {
        "gen_length": gen_length,
        "group_size": g,
        "prompt_length": p,
        "steps": steps,
        "block_length": block,
    }
    prompt = torch.randint(3, config.vocab_size, (1, p), generator=torch.Generator().manual_seed(1)).to(device)

    # --- rollouts --------------------------------------------------------------------------------
    policy.eval()
    for name, cache, thr in (("none", "none", None), ("dual", "dual", None), ("dual+thr0.9", "dual", 0.9)):
        gens = row_generators(0, 1, g, device)
        seconds, out = timed(
            lambda: generate(
                policy,
                prompt,
                None,
                settings=SamplerSettings(
                    gen_length=gen_length, steps=steps, block_length=block, temperature=0.9, cache=cache, threshold=thr
                ),
                num_samples=g,
                generator=gens,
            )
        )
        result[f"rollout_{name}_s"] = seconds
        result[f"rollout_{name}_tokens_per_s"] = g * gen_length / seconds
        result[f"rollout_{name}_forward_passes"] = out.num_forward
    policy.train()

    # --- one TraFL update ---------------------------------------------------------------------------
    objective = build_objective("trafl", config.d_model, num_mc=args.num_mc, micro_batch_size=args.micro_batch or None)
    objective.to(device)
    reference, optimizer = make_trainable(policy, objective)
    group = random_group(
        1, g, p, gen_length, config.vocab_size, config.eos_token_id, config.mask_token_id, device=device
    )
    _reset_peak(device)
    seconds, _ = timed(lambda: update_step(objective, policy, reference, group, optimizer, chunks=args.chunks))
    result["trafl_step_s"] = seconds
    result["trafl_step_peak_gib"] = _peak_gib(device)

    # forward/backward of the policy ELBO alone, for the utilisation
    gen = torch.Generator(device=device).manual_seed(0)
    policy.eval()
    prepared = objective.prepare(group, reference=reference, generator=gen)
    policy.train()

    def fwd_bwd():
        optimizer.zero_grad(set_to_none=True)
        loss, _ = objective(policy, prepared)
        loss.backward()

    fwd_bwd_s, _ = timed(fwd_bwd)
    optimizer.zero_grad(set_to_none=True)
    flops = 3.0 * forward_flops(config, g * args.num_mc, p + gen_length)
    result["policy_fwd_bwd_s"] = fwd_bwd_s
    result["policy_fwd_bwd_tflops"] = flops / fwd_bwd_s / 1e12
    peak = peak_tflops_of(device, args.peak_tflops)
    result["mfu"] = (flops / fwd_bwd_s / 1e12) / peak if peak else None
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=sorted(PRESETS), default="llada-8b")
    parser.add_argument("--gen-lengths", default="256,512", help="comma-separated completion lengths L")
    parser.add_argument("--group-size", type=int, default=16, help="G: samples of the one prompt")
    parser.add_argument("--prompt-length", type=int, default=64)
    parser.add_argument("--steps", type=int, default=0, help="sampler steps (0: L, one token per step)")
    parser.add_argument("--block-length", type=int, default=32)
    parser.add_argument("--lora-r", type=int, default=128)
    parser.add_argument("--num-mc", type=int, default=2, help="ELBO mask draws per completion")
    parser.add_argument("--micro-batch", type=int, default=8, help="canvases per no-grad ELBO forward (0: all)")
    parser.add_argument(
        "--chunks", type=int, default=1, help="row chunks of the policy backward (gradient accumulation)"
    )
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--dtype", choices=get_args(TrainDtype), default="bfloat16")
    parser.add_argument(
        "--peak-tflops", type=float, default=None, help="peak dense TFLOPS for MFU (default: by GPU name)"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--out", default="gpu_check.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    t0 = time.perf_counter()
    policy, config = build_policy(args.shape, device, DTYPES[args.dtype], args.lora_r)
    report: dict[str, Any] = {
        "machine": machine(),
        "device": str(device),
        "shape": args.shape,
        "dtype": args.dtype,
        "lora_r": args.lora_r,
        "num_mc": args.num_mc,
        "chunks": args.chunks,
        "micro_batch": args.micro_batch,
        "build_s": time.perf_counter() - t0,
        "parameters": sum(p.numel() for p in policy.parameters()),
        "trainable": sum(p.numel() for p in policy.parameters() if p.requires_grad),
        "lengths": [],
    }
    for gen_length in [int(x) for x in args.gen_lengths.split(",") if x]:
        res = check_length(policy, config, device, gen_length, args)
        report["lengths"].append(res)
        print(json.dumps(res), flush=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
