"""Task options: checked at config load, the math tasks' prompt templates (the originals' exact text),
reward sets with their default weights, MATH's PRM800K source from a local copy, the problem-length
filter, and the same options in ``trafl eval``'s config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import pytest

from trafl.errors import ConfigError
from trafl.eval.cli import EvalConfig
from trafl.tasks import get_task, task_options
from trafl.tasks.math_tasks import (
    GSM8K_REWARDS,
    GSM8K_TEMPLATES,
    MATH_REWARDS,
    MATH_TEMPLATES,
    PromptTemplate,
    RewardSet,
)
from trafl.train.config import TrainConfig
from trafl.utils.config import load_config

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"benchmark copies not found at {DATA}")

# The originals' prompt text, transcribed (the code that builds it is cited next to each).
# d1 837888f diffu-grpo/data_utils.py l.26-34
D1_SYSTEM_PROMPT = """
Respond in the following format:
<reasoning>
...
</reasoning>
<answer>
...
</answer>
"""
Q = "Natalia sold 48 clips. How many?"
EXPECTED = {
    ("gsm8k", "default"): Q + "\nPlease reason step by step, and put your final answer within \\boxed{}.",
    # ESPO b5f2dac espo/data_utils.py l.84
    ("gsm8k", "espo"): f"{Q}\nPlease reason step by step, and put your final answer within \\boxed{{}}.",
    # d1 data_utils.py l.72
    ("gsm8k", "d1"): D1_SYSTEM_PROMPT + "\n\n" + Q,
    # JustGRPO eebe50e data/math.py l.13
    ("gsm8k", "justgrpo"): Q,
    ("math", "default"): Q + "\nPlease reason step by step, and put your final answer within \\boxed{}.",
    # ESPO espo/data_utils.py l.97
    ("math", "espo"): f"{Q}\nPlease reason step by step, and put your final answer within \\boxed{{}}.",
    # d1 data_utils.py l.126
    (
        "math",
        "d1",
    ): f"{D1_SYSTEM_PROMPT}\n\nYou are a math expert. You will be given a question to solve. Solve it step by step. Wrap the final answer in a \\boxed{{}}. \n\n{Q}",
    # JustGRPO data/math.py l.97-99
    ("math", "justgrpo"): Q + r"(Please put the final answer in \boxed{} tag, i.e. $\boxed{answer here}$)",
}


def test_every_declared_choice_has_a_template_and_a_reward_set():
    assert set(MATH_TEMPLATES) == set(GSM8K_TEMPLATES) == set(get_args(PromptTemplate))
    assert set(MATH_REWARDS) == set(GSM8K_REWARDS) == set(get_args(RewardSet))


@pytest.mark.parametrize("task_name, template", sorted(EXPECTED))
def test_prompt_templates_are_the_originals_text(task_name, template):
    for name in [task_name] if task_name == "gsm8k" else ["math", "math500", "minerva_math"]:
        task = get_task(name, prompt_template=template)
        assert task.prompt_text({"prompt": Q}) == EXPECTED[task_name, template]


class _ChatTokenizer:
    """Records what ``format_prompt`` hands to the chat template."""

    chat_template = "{{ messages }}"

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        self.call = (messages, tokenize, add_generation_prompt)
        return "<chat>"


def test_every_template_is_one_user_message_through_the_chat_template():
    # as TRL's maybe_apply_chat_template does for d1 and ESPO, and JustGRPO's grpo.py l.9-10
    for template in get_args(PromptTemplate):
        tok = _ChatTokenizer()
        assert get_task("math", prompt_template=template).format_prompt({"prompt": Q}, tok) == "<chat>"
        assert tok.call == ([{"role": "user", "content": EXPECTED["math", template]}], False, True)


def test_reward_sets_and_their_default_weights():
    names = lambda task: [f.__name__ for f in task.reward_functions()]  # noqa: E731
    gsm = {s: get_task("gsm8k", rewards=s) for s in get_args(RewardSet)}
    assert names(gsm["default"]) == ["gsm8k_correctness_reward", "boxed_format_reward"]
    assert gsm["default"].default_reward_weights() == [1.0, 0.0]
    # d1 837888f diffu_grpo_train.py l.39-45, TRL's default weights (all 1)
    assert names(gsm["d1"]) == [
        "d1_xmlcount_reward",
        "d1_soft_format_reward",
        "d1_strict_format_reward",
        "d1_integer_reward",
        "d1_gsm8k_correctness_reward",
    ]
    assert gsm["d1"].default_reward_weights() == [1.0] * 5
    assert names(gsm["espo"]) == ["espo_gsm8k_correctness_reward"] and gsm["espo"].default_reward_weights() == [1.0]
    math = {s: get_task("math", rewards=s) for s in get_args(RewardSet)}
    assert names(math["d1"]) == ["d1_math_correctness_reward", "d1_answer_tag_format_reward"]  # l.52-57
    assert math["d1"].default_reward_weights() == [1.0, 1.0]
    assert names(math["espo"]) == ["espo_math_correctness_reward"]
    # the originals' rewards grade against the worked solution: rows must carry it
    assert math["default"].required_columns == ("answer",)
    assert math["d1"].required_columns == ("answer", "solution")


def _train(**values):
    return load_config(TrainConfig, None, {"model": "m", "task": "gsm8k", **values})


def test_task_options_are_checked_when_the_config_loads():
    assert _train(task_options={"prompt_template": "d1", "rewards": "d1"}).task_options == {
        "prompt_template": "d1",
        "rewards": "d1",
    }
    # the command line's forms: key=value pairs (values read as YAML) or a flow mapping
    cfg = load_config(
        TrainConfig, None, ["--model", "m", "--task", "math", "--task-options", "source=prm800k,max_problem_chars=1499"]
    )
    assert cfg.task_options == {"source": "prm800k", "max_problem_chars": 1499}
    assert _train(task_options="{rewards: espo}").task_options == {"rewards": "espo"}
    assert _train().task_options == {}
    with pytest.raises(
        ConfigError, match=r"'task_options\.colour': task 'gsm8k' has no option 'colour'; its options: prompt_template"
    ):
        _train(task_options={"colour": "red"})
    with pytest.raises(
        ConfigError,
        match=r"'task_options\.prompt_template': expected one of 'default', 'd1', 'justgrpo', 'espo', got 'd2' \(task 'gsm8k'",
    ):
        _train(task_options={"prompt_template": "d2"})
    with pytest.raises(ConfigError, match=r"'task_options\.source'.*got 'prm800'.*task 'math'"):
        _train(task="math", task_options={"source": "prm800"})
    with pytest.raises(ConfigError, match=r"task 'gsm8k' has no option 'source'"):  # math's option only
        _train(task_options={"source": "prm800k"})
    with pytest.raises(ConfigError, match=r"'task_options\.max_problem_chars': expected int or null"):
        _train(task_options={"max_problem_chars": "long"})
    with pytest.raises(ConfigError, match=r"'task_options': expected key=value"):
        _train(task_options="prompt_template")
    # any task's options come from its constructor, e.g. a synthetic task's sizes
    assert _train(task="countdown", task_options={"num_digits": "4"}).task_options == {"num_digits": 4}
    assert set(task_options("math")) == {"source", "prompt_template", "rewards", "max_problem_chars"}


def test_eval_config_takes_the_same_options(tmp_path):
    base = {"model": ["m"], "out": str(tmp_path)}
    cfg = load_config(EvalConfig, None, {**base, "task": ["gsm8k,math500"], "task_options": {"prompt_template": "d1"}})
    assert cfg.task_options == {"prompt_template": "d1"}
    with pytest.raises(ConfigError, match=r"'task_options\.prompt_template'.*task 'mbpp'"):
        load_config(EvalConfig, None, {**base, "task": ["gsm8k,mbpp"], "task_options": {"prompt_template": "d1"}})


def test_rows_name_their_template_so_the_eval_cache_tells_them_apart(tmp_path):
    path = tmp_path / "g.jsonl"
    path.write_text(json.dumps({"question": Q, "answer": "so\n#### 1,080"}) + "\n")
    plain, d1, espo = (get_task("gsm8k", prompt_template=t).load(path=str(path))[0] for t in ("default", "d1", "espo"))
    assert plain == espo == {"prompt": Q, "answer": "1080", "id": ""}  # unchanged: its eval cache stays valid
    assert d1 == {**plain, "prompt_template": "d1"}
    # the originals' rewards grade against the worked answer, commas kept
    assert get_task("gsm8k", rewards="d1").load(path=str(path))[0]["solution"] == "so\n#### 1,080"
    path.write_text(json.dumps({"question": Q, "answer": "7"}) + "\n")  # a plain answer: a reference to match
    assert get_task("gsm8k", rewards="espo").load(path=str(path))[0]["solution"] == "#### 7"


PRM800K_ROWS = [
    {
        "problem": "What is $1+1$?",
        "solution": "It is $\\boxed{2}$.",
        "answer": "2",
        "subject": "Prealgebra",
        "level": 1,
        "unique_id": "train/prealgebra/1.json",
    },
    {
        "problem": "x" * 40,
        "solution": "Long; $\\boxed{\\frac{1}{2}}$",
        "answer": "\\frac{1}{2}",
        "subject": "Algebra",
        "level": 3,
        "unique_id": "test/algebra/2.json",
    },
]


def test_math_prm800k_source_and_local_copy(tmp_path):
    assert (get_task("math").hub_id, get_task("math").train_split) == ("DigitalLearningGmbH/MATH-lighteval", "train")
    task = get_task("math", source="prm800k")
    assert (task.hub_id, task.train_split) == ("ankner/math-500", "train")  # d1, ESPO, JustGRPO load this
    path = tmp_path / "prm800k.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in PRM800K_ROWS))
    rows = get_task("math", source="prm800k", rewards="d1").load("train", path=str(path))
    assert [(r["id"], r["answer"], r["solution"]) for r in rows] == [
        (r["unique_id"], r["answer"], r["solution"]) for r in PRM800K_ROWS
    ]
    # JustGRPO keeps problems under 1,500 characters (data/math.py l.127); here the limit is 39
    short = get_task("math", source="prm800k", max_problem_chars=39).load("train", path=str(path))
    assert [r["id"] for r in short] == ["train/prealgebra/1.json"]
    assert len(get_task("math", max_problem_chars=40).load("train", path=str(path))) == 2


@pytest.mark.data
@needs_data
def test_math_prm800k_layout_loads_from_the_math500_copy():
    rows = get_task("math", source="prm800k", rewards="espo").load("train", path=str(DATA / "math500/test.jsonl"))
    raw = [json.loads(line) for line in (DATA / "math500/test.jsonl").read_text().splitlines()]
    assert len(rows) == 500
    assert [(r["id"], r["answer"], r["solution"], r["prompt"]) for r in rows] == [
        (x["unique_id"], x["answer"], x["solution"], x["problem"]) for x in raw
    ]
