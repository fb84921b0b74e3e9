"""Math tasks: GSM8K, MATH (train), MATH-500, Minerva Math.

Rows: ``prompt`` (the problem), ``answer`` (the reference final answer) and an ``id``. The prompt
asks for step-by-step reasoning and a final ``\\boxed{}`` answer. Rewards: correctness first, then
the ``\\boxed{}`` format reward.
"""

from __future__ import annotations

from trafl.errors import DataError
from trafl.rewards.math import (
    boxed_format_reward,
    extract_answer,
    gsm8k_correctness_reward,
    gsm8k_gold,
    is_equiv,
    last_boxed,
    math_correctness_reward,
    normalise,
    numbers_equal,
    parse_number,
)
from trafl.tasks.base import RewardFn, Task
from trafl.tasks.loading import convert, first_field, load_rows

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


class MathTask(Task):
    """A dataset of problems with a final answer graded by math-verify."""

    kind = "math"
    hub_id: str = ""
    hub_config: str | None = None

    def load(self, split: str | None = None, *, path: str | None = None, limit: int | None = None) -> list[dict]:
        split = split or self.eval_split or self.train_split
        raw = load_rows(path, self.hub_id, split, self.hub_config)
        source = path or self.hub_id
        return convert(raw, lambda r: self.to_row(r, source), limit)

    def to_row(self, raw: dict, source: str) -> dict:
        problem = first_field(raw, ("problem", "question", "prompt"), source)
        if "answer" in raw and raw["answer"] not in (None, ""):
            answer = str(raw["answer"])
        else:
            solution = first_field(raw, ("solution",), source)
            answer = last_boxed(solution)
            if answer is None:
                raise DataError(f"{source}: solution without \\boxed{{}} answer: {str(solution)[-80:]!r}")
        ident = raw.get("unique_id", raw.get("idx", raw.get("id", "")))
        return {"prompt": problem, "answer": answer, "id": str(ident)}

    def prompt_text(self, row: dict) -> str:
        return f"{row['prompt']}\n{INSTRUCTION}"

    def reward_functions(self) -> list[RewardFn]:
        return [math_correctness_reward, boxed_format_reward]

    def is_correct(self, completion: str, row: dict) -> bool:
        return is_equiv(extract_answer(completion), row["answer"])

    def answer_key(self, completion: str, row: dict) -> str | None:
        answer = extract_answer(completion)
        return normalise(answer) if answer else None


class GSM8K(MathTask):
    name = "gsm8k"
    hub_id, hub_config = "openai/gsm8k", "main"
    train_split, eval_split = "train", "test"

    def to_row(self, raw: dict, source: str) -> dict:
        question = first_field(raw, ("question", "prompt"), source)
        answer_field = str(first_field(raw, ("answer",), source))
        try:
            answer = gsm8k_gold(answer_field) if "####" in answer_field else answer_field.strip()
        except ValueError as exc:
            raise DataError(f"{source}: {exc}") from exc
        return {"prompt": question, "answer": answer, "id": str(raw.get("id", ""))}

    def reward_functions(self) -> list[RewardFn]:
        return [gsm8k_correctness_reward, boxed_format_reward]

    def is_correct(self, completion: str, row: dict) -> bool:
        return numbers_equal(extract_answer(completion, fallback_last_number=True), row["answer"])

    def answer_key(self, completion: str, row: dict) -> str | None:
        value = parse_number(extract_answer(completion, fallback_last_number=True) or "")
        return None if value is None else f"{value:.6g}"


class MATHTrain(MathTask):
    """Hendrycks MATH, 7,500 training problems (answer = the ``\\boxed{}`` of the solution)."""

    name = "math"
    hub_id = "DigitalLearningGmbH/MATH-lighteval"
    train_split, eval_split = "train", "test"


class MATH500(MathTask):
    name = "math500"
    hub_id = "HuggingFaceH4/MATH-500"
    train_split, eval_split = None, "test"


class MinervaMath(MathTask):
    """Minerva's 272 OCW problems; the reference is the ``\\boxed{}`` in the solution."""

    name = "minerva_math"
    hub_id = "math-ai/minervamath"
    train_split, eval_split = None, "test"
