"""The masked-diffusion training loss (LLaDA's SFT objective).

Forward process: draw ``t ~ U(0, 1)`` per sequence, set ``p_mask = (1 - eps) * t + eps`` so that
``p_mask`` lies in ``[eps, 1]``, and replace every completion token by the mask token independently
with probability ``p_mask``. The prompt is never masked.

Loss (an upper bound on the completion's negative log-likelihood):

    loss = E_t E_{y_t} [ (1 / L_y) * sum_{i masked} -log p_theta(y_i | x, y_t) / p_mask ]

where ``L_y`` is the completion length (EOS padding included, as in LLaDA's SFT, so the model
learns to fill the end of the canvas with EOS). The ``1 / p_mask`` weight makes the estimator
unbiased for the ELBO, whose expectation over ``t`` integrates ``1/t`` against the mask rate.

Semi-autoregressive corruption (:func:`semi_ar_forward_process`). The block sampler (LLaDA's
``generate`` with ``block_length < gen_length``) decodes block ``k`` while blocks ``< k`` are
clean and blocks ``> k`` are all masks. Independent masking almost never shows the model that
state for a long answer (a clean 250-token prefix needs a small ``t``, a fully masked 250-token
suffix a ``t`` near 1), so a model trained on it alone learns to place the end of its answer from
the EOS tokens it sees in the tail, which the block sampler never shows it. Drawing the block-state
corruption instead, with the bound of the block-factorised likelihood
``-log p(y) = sum_k -log p(y^k | x, y^{<k})``, each term bounded by the masked-diffusion loss of
block ``k`` given the clean prefix and the masked suffix:

    loss_k = E_t E_{y^k_t} [ (1 / B) * sum_{i in block k masked} -log p_theta(y_i | x, y^{<k}, y^k_t, M^{>k}) / p_mask ]

with ``B`` the block length; ``k ~ U{0..K-1}`` over the ``K = L_y / B`` blocks makes
``mean_k loss_k`` (an unbiased estimate of ``(1/L_y) sum_k`` of the block bounds, the same scale as
the loss above). :func:`masked_diffusion_loss` computes it when given the block's masked tokens and
``p_mask / K`` (``(1 / L_y) / (p_mask / K) = (1 / B) / p_mask``).

Importance sampling of the block (``end_share``). Uniform ``k`` spends most draws on blocks whose
targets are trivial (a long canvas is mostly EOS fill) and few on the block holding the answer's end,
where the model must decide to stop. Drawing ``k`` from

    q_k = (1 - s) / K + s * [k = k_end]

(``k_end``: the block of the completion's first EOS, :func:`end_blocks`) and weighting block ``k``'s
term by ``1 / (K q_k)`` keeps the estimate's expectation, ``sum_k q_k loss_k / (K q_k) = mean_k
loss_k``; :func:`masked_diffusion_loss` gets it from ``p_mask * q_k`` in place of ``p_mask / K``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def forward_process(
    input_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    mask_token_id: int,
    eps: float = 1e-3,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mask each completion token with probability ``p_mask = (1 - eps) t + eps``, ``t ~ U(0,1)``.

    Args:
        input_ids: ``[B, T]`` clean canvases (prompt and completion).
        completion_mask: ``[B, T]`` bool, True on completion positions (the only maskable ones).
        mask_token_id: id written at masked positions.
        eps: lower bound of the masking rate.
        generator: optional RNG for reproducibility.

    Returns:
        ``(noisy_ids, masked, p_mask)``: the corrupted canvas, the bool ``[B, T]`` set of masked
        positions, and ``p_mask`` as ``[B, 1]``.
    """
    batch = input_ids.shape[0]
    t = torch.rand(batch, 1, device=input_ids.device, generator=generator)
    p_mask = (1.0 - eps) * t + eps
    u = torch.rand(input_ids.shape, device=input_ids.device, generator=generator)
    masked = (u < p_mask) & completion_mask.bool()
    noisy = torch.where(masked, torch.full_like(input_ids, mask_token_id), input_ids)
    return noisy, masked, p_mask


