"""Transcription of SPG's loss (Sandwiched Policy Gradient), for the parity tests of tests/test_parity_spg.py.

Pure torch functions on plain tensors, written from the original's code (not copied) and independent
of trafl's. Source: ``facebookresearch/SPG`` @ a1c712091aee3fde759bbf73b7850546265cd52d,
``spg/spg_trainer.py`` (cited as ``l.N``). Rows are prompt-major (TRL's sampler yields the ``G``
copies of a prompt consecutively; the launch scripts put one group of 6 on each device).

The original draws its randomness with the global RNG after ``set_seed(mask_seed)`` (l.239):
``torch.randperm`` of the blocks (l.344), ``torch.randint`` of each draw's mask size (l.362),
``torch.randperm`` placing it (l.367/369) and ``torch.rand`` for the clean positions (l.373). These
functions take those draws as arguments, so a test can feed them the choices trafl made.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def spg_completion_mask(completion_ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """``[N, L]`` int: 1 up to and including the first EOS (all ones without one); l.643-648."""
    is_eos = completion_ids == eos_token_id
    n, length = is_eos.shape
    eos_idx = torch.full((n,), length, dtype=torch.long)
    has = is_eos.any(dim=1)
    eos_idx[has] = is_eos.int().argmax(dim=1)[has]
    return (torch.arange(length).expand(n, -1) <= eos_idx.unsqueeze(1)).int()


def spg_advantages(rewards: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(A, reward_mask)``, ``[N]`` each: ``A = r - mean_G r`` (no std), ``reward_mask = A > 0``; l.717-721."""
    adv = (rewards - rewards.mean(dim=1, keepdim=True)).reshape(-1)
    return adv, adv > 0


def spg_forward_block_random(
    batch: torch.Tensor,
    prompt_length: int,
    completion_mask: torch.Tensor,
    *,
    num_t: int,
    block_length: int,
    min_t: float,
    max_t: float,
    p_mask_prompt: float,
    block_perms: torch.Tensor,
    mask_nums: torch.Tensor,
    inner_perms: list[list[torch.Tensor]],
    random_matrix: torch.Tensor,
    use_mask_prompt: bool = True,
) -> torch.Tensor:
    """``forward_type == "block_random"`` (l.334-378): the noisy canvases ``[b, num_t, l]`` as a bool mask.

    * l.336-345: ``num_blocks = L / block_length``; ``completion_num_blocks = (len - 1) // block_length + 1``;
      ``mask_block_idx = (arange(num_blocks)[randperm] % completion_num_blocks)[:, :num_t]`` (``block_perms``
      ``[b, num_blocks]`` are the permutations).
    * l.346-352: every position from the chosen block on is masked (``is_mask``).
    * l.353-369: within the chosen block, ``mask_length = min(block_length, len - block_length * idx)``;
      ``mask_num ~ randint(max(int(mask_length min_t), 1), min(int(mask_length max_t), mask_length) + 1)``
      (``mask_nums`` ``[b, num_t]``, checked to lie in that range); the first ``mask_num`` of ``arange``
      placed by ``randperm`` (``inner_perms[i][j]``, over ``block_length`` when the block is the last and
      full, over ``mask_length`` otherwise); the rest of ``is_mask_following`` stays True.
    * l.370-375: ``is_mask = (~is_mask & (rand < p)) | (is_mask & is_mask_following) | ~completion_mask``,
      i.e. the clean positions -- prompt **and** the earlier completion blocks -- are masked w.p. ``p``,
      and every position after the first EOS is masked.
    """
    b, total = batch.shape
    gen_length = total - prompt_length
    assert gen_length % block_length == 0
    num_blocks = gen_length // block_length
    completion_num_blocks = (completion_mask.sum(-1) - 1) // block_length + 1
    assert num_t <= num_blocks
    indices = torch.arange(num_blocks).repeat(b, 1)
    for i in range(b):
        indices[i] = indices[i][block_perms[i]] % completion_num_blocks[i]
    mask_block_idx = indices[:, :num_t]
    is_mask = torch.zeros((b, num_t, total), dtype=torch.bool)
    for i in range(b):
        for j in range(num_t):
            is_mask[i, j, -(num_blocks - mask_block_idx[i, j]) * block_length :] = True
    completion_length = completion_mask.sum(-1)
    is_mask_following = torch.ones((b, num_t, total), dtype=torch.bool)
    for i in range(b):
        for j in range(num_t):
            mask_length = min(block_length, int(completion_length[i]) - block_length * int(mask_block_idx[i, j]))
            assert mask_length > 0
            start_mask_num = max(int(mask_length * min_t), 1)
            end_mask_num = min(int(mask_length * max_t), mask_length)
            mask_num = int(mask_nums[i, j])
            assert start_mask_num <= mask_num <= end_mask_num, (i, j, mask_num)
            is_mask_next = torch.arange(block_length) < mask_num
            first = -(num_blocks - int(mask_block_idx[i, j])) * block_length
            if int(mask_block_idx[i, j]) == num_blocks - 1 and mask_length == block_length:
                is_mask_following[i, j, first:] = is_mask_next[inner_perms[i][j]]
            else:
                is_mask_following[i, j, first : first + mask_length] = is_mask_next[:mask_length][inner_perms[i][j]]
    completion_mask_append = torch.cat(
        (
            torch.ones(b, num_t, prompt_length, dtype=torch.bool),
            completion_mask.unsqueeze(1).repeat(1, num_t, 1).bool(),
        ),
        dim=2,
    )
    if use_mask_prompt:
        is_mask_prompt = ~is_mask & (random_matrix < p_mask_prompt)
        return is_mask_prompt | (is_mask & is_mask_following) | ~completion_mask_append
    return (is_mask & is_mask_following) | ~completion_mask_append


