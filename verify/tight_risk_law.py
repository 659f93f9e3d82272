"""The tight risk law (`theory.tight_risk_law`) against the exact risk of models trained on P.

For one point (K, Q, d, v, l_b, token layout, Def. C.1's delta) and a batch of training draws this measures:

- the exact population risk R(P) of each model trained by gradient flow to tau_1 (`verify.exact_risk`);
- the law's conditional risk for the same draw: the direction with equal weights (leading order) and with the
  first correction of the weights, lambda_n ~ (log 2 - log(1 + e^{-r_n}))/r_n from the leading-order margins
  r_n at tau_1; their distance to the exact risk is the approximation error, in decades (|log10 ratio|);
- the law's bound B (probability >= 1 - delta' over training sets, union over the 2K clusters) and the trials
  in which R > B;
- the calibration of the law's distribution: per trial, one cluster's leading-order margin z goes through the
  law's distribution function at that cluster's own geometry (P, M2, U2, g2 measured from the layout and the
  cluster means), u = Pr_law[z' < z]. Under the law the u are independent and uniform, which a
  Kolmogorov-Smirnov test checks (exact p-value); the cluster rotates with the trial index;
- the law's mean risk E[R] (Gil-Pelaez) next to the measured mean of R, where the risk is not astronomically small.

Every number the law gives is read from the Statement passed in, so a falsified copy (`verify.mutants`) changes
what is measured against.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import mpmath
import numpy as np
import sympy as sp
import torch
from scipy import integrate, special, stats

from theory.generalization import THEOREM_4_3
from theory.numbers import float_at_most
from theory.symbols import Q as Q_sym, d as d_sym, v as v_sym
from theory.tight_risk_law import (TIGHT_RISK_LAW, direction_norm_squared, mean_norm_squared, preference_weight,
                                   projection, risk_bound)
from verify.data_model import DiverseValueDistribution, token_layout
from verify.exact_risk import LOG10, exact_risk, log_normal_tail

# Below this leading-order risk the law's mean E[R] is not compared: the mean over a few training sets of a
# risk of 1e-300 says nothing about its expectation, which the rare draws with a small margin dominate.
MEAN_COMPARISON_FLOOR = 1e-12


@dataclass(frozen=True)
class Point:
    """One setting of the data model; v None means Theorem 4.3's boundary 1/(32 sqrt Q) (the largest float)."""

    name: str
    K: int
    Q: int
    d: int
    v: float | None
    l_b: float
    tokens: str = "disjoint"
    delta: float = 0.0

    @property
    def noise(self) -> float:
        return float_at_most(THEOREM_4_3.v_boundary(self.Q)) if self.v is None else float(self.v)

    def distribution(self) -> DiverseValueDistribution:
        return DiverseValueDistribution(self.K, self.d, self.noise, self.l_b, delta=self.delta,
                                        tokens=token_layout(self.tokens, self.K))


# Inside Theorem 4.3's assumptions (v at its boundary, d <= 5Q, Q >= 40, Z <= 1/(4 l_b^2)) and outside them:
# the sweep's fixed noise (v = 1/2 with d = 130 and d = 2K + 2), shared tokens (Z = 3), delta-orthogonal concepts,
# and a noise above the floor (v = 1 > v* = 0.61 at a target risk of 0.05).
POINTS = {point.name: point for point in (
    Point("inside-disjoint", K=4, Q=40, d=12, v=None, l_b=0.25, tokens="disjoint"),
    Point("inside-chain", K=4, Q=40, d=12, v=None, l_b=0.25, tokens="chain"),
    Point("fixed-noise-d130", K=2, Q=36, d=130, v=0.5, l_b=0.5),
    Point("fixed-noise-2K+2", K=8, Q=5, d=18, v=0.5, l_b=0.5),
    Point("shared-hub", K=6, Q=20, d=16, v=0.3, l_b=0.25, tokens="grouped:3"),
    Point("orthogonal-delta", K=4, Q=20, d=12, v=0.3, l_b=0.25, tokens="chain", delta=0.3),
    Point("above-floor", K=2, Q=10, d=200, v=1.0, l_b=0.5),
)}


