"""The study's figures: the pass@1 -> pass@k frontier, paired gaps to the base, path entropy, shortcut split."""

from __future__ import annotations

from pathlib import Path

from trafl.eval.plots import _colours, _save, plt


def plot_frontier(analysis: dict, path: Path, k: int) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    fr = analysis.get("frontiers", {})
    colours = _colours(list(fr))
    for method, points in fr.items():
        xs = [100 * p["pass@1"] for p in points]
        ys = [100 * p[f"pass@{k}"] for p in points]
        ax.plot(xs, ys, "-o", color=colours[method], label=method, markersize=4)
        ax.annotate(f"{points[-1]['step']}", (xs[-1], ys[-1]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if fr:
        first = next(iter(fr.values()))[0]
        ax.plot([100 * first["pass@1"]], [100 * first[f"pass@{k}"]], "k*", markersize=12, label="base")
    ax.set_xlabel("pass@1 (%)")
    ax.set_ylabel(f"pass@{k} (%)")
    ax.set_title(
        f"frontier along training (seed means, T = {analysis['checks'].get('a_maximisers_lose_pass_at_k', {}).get('temperature', '')})"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_paired_gaps(analysis: dict, path: Path) -> Path:
    temps = [str(t) for t in analysis["temperatures"]]
    fig, axes = plt.subplots(1, len(temps), figsize=(4.2 * len(temps), 3.6), squeeze=False)
    colours = _colours(list(analysis["methods"]))
    for ax, t in zip(axes[0], temps):
        for method, entry in analysis["methods"].items():
            if t not in entry:
                continue
            ks = [p["k"] for p in entry[t]["paired"]]
            d = [100 * p["diff"] for p in entry[t]["paired"]]
            se = [100 * p["stderr"] for p in entry[t]["paired"]]
            ax.plot(ks, d, "-", color=colours[method], label=method)
            ax.fill_between(
                ks, [a - b for a, b in zip(d, se)], [a + b for a, b in zip(d, se)], color=colours[method], alpha=0.15
            )
        ax.axhline(0, color="k", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_title(f"T = {t}")
        ax.set_xlabel("k")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("pass@k - base (points, paired +- s.e.)")
    axes[0][-1].legend(fontsize=8)
    return _save(fig, path)


def plot_path_entropy(analysis: dict, path: Path) -> Path | None:
    temps = [str(t) for t in analysis["temperatures"]]
    names = ["base", *analysis["methods"]]
    values = {}
    for t in temps:
        base = (analysis["base"][t].get("paths") or {}).get("order_entropy")
        row = [base] + [
            ((analysis["methods"][m].get(t) or {}).get("paths") or {}).get("order_entropy") for m in analysis["methods"]
        ]
        values[t] = row
    if all(v is None for row in values.values() for v in row):
        return None
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    width = 0.8 / len(temps)
    for i, t in enumerate(temps):
        xs = [j + i * width for j in range(len(names))]
        ax.bar(xs, [v or 0.0 for v in values[t]], width=width, label=f"T = {t}")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(names))])
    ax.set_xticklabels(names)
    ax.set_ylabel("unmasking-order entropy (nats)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_shortcut_split(analysis: dict, path: Path) -> Path | None:
    split = analysis.get("shortcut_split")
    if not split:
        return None
    names = list(split["methods"])
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for i, group in enumerate(("shortcut", "no_shortcut")):
        xs = [j + i * 0.4 for j in range(len(names))]
        ax.bar(
            xs,
            [100 * split["methods"][m][group]["model"] for m in names],
            width=0.4,
            yerr=[100 * split["methods"][m][group]["stderr"] for m in names],
            label=group.replace("_", " ") + " prompts",
        )
    ax.set_xticks([j + 0.2 for j in range(len(names))])
    ax.set_xticklabels(names)
    ax.set_ylabel(f"pass@{split['k']} (%)  (error bar: paired s.e. vs base)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def write_study_plots(analysis: dict, results: dict, out: Path, *, k_max: int) -> list[Path]:
    plots = Path(out) / "plots"
    written = [
        plot_frontier(analysis, plots / "frontier.png", k_max),
        plot_paired_gaps(analysis, plots / "gap_to_base.png"),
    ]
    for p in (
        plot_path_entropy(analysis, plots / "path_entropy.png"),
        plot_shortcut_split(analysis, plots / "shortcut_split.png"),
    ):
        if p is not None:
            written.append(p)
    return written
