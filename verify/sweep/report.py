"""`dpo-verify sweep-report`: markdown tables and plots from a results store (read-only).

Per sweep: the trials grouped by parameters (mean of each numeric result over seeds); for a [search]
sweep, the value found per grid point; for the empirical-scaling search, Q_min(K) per regime next to
Theorem 4.3's Q_min(K), with the fit Q_min = a + b log K (b next to the theory's asymptotic slope).
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from theory.numbers import exact_rational
from verify.outputs import (check_existing_store, check_output_folder, path_inside, safe_file_name,
                            write_folder_atomically)
from verify.sweep.config import canonical_json, parse_config, trial_key
from verify.sweep.store import ResultStore, StoreError


def theory_slope() -> int:
    """The theory's asymptotic slope b of Q_min = a + b log K (`theory.scaling_law.BoundShape.log_K_slope`)."""
    from theory.scaling_law import SCALING_BOUND

    return int(SCALING_BOUND.log_K_slope)


def fit_log(Ks, Qs) -> tuple[float, float, float]:
    """Least squares Q = a + b ln K; returns (a, b, R^2) (R^2 = nan when Q is constant)."""
    x, y = np.log(np.asarray(Ks, float)), np.asarray(Qs, float)
    A = np.stack([np.ones_like(x), x], 1)
    (a, b), *_ = np.linalg.lstsq(A, y, rcond=None)
    total = float(((y - y.mean()) ** 2).sum())
    r2 = 1 - float(((y - A @ [a, b]) ** 2).sum()) / total if total > 0 else float("nan")
    return float(a), float(b), r2


def theory_Q_min(Ks, delta: float) -> dict[int, int]:
    from theory.scaling_law import samples_per_value_table

    return {k: q for k, _, q in samples_per_value_table(sorted(set(Ks)), exact_rational("delta", delta))}


def _numeric(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(header: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_fmt(x) for x in row) + " |" for row in rows]
    return out


def group_trials(trials: list[dict]) -> dict[str, list[dict]]:
    groups = defaultdict(list)
    for t in trials:
        groups[canonical_json(t["parameters"])].append(t)
    return groups


def search_table(config, trials: list[dict]) -> list[dict]:
    """Per grid point of a [search] sweep: the settled value and every value tried with its pooled outcome."""
    from verify.sweep import _search_histories, search_result
    from verify.sweep.experiments import EXPERIMENTS, resolve_target

    experiment = EXPERIMENTS[resolve_target(config.target)[1]]
    histories = _search_histories(config, trials)
    by_key = {t["key"]: t for t in trials}
    rows = []
    for index, point in enumerate(config.points):
        history = histories[index]
        tried = {}
        for value in sorted(history):
            results = [by_key[trial_key({**point, config.search.parameter: value}, s)]["result"] for s in config.seeds]
            errors, n = sum(r.get("errors", 0) for r in results), sum(r.get("n", 0) for r in results)
            tried[value] = dict(passes=history[value], errors=errors, n=n)
        rows.append(dict(point=point, found=search_result(history), tried=tried,
                         parameters=experiment.parameters(**point)))
    return rows


