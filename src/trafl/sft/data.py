"""Prompt/completion data for supervised fine-tuning: reading, tokenising and collating.

Each example becomes one canvas ``[left padding | prompt | completion | EOS ... EOS]`` whose
completion part has a fixed length ``completion_length`` (the config's ``max_completion_length``: the
generation length the model will be sampled at), padded with EOS as in LLaDA's SFT so that the model
learns to end its answer and fill the rest of the canvas with EOS.

With ``extra_lengths`` (shorter canvases), each example whose answer fits several canvases is padded
to one of them, drawn once per example from a seeded generator; a batch of mixed canvases is
right-padded with pad tokens outside the attention mask, which the model cannot see, so each row is
trained exactly as at its own canvas (LLaDA's SFT pads a batch to its longest example, so its models
see many canvas lengths; a fixed canvas alone teaches a model cues, such as how many masks follow,
that a shorter canvas at sampling time does not give).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trafl.errors import DataError
from trafl.utils.seed import seeded_rng


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
    extra_lengths: Sequence[int] = (),
    seed: int = 0,
) -> list[EncodedPair]:
    """Tokenise rows; completions are ``answer + EOS`` padded with EOS to ``completion_length``, or,
    with ``extra_lengths``, to a canvas drawn uniformly (seeded by ``seed``) from those of
    ``completion_length`` and ``extra_lengths`` that hold it."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise DataError("the tokenizer has no eos_token_id; SFT pads completions with EOS")
    canvases = sorted({completion_length, *extra_lengths})
    rng = seeded_rng("sft-canvas", seed)  # drawn from only when an answer fits several canvases
    out = []
    for i, row in enumerate(rows):
        prompt_ids = encode_prompt(tokenizer, row["prompt"], use_chat_template)
        answer = tokenizer(row["completion"], add_special_tokens=False)["input_ids"] + [eos]
        if len(answer) > completion_length:
            raise DataError(
                f"{source} example {i}: completion is {len(answer)} tokens with EOS, longer than "
                f"max_completion_length={completion_length}; raise max_completion_length or shorten it"
            )
        fitting = [c for c in canvases if c >= len(answer)]
        canvas = rng.choice(fitting) if len(fitting) > 1 else completion_length
        out.append(EncodedPair(prompt_ids, answer + [eos] * (canvas - len(answer))))
    return out


def collate(pairs: Sequence[EncodedPair], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Left-pad prompts to a common length, right-pad completions (canvases) to the longest.

    Returns ``input_ids`` and ``attention_mask`` ``[B, P + L]`` (``L`` the longest canvas; padding
    is outside the attention mask on both sides) and ``completion_mask`` (True on each row's own
    canvas positions).
    """
    prompt_len = max(len(p.prompt_ids) for p in pairs)
    length = max(len(p.completion_ids) for p in pairs)
    ids = torch.full((len(pairs), prompt_len + length), pad_token_id, dtype=torch.long)
    attn = torch.zeros_like(ids)
    completion = torch.zeros_like(ids, dtype=torch.bool)
    for b, p in enumerate(pairs):
        start, end = prompt_len - len(p.prompt_ids), prompt_len + len(p.completion_ids)
        ids[b, start:prompt_len] = torch.tensor(p.prompt_ids, dtype=torch.long)
        ids[b, prompt_len:end] = torch.tensor(p.completion_ids, dtype=torch.long)
        attn[b, start:end] = 1
        completion[b, prompt_len:end] = True
    return {"input_ids": ids, "attention_mask": attn, "completion_mask": completion}
