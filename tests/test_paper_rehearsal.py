"""Dress rehearsal of every shipped paper config (``configs/paper/**/*.yaml``).

Each config runs *as shipped* except for what a CPU test must change:

* the model: a micro LLaDA with LLaDA-8B-Instruct's tokenizer layout and chat format (:mod:`llada_like`);
* the length of the run: one step and its checkpoint, a kill, then a resumed run that does the second step;
* ``gradient_accumulation_steps``: 1 and ``num_iterations``: at most 2 (the micro-batch, one group of
  ``num_generations`` completions at the shipped canvas and sampler, is the file's; accumulating 2-8 of
  them, or an inner update past the second, the first to see a policy other than the rollout's, would
  only repeat what the first two do);
* for JustGRPO only, the canvas: 32 tokens instead of 256 / 512 (its sampler follows: one token per step).
  Its exact left-to-right likelihood scores every completion with one forward pass of the whole canvas
  per token (``L`` passes of ``P + L`` tokens), which at ``L = 512`` takes minutes per step on a CPU;
  the same code path runs at 32;
* where the rows come from: real rows of ``../shared/data`` written to a local file (MBPP problems in
  KodCode's layout for the code configs); skipped when that directory is absent.

Everything else (sampler, inner iterations, LoRA list, task options: prompt template, reward set, MATH
source, prompt truncation and length, gradient checkpointing, clip, optimiser) is the file's. Anything a
GPU user would hit in the first minute of a paper run fails here first.

A second check per task setup: the reference answers of real rows, written in the format the config's
prompt asks for, earn the correctness reward's top value on every row, and no other answer format
scores more under the config's weighted rewards.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trafl.objectives.registry import objective_class
from trafl.train.config import TrainConfig
from trafl.utils.config import load_config

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
CONFIGS = sorted((REPO / "configs" / "paper").rglob("*.yaml"))
ROWS = 16  # enough prompts for two steps of the largest per-process batch (JustGRPO: 8 prompts per step)

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data is absent (see its README)")


def _gsm8k_rows() -> list[dict]:
    lines = (DATA / "gsm8k" / "train.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines[:ROWS]]
    return rows + [json.loads(line) for line in lines if "," in line.split("####")[-1]][:2]  # a "1,080" answer


def _math_rows() -> list[dict]:
    lines = (DATA / "math" / "train.jsonl").read_text().splitlines()[:ROWS]
    return [json.loads(line) for line in lines]


def _kodcode_rows() -> list[dict]:
    """Real MBPP problems in KodCode's layout (``question`` + pytest-style ``test`` importing ``solution``):
    the KodCode set itself is not among the local copies."""
    rows = []
    for line in (DATA / "mbpp" / "mbpp.jsonl").read_text().splitlines()[10 : 10 + ROWS]:
        raw = json.loads(line)
        body = "\n".join(f"    {t}" for t in raw["test_list"])
        test = f"from solution import *\n\n\ndef test_reference():\n{body}\n"
        rows.append({"question": raw["text"], "test": test, "question_id": str(raw["task_id"]), "gold": raw["code"]})
    return rows


RAW_ROWS = {"gsm8k": _gsm8k_rows, "math": _math_rows, "kodcode": _kodcode_rows}


@pytest.fixture(scope="module")
def data_files(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("rows")
    files = {}
    for task, rows in RAW_ROWS.items():
        files[task] = out / f"{task}.jsonl"
        files[task].write_text("".join(json.dumps(r) + "\n" for r in rows()))
    return files


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, data_files) -> Path:
    from llada_like import make_llada_like_model_dir

    texts = [p.read_text() for p in data_files.values()]
    return make_llada_like_model_dir(tmp_path_factory.mktemp("llada_like") / "model", texts)


def _config(path: Path, **over) -> TrainConfig:
    return load_config(TrainConfig, path, over)


def test_every_paper_config_is_rehearsed():
    """Six matched-budget files per registered method (3 tasks x 2 lengths) plus the published ones."""
    from trafl.objectives.registry import OBJECTIVES

    matched = [p for p in CONFIGS if p.parent.name == "paper"]
    assert len(matched) == 6 * len(OBJECTIVES), [p.name for p in matched]
    assert len(CONFIGS) - len(matched) >= 6


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO / "configs" / "paper")))
@pytest.mark.slow
def test_paper_config_runs_two_steps_and_resumes(path, model_dir, data_files, tmp_path):
    from trafl.train.trainer import RLTrainer

    shipped = _config(path)
    run = tmp_path / "run"
    common = {
        "model": str(model_dir),
        "dataset_path": str(data_files[shipped.task]),
        "output_dir": str(run),
        "device": "cpu",
        "save_steps": 1,
        "save_merged": False,
        "gradient_accumulation_steps": 1,
        "num_iterations": min(shipped.num_iterations, 2),
    }
    if objective_class(shipped.method).rollout_order == "left_to_right":
        common["max_completion_length"] = 32
    first = RLTrainer(_config(path, **common, max_steps=2), progress=False)
    step_once = first.train_step

    def crash_on_second_step(step):  # a kill after the first checkpoint
        if step == 1:
            raise KeyboardInterrupt("killed after checkpoint-1")
        return step_once(step)

    first.train_step = crash_on_second_step
    with pytest.raises(KeyboardInterrupt):
        first.train()
    assert (run / "checkpoint-1").is_dir() and not (run / "final").exists()
    resumed = RLTrainer(_config(path, **common, max_steps=2, resume=True), progress=False).train()
    assert resumed.steps == 2 and (run / "final").is_dir()
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2]
    assert all(m["loss"] == m["loss"] for m in metrics)  # not NaN


# --- the reference answers earn the config's maximum reward -------------------------------------------

#: How a reference answer is written for each prompt template's format.
GOLD_FORMATS = {
    "boxed": lambda a: f"We add the parts step by step.\nThe answer is {a}.\n\\boxed{{{a}}}",
    "d1": lambda a: f"<reasoning>\nWe add the parts step by step.\n</reasoning>\n<answer>\n{a}\n</answer>\n",
    "d1_boxed": lambda a: f"<reasoning>\nStep by step.\n</reasoning>\n<answer>\n\\boxed{{{a}}}\n</answer>\n",
    "plain": lambda a: f"The answer is {a}.",
    "fenced": lambda a: f"```python\n{a}\n```",
    "unfenced": lambda a: a,
}
OWN_FORMAT = {("gsm8k", "d1"): "d1", ("math", "d1"): "d1_boxed", ("kodcode", "default"): "fenced"}
FORMATS = {"gsm8k": ["boxed", "d1", "plain"], "math": ["boxed", "d1_boxed", "plain"], "kodcode": ["fenced", "unfenced"]}


def _fn_name(fn) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


def _top(fn) -> float:
    """The correctness reward's value for a right answer (d1 pays 2.0) or None for another reward."""
    name = _fn_name(fn)
    if name == "code_pass" or "correctness" in name:
        return 2.0 if name.startswith("d1_") else 1.0
    return None


