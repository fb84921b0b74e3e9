"""The full fine-tuning reference, sharded like the policy when the policy's parameters are sharded.

:func:`trafl.objectives.reference.make_reference` copies the initial policy (``FrozenReference``) when
there are no LoRA adapters to switch off. Left as is, that copy is the whole model on every process
(15 GiB for LLaDA-8B in bf16) even when ZeRO-3 or FSDP shard the policy 8 ways. :func:`shard_reference`
shards the copy the same way, for inference only (no gradients, no optimizer state):

* **FSDP2** (``fully_shard``, also on CPU processes with gloo): every ``_no_split_modules`` block (LLaDA's
  ``LLaDABlock``) and then the root are sharded over the processes, parameters resharded after each
  forward, in the plugin's mixed-precision policy; the frozen weights keep their stored dtype.
* **DeepSpeed ZeRO-3**: the copy becomes a ZeRO-3 inference engine (``deepspeed.initialize`` without an
  optimizer, the launcher's DeepSpeed config, stage 3), as TRL does for its reference models.

Each reference forward is then a collective: every process must score the same number of micro-batches,
which the trainer guarantees (every process runs ``gradient_accumulation_steps`` micro-batches per step).
Under LoRA the reference is the policy itself (adapters off): nothing to shard.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from torch import nn

from trafl.objectives.reference import FrozenReference

logger = logging.getLogger(__name__)


def shard_reference(accelerator: Any, reference: Any) -> Any:
    """``reference`` with its frozen copy sharded under FSDP / ZeRO-3 (see the module docstring); returned
    unchanged otherwise (one process, DDP, ZeRO-1/2, or the LoRA reference that shares the policy)."""
    from accelerate.utils import DistributedType

    if not isinstance(reference, FrozenReference) or accelerator.num_processes < 2:
        return reference
    kind = accelerator.distributed_type
    if kind == DistributedType.FSDP:
        reference.model = fsdp2_shard_frozen(accelerator, reference.model)
        local, total = local_parameter_count(reference.model)
        logger.info(
            "reference: the frozen copy is sharded by FSDP2 over %d processes (this one holds %d of %d parameters)",
            accelerator.num_processes,
            local,
            total,
        )
    elif kind == DistributedType.DEEPSPEED and getattr(accelerator.state.deepspeed_plugin, "zero_stage", 0) == 3:
        reference.model = zero3_inference_engine(accelerator, reference.model)
        logger.info(
            "reference: the frozen copy is sharded by DeepSpeed ZeRO-3 over %d processes", accelerator.num_processes
        )
    return reference


def local_parameter_count(model: nn.Module) -> tuple[int, int]:
    """``(elements this process stores, elements of the whole model)`` of a model sharded with FSDP2."""
    local = total = 0
    for p in model.parameters():
        total += p.numel()
        local += p.to_local().numel() if hasattr(p, "to_local") else p.numel()
    return local, total


def fsdp2_shard_frozen(accelerator: Any, model: nn.Module) -> nn.Module:
    """``fully_shard`` every no-split block of ``model``, then ``model`` itself, for inference."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    plugin = accelerator.state.fsdp_plugin
    if getattr(plugin, "fsdp_version", 2) != 2:
        raise NotImplementedError("the full fine-tuning reference is sharded with FSDP2 only (fsdp_version: 2)")
    mesh = getattr(accelerator, "torch_device_mesh", None)
    kwargs = {
        "reshard_after_forward": True,
        "mp_policy": getattr(plugin, "mixed_precision_policy", None) or MixedPrecisionPolicy(),
    }
    if mesh is not None:
        kwargs["mesh"] = mesh[tuple(accelerator.parallelism_config.fsdp_dim_names)]
    block_names = set(getattr(model, "_no_split_modules", None) or ())
    for module in list(model.modules()):
        if type(module).__name__ in block_names:
            fully_shard(module, **kwargs)
    fully_shard(model, **kwargs)
    return model.eval().requires_grad_(False)


def zero3_inference_engine(accelerator: Any, model: nn.Module) -> Any:
    """A DeepSpeed ZeRO-3 engine around ``model`` without optimizer (the launcher's config at stage 3).

    Not exercised on CPU: DeepSpeed has no CPU path (``trafl.utils.distributed``); needs a GPU run."""
    import deepspeed

    config = copy.deepcopy(accelerator.state.deepspeed_plugin.deepspeed_config)
    config.pop("optimizer", None)
    config.pop("scheduler", None)
    zero = dict(config.get("zero_optimization") or {})
    zero["stage"] = 3
    for key in ("offload_optimizer",):
        zero.pop(key, None)
    hidden = getattr(getattr(model, "config", None), "hidden_size", None)
    if hidden:  # TRL's sizes for an inference-only ZeRO-3 model: small buckets, no persistence of big weights
        zero.update(
            reduce_bucket_size=hidden * hidden,
            stage3_param_persistence_threshold=10 * hidden,
            stage3_prefetch_bucket_size=int(0.9 * hidden * hidden),
        )
    config["zero_optimization"] = zero
    engine, *_ = deepspeed.initialize(model=model, config=config)
    engine.eval()
    return engine
