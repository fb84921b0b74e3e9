"""Remasking rules: the confidence by which a step ranks its proposals.

At every step each masked position ``i`` of the current block gets a proposal ``x0_i`` and a
confidence ``c_i``; the step commits the ``k`` most confident positions and leaves the others masked
("remasks" their proposals).

* ``low_confidence``: ``c_i = softmax(l_i)[x0_i]``, the probability of the proposal under the clean
  (untempered) logits, in float64;
* ``random``: ``c_i ~ U(0, 1)`` i.i.d., so the committed set is a uniformly random ``k``-subset of
  the masked positions, independent of the proposals.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

#: The remasking rules (this module's docstring), declared once: configs annotate their field with it.
Remasking = Literal["low_confidence", "random"]
REMASKING: tuple[Remasking, ...] = get_args(Remasking)


def low_confidence(logits: torch.Tensor, proposal: torch.Tensor) -> torch.Tensor:
    """``[..., N]`` ``c_i = softmax(l_i)_{x0_i}`` for logits ``[..., N, V]`` and proposals ``[..., N]``."""
    p = torch.softmax(logits.to(torch.float64), dim=-1)
    return p.gather(-1, proposal.unsqueeze(-1)).squeeze(-1)


def needs_uniforms(remasking: str) -> bool:
    """Whether the rule consumes one ``U(0, 1)`` draw per position per step."""
    return remasking == "random"
