"""The sampler's empirical law matches its exact law, computed by enumerating every step's choices.

The model is a fixed random table over the whole canvas (``CanvasTableDenoiser``), whose
conditionals are not consistent with one joint distribution: the order in which positions are
unmasked changes the law, so these checks would catch a wrong schedule, a wrong remasking rule or
a wrong temperature. Each case also asserts that a *different* sampler setting is far from the
exact law in total variation, so the tolerance is tight enough to tell settings apart.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter

import pytest
import torch

from trafl.likelihood.exact import JointDenoiser, TableDenoiser, all_completions, random_order_logprob
from trafl.sampling import SamplerSettings, exact_distribution, generate
from trafl.sampling.toy_models import CanvasTableDenoiser

NUM_SAMPLES = 40_000


def tv(p: dict, q: dict) -> float:
    return 0.5 * sum(abs(p.get(y, 0.0) - q.get(y, 0.0)) for y in set(p) | set(q))


def empirical(model, prompt: torch.Tensor, seed: int, settings: SamplerSettings) -> dict:
    out = generate(
        model,
        prompt.unsqueeze(0),
        settings=settings,
        num_samples=NUM_SAMPLES,
        generator=torch.Generator().manual_seed(seed),
    )
    counts = Counter(map(tuple, out.completion.tolist()))
    return {y: c / NUM_SAMPLES for y, c in counts.items()}


CASES = [
    # (vocab, gen_length, steps, block_length, temperature, remasking, alternative setting)
    pytest.param(2, 3, 3, 3, 1.0, "random", {"remasking": "low_confidence"}, id="random-one-per-step"),
    pytest.param(2, 3, 2, 3, 1.0, "random", {"steps": 3}, id="random-steps<L"),
    pytest.param(3, 2, 2, 2, 0.5, "random", {"temperature": 1.0}, id="random-T0.5"),
    pytest.param(2, 4, 4, 2, 1.0, "random", {"block_length": 4}, id="random-2-blocks"),
    pytest.param(2, 3, 3, 3, 0.8, "low_confidence", {"remasking": "random"}, id="lowconf-one-per-step"),
    pytest.param(3, 3, 2, 3, 1.2, "low_confidence", {"steps": 3}, id="lowconf-steps<L"),
    pytest.param(2, 4, 4, 2, 1.0, "low_confidence", {"block_length": 4}, id="lowconf-2-blocks"),
    pytest.param(3, 2, 2, 2, 0.0, "random", {"remasking": "low_confidence"}, id="random-T0"),
]


@pytest.mark.parametrize("vocab,gen_length,steps,block_length,temperature,remasking,alternative", CASES)
def test_empirical_law_matches_enumeration(vocab, gen_length, steps, block_length, temperature, remasking, alternative):
    model = CanvasTableDenoiser(vocab, gen_length, seed=vocab * 10 + gen_length)
    prompt = torch.tensor([1, 0, 1])
    setting = SamplerSettings(
        gen_length=gen_length, steps=steps, block_length=block_length, temperature=temperature, remasking=remasking
    )
    exact = exact_distribution(model, prompt, setting)
    assert math.isclose(sum(exact.values()), 1.0, abs_tol=1e-12)
    assert all(len(y) == gen_length and model.mask_token_id not in y for y in exact)

    got = empirical(model, prompt, seed=steps * 100 + block_length, settings=setting)
    assert tv(got, exact) < 0.02

    # Power: the alternative setting's law is far from this one, so the check above can fail.
    other = exact_distribution(model, prompt, dataclasses.replace(setting, **alternative))
    assert tv(other, exact) > 0.05


def test_greedy_low_confidence_is_a_point_mass_the_sampler_hits():
    model = CanvasTableDenoiser(3, 3, seed=5)
    prompt = torch.tensor([2, 2])
    setting = SamplerSettings(gen_length=3, steps=3, block_length=3, temperature=0.0, remasking="low_confidence")
    exact = exact_distribution(model, prompt, setting)
    assert len(exact) == 1
    out = generate(model, prompt.unsqueeze(0), settings=setting, num_samples=4)
    assert {tuple(r) for r in out.completion.tolist()} == set(exact)


def test_prompt_changes_the_law():
    model = CanvasTableDenoiser(2, 3, seed=3)
    setting = SamplerSettings(gen_length=3, steps=3, block_length=3, temperature=1.0, remasking="random")
    a = exact_distribution(model, torch.tensor([0, 1]), setting)
    b = exact_distribution(model, torch.tensor([1, 1]), setting)
    assert tv(a, b) > 0.05


def _as_dict(logp: torch.Tensor, vocab: int, gen_length: int) -> dict:
    return {tuple(y): float(p) for y, p in zip(all_completions(vocab, gen_length).tolist(), logp.exp())}


def test_enumeration_agrees_with_the_random_order_mixture():
    """Independent check of the enumeration: random remasking, one token per step, T = 1 is the
    uniform mixture over orders P(y) = mean_sigma p_sigma(y) (trafl.likelihood.exact)."""
    vocab, gen_length = 3, 3
    model = TableDenoiser(vocab, gen_length, generator=torch.Generator().manual_seed(0), init_std=1.5)
    one_block = SamplerSettings(
        gen_length=gen_length, steps=gen_length, block_length=gen_length, temperature=1.0, remasking="random"
    )
    exact = exact_distribution(model, torch.tensor([0]), one_block)
    mixture = _as_dict(random_order_logprob(model.conditional_logprobs().detach(), vocab), vocab, gen_length)
    assert tv(exact, mixture) < 1e-12


def test_consistent_conditionals_give_the_joint_for_every_order():
    vocab, gen_length = 2, 3
    model = JointDenoiser(vocab, gen_length, generator=torch.Generator().manual_seed(1), init_std=1.5)
    q = _as_dict(model.log_joint().detach(), vocab, gen_length)
    left_to_right = SamplerSettings(
        gen_length=gen_length, steps=gen_length, block_length=1, temperature=1.0, remasking="random"
    )
    exact = exact_distribution(model, torch.tensor([0]), left_to_right)
    assert tv(exact, q) < 1e-12
    exact = exact_distribution(
        model,
        torch.tensor([0]),
        SamplerSettings(
            gen_length=gen_length, steps=gen_length, block_length=gen_length, temperature=1.0, remasking="random"
        ),
    )
    assert tv(exact, q) < 1e-12
