"""Memory-bounded scoring gives the numbers of the all-at-once path (issue 29, item 4).

* Target log-probabilities computed chunk by chunk inside the model (:mod:`trafl.models.target_logprobs`:
  output head + float32 log-softmax + gather per chunk of tokens, recomputed in backward) against the
  model's full logits scored as before: the same values and gradients, on a float64 micro LLaDA.
* JustGRPO's loss backpropagated per forward chunk of the exact left-to-right likelihood
  (:mod:`trafl.objectives.chunked`) against one backward through every chunk's graph: the same loss,
  metrics and gradient (one and several inner iterations, a rollout temperature, every chunk size).

Measured on this file's cases: target log-probs equal to the bit, gradients within 5e-16 relative (float64
weights; the log-softmax runs in float32 on both paths); JustGRPO's loss and metrics equal to the bit,
gradients within 1e-15 relative.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

import trafl.models.target_logprobs as target_module
from trafl.likelihood.tokens import token_logprobs
from trafl.models import build_model
from trafl.models.interface import get_logits, scores_targets
from trafl.objectives import RolloutGroup, get_objective
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


# ---- JustGRPO: backward per chunk ----------------------------------------------------------------
P, L, G = 4, 6, 4


def justgrpo_group(temperature: float) -> RolloutGroup:
    g = torch.Generator().manual_seed(5)
    n = 2 * G
    ids = torch.randint(3, 60, (n, P + L), generator=g)
    ids[:3, -2:] = 1  # some completions end with EOS (id 1 in the micro preset's layout)
    attn = torch.ones_like(ids)
    attn[G:, :1] = 0
    rewards = torch.tensor([[1.0, 0.0, 0.5, 0.0], [1.0, 1.0, 1.0, 1.0]])  # group 1 uninformative
    return RolloutGroup(ids, attn, P, rewards, eos_token_id=1, temperature=temperature)


def all_at_once(objective, policy, group):
    policy.zero_grad(set_to_none=True)
    loss, metrics = objective(policy, group)
    loss.backward()
    return loss.detach(), metrics, grads(policy)


def per_chunk(objective, policy, group):
    policy.zero_grad(set_to_none=True)
    chunked = objective.loss_chunks(policy, group)
    assert chunked is not None
    for piece in chunked:
        piece().backward()  # one chunk's graph at a time
    loss, metrics = chunked.finish()
    return loss, metrics, grads(policy), len(chunked)


@pytest.mark.parametrize("chunk_size", [1, 7, 64])
@pytest.mark.parametrize("mu,temperature", [(1, 1.0), (2, 0.7)])
def test_justgrpo_backward_per_chunk_equals_one_backward(chunk_size, mu, temperature):
    objective = get_objective("justgrpo", ar_chunk_size=chunk_size)
    policy = micro(1)
    group = justgrpo_group(temperature)
    old = micro(2) if mu > 1 else None  # a different rollout policy: ratios != 1, clipping active
    group = objective.prepare(group, old_policy=old, num_iterations=mu).for_iteration(0)
    want_loss, want_metrics, want_grad = all_at_once(objective, policy, group)
    got_loss, got_metrics, got_grad, pieces = per_chunk(objective, policy, group)
    assert pieces == -(-(2 * G * L) // chunk_size)
    assert torch.equal(got_loss, want_loss)
    assert got_metrics == want_metrics
    assert rel(got_grad, want_grad) < 1e-12, rel(got_grad, want_grad)
    if mu > 1:
        assert want_metrics["justgrpo/clip_fraction"] > 0


def test_justgrpo_per_chunk_gradient_depends_on_every_chunk():
    """Dropping one piece's backward changes the gradient: every chunk contributes (the test can fail)."""
    objective = get_objective("justgrpo", ar_chunk_size=16)
    policy = micro(1)
    group = objective.prepare(justgrpo_group(1.0)).for_iteration(0)
    _, _, want = all_at_once(objective, policy, group)
    policy.zero_grad(set_to_none=True)
    chunked = objective.loss_chunks(policy, group)
    for j, piece in enumerate(chunked):
        part = piece()
        if j != 1:
            part.backward()
    assert rel(grads(policy), want) > 1e-3
    with pytest.raises(RuntimeError, match="finish after"):
        objective.loss_chunks(policy, group).finish()


def test_only_ordered_surrogates_have_a_chunked_loss():
    assert get_objective("justgrpo", surrogate="elbo").loss_chunks(micro(), justgrpo_group(1.0)) is None
    assert get_objective("espo").loss_chunks(micro(), justgrpo_group(1.0)) is None


def test_trainer_backward_per_chunk_takes_the_same_steps(tmp_path, monkeypatch):
    """``trafl train --method justgrpo`` (two micro-batches, two steps, chunks of 3 canvases) ends at the
    weights of the same run with one backward per micro-batch (``loss_chunks`` switched off)."""
    from rl_toys import DigitTask, make_model_dir
    from test_train import _final_params, cfg_for

    from trafl.objectives.justgrpo import JustGRPO
    from trafl.train.trainer import run_train

    model_dir = make_model_dir(tmp_path / "model")
    over = {"method": "justgrpo", "max_steps": 2, "gradient_accumulation_steps": 2, "ar_chunk_size": 3}
    run_train(cfg_for(model_dir, tmp_path / "chunked", **over), progress=False, task=DigitTask())
    monkeypatch.setattr(JustGRPO, "loss_chunks", lambda self, policy, group: None)
    run_train(cfg_for(model_dir, tmp_path / "whole", **over), progress=False, task=DigitTask())
    a, b = _final_params(tmp_path / "chunked"), _final_params(tmp_path / "whole")
    base = load_file(str(model_dir / "model.safetensors"))
    moved = max(float((a[k] - base[k]).abs().max()) for k in a)
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert moved > 1e-4, moved  # the steps changed the weights
    assert worst < 1e-6, (worst, moved)
