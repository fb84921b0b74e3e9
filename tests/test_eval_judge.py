"""The LLM-judge diversity protocol with a scripted judge; the two real judges' plumbing."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from trafl.errors import ConfigError, DataError
from trafl.eval.judge import (
    HFJudge,
    OpenAIJudge,
    Verdict,
    compare_diversity,
    correct_solutions,
    judge_prompt,
    parse_verdict,
)


class ScriptedJudge:
    """Reads the prompt like a careful judge: an approach is a distinct solution text."""

    def __init__(self):
        self.prompts = []

    def complete(self, prompt: str) -> str:
        self.prompts.append(prompt)
        sets = re.split(r"### Set B", prompt)
        a = set(re.findall(r"\[A\d+\]\n(.*)", sets[0]))
        b = set(re.findall(r"\[B\d+\]\n(.*)", sets[1]))
        winner = "A" if len(a) > len(b) else "B" if len(b) > len(a) else "TIE"
        return (
            "Thinking...\n```json\n"
            + json.dumps({"approaches_a": sorted(a), "approaches_b": sorted(b), "winner": winner})
            + "\n```"
        )


def test_verdicts_map_back_through_the_random_order():
    problems = [f"problem {i}" for i in range(12)]
    diverse = [["use algebra", "draw a picture", "guess and check"]] * 12
    locked = [["use algebra", "use algebra", "use algebra"]] * 12
    judge = ScriptedJudge()
    result = compare_diversity(judge, problems, diverse, locked, seed=1)
    assert (result.wins_a, result.wins_b, result.ties, result.invalid) == (12, 0, 0, 0)
    # the order really was randomised: the diverse set was shown second sometimes
    shown_second = sum("[B2]\ndraw a picture" in p for p in judge.prompts)
    assert 0 < shown_second < 12
    summary = result.to_dict()
    assert summary["mean_approaches_a"] == 3 and summary["mean_approaches_b"] == 1
    reverse = compare_diversity(ScriptedJudge(), problems, locked, diverse, seed=1)
    assert (reverse.wins_a, reverse.wins_b) == (0, 12)
    tie = compare_diversity(ScriptedJudge(), problems[:2], locked[:2], locked[:2])
    assert tie.ties == 2


def test_unusable_answers_are_counted_not_fatal():
    class Rambler:
        def complete(self, prompt):
            return "I think A is better."

    result = compare_diversity(Rambler(), ["p"], [["x"]], [["y"]])
    assert result.invalid == 1 and result.to_dict()["mean_approaches_a"] is None
    with pytest.raises(ConfigError, match="one solution set per problem"):
        compare_diversity(Rambler(), ["p", "q"], [["x"]], [["y"]])


def test_parse_verdict():
    assert parse_verdict('{"winner": "tie"}') == Verdict([], [], "TIE")
    v = parse_verdict('first {"a": 1} then {"approaches_a": ["x"], "approaches_b": [], "winner": "B"} done')
    assert v.winner == "B" and v.approaches_a == ["x"]
    with pytest.raises(DataError, match="expected one of"):
        parse_verdict('{"winner": "both"}')
    with pytest.raises(DataError, match="no JSON object"):
        parse_verdict("winner: A")
    with pytest.raises(DataError, match="must be a list"):
        parse_verdict('{"winner": "A", "approaches_a": "x"}')


def test_prompt_and_correct_solutions():
    prompt = judge_prompt("What is 2+2?", ["4 by counting"], [])
    assert "What is 2+2?" in prompt and "[A1]\n4 by counting" in prompt and "(no solutions)" in prompt
    assert '"winner"' in prompt
    records = [{"problem_id": "p0", "completions": ["a", "b", "c"], "correct": [True, False, True]}]
    assert correct_solutions(records) == {"p0": ["a", "c"]}


def test_openai_compatible_judge_against_a_local_stub_server():
    seen = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            seen["path"] = self.path
            seen["auth"] = self.headers.get("Authorization")
            seen["body"] = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            reply = {
                "choices": [{"message": {"content": '{"approaches_a": ["x"], "approaches_b": [], "winner": "A"}'}}]
            }
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    judge = OpenAIJudge("judge-model", base_url=f"http://127.0.0.1:{server.server_port}/v1", api_key="k", timeout=10)
    result = compare_diversity(judge, ["p"], [["s"]], [["t"]], seed=0)
    thread.join(timeout=10)
    server.server_close()
    assert seen["path"] == "/v1/chat/completions" and seen["auth"] == "Bearer k"
    assert seen["body"]["model"] == "judge-model" and seen["body"]["temperature"] == 0.0
    assert result.verdicts[0] is not None


def test_hf_judge_runs_a_causal_lm():
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from trafl.models import build_char_tokenizer

    tok = build_char_tokenizer(list('abcdefghijklmnopqrstuvwxyz {}":,[]ABT'))
    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tok),
            n_positions=4096,
            n_embd=16,
            n_layer=1,
            n_head=2,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        )
    )
    judge = HFJudge("unused", model=model, tokenizer=tok, max_new_tokens=4)
    text = judge.complete("which set wins")
    assert isinstance(text, str) and len(text) <= 4


# --- trafl eval --judge-*: every model against the base, from the generation caches ----------------


def _fake_models(tmp_path, monkeypatch):
    """Two model directories whose 'generators' are scripted: the base always answers 0 (one
    approach), the tuned model spreads its answers (several)."""
    from pathlib import Path

    from test_eval_runner import FakeGenerator

    from trafl.eval.generation import SamplerGenerator

    gens = {"base": FakeGenerator(temperature_scale=0), "tuned": FakeGenerator(temperature_scale=6)}
    for name in gens:
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
    monkeypatch.setattr(
        SamplerGenerator, "from_pretrained", classmethod(lambda cls, path, settings, **kw: gens[Path(path).name])
    )
    return ["--model", f"base={tmp_path / 'base'}", "--model", f"tuned={tmp_path / 'tuned'}"]


def _eval_args(tmp_path, models, *extra):
    return [
        "eval",
        *models,
        "--task",
        "test_eval_runner:MultiAnswerTask",
        "--n",
        "6",
        "--temperatures",
        "0.9",
        "--gen-lengths",
        "32",
        "--base",
        "base",
        "--out",
        str(tmp_path / "out"),
        "--no-plots",
        "--quiet",
        *extra,
    ]


def test_cli_judge_compares_each_model_with_the_base(tmp_path, monkeypatch, capsys):
    from trafl.cli import main
    from trafl.eval import judge as judge_lib
    from trafl.eval.cache import Cell, cache_path
    from trafl.utils.io import read_jsonl

    models = _fake_models(tmp_path, monkeypatch)
    made = {}

    def fake_make_judge(model, **kw):
        made.update(model=model, **kw)
        return ScriptedJudge()

    monkeypatch.setattr(judge_lib, "make_judge", fake_make_judge)
    assert (
        main(
            _eval_args(
                tmp_path,
                models,
                "--judge-model",
                "my-judge",
                "--judge-url",
                "http://localhost:1/v1",
                "--judge-max-tokens",
                "64",
                "--seed",
                "2",
            )
        )
        == 0
    )
    assert made["model"] == "my-judge" and made["url"] == "http://localhost:1/v1" and made["max_tokens"] == 64
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["judge"]["model"] == "my-judge"
    (comp,) = results["judge"]["comparisons"]  # one non-base model, one cell
    assert (comp["model"], comp["base"], comp["temperature"], comp["gen_length"]) == ("tuned", "base", 0.9, 32)
    # the judged problems: those both models solved, from the caches, in evaluation order
    sols = {
        m: judge_lib.correct_solutions(read_jsonl(cache_path(tmp_path / "out", Cell(m, comp["task"], 0.9, 32)))[1:])
        for m in ("base", "tuned")
    }
    both = [p for p in results["results"][0]["problem_ids"] if sols["base"].get(p) and sols["tuned"].get(p)]
    assert comp["problem_ids"] == both and len(both) >= 2
    # the base's correct answers are all "-> 0": one approach, so it never wins; the tuned model wins
    # exactly where it has more distinct correct texts
    expected = ["B" if len(set(sols["tuned"][p])) > 1 else "TIE" for p in both]
    assert comp["winners"] == expected and comp["wins_a"] == 0 and comp["wins_b"] == expected.count("B") >= 1
    assert comp["mean_approaches_a"] == 1.0
    report = (tmp_path / "out" / "results.md").read_text()
    assert "## Approach diversity (LLM judge: my-judge)" in report and "| tuned | base | 0.9 | 32 |" in report


def test_cli_judge_runs_a_local_hugging_face_model(tmp_path, monkeypatch, capsys):
    """The default judge loads a causal LM from a directory (no network): a tiny random GPT-2 whose
    answers hold no verdict, so every judged problem counts as invalid."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from trafl.cli import main
    from trafl.models import build_char_tokenizer

    tok = build_char_tokenizer(list("abcdefghijklmnopqrstuvwxyz0123456789 "))
    torch.manual_seed(0)
    GPT2LMHeadModel(
        GPT2Config(vocab_size=len(tok), n_positions=4096, n_embd=16, n_layer=1, n_head=2, eos_token_id=tok.eos_token_id)
    ).save_pretrained(tmp_path / "judge")
    tok.save_pretrained(tmp_path / "judge")
    models = _fake_models(tmp_path, monkeypatch)
    assert (
        main(
            _eval_args(
                tmp_path,
                models,
                "--judge-model",
                str(tmp_path / "judge"),
                "--judge-max-tokens",
                "3",
                "--judge-limit",
                "2",
            )
        )
        == 0
    )
    (comp,) = json.loads((tmp_path / "out" / "results.json").read_text())["judge"]["comparisons"]
    assert len(comp["problem_ids"]) == 2 and comp["invalid"] == 2 and comp["winners"] == [None, None]
