"""Timing, memory and bookkeeping shared by the benchmarks.

Timings on a shared machine are noisy, so variants are measured *side by side*: every repeat
runs each variant once, in the same order, and the reported figure is the median over repeats of
the per-repeat ratio ``t_baseline / t_variant`` (a speed-up), next to the median times.
"""

from __future__ import annotations

import os
import platform
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch


def machine() -> dict[str, Any]:
    """The machine a result was measured on."""
    info: dict[str, Any] = {
        "host": platform.node(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def synchronize(device: torch.device | str | None = None) -> None:
    if torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall seconds of one call (CUDA work included) and its result."""
    synchronize()
    t0 = time.perf_counter()
    out = fn()
    synchronize()
    return time.perf_counter() - t0, out


@dataclass
class SideBySide:
    """Times of several variants measured in interleaved repeats."""

    baseline: str
    times: dict[str, list[float]] = field(default_factory=dict)

    def median_time(self, name: str) -> float:
        return statistics.median(self.times[name])

    def speedup(self, name: str) -> float:
        """Median over repeats of ``t_baseline / t_name``."""
        return statistics.median(b / v for b, v in zip(self.times[self.baseline], self.times[name]))

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            name: {
                "median_s": self.median_time(name),
                "speedup_vs_" + self.baseline: self.speedup(name),
                "repeats": len(ts),
            }
            for name, ts in self.times.items()
        }


def side_by_side(
    variants: dict[str, Callable[[], Any]], baseline: str, repeats: int = 3, warmup: int = 1
) -> SideBySide:
    """Run every variant ``warmup`` times, then ``repeats`` interleaved rounds of one call each."""
    if baseline not in variants:
        raise ValueError(f"baseline {baseline!r} is not one of the variants {list(variants)}")
    for _ in range(warmup):
        for fn in variants.values():
            fn()
    result = SideBySide(baseline, {name: [] for name in variants})
    for _ in range(repeats):
        for name, fn in variants.items():
            result.times[name].append(timed(fn)[0])
    return result


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_memory(fn: Callable[[], Any], interval_s: float = 0.002) -> tuple[float, Any]:
    """Peak memory (MiB) that one call of ``fn`` added, and its result.

    On CUDA: ``torch.cuda.max_memory_allocated`` above the memory allocated before the call. On CPU:
    the peak resident set size above the one before the call, sampled every ``interval_s`` by a
    watcher thread (an estimate: allocations shorter than the interval can be missed).
    """
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        out = fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20, out
    before = _rss_bytes()
    peak = [before]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(interval_s)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        out = fn()
    finally:
        done.set()
        watcher.join()
    peak[0] = max(peak[0], _rss_bytes())
    return (peak[0] - before) / 2**20, out


def format_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A Markdown table of ``rows`` restricted to ``columns`` (floats with 3 significant digits)."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def memory_of(fns: dict[str, Callable[[], Any]]) -> dict[str, float]:
    """Peak memory (MiB, :func:`peak_memory`) of one call of each variant."""
    return {name: round(peak_memory(fn)[0], 1) for name, fn in fns.items()}


def print_side_by_side(title: str, rows: list[dict[str, Any]], columns: list[str]) -> None:
    """A benchmark section's table under its ``## title``."""
    print(f"\n## {title}\n")
    print(format_table(rows, columns))