# --- the law's pieces on a training draw ----------------------------------------------------------------------
def preference_gram(dist: DiverseValueDistribution) -> np.ndarray:
    """W_ka = D_k . D_a over the 2K clusters (D_a = y_w - y_l of cluster a, swapped on C_{i,-})."""
    chosen, rejected = (x.numpy() for x in dist.cluster_tokens())
    D = np.zeros((2 * dist.K, dist.vocabulary_size))
    D[np.arange(2 * dist.K), chosen] += 1
    D[np.arange(2 * dist.K), rejected] -= 1
    return D @ D.T


def cluster_geometry(dist: DiverseValueDistribution, means: torch.Tensor) -> dict[str, np.ndarray]:
    """Per trial and cluster (B, 2K): P = m~ . mu_k, M2 = |m~|^2, U2 = |mu_k|^2, g2 = sum_a W_ka^2 / 2, with
    m~_k = sum_a W_ka mu_a / 2 (= sum_i G_ji c_i on P)."""
    W = torch.as_tensor(preference_gram(dist), dtype=means.dtype)
    direction = torch.einsum("ka,bad->bkd", W, means) / 2
    return {"P": (direction * means).sum(2).numpy(), "M2": (direction * direction).sum(2).numpy(),
            "U2": (means * means).sum(2).numpy(), "g2": np.broadcast_to((W * W).sum(1).numpy() / 2, means.shape[:2])}


def directions(features: torch.Tensor, W: torch.Tensor, Q: int, weights: torch.Tensor | None = None) -> torch.Tensor:
    """a_k = sum_a W_ka sum_{n in a} w_n g_n for a stratified sample (B, 2K Q, d); weights (B, 2K, Q) or None (= 1)."""
    B, _, d = features.shape
    grouped = features.view(B, W.shape[0], Q, d)
    sums = grouped.sum(2) if weights is None else (weights[..., None] * grouped).sum(2)
    return torch.einsum("ka,bad->bkd", W, sums)


def standardised_margins(a: torch.Tensor, means: torch.Tensor, v: float) -> np.ndarray:
    """z_k = a_k . mu_k / (v |a_k|), (B, 2K)."""
    return ((a * means).sum(2) / (v * a.norm(dim=2))).numpy()


def log_risk(z: np.ndarray) -> np.ndarray:
    """ln R(P) = ln mean_k Phi(-z_k) per trial, in log space."""
    return special.logsumexp(log_normal_tail(z), axis=1) - math.log(z.shape[1])


def first_order_weights(features: torch.Tensor, W: torch.Tensor, Q: int, leading: torch.Tensor, beta: float,
                        tau: float, horizon: float) -> torch.Tensor:
    """lambda_n / mean, from the leading-order margins at tau_1: r_n = beta^2/(N tau) (tau_1/2) a_{k(n)} . g_n,
    then (log 2 - log(1 + e^{-r_n}))/r_n (margins growing linearly to r_n; `derive_weight_correction`)."""
    B, N, d = features.shape
    grouped = features.view(B, W.shape[0], Q, d)
    margins = beta**2 / (N * tau) * (horizon / 2) * torch.einsum("bkd,bkqd->bkq", leading, grouped)
    weights = (math.log(2) - torch.log1p(torch.exp(-margins))) / margins
    weights = torch.where(margins.abs() < 1e-12, torch.full_like(weights, 0.5), weights)
    return weights / weights.mean(dim=(1, 2), keepdim=True)


@dataclass(frozen=True)
class LawOnDraw:
    """The law's conditional margins and risks on given training draws."""

    leading_z: np.ndarray  # (B, 2K)
    leading_log_risk: np.ndarray  # (B,)
    corrected_log_risk: np.ndarray  # (B,)


def law_on_draw(dist: DiverseValueDistribution, sample, beta: float, tau: float, horizon: float) -> LawOnDraw:
    W = torch.as_tensor(preference_gram(dist), dtype=sample.features.dtype)
    leading = directions(sample.features, W, sample.per_cluster)
    z0 = standardised_margins(leading, sample.means, dist.v)
    weights = first_order_weights(sample.features, W, sample.per_cluster, leading, beta, tau, horizon)
    z1 = standardised_margins(directions(sample.features, W, sample.per_cluster, weights), sample.means, dist.v)
    return LawOnDraw(z0, log_risk(z0), log_risk(z1))


