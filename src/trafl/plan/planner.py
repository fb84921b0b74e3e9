"""Assemble the per-GPU memory plan and the FLOPs of one optimizer step of ``trafl train``.

The peak per GPU is

    total = parameters + gradients + optimizer + reference + logZ head + gathered + buffers
            + max(training activations, rollout, scoring)

(:mod:`trafl.plan.states`, :mod:`trafl.plan.activations`, :mod:`trafl.plan.inference`): the model
states live through the whole run, while the three phases of a step (sampling, no-grad scoring in
``objective.prepare``, the differentiable update) come one after another. Counting the gradients
next to the activations is exact for gradient accumulation (the second micro-batch runs with the
first one's gradients) and an upper bound otherwise. The verdict is FITS when ``total <= (1 -
headroom) * GPU memory``; the headroom stands for what the allocator's own figures do not show
(CUDA context, fragmentation, NCCL and DeepSpeed communication buckets).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from trafl.errors import ConfigError
from trafl.models.configuration_llada import LLaDAConfig
from trafl.models.loading import DtypeName
from trafl.plan.activations import Lora, training_peak
from trafl.plan.flops import backward_flops, forward_flops
from trafl.plan.inference import rollout_peak, scoring_peak
from trafl.plan.parallel import Parallelism, load_accelerate_config
from trafl.plan.shape import (
    ModelShape,
    block_parameters,
    count_parameters,
    embedding_parameters,
    head_parameters,
    lora_parameters,
    norm_parameters,
)
from trafl.plan.states import (
    comm_buffer_bytes,
    fsdp_accumulates_unsharded,
    gathered_bytes,
    logz_head_parameters,
    model_state_bytes,
    reference_bytes,
)
from trafl.utils.config import option

GIB = 2**30
#: Where the planned run trains: ``cuda`` (bf16 autocast when asked) or ``cpu`` (float32).
PlanDevice = Literal["cuda", "cpu"]
#: The SDPA path: ``fused`` (flash / memory-efficient, no T x T matrix kept) or ``math``.
AttentionPath = Literal["fused", "math"]
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass
class PlanConfig:
    model: str = option(
        "", "Model architecture: a preset name (trafl.models.presets) or a config.json (file or directory)."
    )
    train_config: str = option("", "TrainConfig YAML (e.g. configs/paper/llada8b_gsm8k_512_trafl.yaml).")
    accelerate_config: str | None = option(
        None, "accelerate config YAML (configs/accelerate/*.yaml); none: one process."
    )
    train_overrides: list[str] = option(
        [], "TrainConfig overrides as key=value (e.g. use_peft=false num_generations=16)."
    )
    gpu_memory_gib: float = option(80.0, "Memory of one GPU in GiB (an '80 GB' A100/H100 has 80 GiB).", min=0.0)
    headroom: float = option(
        0.1, "Fraction of the GPU kept free for the CUDA context, fragmentation and NCCL buffers.", min=0.0, max=0.99
    )
    prompt_length: int | None = option(
        None, "Padded prompt width P (default: the train config's max_prompt_length, the worst case).", min=1
    )
    gradient_checkpointing: bool | None = option(None, "Override the train config's gradient_checkpointing.")
    weights_dtype: DtypeName = option(
        "auto",
        "dtype the weights are loaded in (auto: config.json's torch_dtype, else bfloat16 when bf16 is on, else float32).",
    )
    device: PlanDevice = option("cuda", "Where training runs: cuda (bf16 autocast when asked) or cpu (float32).")
    attention: AttentionPath = option(
        "fused", "SDPA path: fused (flash / memory-efficient, no T x T matrix kept) or math."
    )

    def validate(self) -> None:
        if not self.model:
            raise ConfigError("config field 'model' is required (a preset name or a config.json)")
        if not self.train_config:
            raise ConfigError("config field 'train_config' is required (a TrainConfig YAML)")


@dataclass
class Plan:
    """The result: memory terms in bytes, the verdict and the FLOPs of one optimizer step."""

    terms: dict[str, float]
    total: float
    capacity: float
    headroom: float
    flops: dict[str, float]
    inputs: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    details: dict[str, float] = field(default_factory=dict)

    @property
    def budget(self) -> float:
        return self.capacity * (1 - self.headroom)

    @property
    def fits(self) -> bool:
        return self.total <= self.budget

    @property
    def verdict(self) -> str:
        return "FITS" if self.fits else "DOES NOT FIT"

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "terms_gib": {k: v / GIB for k, v in self.terms.items()},
            "total_gib": self.total / GIB,
            "capacity_gib": self.capacity / GIB,
            "headroom": self.headroom,
            "verdict": self.verdict,
            "flops": self.flops,
            "notes": self.notes,
            "details_gib": {k: v / GIB for k, v in self.details.items()},
        }


# ---- inputs ---------------------------------------------------------------------------------------
def load_model_config(spec: str) -> tuple[LLaDAConfig, str | None]:
    """A preset name or a config.json (file or directory) -> (config, stored dtype or None)."""
    from trafl.models.presets import PRESETS, make_config, preset_config

    if spec in PRESETS:
        return preset_config(spec), None
    path = Path(spec)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise ConfigError(
            f"model '{spec}' is neither a preset ({', '.join(sorted(PRESETS))}) nor an existing "
            "config.json (file or directory)"
        )
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a JSON object of config fields")
    if data.get("model_type") not in (None, "llada"):
        raise ConfigError(
            f"{path}: model_type {data.get('model_type')!r}; the planner models LLaDA-architecture models"
        )
    try:
        config = make_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    dtype = data.get("torch_dtype") or data.get("dtype")
    return config, dtype if isinstance(dtype, str) else None


def load_train_config(path: str, overrides: list[str] | None = None) -> Any:
    from trafl.train.config import TrainConfig
    from trafl.utils.config import load_config

    return load_config(TrainConfig, path, list(overrides or []))


# ---- the plan -------------------------------------------------------------------------------------
def scored_rows(train: Any) -> int:
    """Canvases per micro-batch the surrogate runs with gradients."""
    o, b = train.objective, train.per_device_train_batch_size
    if o.surrogate == "elbo":
        return b * o.num_mc
    if o.surrogate == "onestep":
        return b
    if o.surrogate == "autoregressive":
        return b * train.max_completion_length
    return b * train.diffusion_steps  # trajectory: one canvas per (row, sampler step), at most


def graph_rows(train: Any, rows: int, backward_per_chunk: bool) -> int:
    """Canvases whose graph is alive at once: all ``rows`` until backward, or one forward chunk
    (``ar_chunk_size``) when the objective backpropagates per chunk (JustGRPO's ordered likelihood)."""
    return min(rows, train.objective.ar_chunk_size) if backward_per_chunk else rows


def make_plan(
    pc: PlanConfig,
    *,
    train: Any = None,
    model: tuple[LLaDAConfig, str | None] | None = None,
    par: Parallelism | None = None,
) -> Plan:
    from trafl.objectives.registry import objective_from_config

    config, stored = model if model is not None else load_model_config(pc.model)
    train = train if train is not None else load_train_config(pc.train_config, pc.train_overrides)
    par = (
        par
        if par is not None
        else (load_accelerate_config(pc.accelerate_config) if pc.accelerate_config else Parallelism())
    )
    shape = ModelShape.from_config(config)
    cuda = pc.device == "cuda"
    mixed = cuda and (par.mixed_precision in ("bf16", "fp16") or bool(train.bf16))
    dtype = pc.weights_dtype
    if dtype == "auto":
        dtype = stored if stored in DTYPE_BYTES else ("bfloat16" if mixed else "float32")
    w = DTYPE_BYTES[dtype]
    s = 2 if mixed else w
    compute = 2 if mixed else w
    full = not train.use_peft
    checkpointing = train.gradient_checkpointing if pc.gradient_checkpointing is None else pc.gradient_checkpointing
    objective = objective_from_config(train, hidden_size=shape.d_model)
    o = train.objective

    n_total = count_parameters(shape)
    n_lora = 0 if full else lora_parameters(shape, train.lora_r, train.lora_target_modules)
    lora = None if full else Lora(train.lora_r, tuple(train.lora_target_modules), train.lora_dropout > 0)
    b = train.per_device_train_batch_size
    length = train.max_completion_length
    prompt = pc.prompt_length or train.max_prompt_length
    tokens = prompt + length
    rows = scored_rows(train)
    per_chunk = objective.backward_per_chunk
    live = graph_rows(train, rows, per_chunk)

    terms = model_state_bytes(
        par,
        weight_bytes=w,
        mixed=mixed,
        frozen=0 if full else n_total,
        trainable=n_total if full else 0,
        adapters=n_lora,
    )
    if fsdp_accumulates_unsharded(par, train.gradient_accumulation_steps, per_chunk):
        terms["gradients"] *= par.num_processes  # no_sync micro-batches: every process holds whole gradients
    terms["reference"] = reference_bytes(
        par, total_parameters=n_total, weight_bytes=w, full_finetuning=full, needs_reference=objective.needs_reference
    )
    logz = getattr(objective, "logz_head", None)
    terms["logz_head"] = float(16 * logz_head_parameters(shape.d_model, o.logz_width)) if logz is not None else 0.0
    root = (
        embedding_parameters(shape) + head_parameters(shape) + norm_parameters(shape)
        if par.strategy == "fsdp"
        else max(embedding_parameters(shape), head_parameters(shape))
    )
    terms["gathered"] = gathered_bytes(
        par, block_params=block_parameters(shape), root_params=root, compute_bytes=compute
    )
    terms["buffers"] = comm_buffer_bytes(par, compute_bytes=compute)
    act = training_peak(
        shape,
        live,
        tokens,
        length,
        s,
        lora=lora,
        mask_bytes=1 if cuda else s,
        checkpointing=checkpointing,
        attention=pc.attention,
    )
    terms["activations"] = act["peak"]
    terms["rollout"] = rollout_peak(shape, b, tokens, train.block_length, compute)
    scoring_needed = objective.needs_reference or train.num_iterations > 1
    chunk = min(rows, o.ar_chunk_size) if o.surrogate in ("autoregressive", "trajectory") else rows
    terms["scoring"] = scoring_peak(shape, chunk, tokens, length, compute) if scoring_needed else 0.0
    states = sum(v for k, v in terms.items() if k not in ("activations", "rollout", "scoring"))
    total = states + max(terms["activations"], terms["rollout"], terms["scoring"])

    # FLOPs per optimizer step and process
    accum, mu = train.gradient_accumulation_steps, train.num_iterations
    random_noise = o.surrogate in ("elbo", "onestep")
    draws = mu if (o.resample_noise and random_noise) else 1
    passes = int(objective.needs_reference) + int(mu > 1)
    fwd = forward_flops(shape, rows, tokens, n_lora)
    flops = {
        "rollout": accum * train.diffusion_steps * forward_flops(shape, b, tokens, n_lora),
        "scoring": accum * draws * passes * fwd,
        "training": mu
        * accum
        * (fwd + backward_flops(shape, rows, tokens, n_lora, full_finetuning=full) + (fwd if checkpointing else 0.0)),
    }
    flops["total"] = sum(flops.values())

    notes = []
    if o.surrogate in ("autoregressive", "trajectory") and per_chunk:
        notes.append(
            f"surrogate '{o.surrogate}' runs {rows} canvases per micro-batch ({o.ar_chunk_size} per forward); "
            f"'{train.method}' backpropagates each chunk before the next: activations of {live} canvases"
        )
    elif o.surrogate in ("autoregressive", "trajectory"):
        notes.append(
            f"surrogate '{o.surrogate}' runs {rows} canvases per micro-batch ({o.ar_chunk_size} per forward) "
            "and keeps every chunk's graph until backward: activations scale with all of them"
        )
    if fsdp_accumulates_unsharded(par, train.gradient_accumulation_steps, per_chunk):
        notes.append(
            "FSDP with gradient accumulation: the micro-batches before the last skip the reduce-scatter "
            "(no_sync), and FSDP2 then keeps whole (unsharded) gradients on every process"
        )
    if terms["reference"] and par.shards_parameters and par.num_processes > 1:
        notes.append("the full fine-tuning reference copy is sharded like the policy (trafl.train.reference)")
    if logz is not None:
        notes.append("TraFL's learned logZ head: float32, outside the sharded model (16 bytes per parameter)")
    inputs = {
        "model": pc.model,
        "parameters": n_total,
        "lora_parameters": n_lora,
        "train_config": pc.train_config,
        "method": train.method,
        "surrogate": o.surrogate,
        "weights": "full" if full else f"lora r{train.lora_r}",
        "parallel": par.label,
        "weights_dtype": dtype,
        "compute_bytes": s,
        "micro_batch": b,
        "scored_rows": rows,
        "graph_rows": live,
        "prompt_length": prompt,
        "completion_length": length,
        "gradient_checkpointing": checkpointing,
        "num_iterations": mu,
        "gradient_accumulation_steps": accum,
        "diffusion_steps": train.diffusion_steps,
    }
    details = {"activations_saved": act["saved"], "activations_transient": act["transient"]}
    return Plan(
        terms=terms,
        total=total,
        capacity=pc.gpu_memory_gib * GIB,
        headroom=pc.headroom,
        flops=flops,
        inputs=inputs,
        notes=notes,
        details=details,
    )


TERM_HELP = {
    "parameters": "weights held by this GPU",
    "gradients": "gradients of the trained weights (DDP: + all-reduce buckets)",
    "optimizer": "AdamW states (mixed precision: + fp32 master)",
    "reference": "frozen reference copy (full fine-tuning only; sharded under ZeRO-3 / FSDP)",
    "logz_head": "TraFL's learned logZ head with its AdamW states",
    "gathered": "ZeRO-3 / FSDP: gathered layers in compute dtype",
    "buffers": "DeepSpeed communication buckets (defaults)",
    "activations": "training forward/backward peak (saved + transient)",
    "rollout": "sampler peak (no grad)",
    "scoring": "reference / old-policy scoring peak (no grad)",
}


def format_plan(plan: Plan) -> str:
    """A plain-text report: inputs, the terms in GiB, the peak and the verdict, FLOPs."""
    i = plan.inputs
    lines = [
        (
            f"model {i['model']}: {i['parameters'] / 1e9:.3f}B parameters"
            + (f", {i['lora_parameters'] / 1e6:.1f}M LoRA" if i["lora_parameters"] else "")
            + f" ({i['weights']})"
        ),
        (
            f"train {i['train_config']}: {i['method']} ({i['surrogate']}), B {i['micro_batch']} -> {i['scored_rows']} "
            f"scored rows x T {i['prompt_length']}+{i['completion_length']}"
            + (f" ({i['graph_rows']} with a graph at once)" if i["graph_rows"] != i["scored_rows"] else "")
            + f", checkpointing {i['gradient_checkpointing']}"
        ),
        f"parallel {i['parallel']}, weights {i['weights_dtype']}, activations {i['compute_bytes']} bytes",
        "",
        f"{'term':<13}{'GiB':>10}  what",
    ]
    phases = ("activations", "rollout", "scoring")
    peak_phase = max(phases, key=lambda k: plan.terms[k])
    for name, value in plan.terms.items():
        mark = " (peak phase)" if name == peak_phase else (" (not at the peak)" if name in phases else "")
        lines.append(f"{name:<13}{value / GIB:>10.2f}  {TERM_HELP[name]}{mark}")
        if name == "activations" and plan.details:
            lines.append(
                f"{'':<13}{'':>10}  = saved {plan.details['activations_saved'] / GIB:.2f} + backward "
                f"transient {plan.details['activations_transient'] / GIB:.2f}"
            )
    lines += [
        f"{'total':<13}{plan.total / GIB:>10.2f}  per GPU: states + max(activations, rollout, scoring)",
        "",
        (
            f"{plan.verdict}: {plan.total / GIB:.1f} GiB of {plan.capacity / GIB:.0f} GiB "
            f"(budget {plan.budget / GIB:.1f} GiB with {plan.headroom:.0%} headroom)"
        ),
        "",
        "FLOPs per optimizer step and GPU: " + ", ".join(f"{k} {v:.3g}" for k, v in plan.flops.items()),
    ]
    lines += [f"note: {n}" for n in plan.notes]
    return "\n".join(lines)
