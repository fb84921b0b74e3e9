"""Approach diversity judged by a language model (optional; nothing here is needed for pass@k).

Protocol (after the paper's appendix): for one problem the judge sees two sets of solutions, A and
B (e.g. the correct samples of two models), names the distinct solution approaches in each set and
answers with JSON

    {"approaches_a": ["...", ...], "approaches_b": ["...", ...], "winner": "A" | "B" | "TIE"}

where the winner is the set with more distinct approaches. To cancel position bias the two sets
are shown in a seeded random order per problem and the verdict is mapped back.

A judge is anything with ``complete(prompt: str) -> str``: :class:`HFJudge` runs any Hugging Face
causal LM locally, :class:`OpenAIJudge` calls an OpenAI-compatible ``/chat/completions`` endpoint
(vLLM, TGI, llama.cpp server, OpenAI), and tests use a scripted judge.
"""

from __future__ import annotations

import json
import os
import random
import re
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from trafl.errors import ConfigError, DataError

WINNERS = ("A", "B", "TIE")


class Judge(Protocol):
    def complete(self, prompt: str) -> str: ...


def judge_prompt(problem: str, solutions_a: Sequence[str], solutions_b: Sequence[str]) -> str:
    """The instruction shown to the judge for one problem and two solution sets."""

    def block(name: str, sols: Sequence[str]) -> str:
        body = "\n\n".join(f"[{name}{i + 1}]\n{s.strip()}" for i, s in enumerate(sols)) or "(no solutions)"
        return f"### Set {name} ({len(sols)} solutions)\n{body}"

    return (
        "You compare the diversity of two sets of solutions to the same problem.\n"
        "Two solutions use the same approach when they rely on the same key idea or method, even if "
        "their wording, variable names or order of steps differ.\n\n"
        f"### Problem\n{problem.strip()}\n\n{block('A', solutions_a)}\n\n{block('B', solutions_b)}\n\n"
        "List the distinct approaches used in set A and in set B (a short phrase each), then say which "
        "set contains more distinct approaches. Answer with one JSON object and nothing after it:\n"
        '{"approaches_a": ["..."], "approaches_b": ["..."], "winner": "A" or "B" or "TIE"}'
    )


@dataclass
class Verdict:
    approaches_a: list[str]
    approaches_b: list[str]
    winner: str

    def swapped(self) -> Verdict:
        """The same verdict with the roles of A and B exchanged."""
        flip = {"A": "B", "B": "A", "TIE": "TIE"}
        return Verdict(self.approaches_b, self.approaches_a, flip[self.winner])


def parse_verdict(text: str) -> Verdict:
    """The judge's JSON answer: the last ``{...}`` in ``text`` that has a ``winner`` field."""
    decoder = json.JSONDecoder()
    for match in reversed(list(re.finditer(r"\{", text))):
        try:
            obj, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if not (isinstance(obj, dict) and "winner" in obj):
            continue
        winner = str(obj["winner"]).strip().upper()
        if winner not in WINNERS:
            raise DataError(f"judge answered winner {obj['winner']!r}; expected one of {WINNERS}")
        approaches = []
        for key in ("approaches_a", "approaches_b"):
            value = obj.get(key, [])
            if not isinstance(value, list):
                raise DataError(f"judge field '{key}' must be a list of strings, got {value!r}")
            approaches.append([str(v) for v in value])
        return Verdict(approaches[0], approaches[1], winner)
    raise DataError(f"judge answer holds no JSON object with a 'winner' field: {text[-300:]!r}")


@dataclass
class DiversityComparison:
    """Per-problem verdicts (``None`` where the judge's answer was unusable) and their tally."""

    verdicts: list[Verdict | None] = field(default_factory=list)

    @property
    def wins_a(self) -> int:
        return sum(v is not None and v.winner == "A" for v in self.verdicts)

    @property
    def wins_b(self) -> int:
        return sum(v is not None and v.winner == "B" for v in self.verdicts)

    @property
    def ties(self) -> int:
        return sum(v is not None and v.winner == "TIE" for v in self.verdicts)

    @property
    def invalid(self) -> int:
        return sum(v is None for v in self.verdicts)

    def to_dict(self) -> dict:
        valid = [v for v in self.verdicts if v is not None]
        mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
        return {
            "wins_a": self.wins_a,
            "wins_b": self.wins_b,
            "ties": self.ties,
            "invalid": self.invalid,
            "mean_approaches_a": mean([len(v.approaches_a) for v in valid]),
            "mean_approaches_b": mean([len(v.approaches_b) for v in valid]),
        }


def compare_diversity(
    judge: Judge,
    problems: Sequence[str],
    sets_a: Sequence[Sequence[str]],
    sets_b: Sequence[Sequence[str]],
    *,
    seed: int = 0,
) -> DiversityComparison:
    """Ask ``judge`` about every problem; set order randomised per problem with ``seed``."""
    if not len(problems) == len(sets_a) == len(sets_b):
        raise ConfigError(
            f"need one solution set per problem for A and B: got {len(problems)} problems, "
            f"{len(sets_a)} A sets, {len(sets_b)} B sets"
        )
    rng = random.Random(seed)
    result = DiversityComparison()
    for problem, a, b in zip(problems, sets_a, sets_b):
        swap = rng.random() < 0.5
        first, second = (b, a) if swap else (a, b)
        try:
            verdict = parse_verdict(judge.complete(judge_prompt(problem, first, second)))
        except DataError:
            result.verdicts.append(None)
            continue
        result.verdicts.append(verdict.swapped() if swap else verdict)
    return result


