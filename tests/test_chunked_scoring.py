"""Memory-bounded scoring gives the numbers of the all-at-once path (issue 29, item 4).

* Target log-probabilities computed chunk by chunk inside the model (:mod:`trafl.models.target_logprobs`:
  output head + float32 log-softmax + gather per chunk of tokens, recomputed in backward) against the
  model's full logits scored as before: the same values and gradients, on a float64 micro LLaDA.

Measured on this file's cases: target log-probs equal to the bit, gradients within 5e-16 relative (float64
weights; the log-softmax runs in float32 on both paths).
"""

from __future__ import annotations

import pytest
import torch

import trafl.models.target_logprobs as target_module
from trafl.likelihood.tokens import token_logprobs
from trafl.models import build_model
from trafl.models.interface import get_logits, scores_targets
from trafl.objectives.base import TemperatureScaled


def micro(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("micro", dtype=torch.float64)


class LogitsOnly(torch.nn.Module):
    """The same model seen through the plain denoiser contract (logits only): the unchunked path."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model, self.mask_token_id = model, model.config.mask_token_id

    def forward(self, input_ids, attention_mask=None):
        return get_logits(self.model, input_ids, attention_mask)


def grads(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def scored(model, scorer, ids, attn, targets, prompt):
    model.zero_grad(set_to_none=True)
    logp = token_logprobs(scorer, ids, attn, targets, prompt)
    weights = torch.randn(logp.shape, generator=torch.Generator().manual_seed(3), dtype=logp.dtype)
    (logp * weights).sum().backward()
    return logp.detach(), grads(model)


@pytest.mark.parametrize("chunk_tokens", [1, 5, 1024])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_chunked_target_logprobs_equal_the_full_logits_path(monkeypatch, chunk_tokens, temperature):
    model = micro()
    assert scores_targets(model) and not scores_targets(LogitsOnly(model))
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 60, (4, 13), generator=g)
    attn = torch.ones_like(ids)
    attn[0, :3] = 0  # left padding
    prompt = 5
    targets = torch.randint(3, 60, (4, 8), generator=g)
    full = LogitsOnly(model) if temperature == 1.0 else TemperatureScaled(LogitsOnly(model), temperature)
    want, want_grad = scored(model, full, ids, attn, targets, prompt)
    monkeypatch.setattr(target_module, "TARGET_CHUNK_TOKENS", chunk_tokens)
    chunked = model if temperature == 1.0 else TemperatureScaled(model, temperature)
    got, got_grad = scored(model, chunked, ids, attn, targets, prompt)
    assert rel(got, want) < 1e-6  # float32 log-softmax on both paths (equal to the bit at T = 1)
    assert rel(got_grad, want_grad) < 1e-6
    if temperature == 1.0:
        assert torch.equal(got, want)
        assert rel(got_grad, want_grad) < 1e-14
    with torch.no_grad():  # no graph: the same numbers
        torch.testing.assert_close(token_logprobs(chunked, ids, attn, targets, prompt), got, rtol=0, atol=0)


def test_chunked_target_logprobs_flip_a_target_changes_the_value():
    model = micro()
    ids = torch.randint(3, 60, (2, 9), generator=torch.Generator().manual_seed(2))
    targets = ids[:, 4:].clone()
    with torch.no_grad():
        base = token_logprobs(model, ids, torch.ones_like(ids), targets, 4)
        targets[1, 2] = (targets[1, 2] + 1) % 60
        flipped = token_logprobs(model, ids, torch.ones_like(ids), targets, 4)
    changed = (base != flipped).nonzero().tolist()
    assert changed == [[1, 2]]
