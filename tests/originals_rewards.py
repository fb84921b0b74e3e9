"""Transcriptions of the baselines' math reward functions, for the parity tests of
``tests/test_rewards_originals.py``. Copied from the originals with only their console printing
removed (marked ``# print removed``) and names prefixed by the repository; nothing else changed.

- d1 837888f ``diffu-grpo/reward_func.py`` l.6-79 and l.232-272, ``diffu-grpo/math500_utils.py`` l.13-227
- ESPO b5f2dac ``espo/rewards.py`` l.182-238 and l.386-413
- SPG a1c7120 ``spg/reward_func.py`` l.67-84 (its ``count_xml``; its other rewards are d1's)
"""

# ruff: noqa
import re

from math_verify import parse, verify


# ---- d1 837888f diffu-grpo/reward_func.py l.6-15 -------------------------------------------------
def d1_extract_xml_answer(text: str) -> str:
    answer = text.split("<answer>")[-1]
    answer = answer.split("</answer>")[0]
    return answer.strip()


def d1_extract_hash_answer(text: str) -> str | None:
    if "####" not in text:
        return None
    return text.split("####")[1].strip()


# ---- l.18-39 ---------------------------------------------------------------------------------------
def d1_correctness_reward_func(prompts, completions, answer, step=None, run_name=None, **kwargs) -> list[float]:
    responses = [completion[0]["content"] for completion in completions]
    extracted_responses = [d1_extract_xml_answer(r) for r in responses]
    # print removed
    return [2.0 if r == a else 0.0 for r, a in zip(extracted_responses, answer)]


# ---- l.42-79 ---------------------------------------------------------------------------------------
def d1_int_reward_func(completions, **kwargs) -> list[float]:
    responses = [completion[0]["content"] for completion in completions]
    extracted_responses = [d1_extract_xml_answer(r) for r in responses]
    return [0.5 if r.isdigit() else 0.0 for r in extracted_responses]


def d1_strict_format_reward_func(completions, **kwargs) -> list[float]:
    pattern = r"^<reasoning>\n.*?\n</reasoning>\n<answer>\n.*?\n</answer>\n$"
    responses = [completion[0]["content"] for completion in completions]
    matches = [re.match(pattern, r) for r in responses]
    return [0.5 if match else 0.0 for match in matches]


def d1_soft_format_reward_func(completions, **kwargs) -> list[float]:
    pattern = r"<reasoning>.*?</reasoning>\s*<answer>.*?</answer>"
    responses = [completion[0]["content"] for completion in completions]
    matches = [re.match(pattern, r) for r in responses]
    return [0.5 if match else 0.0 for match in matches]


def d1_count_xml(text) -> float:
    count = 0.0
    if text.count("<reasoning>\n") == 1:
        count += 0.125
    if text.count("\n</reasoning>\n") == 1:
        count += 0.125
    if text.count("\n<answer>\n") == 1:
        count += 0.125
        count -= len(text.split("\n</answer>\n")[-1]) * 0.001
    if text.count("\n</answer>") == 1:
        count += 0.125
        count -= (len(text.split("\n</answer>")[-1]) - 1) * 0.001
    return count


def d1_xmlcount_reward_func(completions, **kwargs) -> list[float]:
    contents = [completion[0]["content"] for completion in completions]
    return [d1_count_xml(c) for c in contents]


# ---- d1 837888f diffu-grpo/math500_utils.py l.13-26 ------------------------------------------------
def d1_boxed_in_answer(prompts, completions, answer, step=None, **kwargs):
    responses = [completion[0]["content"] for completion in completions]
    rewards = []
    for r in responses:
        reward = 0.0
        try:
            r = r.split("<answer>")[1].split("</answer>")[0]
            reward += 1.0
        except:
            reward += 0.0

        reward += 1.0 if "\boxed" in r else 0.5
        rewards.append(reward)
    return rewards


# ---- l.29-90 ---------------------------------------------------------------------------------------
def d1_is_equiv(str1, str2, verbose=False):
    if str1 is None and str2 is None:
        # print removed
        return True
    if str1 is None or str2 is None:
        return False

    try:
        ss1 = d1_strip_string(str1)
        ss2 = d1_strip_string(str2)
        # print removed
        return ss1 == ss2
    except Exception:
        return str1 == str2


