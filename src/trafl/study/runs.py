"""The training half of a study: the base checkpoint, one ``trafl train`` run per method x seed.

A study's runs share one budget and sampler and differ only in what is compared (the method, or a
variant's overrides). Each run lives in ``<out>/runs/<label>`` and is skipped once its ``final``
model exists, and an interrupted run continues from its last checkpoint, so a study (or several
processes training different runs into one folder) resumes where it stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from trafl.errors import ConfigError
from trafl.objectives.registry import objective_class
from trafl.sampling.settings import SamplerSettings, fields_for
from trafl.utils.config import load_config
from trafl.utils.io import read_jsonl

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Run:
    """One training run of a study: its label (``<name>-s<seed>``, the folder under ``runs/``) and its
    ``trafl train`` fields (``output_dir`` and ``resume`` are set by :func:`train_run`)."""

    label: str
    fields: dict[str, Any] = field(default_factory=dict)

    def run_dir(self, out: Path) -> Path:
        return out / "runs" / self.label

    def final(self, out: Path) -> Path:
        return self.run_dir(out) / "final"


def is_trained(run_dir: Path) -> bool:
    """Whether a run finished: its final model was written (the trainer writes it last)."""
    return (run_dir / "final" / "config.json").is_file()


def ensure_base(
    out: Path, *, given: str | None, retrain: bool, task: str, recipe: dict, shipped: Path, log: Callable = logger.info
) -> Path:
    """The base checkpoint: ``given``, else ``shipped`` (unless ``retrain``), else trained into
    ``out/base`` with ``trafl sft`` from ``recipe`` (``{"task", "samples_per_prompt", "sft": {...}}``)."""
    if given:
        return Path(given)
    if not retrain and (shipped / "config.json").is_file():
        return shipped
    target = out / "base" / "model"
    if (target / "config.json").is_file():
        return target
    from trafl.sft.config import SFTConfig
    from trafl.sft.trainer import run_sft
    from trafl.tasks import get_task

    if task != recipe["task"]:
        raise ConfigError(f"--retrain-base trains on {recipe['task']}; for task '{task}' pass --base DIR")
    data = out / "base" / "sft.jsonl"
    n = get_task(task).write_sft(data, samples_per_prompt=recipe["samples_per_prompt"], seed=0)
    log(f"training the base model with trafl sft on {n} pairs ({data})")
    sft_cfg = load_config(
        SFTConfig, None, {**recipe["sft"], "data": str(data), "output_dir": str(out / "base"), "resume": True}
    )
    run_sft(sft_cfg)
    return target


class StudyBudget(Protocol):
    """What a study's runs share (``trafl.demo.DemoConfig`` is one): the task, the RL budget, the
    rollout sampler, TraFL's chosen options and the inner-iteration cut."""

    task: str
    num_generations: int
    prompts_per_step: int
    gen_length: int
    max_steps: int
    learning_rate: float
    checkpoints: int
    num_threads: int
    beta: float
    reward_transform: str
    logz: str
    inner_iterations: int | None

    @property
    def sampler(self) -> SamplerSettings: ...


def train_fields(cfg: StudyBudget, method: str, seed: int, base: Path, run_dir: Path) -> dict:
    """The ``trafl train`` settings of one run: the shared budget and sampler of ``cfg``, each method's
    own mechanics (its recipe), TraFL's chosen options, and the inner-iteration cut of ``cfg``."""
    fields = dict(
        model=str(base),
        method=method,
        task=cfg.task,
        output_dir=str(run_dir),
        seed=seed,
        num_generations=cfg.num_generations,
        per_device_train_batch_size=cfg.num_generations * cfg.prompts_per_step,
        **fields_for(cfg.sampler, ("gen_length",)),  # as max_completion_length (TRAIN_NAMES)
        max_prompt_length=32,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        save_steps=max(1, cfg.max_steps // cfg.checkpoints),
        save_total_limit=cfg.checkpoints,
        resume=run_dir.is_dir(),  # continue an interrupted run; a new one starts without a resume note
        device="cpu",
        num_threads=cfg.num_threads,
        max_grad_norm=1.0,
    )
    if objective_class(method).rollout_order != "left_to_right":  # JustGRPO's recipe sets its own sampler
        fields.update(fields_for(cfg.sampler, ("steps", "block_length", "temperature", "remasking")))
    if method == "trafl":
        fields.update(beta=cfg.beta, reward_transform=cfg.reward_transform, logz=cfg.logz)
    recipe_mu = objective_class(method).train_defaults.get("num_iterations", 1)
    if cfg.inner_iterations is not None and recipe_mu > 1:
        fields.update(num_iterations=min(cfg.inner_iterations, recipe_mu))
        if method == "espo":
            fields.update(num_mc=2)
    return fields


def train_run(run: Run, out: Path, log: Callable = logger.info) -> tuple[Path, float | None]:
    """Train one run unless its final model exists; returns the final model and the seconds it took
    (``None`` when it was already trained)."""
    from trafl.train.config import TrainConfig
    from trafl.train.trainer import run_train

    run_dir, final = run.run_dir(out), run.final(out)
    if is_trained(run_dir):
        log(f"{run.label}: already trained ({final})")
        return final, None
    fields = {**run.fields, "output_dir": str(run_dir), "resume": run_dir.is_dir()}
    train_cfg = load_config(TrainConfig, None, fields)
    t0 = time.perf_counter()
    log(
        f"{run.label}: {train_cfg.max_steps} RL steps x {train_cfg.per_device_train_batch_size // train_cfg.num_generations}"
        f" prompts x {train_cfg.num_generations} samples"
    )
    run_train(train_cfg, progress=False)
    seconds = time.perf_counter() - t0
    log(f"{run.label}: done in {seconds:.0f} s")
    return final, seconds


def checkpoint_models(run_dir: Path) -> dict[int, Path]:
    """``{step: model dir}`` of a run's kept checkpoints (the final model is evaluated separately)."""
    from trafl.utils.checkpoint import checkpoint_step, list_checkpoints

    out = {}
    for ckpt in list_checkpoints(run_dir):
        if (ckpt / "model" / "config.json").is_file():
            out[checkpoint_step(ckpt)] = ckpt / "model"
    return out


def trained_runs(out: Path) -> dict[str, Path]:
    """``{label: final model}`` of every finished run under ``out/runs`` (sorted by label)."""
    return {d.name: d / "final" for d in sorted((out / "runs").glob("*-s*")) if is_trained(d)}


def reward_ends(run_dir: Path, window: int | None = None) -> tuple[float, float] | None:
    """Mean training reward of a run's first and last ``window`` logged steps (default: a tenth of
    them, at least one); ``None`` when the run logged no step. Both means divide by the steps they
    average, so a run shorter than ``window`` gives overlapping ends rather than an error."""
    steps = [r["reward"] for r in read_jsonl(run_dir / "metrics.jsonl")]
    if not steps:
        return None
    w = min(window, len(steps)) if window else max(1, len(steps) // 10)
    return sum(steps[:w]) / w, sum(steps[-w:]) / w


def training_rewards(out: Path, labels: Iterable[str]) -> dict:
    """Training reward per run: mean of the first and last tenth of the steps (is the signal there?)."""
    ends = {label: reward_ends(out / "runs" / label) for label in labels}
    return {label: {"first": e[0], "last": e[1]} for label, e in ends.items() if e}