def spg_token_logp_and_prob(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """l.489-496, 501-502: ``-cross_entropy`` and ``softmax(...).gather`` of the targets, both cast to float32."""
    flat, tgt = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
    logp = -F.cross_entropy(flat.float(), tgt, reduction="none")
    prob = F.softmax(flat.float(), dim=-1).gather(dim=-1, index=tgt.unsqueeze(-1)).squeeze(-1)
    return logp.view(targets.shape).float(), prob.view(targets.shape).float()


def spg_per_seq_logps(
    per_token_logps: torch.Tensor,
    per_token_probs: torch.Tensor,
    completion_mask: torch.Tensor,
    perturb_mask: torch.Tensor,
    reward_mask: torch.Tensor,
    *,
    logp_estimation: str,
    eubo_beta: float,
    mix_weight: float,
) -> torch.Tensor:
    """``[b]`` per-sequence log-likelihood estimates for one inner iteration; l.508-556 (``num_iterations``
    axis of size 1 dropped). Inputs ``[b, num_t, L]``; ``perturb_mask`` = completion positions that are the
    mask token (l.465, 482); ``completion_mask`` ``[b, L]``.

    * l.520-532: ``per_seq = sum(logp cm pm) / sum(cm pm)`` per draw (clamped at 1e-8 if 0).
    * l.533-541: ``t = sum(cm pm) / sum(cm)``; ``avg = mean_draws(p^beta pm cm / clamp(t, 1e-8))``;
      zeros set to 1 before the log, ``loss_mask = avg > 0``.
    * l.544-550: positive = mean over draws of ``per_seq``; negative = ``mean_{loss_mask} log avg / beta``
      (eubo), its ``mix_weight`` mixture with the positive one (mix), the positive one (elbo) or 0 (zero).
    * l.556: ``reward_mask * positive + ~reward_mask * negative``.
    """
    cm = completion_mask.unsqueeze(1).expand(-1, per_token_logps.shape[1], -1).to(per_token_logps.dtype)
    pm = perturb_mask.to(per_token_logps.dtype)
    denominator = (cm * pm).sum(dim=2)
    if (denominator == 0).any():
        denominator = torch.clamp(denominator, min=1e-8)
    per_seq = (per_token_logps * cm * pm).sum(dim=2) / denominator
    positive = per_seq.mean(dim=1)
    if logp_estimation in ("eubo", "mix"):
        empirical_t = (cm * pm).sum(dim=2) / cm.sum(dim=2)
        t_exp = empirical_t.unsqueeze(2).expand(-1, -1, cm.shape[-1])
        avg = (per_token_probs.pow(eubo_beta) * pm * cm / t_exp.clamp(min=1e-8)).mean(dim=1)
        dezero = avg.clone()
        dezero[dezero == 0] = 1
        loss_mask = avg > 0
        eubo = (dezero.log() * loss_mask).sum(dim=1) / loss_mask.sum(dim=1).clamp(min=1e-8) / eubo_beta
    if logp_estimation == "eubo":
        negative = eubo
    elif logp_estimation == "mix":
        negative = mix_weight * eubo + (1 - mix_weight) * positive
    elif logp_estimation == "elbo":
        negative = positive
    elif logp_estimation == "zero":
        negative = torch.zeros_like(positive)
    else:
        raise ValueError(logp_estimation)
    return reward_mask.float() * positive + (~reward_mask).float() * negative


def spg_loss(per_seq_logps: torch.Tensor, advantages: torch.Tensor, completion_mask: torch.Tensor) -> torch.Tensor:
    """One device's micro-batch (one group of 6 in the launch scripts): l.115-118,
    ``sum(-A per_seq len) / sum(len)`` with ``len = completion_mask.sum(1)``. No ratio, clip or KL
    (``beta != 0`` raises, l.123-124). The HF Trainer then averages devices and accumulation steps."""
    length = completion_mask.sum(dim=1).to(per_seq_logps.dtype)
    return (-advantages.to(per_seq_logps.dtype) * per_seq_logps * length).sum() / length.sum()
