"""Plots for the notebooks and `dpo-verify run`: each takes the results of `verify.experiments` (or theory
objects) and returns a Figure. The sweep report and the real-data report draw with the same helpers
(`new_figure`, `save`, `fit_line`, `margins_per_K`).

One style: figures are built with matplotlib's object API (`new_figure`, no pyplot and no backend switch),
so importing this module leaves a notebook's backend alone; a returned Figure displays inline (as PNG,
through `_repr_png_`) and is written with `save`.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from theory.generalization import THEOREM_4_3
from theory.objectives import ObjectiveDerivation
from theory.symbols import K as K_symbol, Q as Q_symbol, r as r_symbol
from verify.fits import LinearFit
from verify.paper_data import PAPER_TABLES, FineTuningTable

if TYPE_CHECKING:  # annotations only: drawing a sweep or real-data figure should not run the simulations' imports
    from verify.experiments import EnvelopeRun, Lemma41Numeric, ObjectiveRun, RiskRow, ValueDiversity
    from verify.scaling_curves import ScalingCurves

DPI = 130


class NotebookFigure(Figure):
    """A Figure that Jupyter shows as PNG whatever backend is active (no pyplot, no inline backend needed)."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100)
        return buffer.getvalue()


def save(fig: Figure, path: Path, dpi: int = DPI) -> Path:
    """Write `fig` as PNG (Figure.savefig picks the Agg canvas itself; no backend is switched)."""
    fig.savefig(path, dpi=dpi)
    return Path(path)


def new_figure(rows: int, cols: int, width: float, height: float, **kwargs) -> tuple[Figure, np.ndarray]:
    """A Figure (constrained layout) and its axes as a rows x cols array."""
    fig = NotebookFigure(figsize=(width, height), layout="constrained")
    return fig, np.atleast_1d(fig.subplots(rows, cols, squeeze=False, **kwargs))


def fit_line(ax: Axes, fit: LinearFit, low: float, high: float, **style) -> None:
    """The fitted line y = a + b x drawn over [low, high]."""
    grid = np.linspace(low, high, 50)
    ax.plot(grid, fit(grid), **style)


def margins_per_K(train: Axes, test: Axes, curves: Iterable[tuple[int, np.ndarray, np.ndarray, np.ndarray]],
                  colors: Sequence | None = None) -> None:
    """Mean train and test margins against time, one line per K: `curves` yields (K, times, train, test)."""
    for index, (K, times, train_margin, test_margin) in enumerate(curves):
        style = {} if colors is None else {"color": colors[index]}
        train.plot(times, train_margin, label=f"K = {K}", **style)
        test.plot(times, test_margin, label=f"K = {K}", **style)


def margins_against_margin_ode(result: Lemma41Numeric) -> Figure:
    """Lemma 4.1: margins of the full-W flow (lines) on the margin ODE (dots), and their gap."""
    fig, axes = new_figure(1, 2, 9, 3.6)
    ax, gap = axes[0]
    for n in range(result.weight_flow.shape[1]):
        line, = ax.plot(result.times, result.weight_flow[:, n], lw=1.2)
        ax.plot(result.times, result.margin_ode[:, n], "o", ms=3, color=line.get_color())
    ax.plot([], [], "k-", label=r"full-W flow $\tau\dot W=-\nabla_W\mathcal{L}$ (autograd)")
    ax.plot([], [], "ko", ms=3, label=r"margin ODE, Eq. (3)")
    ax.set(xlabel="t", ylabel=r"reward margin $r_j(t)$", title=f"Lemma 4.1 (N = {result.weight_flow.shape[1]})")
    ax.legend(fontsize=7)
    difference = np.abs(result.weight_flow - result.margin_ode).max(1)
    gap.semilogy(result.times[1:], difference[1:], "k.-")
    gap.axhline(100 * result.rtol, color="grey", ls="--", lw=0.8, label=f"100 x solver rtol = {100 * result.rtol:g}")
    gap.set(xlabel="t", ylabel=r"$\max_j |r_j^{flow} - r_j^{ODE}|$", title="difference")
    gap.legend(fontsize=7)
    return fig


