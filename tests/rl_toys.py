"""The toy task and tiny model directory of the trainer tests (:mod:`trafl.testing`; importable by
subprocesses as ``task: rl_toys:DigitTask`` with ``tests/`` on PYTHONPATH) and the toy learning check."""

from __future__ import annotations

from trafl.testing import ALPHABET, DigitTask, digit_reward, length_bonus, make_model_dir

__all__ = ["ALPHABET", "DigitTask", "digit_reward", "length_bonus", "make_model_dir"]  # the toys, for the tests


# ---- the toy learning check (tests/test_train.py; its margin is measured by tests/learning_spread.py) ----

#: Optimizer steps of the learning check: 30 rollout batches of 8 prompts x 4 samples.
LEARNING_STEPS = 30

#: Each method's settings in the learning check, on top of the trainer test's base config; the rest is
#: the method's own recipe (ESPO 8 and diffu-GRPO 12 inner iterations, JustGRPO left to right at T = 1).
#: diffu-GRPO takes 1e-3 instead of the shared 3e-3: with its 12 inner iterations per batch, 3e-3
#: overshoots on this toy and oscillates (measured: reward 0.97 at step 12, 0.0 at step 29 under
#: AVX2 kernels), so whether it ends high depended on the CPU's float rounding.
LEARNING_SETTINGS: dict[str, dict] = {
    "trafl": {"beta": 0.5, "logz": "vargrad"},
    "espo": {},
    "justgrpo": {},
    "diffu_grpo": {"learning_rate": 1e-3},
    "wd1": {},
    # the toy's 4-token completions in two mask blocks of 2 (SPG's recipe: the sampler's block, 32)
    "spg": {"mask_block_length": 2},
}

#: The bar every method's :func:`learning_gain` must clear. Measured over 8 seeds x 3 CPU kernel sets x
#: 1 and 2 threads (tests/learning_spread.py; the table is in tests/test_train.py), it lies at least 4
#: standard deviations below each method's mean gain and below every single run.
LEARNING_MARGIN = 0.1


def learning_gain(rewards: list[float]) -> float:
    """Mean reward of the last 10 steps minus that of the first 3 (whose rollouts come from, or near,
    the base model): the end of training against its start, each averaged over many rollouts."""
    if len(rewards) < 13:
        raise ValueError(f"the learning check needs at least 13 steps, got {len(rewards)}")
    return sum(rewards[-10:]) / 10 - sum(rewards[:3]) / 3
