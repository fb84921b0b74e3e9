"""trafl's d1 and ESPO reward functions against the originals' own code (transcribed in
``tests/originals_rewards.py`` with its sources), on a corpus of edge cases."""

from __future__ import annotations

import itertools

import originals_rewards as orig
import pytest

from trafl.rewards.math import d1 as ours_d1
from trafl.rewards.math import espo as ours_espo
from trafl.rewards.math.hendrycks import hendrycks_equiv, hendrycks_normal_form

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
