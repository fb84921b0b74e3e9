"""How the training processes share the model: read from an ``accelerate`` config YAML.

``strategy`` is one of

* ``single``: one process, nothing sharded (no accelerate config);
* ``ddp``: ``distributed_type: MULTI_GPU``, every process holds everything;
* ``zero2``: DeepSpeed ZeRO stage 2 (gradients and optimizer states sharded, stage 1: optimizer
  states only);
* ``zero3``: DeepSpeed ZeRO stage 3 (parameters sharded too);
* ``fsdp``: PyTorch FSDP with full sharding (parameters, gradients and optimizer states).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from trafl.errors import ConfigError

#: The parallel strategies a plan models (``Parallelism.strategy``).
Strategy = Literal["single", "ddp", "zero1", "zero2", "zero3", "fsdp"]
FSDP_FULL_SHARD = ("FULL_SHARD", "1", "HYBRID_SHARD")


@dataclass(frozen=True)
class Parallelism:
    strategy: Strategy = "single"
    num_processes: int = 1
    mixed_precision: str = "no"  # "no", "bf16" or "fp16"
    source: str = ""

    @property
    def shards_parameters(self) -> bool:
        return self.strategy in ("zero3", "fsdp")

    @property
    def label(self) -> str:
        return self.strategy if self.strategy == "single" else f"{self.strategy} x{self.num_processes}"


def load_accelerate_config(path: str | Path) -> Parallelism:
    """The :class:`Parallelism` of an accelerate config file (``configs/accelerate/*.yaml``).

    Raises :class:`ConfigError` naming the file and key when it is missing, not YAML, or describes a
    setup the planner does not model (TPU, Megatron, CPU-offload).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"accelerate config not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"accelerate config {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"accelerate config {path}: expected a mapping at the top level")
    if "distributed_type" not in data:
        raise ConfigError(
            f"accelerate config {path}: no 'distributed_type' key; is this an accelerate config "
            "(configs/accelerate/*.yaml)?"
        )
    kind = str(data["distributed_type"]).upper()
    n = data.get("num_processes", 1)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"accelerate config {path}: 'num_processes' must be a positive integer, got {n!r}")
    mixed = str(data.get("mixed_precision", "no")).lower()
    if mixed not in ("no", "bf16", "fp16"):
        raise ConfigError(f"accelerate config {path}: 'mixed_precision' must be no, bf16 or fp16, got {mixed!r}")
    if kind in ("NO", "MULTI_CPU"):
        strategy = "single" if n == 1 else "ddp"
    elif kind == "MULTI_GPU":
        strategy = "ddp"
    elif kind == "DEEPSPEED":
        ds = data.get("deepspeed_config") or {}
        if not isinstance(ds, dict):
            raise ConfigError(f"accelerate config {path}: 'deepspeed_config' must be a mapping")
        stage = ds.get("zero_stage", 0)
        if stage not in (0, 1, 2, 3):
            raise ConfigError(f"accelerate config {path}: deepspeed_config.zero_stage must be 0-3, got {stage!r}")
        for key in ("offload_optimizer_device", "offload_param_device"):
            if str(ds.get(key, "none")).lower() not in ("none", "null"):
                raise ConfigError(
                    f"accelerate config {path}: deepspeed_config.{key} = {ds[key]!r}; the planner "
                    "models GPU-resident states only (offload: none)"
                )
        strategy = {0: "ddp", 1: "zero1", 2: "zero2", 3: "zero3"}[stage]
    elif kind == "FSDP":
        fsdp = data.get("fsdp_config") or {}
        if not isinstance(fsdp, dict):
            raise ConfigError(f"accelerate config {path}: 'fsdp_config' must be a mapping")
        if fsdp.get("fsdp_offload_params") in (True, "true"):
            raise ConfigError(f"accelerate config {path}: fsdp_offload_params is not modelled (GPU-resident only)")
        version = int(fsdp.get("fsdp_version", 1))
        sharding = str(fsdp.get("fsdp_sharding_strategy", "FULL_SHARD")).upper()
        if version == 1 and sharding not in FSDP_FULL_SHARD:
            raise ConfigError(
                f"accelerate config {path}: fsdp_sharding_strategy {sharding!r} is not modelled (FULL_SHARD only)"
            )
        strategy = "fsdp"
    else:
        raise ConfigError(
            f"accelerate config {path}: distributed_type {kind!r} is not modelled (NO, MULTI_GPU, DEEPSPEED, FSDP)"
        )
    return Parallelism(strategy=strategy, num_processes=n, mixed_precision=mixed, source=str(path))
