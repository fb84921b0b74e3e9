"""Finding the program in a model's completion.

Order of preference:
1. the last fenced block tagged as Python (```python / ```py / ```python3);
2. otherwise the last fenced block of any language;
3. otherwise the completion itself from its first line that starts Python code (``def``,
   ``class``, ``import``, ``from``, ``@``), i.e. a bare function after some prose;
4. otherwise the whole completion.

An unterminated final fence (a completion cut at the length limit) counts as a block.
For HumanEval-style prompts, where the model continues a function signature, use
:func:`complete_function`.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_PY_TAGS = {"python", "py", "python3", "py3"}
_CODE_START = re.compile(r"^(?:def |class |import |from |@|async def )", re.MULTILINE)


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """``(language, body)`` of every fenced block, in order."""
    return [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(text)]


def extract_code(completion: str) -> str:
    """The program contained in ``completion`` (see the module docstring for the rules)."""
    blocks = fenced_blocks(completion)
    python_blocks = [body for lang, body in blocks if lang in _PY_TAGS]
    if python_blocks:
        return python_blocks[-1].strip("\n")
    if blocks:
        return blocks[-1][1].strip("\n")
    start = _CODE_START.search(completion)
    if start:
        return completion[start.start() :].strip("\n")
    return completion.strip("\n")


def complete_function(prompt_code: str, completion: str) -> str:
    """A HumanEval-style program from the prompt (imports + signature + docstring) and a completion.

    If the completion writes whole functions (a top-level ``def``, fenced or bare), the program is
    the prompt followed by that code: the prompt's docstring-only function is valid Python and is
    simply redefined, while its imports and helpers stay available. Otherwise the completion is the
    body that continues the prompt.
    """
    code = extract_code(completion)
    if re.search(r"^def |^async def ", code, re.MULTILINE):
        return f"{prompt_code}\n\n{code}\n"
    return prompt_code + completion
