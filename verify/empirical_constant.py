"""The constant of Theorem 4.3's exponent, measured inside its assumptions with the exact risk.

Theorem 4.3 bounds the population risk at tau_1 by 2KQ^2 e^{-Q/45}. Each trial here draws P at the assumption
boundary (v = the largest float <= 1/(32 sqrt Q), d = 5Q, l_b in {1/4, 1/2}, a token layout with Z pairs per
token), trains by gradient flow to tau_1 and evaluates ln R(P) exactly (`verify.exact_risk`): a risk far below
any Monte Carlo resolution is a number. A least-squares line ln R = a - Q/c over Q measures c, to set against the
paper's 45 and against Theorem B.4's exponent at v = 1/(32 sqrt Q), d = 5Q
(`theory.generalization.refined_exponent_after_remark`).

Every function returns data; `benchmarks/empirical_constant.py` runs the measurement and writes the report.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import sympy as sp

from theory.generalization import THEOREM_4_3, refined_exponent_after_remark
from theory.numbers import float_at_most
from theory.scaling_law import MINIMUM_Q, PAPER_DELTA, SCALING_BOUND, samples_per_value
from theory.symbols import K as K_symbol, Q as Q_symbol, Z as Z_symbol, l_b as l_b_symbol
from verify.data_model import DiverseValueDistribution, token_layout
from verify.exact_risk import LOG10, exact_risk
from verify.fits import linear_fit
from verify.training import gradient_flow, tau_1

PAPER_CONSTANT = float(SCALING_BOUND.kappa)  # the 45 of e^{-Q/45}
FLOAT64_BYTES = 8

# ln of Theorem 4.3's bound, ln(2K) + 2 ln Q - Q/45, from the statement (a bound above 1e308 stays a float here).
_LOG_BOUND = sp.lambdify((K_symbol, Q_symbol), sp.expand_log(sp.log(THEOREM_4_3.conclusions["risk_bound"]), force=True),
                         "math")
_B4 = refined_exponent_after_remark()
_B4_PER_Q = _B4.expressions["exponent / Q"]  # B.4's exponent / Q at v = 1/(32 sqrt Q), d = 5Q, as a function of Z, l_b


def log_risk_bound(K: int, Q: float) -> float:
    """ln(2 K Q^2 e^{-Q/45}), Theorem 4.3's bound, in natural log."""
    return float(_LOG_BOUND(K, Q))


def log_bound_with_constant(K: int, Q: float, c: float) -> float:
    """ln(2 K Q^2 e^{-Q/c}): Theorem 4.3's bound with its 45 replaced by c (e.g. Theorem B.4's)."""
    return log_risk_bound(K, Q) + Q / PAPER_CONSTANT - Q / c


def b4_constant(Z: int, l_b: float) -> float:
    """c of Theorem B.4's e^{-Q/c} at v = 1/(32 sqrt Q), d = 5Q and this (Z, l_b)."""
    return float(1 / _B4_PER_Q.subs({Z_symbol: Z, l_b_symbol: sp.Rational(l_b)}))


def b4_worst_constant() -> float:
    """c of B.4's exponent at its worst admissible corner (Z = 4, l_b = 1/4): 10029/512 = 19.59."""
    return float(_B4.numbers["Q / minimum exponent"])


def noise_only_constant() -> float:
    """2 Q v^2 at v = 1/(32 sqrt Q): 1/512. If the trained direction a_k were exactly the concept vector, the
    standardised margin would be z_k = 1/v and ln R ~ -z^2/2 = -Q/c with this c."""
    return float(sp.simplify(2 * MINIMUM_Q * THEOREM_4_3.v_boundary(MINIMUM_Q) ** 2))


# --- settings --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """Token layout and bias length: 'disjoint' gives Z = 1 pair per token, 'chain' Z = 2 (for K >= 2)."""

    tokens: str
    l_b: float

    def label(self, Z: int) -> str:
        return f"l_b = {self.l_b:g}, Z = {Z} ({self.tokens})"


# Z <= 1/(4 l_b^2): l_b = 1/4 admits Z <= 4, l_b = 1/2 only Z = 1.
LAYOUTS = (Layout("disjoint", 0.25), Layout("chain", 0.25), Layout("disjoint", 0.5))


