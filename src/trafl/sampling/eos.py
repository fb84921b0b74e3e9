"""End-of-sequence handling for fixed-length completion canvases.

A dLLM fills a canvas of ``L`` positions; the text is what precedes the first EOS. Following the
design convention "after the first EOS the canvas is EOS", :func:`fill_after_eos` overwrites every
position after a row's first EOS with that EOS token; :func:`trim_at_eos` and
:func:`decode_completions` cut the text there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

EosIds = int | Iterable[int]


def eos_set(eos_token_id: EosIds | None) -> list[int]:
    """The EOS ids as a list (``[]`` for ``None``)."""
    if eos_token_id is None:
        return []
    if isinstance(eos_token_id, int):
        return [eos_token_id]
    return [int(e) for e in eos_token_id]


def is_eos(ids: torch.Tensor, eos_token_id: EosIds) -> torch.Tensor:
    """Boolean tensor, True where ``ids`` is one of the EOS ids."""
    eos = torch.tensor(eos_set(eos_token_id), dtype=ids.dtype, device=ids.device)
    return torch.isin(ids, eos)


def fill_after_eos(completion: torch.Tensor, eos_token_id: EosIds) -> torch.Tensor:
    """``[B, L]`` copy of ``completion`` in which every position after the row's first EOS holds that EOS.

    With ``e_b`` the first EOS position of row ``b``: ``y'_{b,i} = y_{b,e_b}`` for ``i > e_b``, else
    ``y_{b,i}``. Rows without EOS are unchanged.
    """
    hit = is_eos(completion, eos_token_id)
    seen = hit.cumsum(dim=-1) > 0  # at or after the first EOS
    after = torch.nn.functional.pad(seen[..., :-1], (1, 0), value=False)  # strictly after it
    first = hit.to(torch.int8).argmax(dim=-1, keepdim=True)  # position of the first EOS
    first_token = completion.gather(-1, first).expand_as(completion)
    return torch.where(after, first_token, completion)


def trim_at_eos(ids: Sequence[int] | torch.Tensor, eos_token_id: EosIds | None) -> list[int]:
    """The token ids of one completion up to (not including) its first EOS."""
    row = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
    stops = set(eos_set(eos_token_id))
    for i, tok in enumerate(row):
        if tok in stops:
            return row[:i]
    return row


def completion_lengths(completion: torch.Tensor, eos_token_id: EosIds | None) -> torch.Tensor:
    """``[B]`` number of tokens before each row's first EOS (``L`` when there is none)."""
    if eos_token_id is None:
        return torch.full(completion.shape[:1], completion.shape[-1], dtype=torch.long, device=completion.device)
    return (~is_eos(completion, eos_token_id)).to(torch.long).cumprod(dim=-1).sum(dim=-1)


def decode_completions(tokenizer: Any, completion: torch.Tensor, eos_token_id: EosIds | None = None) -> list[str]:
    """Decode each ``[B, L]`` completion row up to its first EOS, special tokens skipped.

    ``eos_token_id`` defaults to ``tokenizer.eos_token_id``.
    """
    if eos_token_id is None:
        eos_token_id = getattr(tokenizer, "eos_token_id", None)
    return [tokenizer.decode(trim_at_eos(row, eos_token_id), skip_special_tokens=True) for row in completion]
