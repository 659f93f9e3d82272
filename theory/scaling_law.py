"""The scaling law of §4.2: the smallest Q (samples per value, i.e. per cluster) with risk bound <= delta.

Both bounds have the shape B(Q) = 2 K Q^2 exp(-Q^p / kappa): Theorem 4.3 (p = 1, kappa = 45) and the
predecessor's (p = 1/4, kappa = 6). With s = Q^p, B(Q) <= delta  <=>  s/kappa - (2/p) log s >= log(2K/delta),
whose boundary is s = -(2 kappa/p) W_k(-(p/(2 kappa)) (delta/(2K))^{p/2}), k = 0, -1 (Lambert W).

Which root: B increases on (0, Q_peak] and decreases after, Q_peak = (2 kappa/p)^{1/p}. So {B <= delta} is
(0, Q_0] u [Q_{-1}, inf) with Q_0 < Q_peak < Q_{-1}. The W_0 root Q_0 lies where B is still rising, below
Theorem 4.3's Q >= 40 whenever B(40) > delta (true for every K >= 1 and delta < 1); the answer is the W_{-1} root.
"""
from __future__ import annotations

from dataclasses import dataclass

import mpmath
import sympy as sp

from theory.generalization import PREDECESSOR_THEOREM_4_2, THEOREM_4_3
from theory.statements import DerivationResult, Statement, exact_number, log_linear_roots, to_mpf
from theory.symbols import K, Q, delta

MINIMUM_Q = 40  # Theorem 4.3's assumption Q >= 40

# §4.2: "K = 10 needs more than 875 samples per value", at Fig. 4's target risk.
PAPER_K = 10
PAPER_DELTA = sp.Rational(1, 20)
PAPER_SAMPLES_PER_VALUE = 875


@dataclass(frozen=True)
class BoundShape:
    """A risk bound 2 K Q^2 exp(-Q^p / kappa), checked against the statement's own expression."""

    name: str
    bound: sp.Expr
    p: sp.Rational
    kappa: sp.Rational

    def __post_init__(self):
        shape = 2 * K * Q**2 * sp.exp(-Q**self.p / self.kappa)
        if sp.simplify(self.bound - shape) != 0:
            raise ValueError(f"{self.name}: bound {self.bound} is not 2KQ^2 exp(-Q^{self.p}/{self.kappa})")

    @property
    def log_K_slope(self) -> sp.Expr | None:
        """d Q_min / d log K as K -> oo: kappa for p = 1 (`samples_per_value_asymptotics`); None otherwise,
        where Q_min grows like a power of log K."""
        return self.kappa if self.p == 1 else None

    def threshold_root(self) -> sp.Expr:
        """The W_{-1} root of B(Q) = delta as an expression in K and delta (the module docstring)."""
        return log_linear_roots(1 / self.kappa, 2 / self.p, sp.log(2 * K / delta))[1] ** (1 / self.p)

    @property
    def peak(self) -> sp.Expr:
        """argmax_Q B(Q): d/dQ log B = 2/Q - p Q^{p-1}/kappa = 0."""
        q = sp.Symbol("q", positive=True)
        (root,) = sp.solve(sp.diff(sp.log(self.bound.subs(Q, q)).expand(force=True), q), q)
        return root


SCALING_BOUND = BoundShape("Theorem 4.3", THEOREM_4_3.conclusions["risk_bound"], sp.Integer(1), sp.Integer(45))
PREDECESSOR_BOUND = BoundShape("ICLR Theorem 4.2", PREDECESSOR_THEOREM_4_2.conclusions["risk_bound"],
                               sp.Rational(1, 4), sp.Integer(6))

SCALING_LAW = Statement(
    name="Scaling law",
    reference="§4.2 Implications, Fig. 4",
    assumptions={**THEOREM_4_3.assumptions, "delta > 0": sp.Gt(delta, 0), "delta < 1": sp.Lt(delta, 1)},
    conclusions={
        "Q_min_root": SCALING_BOUND.threshold_root(),  # Q_min = max(40, ceil(root)): `samples_per_value`
        "risk_bound": SCALING_BOUND.bound,
    },
    notes=("[V] Q_min = Theta(log K); only the upper bound (sufficiency) is proved (SPEC §5 item 10).",
           "delta is the target risk here, not Def. C.1's delta."),
)