def envelope_grid(runs: Sequence[EnvelopeRun], cols: int = 2) -> Figure:
    """Theorem 4.2 for several (K, l_b): simulated margins between r_L and r_U up to tau_1, and u - W_0(e^u)."""
    rows = -(-len(runs) // cols)
    fig, axes = new_figure(rows, cols, 4.4 * cols, 3.2 * rows)
    for ax, run in zip(axes.flat, runs):
        ax.plot(run.times, run.margins, color="tab:blue", alpha=0.25, lw=2)
        ax.plot([], [], color="tab:blue", label=f"training margins (N = {run.margins.shape[1]})")
        ax.plot(run.times, run.r_L, "k--", label=r"$r_L=\beta^2t/(8K\tau)$")
        ax.plot(run.times, run.r_U, "k:", label=r"$r_U=5\beta^2t/(K\tau)$")
        ax.plot(run.times, run.idealised, color="tab:red", ls="-.", lw=1, label=r"idealised $u-W_0(e^u)$")
        ax.axvline(run.tau_1, color="grey", lw=0.8)
        ax.set(xlabel="t", ylabel="r(t)", title=f"K = {run.K}, $l_b$ = {run.l_b}, Q = {run.Q}, d = {run.d}")
    for ax in axes.flat[len(runs):]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7)
    return fig


def risk_against_bound(inside: Sequence[RiskRow], outside: Sequence[RiskRow], K: int) -> Figure:
    """Theorem 4.3: measured risk at tau_1 (95% upper bound where no error was seen) against 2KQ^2 e^{-Q/45}."""
    from verify.symbolic import numpy_function  # imports torch, which the other figures do not need

    fig, axes = new_figure(1, 1, 6, 4)
    ax = axes[0, 0]
    for label, rows in ((r"inside: $v=1/(32\sqrt{Q})$", inside), (f"outside: v = {outside[0].v:g}" if outside else "", outside)):
        if not rows:
            continue
        Qs = [row.Q for row in rows]
        line, = ax.plot(Qs, [row.upper for row in rows], "v--", label=f"{label}: 95% upper bound")
        seen = [(row.Q, row.rate) for row in rows if row.errors]
        if seen:
            ax.plot(*zip(*seen), "o", color=line.get_color(), label=f"{label}: measured")
    Qs = [row.Q for row in (*inside, *outside)]
    grid = np.geomspace(min(Qs), 2000, 200)
    bound = dict(((row.Q, row.bound) for row in (*inside, *outside)))
    ax.plot(sorted(bound), [bound[q] for q in sorted(bound)], "k+", ms=8)
    risk_bound = numpy_function(THEOREM_4_3.conclusions["risk_bound"].subs(K_symbol, K), Q_symbol)
    ax.plot(grid, risk_bound(grid), "k-", lw=1, label=r"bound $2KQ^2e^{-Q/45}$ (Thm 4.3)")
    ax.axhline(1, color="grey", lw=0.6)
    ax.set(xscale="log", yscale="log", ylim=(1e-4, 1e5), xlabel="Q (samples per cluster)",
           ylabel=r"population risk at $\tau_1$", title=f"Theorem 4.3, K = {K}")
    ax.legend(fontsize=7)
    return fig


