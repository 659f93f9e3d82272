"""Figures of the real-data report, drawn in the one style of `verify.plots` (object API, no pyplot)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from verify import plots
from verify.fits import LinearFit
from verify.real.last_layer import LastLayerRun
from verify.real.pipeline import RealAnalysis
from verify.real.statistics import PAPER_COVARIANCE_FROBENIUS, PAPER_MEAN_SQUARED_DISTANCE, ClusterSpread

LABEL_LENGTH = 28  # longer persona names are cut so that the matrix labels stay legible


def write_figures(folder: Path, analysis: RealAnalysis) -> list[str]:
    """Draw every figure of the report into `folder`; return their file names in the order the report shows them."""
    a = analysis
    figures = {
        "cosine_matrices.png": cosine_matrices(a.personas, a.cosine_raw, a.cosine_centred),
        "last_layer_margins.png": margins_and_error(
            a.runs, a.error_fit, "Last-layer DPO (beta = 0.01, Adam lr 1e-3, full batch), cf. paper Fig. 5(a, b)"),
        "gradient_descent_margins.png": margins_and_error(
            a.gd_runs, a.gd_error_fit,
            f"Last-layer DPO, full-batch gradient descent (eta = {a.eta:.4g}, the theory's dynamics)"),
        "cluster_spread.png": cluster_spread_scatter(a.spreads_plus),
    }
    for name, fig in figures.items():
        plots.save(fig, folder / name)
    return list(figures)


def _short(name: str) -> str:
    return name if len(name) <= LABEL_LENGTH else name[:LABEL_LENGTH - 2] + "…"


def cosine_matrices(names: list[str], raw: np.ndarray, centred: np.ndarray) -> Figure:
    """Fig. 3's analogue: persona x persona mean cosine, raw and after subtracting the global mean."""
    fig, axes = plots.new_figure(1, 2, 17, 7.5)
    short = [_short(n) for n in names]
    for ax, M, title in ((axes[0, 0], raw, "(a) mean cosine, raw embeddings"),
                         (axes[0, 1], centred, "(b) after subtracting the global mean")):
        lim = float(np.abs(M).max())
        image = ax.imshow(M, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.set_title(title)
        ax.set_xticks(range(len(names)), short, rotation=90, fontsize=6)
        ax.set_yticks(range(len(names)), short, fontsize=6)
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.suptitle("Persona x persona cosine similarity (' Yes' statements), cf. paper Fig. 3")
    return fig


def margins_and_error(runs: list[LastLayerRun], fit: LinearFit, title: str) -> Figure:
    """Fig. 5(a, b)'s analogue: train and test margins per step, one line per K, and test error against K."""
    fig, axes = plots.new_figure(1, 3, 16, 4.5)
    train, test, error = axes[0]
    colors = colormaps["viridis"](np.linspace(0, 0.9, len(runs)))
    plots.margins_per_K(train, test, [(r.K, r.steps, r.train_margin, r.test_margin) for r in runs], colors)
    for ax, panel in ((train, "(a) train reward margin"), (test, "(b) test reward margin")):
        ax.set(xlabel="step", ylabel="mean margin r", title=panel)
        ax.legend()
    Ks = np.array([r.K for r in runs])
    err = np.array([r.test_error for r in runs])
    lo = np.array([r.test_error_interval[0] for r in runs])
    hi = np.array([r.test_error_interval[1] for r in runs])
    error.errorbar(Ks, err, yerr=[err - lo, hi - err], fmt="o", capsize=3, label="test error (95% CP)")
    r2 = f"R² = {fit.r_squared:.3f}" if math.isfinite(fit.r_squared) else "R² undefined (flat errors)"
    plots.fit_line(error, fit, Ks.min(), Ks.max(), ls="--", label=f"linear fit, {r2}")
    error.set(xlabel="K (number of values)", ylabel="test error", title="(c) test error vs K")
    error.legend()
    fig.suptitle(title)
    return fig


def cluster_spread_scatter(spreads_plus: list[ClusterSpread]) -> Figure:
    """App. E: mean squared distance to the cluster mean against ||Cov||_F, per persona, next to the paper's average."""
    fig, axes = plots.new_figure(1, 1, 6, 4.5)
    ax = axes[0, 0]
    ax.scatter([s.mean_squared_distance for s in spreads_plus], [s.covariance_frobenius for s in spreads_plus],
               label="this encoder, C_{i,+} clusters")
    ax.scatter([PAPER_MEAN_SQUARED_DISTANCE], [PAPER_COVARIANCE_FROBENIUS], marker="*", s=200, color="red",
               label="paper, Llama-3.1-8B (average)")
    ax.set(xlabel="mean squared distance to the cluster mean", ylabel="||Cov||_F",
           title="Cluster spread, unit norm on average (App. E)")
    ax.legend()
    return fig
