"""trafl's d1 and ESPO reward functions against the originals' own code (transcribed in
``tests/originals_rewards.py`` with its sources), on a corpus of edge cases; and on real rows of
``../shared/data`` (skipped when absent): a completion written from the gold answer in each
template's format scores the maximum of each reward set."""

from __future__ import annotations

import itertools
from pathlib import Path

import originals_rewards as orig
import pytest

from trafl.rewards.math import d1 as ours_d1
from trafl.rewards.math import espo as ours_espo
from trafl.rewards.math import spg as ours_spg
from trafl.rewards.math.hendrycks import hendrycks_equiv, hendrycks_normal_form
from trafl.tasks import get_task

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"benchmark copies not found at {DATA}")

GOOD = "<reasoning>\nadd 48 and 24\n</reasoning>\n<answer>\n72\n</answer>\n"
#: completions that probe every branch of d1's GSM8K rewards and ESPO's GSM8K grader
GSM8K_COMPLETIONS = [
    GOOD,
    GOOD[:-1],  # no newline after </answer>
    GOOD + "\n",  # two
    GOOD + "more text after the tags",
    GOOD[:-1] + " trailing",
    "<reasoning>\nline one\nline two\n</reasoning>\n<answer>\n72\n</answer>\n",  # multi-line reasoning
    "<reasoning>r</reasoning> <answer>72</answer>",  # one line, no newlines
    "<reasoning>r</reasoning>\n\n<answer>72</answer> tail",
    " <reasoning>\nr\n</reasoning>\n<answer>\n72\n</answer>\n",  # leading space
    "<answer>\n72\n</answer>",  # no reasoning
    "<reasoning>\nr\n</reasoning>\n<answer>\n72",  # unclosed answer
    "<reasoning>\nr\n</reasoning>\n<answer>\n7.5\n</answer>\n",
    "<reasoning>\nr\n</reasoning>\n<answer>\n-3\n</answer>\n",
    "<reasoning>\nr\n</reasoning>\n<answer>\n1,080\n</answer>\n",
    "<reasoning>\nr\n</reasoning>\n<answer>\n\\boxed{72}\n</answer>\n",
    "<reasoning>\nr\n</reasoning>\n<answer>\n²\n</answer>\n",  # a unicode digit
    "<answer>1</answer> and again <answer>72</answer>",
    "<reasoning>\nr\n</reasoning>\n<reasoning>\nr\n</reasoning>\n<answer>\n72\n</answer>\n",
    "The answer is 72.",
    "The answer is 72",  # ESPO's regex then reads "7" (its trailing '.' takes the last digit)
    "The answer is 1,080. Done",
    "The answer is -3.5 and that is it",
    "#### 72",
    "So 48 + 24 = 72.\n#### 72",
    "the total is \\boxed{18.5}",
    "the total is \\boxed{1,080}",
    "First 5, then 7",
    "no number at all",
    "",
]
GSM8K_SOLUTIONS = ["48 + 24 = 72\n#### 72", "#### 7.5", "#### -3", "x\n#### 1,080", "#### 7", "#### 5", "no hashes"]

#: completions and solutions for d1's MATH rewards (normaliser branches, box extraction edge cases)
MATH_COMPLETIONS = [
    "so \\boxed{\\frac{1}{2}}",
    "\\boxed{0.5}",
    "\\boxed{.5}",
    "\\boxed 5$ then",
    "\\boxed{\\dfrac12}",
    "\\boxed{\\frac1{2}}",
    "\\boxed{1/2}",
    "\\boxed{01/2}",
    "\\boxed{x/2}",  # the original raises in the normaliser: raw comparison
    "\\boxed{k = 3}",
    "x = \\boxed{3}",
    "<answer>\\boxed{3}</answer>",
    "<answer>3</answer>",
    "<answer>\n3",
    "\\fbox{3}",
    "unbalanced \\boxed{3",
    "no box, answer 3",
    "\\boxed{3\\text{ cm}}",
    "\\boxed{\\text{ a}\\text{ b}}",
    "\\boxed{\\sqrt2}",
    "\\boxed{2\\sqrt}",
    "\\boxed{\\frac}",
    "\\boxed{10\\%}",
    "\\boxed{90^\\circ}",
    "\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}",
    "\\boxed{}",
    "first \\boxed 4$ and \\boxed{6}",
    "\\boxed{\\boxed{3}}",
    "text \\boxed 7",
    "<answer>\\boxed{\\frac{1}{2}}</answer> then \\boxed{2}",
]
MATH_SOLUTIONS = [
    "Half: $\\boxed{\\frac{1}{2}}$.",
    "So $\\boxed{3}$.",
    "Polar: $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.$",
    "$\\boxed{90^\\circ}$",
    "\\boxed 5",
    "\\boxed{x/2}",
    "\\boxed{10\\%}",
]


def _chat(texts):
    return [[{"role": "assistant", "content": t}] for t in texts]


