"""d1's one-step (mean-field) surrogate.

The completion is fully masked and each real prompt token is masked with probability
``p_mask_prompt``; one forward pass gives

    s_onestep(y|x) = sum_{i=1..L} log p(y_i | x~, all of y masked)

which factorises over positions (a mean-field approximation of ``log p(y|x)``). The random prompt
mask is drawn once (:func:`~trafl.likelihood.masks.draw_prompt_masks`) and shared by policy, old
policy and reference.
"""

from __future__ import annotations

import torch

from trafl.likelihood.batch import CanvasBatch
from trafl.likelihood.output import SurrogateOutput
from trafl.likelihood.tokens import token_logprobs
from trafl.models.interface import mask_token_id_of


def onestep(
    model, batch: CanvasBatch, prompt_masks: torch.Tensor | None = None, *, micro_batch_size: int | None = None
) -> SurrogateOutput:
    """Per-token log-probabilities of the completion from one fully masked forward pass.

    ``prompt_masks``: ``[N, P]`` bool prompt positions to mask (``None``: keep the prompt clean).
    """
    mask_id = mask_token_id_of(model)
    p = batch.prompt_length
    noisy = batch.input_ids.clone()
    noisy[:, p:] = mask_id
    if prompt_masks is not None:
        noisy[:, :p] = noisy[:, :p].masked_fill(prompt_masks, mask_id)
    logp = token_logprobs(model, noisy, batch.attention_mask, batch.completion, p, micro_batch_size)
    return SurrogateOutput(token_logp=logp)
