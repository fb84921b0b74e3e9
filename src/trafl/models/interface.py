"""The one interface every sampler, estimator and objective relies on.

A *denoiser* is any object ``m`` such that

* ``m(input_ids, attention_mask=None)`` returns logits ``[B, T, V]`` over the clean token at each
  position, or an object with a ``.logits`` attribute holding them;
* ``mask_token_id_of(m)`` finds its mask token id (attribute ``mask_token_id``, or
  ``m.config.mask_token_id``).

``attention_mask`` is ``[B, T]`` with 1 for real tokens and 0 for left padding. Hand-made exact
models (a fixed table of conditionals) satisfy this interface, which is how the tests check the
sampler and the likelihood estimators against exact enumeration.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class Denoiser(Protocol):
    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> Any: ...


def get_logits(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Run ``model`` and return its ``[B, T, V]`` logits whatever it returns."""
    if attention_mask is None:
        out = model(input_ids)
    else:
        out = model(input_ids, attention_mask=attention_mask)
    logits = out.logits if hasattr(out, "logits") else out
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    if logits.dim() != 3 or logits.shape[:2] != input_ids.shape:
        raise ValueError(
            f"denoiser returned logits of shape {tuple(logits.shape)}; expected "
            f"[batch, seq_len, vocab] with batch, seq_len = {tuple(input_ids.shape)}"
        )
    return logits


def scores_targets(model: Any) -> bool:
    """Whether ``model`` (or the model a view wraps, through its ``config``) accepts
    ``model(input_ids, attention_mask=..., target_ids=y, temperature=t)`` and returns the ``[B, L]``
    log-probabilities of ``y`` at the last ``L`` positions (``.target_logprobs``) without materialising
    the ``[B, L, V]`` logits: trafl's native LLaDA does (:mod:`trafl.models.target_logprobs`)."""
    config = getattr(model, "config", None)
    return bool(getattr(type(config), "scores_target_ids", False))


def get_target_logprobs(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    target_ids: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """``[B, L]`` float32 ``log softmax(logits / temperature)[target]`` at the last ``L`` positions, from a
    model for which :func:`scores_targets` holds."""
    out = model(input_ids, attention_mask=attention_mask, target_ids=target_ids, temperature=temperature)
    scores = out.target_logprobs if hasattr(out, "target_logprobs") else out
    if isinstance(scores, (tuple, list)):
        scores = scores[0]
    if scores.shape != target_ids.shape:
        raise ValueError(
            f"denoiser returned target log-probs {tuple(scores.shape)}; expected {tuple(target_ids.shape)}"
        )
    return scores


def mask_token_id_of(model: Any) -> int:
    """The mask token id of a denoiser (``model.mask_token_id`` or ``model.config.mask_token_id``)."""
    for obj in (model, getattr(model, "config", None), getattr(getattr(model, "module", None), "config", None)):
        if obj is not None and getattr(obj, "mask_token_id", None) is not None:
            return int(obj.mask_token_id)
    raise ValueError(f"{type(model).__name__} has no mask_token_id: set model.mask_token_id or config.mask_token_id")


def enable_checkpointing(model: Any) -> None:
    """Recompute activations in the backward pass (non-reentrant), through transformers' current name
    for it (``activation_checkpointing_enable`` from 5.x; ``gradient_checkpointing_enable`` before)."""
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