# --- the law's distribution function, in float64 (the calibration's per-trial u) -----------------------------------
def chi_log_density_float(y: np.ndarray, k: int, noncentrality_squared: float) -> np.ndarray:
    """log f of the noncentral chi (k degrees, noncentrality sqrt(noncentrality_squared)), float64: the
    exponentially scaled Bessel function keeps it finite for any argument."""
    y = np.asarray(y, dtype=float)
    if noncentrality_squared == 0:
        return (k - 1) * np.log(y) - y * y / 2 - (k / 2 - 1) * math.log(2) - special.gammaln(k / 2)
    w = math.sqrt(noncentrality_squared)
    return (np.log(y) + (k / 2 - 1) * (np.log(y) - math.log(w)) - (y - w) ** 2 / 2
            + np.log(special.ive(k / 2 - 1, w * y)))


def failure_probability_float(threshold: float, scale: float, gaussian_mean: float, chi_noncentrality: float,
                              chi_degrees: int) -> float:
    """Pr[z < threshold] of the law in float64 (the mpmath one is `theory.tight_risk_law.ClusterLaw`)."""
    if threshold <= -scale:
        return 0.0
    if threshold >= scale:
        return 1.0
    kappa = threshold / math.sqrt(scale**2 - threshold**2)
    second = chi_noncentrality + chi_degrees
    centre = math.sqrt(second)
    width = math.sqrt(2 * (chi_degrees + 2 * chi_noncentrality)) / (2 * centre)
    low, high = max(0.0, centre - 12 * width), centre + 12 * width
    integrand = lambda y: math.exp(float(special.log_ndtr(kappa * y - gaussian_mean)
                                         + chi_log_density_float(y, chi_degrees, chi_noncentrality)))
    points = [centre + j * width for j in (-4, -2, -1, 0, 1, 2, 4) if low < centre + j * width < high]
    value, _ = integrate.quad(integrand, low, high, points=points, limit=200, epsabs=0, epsrel=1e-10)
    return min(max(value, 0.0), 1.0)


def law_parameters(statement, Q: int, d: int, v: float, P, M2, U2, g2) -> tuple:
    """(T, nu, omega^2, k) of the statement's per-cluster law at a geometry (arrays broadcast)."""
    args = (Q_sym, d_sym, v_sym, projection, direction_norm_squared, mean_norm_squared, preference_weight)
    c = statement.conclusions
    f = lambda name: sp.lambdify(args, c[name], "numpy")(Q, d, v, P, M2, U2, g2)
    return f("margin_scale"), f("gaussian_mean"), np.maximum(f("chi_noncentrality"), 0.0), int(f("chi_degrees"))


# --- one point ----------------------------------------------------------------------------------------------------
@dataclass
class PointMeasurement:
    point: Point
    seeds: list[int]
    v: float
    Z: int
    unmet_paper: list[str]  # Theorem 4.3's assumptions that fail here ([] = inside)
    unmet_law: list[str]
    log_risk: np.ndarray  # exact ln R per trial
    leading_log_risk: np.ndarray
    corrected_log_risk: np.ndarray
    log_bound: float
    threshold: float
    level: float
    above_bound: list[bool]
    calibration: np.ndarray  # u per trial
    calibration_p: float  # KS p-value
    mean_law: float | None

    @property
    def leading_error(self) -> np.ndarray:
        """|log10 R_law - log10 R_exact| per trial, leading order."""
        return np.abs(self.leading_log_risk - self.log_risk) / LOG10

    @property
    def corrected_error(self) -> np.ndarray:
        return np.abs(self.corrected_log_risk - self.log_risk) / LOG10

    @property
    def decades_below_bound(self) -> np.ndarray:
        return (self.log_bound - self.log_risk) / LOG10

    @property
    def mean_risk(self) -> float:
        return float(np.exp(special.logsumexp(self.log_risk) - math.log(len(self.log_risk))))