@dataclass(frozen=True)
class SamplesPerValue:
    """Q_min(K, delta) for one bound: the exact W_{-1} root, its value, the other root, and checks."""

    bound: str
    K: int
    delta: sp.Rational
    root: sp.Expr  # exact, with LambertW(., -1)
    root_value: mpmath.mpf
    other_root: sp.Expr  # the W_0 root, where B is still increasing
    other_root_value: mpmath.mpf
    Q_min: int
    bound_at_Q_min: mpmath.mpf
    bound_at_Q_min_minus_1: mpmath.mpf


def _check_K_delta(K_value, delta_value) -> tuple[sp.Integer, sp.Rational]:
    Kv = exact_number("K", K_value)
    if not Kv.is_integer or Kv < 1:
        raise ValueError(f"K must be an integer >= 1, got {K_value!r}")
    dv = exact_number("delta", delta_value)
    if not (0 < dv < 1):
        raise ValueError(f"delta must lie in (0, 1), got {delta_value!r}")
    return Kv, dv


def samples_per_value(K_value, delta_value=sp.Rational(1, 20), shape: BoundShape = SCALING_BOUND,
                      dps: int = 30) -> SamplesPerValue:
    """Smallest integer Q >= 40 with 2 K Q^2 exp(-Q^p/kappa) <= delta (Theorem 4.3 by default)."""
    Kv, dv = _check_K_delta(K_value, delta_value)
    a, b = 1 / shape.kappa, 2 / shape.p
    s0, s1 = log_linear_roots(a, b, sp.log(2 * Kv / dv))
    root, other = s1 ** (1 / shape.p), s0 ** (1 / shape.p)
    root_value, other_value = to_mpf(root, dps), to_mpf(other, dps)
    B = sp.lambdify(Q, shape.bound.subs(K, Kv), "mpmath")
    with mpmath.workdps(dps):
        if B(MINIMUM_Q) <= dv:  # never for delta < 1; kept so the rule is stated, not assumed
            Q_min = MINIMUM_Q if other_value >= MINIMUM_Q else max(MINIMUM_Q, int(mpmath.ceil(root_value)))
        else:
            Q_min = max(MINIMUM_Q, int(mpmath.ceil(root_value)))
        # exact integer check around the rounded root (guards against a root within rounding of an integer)
        while Q_min > MINIMUM_Q and B(Q_min - 1) <= dv and Q_min - 1 > other_value:
            Q_min -= 1
        while B(Q_min) > dv:
            Q_min += 1
        at, before = B(Q_min), B(Q_min - 1)
    return SamplesPerValue(shape.name, int(Kv), dv, root, root_value, other, other_value, Q_min, at, before)


def samples_per_value_table(K_values=range(1, 1001), delta_value=sp.Rational(1, 20),
                            shape: BoundShape = SCALING_BOUND) -> list[tuple[int, mpmath.mpf, int]]:
    """(K, exact root, Q_min) for each K; the root from mpmath's Lambert W at 30 digits."""
    Kd = _check_K_delta(1, delta_value)[1]
    a, b, p = 1 / shape.kappa, 2 / shape.p, shape.p
    rows = []
    with mpmath.workdps(30):
        dm, a_m, b_m, p_m = (mpmath.mpf(sp.Rational(x).p) / sp.Rational(x).q for x in (Kd, a, b, p))
        for k in K_values:
            _check_K_delta(k, delta_value)
            z = -(a_m / b_m) * mpmath.exp(-mpmath.log(2 * k / dm) / b_m)
            s = -(b_m / a_m) * mpmath.lambertw(z, -1).real
            root = s ** (1 / p_m)
            rows.append((int(k), root, max(MINIMUM_Q, int(mpmath.ceil(root)))))
    return rows


