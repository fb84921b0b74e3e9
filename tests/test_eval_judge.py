"""The LLM-judge diversity protocol with a scripted judge; the two real judges' plumbing."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from trafl.errors import ConfigError, DataError
from trafl.eval.judge import (
    HFJudge, OpenAIJudge, Verdict, compare_diversity, correct_solutions, judge_prompt, parse_verdict,
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
        return "Thinking...\n```json\n" + json.dumps({"approaches_a": sorted(a), "approaches_b": sorted(b),
                                                      "winner": winner}) + "\n```"


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
            reply = {"choices": [{"message": {"content": '{"approaches_a": ["x"], "approaches_b": [], "winner": "A"}'}}]}
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

    tok = build_char_tokenizer(list("abcdefghijklmnopqrstuvwxyz {}\":,[]ABT"))
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=4096, n_embd=16, n_layer=1, n_head=2,
                                       eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
    judge = HFJudge("unused", model=model, tokenizer=tok, max_new_tokens=4)
    text = judge.complete("which set wins")
    assert isinstance(text, str) and len(text) <= 4
