"""Peak memory of the no-gradient forwards: the sampler's rollouts and the surrogate scoring of the
reference / old policy in ``objective.prepare``.

Without autograd nothing is saved; the peak is the largest set of tensors alive at once:

* inside a block (``s`` bytes per element, ``N`` rows of ``T`` tokens): the residual stream, the
  norm's output and ``q, k, v`` plus RoPE's float32 temporaries, ``s (3 d + 2 d_kv) + 8 d``, or in
  the MLP the residual, the norm output and three ``[N, T, h]`` tensors, ``s (2 d + 3 h)``:
  ``N T max(...)``;
* the logits ``[N, T, V]`` in the model's compute dtype ``s`` (the sampler runs outside autocast,
  so in the dtype the weights are used in).

Rollout (``trafl.sampling.generate``, no KV cache): each step keeps only the current block's logits
in float64, ``[N, b, V]``, and draws the Gumbel noise for that block only: one float64 ``[b, V]``
per row, then stacked (``8 N b V`` twice), transformed in place; ``low_confidence`` adds a float64
softmax ``[N, b, V]``. Peak: ``max(s N T V + 8 N b V, 3 * 8 N b V)`` next to the trunk's.

Scoring (``token_logprobs`` under ``no_grad``): trafl's LLaDA scores the targets a chunk of
``c = min(1024, N L)`` tokens at a time (:mod:`trafl.models.target_logprobs`): the chunk's logits
``s c V``, their float32 copy ``4 c V`` (none in float32) and ``logsumexp``'s float32 temporary ``4 c V``.
Through the full logits (``full_logits``, denoisers that do not score targets): the logits ``s N T V``,
the float32 completion copy ``4 N L V`` (none in float32: ``.float()`` is a no-op) and ``logsumexp``'s
float32 temporary ``4 N L V``.
"""

from __future__ import annotations

from trafl.models.target_logprobs import TARGET_CHUNK_TOKENS
from trafl.plan.shape import ModelShape


def trunk_inference_peak(shape: ModelShape, rows: int, tokens: int, s: int) -> float:
    """``N T max(s (3 d + 2 d_kv) + 8 d, s (2 d + 3 h))``."""
    d = shape.d_model
    attn = s * (3 * d + 2 * shape.d_kv) + 8 * d
    mlp = s * (2 * d + 3 * shape.mlp_hidden)
    return float(rows * tokens * max(attn, mlp))


def rollout_peak(shape: ModelShape, rows: int, tokens: int, block: int, s: int) -> float:
    """``max(trunk, s N T V + 8 N b V, 3 * 8 N b V)`` (see the module docstring)."""
    v = shape.vocab
    logits = max(s * rows * tokens * v + 8 * rows * block * v, 3 * 8 * rows * block * v)
    return max(trunk_inference_peak(shape, rows, tokens, s), float(logits))


def scoring_peak(
    shape: ModelShape, rows: int, tokens: int, completion: int, s: int, *, full_logits: bool = False
) -> float:
    """``max(trunk, (s + [s != 4] 4 + 4) c V)`` for one no-grad surrogate forward, ``c = min(1024, N L)``;
    ``full_logits``: ``max(trunk, s N T V + [s != 4] 4 N L V + 4 N L V)``."""
    v = shape.vocab
    if full_logits:
        logits = s * rows * tokens * v + (4 * rows * completion * v if s != 4 else 0) + 4 * rows * completion * v
    else:
        chunk = min(TARGET_CHUNK_TOKENS, rows * completion)
        logits = (s + (4 if s != 4 else 0) + 4) * chunk * v
    return max(trunk_inference_peak(shape, rows, tokens, s), float(logits))
