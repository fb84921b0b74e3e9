"""Block key/value cache for semi-autoregressive decoding (Fast-dLLM's prefix and dual cache).

A bidirectional denoiser recomputes every position at every denoising step, although a step of
the LLaDA sampler only changes tokens inside the current block ``[lo, hi)``. The cache trades
exactness for speed:

1. at the first step of a block one *full* forward over the canvas of length ``T`` records, for
   every layer ``l``, the rotated keys and the values ``K_l, V_l`` ``[B, G, T, D]``;
2. each later step of the block runs a *window* forward over positions ``[a, b)`` only: the window's
   queries, keys and values are computed afresh and attend to the spliced keys (likewise values)

       K'_l = [ K_l[:, :, :a] ; K^win_l ; K_l[:, :, b:] ]                          (splice)

   * ``prefix`` cache: window ``[lo, T)`` (the block and everything right of it), prefix cached;
   * ``dual`` cache:   window ``[lo, hi)`` (the block alone), prefix and suffix cached.

If the canvas has not changed since the recording, the window forward reproduces the full forward
exactly (the splice puts back the very keys the full pass computed). After tokens of the block are
committed the cached entries are stale: a position's keys at layer ``l > 0`` depend on every
position's layer ``l - 1`` state, the block's new tokens included. That staleness is the
approximation; it is measured in ``benchmarks/`` and discussed in ``docs/performance.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import torch

from trafl.errors import ConfigError

#: The block KV cache modes: ``none`` (exact), ``prefix`` or ``dual`` (see the module docstring).
CacheMode = Literal["none", "prefix", "dual"]
CACHE_MODES: tuple[CacheMode, ...] = get_args(CacheMode)

KVHook = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def splice_window(cached: torch.Tensor, fresh: torch.Tensor, start: int) -> torch.Tensor:
    """``[..., T, D]``: ``cached`` with positions ``[start, start + w)`` replaced by ``fresh`` ``[..., w, D]``."""
    end = start + fresh.shape[-2]
    return torch.cat([cached[..., :start, :], fresh, cached[..., end:, :]], dim=-2)


def cache_window(mode: str, lo: int, hi: int, total: int) -> tuple[int, int]:
    """The positions ``[a, b)`` recomputed at a cached step of block ``[lo, hi)`` on a canvas of ``total``."""
    if mode == "prefix":
        return lo, total
    if mode == "dual":
        return lo, hi
    raise ConfigError(f"cache must be one of {list(CACHE_MODES)}, got {mode!r}")


@dataclass
class BlockKVCache:
    """Per-layer keys and values ``[B, G, T, D]`` recorded by a full forward over the canvas.

    ``hook(layer, start)`` gives the function a block's attention applies to its fresh keys and
    values: while the cache is being recorded (``start is None``) it stores them and passes them
    through; afterwards it splices the window's fresh ones into the recorded ones at ``start``.
    """

    keys: list[torch.Tensor] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)

    @property
    def recorded(self) -> bool:
        return bool(self.keys)

    def clear(self) -> None:
        self.keys.clear()
        self.values.clear()

    def hook(self, layer: int, start: int | None) -> KVHook:
        if start is None:

            def record(k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                if layer != len(self.keys):
                    raise RuntimeError(f"BlockKVCache: layer {layer} recorded out of order")
                self.keys.append(k)
                self.values.append(v)
                return k, v

            return record

        def splice(k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return splice_window(self.keys[layer], k, start), splice_window(self.values[layer], v, start)

        return splice


def block_cache_model(model: Any) -> Any:
    """The object providing ``forward_window`` behind ``model`` (unwrapping trainer views, DDP and peft).

    Raises :class:`ConfigError` when the denoiser has no cached path (only the native LLaDA model has).
    """
    current, seen = model, 0
    while current is not None and seen < 8:
        if callable(getattr(current, "forward_window", None)):
            return current
        nxt = getattr(current, "wrapped", None) or getattr(current, "module", None)
        if nxt is None and hasattr(current, "get_base_model"):
            nxt = current.get_base_model()
        current, seen = nxt, seen + 1
    raise ConfigError(
        f"cache='prefix'/'dual' needs a model with a block KV cache (trafl's native LLaDA model); "
        f"{type(model).__name__} has none: use cache='none'"
    )