def samples_per_value_comparison(curves: ScalingCurves) -> Figure:
    """Fig. 4: Q_min(K) for risk < delta, with the paper's K = 10 -> 875 point, and the predecessor's Q_min."""
    fig, axes = new_figure(1, 2, 10, 3.8)
    ax, both = axes[0]
    ax.plot(curves.K, curves.theorem_4_3, color="tab:blue", label=r"$Q_{\min}(K)$: $2KQ^2e^{-Q/45}\leq\delta$")
    ax.plot([10], [curves.K10_Q_min], "o", color="tab:blue")
    ax.plot([10], [curves.K10_paper], "x", color="tab:red", ms=9, label="paper: K = 10, 'more than 875'")
    ax.annotate(f"Q_min(10) = {curves.K10_Q_min} (root {curves.K10_root:.1f})", (10, curves.K10_Q_min),
                textcoords="offset points", xytext=(8, 8), fontsize=8)
    ax.set(xscale="log", xlabel="K (number of values)", ylabel="samples per value Q",
           title=f"Theorem 4.3, risk < {float(curves.delta):g}")
    ax.legend(fontsize=7)
    both.plot(curves.K, curves.theorem_4_3, color="tab:blue", label="Theorem 4.3: $e^{-Q/45}$")
    both.plot(curves.K, curves.predecessor, color="tab:orange", label=r"predecessor: $e^{-Q^{1/4}/6}$")
    both.set(xscale="log", yscale="log", xlabel="K (number of values)", ylabel="samples per value Q",
             title="against the predecessor's bound")
    both.legend(fontsize=7)
    return fig


def margins_by_K(result: ValueDiversity) -> Figure:
    """Fig. 5's analogue: mean train and test margins against time, one line per K, for each trainer."""
    trainers = sorted({name for name, _ in result.runs}, key=lambda n: n != "gradient flow")
    fig, axes = new_figure(len(trainers), 2, 9, 3.2 * len(trainers))
    for row, trainer in zip(axes, trainers):
        runs = [result.runs[trainer, K] for K in result.Ks]
        margins_per_K(row[0], row[1], [(K, run.times, run.train_margin, run.test_margin) for K, run in zip(result.Ks, runs)])
        unit = r"flow time $\beta^2 t/\tau$" if trainer == "gradient flow" else "Adam step"
        row[0].set(xlabel=unit, ylabel="mean reward margin", title=f"{trainer}: train")
        row[1].set(xlabel=unit, title=f"{trainer}: test")
    axes[0, 1].legend(fontsize=7)
    return fig


def test_error_against_K(result: ValueDiversity, tables: Sequence[FineTuningTable] = PAPER_TABLES,
                         control: ValueDiversity | None = None) -> Figure:
    """Linear fits of test error against K: the simulations (left; `control` dotted, e.g. a fixed d) and the
    paper's Tables 1-2 (right), with R^2."""
    fig, axes = new_figure(1, 2, 10, 3.8)
    sim, paper = axes[0]
    low, high = min(result.Ks), max(result.Ks)
    for trainer in sorted({name for name, _ in result.runs}):
        errors, fit = result.test_errors(trainer), result.fit(trainer)
        line, = sim.plot(result.Ks, errors, "o", label=f"{trainer}: $R^2$ = {fit.r_squared:.3f}")
        fit_line(sim, fit, low, high, ls="-", color=line.get_color(), lw=1)
        if control is not None:
            other = control.fit(trainer)
            sim.plot(control.Ks, control.test_errors(trainer), "^", mfc="none", color=line.get_color(),
                     label=f"{trainer}, d = {control.d}: slope {other.slope:.2g}")
            fit_line(sim, other, low, high, ls=":", color=line.get_color(), lw=1)
    sim.set(xlabel="K", ylabel="test error at the last time", title=f"data model P (v = {result.v:g}, Q = {result.Q}, d = {result.d or '2K + 2'})")
    sim.legend(fontsize=7)
    for table in tables:
        fit = table.error_fit()
        line, = paper.plot(table.K, table.test_error, "s", label=f"{table.model}: $R^2$ = {fit.r_squared:.3f}")
        fit_line(paper, fit, low, min(high, max(table.K)), ls="-", color=line.get_color(), lw=1)
    paper.set(xlabel="K", ylabel="test error", title="paper, Tables 1-2 (full fine-tuning)")
    paper.legend(fontsize=7)
    return fig


