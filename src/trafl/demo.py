"""``trafl demo``: the trajectory-locking study at CPU scale.

A tiny LLaDA-architecture model, trained by ``trafl sft`` on uniformly random correct answers of the
``subset_sum`` task ("19=?+?+?+?+?": k digits adding up to the target; dozens of correct multisets
per prompt), is post-trained with TraFL, ESPO,
JustGRPO and diffu-GRPO at equal rollout budgets, then every model is evaluated on held-out prompts:
pass@1..16 at temperatures 0.3 / 0.6 / 0.9 and the number of distinct correct answers per prompt.

Every stage writes its results under ``--out`` as it finishes and is skipped when rerun, so an
interrupted demo resumes where it stopped. The base checkpoint ships with the package
(``trafl/assets/demo_base``); ``--retrain-base`` rebuilds it with the command recorded in
``BASE_SFT`` (also in docs/study.md).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

from trafl.errors import ConfigError
from trafl.utils.config import add_config_arguments, load_config, option, overrides_from_args, to_dict
from trafl.utils.io import atomic_write_json, atomic_write_text

ASSET_BASE = Path(__file__).resolve().parent / "assets" / "demo_base"
METHODS = ("trafl", "espo", "justgrpo", "diffu_grpo")

#: How the shipped base checkpoint was made (``--retrain-base`` runs exactly this).
BASE_SFT = {
    "task": "subset_sum",
    "samples_per_prompt": 64,
    "sft": dict(model="tiny", completion_length=10, max_steps=800, batch_size=64, learning_rate=2e-3,
                warmup_steps=50, eval_every=200, save_every=200, seed=0, num_threads=2),
}


@dataclass
class DemoConfig:
    out: str = option("trafl-demo", "Directory for the runs, generations, report and plots (resumable).")
    quick: bool = option(False, "Fewer RL steps, prompts and temperatures: a smoke run of the whole pipeline in minutes.")
    base: str | None = option(None, "Base model directory (default: the checkpoint shipped with trafl).")
    retrain_base: bool = option(False, "Rebuild the base with trafl sft (BASE_SFT in trafl/demo.py) instead of using the shipped one.")
    methods: list[str] = option(list(METHODS), "Post-training methods to compare.")
    task: str = option("subset_sum", "Synthetic task with many correct answers per prompt (the shipped base knows subset_sum).")
    gen_length: int = option(10, "Completion canvas length (subset_sum answers are at most 9 characters + EOS).", min=1)
    diffusion_steps: int = option(10, "Sampler steps (one token per step).", min=1)
    max_steps: int = option(100, "RL optimizer steps per method (equal rollout budget for every method).", min=1)
    prompts_per_step: int = option(8, "Training prompts per RL step.", min=1)
    num_generations: int = option(8, "Completions per prompt (the group).", min=2)
    temperature: float = option(0.9, "Rollout temperature during RL.", min=0.0)
    learning_rate: float = option(3e-4, "Policy learning rate (the same for every method).", min=0.0)
    beta: float = option(0.25, "TraFL's per-token reward temperature (target tilt L * beta on the group-normalised reward).", min=0.0)
    logz: str = option("vargrad", "TraFL's log-partition estimate.", choices=("learned", "learned_policy", "vargrad"))
    eval_prompts: int = option(100, "Held-out prompts evaluated.", min=1)
    eval_n: int = option(32, "Samples per prompt: pass@k uses the unbiased estimator over n samples, so n > k_max "
                                "lowers the noise of every pass@k.", min=1)
    k_max: int = option(16, "Largest k in the study's table and checks (pass@1..k_max).", min=1)
    eval_temperatures: list[float] = option([0.3, 0.6, 0.9], "Evaluation temperatures.")
    seed: int = option(0, "Seed of everything (base split, rollouts, evaluation noise).")
    num_threads: int = option(0, "torch CPU threads (0: torch's default).", min=0)

    def validate(self) -> None:
        if self.k_max > self.eval_n:
            raise ConfigError(f"config field 'k_max': {self.k_max} exceeds eval_n = {self.eval_n} samples per prompt")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ConfigError(f"config field 'methods': unknown {unknown}; valid: {', '.join(METHODS)}")

    def effective(self) -> "DemoConfig":
        """The quick variant shrinks the budgets but keeps every stage."""
        if not self.quick:
            return self
        return replace(self, max_steps=min(self.max_steps, 15), eval_prompts=min(self.eval_prompts, 24),
                       eval_n=min(self.eval_n, 8), k_max=min(self.k_max, 8), eval_temperatures=[0.6, 0.9] if len(self.eval_temperatures) > 2 else self.eval_temperatures)


def _log(msg: str) -> None:
    print(f"[trafl demo] {msg}", flush=True)


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
    task = get_task(cfg.task, seed=cfg.seed)
    data = out / "base" / "sft.jsonl"
    n = task.write_sft(data, samples_per_prompt=BASE_SFT["samples_per_prompt"], seed=cfg.seed)
    _log(f"training the base model with trafl sft on {n} pairs ({data})")
    sft_cfg = load_config(SFTConfig, None, {**BASE_SFT["sft"], "data": str(data), "output_dir": str(out / "base"),
                                            "resume": True})
    run_sft(sft_cfg)
    return target


def train_method(cfg: DemoConfig, method: str, base: Path, out: Path) -> Path:
    from trafl.train.config import TrainConfig
    from trafl.train.trainer import run_train

    run_dir = out / "runs" / method
    final = run_dir / "final"
    if (final / "config.json").is_file():
        _log(f"{method}: already trained ({final})")
        return final
    fields = dict(
        model=str(base), method=method, task=cfg.task, output_dir=str(run_dir), seed=cfg.seed,
        num_generations=cfg.num_generations, per_device_train_batch_size=cfg.num_generations * cfg.prompts_per_step,
        max_completion_length=cfg.gen_length, diffusion_steps=cfg.diffusion_steps, block_length=cfg.gen_length,
        temperature=cfg.temperature, max_prompt_length=32, max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate, save_steps=max(10, cfg.max_steps // 4), resume=True, device="cpu",
        num_threads=cfg.num_threads, max_grad_norm=1.0,
    )
    if method == "trafl":
        fields.update(beta=cfg.beta, logz=cfg.logz)
    elif method in ("espo", "diffu_grpo"):
        fields.update(beta=0.0 if method == "espo" else 0.04)
    train_cfg = load_config(TrainConfig, None, fields)
    t0 = time.perf_counter()
    _log(f"{method}: {cfg.max_steps} RL steps x {cfg.prompts_per_step} prompts x {cfg.num_generations} samples")
    run_train(train_cfg)
    _log(f"{method}: done in {time.perf_counter() - t0:.0f} s")
    return final


def evaluate_all(cfg: DemoConfig, models: dict[str, Path], out: Path) -> dict:
    from trafl.eval.evaluate import EvalPlan, ModelSpec, TaskSpec, run_evaluation
    from trafl.eval.generation import SamplerGenerator, SamplerSettings
    from trafl.tasks import get_task

    task = get_task(cfg.task, seed=cfg.seed)
    rows = task.load(task.eval_split)[: cfg.eval_prompts]
    settings = SamplerSettings(steps=cfg.diffusion_steps, block_length=cfg.gen_length, remasking="low_confidence")
    specs = [
        ModelSpec(label, str(path), (lambda p=path: SamplerGenerator.from_pretrained(str(p), settings, device="cpu")), settings)
        for label, path in models.items()
    ]
    plan = EvalPlan(n=cfg.eval_n, temperatures=list(cfg.eval_temperatures), gen_lengths=[cfg.gen_length],
                    seed=cfg.seed, batch_size=16)
    return run_evaluation(specs, [TaskSpec(task, rows)], plan, out / "eval", base="base", progress=_log)


# --------------------------------------------------------------------------------------------
def study_checks(results: dict, method: str = "trafl", base: str = "base", k_max: int | None = None) -> dict:
    """The study's claims, read off results.json: is ``method`` >= ``base`` at every k <= ``k_max``
    and temperature, and does it find more distinct correct answers than every baseline?"""
    cells = {(r["model"], r["temperature"]): r for r in results["results"]}
    temps = sorted({t for (_, t) in cells})
    models = sorted({m for (m, _) in cells})
    out = {"pass_at_k_vs_base": {}, "distinct_vs_baselines": {}, "base": {}}
    for t in temps:
        b, m = cells.get((base, t)), cells.get((method, t))
        out["base"][str(t)] = {"pass@1": b["pass_at_k"][0], "distinct_correct_mean": b["distinct_correct"]["mean"]}
        if m is not None:
            pairs = list(zip(m["pass_at_k"], b["pass_at_k"]))[:k_max]
            below = [k for k, (x, y) in enumerate(pairs, start=1) if x < y]
            out["pass_at_k_vs_base"][str(t)] = {"k_below_base": below, "ok": not below}
            others = {o: cells[(o, t)]["distinct_correct"]["mean"] for o in models if o not in (base, method) and (o, t) in cells}
            mine = m["distinct_correct"]["mean"]
            out["distinct_vs_baselines"][str(t)] = {"trafl": mine, **others, "ok": all(mine > v for v in others.values())}
    return out


def render_summary(results: dict, checks: dict, timings: dict, k_max: int = 16) -> str:
    """A compact Markdown table: pass@1/2/4/8/16 and distinct correct answers per model and temperature."""
    n = results["settings"]["n"]
    ks = [k for k in (1, 2, 4, 8, 16, 32, 64) if k <= min(n, k_max)]
    lines = ["| model | T | " + " | ".join(f"pass@{k}" for k in ks) + " | distinct correct / prompt |",
             "|---|---|" + "---|" * (len(ks) + 1)]
    for r in sorted(results["results"], key=lambda r: (r["temperature"], r["model"] != "base", r["model"])):
        cells = " | ".join(f"{100 * r['pass_at_k'][k - 1]:.1f}" for k in ks)
        lines.append(f"| {r['model']} | {r['temperature']} | {cells} | {r['distinct_correct']['mean']:.2f} |")
    verdict = []
    for t, c in checks["pass_at_k_vs_base"].items():
        verdict.append(f"- T={t}: TraFL pass@k >= base at every k <= {k_max}: {'yes' if c['ok'] else 'no, below at k=' + str(c['k_below_base'])}")
    for t, c in checks["distinct_vs_baselines"].items():
        verdict.append(f"- T={t}: TraFL finds more distinct correct answers than every baseline: {'yes' if c['ok'] else 'no'}")
    time_line = ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
    return "\n".join(lines) + "\n\n" + "\n".join(verdict) + f"\n\nWall time: {time_line}.\n"


def run_demo(cfg: DemoConfig) -> dict:
    import torch

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
    models = {"base": base}
    for method in cfg.methods:
        t = time.perf_counter()
        already = (out / "runs" / method / "final" / "config.json").is_file()
        models[method] = train_method(cfg, method, base, out)
        if not already or method not in timings:
            timings[method] = time.perf_counter() - t
    t = time.perf_counter()
    _log(f"evaluating {len(models)} models on {cfg.eval_prompts} held-out prompts x {cfg.eval_n} samples "
         f"at T = {', '.join(map(str, cfg.eval_temperatures))}")
    results = evaluate_all(cfg, models, out)
    timings["eval"] = max(timings.get("eval", 0.0), time.perf_counter() - t)  # cached reruns are shorter
    from trafl.eval.plots import write_plots
    from trafl.eval.report import render_markdown

    plots = write_plots(results, out, base="base", bar_k=min(5, cfg.eval_n))
    checks = study_checks(results, k_max=cfg.k_max) if "trafl" in models else {"pass_at_k_vs_base": {}, "distinct_vs_baselines": {}, "base": {}}
    timings["total"] = sum(v for k, v in timings.items() if k != "total")
    summary = render_summary(results, checks, timings, k_max=cfg.k_max)
    report = "# trafl demo: trajectory locking at CPU scale\n\n" + summary + "\n" + render_markdown(results)
    report += "\n## Plots\n\n" + "\n".join(f"![{Path(p).stem}]({Path(p).relative_to(out)})" for p in plots) + "\n"
    atomic_write_text(out / "report.md", report)
    atomic_write_json(out / "study.json", {"checks": checks, "timings_s": timings, "config": to_dict(cfg)})
    print(summary)
    _log(f"report: {out / 'report.md'}")
    return {"results": results, "checks": checks, "timings": timings, "plots": plots}


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
