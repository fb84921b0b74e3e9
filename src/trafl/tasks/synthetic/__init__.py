"""Synthetic multi-answer tasks for CPU-scale studies (see :mod:`trafl.tasks.synthetic.base`)."""

from trafl.tasks.synthetic.base import SyntheticTask
from trafl.tasks.synthetic.countdown import Countdown, evaluate
from trafl.tasks.synthetic.subset_sum import SubsetSum

__all__ = ["Countdown", "SubsetSum", "SyntheticTask", "evaluate"]
