"""Synthetic multi-answer tasks: exact verifiers (checked by enumeration), disjoint splits, many
answers per prompt, uniform SFT data, short prompts/completions over a small alphabet."""

from __future__ import annotations

import itertools
import json
from collections import Counter

import pytest

from trafl.errors import DataError
from trafl.tasks import get_task
from trafl.tasks.synthetic import Countdown, SubsetSum, evaluate


@pytest.mark.parametrize("expr", ["1", "2+3", "2*3+5", "9-2*3", "2*3*4-1", "1-2-3", "8-1+1*2", "5*5-5*5"])
def test_evaluate_matches_python(expr):
    assert evaluate(expr) == eval(expr)  # noqa: S307 - trusted test input


def test_countdown_verifier_agrees_with_enumeration():
    task = Countdown(max_terms=3)
    row = {"prompt": "11=[235]", "digits": "235", "target": 11}
    sols = set(task.solutions(row))
    # every expression over all ten digits with up to 3 terms: accepted iff in the solution set
    for n in (1, 2, 3):
        for operands in itertools.product("0123456789", repeat=n):
            for ops in itertools.product("+-*", repeat=n - 1):
                expr = operands[0] + "".join(o + d for o, d in zip(ops, operands[1:]))
                assert task.verify(expr, row) == (expr in sols), expr
    assert {"2*3+5", "5+3+3", "3*2+5"} <= sols and "2+3+3+3" not in sols  # 4 terms > max_terms
    for bad in ("", "11", "2*3+5 ", "(2*3)+5", "2**3", "5+6"):
        assert not task.verify(bad, row)
    assert task.is_correct(" 2*3+5\n", row)


def test_subset_sum_verifier_agrees_with_enumeration():
    task = SubsetSum()
    row = {"prompt": "15=?+?+?", "k": 3, "target": 15}
    sols = task.solutions(row)
    assert len(sols) == 15 and sols == sorted(sols)
    keys = set()
    for digits in itertools.product("0123456789", repeat=3):
        expr = "+".join(digits)
        ok = sum(map(int, digits)) == 15
        assert task.verify(expr, row) == ok
        if ok:
            keys.add(task.answer_key(expr, row))
    assert keys == set(sols)  # answer identity = the multiset, written sorted
    assert not task.verify("7+8", row) and not task.verify("5+5+5+0", row) and not task.verify("a+b+c", row)


