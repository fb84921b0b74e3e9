"""Prompt/completion data for supervised fine-tuning: reading, tokenising and collating.

Each example becomes one canvas ``[left padding | prompt | completion | EOS ... EOS]`` whose
completion part has a fixed length ``completion_length`` (the generation length the model will be
sampled at), padded with EOS as in LLaDA's SFT so that the model learns to end its answer and fill
the rest of the canvas with EOS.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trafl.errors import DataError


def read_pairs(path: str | Path, prompt_field: str = "prompt", completion_field: str = "completion") -> list[dict]:
    """Read a JSONL file of ``{"prompt": ..., "completion": ...}`` rows, with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise DataError(
                    f"{path}:{lineno}: expected a JSON object with '{prompt_field}' and '{completion_field}'"
                )
            for field in (prompt_field, completion_field):
                if field not in row:
                    raise DataError(f"{path}:{lineno}: missing field '{field}' (fields present: {', '.join(row)})")
                if not isinstance(row[field], str):
                    raise DataError(
                        f"{path}:{lineno}: field '{field}' must be a string, got {type(row[field]).__name__}"
                    )
            rows.append(row)
    if not rows:
        raise DataError(f"data file {path} has no examples")
    return rows


def encode_prompt(tokenizer: Any, prompt: str, use_chat_template: bool = True) -> list[int]:
    """Token ids of a prompt: the tokenizer's chat template when it has one, else plain text."""
    if use_chat_template and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer(prompt, add_special_tokens=True)["input_ids"]


@dataclass
class EncodedPair:
    prompt_ids: list[int]
    completion_ids: list[int]


def encode_pairs(
    rows: Sequence[dict],
    tokenizer: Any,
    completion_length: int,
    *,
    source: str = "data",
    use_chat_template: bool = True,
) -> list[EncodedPair]:
    """Tokenise rows; completions are ``answer + EOS`` padded with EOS to ``completion_length``."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise DataError("the tokenizer has no eos_token_id; SFT pads completions with EOS")
    out = []
    for i, row in enumerate(rows):
        prompt_ids = encode_prompt(tokenizer, row["prompt"], use_chat_template)
        answer = tokenizer(row["completion"], add_special_tokens=False)["input_ids"] + [eos]
        if len(answer) > completion_length:
            raise DataError(
                f"{source} example {i}: completion is {len(answer)} tokens with EOS, longer than "
                f"completion_length={completion_length}; raise completion_length or shorten it"
            )
        out.append(EncodedPair(prompt_ids, answer + [eos] * (completion_length - len(answer))))
    return out


def collate(pairs: Sequence[EncodedPair], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Left-pad prompts to a common length and stack fixed-length completions.

    Returns ``input_ids`` and ``attention_mask`` ``[B, P + L]`` and ``completion_mask`` (True on
    the ``L`` completion positions).
    """
    prompt_len = max(len(p.prompt_ids) for p in pairs)
    length = len(pairs[0].completion_ids)
    ids = torch.full((len(pairs), prompt_len + length), pad_token_id, dtype=torch.long)
    attn = torch.zeros_like(ids)
    for b, p in enumerate(pairs):
        start = prompt_len - len(p.prompt_ids)
        ids[b, start:prompt_len] = torch.tensor(p.prompt_ids, dtype=torch.long)
        ids[b, prompt_len:] = torch.tensor(p.completion_ids, dtype=torch.long)
        attn[b, start:] = 1
    completion = torch.zeros_like(ids, dtype=torch.bool)
    completion[:, prompt_len:] = True
    return {"input_ids": ids, "attention_mask": attn, "completion_mask": completion}