def test_d1_gsm8k_rewards_match_the_original():
    comps = GSM8K_COMPLETIONS
    for fn, original in (
        (ours_d1.d1_xmlcount_reward, orig.d1_xmlcount_reward_func),
        (ours_d1.d1_soft_format_reward, orig.d1_soft_format_reward_func),
        (ours_d1.d1_strict_format_reward, orig.d1_strict_format_reward_func),
        (ours_d1.d1_integer_reward, orig.d1_int_reward_func),
    ):
        assert fn([""] * len(comps), comps) == original(_chat(comps)), fn.__name__
        assert fn([""] * len(comps), _chat(comps)) == original(_chat(comps))  # TRL's chat form too
    pairs = list(itertools.product(comps, GSM8K_SOLUTIONS))
    c, s = [p[0] for p in pairs], [p[1] for p in pairs]
    want = orig.d1_correctness_reward_func(
        [[{"content": "q"}]], _chat(c), answer=[orig.d1_extract_hash_answer(x) for x in s]
    )
    assert ours_d1.d1_gsm8k_correctness_reward([""] * len(c), c, solution=s) == want
    # the corpus reaches every value of every reward (a parity on constant functions proves nothing)
    assert set(want) == {0.0, 2.0}
    assert {v for v in orig.d1_strict_format_reward_func(_chat(comps))} == {0.0, 0.5}
    assert {v for v in orig.d1_soft_format_reward_func(_chat(comps))} == {0.0, 0.5}
    assert {v for v in orig.d1_int_reward_func(_chat(comps))} == {0.0, 0.5}
    assert len(set(orig.d1_xmlcount_reward_func(_chat(comps)))) >= 6


def test_spg_gsm8k_rewards_match_the_original():
    """SPG's xmlcount matches its code (d1's with one line changed) and differs from d1's on the corpus;
    ``rewards: spg`` is d1's set with it in xmlcount's place, on GSM8K only."""
    comps = GSM8K_COMPLETIONS
    ours = ours_spg.spg_xmlcount_reward([""] * len(comps), comps)
    assert ours == orig.spg_xmlcount_reward_func(_chat(comps))
    assert ours_spg.spg_xmlcount_reward([""] * len(comps), _chat(comps)) == ours
    assert ours != orig.d1_xmlcount_reward_func(_chat(comps)) and len(set(ours)) >= 6
    spg, d1 = get_task("gsm8k", rewards="spg"), get_task("gsm8k", rewards="d1")
    assert spg.reward_functions()[1:] == d1.reward_functions()[1:]
    assert spg.reward_functions()[0] is ours_spg.spg_xmlcount_reward
    assert spg.default_reward_weights() == d1.default_reward_weights()
    m_spg, m_d1 = get_task("math", rewards="spg"), get_task("math", rewards="d1")
    assert (
        m_spg.reward_functions() == m_d1.reward_functions()
        and m_spg.default_reward_weights() == m_d1.default_reward_weights()
    )


def test_d1_math_rewards_match_the_original():
    pairs = list(itertools.product(MATH_COMPLETIONS, MATH_SOLUTIONS))
    c, s = [p[0] for p in pairs], [p[1] for p in pairs]
    want = orig.d1_correctness_reward_func_math([[{"content": "q"}]], _chat(c), answer=s)
    assert ours_d1.d1_math_correctness_reward([""] * len(c), c, solution=s) == want
    assert sum(v == 2.0 for v in want) >= 10
    fmt = orig.d1_boxed_and_answer_tags_format_reward(
        [""], _chat(MATH_COMPLETIONS), answer=[""] * len(MATH_COMPLETIONS)
    )
    assert ours_d1.d1_answer_tag_format_reward([""], MATH_COMPLETIONS) == fmt
    assert set(fmt) == {0.25, 0.75}  # d1's box test never fires (module docstring of trafl.rewards.math.d1)
    # ... except on a completion that holds a backspace character, which decoding never produces
    odd = ["<answer>\boxed{3}</answer>"]
    assert (
        ours_d1.d1_answer_tag_format_reward([""], odd)
        == orig.d1_boxed_and_answer_tags_format_reward([""], _chat(odd), [""])
        == [1.0]
    )


@pytest.mark.parametrize("text", [b for a in MATH_COMPLETIONS + MATH_SOLUTIONS for b in (a, a.replace("\\boxed", ""))])
def test_math_normaliser_matches_hendrycks(text):
    try:
        want = orig.d1_strip_string(text)
    except Exception:
        want = None
    try:
        got = hendrycks_normal_form(text)
    except ValueError:
        got = None
    assert got == want
    assert hendrycks_equiv(text, "3") == orig.d1_is_equiv(text, "3")


def test_espo_gsm8k_reward_matches_the_original():
    pairs = list(itertools.product(GSM8K_COMPLETIONS, GSM8K_SOLUTIONS))
    c, s = [p[0] for p in pairs], [p[1] for p in pairs]
    want = orig.espo_correctness_reward_func_gsm8k(
        [[{"content": "q"}]], _chat(c), answer=[orig.espo_extract_hash_answer(x) for x in s]
    )
    assert ours_espo.espo_gsm8k_correctness_reward([""] * len(c), c, solution=s) == want
    assert sum(want) >= 8
    assert ours_espo.espo_gsm8k_answer("The answer is 72") == "7"  # the original's quirk, kept


