"""The building blocks of the LLaDA network as small pure functions over tensors.

Shapes: ``B`` batch, ``T`` sequence, ``H`` query heads, ``G`` key/value heads, ``D`` head dim.
Each function follows the published LLaDA implementation's numerics (noted per function).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rms_norm(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float) -> torch.Tensor:
    """RMSNorm:  y = w * x / sqrt(mean_j x_j^2 + eps)  (+ b).

    The normalisation runs in float32 and is cast back to ``x``'s dtype *before* the affine
    weight is applied, as in LLaDA's ``RMSLayerNorm``.
    """
    xf = x.float()
    normed = (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)
    if weight is not None:
        normed = weight * normed
    if bias is not None:
        normed = normed + bias
    return normed


def rope_angles(seq_len: int, head_dim: int, theta: float, device: torch.device | None = None) -> torch.Tensor:
    """RoPE angles ``[T, D]``:  a[t, i] = t * theta^(-2 (i mod D/2) / D).

    The D/2 frequencies are repeated as two halves (``cat(f, f)``), matching the rotate-half
    layout used by LLaDA (not the interleaved-pairs layout).
    """
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    positions = torch.arange(seq_len, device=device, dtype=torch.float32)
    freqs = torch.outer(positions, inv_freq)
    return torch.cat((freqs, freqs), dim=-1)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) with x1, x2 the first and second halves of the last dimension."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, full_precision: bool = True) -> torch.Tensor:
    """Rotate queries or keys ``[B, heads, T, D]`` by position:  x cos(a) + rotate_half(x) sin(a).

    With ``full_precision`` the rotation runs in float32 whatever ``x``'s dtype (LLaDA's
    ``rope_full_precision``). Because <R_s q, R_t k> depends only on t - s, attention scores are
    invariant to a common shift of positions: left padding needs no position offset.
    """
    dtype = x.dtype
    if full_precision:
        x = x.float()
    else:
        cos, sin = cos.to(dtype), sin.to(dtype)
    return (x * cos + rotate_half(x) * sin).to(dtype)


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """Grouped-query attention: ``[B, G, T, D] -> [B, G * n_rep, T, D]``.

    Query head h reads key/value head h // n_rep (``repeat_interleave`` along heads, as in LLaDA).
    """
    if n_rep == 1:
        return x
    b, g, t, d = x.shape
    return x[:, :, None].expand(b, g, n_rep, t, d).reshape(b, g * n_rep, t, d)


def key_padding_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """``[B, T]`` (1 real, 0 padding) -> boolean ``[B, 1, 1, T]`` "may attend to key" mask for SDPA.

    Attention is bidirectional: every query sees every real key, none sees padding. Returns
    ``None`` when nothing is padded (SDPA's unmasked fast path). A row with no real token at
    all is left unmasked so that its (meaningless) outputs stay finite instead of NaN.
    """
    if attention_mask is None:
        return None
    keep = attention_mask.to(torch.bool)
    if bool(keep.all()):
        return None
    keep = keep | ~keep.any(dim=-1, keepdim=True)
    return keep[:, None, None, :]


def bidirectional_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """softmax(q k^T / sqrt(D) + mask) v with no causal mask; ``k``/``v`` may have fewer heads (GQA)."""
    n_rep = q.shape[1] // k.shape[1]
    return F.scaled_dot_product_attention(
        q, repeat_kv(k, n_rep), repeat_kv(v, n_rep), attn_mask=mask, dropout_p=dropout_p, is_causal=False
    )


def gated_mlp(gate: torch.Tensor, up: torch.Tensor, act: str) -> torch.Tensor:
    """LLaDA's Llama-block MLP core:  act(ff_proj x) * (up_proj x), given the two projections.

    ``gate`` is the output of ``ff_proj`` (the one passed through the activation), ``up`` that of
    ``up_proj``; ``ff_out`` is applied by the caller.
    """
    if act == "silu":
        return F.silu(gate) * up
    if act == "gelu":
        return F.gelu(gate) * up
    if act == "relu":
        return F.relu(gate) * up
    raise ValueError(f"unsupported activation_type {act!r}")