def measure_point(point: Point, seeds: list[int], beta: float = 1.0, tau: float = 1.0, delta_prime: float = 0.05,
                  statement=TIGHT_RISK_LAW) -> PointMeasurement:
    from verify.training import gradient_flow, tau_1

    dist = point.distribution()
    v, Z = dist.v, dist.Z_pairs
    law_values = dict(d=point.d, K=point.K, v=v, Z=Z, delta=point.delta, l_b=point.l_b, delta_prime=delta_prime)
    unmet_law = statement.unmet_among(law_values)
    unmet_paper = THEOREM_4_3.unmet(Z=Z, d=point.d, v=v, Q=point.Q, l_b=point.l_b)
    horizon = tau_1(point.K, beta, tau)
    sample = dist.sample(seeds, point.Q)
    trained = gradient_flow(sample, beta, tau, [0.0, horizon])
    exact = exact_risk(dist, seeds, trained.rows, trained.delta_rows, beta)
    law = law_on_draw(dist, sample, beta, tau, horizon)

    bound = risk_bound(statement, point.K, point.Q, point.d, v, point.l_b, Z, point.delta, delta_prime)
    above = [bool(x > bound.log_bound) for x in exact.log_risk]

    geometry = cluster_geometry(dist, sample.means)
    T, nu, omega2, k = law_parameters(statement, point.Q, point.d, v, geometry["P"], geometry["M2"], geometry["U2"],
                                      geometry["g2"])
    clusters = [b % (2 * point.K) for b in range(len(seeds))]
    u = np.array([failure_probability_float(float(law.leading_z[b, c]), float(T[b, c]), float(nu[b, c]),
                                            float(omega2[b, c]), k) for b, c in enumerate(clusters)])
    p_value = float(stats.kstest(u, "uniform").pvalue)

    mean_law = None
    if float(mpmath.ncdf(-bound.law.leading_margin)) > MEAN_COMPARISON_FLOOR:
        value = bound.law.expected_risk()  # at the worst geometry: the mean itself for disjoint tokens, delta = 0
        mean_law = None if value is None else float(value)
    return PointMeasurement(point, list(seeds), v, Z, unmet_paper, unmet_law, exact.log_risk, law.leading_log_risk,
                            law.corrected_log_risk, bound.log_bound, float(bound.threshold), float(bound.level), above,
                            u, p_value, mean_law)


