"""The :class:`accelerate.Accelerator` both trainers run on, configured by the launcher's environment.

``accelerate launch --config_file configs/accelerate/<ddp|fsdp|zero2|zero3>.yaml`` starts one process
per device and passes the chosen strategy (``ACCELERATE_USE_FSDP``, ``FSDP_*``,
``ACCELERATE_USE_DEEPSPEED``, ...) to each process's environment; ``Accelerator()`` reads it. A plain
``torchrun`` (or ``python``) launch gives data parallel (or one process).

accelerate (1.15) turns FSDP on only for accelerator devices: on CPU processes it silently stays data
parallel even when the launcher asked for FSDP. torch's FSDP2 (``fully_shard``) does run on CPU with the
gloo backend, so :func:`make_accelerator` switches CPU processes to FSDP when the environment asks for
FSDP version 2, with the plugin read from that same environment. That is how FSDP is tested on CPU in CI
(``tests/test_distributed.py``). DeepSpeed has no CPU path: asking for it on CPU is an error here rather
than a silent fallback to data parallel.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from trafl.errors import ConfigError


def make_accelerator(cpu: bool, **kwargs: Any):
    """``Accelerator(cpu=cpu)``, with FSDP2 on CPU processes when the launcher asked for FSDP."""
    from accelerate import Accelerator
    from accelerate.state import PartialState
    from accelerate.utils import (
        DistributedType,
        FullyShardedDataParallelPlugin,
        parse_flag_from_env,
    )

    if cpu and parse_flag_from_env("ACCELERATE_USE_DEEPSPEED"):
        raise ConfigError(
            "the launcher asked for DeepSpeed but these processes run on CPU; DeepSpeed ZeRO needs GPUs "
            "(use configs/accelerate/fsdp.yaml for sharded training on CPU)"
        )
    accelerator = Accelerator(cpu=cpu, **kwargs)
    if accelerator.distributed_type == DistributedType.MULTI_CPU and parse_flag_from_env("ACCELERATE_USE_FSDP"):
        plugin = FullyShardedDataParallelPlugin()
        if plugin.fsdp_version != 2:
            raise ConfigError(
                "FSDP on CPU needs 'fsdp_version: 2' in the accelerate config (torch's fully_shard); "
                f"got fsdp_version {plugin.fsdp_version}"
            )
        # Every AcceleratorState() re-reads PartialState's distributed type: set both.
        PartialState().distributed_type = DistributedType.FSDP
        accelerator.state.distributed_type = DistributedType.FSDP
        accelerator.state.fsdp_plugin = plugin
    return accelerator


@contextmanager
def micro_batch(accelerator: Any, model: Any, last: bool) -> Iterator[None]:
    """The context of one micro-batch's backward in a hand-written gradient accumulation.

    Gradients are synchronised across processes only on the ``last`` micro-batch (``no_sync`` before:
    DDP skips its all-reduce, FSDP2 its reduce-scatter). DeepSpeed does the accumulation itself: its
    engine steps inside ``accelerator.backward`` unless accelerate's ``sync_gradients`` flag is off, so
    the flag is off for every micro-batch but the last.
    """
    state = accelerator.gradient_state
    state._set_sync_gradients(last)
    try:
        with nullcontext() if last else accelerator.no_sync(model):
            yield
    finally:
        state._set_sync_gradients(True)


def configure_deepspeed(accelerator: Any, micro_batch_size: int, max_grad_norm: float) -> None:
    """Fill what accelerate would take from a prepared data loader (trafl slices its batches itself):
    the per-process micro-batch size, and the clipping norm of the trainer's config. DeepSpeed's own
    accumulation count stays 1: :func:`micro_batch` marks the boundary. A no-op without DeepSpeed."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type != DistributedType.DEEPSPEED:
        return
    plugin = accelerator.state.deepspeed_plugin
    plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = micro_batch_size
    plugin.deepspeed_config["gradient_accumulation_steps"] = 1
    plugin.deepspeed_config["gradient_clipping"] = max_grad_norm


def shards_parameters(accelerator: Any) -> bool:
    """Whether a process holds only a shard of the parameters (FSDP, DeepSpeed ZeRO-3): then every
    forward pass is a collective that all processes must make together."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type == DistributedType.FSDP:
        return True
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        plugin = getattr(accelerator.state, "deepspeed_plugin", None)
        return plugin is not None and getattr(plugin, "zero_stage", 0) == 3
    return False
