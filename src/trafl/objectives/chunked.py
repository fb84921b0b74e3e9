"""A token-level loss on an ordered likelihood, backpropagated one forward chunk at a time.

The exact ordered likelihoods (``autoregressive``, ``trajectory``) score ``N`` completions with one
forward pass per (row, reveal step): ``B L`` canvases for JustGRPO, in chunks of ``chunk_size``
(:func:`trafl.likelihood.ordered_chunks`). When a loss is a sum of per-token terms,

    loss = sum_{n,t} f_nt(log p_nt),     grad loss = sum_chunks sum_{(n,t) in chunk} f'_nt(log p_nt) grad log p_nt,

and every token is scored by exactly one chunk, so the gradient is the sum over chunks of each
chunk's own ``sum f_nt`` backpropagated alone: only one chunk's graph is alive at a time instead of
all of them. The loss value and the metrics are computed afterwards from the chunks' detached
log-probabilities, with the same function as the all-at-once loss, so they are the same numbers.

Use (what the trainer does)::

    chunked = objective.loss_chunks(policy, group)      # None: the objective has no chunked path
    for piece in chunked:
        backward(piece() / M)                           # one chunk's forward, then its backward
    loss, metrics = chunked.finish()                    # detached loss and metrics
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import torch

from trafl.likelihood import CanvasBatch, OrderedChunk, chunk_logprobs

#: ``terms(logp, log_ratio, rows) -> [c, L]`` the per-token loss terms of the canvases' rows (weights included).
TokenTerms = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
#: ``finish(logp, log_ratio) -> (loss, metrics)`` from the whole ``[N, L]`` detached tensors.
Finish = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, float]]]


class ChunkedLoss:
    """The pieces of a per-token loss over an ordered likelihood (see the module docstring).

    ``len(chunked)`` pieces; calling piece ``j`` runs chunk ``j``'s forward and returns
    ``sum_{(n,t) in chunk} terms_nt``, ready for its own backward. ``old_logp`` ``[N, L]`` is the rollout
    policy's token log-probabilities (``None``: the current policy's, detached, so the ratio is 1 with
    the gradient of ``log p``). :meth:`finish`, after every piece ran, returns ``finish(logp, log_ratio)``
    on the detached ``[N, L]`` tensors.
    """

    def __init__(
        self,
        model: Any,
        batch: CanvasBatch,
        order: torch.Tensor,
        chunks: list[OrderedChunk],
        *,
        old_logp: torch.Tensor | None,
        terms: TokenTerms,
        finish: Finish,
    ):
        self.model, self.batch, self.order, self.chunks = model, batch, order, chunks
        self.old_logp, self.terms, self._finish = old_logp, terms, finish
        self.token_logp = torch.zeros(batch.completion.shape, device=batch.input_ids.device, dtype=torch.float32)
        self.done = 0

    def __len__(self) -> int:
        return len(self.chunks)

    def __iter__(self) -> Iterator[Callable[[], torch.Tensor]]:
        for chunk in self.chunks:
            yield functools.partial(self.piece, chunk)

    def piece(self, chunk: OrderedChunk) -> torch.Tensor:
        """Chunk ``chunk``'s forward: its tokens' summed loss terms (differentiable in the model)."""
        logp = chunk_logprobs(self.model, self.batch, self.order, chunk)  # [c, L], 0 off the chunk's tokens
        revealed = self.order[chunk.rows] == chunk.steps
        self.token_logp.index_add_(0, chunk.rows, logp.detach())
        old = logp.detach() if self.old_logp is None else self.old_logp[chunk.rows].to(logp.dtype)
        self.done += 1
        return self.terms(logp, logp - old, chunk.rows).masked_fill(~revealed, 0.0).sum()

    def finish(self) -> tuple[torch.Tensor, dict[str, float]]:
        """``(loss, metrics)`` of the whole micro-batch, detached (every piece must have run)."""
        if self.done != len(self.chunks):
            raise RuntimeError(f"ChunkedLoss.finish after {self.done} of {len(self.chunks)} pieces")
        logp = self.token_logp
        old = logp if self.old_logp is None else self.old_logp.to(logp.dtype)
        with torch.no_grad():
            return self._finish(logp, logp - old)