@dataclass(frozen=True)
class Settings:
    Ks: tuple[int, ...] = (1, 4, 16, 64)
    Qs: tuple[int, ...] = (40, 60, 80, 120, 160, 240)
    layouts: tuple[Layout, ...] = LAYOUTS
    seeds: tuple[int, ...] = (0, 1, 2)
    beta: float = 0.01
    tau: float = 1.0
    delta: sp.Rational = PAPER_DELTA
    # Also measured at Theorem 4.3's own Q_min(K), where its bound first reaches delta, for these K.
    bound_Q_min_Ks: tuple[int, ...] = (1,)
    # One point below the floor Q >= 40 per K (the smallest Q with d = 5Q >= K + 1), outside the theorem.
    probe_below_floor: bool = True
    feature_memory: int = 8 * 2**30  # bytes allowed for one point's (B, 2KQ, d) float64 training features

    def __post_init__(self):
        for name in ("Ks", "Qs", "seeds", "bound_Q_min_Ks"):
            values = getattr(self, name)
            low = {"Ks": 1, "Qs": MINIMUM_Q, "seeds": 0, "bound_Q_min_Ks": 1}[name]
            if not isinstance(values, tuple) or not all(isinstance(x, int) and not isinstance(x, bool) and x >= low
                                                        for x in values):
                raise ValueError(f"{name} must be a tuple of integers >= {low}, got {values!r}")
        if not self.Ks or not self.seeds:
            raise ValueError("Ks and seeds must not be empty")
        if len(set(self.Qs)) < 3:
            raise ValueError(f"Qs must hold at least 3 different values for the fit, got {self.Qs!r}")
        for layout in self.layouts:
            if layout.tokens not in ("disjoint", "chain") or layout.l_b not in (0.25, 0.5):
                raise ValueError(f"layouts must use tokens 'disjoint' or 'chain' and l_b in {{0.25, 0.5}}, got {layout!r}")
            if layout.tokens == "chain" and layout.l_b == 0.5:
                raise ValueError("layouts: chain tokens (Z = 2) break Z <= 1/(4 l_b^2) at l_b = 1/2")
        for name in ("beta", "tau"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if not (0 < self.delta < 1):
            raise ValueError(f"delta must lie in (0, 1), got {self.delta!r}")


QUICK = Settings(Ks=(1, 4), Qs=(40, 60, 80), seeds=(0, 1), bound_Q_min_Ks=(), probe_below_floor=True)


def dimension(K: int, Q: int, trials: int, feature_memory: int) -> int:
    """The largest d <= 5Q whose training features (trials, 2KQ, d) in float64 fit in `feature_memory` bytes."""
    d = min(5 * Q, feature_memory // (FLOAT64_BYTES * trials * 2 * K * Q))
    if d < K + 1:
        raise ValueError(f"feature_memory = {feature_memory} bytes allows only d = {d} at K = {K}, Q = {Q}; "
                         f"P needs d >= K + 1 = {K + 1}")
    return int(d)


# --- one point -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RiskPoint:
    """The exact risk at tau_1 of each seed's trained model at one (K, Q, layout)."""

    K: int
    Q: int
    d: int
    v: float
    l_b: float
    tokens: str
    Z: int
    seeds: tuple[int, ...]
    log_risk: np.ndarray  # (B,) ln R(P)
    log_bound: float  # ln of Theorem 4.3's 2KQ^2 e^{-Q/45}
    unmet: tuple[str, ...]  # Theorem 4.3's assumptions that fail here; empty inside
    train_margin_range: tuple[float, float]  # smallest and largest training margin at tau_1
    seconds: float

    @property
    def inside(self) -> bool:
        return not self.unmet

    @property
    def log10_risk(self) -> np.ndarray:
        return self.log_risk / LOG10

    @property
    def log10_bound(self) -> float:
        return self.log_bound / LOG10

    @property
    def decades_below_bound(self) -> np.ndarray:
        """log10(bound) - log10(R) per seed."""
        return self.log10_bound - self.log10_risk


def measure_point(K: int, Q: int, layout: Layout, seeds: Sequence[int], beta: float = 0.01, tau: float = 1.0,
                  feature_memory: int = Settings.feature_memory) -> RiskPoint:
    """Train each seed's model by gradient flow to tau_1 at v on Theorem 4.3's boundary and evaluate ln R(P)."""
    start = time.perf_counter()
    seeds = tuple(seeds)
    v = float_at_most(THEOREM_4_3.v_boundary(Q))
    d = dimension(K, Q, len(seeds), feature_memory)
    distribution = DiverseValueDistribution(K=K, d=d, v=v, l_b=layout.l_b, tokens=token_layout(layout.tokens, K))
    Z = distribution.Z_pairs
    unmet = tuple(THEOREM_4_3.unmet(K=K, Q=Q, d=d, v=v, l_b=layout.l_b, Z=Z))
    result = gradient_flow(distribution.sample(list(seeds), Q), beta, tau, [0.0, tau_1(K, beta, tau)])
    risk = exact_risk(distribution, seeds, result.rows, result.delta_rows, beta)
    if risk.log_underflow.any():  # ln R below -1.6e308: not reached while Q < 1e305
        raise ArithmeticError(f"ln R left float range at K = {K}, Q = {Q}")
    margins = result.train_margins[:, -1]
    return RiskPoint(K, Q, d, v, layout.l_b, layout.tokens, Z, seeds, np.asarray(risk.log_risk, dtype=float),
                     log_risk_bound(K, Q), unmet, (float(margins.min()), float(margins.max())),
                     time.perf_counter() - start)


# --- fits and Q_min --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ConstantFit:
    """ln R = intercept - Q/c by least squares over every seed's point."""

    c: float  # inf when ln R does not decrease with Q
    intercept: float
    r_squared: float
    n: int
    Q_range: tuple[int, int]


def fit_constant(Qs: Sequence[float], log_risks: Sequence[float]) -> ConstantFit:
    """c from the slope -1/c of ln R against Q (`verify.fits.linear_fit`)."""
    Qs, log_risks = np.asarray(Qs, dtype=float), np.asarray(log_risks, dtype=float)
    fit = linear_fit(Qs, log_risks)
    c = -1 / fit.slope if fit.slope < 0 else math.inf
    return ConstantFit(c, fit.intercept, fit.r_squared, fit.n, (int(Qs.min()), int(Qs.max())))


@dataclass(frozen=True)
class LayoutResult:
    """The points and the fit of one (K, layout), inside the assumptions."""

    K: int
    l_b: float
    Z: int
    tokens: str
    points: tuple[RiskPoint, ...]
    fit: ConstantFit

    @property
    def paper_ratio(self) -> float:
        """45 / c: how many times faster the risk falls than the paper's exponent says."""
        return PAPER_CONSTANT / self.fit.c

    @property
    def b4_constant(self) -> float:
        return b4_constant(self.Z, self.l_b)

    @property
    def decades_below_bound(self) -> tuple[float, float]:
        """The fewest decades below the bound at the smallest and at the largest measured Q (over seeds)."""
        first, last = self.points[0], self.points[-1]
        return float(first.decades_below_bound.min()), float(last.decades_below_bound.min())


def fit_layout(points: Sequence[RiskPoint]) -> LayoutResult:
    """Fit one (K, layout)'s points inside the assumptions; every point must share K, l_b and Z."""
    inside = sorted((p for p in points if p.inside), key=lambda p: p.Q)
    keys = {(p.K, p.l_b, p.Z, p.tokens) for p in inside}
    if len(keys) != 1:
        raise ValueError(f"points must share one (K, l_b, Z, tokens), got {sorted(keys)}")
    Qs = [p.Q for p in inside for _ in p.seeds]
    logs = np.concatenate([p.log_risk for p in inside])
    K, l_b, Z, tokens = keys.pop()
    return LayoutResult(K, l_b, Z, tokens, tuple(inside), fit_constant(Qs, logs))


@dataclass(frozen=True)
class SamplesNeeded:
    """Q_min(K) at delta: Theorem 4.3's, and the smallest measured Q from which every risk is <= delta."""

    K: int
    delta: float
    theory: int
    empirical: int | None  # None: some risk above delta at the largest measured Q
    at_floor: bool  # the empirical Q_min is the smallest Q measured inside the assumptions (Q >= 40)
    largest_log10_risk_at_floor: float
    probe_Q: int | None  # a point below the floor, outside Theorem 4.3 (Q < 40); None: not measured
    probe_log10_risk: float | None


def samples_needed(K: int, points: Sequence[RiskPoint], delta) -> SamplesNeeded:
    """Q_min from the points of one K (all layouts and seeds): a Q counts when every risk at it and at every
    larger measured Q is <= delta."""
    log_delta = math.log(float(delta))
    inside = sorted({p.Q for p in points if p.inside})
    worst = {Q: max(float(p.log_risk.max()) for p in points if p.inside and p.Q == Q) for Q in inside}
    empirical = None
    for Q in reversed(inside):
        if worst[Q] > log_delta:
            break
        empirical = Q
    probes = [p for p in points if not p.inside]
    probe_Q = min((p.Q for p in probes), default=None)
    probe_log10 = max(float(p.log10_risk.max()) for p in probes if p.Q == probe_Q) if probes else None
    return SamplesNeeded(K, float(delta), samples_per_value(K, delta).Q_min, empirical, empirical == inside[0],
                         worst[inside[0]] / LOG10, probe_Q, probe_log10)


# --- the whole measurement -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Measurement:
    settings: Settings
    points: tuple[RiskPoint, ...]
    layouts: tuple[LayoutResult, ...]
    samples: tuple[SamplesNeeded, ...]
    seconds: float
    dimensions: str = field(default="")  # "d = 5Q at every point" or the points where d < 5Q

    def layout_results(self, K: int) -> list[LayoutResult]:
        return [r for r in self.layouts if r.K == K]


def probe_Q(K: int) -> int:
    """The smallest Q with d = 5Q >= K + 1 (P needs K orthogonal concept vectors and b)."""
    return max(1, -(-(K + 1) // 5))


def measurement_plan(settings: Settings) -> list[tuple[int, int, Layout]]:
    """(K, Q, layout) of every point, in the order they are measured."""
    plan = []
    for K in settings.Ks:
        Qs = set(settings.Qs)
        if K in settings.bound_Q_min_Ks:
            Qs.add(samples_per_value(K, settings.delta).Q_min)
        layouts = [layout for layout in settings.layouts if not (layout.tokens == "chain" and K == 1)]  # chain(1) = disjoint
        for layout in layouts:
            plan += [(K, Q, layout) for Q in sorted(Qs)]
        if settings.probe_below_floor and probe_Q(K) < MINIMUM_Q:
            plan.append((K, probe_Q(K), settings.layouts[0]))
    return plan


def measure(settings: Settings = Settings(), progress: Callable[[str], None] | None = None) -> Measurement:
    """Every point of `measurement_plan`, the fit per (K, layout) and Q_min per K."""
    start = time.perf_counter()
    points = []
    for K, Q, layout in measurement_plan(settings):
        point = measure_point(K, Q, layout, settings.seeds, settings.beta, settings.tau, settings.feature_memory)
        points.append(point)
        if progress is not None:
            progress(f"K = {K:3d}, Q = {Q:4d}, {layout.label(point.Z)}: log10 R = "
                     f"{point.log10_risk.max():.6g} (largest of {len(point.seeds)}), bound 10^{point.log10_bound:.3g}, "
                     f"{point.seconds:.1f} s")
    groups: dict[tuple, list[RiskPoint]] = {}
    for p in points:
        if p.inside:
            groups.setdefault((p.K, p.tokens, p.l_b), []).append(p)
    layouts = tuple(fit_layout(group) for group in groups.values())
    samples = tuple(samples_needed(K, [p for p in points if p.K == K], settings.delta) for K in settings.Ks)
    reduced = [p for p in points if p.d < 5 * p.Q]
    dimensions = ("d = 5Q at every point" if not reduced else
                  "d < 5Q at " + ", ".join(f"(K = {p.K}, Q = {p.Q}: d = {p.d})" for p in reduced))
    return Measurement(settings, tuple(points), layouts, samples, time.perf_counter() - start, dimensions)
