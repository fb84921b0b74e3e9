"""Autoregressive / trajectory / one-step surrogates and length normalisation, checked exactly."""

from __future__ import annotations

import itertools

import torch

from trafl.likelihood import (
    CanvasBatch,
    Surrogate,
    autoregressive,
    normalising_length,
    onestep,
    trajectory,
)
from trafl.likelihood.exact import TableDenoiser, all_completions, exact_left_to_right, order_logprobs, state_index

V, L = 3, 3


def canvases(ys: torch.Tensor, pad: int = 0) -> CanvasBatch:
    """Prompt ``[pad x 0, 1, 2]`` left-padded with ``pad`` zeros that the mask marks as padding."""
    prompt = torch.tensor([0] * pad + [1, 2]).expand(ys.shape[0], -1)
    ids = torch.cat([prompt, ys], dim=1)
    attn = torch.ones_like(ids)
    attn[:, :pad] = 0
    return CanvasBatch(ids, attn, prompt.shape[1])


def test_autoregressive_equals_enumerated_left_to_right_for_every_chunk_size():
    model = TableDenoiser(V, L, generator=torch.Generator().manual_seed(0))
    ys = all_completions(V, L)
    exact = exact_left_to_right(model.conditional_logprobs(), V).detach()
    for chunk in (1, 5, 1000):
        with torch.no_grad():
            got = autoregressive(model, canvases(ys, pad=1), chunk_size=chunk).value.double()
        torch.testing.assert_close(got, exact, rtol=0, atol=1e-5)


def test_trajectory_equals_the_order_likelihood_of_each_permutation():
    model = TableDenoiser(V, L, generator=torch.Generator().manual_seed(1))
    ys = all_completions(V, L)
    table = order_logprobs(model.conditional_logprobs(), V).detach()  # [L!, V^L]
    for k, sigma in enumerate(itertools.permutations(range(L))):
        commit = torch.empty(L, dtype=torch.long)
        commit[list(sigma)] = torch.arange(L)  # position sigma_t committed at step t
        with torch.no_grad():
            got = trajectory(model, canvases(ys), commit.expand(len(ys), -1), chunk_size=7).value.double()
        torch.testing.assert_close(got, table[k], rtol=0, atol=1e-5)


def test_trajectory_with_several_tokens_per_step_conditions_on_earlier_steps_only():
    model = TableDenoiser(V, L, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([[2, 1, 0]])
    commit = torch.tensor([[0, 1, 0]])  # positions 0 and 2 together, then position 1
    cond = model.conditional_logprobs().detach()
    m = V
    s0 = state_index(torch.tensor([m, m, m]), V, m)
    s1 = state_index(torch.tensor([2, m, 0]), V, m)
    expected = cond[s0, 0, 2] + cond[s0, 2, 0] + cond[s1, 1, 1]
    with torch.no_grad():
        got = trajectory(model, canvases(y), commit).value.double()
    torch.testing.assert_close(got, expected.view(1), rtol=0, atol=1e-6)


def test_onestep_is_the_fully_masked_mean_field_and_masks_only_real_prompt_tokens():
    model = TableDenoiser(V, L, generator=torch.Generator().manual_seed(3))
    ys = all_completions(V, L)
    cond = model.conditional_logprobs().detach()
    s_all = state_index(torch.full((L,), V), V, V)
    expected = sum(cond[s_all, i, ys[:, i]] for i in range(L))
    batch = canvases(ys, pad=2)
    spec = Surrogate("onestep", p_mask_prompt=1.0)
    noise = spec.draw(batch, torch.Generator().manual_seed(0))
    assert noise[:, :2].sum() == 0 and noise[:, 2:].all()  # padding never masked, real tokens all masked at p=1
    with torch.no_grad():
        got = onestep(model, batch, noise).value.double()
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_length_normalisation_counts_through_the_first_eos():
    eos = 9
    comp = torch.tensor([[1, 2, eos, eos, eos], [1, 2, 3, 4, 5], [eos, eos, eos, eos, eos]])
    torch.testing.assert_close(normalising_length(comp, eos, "tokens"), torch.tensor([3.0, 5.0, 1.0]))
    torch.testing.assert_close(normalising_length(comp, eos, "canvas"), torch.tensor([5.0, 5.0, 5.0]))
