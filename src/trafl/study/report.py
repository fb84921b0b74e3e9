"""The study's Markdown: a summary printed at the end of ``trafl demo`` and the full report.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: What ``trafl demo --quick`` says first in report.md and last in its printout: its numbers are a
#: check that every stage runs, not evidence for or against the study's claims.
SMOKE_NOTE = "smoke run: too few prompts and steps for conclusions; run `trafl demo` for the study"


def _pt(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def _yes(ok: bool) -> str:
    return "**yes**" if ok else "**no**"


def main_table(analysis: dict) -> str:
    k = analysis["k_max"]
    lines = [
        f"| model | T | pass@1 | pass@{k} | pass@{k} - base (paired s.e.) | distinct correct / prompt | order entropy |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in analysis["temperatures"]:
        t = str(t)
        b = analysis["base"][t]
        lines.append(
            f"| base | {t} | {_pt(b['pass_at_k'][0])} | {_pt(b['pass_at_k'][k - 1])} | — | "
            f"{b['distinct_correct']:.2f} | {_ent(b.get('paths'))} |"
        )
        for m, entry in analysis["methods"].items():
            if t not in entry:
                continue
            e = entry[t]
            p = e["paired"][k - 1]
            lines.append(
                f"| {m} (x{e['seeds']}) | {t} | {_pt(e['pass_at_k'][0])} | {_pt(e['pass_at_k'][k - 1])} | "
                f"{100 * p['diff']:+.1f} +- {100 * p['stderr']:.1f} | {e['distinct_correct']:.2f} | {_ent(e.get('paths'))} |"
            )
    return "\n".join(lines)


def _ent(paths: dict | None) -> str:
    return "—" if not paths or paths.get("order_entropy") is None else f"{paths['order_entropy']:.2f}"


def checks_text(checks: dict) -> str:
    out = []
    a = checks.get("a_maximisers_lose_pass_at_k")
    if a:
        detail = ", ".join(f"{m} {100 * v['diff']:+.1f} +- {100 * v['stderr']:.1f}" for m, v in a["methods"].items())
        out.append(
            f"- (a) every reward maximiser's pass@{a['k']} is below the base by > 2 paired s.e. at T = {a['temperature']}: "
            f"{_yes(a['ok'])} ({detail})"
        )
    b = checks.get("b_trafl_gains_pass1_keeps_pass_at_k")
    if b:
        detail = "; ".join(
            f"T={t}: pass@1 {100 * v['pass1_gain']:+.1f}, k below base - 1 s.e.: {v['k_below_base_minus_1se'] or 'none'}"
            for t, v in b["temperatures"].items()
        )
        out.append(
            f"- (b) TraFL pass@1 >= base + 10 points and pass@k >= base - 1 paired s.e. at every k and T: {_yes(b['ok'])} ({detail})"
        )
    c = checks.get("c_trafl_above_baseline_frontiers")
    if c:
        detail = ", ".join(f"{m}: {_pt(v['baseline_pass_at_k'])} ({v['how']})" for m, v in c["methods"].items())
        out.append(
            f"- (c) TraFL's end point (pass@1 {_pt(c['trafl_end']['pass@1'])}, pass@k {_pt(c['trafl_end'][[k for k in c['trafl_end'] if k.startswith('pass@') and k != 'pass@1'][0]])}) "
            f"lies above every baseline's frontier at equal pass@1: {_yes(c['ok'])} (baselines there: {detail})"
        )
    d = checks.get("d_trafl_keeps_path_entropy")
    if d:
        detail = ", ".join(f"{m} {v:.2f}" if v is not None else f"{m} —" for m, v in d["baselines"].items())
        out.append(
            f"- (d) TraFL keeps more unmasking-order entropy than every baseline at T = {d['temperature']}: "
            f"{_yes(d['ok'])} (TraFL {d['trafl']:.2f}; {detail})"
        )
    return "\n".join(out)


def render_summary(analysis: dict, timings: dict, quick: bool = False) -> str:
    """The table, the checks and the wall time printed at the end of ``trafl demo``; with ``quick``
    (``--quick``) it ends with :data:`SMOKE_NOTE`."""
    time_line = ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
    summary = main_table(analysis) + "\n\n" + checks_text(analysis["checks"]) + f"\n\nWall time: {time_line}.\n"
    return summary + f"\n{SMOKE_NOTE}\n" if quick else summary


def render_report(analysis: dict, results: dict, cfg: Any, timings: dict, plots: list, out: Path) -> str:
    k = analysis["k_max"]
    parts = [SMOKE_NOTE, ""] if getattr(cfg, "quick", False) else []  # first, above the title: --quick
    parts += [
        "# trafl demo: trajectory locking at CPU scale",
        "",
        f"Task `{cfg.task}`, split `{cfg.eval_split}` ({analysis['shortcut_split']['num_shortcut'] + analysis['shortcut_split']['num_no_shortcut'] if 'shortcut_split' in analysis else '?'} prompts), "
        f"n = {cfg.eval_n} samples per prompt, {cfg.seeds} seed(s) per method, {cfg.max_steps} RL steps x "
        f"{cfg.prompts_per_step} prompts x {cfg.num_generations} samples each. Paired differences are per prompt, "
        "seed-averaged model minus base, mean +- s.e. over prompts.",
        "",
        "## Results",
        "",
        main_table(analysis),
        "",
        "## Checks",
        "",
        checks_text(analysis["checks"]),
        "",
    ]
    vs = analysis.get("trafl_minus_baselines")
    if vs:
        parts += [
            "## TraFL minus each baseline, paired (seed means on both sides; s.e. over prompts)",
            "",
            f"| baseline | T | pass@1 | pass@{k} |",
            "|---|---|---|---|",
        ]
        for m, per_t in vs.items():
            for t, d in per_t.items():
                a, b = d[1], d[k]
                parts.append(
                    f"| {m} | {t} | {100 * a['diff']:+.1f} +- {100 * a['stderr']:.1f} | "
                    f"{100 * b['diff']:+.1f} +- {100 * b['stderr']:.1f} |"
                )
        parts.append("")
    tr = analysis.get("training_reward", {})
    if tr:
        parts += [
            "## Training reward (first vs last tenth of the steps)",
            "",
            "| run | first | last |",
            "|---|---|---|",
        ]
        parts += [f"| {label} | {v['first']:.3f} | {v['last']:.3f} |" for label, v in tr.items()]
        parts.append("")
    split = analysis.get("shortcut_split")
    if split:
        parts += [
            f"## Shortcut vs no-shortcut prompts (pass@{split['k']}, T = {split['temperature']}; "
            f"{split['num_shortcut']} / {split['num_no_shortcut']} prompts)",
            "",
            "| model | shortcut | paired diff | no shortcut | paired diff |",
            "|---|---|---|---|---|",
        ]
        for m, v in split["methods"].items():
            s, n = v["shortcut"], v["no_shortcut"]
            parts.append(
                f"| {m} | {_pt(s['model'])} | {100 * s['diff']:+.1f} +- {100 * s['stderr']:.1f} | "
                f"{_pt(n['model'])} | {100 * n['diff']:+.1f} +- {100 * n['stderr']:.1f} |"
            )
        parts.append("")
    fr = analysis.get("frontiers")
    if fr:
        parts += [f"## Frontier along training (seed means, pass@1 / pass@{k})", ""]
        for m, points in fr.items():
            parts.append(
                f"- {m}: " + ", ".join(f"step {p['step']}: {_pt(p['pass@1'])} / {_pt(p[f'pass@{k}'])}" for p in points)
            )
        parts.append("")
    paths = []
    for t in analysis["temperatures"]:
        for name, entry in [("base", analysis["base"][str(t)])] + [
            (m, e.get(str(t), {})) for m, e in analysis["methods"].items()
        ]:
            p = entry.get("paths")
            if p:
                paths.append(
                    f"| {name} | {t} | {p.get('position_entropy', float('nan')):.3f} | {p.get('distinct_orders', float('nan')):.2f} | "
                    f"{p.get('order_entropy', float('nan')):.3f} | {_num(p.get('distinct_correct_paths'))} | {_num(p.get('top_path_share'))} |"
                )
    if paths:
        parts += [
            "## Denoising paths (per prompt, means)",
            "",
            "| model | T | commit-step entropy / position | distinct orders | order entropy (plug-in) | distinct correct paths | top path share |",
            "|---|---|---|---|---|---|---|",
            *paths,
            "",
        ]
    den = analysis.get("denoising")
    if den:
        parts += ["## Denoising cost per sample", "", "| model | forward passes | completion length |", "|---|---|---|"]
        parts += [f"| {m} | {v['forward_passes']} | {v['completion_length']:.2f} |" for m, v in den.items()]
        parts.append("")
    samples = analysis.get("samples")
    if samples:
        parts += ["## Samples (first 8 of each model's seed 0; `ok` = correct)", ""]
        for m, per_prompt in samples.items():
            for prompt, comps in per_prompt.items():
                parts.append(f"- {m}, `{prompt}`: " + " ".join(f"`{c}`" for c in comps))
        parts.append("")
    parts += ["## Plots", ""] + [f"![{Path(p).stem}]({Path(p).relative_to(out)})" for p in plots]
    time_line = ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
    parts += ["", f"Wall time: {time_line}.", ""]
    return "\n".join(parts)


def _num(x: Any) -> str:
    return "—" if x is None else f"{x:.2f}"