def paper_claim_K10() -> DerivationResult:
    """'K = 10 needs more than 875 samples per value' (§4.2), at the Fig. 4 target delta = 0.05."""
    samples = PAPER_SAMPLES_PER_VALUE
    res = samples_per_value(PAPER_K, PAPER_DELTA)
    B = SCALING_BOUND.bound.subs(K, PAPER_K)
    at_paper = to_mpf(B.subs(Q, samples))
    ok = res.Q_min > samples and at_paper > PAPER_DELTA
    return DerivationResult(
        f"K = {PAPER_K} needs more than {samples} samples per value", {"root": res.root},
        {"root": res.root_value, "Q_min": res.Q_min, f"bound at {samples}": at_paper, "bound at Q_min": res.bound_at_Q_min,
         "bound at Q_min - 1": res.bound_at_Q_min_minus_1},
        ok,
        f"consistent: Q_min({PAPER_K}) = {res.Q_min} (root {mpmath.nstr(res.root_value, 10)}); at Q = {samples} the "
        f"bound is {mpmath.nstr(at_paper, 6)} > {float(PAPER_DELTA):g}, so 'more than {samples}' is true but the exact "
        f"requirement is Q >= {res.Q_min}",
    )


def samples_per_value_asymptotics(order: int = 3, shape: BoundShape = SCALING_BOUND) -> DerivationResult:
    """Q_min as L -> oo, L = log(2K/delta), from a s - b log s = L with s = Q^p, a = 1/kappa, b = 2/p.

    Write s = (L/a)(1 + u): then u = (b/L)(Lambda + log(1 + u)) with Lambda = log(L/a), solved by iteration
    as a series in 1/L (coefficients polynomials in Lambda). This is the W_{-1} expansion. In K:
    Q_min = 45 log K + 90 log log K + 45 log(2/delta) + 90 log 45 + O(log log K / log K) for Theorem 4.3.
    """
    L, Lam, e = sp.symbols("L Lambda epsilon", positive=True)  # e = 1/L
    a, b = 1 / shape.kappa, 2 / shape.p
    u = sp.Integer(0)
    for _ in range(order + 1):
        u = sp.series(b * e * (Lam + sp.log(1 + u)), e, 0, order + 1).removeO()
    s = sp.expand((1 + u) / (a * e))
    Q_series = sp.expand(s ** (1 / shape.p)) if shape.p == 1 else s ** (1 / shape.p)
    Q_series = Q_series.subs(e, 1 / L)
    logK, dlt = sp.symbols("logK delta", positive=True)
    leading = None
    if shape.p == 1:
        # L = log K + log(2/delta); Lambda = log(L/a) = log(kappa) + log log K + log(1 + log(2/delta)/log K)
        leading = shape.kappa * logK + b * shape.kappa * sp.log(logK) + shape.kappa * sp.log(2 / dlt) \
            + b * shape.kappa * sp.log(shape.kappa)
    return DerivationResult(
        f"{shape.name}: asymptotics of Q_min",
        {"Q_min (L = log(2K/delta), Lambda = log(kappa L))": Q_series,
         "leading terms in log K": leading if leading is not None else sp.nan},
        {"order in 1/L": order}, None,
        "Q_min = 45 log K + 90 log log K + O(1)" if shape.p == 1 else f"Q_min = ({shape.kappa} L + ...)^{1 / shape.p}",
    )


def evaluate_asymptotics(result: DerivationResult, K_value, delta_value=sp.Rational(1, 20),
                         shape: BoundShape = SCALING_BOUND) -> mpmath.mpf:
    Kv, dv = _check_K_delta(K_value, delta_value)
    L, Lam = sp.symbols("L Lambda", positive=True)
    Lv = sp.log(2 * Kv / dv)
    expr = result.expressions["Q_min (L = log(2K/delta), Lambda = log(kappa L))"]
    return to_mpf(expr.subs(Lam, sp.log(shape.kappa * Lv)).subs(L, Lv))
