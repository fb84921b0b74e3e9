"""Transcription of wd1's loss, for the parity test against trafl (tests/test_parity_wd1.py).

Pure torch on plain tensors, written from the original's formula (not copied), independent of
trafl's code, at the snapshot ``xiaohangt/wd1`` @ 08989851e5dd84ac31af04d28f20a93488d66ffb
(``wd1@0898985`` below). The method the README and ``run/wll_NP_{gsm8k,math,countdown,sudoku}.sh``
run is ``--trainer_type wll_d1_neg`` (``wd1/run_train.py`` l.153-173): ``RevDiffuGRPOTrainer`` of
``wd1/trainers/rev_grpo_trainer.py``; ``wll_d1_pos_only`` (``run/wll_P_*.sh``) is
``RevPSRDiffuGRPOTrainer`` of ``wd1/trainers/rev_grpo_trainer_psr.py``, identical but for the
negative term (l.159 there: ``return ce_loss``).

Its per-token log-probabilities are d1's one-step ones (``_get_per_token_logps`` l.384-448 with
``forward_process`` l.319-346: every completion token masked, each prompt token masked where a
``torch.rand`` draw falls below ``p_mask_prompt``, no attention mask, ``-cross_entropy`` of the
completion logits); :mod:`parity_originals`'s ``d1_forward_mask``, ``d1_completion_mask`` and
``ce_token_logp`` transcribe the same lines of d1 and serve here unchanged.
"""

from __future__ import annotations

import torch


def wd1_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """``[N]`` ``r - mean_G r``, no std division (``rev_grpo_trainer.py`` l.627-638: the group std, l.629, only
    feeds ``zero_std_ratio`` and logging). ``rewards`` ``[P, G]`` prompt-major, the weighted sum over reward
    functions (l.622-625)."""
    return (rewards - rewards.mean(dim=1, keepdim=True)).reshape(-1)


def wd1_micro_batch_loss(
    per_token_logps: torch.Tensor, completion_mask: torch.Tensor, advantages: torch.Tensor, *, negative: bool = True
) -> torch.Tensor:
    """wd1's ``compute_loss`` on one device's micro-batch (``rev_grpo_trainer.py`` l.143-160):

    * l.144-145: ``is_weights = softmax(advantages, dim=0)`` over the micro-batch's rows;
    * l.151-153: ``per_token_logps`` of the iteration's mask seed, ``[rows, L]``;
    * l.154: ``ce_loss = -sum_rows( sum_t(logp * completion_mask) * is_weights )``;
    * l.156-159: ``n_is_weights = softmax(-advantages, dim=0)``,
      ``min_likeli_loss = sum_rows( sum_t(logp * completion_mask) * n_is_weights )``;
    * l.160: ``return ce_loss + min_likeli_loss`` (``negative=False``: ``rev_grpo_trainer_psr.py`` l.159,
      ``return ce_loss``).

    No temperature, no old policy, no reference, no clip (``epsilon`` and ``beta`` of ``train.yaml`` are
    unused by this trainer). The HF Trainer then divides by ``gradient_accumulation_steps`` before backward.
    """
    seq = (per_token_logps * completion_mask.to(per_token_logps.dtype)).sum(-1)
    w = torch.softmax(advantages.to(seq.dtype), dim=0)
    loss = -(seq * w).sum()
    if negative:
        nw = torch.softmax(-advantages.to(seq.dtype), dim=0)
        loss = loss + (seq * nw).sum()
    return loss