def _setups() -> dict[str, TrainConfig]:
    out: dict[str, TrainConfig] = {}
    for path in CONFIGS:
        cfg = _config(path)
        key = f"{cfg.task}-" + "-".join(f"{k}={v}" for k, v in sorted(cfg.task_options.items()))
        out.setdefault(key, cfg)
    return out


SETUPS = _setups()


@pytest.mark.parametrize("key", sorted(SETUPS))
def test_reference_answers_score_the_maximum(key, data_files):
    from trafl.tasks import get_task
    from trafl.train.rollout import resolve_reward_weights

    cfg = SETUPS[key]
    task = get_task(cfg.task, **cfg.task_options)
    raw = [json.loads(line) for line in data_files[cfg.task].read_text().splitlines()]
    rows = task.load(path=str(data_files[cfg.task]))
    assert rows, f"{key}: no row left"
    if cfg.task == "gsm8k":
        golds = [r["answer"].split("####")[-1].strip() for r in raw]
    elif cfg.task == "kodcode":
        golds = [r["gold"] for r in raw]
    else:
        golds = [r["answer"] for r in rows]
    golds = golds[: len(rows)] if cfg.task != "math" else golds
    fns = task.reward_functions()
    weights = resolve_reward_weights(cfg.reward_weights, len(fns), cfg.task, task.default_reward_weights())
    columns = {k: [r.get(k) for r in rows] for k in rows[0]}
    prompts = [r["prompt"] for r in rows]

    def scores(fmt: str) -> list[list[float]]:
        completions = [GOLD_FORMATS[fmt](g) for g in golds]
        return [fn(prompts, completions, **columns) for fn in fns]

    template = cfg.task_options.get("prompt_template", "default")
    own = OWN_FORMAT.get((cfg.task, template), "fenced" if cfg.task == "kodcode" else "boxed")
    mine = scores(own)
    tops = [(_top(fn), values) for fn, values in zip(fns, mine) if _top(fn) is not None]
    assert len(tops) == 1, f"{key}: expected one correctness reward among {[_fn_name(f) for f in fns]}"
    top, values = tops[0]
    assert values == [top] * len(rows), f"{key}: reference answers graded {values}"
    total = [sum(w * v[i] for w, v in zip(weights, mine)) for i in range(len(rows))]
    for fmt in FORMATS[cfg.task]:
        other = scores(fmt)
        for i in range(len(rows)):
            assert sum(w * v[i] for w, v in zip(weights, other)) <= total[i] + 1e-9, (key, fmt, i)
