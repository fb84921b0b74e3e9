"""Activation memory of one training forward/backward, derived from what autograd saves.

Notation as in :mod:`trafl.plan.shape`; ``s`` bytes per activation element (2 under bf16 autocast,
4 in float32), ``N`` canvases (rows) of ``T = P + L`` tokens, ``L`` completion positions.

What one LLaDA block saves for backward, per token (read off ``modeling_llada.py`` / ``layers.py``
and checked tensor by tensor with ``torch.autograd.graph.saved_tensors_hooks`` in
``tests/test_plan.py``). A linear map saves its *input* only when its weight is trained (for the
weight's gradient); a frozen one saves nothing but its weight. So, per token:

* each RMSNorm (``rms_norm``): the float32 input and ``rsqrt`` (4 bytes) always: ``4 d + 4``; with
  trained weights also the normalised value (the affine ``mul``) and the output (the next linears'
  input): ``+ 2 s d``; two per block;
* attention: RoPE saves only ``cos``/``sin`` (shared, ``[T, D]``); ``scaled_dot_product_attention``
  on its fused paths (CPU flash, also with the padding mask; CUDA flash / memory-efficient) saves
  ``q, k, v``, its output and the float32 log-sum-exp ``[H, T]``: ``s (2 d + 2 d_kv') + 4 H`` with
  ``d_kv' = d`` under grouped-query attention (``repeat_kv`` copies); the output, laid out
  ``[B, T, H, D]``, is ``attn_out``'s input as a view. No ``T x T`` matrix is kept. The math
  fallback (``attention="math"``) keeps the softmax probabilities, ``s H T`` more per token;
* the gated MLP: ``ff_proj`` and ``up_proj`` outputs and ``silu``'s output: ``3 s h``; with a trained
  ``ff_out`` also its input, the product: ``+ s h``;
* LoRA on a linear ``in -> out`` with rank ``r``: ``lora_A``'s output ``s r`` and its input, the
  dropout's output, ``s in``; the dropout also saves its mask, ``m in`` (``m = s`` on CPU where it
  multiplies by a saved noise tensor, a 1-byte bool on CUDA), unless its input needs no gradient.
  (With ``lora_dropout = 0`` the adapters read the block's tensors directly: ``s d`` once for
  ``q/k/v``, once for ``ff_proj/up_proj``, ``s h`` for ``ff_out``.)

Under LoRA the first block's input needs no gradient, so its ``attn_norm`` saves nothing and its
``q/k/v`` dropouts keep no mask.

After the blocks, ``ln_f`` saves its float32 input and ``rsqrt`` (and, trained, the normalised value),
and the target log-probabilities (:mod:`trafl.models.target_logprobs`) keep no logits: the completion's
``ln_f`` output is copied to ``[N L, d]`` (a view of the whole ``[N, T, d]`` output when ``N = 1``),
``s d`` per completion token, with the target ids (``8`` per completion token); each chunk of
``c = min(1024, N L)`` tokens runs the head and the float32 log-softmax under checkpointing, so its
``[c, V]`` logits exist only while it runs, forward or backward (:func:`head_transient`).

A denoiser scored through its full logits instead (``token_logprobs``'s path for models that do not
score targets themselves, e.g. Dream) keeps the float32 logits for ``logsumexp``: ``4 V`` per
*completion* token in bf16, per *canvas* token in float32 (:func:`head_saved_logits`,
:func:`head_transient_logits`); :mod:`benchmarks.plan_memory` measures both paths side by side.

Gradient checkpointing (transformers' non-reentrant checkpoint around each ``LLaDABlock``) keeps
only each block's input, ``s d`` per token per block, and recomputes one block at a time in the
backward pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from trafl.models.target_logprobs import TARGET_CHUNK_TOKENS
from trafl.plan.shape import ModelShape


@dataclass(frozen=True)
class Lora:
    rank: int
    targets: tuple[str, ...]
    dropout: bool  # lora_dropout > 0: a dropout layer (and its mask) in front of every adapter


def norm_saved(d: int, s: int, trained: bool = True) -> int:
    """``4 d + 4`` (float32 input, ``rsqrt``) ``+ 2 s d`` when the norm weight and the next linears train."""
    return 4 * d + 4 + (2 * s * d if trained else 0)


def attention_saved(shape: ModelShape, s: int, attention: str = "fused", tokens: int = 0) -> int:
    """``s (2 d + 2 d_kv') + 4 H`` (+ ``s H T`` for the math path's probabilities)."""
    kv = shape.d_model if shape.n_kv_heads < shape.n_heads else shape.d_kv
    out = s * (2 * shape.d_model + 2 * kv) + 4 * shape.n_heads
    if attention == "math":
        out += s * shape.n_heads * tokens
    return out


def mlp_saved(shape: ModelShape, s: int, trained: bool = True) -> int:
    """``3 s h`` (gate, up, ``act(gate)``) ``+ s h`` (the product, ``ff_out``'s input) when trained."""
    return (4 if trained else 3) * s * shape.mlp_hidden


def lora_saved(shape: ModelShape, lora: Lora | None, s: int, mask_bytes: int, first_block: bool = False) -> int:
    """Adapters: ``sum_t s r + s in_t + m in_t`` (dropout), see the module docstring."""
    if lora is None:
        return 0
    linears = shape.block_linears()
    targets = [t for t in linears if t in lora.targets]
    out = s * lora.rank * len(targets)
    if not lora.dropout:
        inputs = {"q_proj": "n", "k_proj": "n", "v_proj": "n", "ff_proj": "m", "up_proj": "m", "ff_out": "p"}
        read = {inputs[t] for t in targets if t in inputs}
        return out + s * (shape.d_model * len(read & {"n", "m"}) + (shape.mlp_hidden if "p" in read else 0))
    for name in targets:
        fan_in = linears[name][0]
        no_mask = first_block and name in ("q_proj", "k_proj", "v_proj")
        out += s * fan_in + (0 if no_mask else mask_bytes * fan_in)
    return out


def block_saved(
    shape: ModelShape,
    s: int,
    *,
    lora: Lora | None = None,
    mask_bytes: int = 1,
    first_block: bool = False,
    attention: str = "fused",
    tokens: int = 0,
) -> int:
    """Bytes one block saves per token: 2 norms + attention + MLP + adapters (see module docstring)."""
    trained = lora is None
    norms = 2 * norm_saved(shape.d_model, s, trained)
    if lora is not None and first_block:
        norms -= norm_saved(shape.d_model, s, trained)  # attn_norm's input needs no gradient
    return (
        norms
        + attention_saved(shape, s, attention, tokens)
        + mlp_saved(shape, s, trained)
        + lora_saved(shape, lora, s, mask_bytes, first_block)
    )


def trunk_saved(
    shape: ModelShape,
    rows: int,
    tokens: int,
    s: int,
    *,
    lora: Lora | None,
    mask_bytes: int,
    checkpointing: bool,
    attention: str = "fused",
) -> float:
    """All blocks' saved bytes: ``N T sum_blocks block_saved`` (checkpointing: ``N T n s d``)."""
    if checkpointing:
        return float(rows * tokens * shape.n_layers * s * shape.d_model)
    first = block_saved(
        shape, s, lora=lora, mask_bytes=mask_bytes, first_block=True, attention=attention, tokens=tokens
    )
    rest = block_saved(shape, s, lora=lora, mask_bytes=mask_bytes, attention=attention, tokens=tokens)
    return float(rows * tokens * (first + (shape.n_layers - 1) * rest))


def head_saved(shape: ModelShape, rows: int, tokens: int, completion: int, s: int, *, full_finetuning: bool) -> float:
    """``ln_f`` (input and ``rsqrt``; trained: ``+ s d`` normalised) + the chunks' hidden rows + ids + RoPE:

    ``N T (4 d + 4 + [full] s d) + N L' s d + N L 8 + [full] N T 8 (the embedding's ids) + 2 T D 4``
    with ``L' = T`` when the completion slice is a view (``N = 1`` or no prompt), else ``L``.
    """
    d = shape.d_model
    view = rows == 1 or tokens == completion
    out = rows * tokens * (4 * d + 4 + (s * d if full_finetuning else 0))
    out += rows * (tokens if view else completion) * s * d + rows * completion * 8
    out += (8 * rows * tokens if full_finetuning else 0) + 2 * tokens * shape.head_dim * 4
    return float(out)


def head_saved_logits(
    shape: ModelShape, rows: int, tokens: int, completion: int, s: int, *, full_finetuning: bool
) -> float:
    """The full-logits path: ``ln_f`` + float32 logits for ``logsumexp`` + token ids + RoPE tables:

    ``N T norm + N L' 4 V + N T 8 (target ids; + 8 for the embedding's under full fine-tuning)
    + N L 4 (logsumexp) + 2 T D 4 (cos, sin)`` with ``L' = T`` in float32, ``L`` in bf16.
    """
    logit_positions = tokens if s == 4 else completion
    out = rows * tokens * norm_saved(shape.d_model, s, full_finetuning) + rows * logit_positions * 4 * shape.vocab
    out += rows * tokens * (16 if full_finetuning else 8) + rows * completion * 4 + 2 * tokens * shape.head_dim * 4
    return float(out)


def training_peak(
    shape: ModelShape,
    rows: int,
    tokens: int,
    completion: int,
    s: int,
    *,
    lora: Lora | None,
    mask_bytes: int,
    checkpointing: bool,
    attention: str = "fused",
    full_logits: bool = False,
) -> dict[str, float]:
    """Peak bytes of one training forward/backward above the model states: ``saved + transient``
    (``full_logits``: scored through the whole logits, the path of denoisers that do not score targets)."""
    full = lora is None
    saved = trunk_saved(
        shape, rows, tokens, s, lora=lora, mask_bytes=mask_bytes, checkpointing=checkpointing, attention=attention
    )
    if full_logits:
        saved += head_saved_logits(shape, rows, tokens, completion, s, full_finetuning=full)
    else:
        saved += head_saved(shape, rows, tokens, completion, s, full_finetuning=full)
    transient = max(
        head_transient_logits(shape, rows, completion) if full_logits else head_transient(shape, rows, completion, s),
        block_transient(
            shape, rows, tokens, s, lora=lora, mask_bytes=mask_bytes, checkpointing=checkpointing, attention=attention
        ),
    )
    return {"saved": saved, "transient": transient, "peak": saved + transient}


def head_transient(shape: ModelShape, rows: int, completion: int, s: int) -> float:
    """One chunk of ``c = min(1024, N L)`` tokens recomputed in the backward pass: its logits (``s``), their
    float32 copy (bf16 only) and ``logsumexp``'s backward (three float32 temporaries, as in
    :func:`head_transient_logits`): ``c V (s + 4 [s != 4] + 12)``."""
    chunk = min(TARGET_CHUNK_TOKENS, rows * completion)
    return float(chunk * shape.vocab * (s + (4 if s != 4 else 0) + 12))


def head_transient_logits(shape: ModelShape, rows: int, completion: int) -> float:
    """The full-logits path: ``3 * 4 N L V``, ``logsumexp``'s backward, ``grad * (z - lse).exp()``, holds
    three float32 ``[N, L, V]`` temporaries at once (C++ keeps an expression's temporaries until it
    ends), while the saved logits are still alive."""
    return float(3 * 4 * rows * completion * shape.vocab)


def block_transient(
    shape: ModelShape,
    rows: int,
    tokens: int,
    s: int,
    *,
    lora: Lora | None,
    mask_bytes: int,
    checkpointing: bool,
    attention: str = "fused",
) -> float:
    """A block's backward: gradients of the MLP's ``[N, T, h]`` tensors (gate, up: ``2 s h``) and of the
    residual stream (``2 s d``); with checkpointing also the recomputed block's saved tensors."""
    out = rows * tokens * (2 * s * shape.mlp_hidden + 2 * s * shape.d_model)
    if checkpointing:
        out += (
            rows * tokens * block_saved(shape, s, lora=lora, mask_bytes=mask_bytes, attention=attention, tokens=tokens)
        )
    return float(out)
