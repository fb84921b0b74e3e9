"""trafl.sampling: the policy's rollout distribution, LLaDA's iterative unmasking sampler.

* :func:`generate` / :class:`SampleOutput`: batched semi-autoregressive sampling with the
  per-position commit step (the trajectory);
* :class:`SamplerSettings`: its settings as one typed, validated object, the ``settings`` of :func:`generate`;
* :func:`num_transfer_tokens`: the per-step commit counts of a block;
* :func:`exact_distribution`: the sampler's exact law on tiny vocabularies, by enumeration;
* :func:`trim_at_eos`, :func:`fill_after_eos`, :func:`decode_completions`: EOS handling;
* :func:`row_generators`: one seeded generator per (prompt, sample) row.
"""

from trafl.sampling.eos import completion_lengths, decode_completions, fill_after_eos, trim_at_eos
from trafl.sampling.exact import exact_distribution
from trafl.sampling.generate import SampleOutput, generate
from trafl.sampling.noise import row_generators, row_seed
from trafl.sampling.remasking import REMASKING
from trafl.sampling.schedule import above_threshold, num_transfer_tokens, select_top_k
from trafl.sampling.settings import SamplerSettings, check_sampler

__all__ = [
    "REMASKING",
    "above_threshold",
    "SampleOutput",
    "SamplerSettings",
    "check_sampler",
    "completion_lengths",
    "decode_completions",
    "exact_distribution",
    "fill_after_eos",
    "generate",
    "num_transfer_tokens",
    "row_generators",
    "row_seed",
    "select_top_k",
    "trim_at_eos",
]
