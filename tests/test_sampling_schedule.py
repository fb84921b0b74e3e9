"""The transfer schedule k_j = n // s + [j < n mod s], the per-row top-k commit, and the commit
counts observed in real sampler runs."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trafl.models import build_model
from trafl.sampling import SamplerSettings, generate, num_transfer_tokens, select_top_k
from trafl.sampling.toy_models import CanvasTableDenoiser


def test_schedule_examples():
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [1, 0, 1, 0, 1, 0, 0], [0, 0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    assert num_transfer_tokens(mask, 3).tolist() == [[3, 2, 2], [1, 1, 1], [0, 0, 0]]
    assert num_transfer_tokens(mask, 1).tolist() == [[7], [3], [0]]
    assert num_transfer_tokens(mask[:1], 7).tolist() == [[1] * 7]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=5), st.integers(1, 40), st.data())
def test_schedule_property(masked_counts, steps, data):
    width = max(masked_counts) + data.draw(st.integers(0, 5))
    rows = []
    for n in masked_counts:
        perm = torch.randperm(width, generator=torch.Generator().manual_seed(n * 97 + width))
        row = torch.zeros(width, dtype=torch.bool)
        row[perm[:n]] = True
        rows.append(row)
    k = num_transfer_tokens(torch.stack(rows), steps)
    assert k.shape == (len(masked_counts), steps) and k.dtype == torch.long
    for n, row in zip(masked_counts, k.tolist()):
        assert sum(row) == n
        assert row == [n // steps + (1 if j < n % steps else 0) for j in range(steps)]
        assert max(row) - min(row) <= 1 and row == sorted(row, reverse=True)


def test_select_top_k_per_row_counts_and_ties():
    conf = torch.tensor([[0.1, 0.9, 0.5, 0.7], [0.3, 0.3, 0.3, 0.3], [0.9, 0.8, 0.1, 0.2]], dtype=torch.float64)
    cand = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 1], [0, 1, 1, 1]], dtype=torch.bool)
    k = torch.tensor([2, 3, 1])
    chosen = select_top_k(conf, k, cand)
    assert chosen.tolist() == [
        [False, True, False, True],  # the two most confident
        [True, True, True, False],  # ties go to the leftmost positions
        [False, True, False, False],  # position 0 is not a candidate
    ]
    assert chosen.sum(dim=1).tolist() == k.tolist()


def _per_step_counts(commit_step: torch.Tensor, steps: int) -> torch.Tensor:
    return torch.stack([(commit_step == s).sum(dim=1) for s in range(steps)], dim=1)


@pytest.mark.parametrize("gen_length,block_length,steps", [(12, 4, 6), (12, 12, 5), (10, 5, 4), (8, 2, 8), (9, 3, 9)])
@pytest.mark.parametrize("remasking", ["low_confidence", "random"])
def test_commit_counts_follow_the_schedule_in_every_block(gen_length, block_length, steps, remasking):
    torch.manual_seed(0)
    model = build_model("micro").eval()
    prompts = torch.randint(3, 64, (2, 5))
    out = generate(
        model,
        prompts,
        settings=SamplerSettings(
            gen_length=gen_length, steps=steps, block_length=block_length, temperature=0.7, remasking=remasking
        ),
        num_samples=3,
        generator=torch.Generator().manual_seed(1),
    )
    assert (out.commit_step >= 0).all()
    num_blocks = gen_length // block_length
    per_block = steps // num_blocks
    expected = num_transfer_tokens(torch.ones(1, block_length, dtype=torch.bool), per_block)[0].repeat(num_blocks)
    counts = _per_step_counts(out.commit_step, steps)
    assert (counts == expected).all()
    # Block b's positions are committed during block b's steps.
    block_of_position = torch.arange(gen_length) // block_length
    assert ((out.commit_step // per_block) == block_of_position).all()


def test_counts_on_the_exact_toy_model():
    model = CanvasTableDenoiser(3, 3, seed=0)
    out = generate(
        model,
        torch.tensor([[0, 1]]),
        settings=SamplerSettings(gen_length=3, steps=2, block_length=3, temperature=1.0, remasking="random"),
        num_samples=50,
        generator=torch.Generator().manual_seed(0),
    )
    assert (_per_step_counts(out.commit_step, 2) == torch.tensor([2, 1])).all()