@pytest.mark.parametrize("name", ["countdown", "subset_sum"])
def test_splits_are_disjoint_seeded_and_rich(name):
    task = get_task(name)
    train, test = task.load("train"), task.load("test")
    assert len(train) == task.num_train and len(test) == task.num_eval
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in test}
    assert train == get_task(name).load("train")  # deterministic
    assert [r["prompt"] for r in get_task(name, seed=1).load("test")] != [r["prompt"] for r in test]
    for row in train + test:
        sols = task.solutions(row)
        assert row["num_solutions"] == len(sols) >= 5
        assert task.verify(row["answer"], row)
        assert len(row["prompt"]) <= 16 and max(len(s) for s in sols) <= 12
        assert set(row["prompt"] + "".join(sols)) <= set(task.alphabet)
    assert sorted(r["num_solutions"] for r in train)[len(train) // 2] >= 10  # median: dozens-ish
    with pytest.raises(DataError, match="unknown split"):
        task.load("validation")


def test_sft_data_is_uniform_over_correct_answers(tmp_path):
    task = SubsetSum()
    row = {"prompt": "6=?+?+?", "k": 3, "target": 6}
    sols = task.solutions(row)  # 7 multisets
    pairs = task.sft_pairs([row], samples_per_prompt=7000, seed=3)
    counts = Counter(p["completion"] for p in pairs)
    assert set(counts) == set(sols)
    # each of the 7 answers has probability 1/7: 1000 expected, sd ~ 29; allow 5 sd
    assert all(abs(c - 1000) < 150 for c in counts.values()), counts
    assert all(p["prompt"] == row["prompt"] for p in pairs)
    path = tmp_path / "sft.jsonl"
    n = get_task("countdown").write_sft(path, samples_per_prompt=2)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert n == len(lines) == 2 * get_task("countdown").num_train
    cd = get_task("countdown")
    by_prompt = {r["prompt"]: r for r in cd.load("train")}
    assert all(cd.is_correct(p["completion"], by_prompt[p["prompt"]]) for p in lines)


def test_rewards_and_local_path_roundtrip(tmp_path):
    task = get_task("subset_sum")
    rows = task.load("test")[:2]
    prompts = [r["prompt"] for r in rows]
    columns = {k: [r[k] for r in rows] for k in rows[0] if k != "prompt"}
    good = [r["answer"] for r in rows]
    correct, fmt = task.reward_functions()
    assert correct(prompts, good, **columns) == [1.0, 1.0]
    assert correct(prompts, ["9+9+9+9+9", "x"], **columns) == [0.0, 0.0]
    assert fmt(prompts, ["1+2", "hello"], **columns) == [1.0, 0.0]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert task.load(path=str(path)) == rows
    path.write_text(json.dumps({"prompt": "x"}) + "\n")
    with pytest.raises(DataError, match="need field"):
        task.load(path=str(path))


# -- count_range: the long-answer task ------------------------------------------------------------
def test_count_range_answer_reward_and_partial_credit():
    from trafl.tasks.synthetic.count_range import answer_length, count_answer, partial_credit

    task = get_task("count_range")
    row = {"prompt": "198-203:", "a": 198, "b": 203}
    answer = "198 199 200 201 202 203"
    assert count_answer(198, 203) == answer and len(answer) == answer_length(6) == 23
    assert task.solutions(row) == [answer]
    assert task.is_correct(answer + " \n", row)
    for bad in (
        "",
        answer + " 204",
        "198 199 200 201 202",
        "198 199 200 201 202 203 ",
        "198 199 201 201 202 203",
        "198 199 200 201 202 2O3",
    ):
        assert not task.verify(bad, row), bad
    columns = {"a": [198, 198, 198, 198], "b": [203, 203, 203, 203]}
    completions = [answer, "198 199 201 201 202", answer + " 204 205 206", "nonsense"]
    correct, fmt, partial = task.reward_functions()
    assert correct([row["prompt"]] * 4, completions, **columns) == [1.0, 0.0, 0.0, 0.0]
    assert fmt([row["prompt"]] * 4, completions, **columns) == [1.0, 1.0, 1.0, 0.0]
    assert partial([row["prompt"]] * 4, completions, **columns) == [1.0, 4 / 6, 6 / 9, 0.0]
    assert partial_credit("199 200", 198, 203) == 0.0  # shifted: no number at its place
    from trafl.tasks.synthetic.count_range import step_share

    assert step_share(answer) == 1.0 and step_share("199 200") == 1.0  # the counting rule, wherever it starts
    assert step_share("198 199 190 191") == 2 / 3 and step_share("101 102 10 103") == 1 / 3
    assert step_share("") == step_share("198") == 0.0


def test_count_range_miss_kind_says_where_a_completion_leaves_the_answer():
    from trafl.tasks.synthetic.count_range import MISS_KINDS, miss_kind

    answer = "198 199 200 201 202 203"
    cases = {
        answer: "exact",
        " " + answer + " \n": "exact",
        answer + " 204": "ran_past",
        answer + " 204 205 206": "ran_past",
        answer + "0": "wrong",  # a garbled last number, not a count that ran on
        "198 199 200": "stopped_early",
        "198": "stopped_early",
        "198 199 20": "wrong",  # cut inside a number
        "": "wrong",
        "198 199 201 202 203": "wrong",
        "199 200 201 202 203": "wrong",
    }
    for completion, kind in cases.items():
        assert miss_kind(completion, 198, 203) == kind, completion
        assert kind in MISS_KINDS


def test_count_range_splits_are_disjoint_deterministic_and_stable_across_lengths():
    task = get_task("count_range", num_train=3000)
    splits = {name: task.load(name) for name in ("train", "validation", "test")}
    assert [len(splits[n]) for n in ("train", "validation", "test")] == [3000, 200, 200]
    prompts = {n: {r["prompt"] for r in rows} for n, rows in splits.items()}
    assert not (
        prompts["train"] & prompts["test"]
        or prompts["train"] & prompts["validation"]
        or prompts["validation"] & prompts["test"]
    )
    assert splits["test"] == get_task("count_range").load("test")  # deterministic, independent of num_train
    assert [r["prompt"] for r in get_task("count_range", seed=1).load("test")] != [r["prompt"] for r in splits["test"]]
    for row in splits["train"][:200] + splits["test"]:
        n = row["b"] - row["a"] + 1
        assert 51 <= n <= 120 and 100 <= row["a"] <= row["b"] <= 999
        assert row["prompt"] == f"{row['a']}-{row['b']}:" and task.verify(row["answer"], row)
        assert 203 <= len(row["answer"]) <= 479 and set(row["prompt"] + row["answer"]) <= set(task.alphabet)
    # the short-answer family (fits a 256-token canvas) keeps every puzzle in its split
    short = get_task("count_range", max_count=63)
    short_test = short.load("test")
    assert all(len(r["answer"]) + 1 <= 256 for r in short_test)
    assert [r for r in splits["test"] if r["b"] - r["a"] + 1 <= 63] == short_test[
        : len([r for r in splits["test"] if r["b"] - r["a"] + 1 <= 63])
    ]
    all_train = {r["prompt"] for r in get_task("count_range").load("train")}
    assert not {r["prompt"] for r in short_test} & all_train
    with pytest.raises(DataError, match="min_count"):
        get_task("count_range", min_count=10, max_count=5)


def test_count_range_sft_pairs_are_the_answers(tmp_path):
    task = get_task("count_range", num_train=50)
    path = tmp_path / "cr.jsonl"
    assert task.write_sft(path, samples_per_prompt=1) == 50
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    by_prompt = {r["prompt"]: r for r in task.load("train")}
    assert all(task.is_correct(p["completion"], by_prompt[p["prompt"]]) for p in lines)
