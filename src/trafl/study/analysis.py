"""The study's numbers and checks, computed from evaluation results alone.

Labels: the base is ``base``; seed ``s`` of method ``m`` is ``m-s<s>``; its checkpoint at step ``t``
(frontier evaluation) is ``m-s<s>@<t>``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from trafl.eval.paired import frontier_points, frontier_value_at, paired_difference

LABEL = re.compile(r"^(?P<method>.+)-s(?P<seed>\d+)(?:@(?P<step>\d+))?$")


def parse_label(label: str) -> tuple[str, int, int | None] | None:
    m = LABEL.match(label)
    if not m:
        return None
    return m["method"], int(m["seed"]), (int(m["step"]) if m["step"] else None)


def cells_by(results: dict) -> dict[tuple[str, float], dict]:
    return {(r["model"], r["temperature"]): r for r in results["results"]}


def method_cells(results: dict, method: str, temperature: float) -> list[dict]:
    """The final-model cells of every seed of ``method`` at ``temperature``."""
    out = []
    for r in results["results"]:
        parsed = parse_label(r["model"])
        if parsed and parsed[0] == method and parsed[2] is None and r["temperature"] == temperature:
            out.append(r)
    return out


def seed_mean_curve(cells: Sequence[dict]) -> list[float]:
    return [sum(c["pass_at_k"][i] for c in cells) / len(cells) for i in range(len(cells[0]["pass_at_k"]))]


def path_summary(cell: dict) -> dict[str, float] | None:
    """The path-level locking metrics of a cell (``None`` when the generator recorded no paths)."""
    paths = cell.get("paths")
    if not paths:
        return None
    out = {}
    for key, value in paths.items():
        if isinstance(value, dict) and "mean" in value:
            out[key] = value["mean"]
        elif isinstance(value, (int, float)):
            out[key] = value
    return out


def analyse(
    results: dict,
    frontier: dict | None,
    *,
    methods: Sequence[str],
    k_max: int,
    frontier_temperature: float,
    shortcut: dict[str, bool] | None = None,
    denoising: dict[str, dict] | None = None,
    final_step: int | None = None,
) -> dict[str, Any]:
    """Everything the report prints: per temperature and method, the seed-mean pass@1..k_max, its
    paired difference to the base at every k, per-seed end points, distinct answers and path
    metrics; the shortcut / no-shortcut split; the frontiers; the checks."""
    cells = cells_by(results)
    temps = sorted({t for (_, t) in cells})
    out: dict[str, Any] = {"k_max": k_max, "temperatures": temps, "methods": {}, "base": {}}
    for t in temps:
        base = cells[("base", t)]
        out["base"][str(t)] = {
            "pass_at_k": base["pass_at_k"][:k_max],
            "distinct_correct": base["distinct_correct"]["mean"],
            "paths": path_summary(base),
        }
        for method in methods:
            mc = method_cells(results, method, t)
            if not mc:
                continue
            entry = out["methods"].setdefault(method, {})
            entry[str(t)] = {
                "seeds": len(mc),
                "pass_at_k": seed_mean_curve(mc)[:k_max],
                "per_seed": {
                    c["model"]: {"pass@1": c["pass_at_k"][0], f"pass@{k_max}": c["pass_at_k"][k_max - 1]} for c in mc
                },
                "paired": [paired_difference(mc, base, k) for k in range(1, k_max + 1)],
                "distinct_correct": sum(c["distinct_correct"]["mean"] for c in mc) / len(mc),
                "paths": _mean_paths([path_summary(c) for c in mc]),
            }
    if "trafl" in methods:
        vs = {}
        for t in temps:
            mine = method_cells(results, "trafl", t)
            for m in methods:
                other = method_cells(results, m, t) if m != "trafl" else []
                if mine and other:
                    vs.setdefault(m, {})[str(t)] = {k: paired_difference(mine, other, k) for k in (1, k_max)}
        out["trafl_minus_baselines"] = vs
    if shortcut:
        ft = frontier_temperature
        with_s = [pid for pid, v in shortcut.items() if v]
        without = [pid for pid, v in shortcut.items() if not v]
        split = {}
        for method in ["base", *methods]:
            mc = [cells[("base", ft)]] if method == "base" else method_cells(results, method, ft)
            if not mc:
                continue
            base = cells[("base", ft)]
            split[method] = {
                name: paired_difference(mc, base, k_max, subset)
                for name, subset in (("shortcut", with_s), ("no_shortcut", without))
            }
        out["shortcut_split"] = {
            "temperature": ft,
            "k": k_max,
            "num_shortcut": len(with_s),
            "num_no_shortcut": len(without),
            "methods": split,
        }
    if frontier is not None:
        out["frontiers"] = frontiers(results, frontier, methods, k_max, frontier_temperature, final_step)
    if denoising:
        out["denoising"] = denoising
    out["checks"] = study_checks(out, methods=methods, k_max=k_max, temperature=frontier_temperature)
    return out


def _mean_paths(items: Sequence[dict | None]) -> dict | None:
    items = [i for i in items if i]
    if not items:
        return None
    return {k: sum(i[k] for i in items) / len(items) for k in items[0]}


def frontiers(
    results: dict, frontier: dict, methods: Sequence[str], k: int, temperature: float, final_step: int | None = None
) -> dict:
    """Seed-mean (pass@1, pass@k) along training for each method, from the base (step 0) to the final
    model (``final_step``; default one past the last checkpoint)."""
    base = cells_by(results)[("base", temperature)]
    per_method: dict[str, dict[int, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for source in (results, frontier):
        for r in source["results"]:
            parsed = parse_label(r["model"])
            if not parsed or r["temperature"] != temperature:
                continue
            method, _, step = parsed
            per_method[method][step if step is not None else -1].append(r)
    out = {}
    for method in methods:
        steps = per_method.get(method)
        if not steps:
            continue
        last = final_step or (max(s for s in steps if s != -1) + 1 if any(s != -1 for s in steps) else 1)
        cells = [(0, [base])] + [(s if s != -1 else last, cs) for s, cs in steps.items()]
        points = frontier_points([(s, {"pass_at_k": seed_mean_curve(cs)}) for s, cs in cells], k)
        out[method] = points
    return out


def study_checks(
    analysis: dict, *, methods: Sequence[str], k_max: int, temperature: float, method: str = "trafl"
) -> dict:
    """The study's four claims, each with the numbers it was decided on.

    (a) every reward maximiser's pass@k_max is below the base by more than 2 paired s.e. at ``temperature``;
    (b) ``method``'s pass@1 is >= base + 10 points and its pass@k >= base - 1 paired s.e. at every k and
        temperature (seed means);
    (c) ``method``'s end point lies above every baseline's frontier (pass@k_max at equal pass@1);
    (d) ``method`` keeps more path entropy (unmasking-order entropy at ``temperature``) than every baseline.
    """
    t = str(temperature)
    baselines = [m for m in methods if m != method and m in analysis["methods"]]
    checks: dict[str, Any] = {}
    a = {}
    for m in baselines:
        p = analysis["methods"][m][t]["paired"][k_max - 1]
        a[m] = {"diff": p["diff"], "stderr": p["stderr"], "ok": p["diff"] < -2 * p["stderr"]}
    checks["a_maximisers_lose_pass_at_k"] = {
        "k": k_max,
        "temperature": temperature,
        "methods": a,
        "ok": bool(a) and all(v["ok"] for v in a.values()),
    }
    if method in analysis["methods"]:
        per_t, ok = {}, True
        for temp, entry in analysis["methods"][method].items():
            paired = entry["paired"]
            p1 = paired[0]["diff"]
            below = [p["k"] for p in paired if p["diff"] < -p["stderr"]]
            per_t[temp] = {"pass1_gain": p1, "k_below_base_minus_1se": below, "ok": p1 >= 0.10 and not below}
            ok = ok and per_t[temp]["ok"]
        checks["b_trafl_gains_pass1_keeps_pass_at_k"] = {"temperatures": per_t, "ok": ok}
    fr = analysis.get("frontiers", {})
    if method in fr and fr[method]:
        end = fr[method][-1]
        c = {}
        for m in baselines:
            if m not in fr:
                continue
            at = frontier_value_at(fr[m], end["pass@1"], k_max)
            if at is None:  # outside the baseline's pass@1 range: compare with its nearest end
                pts = sorted(fr[m], key=lambda p: p["pass@1"])
                nearest = pts[-1] if end["pass@1"] > pts[-1]["pass@1"] else pts[0]
                at, how = nearest[f"pass@{k_max}"], "nearest end"
            else:
                how = "interpolated"
            c[m] = {
                "baseline_pass_at_k": at,
                "trafl_pass_at_k": end[f"pass@{k_max}"],
                "how": how,
                "ok": end[f"pass@{k_max}"] > at,
            }
        checks["c_trafl_above_baseline_frontiers"] = {
            "trafl_end": end,
            "methods": c,
            "ok": bool(c) and all(v["ok"] for v in c.values()),
        }
    key = "order_entropy"
    mine = (analysis["methods"].get(method, {}).get(t, {}).get("paths") or {}).get(key)
    if mine is not None:
        others = {m: (analysis["methods"][m][t]["paths"] or {}).get(key) for m in baselines}
        checks["d_trafl_keeps_path_entropy"] = {
            "metric": key,
            "temperature": temperature,
            "trafl": mine,
            "baselines": others,
            "ok": all(v is not None and mine > v for v in others.values()),
        }
    return checks
