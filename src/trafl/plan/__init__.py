"""``trafl plan``: per-GPU memory and FLOPs of a training run, predicted from the configs alone.

* :mod:`trafl.plan.shape`: parameter counts of a LLaDA-architecture config;
* :mod:`trafl.plan.parallel`: the accelerate config (DDP, ZeRO-2/3, FSDP, processes, precision);
* :mod:`trafl.plan.states`: weights, gradients, AdamW states, the reference copy;
* :mod:`trafl.plan.activations`: what autograd saves in a training forward, and the backward's peak;
* :mod:`trafl.plan.inference`: the sampler's and the no-grad scoring's peaks;
* :mod:`trafl.plan.flops`: forward/backward FLOPs of one optimizer step;
* :mod:`trafl.plan.planner`: :class:`PlanConfig`, :func:`make_plan`, :func:`format_plan`.

The derivations are in docs/plan.md; ``benchmarks/plan_memory.py`` measures the activation and
parameter terms.
"""

from trafl.plan.planner import Plan, PlanConfig, format_plan, make_plan

__all__ = ["Plan", "PlanConfig", "format_plan", "make_plan"]
