"""Per-GPU bytes of the model states: weights, gradients, AdamW states, the reference copy.

Counts: ``P_frozen`` (weights without gradient: the LoRA base), ``P_train`` (full fine-tuning: every
weight) and ``P_lora`` (adapters); ``N`` processes; ``w`` bytes per stored weight (the checkpoint's
dtype: 2 for LLaDA-8B's bf16 safetensors, 4 for a float32 preset).

What each setup holds, in bytes per parameter (``/N``: sharded over the processes):

===================  ================  ===========================  ===================================
setup                weights           gradients                    AdamW states
===================  ================  ===========================  ===================================
single / DDP         ``w`` (adapters   ``w`` (adapters 4); DDP adds ``2 w`` (adapters 8): torch keeps
                     4: peft upcasts   its all-reduce buckets, a    ``exp_avg``/``exp_avg_sq`` in the
                     them to fp32)     second copy (x2 when N > 1)  parameter's dtype, no master copy
DeepSpeed ZeRO-1/2   2 (the engine     2, ``/N`` at stage >= 2      12 ``/N``: fp32 master + 2 fp32
(bf16)               casts the module                               moments (ZeRO paper's 2+2+12)
                     to bf16)
DeepSpeed ZeRO-3     2 ``/N``          2 ``/N``                     12 ``/N``
FSDP2 (bf16)         4 ``/N`` (accel-  4 ``/N``                     8 ``/N`` (moments of the fp32
                     erate upcasts                                  sharded parameters)
                     trained ones to
                     fp32; frozen
                     keep ``w``)
===================  ================  ===========================  ===================================

Under FSDP with gradient accumulation the gradients are whole on every process
(:func:`fsdp_accumulates_unsharded`). Without mixed precision DeepSpeed and FSDP keep ``w`` bytes and
2 ``w`` of moments. Frozen weights
have no gradient nor optimizer state. The full fine-tuning reference (:class:`FrozenReference`) is
a deep copy of the initial policy: ``P w`` on every GPU, or ``P w / N`` under ZeRO-3 and FSDP, which
shard it like the policy (:mod:`trafl.train.reference`). Under LoRA the reference is the policy with
adapters disabled: no copy.
"""

from __future__ import annotations

from trafl.plan.parallel import Parallelism

ADAPTER_BYTES = 4  # peft keeps adapters in float32 (autocast_adapter_dtype) unless DeepSpeed casts them


def model_state_bytes(
    par: Parallelism, *, weight_bytes: int, mixed: bool, frozen: int, trainable: int, adapters: int
) -> dict[str, float]:
    """``{"parameters", "gradients", "optimizer"}`` bytes per GPU (see the module table)."""
    n = par.num_processes
    s = par.strategy
    if s in ("zero1", "zero2", "zero3"):
        w = 2 if mixed else weight_bytes
        learn = trainable + adapters
        params = (frozen + learn) * w / (n if s == "zero3" else 1)
        grads = learn * w / (n if s in ("zero2", "zero3") else 1)
        optim = learn * ((4 + 8) if mixed else 2 * w) / n
    elif s == "fsdp":
        w = 4 if mixed else weight_bytes  # trained parameters only: frozen ones keep their dtype
        learn = trainable + adapters
        params = (frozen * weight_bytes + learn * w) / n
        grads = learn * w / n
        optim = learn * 2 * w / n
    else:
        w = weight_bytes
        params = (frozen + trainable) * w + adapters * ADAPTER_BYTES
        grads = trainable * w + adapters * ADAPTER_BYTES
        if s == "ddp" and n > 1:
            grads *= 2
        optim = 2 * (trainable * w + adapters * ADAPTER_BYTES)
    return {"parameters": float(params), "gradients": float(grads), "optimizer": float(optim)}


def fsdp_accumulates_unsharded(par: Parallelism, accumulation_steps: int, backward_per_chunk: bool) -> bool:
    """Whether FSDP holds whole gradients between backward passes: the trainer skips the reduce-scatter
    (``no_sync``) on every micro-batch but the last, and FSDP2 then accumulates *unsharded* gradients,
    ``learn w`` on every process instead of ``/N``. Not when the objective backpropagates per chunk: the
    trainer then reduce-scatters every piece under FSDP (``trafl.train.update``)."""
    return par.strategy == "fsdp" and par.num_processes > 1 and accumulation_steps > 1 and not backward_per_chunk


def reference_bytes(
    par: Parallelism, *, total_parameters: int, weight_bytes: int, full_finetuning: bool, needs_reference: bool
) -> float:
    """``P w`` for full fine-tuning with an objective that reads the reference (``/N`` when ZeRO-3 / FSDP
    shard the parameters: the copy is sharded like the policy), else 0."""
    if not (full_finetuning and needs_reference):
        return 0.0
    shards = par.num_processes if par.shards_parameters else 1
    return float(total_parameters * weight_bytes) / shards


def gathered_bytes(par: Parallelism, *, block_params: int, root_params: int, compute_bytes: int) -> float:
    """ZeRO-3 / FSDP working set: the layer being computed plus one prefetched, gathered in the compute
    dtype, ``2 * block * c``, plus the unsharded root (FSDP: embedding + head stay gathered through the
    forward; ZeRO-3: the larger of them while it runs): ``+ root * c``. 0 when parameters are not sharded."""
    if not par.shards_parameters:
        return 0.0
    return float((2 * block_params + root_params) * compute_bytes)


DEEPSPEED_BUCKET = 500_000_000  # elements: DeepSpeed's default reduce_bucket_size and allgather_bucket_size


def comm_buffer_bytes(par: Parallelism, *, compute_bytes: int) -> float:
    """DeepSpeed's communication buckets at their defaults, in the compute dtype: ZeRO-1/2 keep a reduce
    and an all-gather bucket of ``5e8`` elements each (``2 * 5e8 * c``), ZeRO-3 the reduce bucket
    (its all-gathers are the ``gathered`` term). DDP's buckets are counted with the gradients; FSDP's
    reduce-scatter buffers are one layer's gradients (left to the headroom)."""
    if par.strategy in ("zero1", "zero2"):
        return float(2 * DEEPSPEED_BUCKET * compute_bytes)
    if par.strategy == "zero3":
        return float(DEEPSPEED_BUCKET * compute_bytes)
    return 0.0


def logz_head_parameters(hidden: int, width: int) -> int:
    """TraFL's learned logZ MLP: ``d w + w`` , ``w^2 + w``, ``w + 1`` linears and two LayerNorms (``2 w`` each)."""
    return hidden * width + width + width * width + width + width + 1 + 4 * width