def objective_comparison(derivations: Sequence[ObjectiveDerivation], runs: Sequence[ObjectiveRun]) -> Figure:
    """§7: the weights -f'(r) that replace sigma(-r) in Eq. (3), and the mean training margins they produce."""
    from verify.symbolic import numpy_function  # imports torch, which the other figures do not need

    fig, axes = new_figure(1, 2, 10, 3.8)
    weights, margins = axes[0]
    grid = np.linspace(-1, 2.5, 351)
    for derivation, run in zip(derivations, runs):
        w = np.broadcast_to(numpy_function(derivation.weight, r_symbol)(grid), grid.shape).astype(float)
        line, = weights.plot(grid, w, label=f"{run.name}: $-f'(r)$")
        margins.plot(run.times, run.margins.mean(1), color=line.get_color(), label=f"{run.name}: simulated mean")
        if run.idealised is not None:
            margins.plot(run.times, run.idealised, ls="--", lw=1, color=line.get_color(), label=f"{run.name}: idealised closed form")
    weights.axhline(0, color="grey", lw=0.6)
    weights.set(xlabel="r", ylabel="weight", title="weight in Eq. (3)")
    weights.legend(fontsize=7)
    margins.set(xlabel="t", ylabel="mean training margin", title="margin dynamics on P (same sample)")
    margins.legend(fontsize=6)
    return fig


def minority_share_figure(rows, equal_split: float) -> Figure:
    """N needed against the minority's share (where the chain covers it), the equal split, and where it stops."""
    fig, axes = new_figure(1, 1, 6, 3.5)
    ax = axes[0, 0]
    ax.plot([float(row.share) for row in rows], [row.samples_needed for row in rows], "o-",
            label="N needed: 2 Q_min(K) / p (chain complete)")
    ax.axhline(equal_split, color="grey", ls="--", label=f"equal split: 2 K Q_min = {equal_split:g}")
    stops = [float(row.share) for row in rows if not row.covered]
    if stops:
        ax.axvspan(min(stops), max(stops), color="red", alpha=0.1, label="the proof stops")
    ax.set_xlabel("minority share p (two values)")
    ax.set_ylabel("total samples N")
    ax.legend(fontsize=8)
    return fig


def label_noise_figure(points, simulated: dict[float, float] | None = None) -> Figure:
    """The fixed point r*(eta) of the expected weight, where the chain holds, and simulated saturation levels."""
    fig, axes = new_figure(1, 1, 6, 3.5)
    ax = axes[0, 0]
    etas = [float(p.flip_rate) for p in points]
    ax.plot(etas, [p.fixed_point for p in points], "-", label="derived fixed point r*(eta)")
    covered = [p for p in points if p.covered]
    ax.plot([float(p.flip_rate) for p in covered], [p.fixed_point for p in covered], "o", ms=4,
            label="the chain (Theorems 4.2-4.3) goes through")
    if simulated:
        ax.plot(list(simulated), list(simulated.values()), "kx", ms=7, label="simulated saturation (v = 0)")
    ax.set_xlabel("flip rate eta")
    ax.set_ylabel("margin")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    return fig


def share_trajectories_figure(times, value_means, shares, derived) -> Figure:
    """Each value's simulated mean margin (dots) against its derived trajectory (lines)."""
    fig, axes = new_figure(1, 1, 6, 3.5)
    ax = axes[0, 0]
    for k, p in enumerate(shares):
        ax.plot(times, derived[k], "-", color=f"C{k}", label=f"derived, p = {float(p):.2f}")
        ax.plot(times, value_means[:, k], "o", color=f"C{k}", ms=4)
    ax.set_xlabel("t (beta = tau = 1)")
    ax.set_ylabel("value's mean margin")
    ax.legend(fontsize=8)
    return fig
