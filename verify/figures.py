"""Figures of the `dpo-verify run` report: the simulations of `verify.experiments` drawn by `verify.plots`
(the same functions the notebooks use), saved as PNG."""
from __future__ import annotations

from pathlib import Path

from theory.numbers import exact_rational

from verify import plots
from verify.scaling_curves import scaling_curves


def training_envelope(path: Path, K: int = 4, Q: int = 16, l_b: float = 0.5, seed: int = 0) -> Path:
    """Theorem 4.2: simulated margins between r_L and r_U up to tau_1, with the idealised Lambert-W margin."""
    from verify import experiments  # torch: imported by the figures that simulate, not by `dpo-verify scaling`

    return plots.save(plots.envelope_grid([experiments.envelope_run(K, l_b, Q, seed=seed)], cols=1), path)


def risk_against_Q(path: Path, K: int = 2, Qs=(8, 16, 32, 64), fixed_v: float = 0.5) -> Path:
    """Theorem 4.3: empirical risk at tau_1 inside the conditions and at a fixed noise, against the bound."""
    from verify import experiments

    inside = experiments.risk_against_Q(K, Qs, "theorem")
    outside = experiments.risk_against_Q(K, Qs, "fixed", fixed_v)
    return plots.save(plots.risk_against_bound(inside, outside, K), path)


def samples_per_value_curve(path: Path, delta: float = 0.05, K_max: int = 1000) -> Path:
    """Fig. 4's analogue: Q_min(K) with the paper's K = 10 point, and the predecessor's bound."""
    return plots.save(plots.samples_per_value_comparison(scaling_curves(exact_rational("delta", delta), K_max)), path)


def margin_growth_by_K(path: Path, Ks=(1, 2, 4, 8, 16)) -> Path:
    """Fig. 5's analogue on the paper's data model: mean train and test margins, gradient flow and Adam."""
    from verify import experiments

    return plots.save(plots.margins_by_K(experiments.value_diversity(Ks)), path)


FIGURES = {
    "training_envelope.png": training_envelope,
    "risk_against_Q.png": risk_against_Q,
    "samples_per_value.png": samples_per_value_curve,
    "margin_growth_by_K.png": margin_growth_by_K,
}