def semi_ar_forward_process(
    input_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    mask_token_id: int,
    block_length: int,
    eps: float = 1e-3,
    generator: torch.Generator | None = None,
    end_block: torch.Tensor | None = None,
    end_share: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The state the block sampler decodes from: per row, block ``k ~ U{0..K-1}`` of the completion's
    ``K = L / block_length`` blocks, ``t ~ U(0, 1)``, ``p_mask = (1 - eps) t + eps``; blocks ``< k``
    clean, each token of block ``k`` masked with probability ``p_mask``, every token after block ``k``
    masked.

    Returns ``(noisy_ids, masked, p_mask)`` for :func:`masked_diffusion_loss`: ``masked`` holds block
    ``k``'s masked tokens only (the suffix is context, not target) and ``p_mask`` is ``[B, 1]`` rate
    ``/ K``, which turns the loss into ``(1 / block_length) sum_{i in block k masked} CE / rate``
    (module docstring).

    With ``end_share = s > 0`` and ``end_block`` (``[B, 1]``, :func:`end_blocks`), ``k`` is drawn from
    ``q_k = (1 - s) / K + s [k = k_end]`` instead and ``p_mask`` is ``rate * q_k``: the same loss in
    expectation, with ``s`` of the draws on the block where the answer ends.
    """
    rows = input_ids.shape[0]
    position = completion_mask.long().cumsum(dim=1) - 1  # index within the completion (-1 before it)
    length = completion_mask.sum(dim=1, keepdim=True)
    if bool((length % block_length).any()):
        raise ValueError(
            f"completion length {length.flatten().tolist()} is not a multiple of block_length={block_length}"
        )
    num_blocks = length // block_length
    k = (torch.rand(rows, 1, device=input_ids.device, generator=generator) * num_blocks).long()
    t = torch.rand(rows, 1, device=input_ids.device, generator=generator)
    rate = (1.0 - eps) * t + eps
    u = torch.rand(input_ids.shape, device=input_ids.device, generator=generator)
    block = torch.div(position, block_length, rounding_mode="floor")
    completion = completion_mask.bool()
    if end_share:
        if end_block is None:
            raise ValueError("end_share > 0 needs end_block, the block of each row's first EOS (end_blocks)")
        to_end = torch.rand(rows, 1, device=input_ids.device, generator=generator) < end_share
        k = torch.where(to_end, end_block, k)
    masked = completion & (block == k) & (u < rate)
    hidden = masked | (completion & (block > k))
    noisy = torch.where(hidden, torch.full_like(input_ids, mask_token_id), input_ids)
    if not end_share:  # q_k = 1 / K, written as before so that earlier runs reproduce bit for bit
        return noisy, masked, rate / num_blocks.to(rate.dtype)
    return noisy, masked, rate * block_probabilities(k, num_blocks, end_block, end_share).to(rate.dtype)


def block_probabilities(
    k: torch.Tensor, num_blocks: torch.Tensor, end_block: torch.Tensor | None, end_share: float
) -> torch.Tensor:
    """``q_k = (1 - s) / K + s [k = k_end]``, per row (``[B, 1]``): the probability of drawing block ``k``
    (``1 / K`` when ``s = 0``)."""
    q = (1.0 - end_share) / num_blocks.to(torch.float32)
    if end_share:
        q = q + end_share * (k == end_block).to(q.dtype)
    return q


def end_blocks(
    input_ids: torch.Tensor, completion_mask: torch.Tensor, eos_token_id: int, block_length: int
) -> torch.Tensor:
    """``[B, 1]`` block index (within the completion) of each row's first ``eos_token_id``: the block where
    the model must decide to stop. A completion without EOS ends in its last block."""
    completion = completion_mask.bool()
    position = completion_mask.long().cumsum(dim=1) - 1
    length = completion_mask.sum(dim=1, keepdim=True)
    is_eos = completion & (input_ids == eos_token_id)
    first = torch.where(is_eos, position, length).min(dim=1, keepdim=True).values.clamp(max=length - 1)
    return torch.div(first, block_length, rounding_mode="floor")


def mixed_forward_process(
    input_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    mask_token_id: int,
    eps: float = 1e-3,
    generator: torch.Generator | None = None,
    semi_ar_block_length: int = 0,
    semi_ar_fraction: float = 0.0,
    end_block: torch.Tensor | None = None,
    end_share: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`forward_process` for every row, or, when ``semi_ar_block_length`` and ``semi_ar_fraction``
    are set, :func:`semi_ar_forward_process` for each row with probability ``semi_ar_fraction``: the
    loss is then the mixture of the two bounds. With the semi-AR share at 0 this draws exactly what
    :func:`forward_process` draws (same generator calls), so older runs reproduce. ``end_block`` and
    ``end_share`` go to :func:`semi_ar_forward_process`."""
    noisy, masked, p_mask = forward_process(input_ids, completion_mask, mask_token_id, eps, generator)
    if not (semi_ar_block_length and semi_ar_fraction):
        return noisy, masked, p_mask
    b_noisy, b_masked, b_p = semi_ar_forward_process(
        input_ids, completion_mask, mask_token_id, semi_ar_block_length, eps, generator, end_block, end_share
    )
    pick = torch.rand(input_ids.shape[0], 1, device=input_ids.device, generator=generator) < semi_ar_fraction
    return torch.where(pick, b_noisy, noisy), torch.where(pick, b_masked, masked), torch.where(pick, b_p, p_mask)


def masked_diffusion_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    masked: torch.Tensor,
    p_mask: torch.Tensor,
    completion_mask: torch.Tensor,
) -> torch.Tensor:
    """``mean_b (1/L_b) * sum_{i masked} CE(logits_bi, y_bi) / p_mask_b``.

    Args:
        logits: ``[B, T, V]`` model outputs on the noisy canvas.
        targets: ``[B, T]`` clean tokens.
        masked: ``[B, T]`` bool, positions that were masked.
        p_mask: ``[B, 1]`` masking rate of each row.
        completion_mask: ``[B, T]`` bool, completion positions (``L_b`` = its row sums).
    """
    lengths = completion_mask.sum(dim=1).clamp(min=1).to(logits.dtype)
    ce = F.cross_entropy(logits[masked].float(), targets[masked], reduction="none")
    weights = (1.0 / p_mask.expand_as(masked))[masked]
    row = masked.nonzero(as_tuple=True)[0]
    per_row = torch.zeros(logits.shape[0], dtype=ce.dtype, device=logits.device)
    per_row = per_row.index_add(0, row, ce * weights)
    return (per_row / lengths.float()).mean()


def masked_token_nll(logits: torch.Tensor, targets: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the masked tokens (an unweighted diagnostic, for held-out loss)."""
    if not masked.any():
        return logits.new_zeros(())
    return F.cross_entropy(logits[masked].float(), targets[masked])
