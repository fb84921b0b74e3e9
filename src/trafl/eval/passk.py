"""The unbiased pass@k estimator and its spread over problems.

With ``n`` samples of a problem of which ``c`` are correct, the probability that a uniformly random
``k``-subset of the samples contains at least one correct one is

    pass@k(n, c) = 1 - C(n - c, k) / C(n, k)                                     (1 <= k <= n)

and its mean over problems is an unbiased estimate of the model's pass@k (Chen et al., 2021).
The ratio of binomials overflows for large ``n``; it is computed as the product

    C(n - c, k) / C(n, k) = prod_{j=0}^{k-1} (n - c - j) / (n - j)

whose factors all lie in [0, 1] (a factor is 0 once ``j >= n - c``, i.e. every k-subset then holds
a correct sample). A cumulative product over ``j`` yields every ``k = 1..n`` in one tensor op.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from trafl.errors import ConfigError


def check_k(k: int, n: int) -> None:
    """Raise :class:`ConfigError` unless ``1 <= k <= n``."""
    if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= n:
        raise ConfigError(f"pass@k needs 1 <= k <= n (n = {n} samples per problem), got k = {k!r}")


def _check_counts(num_correct: torch.Tensor, n: int) -> torch.Tensor:
    if n < 1:
        raise ConfigError(f"n (samples per problem) must be >= 1, got {n}")
    c = torch.as_tensor(num_correct, dtype=torch.float64)
    if c.numel() and (c.min() < 0 or c.max() > n):
        raise ConfigError(f"number of correct samples must lie in [0, n = {n}], got {c.tolist()}")
    return c


def pass_at_k_curves(num_correct: torch.Tensor | list[int], n: int) -> torch.Tensor:
    """``[P, n]`` matrix of pass@k for ``k = 1..n`` (column ``k - 1``) of each of ``P`` problems.

    Row ``p``: ``1 - cumprod_j max(n - c_p - j, 0) / (n - j)``, ``j = 0..n-1``.
    """
    c = _check_counts(num_correct, n).reshape(-1, 1)
    j = torch.arange(n, dtype=torch.float64)
    factors = (n - c - j).clamp(min=0.0) / (n - j)
    return 1.0 - torch.cumprod(factors, dim=-1)


def pass_at_k(n: int, c: int, k: int) -> float:
    """pass@k of one problem with ``c`` correct among ``n`` samples (equation above)."""
    check_k(k, n)
    return float(pass_at_k_curves(torch.tensor([c]), n)[0, k - 1])


def mean_and_stderr(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over the first axis and its standard error ``std_(ddof=1) / sqrt(P)`` (0 when ``P = 1``)."""
    values = values.to(torch.float64)
    count = values.shape[0]
    if count == 0:
        raise ConfigError("cannot average pass@k over zero problems")
    mean = values.mean(dim=0)
    if count == 1:
        return mean, torch.zeros_like(mean)
    return mean, values.std(dim=0, unbiased=True) / math.sqrt(count)


@dataclass
class PassAtK:
    """pass@k for ``k = 1..n`` averaged over problems: ``mean[k-1]`` +- ``stderr[k-1]``."""

    n: int
    mean: list[float]
    stderr: list[float]

    def at(self, k: int) -> tuple[float, float]:
        check_k(k, self.n)
        return self.mean[k - 1], self.stderr[k - 1]


def summarise_pass_at_k(num_correct: list[int], n: int) -> PassAtK:
    """pass@k curve (mean and standard error over problems) from per-problem correct counts."""
    mean, stderr = mean_and_stderr(pass_at_k_curves(torch.tensor(num_correct), n))
    return PassAtK(n=n, mean=mean.tolist(), stderr=stderr.tolist())
