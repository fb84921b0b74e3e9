"""Math tasks: GSM8K, MATH (train), MATH-500, Minerva Math.

Rows: ``prompt`` (the problem), ``answer`` (the reference final answer) and an ``id``; with a reward
set that grades against it (``d1``, ``espo``, ``spg``), ``solution``: the worked reference (GSM8K's answer
ending ``#### N``, MATH's solution; ``#### answer`` / ``\\boxed{answer}`` when the source has none).

Task options (``get_task(name, **options)``, ``task_options`` in a training or eval config):

- ``prompt_template`` (:data:`PromptTemplate`): how the problem becomes the user message.
  ``default`` asks for step-by-step reasoning and a final ``\\boxed{}`` answer; ``espo`` is the same
  text (ESPO b5f2dac ``espo/data_utils.py`` l.84, l.97); ``d1`` puts d1's XML format request before the
  question (d1 837888f ``diffu-grpo/data_utils.py`` l.26-34, l.72; on MATH-like tasks with its math
  instruction, l.126); ``justgrpo`` is the bare question on GSM8K and the problem followed directly by
  its ``\\boxed{}`` request on MATH-like tasks (JustGRPO eebe50e ``data/math.py`` l.13, l.97-99).
  Every template is one user message; the chat template is applied by :meth:`Task.format_prompt`.
- ``rewards`` (:data:`RewardSet`): the reward functions and their default weights. ``default``:
  correctness then the ``\\boxed{}`` format reward, weights 1, 0; ``d1``: d1's rewards
  (:mod:`trafl.rewards.math.d1`), weights all 1; ``espo``: ESPO's correctness alone
  (:mod:`trafl.rewards.math.espo`), weight 1.
  ``spg``: SPG's, d1's with SPG's xmlcount on GSM8K (:mod:`trafl.rewards.math.spg`), weights all 1.
- ``max_problem_chars``: keep only problems of at most this many characters (JustGRPO trains MATH on
  problems under 1,500 characters, ``data/math.py`` l.127: 1499).
- ``source`` (``math`` only, :data:`MathSource`): ``lighteval`` (Hendrycks MATH train, 7,500
  problems) or ``prm800k`` (MATH minus MATH-500: PRM800K's 12,000-problem split, hub
  ``ankner/math-500`` split ``train``, what d1, ESPO and JustGRPO train on).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

from trafl.errors import ConfigError, DataError
from trafl.rewards.math import (
    boxed_format_reward,
    d1_answer_tag_format_reward,
    d1_gsm8k_correctness_reward,
    d1_integer_reward,
    d1_math_correctness_reward,
    d1_soft_format_reward,
    d1_strict_format_reward,
    d1_xmlcount_reward,
    espo_gsm8k_correctness_reward,
    espo_math_correctness_reward,
    extract_answer,
    gsm8k_correctness_reward,
    gsm8k_gold,
    is_equiv,
    last_boxed,
    math_correctness_reward,
    normalise,
    numbers_equal,
    parse_number,
    spg_xmlcount_reward,
)
from trafl.tasks.base import RewardFn, Task
from trafl.tasks.loading import convert, first_field, load_rows

#: Named prompt templates of the math tasks (module docstring).
PromptTemplate = Literal["default", "d1", "justgrpo", "espo"]
#: Named reward sets of the math tasks (module docstring).
RewardSet = Literal["default", "d1", "espo", "spg"]
#: Where the ``math`` task's training problems come from (module docstring).
MathSource = Literal["lighteval", "prm800k"]

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
#: d1's request for its XML format, with d1's own surrounding newlines (``data_utils.py`` l.26-34).
D1_FORMAT = "\nRespond in the following format:\n<reasoning>\n...\n</reasoning>\n<answer>\n...\n</answer>\n"
#: d1's instruction before a MATH problem (``data_utils.py`` l.126), trailing space included.
D1_MATH_INSTRUCTION = (
    "You are a math expert. You will be given a question to solve. Solve it step by step. "
    "Wrap the final answer in a \\boxed{}. "
)
#: JustGRPO's request after a MATH problem, with no separator (``data/math.py`` l.97-99).
JUSTGRPO_MATH_SUFFIX = "(Please put the final answer in \\boxed{} tag, i.e. $\\boxed{answer here}$)"

Template = Callable[[str], str]


def _default(question: str) -> str:
    return f"{question}\n{INSTRUCTION}"


#: template -> user message of a MATH-like problem
MATH_TEMPLATES: dict[str, Template] = {
    "default": _default,
    "espo": _default,
    "d1": lambda q: f"{D1_FORMAT}\n\n{D1_MATH_INSTRUCTION}\n\n{q}",
    "justgrpo": lambda q: q + JUSTGRPO_MATH_SUFFIX,
}
#: template -> user message of a GSM8K question
GSM8K_TEMPLATES: dict[str, Template] = {
    "default": _default,
    "espo": _default,
    "d1": lambda q: f"{D1_FORMAT}\n\n{q}",
    "justgrpo": lambda q: q,
}

RewardRecipe = tuple[tuple[RewardFn, ...], tuple[float, ...]]
#: reward set -> (functions, default weights) of MATH-like tasks
MATH_REWARDS: dict[str, RewardRecipe] = {
    "default": ((math_correctness_reward, boxed_format_reward), (1.0, 0.0)),
    "d1": ((d1_math_correctness_reward, d1_answer_tag_format_reward), (1.0, 1.0)),
    "espo": ((espo_math_correctness_reward,), (1.0,)),
    "spg": ((d1_math_correctness_reward, d1_answer_tag_format_reward), (1.0, 1.0)),  # d1's functions
}
#: reward set -> (functions, default weights) of GSM8K, d1's in its order (``diffu_grpo_train.py`` l.39-45)
GSM8K_REWARDS: dict[str, RewardRecipe] = {
    "default": ((gsm8k_correctness_reward, boxed_format_reward), (1.0, 0.0)),
    "d1": (
        (
            d1_xmlcount_reward,
            d1_soft_format_reward,
            d1_strict_format_reward,
            d1_integer_reward,
            d1_gsm8k_correctness_reward,
        ),
        (1.0, 1.0, 1.0, 1.0, 1.0),
    ),
    "espo": ((espo_gsm8k_correctness_reward,), (1.0,)),
    # SPG's (spg/diffu_grpo_train.py l.43-51): d1's with its own xmlcount
    "spg": (
        (
            spg_xmlcount_reward,
            d1_soft_format_reward,
            d1_strict_format_reward,
            d1_integer_reward,
            d1_gsm8k_correctness_reward,
        ),
        (1.0, 1.0, 1.0, 1.0, 1.0),
    ),
}


def _checked(value: str, choices: tuple, option: str, task: str) -> str:
    if value not in choices:
        raise ConfigError(
            f"task '{task}': option '{option}' must be one of {', '.join(map(repr, choices))}, got {value!r}"
        )
    return value


class MathTask(Task):
    """A dataset of problems with a final answer graded by math-verify."""

    kind = "math"
    hub_id: str = ""
    hub_config: str | None = None
    templates: dict[str, Template] = MATH_TEMPLATES
    reward_sets: dict[str, RewardRecipe] = MATH_REWARDS

    def __init__(
        self,
        prompt_template: PromptTemplate = "default",
        rewards: RewardSet = "default",
        max_problem_chars: int | None = None,
    ) -> None:
        self.prompt_template = _checked(prompt_template, get_args(PromptTemplate), "prompt_template", self.name)
        self.rewards = _checked(rewards, get_args(RewardSet), "rewards", self.name)
        self.max_problem_chars = max_problem_chars

    @property
    def required_columns(self) -> tuple[str, ...]:
        return ("answer",) if self.rewards == "default" else ("answer", "solution")

    def load(self, split: str | None = None, *, path: str | None = None, limit: int | None = None) -> list[dict]:
        split = split or self.eval_split or self.train_split
        raw = load_rows(path, self.hub_id, split, self.hub_config)
        source = path or self.hub_id
        return convert(raw, lambda r: self.keep(self.to_row(r, source)), limit)

    def keep(self, row: dict) -> dict | None:
        """``row`` as this task's options want it, or ``None`` when ``max_problem_chars`` drops it. The row
        keeps ``solution`` only for the reward sets that grade against it, and names a prompt template
        other than the default's text, so that a row's content keys the eval cache as before unless the
        prompt changes."""
        if self.max_problem_chars is not None and len(row["prompt"]) > self.max_problem_chars:
            return None
        if "solution" not in self.required_columns:
            del row["solution"]
        if self.templates[self.prompt_template] is not self.templates["default"]:
            row["prompt_template"] = self.prompt_template
        return row

    def to_row(self, raw: dict, source: str) -> dict:
        problem = first_field(raw, ("problem", "question", "prompt"), source)
        if "answer" in raw and raw["answer"] not in (None, ""):
            answer = str(raw["answer"])
        else:
            solution = first_field(raw, ("solution",), source)
            answer = last_boxed(solution)
            if answer is None:
                raise DataError(f"{source}: solution without \\boxed{{}} answer: {str(solution)[-80:]!r}")
        solution = raw.get("solution") or f"\\boxed{{{answer}}}"
        ident = raw.get("unique_id", raw.get("idx", raw.get("id", "")))
        return {"prompt": problem, "answer": answer, "solution": str(solution), "id": str(ident)}

    def prompt_text(self, row: dict) -> str:
        return self.templates[self.prompt_template](row["prompt"])

    def reward_functions(self) -> list[RewardFn]:
        return list(self.reward_sets[self.rewards][0])

    def default_reward_weights(self) -> list[float]:
        return list(self.reward_sets[self.rewards][1])

    def is_correct(self, completion: str, row: dict) -> bool:
        return is_equiv(extract_answer(completion), row["answer"])

    def answer_key(self, completion: str, row: dict) -> str | None:
        answer = extract_answer(completion)
        return normalise(answer) if answer else None


class GSM8K(MathTask):
    name = "gsm8k"
    hub_id, hub_config = "openai/gsm8k", "main"
    train_split, eval_split = "train", "test"
    templates = GSM8K_TEMPLATES
    reward_sets = GSM8K_REWARDS

    def to_row(self, raw: dict, source: str) -> dict:
        question = first_field(raw, ("question", "prompt"), source)
        answer_field = str(first_field(raw, ("answer",), source))
        try:
            answer = gsm8k_gold(answer_field) if "####" in answer_field else answer_field.strip()
        except ValueError as exc:
            raise DataError(f"{source}: {exc}") from exc
        solution = answer_field if "####" in answer_field else f"#### {answer}"
        return {"prompt": question, "answer": answer, "solution": solution, "id": str(raw.get("id", ""))}

    def is_correct(self, completion: str, row: dict) -> bool:
        return numbers_equal(extract_answer(completion, fallback_last_number=True), row["answer"])

    def answer_key(self, completion: str, row: dict) -> str | None:
        value = parse_number(extract_answer(completion, fallback_last_number=True) or "")
        return None if value is None else f"{value:.6g}"


#: ``math``'s sources: (hub id, training split). PRM800K's split as d1 837888f ``diffu-grpo/data_utils.py``
#: l.120, ESPO b5f2dac ``espo/data_utils.py`` l.93 and JustGRPO eebe50e ``train.py`` l.93-94 load it.
MATH_SOURCES: dict[str, tuple[str, str]] = {
    "lighteval": ("DigitalLearningGmbH/MATH-lighteval", "train"),
    "prm800k": ("ankner/math-500", "train"),
}


class MATHTrain(MathTask):
    """Hendrycks MATH training problems (answer = the ``\\boxed{}`` of the solution, or the row's
    ``answer``): 7,500 from MATH-lighteval, or with ``source: prm800k`` the 12,000 of PRM800K's split
    (MATH minus MATH-500; rows ``problem, solution, answer, subject, level, unique_id``)."""

    name = "math"
    hub_id = "DigitalLearningGmbH/MATH-lighteval"
    train_split, eval_split = "train", "test"

    def __init__(self, source: MathSource = "lighteval", **options) -> None:
        super().__init__(**options)
        self.source = _checked(source, get_args(MathSource), "source", self.name)
        self.hub_id, self.train_split = MATH_SOURCES[self.source]


class MATH500(MathTask):
    name = "math500"
    hub_id = "HuggingFaceH4/MATH-500"
    train_split, eval_split = None, "test"


class MinervaMath(MathTask):
    """Minerva's 272 OCW problems; the reference is the ``\\boxed{}`` in the solution."""

    name = "minerva_math"
    hub_id = "math-ai/minervamath"
    train_split, eval_split = None, "test"
