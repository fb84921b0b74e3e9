"""The result every sequence log-likelihood surrogate returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SurrogateOutput:
    """Per-position terms of a sequence log-likelihood surrogate.

    Attributes:
        token_logp: ``[N, L]``; the surrogate of row ``n`` is ``token_logp[n].sum()``. For the
            autoregressive and one-step surrogates these are token log-probabilities; for the ELBO,
            each position's share of the Monte-Carlo estimate.
        per_draw: ``[N, K]`` per-draw estimates of Monte-Carlo surrogates (``None`` otherwise).
    """

    token_logp: torch.Tensor
    per_draw: torch.Tensor | None = None

    @property
    def value(self) -> torch.Tensor:
        """``[N]`` the sequence surrogate (unnormalised, in nats)."""
        return self.token_logp.sum(dim=-1)

    def detach(self) -> SurrogateOutput:
        return SurrogateOutput(self.token_logp.detach(), None if self.per_draw is None else self.per_draw.detach())

    def select(self, rows: torch.Tensor | slice) -> SurrogateOutput:
        return SurrogateOutput(self.token_logp[rows], None if self.per_draw is None else self.per_draw[rows])