# --- the law sampled, and the sweep's resolution -----------------------------------------------------------------
def sample_law_risks(K: int, Q: int, d: int, v: float, l_b: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """n draws of R(P) from the law itself (disjoint tokens, delta = 0), without training: per pair the direction
    is c + xi, xi ~ N(0, v^2/(2Q) I_d) (step 2), so z_+- = (1 + xi_c +- l_b xi_1) / (v |c + xi|)."""
    sigma = v / math.sqrt(2 * Q)
    along = 1 + sigma * rng.standard_normal((n, K))
    bias = sigma * rng.standard_normal((n, K))
    rest = sigma**2 * rng.chisquare(d - 2, (n, K)) if d > 2 else np.zeros((n, K))
    norm = v * np.sqrt(along**2 + bias**2 + rest)
    z = np.concatenate([(along + l_b * bias) / norm, (along - l_b * bias) / norm], axis=1)
    return special.ndtr(-z).mean(axis=1)


@dataclass(frozen=True)
class SweepRule:
    """The flagship sweep's pass rule (benchmarks/sweeps/empirical_scaling.md): the test errors of `seeds` trained
    models on `test_size` fresh draws each, pooled; a Q passes when their 95% Clopper-Pearson upper bound < delta."""

    seeds: int = 8
    test_size: int = 20000
    delta: float = 0.05

    def pass_probability(self, K: int, Q: int, d: int, v: float, l_b: float, replicates: int,
                         rng: np.random.Generator) -> float:
        from verify.verdicts import clopper_pearson

        risks = sample_law_risks(K, Q, d, v, l_b, replicates * self.seeds, rng).reshape(replicates, self.seeds)
        errors = rng.binomial(self.test_size, risks).sum(axis=1)
        _, upper = clopper_pearson(errors, self.seeds * self.test_size)
        return float(np.mean(upper < self.delta))

    def resolution(self, K: int, d: int, v: float, l_b: float, around: int, replicates: int = 2000, seed: int = 0,
                   low_probability: float = 0.025, high_probability: float = 0.975) -> tuple[int, int, dict[int, float]]:
        """(Q_lo, Q_hi): the Qs where the law gives the rule a pass probability of 2.5% and 97.5% (the first Q at
        or above each), searched outwards from `around`; and every pass probability computed."""
        rng = np.random.default_rng(seed)
        probability: dict[int, float] = {}
        p = lambda Qv: probability.setdefault(Qv, self.pass_probability(K, Qv, d, v, l_b, replicates, rng))
        low = max(1, around)
        while low > 1 and p(low - 1) >= low_probability:
            low -= 1
        while p(low) < low_probability:
            low += 1
        high = low
        while p(high) < high_probability:
            high += 1
        return low, high, dict(sorted(probability.items()))


# --- the figure and the comparison table (benchmarks/tight_risk_law.py) --------------------------------------------
@dataclass(frozen=True)
class CurvePoint:
    """At one Q: the exact log10 R of each trained model, the law's log10 B (1 - delta'), its leading-order
    log10 Phi(-z) and mean log10 E[R] (None below MEAN_COMPARISON_FLOOR), and Theorem 4.3's log10 bound."""

    Q: int
    log10_exact: tuple[float, ...]
    log10_bound: float
    log10_leading: float
    log10_mean: float | None
    log10_paper: float


@dataclass(frozen=True)
class Curve:
    label: str
    K: int
    d: int
    v: float | None  # None: Theorem 4.3's boundary 1/(32 sqrt Q)
    points: tuple[CurvePoint, ...]


def risk_curve(K: int, d: int, v: float | None, Qs, seeds, l_b: float = 0.5, delta_prime: float = 0.05,
               statement=TIGHT_RISK_LAW) -> Curve:
    """The law, the paper's bound and the exact risk of trained models (beta = tau = 1, disjoint tokens) against Q."""
    import mpmath

    from theory.generalization import THEOREM_4_3 as paper
    from verify.training import gradient_flow, tau_1

    points = []
    for Q in Qs:
        point = Point("curve", K, Q, d, v, l_b)
        dist = point.distribution()
        trained = gradient_flow(dist.sample(list(seeds), Q), 1.0, 1.0, [0.0, tau_1(K, 1.0, 1.0)])
        exact = exact_risk(dist, list(seeds), trained.rows, trained.delta_rows, 1.0)
        bound = risk_bound(statement, K, Q, d, dist.v, l_b, 1, 0, delta_prime)
        leading = float(mpmath.log10(mpmath.ncdf(-bound.law.leading_margin)))
        mean = bound.law.expected_risk() if leading > math.log10(MEAN_COMPARISON_FLOOR) else None
        log10_paper = float(mpmath.log10(paper.evaluate(K=K, Q=Q)["risk_bound"].approx))
        points.append(CurvePoint(Q, tuple(float(x) for x in exact.log10_risk), bound.log10_bound, leading,
                                 None if mean is None else float(mpmath.log10(mean)), log10_paper))
    label = f"K = {K}, d = {d}, " + ("v = 1/(32 sqrt Q)" if v is None else f"v = {v:g}")
    return Curve(label, K, d, v, tuple(points))


@dataclass(frozen=True)
class SamplesRow:
    """Q_min at one (K, d, v): Theorem 4.3's, the law's by its mean, by its 1 - delta' bound, the closed form (real),
    the sweep's measured value and the law's resolution of the sweep's rule [Q_lo, Q_hi] (None where not run)."""

    setting: str
    K: int
    d: int
    v: float | str
    paper: int
    mean: int | None
    bound: int | None
    closed_form: float | None
    sweep: int | None
    resolution: tuple[int, int] | None

    @property
    def within_resolution(self) -> bool | None:
        if self.sweep is None or self.resolution is None:
            return None
        return self.resolution[0] <= self.sweep <= self.resolution[1]


def samples_row(setting: str, K: int, d: int, v, l_b: float = 0.5, risk_target: float = 0.05,
                delta_prime: float = 0.05, sweep: int | None = None, rule: SweepRule | None = None,
                replicates: int = 2000) -> SamplesRow:
    from theory.scaling_law import samples_per_value
    from theory.tight_risk_law import leading_samples_per_value, tight_samples_per_value

    common = dict(risk_target=risk_target, l_b_value=l_b, delta_prime_value=delta_prime)
    mean = tight_samples_per_value(K, d, v, criterion="mean", **common).Q_min
    bound = tight_samples_per_value(K, d, v, criterion="bound", **common).Q_min
    closed = None if isinstance(v, str) else leading_samples_per_value(d, v, risk_target, l_b)
    resolution = None
    if rule is not None and sweep is not None and not isinstance(v, str):
        low, high, _ = rule.resolution(K, d, v, l_b, mean or sweep, replicates)
        resolution = (low, high)
    return SamplesRow(setting, K, d, v, samples_per_value(K, risk_target).Q_min, mean, bound,
                      None if closed is None else float(closed), sweep, resolution)


def draw_figure(inside: list[Curve], fixed: list[Curve], rows: list[SamplesRow], risk_target: float = 0.05):
    """(a) inside Theorem 4.3's assumptions and (b) at a fixed noise: log10 risk against Q, the law (its 1 - delta'
    bound, its mean, its leading order), the paper's bound and the exact risk of trained models; (c) Q_min against
    K for d fixed and d = 2K + 2: the law's, the sweep's (with the law's resolution of it) and the paper's."""
    from verify.plots import new_figure

    fig, axes = new_figure(1, 3, 16, 4.6)
    for ax, curves, title in ((axes[0, 0], inside, "(a) inside Theorem 4.3's assumptions"),
                              (axes[0, 1], fixed, "(b) fixed noise, outside them")):
        for index, curve in enumerate(curves):
            color = f"C{index}"
            Qs = [p.Q for p in curve.points]
            ax.plot(Qs, [p.log10_bound for p in curve.points], "--", color=color, label=f"{curve.label}: law, 95% bound")
            ax.plot(Qs, [p.log10_leading for p in curve.points], ":", color=color, lw=1)
            means = [(p.Q, p.log10_mean) for p in curve.points if p.log10_mean is not None]
            if means:
                ax.plot(*zip(*means), "-", color=color, lw=1, label=f"{curve.label}: law, mean")
            exact = [(p.Q, x) for p in curve.points for x in p.log10_exact]
            ax.plot(*zip(*exact), "ox^sv"[index % 5], color=color, ms=4, alpha=0.7, fillstyle="none",
                    label=f"{curve.label}: exact risk, trained")
            ax.plot(Qs, [p.log10_paper for p in curve.points], "-.", color=color, lw=1.5, alpha=0.5,
                    label=f"{curve.label}: paper, 2KQ^2 e^(-Q/45)")
        ax.axhline(math.log10(risk_target), color="grey", lw=0.7)
        ax.set(xlabel="Q (samples per cluster)", ylabel="log10 population risk at tau_1 (dotted: law, leading order)",
               title=title, xscale="log")
        ax.legend(fontsize=6)
    ax = axes[0, 2]
    for index, (rule_name, style) in enumerate((("2K+2", "o"), ("130", "s"))):
        chosen = [row for row in rows if row.setting == f"d = {rule_name}"]
        if not chosen:
            continue
        color = f"C{index}"
        Ks = [row.K for row in chosen]
        ax.plot(Ks, [row.mean for row in chosen], "-", color=color, label=f"d = {rule_name}: law, mean risk <= 0.05")
        ax.plot(Ks, [row.bound for row in chosen], "--", color=color, label=f"d = {rule_name}: law, 95% bound <= 0.05")
        swept = [row for row in chosen if row.sweep is not None]
        if swept:
            low = [row.sweep - row.resolution[0] for row in swept]
            high = [row.resolution[1] - row.sweep for row in swept]
            ax.errorbar([row.K for row in swept], [row.sweep for row in swept], yerr=[low, high], fmt=style,
                        color=color, ms=4, capsize=2, label=f"d = {rule_name}: sweep (bars: law's resolution)")
    paper = sorted({(row.K, row.paper) for row in rows if isinstance(row.v, float)})
    if paper:
        ax.plot(*zip(*paper), "k-.", lw=1, label="paper: 2KQ^2 e^(-Q/45) <= 0.05")
    ax.set(xscale="log", yscale="log", xlabel="K (values)", ylabel="Q_min (samples per cluster)",
           title="(c) Q_min against K at v = 0.5")
    ax.legend(fontsize=6)
    return fig