def _empirical_scaling_section(config, rows: list[dict], output: Path, name: str) -> list[str]:
    from verify import plots
    from verify.verdicts import clopper_pearson

    by_regime = defaultdict(dict)
    for row in rows:
        p = row["parameters"]
        label = p["regime"] if p["regime"] == "inside" else f"fixed-v (v = {p['v']:g}, d = {p['d']})"
        by_regime[label][p["K"]] = row
    delta = rows[0]["parameters"]["delta"]
    Ks = sorted({k for regime in by_regime.values() for k in regime})
    theory = theory_Q_min(Ks, delta)
    lines = [f"Q_min(K): the smallest Q whose errors, pooled over {len(config.seeds)} seeds, have a 95% Clopper–Pearson "
             f"upper bound below delta = {delta:g} (regime `inside` also needs Theorem 4.3's assumptions, Q >= 40 and "
             f"d <= 5Q among them). Search: Q doubled from {config.search.start}, then bisected to adjacent integers.", ""]
    header = ["K", "theory Q_min"] + [f"{label}: Q_min" for label in by_regime] + [f"{label}: risk at Q_min (95% CP upper)" for label in by_regime]
    table = []
    for K in Ks:
        row = [K, theory[K]]
        row += [by_regime[label].get(K, {}).get("found") for label in by_regime]
        for label in by_regime:
            found = by_regime[label].get(K, {})
            q = found.get("found")
            if q is None:
                row.append("-")
                continue
            outcome = found["tried"][q]
            row.append(f"{outcome['errors'] / outcome['n']:.4f} ({clopper_pearson(outcome['errors'], outcome['n'])[1]:.4f})")
        table.append(row)
    lines += _table(header, table) + [""]
    fits = [["theory (2KQ²e^{-Q/45} <= delta)", *fit_log(Ks, [theory[k] for k in Ks])]]
    for label, regime in by_regime.items():
        ks = [k for k in Ks if regime.get(k, {}).get("found") is not None]
        if len(ks) >= 2:
            fits.append([label, *fit_log(ks, [regime[k]["found"] for k in ks])])
    lines += [f"Fit Q_min = a + b ln K (the theory's asymptotic slope is {theory_slope()}):", ""]
    lines += _table(["curve", "a", "b", "R²"], [[c, a, b, r2] for c, a, b, r2 in fits]) + [""]

    fig, axes = plots.new_figure(1, 2, 11, 4)
    left, right = axes[0]
    left.plot(Ks, [theory[k] for k in Ks], "k-o", label=r"theory: $2KQ^2e^{-Q/45}\leq\delta$")
    for label, regime in by_regime.items():
        ks = [k for k in Ks if regime.get(k, {}).get("found") is not None]
        left.plot(ks, [regime[k]["found"] for k in ks], "-s", label=f"measured, {label}")
    left.set(xscale="log", yscale="log", xlabel="K (values)", ylabel=r"$Q_{\min}$ (samples per cluster)",
             title=f"Samples per value for risk < {delta:g}")
    left.legend(fontsize=7)
    for label, regime in by_regime.items():
        if label == "inside":
            continue
        for K in Ks:
            tried = regime.get(K, {}).get("tried", {})
            if tried:
                qs = sorted(tried)
                right.plot(qs, [tried[q]["errors"] / tried[q]["n"] for q in qs], "-o", ms=3, label=f"K = {K}")
    right.axhline(delta, color="grey", lw=0.8, ls="--")
    right.set(xscale="log", xlabel="Q", ylabel="test risk at $\\tau_1$ (pooled)", title="fixed-v: risk against Q")
    right.legend(fontsize=7, ncol=2)
    figure = plots.save(fig, _figure_path(output, f"{name}_scaling"))
    lines += [f"![empirical scaling law]({figure.name})", ""]
    return lines


def _figure_path(output: Path, stem: str) -> Path:
    """A PNG in `output` named after `stem` (made of sweep names and result fields from the store), sanitised
    to stay inside `output`; '-2', '-3', ... keeps apart two sweeps whose names sanitise alike."""
    base = safe_file_name(stem)[:100]  # room for the number within the name limit
    path, number = path_inside(output, base, ".png"), 2
    while path.exists():
        path = path_inside(output, f"{base}-{number}", ".png")
        number += 1
    return path


def write_sweep_report(store_path: Path | str, output: Path | str, option: str = "output") -> Path:
    """Write report.md and figures of every sweep in the store to the folder `output` (all or nothing, see
    verify.outputs); the store is checked, and only read, before anything is created."""
    store_path, output = Path(store_path), Path(output)
    check_existing_store(store_path)
    check_output_folder(output, option)
    with ResultStore(store_path) as store:
        sweeps = store.sweeps()
        if not sweeps:
            raise StoreError(f"store {store_path} holds no sweep")
        write_folder_atomically(output, lambda staging: _write_report(store, sweeps, store_path, staging),
                                kind="sweep-report", option=option)
    return output / "report.md"