def correct_solutions(cache_records: Sequence[dict]) -> dict[str, list[str]]:
    """``problem_id -> correct completions`` from a cell's cache records (see trafl.eval.cache)."""
    return {
        r["problem_id"]: [c for c, ok in zip(r["completions"], r["correct"]) if ok]
        for r in cache_records
        if "problem_id" in r
    }


class HFJudge:
    """Any Hugging Face causal LM as a judge (greedy decoding, chat template when it has one)."""

    def __init__(
        self,
        model_name_or_path: str,
        *,
        max_new_tokens: int = 1024,
        device: str | None = None,
        dtype: str | None = "auto",
        trust_remote_code: bool = False,
        model: Any = None,
        tokenizer: Any = None,
    ) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer = tokenizer or AutoTokenizer.from_pretrained(
            model_name_or_path, trust_remote_code=trust_remote_code
        )
        self.model = model or AutoModelForCausalLM.from_pretrained(
            model_name_or_path, dtype=dtype, trust_remote_code=trust_remote_code
        )
        if device is not None:
            self.model.to(device)
        self.model.eval()
        self.max_new_tokens = max_new_tokens

    def complete(self, prompt: str) -> str:
        import torch

        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
        else:
            text = prompt
        enc = self.tokenizer(text, return_tensors="pt", add_special_tokens=False).to(self.model.device)
        with torch.no_grad():
            out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False)
        return self.tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)


class OpenAIJudge:
    """A model behind an OpenAI-compatible ``POST {base_url}/chat/completions`` endpoint.

    The API key comes from ``api_key`` or the environment variable ``api_key_env``
    (``OPENAI_API_KEY``); local servers usually need none. Uses only the standard library.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str = "https://api.openai.com/v1",
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 0.0,
        max_tokens: int = 1024,
        timeout: float = 120.0,
    ) -> None:
        self.model = model
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key = api_key if api_key is not None else os.environ.get(api_key_env)
        self.temperature, self.max_tokens, self.timeout = temperature, max_tokens, timeout

    def request_body(self, prompt: str) -> dict:
        return {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }

    def complete(self, prompt: str) -> str:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.url, data=json.dumps(self.request_body(prompt)).encode(), headers=headers)
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            payload = json.loads(resp.read().decode())
        try:
            return payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise DataError(f"{self.url} returned no choices[0].message.content: {str(payload)[:300]}") from exc


# --- ``trafl eval --judge-model``: every model against the base, cell by cell ----------------------


def make_judge(
    model: str,
    *,
    url: str | None = None,
    max_tokens: int = 1024,
    api_key_env: str = "OPENAI_API_KEY",
    device: str | None = None,
    dtype: str | None = None,
    trust_remote_code: bool = False,
) -> Judge:
    """An :class:`OpenAIJudge` when ``url`` is given, else an :class:`HFJudge` loading ``model`` locally."""
    if url:
        return OpenAIJudge(model, base_url=url, api_key_env=api_key_env, max_tokens=max_tokens)
    return HFJudge(
        model, max_new_tokens=max_tokens, device=device, dtype=dtype or "auto", trust_remote_code=trust_remote_code
    )


def judge_against_base(
    judge: Judge,
    results: dict,
    out_dir: Any,
    problems: dict[str, dict[str, str]],
    base: str,
    *,
    seed: int = 0,
    limit: int | None = None,
) -> list[dict]:
    """For every cell of every model but ``base``: the judge's comparison of the base's correct
    solutions (set A) with the model's (set B) on the problems both solved (at most ``limit``, in
    evaluation order). ``problems[task][problem_id]`` is the problem text shown to the judge; the
    solutions come from the cell caches under ``out_dir`` (:mod:`trafl.eval.cache`)."""
    from trafl.eval.cache import Cell, cache_path
    from trafl.utils.io import read_jsonl

    def solutions(entry: dict, model: str) -> dict[str, list[str]]:
        cell = Cell(model, entry["task"], entry["temperature"], entry["gen_length"])
        return correct_solutions(read_jsonl(cache_path(out_dir, cell))[1:])

    out = []
    for entry in results["results"]:
        if entry["model"] == base:
            continue
        a, b = solutions(entry, base), solutions(entry, entry["model"])
        ids = [p for p in entry["problem_ids"] if a.get(p) and b.get(p)][:limit]
        comparison = compare_diversity(
            judge, [problems[entry["task"]][p] for p in ids], [a[p] for p in ids], [b[p] for p in ids], seed=seed
        )
        out.append(
            {
                "model": entry["model"],
                "base": base,
                "task": entry["task"],
                "temperature": entry["temperature"],
                "gen_length": entry["gen_length"],
                "problem_ids": ids,
                "winners": [None if v is None else v.winner for v in comparison.verdicts],
                **comparison.to_dict(),
            }
        )
    return out


def render_judge_markdown(entries: Sequence[dict], judge_model: str) -> str:
    """The ``results.md`` section of :func:`judge_against_base`'s comparisons (B = the model, A = the base)."""
    lines = [
        f"## Approach diversity (LLM judge: {judge_model})",
        "",
        "Problems both models solved; the judge names the distinct approaches among each model's correct "
        "solutions and picks the set with more (docs/eval.md).",
        "",
        "| task | model | base | T | L | problems | model wins | base wins | ties | invalid | approaches model | approaches base |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    fmt = lambda x: "–" if x is None else f"{x:.2f}"  # noqa: E731
    for e in entries:
        lines.append(
            f"| {e['task']} | {e['model']} | {e['base']} | {e['temperature']:g} | {e['gen_length']} | "
            f"{len(e['problem_ids'])} | {e['wins_b']} | {e['wins_a']} | {e['ties']} | {e['invalid']} | "
            f"{fmt(e['mean_approaches_b'])} | {fmt(e['mean_approaches_a'])} |"
        )
    return "\n".join(lines) + "\n"
