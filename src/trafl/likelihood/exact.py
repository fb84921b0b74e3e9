"""Exact computations on tiny spaces, and table denoisers to run them on.

For vocabulary size ``V`` and completion length ``L`` every completion ``y in V^L`` and every
partially masked state ``z in (V+1)^L`` can be enumerated. A denoiser is then a table of
conditionals ``log p(y_i = v | z)`` (``[S, L, V]``, ``S = (V+1)^L``). From it:

* ``log p_sigma(y) = sum_t log p(y_{sigma_t} | y_{sigma_<t})`` for every order ``sigma``;
* ``log P(y) = log mean_sigma p_sigma(y)``: the law of random-order sampling that commits one
  uniformly chosen position per step (LLaDA's sampler with ``remasking="random"``, ``steps = L``,
  temperature 1);
* ``ELBO(y) = mean_sigma log p_sigma(y)``, and the same number from the mask-set formula
  ``sum_{M != {}} (1 / (|M| C(L, |M|))) sum_{i in M} log p(y_i | y with M masked)``.

:class:`TableDenoiser` has a free logit vector for every (state, position): it can represent any
set of conditionals, consistent or not. :class:`JointDenoiser` derives its conditionals from one
joint ``q(y)``, so all orders agree and ``ELBO = log P = log q``.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn


def all_completions(vocab_size: int, gen_length: int) -> torch.Tensor:
    """``[V^L, L]`` every completion, in lexicographic order."""
    return torch.tensor(list(itertools.product(range(vocab_size), repeat=gen_length)), dtype=torch.long)


def state_index(tokens: torch.Tensor, vocab_size: int, mask_token_id: int) -> torch.Tensor:
    """Index in ``[0, (V+1)^L)`` of partially masked completions ``[..., L]`` (mask as digit ``V``)."""
    digits = torch.where(tokens == mask_token_id, torch.full_like(tokens, vocab_size), tokens)
    powers = (vocab_size + 1) ** torch.arange(tokens.shape[-1] - 1, -1, -1, device=tokens.device)
    return (digits * powers).sum(dim=-1)


def order_logprobs(cond: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """``[L!, V^L]`` ``log p_sigma(y)`` for every order ``sigma`` (rows in ``itertools.permutations`` order)."""
    gen_length = cond.shape[1]
    ys = all_completions(vocab_size, gen_length).to(cond.device)
    mask = vocab_size
    rows = []
    for sigma in itertools.permutations(range(gen_length)):
        z = torch.full_like(ys, mask)
        total = torch.zeros(ys.shape[0], dtype=cond.dtype, device=cond.device)
        for pos in sigma:
            s = state_index(z, vocab_size, mask)
            total = total + cond[s, pos, ys[:, pos]]
            z = z.clone()
            z[:, pos] = ys[:, pos]
        rows.append(total)
    return torch.stack(rows)


def random_order_logprob(cond: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """``[V^L]`` ``log P(y) = log mean_sigma p_sigma(y)``, the random-order sampler's exact law."""
    lp = order_logprobs(cond, vocab_size)
    return lp.logsumexp(dim=0) - math.log(lp.shape[0])


def exact_elbo(cond: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """``[V^L]`` ELBO by enumerating every non-empty mask set ``M`` with weight ``1 / (|M| C(L,|M|))``."""
    gen_length = cond.shape[1]
    ys = all_completions(vocab_size, gen_length).to(cond.device)
    out = torch.zeros(ys.shape[0], dtype=cond.dtype, device=cond.device)
    for m in range(1, gen_length + 1):
        for subset in itertools.combinations(range(gen_length), m):
            z = ys.clone()
            z[:, list(subset)] = vocab_size
            s = state_index(z, vocab_size, vocab_size)
            terms = sum(cond[s, i, ys[:, i]] for i in subset)
            out = out + terms / (m * math.comb(gen_length, m))
    return out


def exact_left_to_right(cond: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """``[V^L]`` ``log p(y)`` revealed left to right (the identity order)."""
    return order_logprobs(cond, vocab_size)[0]


def entropy(logp: torch.Tensor) -> torch.Tensor:
    """Entropy ``-sum_y P(y) log P(y)`` of a normalised log-distribution (nats)."""
    return -(logp.exp() * logp).sum()


def total_variation(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """``TV(P, Q) = 0.5 sum_y |P(y) - Q(y)|``."""
    return 0.5 * (logp.exp() - logq.exp()).abs().sum()


class TableDenoiser(nn.Module):
    """A denoiser with a free logit vector for every (partially masked completion, position).

    Token ids ``0..V-1`` are the vocabulary and ``V`` is the mask token; the prompt (everything
    before the last ``L`` positions) is ignored. Output logits are ``[B, T, V+1]`` with the mask
    token excluded.
    """

    def __init__(
        self, vocab_size: int, gen_length: int, *, init_std: float = 1.0, generator: torch.Generator | None = None
    ):
        super().__init__()
        self.vocab_size = vocab_size
        self.gen_length = gen_length
        self.mask_token_id = vocab_size
        states = (vocab_size + 1) ** gen_length
        self.logits = nn.Parameter(
            init_std * torch.randn(states, gen_length, vocab_size, generator=generator, dtype=torch.float64)
        )

    def conditional_logits(self) -> torch.Tensor:
        """``[S, L, V]`` the conditionals' logits."""
        return self.logits

    def conditional_logprobs(self) -> torch.Tensor:
        return self.conditional_logits().log_softmax(dim=-1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        comp = input_ids[:, -self.gen_length :]
        table = self.conditional_logits()[state_index(comp, self.vocab_size, self.mask_token_id)]
        out = torch.zeros(*input_ids.shape, self.vocab_size + 1, dtype=table.dtype, device=table.device)
        out[:, :, self.vocab_size] = -1e30
        out[:, -self.gen_length :, : self.vocab_size] = table
        return out


class JointDenoiser(TableDenoiser):
    """Conditionals of one joint ``q(y) = softmax(joint_logits)``: ``p(y_i = v | z)`` is ``q``'s
    conditional of position ``i`` given the visible tokens of ``z``."""

    consistent: torch.Tensor  # buffers (registered in __init__)
    onehot: torch.Tensor

    def __init__(
        self, vocab_size: int, gen_length: int, *, init_std: float = 1.0, generator: torch.Generator | None = None
    ):
        super().__init__(vocab_size, gen_length, init_std=0.0)
        del self.logits
        self.joint_logits = nn.Parameter(
            init_std * torch.randn(vocab_size**gen_length, generator=generator, dtype=torch.float64)
        )
        ys = all_completions(vocab_size, gen_length)
        states = all_completions(vocab_size + 1, gen_length)  # digit V = masked
        visible = states != vocab_size
        consistent = ((states.unsqueeze(1) == ys.unsqueeze(0)) | ~visible.unsqueeze(1)).all(dim=-1)  # [S, Y]
        self.register_buffer("consistent", consistent, persistent=False)
        self.register_buffer("onehot", nn.functional.one_hot(ys, vocab_size).bool(), persistent=False)  # [Y, L, V]

    def log_joint(self) -> torch.Tensor:
        return self.joint_logits.log_softmax(dim=0)

    def conditional_logits(self) -> torch.Tensor:
        lq = self.log_joint()
        # logit[s, i, v] = log sum_{y consistent with s, y_i = v} q(y)
        allowed = self.consistent[:, :, None, None] & self.onehot[None]  # [S, Y, L, V]
        scores = torch.where(allowed, lq[None, :, None, None], torch.full((), -math.inf, dtype=lq.dtype))
        return scores.logsumexp(dim=1).clamp(min=-1e30)