def _write_report(store: ResultStore, sweeps: list[dict], store_path: Path, output: Path) -> None:
    lines = [f"# Sweep report: {store_path.name}", ""]
    for sweep in sweeps:
        trials = store.trials(sweep["sweep"])
        config = parse_config(sweep["config"])
        failed = [t for t in trials if t["error"] is not None]
        seconds = sum(t["seconds"] or 0 for t in trials)
        lines += [f"## {sweep['sweep']}", "",
                  f"target `{sweep['target']}`, fingerprint `{sweep['fingerprint']}`, {len(trials)} trials "
                  f"({len(failed)} failed), {seconds:.1f} s of trial time, seeds {list(config.seeds)}.", ""]
        if failed:
            lines += [f"First failure: `{failed[0]['key']}`: {failed[0]['error']}", ""]
        if config.search is not None:
            rows = search_table(config, trials)
            if config.target == "experiment:empirical-scaling":
                lines += _empirical_scaling_section(config, rows, output, sweep["sweep"])
            lines += [f"Search for the smallest `{config.search.parameter}` per grid point:", ""]
            lines += _table(["point", f"{config.search.parameter} found", "tried (value: errors/n, pass)"],
                            [[canonical_json(r["point"]), r["found"],
                              "; ".join(f"{q}: {o['errors']}/{o['n']} {'✓' if o['passes'] else '✗'}" for q, o in r["tried"].items())]
                             for r in rows]) + [""]
            continue
        groups = group_trials([t for t in trials if t["error"] is None])
        fields = sorted({k for t in trials if t["result"] for k, v in t["result"].items() if _numeric(v)})[:8]
        has_status = any(t["result"] and "status" in t["result"] for t in trials)
        header = ["parameters", "seeds"] + (["verdicts"] if has_status else []) + [f"mean {f}" for f in fields]
        rows = []
        for key, group in groups.items():
            row = [key, len(group)]
            if has_status:
                counts = defaultdict(int)
                for t in group:
                    counts[t["result"].get("status")] += 1
                row.append(", ".join(f"{s} {n}" for s, n in sorted(counts.items())))
            for f in fields:
                values = [t["result"][f] for t in group if _numeric(t["result"].get(f))]
                row.append(float(np.mean(values)) if values else "-")
            rows.append(row)
        lines += _table(header, rows) + [""]
        figure = _generic_plot([t for t in trials if t["error"] is None], fields, output, sweep["sweep"])
        if figure is not None:
            lines += [f"![{sweep['sweep']}]({figure.name})", ""]
    (output / "report.md").write_text("\n".join(lines))


def _generic_plot(trials: list[dict], fields: list[str], output: Path, name: str) -> Path | None:
    """Mean (over seeds) of one result field against the first numeric parameter that varies; one line per
    combination of the other parameters (at most 10). None when no parameter varies numerically."""
    if not trials or not fields:
        return None
    keys = sorted({k for t in trials for k in t["parameters"]})
    varying = [k for k in keys if len({canonical_json(t["parameters"].get(k)) for t in trials}) > 1
               and all(_numeric(t["parameters"].get(k)) for t in trials)]
    if not varying:
        return None
    x_name = varying[0]
    y_name = next((f for f in ("risk", "measured", "value") if f in fields), fields[0])
    lines = defaultdict(lambda: defaultdict(list))
    for t in trials:
        rest = canonical_json({k: v for k, v in t["parameters"].items() if k != x_name and k in varying})
        if _numeric(t["result"].get(y_name)):
            lines[rest][t["parameters"][x_name]].append(t["result"][y_name])
    from verify import plots

    fig, axes = plots.new_figure(1, 1, 6, 4)
    ax = axes[0, 0]
    for label, points in list(lines.items())[:10]:
        xs = sorted(points)
        ax.plot(xs, [np.mean(points[x]) for x in xs], "-o", ms=3, label=label if label != "{}" else None)
    ax.set(xlabel=x_name, ylabel=f"mean {y_name} over seeds", title=name)
    if any(label != "{}" for label in lines):
        ax.legend(fontsize=7)
    return plots.save(fig, _figure_path(output, f"{name}_{y_name}_against_{x_name}"))
