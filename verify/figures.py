"""Figures of the report: the paper's Figs. 4 and 5 and the two theorems, drawn from simulations and `theory/`."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import sympy as sp  # noqa: E402
import torch  # noqa: E402

from theory.closed_forms import idealised_margin  # noqa: E402
from theory.generalization import THEOREM_4_3  # noqa: E402
from theory.scaling_law import samples_per_value, samples_per_value_table  # noqa: E402
from theory.symbols import K as K_symbol, Q as Q_symbol, beta as beta_symbol, t, tau as tau_symbol  # noqa: E402
from theory.training_guarantee import THEOREM_4_2  # noqa: E402
from verify.data_model import DiverseValueDistribution  # noqa: E402
from verify.symbolic import numpy_function  # noqa: E402
from verify.training import gradient_flow, zero_one_risk  # noqa: E402


def _at(expr: sp.Expr, **values) -> sp.Expr:
    symbols = {"K": K_symbol, "beta": beta_symbol, "tau": tau_symbol, "Q": Q_symbol}
    return expr.subs({symbols[k]: v for k, v in values.items()})


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def training_envelope(path: Path, K: int = 4, Q: int = 16, l_b: float = 0.5, beta: float = 1.0, tau: float = 1.0,
                      seed: int = 0) -> Path:
    """Theorem 4.2: simulated margins between r_L and r_U up to tau_1, with the idealised Lambert-W margin."""
    model = DiverseValueDistribution(K=K, d=min(5 * Q, 2 * K + 2), v=1 / (32 * math.sqrt(Q)), l_b=l_b)
    horizon = float(_at(THEOREM_4_2.conclusions["tau_1"], K=K, beta=beta, tau=tau))
    times = torch.linspace(0, horizon, 41, dtype=torch.float64)
    margins = gradient_flow(model.sample([seed], Q), beta, tau, times).train_margins[0].numpy()
    grid = times.numpy()
    curve = lambda name: numpy_function(_at(THEOREM_4_2.conclusions[name], K=K, beta=beta, tau=tau), t)(grid)
    ideal = numpy_function(_at(idealised_margin(), K=K, beta=beta, tau=tau), t)(grid)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(grid, margins, color="tab:blue", alpha=0.3, lw=2.5)
    ax.plot([], [], color="tab:blue", label=f"training margins (N = {margins.shape[1]})")
    ax.plot(grid, curve("r_L"), "k--", label=r"$r_L = \beta^2 t/(8K\tau)$")
    ax.plot(grid, curve("r_U"), "k:", label=r"$r_U = 5\beta^2 t/(K\tau)$")
    ax.plot(grid, ideal, color="tab:red", lw=1, ls="-.", label=r"idealised $u - W_0(e^u)$")
    ax.axvline(horizon, color="grey", lw=0.8)
    ax.text(horizon, ax.get_ylim()[1] * 0.95, r" $\tau_1$", va="top")
    ax.set(xlabel="t", ylabel="reward margin r(t)", title=f"Theorem 4.2 (K = {K}, Q = {Q}, $l_b$ = {l_b}, seed {seed})")
    ax.legend(fontsize=8)
    return _save(fig, path)


def risk_against_Q(path: Path, K: int = 2, Qs=(8, 16, 32, 64), fixed_v: float = 0.5, l_b: float = 0.5,
                   test_size: int = 2000, seeds=(0, 1), beta: float = 1.0, tau: float = 1.0) -> Path:
    """Theorem 4.3: empirical risk at tau_1 (95% Clopper–Pearson upper bound) against 2KQ^2 e^{-Q/45}."""
    bound = numpy_function(_at(THEOREM_4_3.conclusions["risk_bound"], K=K), Q_symbol)
    horizon = float(_at(THEOREM_4_2.conclusions["tau_1"], K=K, beta=beta, tau=tau))
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, v_of in ((r"inside: $v = 1/(32\sqrt{Q})$", lambda q: 1 / (32 * math.sqrt(q))),
                        (f"outside: v = {fixed_v}", lambda q: fixed_v)):
        rates, uppers = [], []
        for q in Qs:
            model = DiverseValueDistribution(K=K, d=min(5 * q, 2 * K + 2), v=v_of(q), l_b=l_b)
            result = gradient_flow(model.sample(list(seeds), q), beta, tau, [0.0, horizon],
                                   test=model.test_set(list(seeds), test_size))
            risk = zero_one_risk(result.test_margins[:, -1].reshape(1, -1))
            rates.append(float(risk.rate[0])), uppers.append(float(risk.upper[0]))
        line, = ax.plot(Qs, uppers, marker="v", ls="--", label=f"{label}: 95% upper bound")
        measured = [(q, rate) for q, rate in zip(Qs, rates) if rate > 0]
        if measured:
            ax.plot(*zip(*measured), marker="o", ls="none", color=line.get_color(), label=f"{label}: measured")
    grid = np.geomspace(min(Qs), 2000, 200)
    ax.plot(grid, bound(grid), "k-", label=r"bound $2KQ^2e^{-Q/45}$")
    ax.axhline(1, color="grey", lw=0.6)
    ax.set(xscale="log", yscale="log", ylim=(1e-4, 1e5), xlabel="Q (samples per cluster)", ylabel="population risk at $\\tau_1$",
           title=f"Theorem 4.3 (K = {K}, test n = {test_size * len(seeds)})")
    ax.legend(fontsize=7)
    return _save(fig, path)


def samples_per_value_curve(path: Path, delta: float = 0.05, K_max: int = 1000) -> Path:
    """Fig. 4's analogue: the smallest Q with 2KQ^2 e^{-Q/45} <= delta, against K."""
    rows = samples_per_value_table(range(1, K_max + 1), sp.nsimplify(delta))
    Ks, Qmin = [row[0] for row in rows], [row[2] for row in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(Ks, Qmin, color="tab:blue", label=r"$Q_{\min}(K)$ from $2KQ^2e^{-Q/45}\leq\delta$")
    ten = samples_per_value(10, sp.nsimplify(delta)).Q_min
    ax.plot([10], [ten], "o", color="tab:red")
    ax.annotate(f"K = 10: Q = {ten}  (paper: 'more than 875')", (10, ten), textcoords="offset points", xytext=(8, -14), fontsize=8)
    ax.set(xscale="log", xlabel="K (number of values)", ylabel="samples per value", title=f"Scaling law, risk < {delta}")
    ax.legend(fontsize=8)
    return _save(fig, path)


def margin_growth_by_K(path: Path, Ks=(1, 2, 4, 8, 16), Q: int = 8, l_b: float = 0.5, v: float = 0.1,
                       beta: float = 1.0, tau: float = 1.0, horizon: float = 20.0, seed: int = 0) -> Path:
    """Fig. 5's analogue on the paper's data model: mean train and test margins, faster for smaller K."""
    times = torch.linspace(0, horizon, 41, dtype=torch.float64)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for K in Ks:
        model = DiverseValueDistribution(K=K, d=2 * K + 2, v=v, l_b=l_b)
        result = gradient_flow(model.sample([seed], Q), beta, tau, times, test=model.test_set([seed], 400))
        axes[0].plot(times, result.train_margins[0].mean(-1), label=f"K = {K}")
        axes[1].plot(times, result.test_margins[0].mean(-1), label=f"K = {K}")
    axes[0].set(xlabel="t", ylabel="mean reward margin", title="train")
    axes[1].set(xlabel="t", title="test")
    axes[1].legend(fontsize=8)
    fig.suptitle(f"Margin growth by K (gradient flow, Q = {Q}, v = {v}, $l_b$ = {l_b})", fontsize=10)
    return _save(fig, path)


FIGURES = {
    "training_envelope.png": training_envelope,
    "risk_against_Q.png": risk_against_Q,
    "samples_per_value.png": samples_per_value_curve,
    "margin_growth_by_K.png": margin_growth_by_K,
}
