"""PNG figures in the style of the paper: pass@k curves with every model overlaid, the gap of each
model to a base model, per-length bars of pass@k with error bars, a held-out transfer panel, and
(when the generator recorded denoising paths) bars of path diversity per model and temperature.

Every figure is a grid of fixed-size panels (``PANEL_INCHES`` at ``DPI``) so its pixel size is
known in advance: ``(cols * 320, rows * 260)``. Shaded bands and error bars are +- one standard
error over problems.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from trafl.eval.report import find_cell  # noqa: E402

PANEL_INCHES = (3.2, 2.6)
DPI = 100


def figure_size_pixels(rows: int, cols: int) -> tuple[int, int]:
    return round(cols * PANEL_INCHES[0] * DPI), round(rows * PANEL_INCHES[1] * DPI)


def _grid(rows: int, cols: int):
    fig, axes = plt.subplots(
        rows, cols, squeeze=False, figsize=(cols * PANEL_INCHES[0], rows * PANEL_INCHES[1]), dpi=DPI
    )
    return fig, axes


def _colours(models: Sequence[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("tab10")
    return {m: cmap(i % 10) for i, m in enumerate(models)}


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)  # no bbox_inches="tight": the pixel size stays fixed
    plt.close(fig)
    return path


def _curve_axes(ax, n: int) -> None:
    ax.set_xscale("log", base=2)
    ticks = [k for k in (1, 2, 4, 8, 16, 32, 64, 128) if k <= n]
    ax.set_xticks(ticks, [str(k) for k in ticks])
    ax.set_xlabel("k")
    ax.grid(alpha=0.3)


def plot_pass_at_k_curves(
    results: dict,
    path: str | Path,
    *,
    gen_length: int,
    tasks: Sequence[str] | None = None,
    temperatures: Sequence[float] | None = None,
    title: str | None = None,
    tasks_across: bool = False,
) -> Path:
    """Grid tasks x temperatures (temperatures x tasks when ``tasks_across``); in each panel
    pass@k against k for every model, band +- one standard error."""
    tasks = list(tasks if tasks is not None else results["tasks"])
    temps = list(temperatures if temperatures is not None else results["settings"]["temperatures"])
    models = list(results["models"])
    colours = _colours(models)
    n = results["settings"]["n"]
    fig, axes = _grid(len(temps), len(tasks)) if tasks_across else _grid(len(tasks), len(temps))
    for r, task in enumerate(tasks):
        for c, temp in enumerate(temps):
            ax = axes[c][r] if tasks_across else axes[r][c]
            for model in models:
                e = find_cell(results, model, task, temp, gen_length)
                if e is None:
                    continue
                mean = [100 * v for v in e["pass_at_k"]]
                err = [100 * v for v in e["stderr"]]
                ax.plot(e["k"], mean, marker="o", ms=2.5, color=colours[model], label=model)
                ax.fill_between(
                    e["k"],
                    [m - s for m, s in zip(mean, err)],
                    [m + s for m, s in zip(mean, err)],
                    color=colours[model],
                    alpha=0.15,
                    lw=0,
                )
            _curve_axes(ax, n)
            ax.set_title(f"{task}  T={temp:g}  L={gen_length}", fontsize=8)
            ax.set_ylabel("pass@k (%)")
    axes[0][0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, Path(path))


def plot_gap_to_base(results: dict, path: str | Path, *, base: str, gen_length: int) -> Path:
    """Grid tasks x temperatures; pass@k(model) - pass@k(base) against k, zero line for the base."""
    tasks, temps = list(results["tasks"]), list(results["settings"]["temperatures"])
    models = list(results["models"])
    colours = _colours(models)
    fig, axes = _grid(len(tasks), len(temps))
    for r, task in enumerate(tasks):
        for c, temp in enumerate(temps):
            ax = axes[r][c]
            ref = find_cell(results, base, task, temp, gen_length)
            ax.axhline(0.0, color="black", lw=0.8, ls="--")
            if ref is not None:
                for model in models:
                    e = find_cell(results, model, task, temp, gen_length)
                    if model == base or e is None:
                        continue
                    gap = [100 * (a - b) for a, b in zip(e["pass_at_k"], ref["pass_at_k"])]
                    ax.plot(e["k"], gap, marker="o", ms=2.5, color=colours[model], label=model)
            _curve_axes(ax, results["settings"]["n"])
            ax.set_title(f"{task}  T={temp:g}  L={gen_length}", fontsize=8)
            ax.set_ylabel(f"pass@k − {base} (pp)")
    if len(models) > 1:
        axes[0][0].legend(fontsize=7)
    return _save(fig, Path(path))


def plot_length_bars(results: dict, path: str | Path, *, k: int) -> Path:
    """Grid temperatures x tasks; bars of pass@k grouped by completion length, one bar per model."""
    tasks, temps = list(results["tasks"]), list(results["settings"]["temperatures"])
    lengths = list(results["settings"]["gen_lengths"])
    models = list(results["models"])
    colours = _colours(models)
    width = 0.8 / max(len(models), 1)
    fig, axes = _grid(len(temps), len(tasks))
    for r, temp in enumerate(temps):
        for c, task in enumerate(tasks):
            ax = axes[r][c]
            for m, model in enumerate(models):
                xs, heights, errs = [], [], []
                for g, length in enumerate(lengths):
                    e = find_cell(results, model, task, temp, length)
                    if e is None:
                        continue
                    xs.append(g + (m - (len(models) - 1) / 2) * width)
                    heights.append(100 * e["pass_at_k"][k - 1])
                    errs.append(100 * e["stderr"][k - 1])
                ax.bar(xs, heights, width=width, yerr=errs, capsize=2, color=colours[model], label=model)
            ax.set_xticks(range(len(lengths)), [str(x) for x in lengths])
            ax.set_xlabel("completion length")
            ax.set_ylabel(f"pass@{k} (%)")
            ax.set_title(f"{task}  T={temp:g}", fontsize=8)
            ax.grid(alpha=0.3, axis="y")
    axes[0][0].legend(fontsize=7)
    return _save(fig, Path(path))


PATH_PANELS = (("order_entropy", "order entropy (nats)"), ("distinct_correct_paths", "distinct correct paths"))


def has_paths(results: dict, gen_length: int | None = None) -> bool:
    return any(e.get("paths") for e in results["results"] if gen_length is None or e["gen_length"] == gen_length)


def plot_paths(results: dict, path: str | Path, *, gen_length: int) -> Path:
    """Grid tasks x (order entropy, distinct correct paths); bars grouped by temperature, one per
    model (the base first when it is the first model), error bars +- one standard error. Cells
    without path metrics are left out."""
    tasks, temps = list(results["tasks"]), list(results["settings"]["temperatures"])
    models = list(results["models"])
    colours = _colours(models)
    width = 0.8 / max(len(models), 1)
    fig, axes = _grid(len(tasks), len(PATH_PANELS))
    for r, task in enumerate(tasks):
        for c, (key, label) in enumerate(PATH_PANELS):
            ax = axes[r][c]
            for m, model in enumerate(models):
                xs, heights, errs = [], [], []
                for g, temp in enumerate(temps):
                    e = find_cell(results, model, task, temp, gen_length)
                    if e is None or not e.get("paths"):
                        continue
                    xs.append(g + (m - (len(models) - 1) / 2) * width)
                    heights.append(e["paths"][key]["mean"])
                    errs.append(e["paths"][key]["stderr"])
                ax.bar(
                    xs,
                    heights,
                    width=width,
                    yerr=errs,
                    capsize=2,
                    color=colours[model],
                    label=model,
                    hatch="//" if model == results.get("base") else None,
                )
            if key == "order_entropy":
                n = results["settings"]["n"]
                ax.axhline(math.log(n), color="black", lw=0.8, ls="--")  # the plug-in estimate's ceiling
            ax.set_xticks(range(len(temps)), [f"{t:g}" for t in temps])
            ax.set_xlabel("temperature")
            ax.set_ylabel(label)
            ax.set_title(f"{task}  L={gen_length}", fontsize=8)
            ax.grid(alpha=0.3, axis="y")
    axes[0][0].legend(fontsize=7)
    return _save(fig, Path(path))


def write_plots(
    results: dict,
    out_dir: str | Path,
    *,
    base: str | None = None,
    bar_k: int = 5,
    transfer_tasks: Sequence[str] = (),
    transfer_temperature: float | None = None,
) -> list[Path]:
    """Every figure for ``results`` under ``out_dir/plots``; returns the files written."""
    plots = Path(out_dir) / "plots"
    settings = results["settings"]
    bar_k = min(bar_k, settings["n"])
    written = []
    for length in settings["gen_lengths"]:
        written.append(plot_pass_at_k_curves(results, plots / f"pass_at_k_L{length}.png", gen_length=length))
        if base is not None and len(results["models"]) > 1:
            written.append(
                plot_gap_to_base(results, plots / f"gap_to_{base}_L{length}.png", base=base, gen_length=length)
            )
    written.append(plot_length_bars(results, plots / f"pass_at_{bar_k}_by_length.png", k=bar_k))
    for length in settings["gen_lengths"]:
        if has_paths(results, length):
            written.append(plot_paths(results, plots / f"paths_L{length}.png", gen_length=length))
    held_out = [t for t in transfer_tasks if t in results["tasks"]]
    if held_out:
        temps = settings["temperatures"]
        temp = transfer_temperature if transfer_temperature is not None else temps[len(temps) // 2]
        length = max(settings["gen_lengths"])
        written.append(
            plot_pass_at_k_curves(
                results,
                plots / "transfer.png",
                gen_length=length,
                tasks=held_out,
                temperatures=[temp],
                title="held-out transfer",
                tasks_across=True,
            )
        )
    return written