def test_espo_math_reward_matches_the_original():
    comps = ["so \\boxed{\\frac{1}{2}}", "\\boxed{0.5}", "\\boxed{3}", "$x = 3$", "no answer", "\\boxed{(3, \\pi/2)}"]
    sols = MATH_SOLUTIONS[:3]
    pairs = list(itertools.product(comps, sols))
    c, s = [p[0] for p in pairs], [p[1] for p in pairs]
    want = orig.espo_correctness_reward_func_math([[{"content": "q"}]], _chat(c), answer=s)
    assert ours_espo.espo_math_correctness_reward([""] * len(c), c, solution=s) == want
    assert 3 <= sum(want) < len(want)


# --- real rows: a gold completion in each template's format scores each reward set's maximum -------------------


def _total(task, completion, row):
    columns = {k: [v] for k, v in row.items() if k != "prompt"}
    values = [fn([row["prompt"]], [completion], **columns)[0] for fn in task.reward_functions()]
    return sum(w * v for w, v in zip(task.default_reward_weights(), values))


def _d1_completion(reasoning: str, answer: str) -> str:
    """d1's requested layout, one line of reasoning (its format rewards' ``.`` stops at newlines)."""
    return f"<reasoning>\n{' '.join(reasoning.split())}\n</reasoning>\n<answer>\n{answer}\n</answer>\n"


@pytest.mark.data
@needs_data
def test_gsm8k_gold_completions_score_each_sets_maximum():
    gsm = {s: get_task("gsm8k", rewards=s) for s in ("default", "d1", "espo")}
    rows = gsm["d1"].load("train", path=str(DATA / "gsm8k/train.jsonl"))
    assert len(rows) == 7473
    short = {"default": [], "d1": [], "espo": []}
    for row in rows:
        reasoning, gold = row["solution"].split("####")[0], row["solution"].split("####")[1].strip()
        if _total(gsm["default"], f"{reasoning}\nThe final answer is \\boxed{{{gold}}}.", row) != 1.0:
            short["default"].append(row["answer"])
        # d1's maximum is 3.5: xmlcount 0.5 + strict 0.5 + integer 0.5 + correctness 2.0. Its soft format
        # reward cannot pay at the same time: its '.' stops at newlines, and d1's format puts the
        # reasoning on lines of its own. The integer reward cannot pay a reference that is not all
        # digits (1,080 or -3): 3.0 there
        best = 3.5 if gold.isdigit() else 3.0
        if _total(gsm["d1"], _d1_completion(reasoning, gold), row) != best:
            short["d1"].append(gold)
        # ESPO asks for \boxed{} but grades "The answer is N." first: written that way, every gold passes
        if _total(gsm["espo"], f"{reasoning}\nThe answer is {gold}.", row) != 1.0:
            short["espo"].append(gold)
    assert short == {"default": [], "d1": [], "espo": []}
    # ESPO's grader on its own \boxed{} format misses exactly the references with a comma or a decimal point
    golds = [r["solution"].split("####")[1].strip() for r in rows]
    boxed_misses = [g for g, r in zip(golds, rows) if _total(gsm["espo"], f"so \\boxed{{{g}}}", r) != 1.0]
    assert boxed_misses == [g for g in golds if "," in g or "." in g] and len(boxed_misses) >= 79


@pytest.mark.data
@needs_data
@pytest.mark.parametrize(
    "task_name, source, rel", [("math", "lighteval", "math/train.jsonl"), ("math", "prm800k", "math500/test.jsonl")]
)
def test_math_gold_completions_score_each_sets_maximum(task_name, source, rel):
    sets = {s: get_task(task_name, source=source, rewards=s) for s in ("default", "d1", "espo")}
    rows = sets["d1"].load("train", path=str(DATA / rel))
    rows = rows[:: max(1, len(rows) // 400)]  # math-verify is slow: every ~19th training row, all of MATH-500
    short = {"default": [], "d1": [], "espo": []}
    for row in rows:
        boxed = f"\\boxed{{{row['answer']}}}"
        if _total(sets["default"], f"Work.\nThe final answer is {boxed}.", row) != 1.0:
            short["default"].append(row["id"])
        # ESPO's template is trafl's default; its grader parses the whole reference solution, whose last box
        # is not always the final answer (two boxes, or boxes of a case analysis): the gold completion for it
        # is the reference solution itself
        if _total(sets["espo"], row["solution"], row) != 1.0:
            short["espo"].append(row["id"])
        if _total(sets["d1"], _d1_completion("work", boxed), row) != 2.75:  # 2.0 + 0.5 * (1 + 0.5)
            short["d1"].append(row["id"])
    assert len(rows) >= 400 and short == {"default": [], "d1": [], "espo": []}
