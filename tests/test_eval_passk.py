"""pass@k against brute-force enumeration of k-subsets; diversity counts."""

from __future__ import annotations

import itertools
import math
import random
from fractions import Fraction

import pytest
import torch

from trafl.errors import ConfigError
from trafl.eval.diversity import distinct_correct, normalise_text, summarise_distinct
from trafl.eval.passk import mean_and_stderr, pass_at_k, pass_at_k_curves, summarise_pass_at_k


def brute_force_pass_at_k(correct: list[bool], k: int) -> float:
    """Fraction of the k-subsets of the samples that contain a correct one."""
    subsets = list(itertools.combinations(range(len(correct)), k))
    return sum(any(correct[i] for i in s) for s in subsets) / len(subsets)


def test_pass_at_k_matches_enumeration_on_random_cases():
    rng = random.Random(0)
    for _ in range(60):
        n = rng.randint(1, 9)
        correct = [rng.random() < rng.random() for _ in range(n)]
        c = sum(correct)
        curve = pass_at_k_curves([c], n)[0]
        for k in range(1, n + 1):
            expected = brute_force_pass_at_k(correct, k)
            assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)
            assert float(curve[k - 1]) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("n", [1, 2, 5, 16])
def test_edge_cases(n):
    for k in range(1, n + 1):
        assert pass_at_k(n, 0, k) == 0.0  # c = 0
        assert pass_at_k(n, n, k) == 1.0  # c = n
    for c in range(1, n + 1):
        assert pass_at_k(n, c, n) == 1.0  # k = n with any correct sample
    assert pass_at_k(n, 1, 1) == pytest.approx(1 / n)


def test_large_n_is_stable_and_exact():
    n, c = 400, 3
    curve = pass_at_k_curves([c], n)[0]
    for k in (1, 50, 200, 397, 398, 400):
        exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
        assert float(curve[k - 1]) == pytest.approx(float(exact), rel=1e-12, abs=1e-15)
    assert torch.all(curve[1:] >= curve[:-1])  # non-decreasing in k


def test_bad_k_and_counts():
    with pytest.raises(ConfigError, match="1 <= k <= n"):
        pass_at_k(4, 2, 5)
    with pytest.raises(ConfigError, match="1 <= k <= n"):
        pass_at_k(4, 2, 0)
    with pytest.raises(ConfigError, match=r"\[0, n = 4\]"):
        pass_at_k_curves([5], 4)
    with pytest.raises(ConfigError):
        summarise_pass_at_k([], 4).at(1)


def test_mean_and_stderr_over_problems():
    counts = [0, 1, 4, 2]
    summary = summarise_pass_at_k(counts, 4)
    per_problem = [[brute_force_pass_at_k([True] * c + [False] * (4 - c), k) for k in range(1, 5)] for c in counts]
    for k in range(1, 5):
        values = [row[k - 1] for row in per_problem]
        mean = sum(values) / 4
        sd = math.sqrt(sum((v - mean) ** 2 for v in values) / 3)
        assert summary.at(k) == pytest.approx((mean, sd / 2))
    mean, stderr = mean_and_stderr(torch.tensor([[0.3]]))
    assert float(stderr) == 0.0 and float(mean) == pytest.approx(0.3)
    with pytest.raises(ConfigError, match="1 <= k <= n"):
        summary.at(5)


def test_distinct_correct_counts_only_correct_non_empty_keys():
    keys = ["12", "12", " 7", "x", None, ""]
    correct = [True, True, True, False, True, True]
    assert distinct_correct(keys, correct) == 2
    assert distinct_correct([normalise_text(k) for k in ["a  b", "a b\n", "ab"]], [True] * 3) == 2
    stats = summarise_distinct([0, 2, 4])
    assert stats.mean == pytest.approx(2.0)
    assert stats.mean_given_solved == pytest.approx(3.0)
    assert stats.max == 4
    assert summarise_distinct([0, 0]).mean_given_solved is None
