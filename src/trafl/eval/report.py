"""``results.md``: the numbers of ``results.json`` as Markdown tables (percentages, +- one
standard error over problems). :func:`render_summary` is its main part alone, the pass@k table of
each task, which ``trafl eval`` prints at the end of a run."""

from __future__ import annotations

from trafl.errors import ConfigError


def table_ks(n: int) -> list[int]:
    """Powers of two up to ``n``, plus ``n`` itself."""
    ks, k = [], 1
    while k <= n:
        ks.append(k)
        k *= 2
    return ks if ks[-1] == n else ks + [n]


def _pct(mean: float, stderr: float) -> str:
    return f"{100 * mean:.1f} ± {100 * stderr:.1f}"


def find_cell(results: dict, model: str, task: str, temperature: float, gen_length: int) -> dict | None:
    for entry in results["results"]:
        if (entry["model"], entry["task"], entry["temperature"], entry["gen_length"]) == (
            model,
            task,
            temperature,
            gen_length,
        ):
            return entry
    return None


def _mean_se(stats: dict, digits: int = 2) -> str:
    if stats.get("mean") is None:
        return "–"
    return f"{stats['mean']:.{digits}f} ± {stats['stderr']:.{digits}f}"


def paths_table(results: dict, entries: list[dict]) -> list[str]:
    """Markdown lines of the denoising-path table of one task (empty when no cell has paths)."""
    rows = [e for e in entries if e.get("paths")]
    if not rows:
        return []
    lines = [
        "Denoising paths (trafl.eval.paths; mean ± s.e. over problems; orders over the whole canvas, "
        "entropies in nats, order entropy is a plug-in estimate capped at log n):",
        "",
    ]
    header = [
        "model",
        "T",
        "length",
        "step entropy / position",
        "distinct orders",
        "order entropy",
        "distinct correct paths",
        "top-path share",
    ]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    models = list(results["models"])
    for e in sorted(rows, key=lambda e: (e["gen_length"], e["temperature"], models.index(e["model"]))):
        p = e["paths"]
        lines.append(
            "| "
            + " | ".join(
                [
                    e["model"],
                    f"{e['temperature']:g}",
                    str(e["gen_length"]),
                    _mean_se(p["position_entropy"]),
                    _mean_se(p["distinct_orders"]),
                    _mean_se(p["order_entropy"]),
                    _mean_se(p["distinct_correct_paths"]),
                    _mean_se(p["top_path_share"]),
                ]
            )
            + " |"
        )
    return lines + [""]


def _preamble(results: dict) -> str:
    return (
        f"n = {results['settings']['n']} samples per problem, seed {results['settings']['seed']}; "
        "pass@k in %, ± one standard error over problems."
    )


def task_entries(results: dict) -> list[tuple[str, list[dict]]]:
    """``(task, its cells)`` in the order of ``results["tasks"]``, tasks without cells left out."""
    out = []
    for task in results["tasks"]:
        entries = [e for e in results["results"] if e["task"] == task]
        if entries:
            out.append((task, entries))
    return out


def passk_table(results: dict, task: str, entries: list[dict]) -> list[str]:
    """Markdown lines of one task's main table: a heading, the number of problems, and pass@k
    (k = 1, 2, 4, ..., n) and distinct correct answers per (model, temperature, length)."""
    ks = table_ks(results["settings"]["n"])
    kind = entries[0].get("task_kind") or ""
    what = "programs" if kind == "code" else "answers"
    lines = [f"## {task}", "", f"{entries[0]['num_problems']} problems.", ""]
    header = ["model", "T", "length"] + [f"pass@{k}" for k in ks] + [f"distinct correct {what}"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    models = list(results["models"])
    for e in sorted(entries, key=lambda e: (e["gen_length"], e["temperature"], models.index(e["model"]))):
        cells = [e["model"], f"{e['temperature']:g}", str(e["gen_length"])]
        cells += [_pct(e["pass_at_k"][k - 1], e["stderr"][k - 1]) for k in ks]
        d = e["distinct_correct"]
        cells.append(f"{d['mean']:.2f} ± {d['stderr']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def render_summary(results: dict) -> str:
    """The pass@k table of every task, exactly as in ``results.md``, without the other tables
    (paths, gap to base, judge): what ``trafl eval`` prints when it finishes."""
    lines = [_preamble(results), ""]
    for task, entries in task_entries(results):
        lines += passk_table(results, task, entries)
    return "\n".join(lines).rstrip("\n")


def gap_table(results: dict, task: str, entries: list[dict], base: str) -> list[str]:
    """Markdown lines of one task's gap table: each model's pass@k minus the base's, in points."""
    ks = table_ks(results["settings"]["n"])
    lines = [f"Gap to base `{base}` (pass@k difference, percentage points):", ""]
    header = ["model", "T", "length"] + [f"Δpass@{k}" for k in ks]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for e in entries:
        if e["model"] == base:
            continue
        ref = find_cell(results, base, task, e["temperature"], e["gen_length"])
        if ref is None:
            continue
        gaps = [100 * (e["pass_at_k"][k - 1] - ref["pass_at_k"][k - 1]) for k in ks]
        cells = [e["model"], f"{e['temperature']:g}", str(e["gen_length"])] + [f"{g:+.1f}" for g in gaps]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def render_markdown(results: dict) -> str:
    """The whole ``results.md``: per task the pass@k table, the path table and the gap to ``base``."""
    base = results.get("base")
    lines = ["# trafl eval results", "", _preamble(results), ""]
    for task, entries in task_entries(results):
        lines += passk_table(results, task, entries)
        lines += paths_table(results, entries)
        if base is not None:
            lines += gap_table(results, task, entries, base)
    return "\n".join(lines)


def check_bar_k(k: int, n: int) -> None:
    if not 1 <= k <= n:
        raise ConfigError(f"--bar-k {k} must lie in 1..n (n = {n} samples per problem)")