def d1_remove_boxed(s):
    if "\\boxed " in s:
        left = "\\boxed "
        assert s[: len(left)] == left
        return s[len(left) :]

    left = "\\boxed{"

    try:
        assert s[: len(left)] == left
        assert s[-1] == "}"

        return s[len(left) : -1]
    except:
        return s


def d1_last_boxed_only_string(string):
    idx = string.rfind("\\boxed")
    if "\\boxed " in string:
        return "\\boxed " + string.split("\\boxed ")[-1].split("$")[0]
    if idx < 0:
        idx = string.rfind("\\fbox")
        if idx < 0:
            return string

    i = idx
    right_brace_idx = None
    num_left_braces_open = 0
    while i < len(string):
        if string[i] == "{":
            num_left_braces_open += 1
        if string[i] == "}":
            num_left_braces_open -= 1
            if num_left_braces_open == 0:
                right_brace_idx = i
                break
        i += 1

    if right_brace_idx is None:
        retval = None
    else:
        retval = string[idx : right_brace_idx + 1]

    return retval


# ---- l.93-227 --------------------------------------------------------------------------------------
def d1_fix_fracs(string):
    substrs = string.split("\\frac")
    new_str = substrs[0]
    if len(substrs) > 1:
        substrs = substrs[1:]
        for substr in substrs:
            new_str += "\\frac"
            if substr[0] == "{":
                new_str += substr
            else:
                try:
                    assert len(substr) >= 2
                except AssertionError:
                    return string
                a = substr[0]
                b = substr[1]
                if b != "{":
                    if len(substr) > 2:
                        post_substr = substr[2:]
                        new_str += "{" + a + "}{" + b + "}" + post_substr
                    else:
                        new_str += "{" + a + "}{" + b + "}"
                else:
                    if len(substr) > 2:
                        post_substr = substr[2:]
                        new_str += "{" + a + "}" + b + post_substr
                    else:
                        new_str += "{" + a + "}" + b
    string = new_str
    return string


def d1_fix_a_slash_b(string):
    if len(string.split("/")) != 2:
        return string
    a = string.split("/")[0]
    b = string.split("/")[1]
    try:
        a = int(a)
        b = int(b)
        assert string == "{}/{}".format(a, b)
        new_string = "\\frac{" + str(a) + "}{" + str(b) + "}"
        return new_string
    except AssertionError:
        return string


def d1_remove_right_units(string):
    # "\\text{ " only ever occurs (at least in the val set) when describing units
    if "\\text{ " in string:
        splits = string.split("\\text{ ")
        assert len(splits) == 2
        return splits[0]
    else:
        return string


def d1_fix_sqrt(string):
    if "\\sqrt" not in string:
        return string
    splits = string.split("\\sqrt")
    new_string = splits[0]
    for split in splits[1:]:
        if split[0] != "{":
            a = split[0]
            new_substr = "\\sqrt{" + a + "}" + split[1:]
        else:
            new_substr = "\\sqrt" + split
        new_string += new_substr
    return new_string


def d1_strip_string(string):
    # linebreaks
    string = string.replace("\n", "")

    # remove inverse spaces
    string = string.replace("\\!", "")

    # replace \\ with \
    string = string.replace("\\\\", "\\")

    # replace tfrac and dfrac with frac
    string = string.replace("tfrac", "frac")
    string = string.replace("dfrac", "frac")

    # remove \left and \right
    string = string.replace("\\left", "")
    string = string.replace("\\right", "")

    # Remove circ (degrees)
    string = string.replace("^{\\circ}", "")
    string = string.replace("^\\circ", "")

    # remove dollar signs
    string = string.replace("\\$", "")

    # remove units (on the right)
    string = d1_remove_right_units(string)

    # remove percentage
    string = string.replace("\\%", "")
    string = string.replace("\%", "")  # noqa: W605

    # " 0." equivalent to " ." and "{0." equivalent to "{." Alternatively, add "0" if "." is the start of the string
    string = string.replace(" .", " 0.")
    string = string.replace("{.", "{0.")
    # if empty, return empty string
    if len(string) == 0:
        return string
    if string[0] == ".":
        string = "0" + string

    # to consider: get rid of e.g. "k = " or "q = " at beginning
    if len(string.split("=")) == 2:
        if len(string.split("=")[0]) <= 2:
            string = string.split("=")[1]

    # fix sqrt3 --> sqrt{3}
    string = d1_fix_sqrt(string)

    # remove spaces
    string = string.replace(" ", "")

    # \frac1b or \frac12 --> \frac{1}{b} and \frac{1}{2}, etc. Even works with \frac1{72} (but not \frac{72}1). Also does a/b --> \\frac{a}{b}
    string = d1_fix_fracs(string)

    # manually change 0.5 --> \frac{1}{2}
    if string == "0.5":
        string = "\\frac{1}{2}"

    # NOTE: X/Y changed to \frac{X}{Y} in dataset, but in simple cases fix in case the model output is X/Y
    string = d1_fix_a_slash_b(string)

    return string


