"""trafl: post-training of masked diffusion language models with verifiable rewards.

Layers (one concept per package, lower layers know nothing of higher ones):

- ``trafl.models``      the denoiser networks (native LLaDA architecture, adapters for other dLLMs)
- ``trafl.sampling``    the rollout policy: LLaDA's iterative unmasking sampler
- ``trafl.likelihood``  sequence log-likelihood surrogates (ELBO, one-step, autoregressive)
- ``trafl.objectives``  TraFL and the GRPO-family baselines, as losses over rollout groups
- ``trafl.rewards``     verifiable rewards: math answer grading, a code-execution sandbox
- ``trafl.tasks``       datasets, prompt templates and their reward functions
- ``trafl.sft``         masked-diffusion supervised fine-tuning
- ``trafl.train``       the RL loop that wires sampler, rewards and objectives
- ``trafl.eval``        pass@k, diversity, reports and plots
"""

__version__ = "0.1.0"
