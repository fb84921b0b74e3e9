"""``trafl demo``: the trajectory-locking study at CPU scale.

A tiny LLaDA-architecture base (shipped in ``trafl/assets/demo_base``; ``BASE_SFT`` rebuilds it) is
post-trained on the ``decoy_rule`` task (:mod:`trafl.tasks.synthetic.decoy_rule`: a hit-or-miss
verifier with a hidden rule that a shortcut solves on most prompts but not all) with every method at
equal rollout budgets, several seeds each, keeping checkpoints along training. Then the final models
are scored on held-out prompts (pass@1..k at several temperatures, paired differences to the base,
distinct correct answers, denoising-path metrics, the shortcut / no-shortcut split) and the
checkpoints at one temperature (each method's pass@1 -> pass@k frontier); :mod:`trafl.study` turns
this into ``report.md``, ``study.json`` and plots. This module holds the demo's settings
(:class:`DemoConfig`) and the recipe of its base; the pipeline itself is :mod:`trafl.study.pipeline`.

Every stage writes its results under ``--out`` as it finishes and is skipped when rerun, so an
interrupted demo resumes where it stopped. ``--eval-split validation`` runs the same pipeline on the
validation prompts: that is where every setting was chosen (docs/study.md).
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

from trafl.errors import ConfigError
from trafl.objectives.functional import RewardTransform
from trafl.objectives.logz import LogZMode
from trafl.objectives.registry import OBJECTIVES
from trafl.sampling.settings import SamplerSettings, check_sampler
from trafl.study.evaluation import EvalSettings
from trafl.study.pipeline import Study, read_timings, run_study
from trafl.study.runs import Run, train_fields
from trafl.study.runs import ensure_base as ensure_base_model
from trafl.tasks.base import EvalSplit
from trafl.utils.config import add_config_arguments, load_config, option, overrides_from_args, to_dict
from trafl.utils.io import atomic_write_json

logger = logging.getLogger(__name__)
ASSET_BASE = Path(__file__).resolve().parent / "assets" / "demo_base"
#: Every registered method can be compared (``methods``); the committed study and the default run
#: compare these four, so adding an objective to the registry changes neither (``--methods`` adds it).
METHODS = tuple(OBJECTIVES)
DEFAULT_METHODS = ("trafl", "espo", "justgrpo", "diffu_grpo")

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
    methods: list[str] = option(
        list(DEFAULT_METHODS),
        "Post-training methods to compare (each with its authors' mechanics); any registered method may be added, "
        "or 'all' for every registered one.",
    )
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
    reward_transform: RewardTransform = option(
        "group_norm", "TraFL's reward transform (chosen on the validation split)."
    )
    logz: LogZMode = option("vargrad", "TraFL's log-partition estimate (chosen on the validation split).")
    inner_iterations: int | None = option(
        2,
        "Inner iterations (mu) of the methods whose recipe has several (ESPO 8, diffu-GRPO 12), and ESPO's ELBO "
        "draws cut to one coupled pair: the recipes' update cost (14x and 6x TraFL's step on this CPU) does not "
        "fit the time budget; null keeps the recipes' values. Every other mechanic stays the authors'.",
        min=1,
    )
    checkpoints: int = option(3, "Checkpoints per run (evenly spaced; the frontier's points along training).", min=1)
    eval_split: EvalSplit = option(
        "test", "Split to score: 'test' (held out, once at the end) or 'validation' (for choosing settings)."
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
        if self.methods == ["all"]:
            self.methods = list(METHODS)
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


def ensure_base(cfg: DemoConfig, out: Path) -> Path:
    """The base checkpoint: given, shipped, or (re)trained into ``out/base`` with ``BASE_SFT``."""
    return ensure_base_model(
        out, given=cfg.base, retrain=cfg.retrain_base, task=cfg.task, recipe=BASE_SFT, shipped=ASSET_BASE, log=_log
    )


def eval_settings(cfg: DemoConfig) -> EvalSettings:
    """How the demo scores models: the first ``eval_prompts`` of ``eval_split``, ``eval_n`` samples each."""
    return EvalSettings(
        task=cfg.task,
        split=cfg.eval_split,
        prompts=cfg.eval_prompts,
        n=cfg.eval_n,
        temperatures=tuple(cfg.eval_temperatures),
        sampler=cfg.sampler,
        seed=cfg.seed,
    )


def demo_study(cfg: DemoConfig, base: Path) -> Study:
    """The study ``cfg`` describes: every method x seed on the shared budget, scored on ``eval_split``."""
    out = Path(cfg.out)
    runs = tuple(
        Run(label, train_fields(cfg, method, seed, base, out / "runs" / label))
        for method, seed, label in cfg.run_labels()
    )
    return Study(
        out=out,
        base=base,
        runs=runs,
        methods=tuple(cfg.methods),
        evaluation=eval_settings(cfg),
        max_steps=cfg.max_steps,
        checkpoints=cfg.checkpoints,
        frontier_temperature=cfg.frontier_temperature,
        k_max=cfg.k_max,
        config=cfg,
        log=_log,
    )


def run_demo(cfg: DemoConfig) -> dict:
    import torch

    cfg = cfg.effective()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "demo_config.json", to_dict(cfg))
    timings = read_timings(out)  # a stage skipped on a rerun keeps the time it took when it ran
    t0 = time.perf_counter()
    base = ensure_base(cfg, out)
    timings["base"] = max(timings.get("base", 0.0), time.perf_counter() - t0)
    return run_study(demo_study(cfg, base), timings)


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