# ---- d1 837888f diffu-grpo/reward_func.py l.232-272 ------------------------------------------------
def d1_correctness_reward_func_math(prompts, completions, answer, step=None, run_name=None, **kwargs) -> list[float]:
    boxed_in_answer_rewards = d1_boxed_in_answer(prompts, completions, answer, step=step)
    responses = [completion[0]["content"] for completion in completions]
    extracted_responses = []
    answer = [d1_remove_boxed(d1_last_boxed_only_string(a)) for a in answer]
    for r in responses:
        try:
            r = d1_remove_boxed(d1_last_boxed_only_string(r))
        except:
            pass
        extracted_responses.append(r)
    # print removed
    return [2.0 if d1_is_equiv(r, a) else 0.0 for r, a in zip(extracted_responses, answer)]


def d1_boxed_and_answer_tags_format_reward(
    prompts, completions, answer, step=None, run_name=None, **kwargs
) -> list[float]:
    boxed_in_answer_rewards = d1_boxed_in_answer(prompts, completions, answer, step=step)
    rewards = [b * 0.5 for b in boxed_in_answer_rewards]
    return rewards


# ---- ESPO b5f2dac espo/rewards.py l.182-238 -------------------------------------------------------
def espo_extract_hash_answer(text: str) -> str | None:
    if "####" not in text:
        return None
    return text.split("####")[1].strip()


def espo_extract_answer(text: str) -> str:
    match_cot = re.search(r"The answer is (\-?[0-9\.,]+).", text)
    if match_cot:
        return match_cot.group(1).strip()

    match_hash = re.search(r"#### (\-?[0-9\.,]+)", text)
    if match_hash:
        return match_hash.group(1).strip()

    fallback_match = re.findall(r"(\-?[0-9]+)", text)
    if fallback_match:
        return fallback_match[-1].strip()

    return ""


def espo_correctness_reward_func_gsm8k(prompts, completions, answer, step=None, run_name=None, **kwargs) -> list[float]:
    responses = [completion[0]["content"] for completion in completions]
    extracted_responses = [espo_extract_answer(r) for r in responses]
    # print removed
    return [1.0 if r == a else 0.0 for r, a in zip(extracted_responses, answer)]


# ---- l.386-413 -------------------------------------------------------------------------------------
def espo_correctness_reward_func_math(prompts, completions, answer, step=None, run_name=None, **kwargs) -> list[float]:
    responses = [completion[0]["content"] for completion in completions]
    parsed_responses = []
    for r in responses:
        parsed_responses.append(parse(r))
    parsed_answer = [parse(a) for a in answer]
    # print removed
    return [1.0 if verify(r, a) else 0.0 for r, a in zip(parsed_responses, parsed_answer)]


# ---- SPG a1c7120 spg/reward_func.py l.67-84 (d1's count_xml with l.75 changed) --------------------


def spg_count_xml(text) -> float:
    count = 0.0
    if text.count("<reasoning>\n") == 1:
        count += 0.125
    if text.count("\n</reasoning>\n") == 1:
        count += 0.125
    if text.count("\n<answer>\n") == 1:
        count += 0.125
        count -= len(text.split("\n<answer>\n")[-1]) * 0.001
    if text.count("\n</answer>") == 1:
        count += 0.125
        count -= (len(text.split("\n</answer>")[-1]) - 1) * 0.001
    return count


def spg_xmlcount_reward_func(completions, **kwargs) -> list[float]:
    contents = [completion[0]["content"] for completion in completions]
    return [spg_count_xml(c) for c in contents]
