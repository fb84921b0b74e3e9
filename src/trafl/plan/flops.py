"""Floating-point operations per optimizer step (one process), counting a multiply-add as 2.

A forward of ``N`` canvases of ``T`` tokens costs

    F(N, T) = N T (2 P_mm + 2 P_lora + 4 n T d)

with ``P_mm`` the parameters used in matrix products (the blocks' linears and the head,
:func:`trafl.plan.shape.matmul_parameters`), ``P_lora`` the adapters and ``4 n T d`` the attention
scores and their product with the values (``q k^T`` and ``p v``, ``2 T d`` each, per layer). The
backward costs ``2 F`` when every weight trains (gradients for the activations *and* for the
weights); under LoRA the frozen weights need only the activations' gradient, so ``F_bwd = F +
2 (attention + adapter) part``, i.e. ``N T (2 P_mm + 4 P_lora + 8 n T d)``. Gradient checkpointing
adds one forward of the blocks.

One optimizer step of ``trafl train`` per process, with ``A`` = ``gradient_accumulation_steps``
micro-batches of ``B`` = ``per_device_train_batch_size`` completions, ``S`` sampler steps and
``R`` canvases scored per micro-batch (``B`` one-step, ``B K`` ELBO with ``K`` = ``num_mc``,
``B L`` autoregressive):

    rollout  = A S F(B, P + L)                              (no KV cache: every step is a full forward)
    scoring  = A D (ref + old) F(R, P + L)                  (D = num_iterations with resample_noise, else 1;
                                                             old only when num_iterations > 1)
    training = mu A (F(R, P + L) + F_bwd(R, P + L) [+ F(R, P + L) with checkpointing])
"""

from __future__ import annotations

from trafl.plan.shape import ModelShape, matmul_parameters


def attention_flops(shape: ModelShape, rows: int, tokens: int) -> float:
    """``N T 4 n T d``: ``q k^T`` and ``p v`` in every layer (bidirectional: all ``T^2`` pairs)."""
    return float(rows * tokens * 4 * shape.n_layers * tokens * shape.d_model)


def forward_flops(shape: ModelShape, rows: int, tokens: int, lora_params: int = 0) -> float:
    """``F(N, T) = N T (2 P_mm + 2 P_lora) + attention``."""
    return float(rows * tokens * (2 * matmul_parameters(shape) + 2 * lora_params)) + attention_flops(
        shape, rows, tokens
    )


def backward_flops(shape: ModelShape, rows: int, tokens: int, lora_params: int = 0, *, full_finetuning: bool) -> float:
    """``2 F`` (full fine-tuning) or ``N T (2 P_mm + 4 P_lora + 8 n T d)`` (LoRA)."""
    if full_finetuning:
        return 2 * forward_flops(shape, rows, tokens, lora_params)
    return float(rows * tokens * (2 * matmul_parameters(shape) + 4 * lora_params)) + 2 * attention_flops(
        shape, rows, tokens
    )
