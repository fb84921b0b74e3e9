"""``trafl demo``: the trajectory-locking study at CPU scale.

A tiny LLaDA-architecture base (shipped in ``trafl/assets/demo_base``; ``BASE_SFT`` rebuilds it) is
post-trained on the ``decoy_rule`` task (:mod:`trafl.tasks.synthetic.decoy_rule`: a hit-or-miss
verifier with a hidden rule that a shortcut solves on most prompts but not all) with every method at
equal rollout budgets, several seeds each, keeping checkpoints along training. Then the final models
are scored on held-out prompts (pass@1..k at several temperatures, paired differences to the base,
distinct correct answers, denoising-path metrics, the shortcut / no-shortcut split) and the
checkpoints at one temperature (each method's pass@1 -> pass@k frontier); :mod:`trafl.study` turns
this into ``report.md``, ``study.json`` and plots.

Every stage writes its results under ``--out`` as it finishes and is skipped when rerun, so an
interrupted demo resumes where it stopped. ``--eval-split validation`` runs the same pipeline on the
validation prompts: that is where every setting was chosen (docs/study.md).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

from trafl.errors import ConfigError
from trafl.objectives.registry import OBJECTIVES, objective_class
from trafl.sampling.settings import SamplerSettings, check_sampler
from trafl.utils.config import add_config_arguments, load_config, option, overrides_from_args, to_dict
from trafl.utils.io import atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)
ASSET_BASE = Path(__file__).resolve().parent / "assets" / "demo_base"
METHODS = tuple(OBJECTIVES)

#: How the shipped base checkpoint was made (``--retrain-base`` runs exactly this).
BASE_SFT = {
    "task": "decoy_rule",
    "samples_per_prompt": 24,
    "sft": dict(
        model="tiny",
        max_completion_length=5,
        max_steps=600,
        batch_size=64,
        learning_rate=2e-3,
        warmup_steps=50,
        eval_steps=200,
        save_steps=200,
        seed=0,
        num_threads=1,
    ),
}


@dataclass
class DemoConfig:
    out: str = option("trafl-demo", "Directory for the runs, generations, report and plots (resumable).")
    quick: bool = option(
        False, "One seed, fewer RL steps, prompts and temperatures: a smoke run of every stage in minutes."
    )
    base: str | None = option(None, "Base model directory (default: the checkpoint shipped with trafl).")
    retrain_base: bool = option(
        False, "Rebuild the base with trafl sft (BASE_SFT in trafl/demo.py) instead of using the shipped one."
    )
    methods: list[str] = option(list(METHODS), "Post-training methods to compare (each with its authors' mechanics).")
    seeds: int = option(2, "Training seeds per method (seed, seed+1, ...); the tables report seed means.", min=1)
    task: str = option("decoy_rule", "Synthetic task (the shipped base knows decoy_rule).")
    gen_length: int = option(5, "Completion canvas length (decoy_rule answers are 4 letters + EOS).", min=1)
    diffusion_steps: int = option(5, "Sampler steps (one token per step).", min=1)
    max_steps: int = option(100, "RL optimizer steps per run (equal rollout budget for every method).", min=1)
    prompts_per_step: int = option(8, "Training prompts per RL step.", min=1)
    num_generations: int = option(8, "Completions per prompt (the group).", min=2)
    temperature: float = option(
        0.9, "Rollout temperature during RL (JustGRPO samples at its own T = 1, left to right).", min=0.0
    )
    learning_rate: float = option(3e-4, "Policy learning rate (the same for every method).", min=0.0)
    beta: float = option(
        1.0, "TraFL's per-token reward temperature (target tilt L * beta; chosen on the validation split).", min=0.0
    )
    reward_transform: str = option(
        "group_norm", "TraFL's reward transform (chosen on the validation split).", choices=("group_norm", "loo", "raw")
    )
    logz: str = option(
        "vargrad",
        "TraFL's log-partition estimate (chosen on the validation split).",
        choices=("learned", "learned_policy", "vargrad"),
    )
    inner_iterations: int | None = option(
        2,
        "Inner iterations (mu) of the methods whose recipe has several (ESPO 8, diffu-GRPO 12), and ESPO's ELBO "
        "draws cut to one coupled pair: the recipes' update cost (14x and 6x TraFL's step on this CPU) does not "
        "fit the time budget; null keeps the recipes' values. Every other mechanic stays the authors'.",
        min=1,
    )
    checkpoints: int = option(3, "Checkpoints per run (evenly spaced; the frontier's points along training).", min=1)
    eval_split: str = option(
        "test",
        "Split to score: 'test' (held out, once at the end) or 'validation' (for choosing settings).",
        choices=("test", "validation"),
    )
    eval_prompts: int = option(240, "Prompts evaluated (the first N of eval_split; the test split has 360).", min=1)
    eval_n: int = option(
        16,
        "Samples per prompt: pass@k uses the unbiased estimator over n samples, so n > k_max "
        "lowers the noise of every pass@k.",
        min=1,
    )
    k_max: int = option(16, "Largest k in the study's table and checks (pass@1..k_max).", min=1)
    eval_temperatures: list[float] = option([0.3, 0.6, 0.9], "Evaluation temperatures.")
    frontier_temperature: float = option(
        0.9, "Temperature of the frontier (checkpoints along training) and of checks a, c, d.", min=0.0
    )
    seed: int = option(0, "Seed of everything (rollouts, evaluation noise); run s of a method uses seed + s.")
    num_threads: int = option(0, "torch CPU threads (0: torch's default).", min=0)

    def validate(self) -> None:
        if self.k_max > self.eval_n:
            raise ConfigError(f"config field 'k_max': {self.k_max} exceeds eval_n = {self.eval_n} samples per prompt")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ConfigError(f"config field 'methods': unknown {unknown}; valid: {', '.join(METHODS)}")
        if self.frontier_temperature not in self.eval_temperatures:
            raise ConfigError(
                f"config field 'frontier_temperature': {self.frontier_temperature} is not one of "
                f"eval_temperatures {self.eval_temperatures}"
            )
        if self.checkpoints > self.max_steps:
            raise ConfigError(f"config field 'checkpoints': {self.checkpoints} exceeds max_steps = {self.max_steps}")
        check_sampler(self.sampler, {"steps": "diffusion_steps"})

    @property
    def sampler(self) -> SamplerSettings:
        """The sampler of the RL rollouts (JustGRPO's recipe replaces it) and, at each evaluation
        temperature, of the evaluation: one block of gen_length, diffusion_steps steps, exact."""
        return SamplerSettings(
            gen_length=self.gen_length,
            steps=self.diffusion_steps,
            block_length=self.gen_length,
            temperature=self.temperature,
        )

    def effective(self) -> DemoConfig:
        """The quick variant shrinks the budgets but keeps every stage."""
        if not self.quick:
            return self
        return replace(
            self,
            seeds=1,
            max_steps=min(self.max_steps, 12),
            checkpoints=min(self.checkpoints, 2),
            eval_prompts=min(self.eval_prompts, 48),
            eval_n=min(self.eval_n, 8),
            k_max=min(self.k_max, 8),
            eval_temperatures=[self.frontier_temperature],
        )

    def run_labels(self) -> list[tuple[str, int, str]]:
        """``(method, seed, label)`` of every training run."""
        return [(m, self.seed + s, f"{m}-s{s}") for m in self.methods for s in range(self.seeds)]


def _log(msg: str) -> None:
    logger.info("[trafl demo] %s", msg)


# --------------------------------------------------------------------------------------------
def ensure_base(cfg: DemoConfig, out: Path) -> Path:
    """The base checkpoint: given, shipped, or (re)trained into ``out/base``."""
    if cfg.base:
        return Path(cfg.base)
    if not cfg.retrain_base and (ASSET_BASE / "config.json").is_file():
        return ASSET_BASE
    target = out / "base" / "model"
    if (target / "config.json").is_file():
        return target
    from trafl.sft.config import SFTConfig
    from trafl.sft.trainer import run_sft
    from trafl.tasks import get_task

    if cfg.task != BASE_SFT["task"]:
        raise ConfigError(f"--retrain-base trains on {BASE_SFT['task']}; for task '{cfg.task}' pass --base DIR")
    task = get_task(cfg.task)
    data = out / "base" / "sft.jsonl"
    n = task.write_sft(data, samples_per_prompt=BASE_SFT["samples_per_prompt"], seed=0)
    _log(f"training the base model with trafl sft on {n} pairs ({data})")
    sft_cfg = load_config(
        SFTConfig, None, {**BASE_SFT["sft"], "data": str(data), "output_dir": str(out / "base"), "resume": True}
    )
    run_sft(sft_cfg)
    return target


def train_fields(cfg: DemoConfig, method: str, seed: int, base: Path, run_dir: Path) -> dict:
    """The ``trafl train`` settings of one run: shared budget and sampler, each method's own mechanics."""
    fields = dict(
        model=str(base),
        method=method,
        task=cfg.task,
        output_dir=str(run_dir),
        seed=seed,
        num_generations=cfg.num_generations,
        per_device_train_batch_size=cfg.num_generations * cfg.prompts_per_step,
        max_completion_length=cfg.gen_length,
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
        s = cfg.sampler
        fields.update(
            diffusion_steps=s.steps, block_length=s.block_length, temperature=s.temperature, remasking=s.remasking
        )
    if method == "trafl":
        fields.update(beta=cfg.beta, reward_transform=cfg.reward_transform, logz=cfg.logz)
    recipe_mu = objective_class(method).train_defaults.get("num_iterations", 1)
    if cfg.inner_iterations is not None and recipe_mu > 1:
        fields.update(num_iterations=min(cfg.inner_iterations, recipe_mu))
        if method == "espo":
            fields.update(num_mc=2)
    return fields


def train_run(cfg: DemoConfig, method: str, seed: int, label: str, base: Path, out: Path) -> Path:
    from trafl.train.config import TrainConfig
    from trafl.train.trainer import run_train

    run_dir = out / "runs" / label
    final = run_dir / "final"
    if (final / "config.json").is_file():
        _log(f"{label}: already trained ({final})")
        return final
    train_cfg = load_config(TrainConfig, None, train_fields(cfg, method, seed, base, run_dir))
    t0 = time.perf_counter()
    _log(f"{label}: {cfg.max_steps} RL steps x {cfg.prompts_per_step} prompts x {cfg.num_generations} samples")
    run_train(train_cfg, progress=False)
    _log(f"{label}: done in {time.perf_counter() - t0:.0f} s")
    return final


def checkpoint_models(run_dir: Path) -> dict[int, Path]:
    """``{step: model dir}`` of a run's kept checkpoints (the final model is evaluated separately)."""
    from trafl.utils.checkpoint import checkpoint_step, list_checkpoints

    out = {}
    for ckpt in list_checkpoints(run_dir):
        step = checkpoint_step(ckpt)
        if (ckpt / "model" / "config.json").is_file():
            out[step] = ckpt / "model"
    return out


def evaluate(
    cfg: DemoConfig, models: dict[str, Path], out_dir: Path, temperatures: list[float], rows: list[dict]
) -> dict:
    from trafl.eval.evaluate import EvalPlan, ModelSpec, TaskSpec, run_evaluation
    from trafl.eval.generation import SamplerGenerator, SamplerSweep
    from trafl.tasks import get_task

    task = get_task(cfg.task)
    s = cfg.sampler
    settings = SamplerSweep(steps=s.steps, block_length=s.block_length, remasking=s.remasking)
    specs = [
        ModelSpec(
            label,
            str(path),
            (lambda p=path: SamplerGenerator.from_pretrained(str(p), settings, device="cpu")),
            settings,
        )
        for label, path in models.items()
    ]
    plan = EvalPlan(
        n=cfg.eval_n, temperatures=list(temperatures), gen_lengths=[cfg.gen_length], seed=cfg.seed, batch_size=48
    )
    return run_evaluation(specs, [TaskSpec(task, rows)], plan, out_dir, base="base", progress=None)


def denoising_cost(cfg: DemoConfig, out_dir: Path, results: dict, temperature: float) -> dict:
    """Forward passes and mean completion length (tokens before EOS) per sample, per model."""
    from trafl.eval.cache import Cell, cache_path
    from trafl.utils.io import read_jsonl

    cost = {}
    for cell in results["results"]:
        if cell["temperature"] != temperature:
            continue
        path = cache_path(out_dir, Cell(cell["model"], cell["task"], cell["temperature"], cell["gen_length"]))
        lengths = [len(c) for r in read_jsonl(path) if "completions" in r for c in r["completions"]]
        cost[cell["model"]] = {
            "forward_passes": cfg.diffusion_steps,
            "completion_length": sum(lengths) / max(len(lengths), 1),
        }
    return cost


def example_samples(out_dir: Path, results: dict, rows: list[dict], temperature: float, per_group: int = 1) -> dict:
    """A few sampled completions per model for one shortcut and one no-shortcut prompt."""
    from trafl.eval.cache import Cell, cache_path
    from trafl.utils.io import read_jsonl

    ids = results["results"][0]["problem_ids"]
    pick = {}
    for pid, row in zip(ids, rows):
        key = "shortcut" if row.get("has_shortcut") else "no_shortcut"
        if key not in pick:
            pick[key] = (pid, row["prompt"])
    out = {}
    for cell in results["results"]:
        if cell["temperature"] != temperature or not (cell["model"] == "base" or cell["model"].endswith("-s0")):
            continue
        path = cache_path(out_dir, Cell(cell["model"], cell["task"], cell["temperature"], cell["gen_length"]))
        records = {r["problem_id"]: r for r in read_jsonl(path) if "completions" in r}
        out[cell["model"]] = {
            prompt: [
                c + (" ok" if ok else "") for c, ok in zip(records[pid]["completions"][:8], records[pid]["correct"][:8])
            ]
            for _, (pid, prompt) in pick.items()
            if pid in records
        }
    return out


# --------------------------------------------------------------------------------------------
def run_demo(cfg: DemoConfig) -> dict:
    import torch

    from trafl.study.analysis import analyse
    from trafl.study.plots import write_study_plots
    from trafl.study.report import render_report, render_summary
    from trafl.tasks import get_task

    cfg = cfg.effective()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "demo_config.json", to_dict(cfg))
    # Wall time per stage; a stage skipped on a rerun keeps the time it took when it ran.
    previous = out / "study.json"
    timings: dict[str, float] = json.loads(previous.read_text())["timings_s"] if previous.is_file() else {}
    t0 = time.perf_counter()
    base = ensure_base(cfg, out)
    timings["base"] = max(timings.get("base", 0.0), time.perf_counter() - t0)

    finals = {"base": base}
    frontier_models = {"base": base}
    for method, seed, label in cfg.run_labels():
        t = time.perf_counter()
        already = (out / "runs" / label / "final" / "config.json").is_file()
        finals[label] = train_run(cfg, method, seed, label, base, out)
        if not already or f"train/{label}" not in timings:
            timings[f"train/{label}"] = time.perf_counter() - t
        every = max(1, cfg.max_steps // cfg.checkpoints)
        for step, path in checkpoint_models(out / "runs" / label).items():
            if step <= every * (cfg.checkpoints - 1):  # the last point of the frontier is the final model
                frontier_models[f"{label}@{step}"] = path

    task = get_task(cfg.task)
    rows = task.load(cfg.eval_split)[: cfg.eval_prompts]
    t = time.perf_counter()
    _log(
        f"evaluating {len(finals)} models on {len(rows)} {cfg.eval_split} prompts x {cfg.eval_n} samples "
        f"at T = {', '.join(map(str, cfg.eval_temperatures))}"
    )
    results = evaluate(cfg, finals, out / "eval", cfg.eval_temperatures, rows)
    _log(f"evaluating {len(frontier_models) - 1} checkpoints along training at T = {cfg.frontier_temperature}")
    frontier = evaluate(cfg, frontier_models, out / "frontier", [cfg.frontier_temperature], rows)
    timings["eval"] = max(timings.get("eval", 0.0), time.perf_counter() - t)  # cached reruns are shorter

    ids = results["results"][0]["problem_ids"]
    shortcut = (
        {pid: bool(row.get("has_shortcut")) for pid, row in zip(ids, rows)} if "has_shortcut" in rows[0] else None
    )
    analysis = analyse(
        results,
        frontier,
        methods=cfg.methods,
        k_max=cfg.k_max,
        frontier_temperature=cfg.frontier_temperature,
        shortcut=shortcut,
        denoising=denoising_cost(cfg, out / "eval", results, cfg.frontier_temperature),
        final_step=cfg.max_steps,
    )
    analysis["samples"] = example_samples(out / "eval", results, rows, cfg.frontier_temperature)
    analysis["training_reward"] = training_rewards(out, cfg)
    timings["total"] = sum(v for k, v in timings.items() if k != "total")
    plots = write_study_plots(analysis, results, out, k_max=cfg.k_max)
    summary = render_summary(analysis, timings, quick=cfg.quick)
    atomic_write_text(out / "report.md", render_report(analysis, results, cfg, timings, plots, out))
    atomic_write_json(
        out / "study.json",
        {"checks": analysis["checks"], "analysis": analysis, "timings_s": timings, "config": to_dict(cfg)},
    )
    print(summary)
    _log(f"report: {out / 'report.md'}")
    return {
        "results": results,
        "frontier": frontier,
        "analysis": analysis,
        "checks": analysis["checks"],
        "timings": timings,
        "plots": plots,
    }


def training_rewards(out: Path, cfg: DemoConfig) -> dict:
    """Training reward per run: mean of the first and last tenth of the steps (is the signal there?)."""
    from trafl.utils.io import read_jsonl

    rewards = {}
    for _, _, label in cfg.run_labels():
        steps = [r["reward"] for r in read_jsonl(out / "runs" / label / "metrics.jsonl")]
        if steps:
            w = max(1, len(steps) // 10)
            rewards[label] = {"first": sum(steps[:w]) / w, "last": sum(steps[-w:]) / w}
    return rewards


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file of DemoConfig fields.")
    add_config_arguments(parser, DemoConfig)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(DemoConfig, args.config, overrides_from_args(args))
    run_demo(cfg)
    return 0


if __name__ == "__main__":  # pragma: no cover
    import sys

    from trafl.cli import main

    sys.exit(main(["demo", *sys.argv[1:]]))
