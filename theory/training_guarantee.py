"""Training guarantees: Theorem 4.2 (main text), Lemma B.2, Theorem B.3 and Theorem C.5 (appendix).

SPEC §2.2, §2.6, §2.7, §3. The v condition differs as printed: v <= 1/(32 sqrt Q) in Theorem 4.2 and the
proof of B.3, v <= 1/(4 sqrt Q) in the statements of B.3/B.4/C.5/C.6 (SPEC §5 item 4); each object keeps
its own. Z <= 1/(4 l_b^2) is the reading chosen in SPEC §5 item 2.

The conditions eps <= 1/(16 v (Z+2)) (the Remark's eps, `theory.statements.REMARK_EPSILON`) are stored as
eps / REMARK_EPSILON <= 1, i.e. multiplied out, 16 eps v (Z+2) <= 1 (equivalent for v >= 0, and defined at
v = 0), so their failure amount is relative.
"""
from __future__ import annotations

import mpmath
import sympy as sp

from theory.losses import DPO
from theory.statements import (REMARK_EPSILON, DerivationResult, Statement, appendix_probability, exact_number,
                               log_linear_roots, remark_substitution, substitute, to_mpf)
from theory.symbols import K, N, Q, Z, beta, c, d, delta, epsilon, l_b, r, t, tau, v

LOG3 = sp.log(3)

MAIN_TEXT_PROBABILITY = 1 - 8 * K * Q ** sp.Rational(9, 4) * sp.exp(
    -sp.Min(c * sp.sqrt(Q) / 5, Q ** sp.Rational(3, 4) / 256))

_MAIN_CONDITIONS = {
    "Z <= 1/(4 l_b^2)": sp.Le(Z, 1 / (4 * l_b**2)),
    "d <= 5Q": sp.Le(d, 5 * Q),
    "v <= 1/(32 sqrt(Q))": sp.Le(v, 1 / (32 * sp.sqrt(Q))),
    "l_b >= 1/4": sp.Ge(l_b, sp.Rational(1, 4)),
    "l_b <= 1/2": sp.Le(l_b, sp.Rational(1, 2)),
}
APPENDIX_CONDITIONS = {
    "Z <= 1/(4 l_b^2)": sp.Le(Z, 1 / (4 * l_b**2)),
    "d <= 5Q": sp.Le(d, 5 * Q),
    "v <= 1/(4 sqrt(Q))": sp.Le(v, 1 / (4 * sp.sqrt(Q))),
    "eps <= 1/(16 v (Z+2))": sp.Le(epsilon / REMARK_EPSILON, 1),
    "l_b >= 1/4": sp.Ge(l_b, sp.Rational(1, 4)),
    "l_b <= 1/2": sp.Le(l_b, sp.Rational(1, 2)),
}
_V_CONFLICT = ("CONFLICT (SPEC §5 item 4): Theorem 4.2/4.3 print v <= 1/(32 sqrt Q); Theorems B.3, B.4, C.5, C.6 "
               "print v <= 1/(4 sqrt Q). Encoded as printed in each.")

THEOREM_4_2 = Statement(
    name="Theorem 4.2",
    reference="§4.1, Training Reward Guarantee; SPEC §2.2",
    assumptions=dict(_MAIN_CONDITIONS),
    conclusions={
        "r_L": beta**2 * t / (8 * K * tau),
        "r_U": 5 * beta**2 * t / (K * tau),
        "tau_1": K * tau * LOG3 / (5 * beta**2),
        "success_probability": MAIN_TEXT_PROBABILITY,
    },
    notes=("[V] all constants inline.", _V_CONFLICT,
           "Envelope valid for 0 <= t <= tau_1; at tau_1: log3/40 <= r <= log 3."),
)

# Lemma B.2's display is lost in v5; the predecessor's Lemma A.2 (PREDECESSOR §3, Eqs. 22-32) gives it.
# s_min, s_max bound the weights sigma(-r_k) of all training samples.
s_min, s_max = sp.symbols("s_min s_max", positive=True)
_interference = (2 * Z + 4) * epsilon * v + l_b**2 * Z
LEMMA_B2 = Statement(
    name="Lemma B.2",
    reference="App. B, Lemma B.2 (display reconstructed from the predecessor's Lemma A.2); SPEC §2.6",
    assumptions={"l_b <= 1/2": sp.Le(l_b, sp.Rational(1, 2))},
    conclusions={
        "lower_rate": (2 * Q * beta**2 / N) * ((1 + l_b**2) + (1 - l_b**2)) * s_min
        + 2 * d * v**2 * beta**2 / N * s_min - 2 * beta**2 * Q / N * _interference * s_max,
        "upper_rate": (2 * Q * beta**2 / N) * ((1 + l_b**2) + (1 - l_b**2)) * s_max
        + 2 * d * v**2 * beta**2 / N * s_max + 2 * beta**2 * Q / N * _interference * s_max,
        "success_probability": appendix_probability(8 * Z + 4, 8 * Z + 4),
    },
    notes=("[R] sandwich of tau dr/dt from PREDECESSOR Lemma A.2 with sums bounded by Q s_min, Q s_max.",),
    extra_symbols={"s_min": s_min, "s_max": s_max},
)

THEOREM_B3 = Statement(
    name="Theorem B.3",
    reference="App. B, refined training guarantee; SPEC §2.6",
    assumptions=dict(APPENDIX_CONDITIONS),
    conclusions={
        "r_L": THEOREM_4_2.conclusions["r_L"],
        "r_U": THEOREM_4_2.conclusions["r_U"],
        "tau_1": THEOREM_4_2.conclusions["tau_1"],
        "success_probability": appendix_probability(8 * Z + 4, 8 * Z + 4),
    },
    notes=("[V] conditions and probability; the r_L, r_U, tau_1 displays are missing and taken from Theorem 4.2.",
           _V_CONFLICT),
)

THEOREM_C5 = Statement(
    name="Theorem C.5",
    reference="App. C, training guarantee for delta-approximately orthogonal clusters; SPEC §2.7",
    assumptions={**APPENDIX_CONDITIONS,
                 "delta <= eps v / 8": sp.Le(delta, epsilon * v / 8),
                 "delta <= 1/4": sp.Le(delta, sp.Rational(1, 4)),
                 "delta >= 0": sp.Ge(delta, 0, evaluate=False)},
    conclusions={
        "r_L": beta**2 * t / (16 * K * tau),
        "r_U": THEOREM_4_2.conclusions["r_U"],
        "tau_1": THEOREM_4_2.conclusions["tau_1"],
        "success_probability": appendix_probability(16 * Z + 8, 8 * Z + 4),
    },
    notes=("[V] log3/80 <= r(tau_1); [R] r_L from the factor 1/2 - (5/2)(1/8) >= 1/8 of the proof.", _V_CONFLICT),
)

TRAINING_STATEMENTS = (THEOREM_4_2, LEMMA_B2, THEOREM_B3, THEOREM_C5)


# --- item 2a: the envelope at tau_1 -----------------------------------------------------------------

def envelope_at_tau_1(statement: Statement = THEOREM_4_2) -> DerivationResult:
    """Solve r_U(tau_1) = log 3 for tau_1, compare with the printed tau_1, and evaluate r_L there."""
    r_L, r_U, printed = (statement.conclusions[k] for k in ("r_L", "r_U", "tau_1"))
    (solved,) = sp.solve(sp.Eq(r_U, LOG3), t)
    r_U_end, r_L_end = sp.simplify(r_U.subs(t, printed)), sp.simplify(r_L.subs(t, printed))
    ok = sp.simplify(solved - printed) == 0 and sp.simplify(r_U_end - LOG3) == 0
    return DerivationResult(
        f"{statement.name}: envelope at tau_1",
        {"tau_1 solved from r_U = log 3": solved, "r_U(tau_1)": r_U_end, "r_L(tau_1)": r_L_end},
        {"r_L(tau_1)/log 3": sp.simplify(r_L_end / LOG3)}, ok,
        f"r_U(tau_1) = {r_U_end}, r_L(tau_1) = {r_L_end}" + ("" if ok else " (printed tau_1 differs)"),
    )


def envelope_slopes_from_lemma_b2(v_denominator: int = 32) -> DerivationResult:
    """The slopes of r_L, r_U from the Lemma B.2 sandwich (SPEC §3 steps 2-4).

    sigma(-r) in [sigma(-log 3), sigma(0)] = [1/4, 1/2] (DPO weight, from theory.losses) while r in [0, log 3];
    the interference (2Z+4) eps v + l_b^2 Z is <= 1/8 + 1/4 by eps <= 1/(16 v (Z+2)) and Z <= 1/(4 l_b^2).
    """
    weights = {s_min: DPO.weight.subs(r, LOG3), s_max: DPO.weight.subs(r, 0)}
    A, B, D = sp.symbols("A B D", nonnegative=True)  # (2Z+4) eps v, l_b^2 Z, d v^2
    generic = lambda e: sp.simplify(e.subs(N, 2 * K * Q).subs(weights).subs(epsilon, A / ((2 * Z + 4) * v))
                                    .subs(l_b, sp.sqrt(B / Z)).subs(d, D / v**2))
    lower, upper = generic(LEMMA_B2.conclusions["lower_rate"]), generic(LEMMA_B2.conclusions["upper_rate"])
    monotone = all(sp.diff(lower, x).is_nonpositive for x in (A, B)) and sp.diff(lower, D).is_nonnegative \
        and all(sp.diff(upper, x).is_nonnegative for x in (A, B, D))  # worst case at the corners below
    worst_D = 5 * Q / (v_denominator**2 * Q)
    lower_bound = sp.simplify(lower.subs({A: sp.Rational(1, 8), B: sp.Rational(1, 4), D: 0}))
    upper_bound = sp.simplify(upper.subs({A: sp.Rational(1, 8), B: sp.Rational(1, 4), D: worst_D}))
    printed_lower = sp.diff(THEOREM_4_2.conclusions["r_L"], t) * tau
    printed_upper = sp.diff(THEOREM_4_2.conclusions["r_U"], t) * tau
    lower_ratio = sp.simplify(lower_bound / printed_lower)
    upper_ratio = sp.simplify(upper_bound.subs(Q, 1) / printed_upper)  # upper_bound decreases in Q
    ok = monotone and bool(lower_ratio >= 1) and bool(upper_ratio <= 1) and sp.simplify(sp.diff(upper_bound, Q)).is_nonpositive
    return DerivationResult(
        "Lemma B.2 -> slopes of r_L, r_U",
        {"tau dr/dt >=": lower_bound, "tau dr/dt <=": upper_bound,
         "printed tau dr_L/dt": printed_lower, "printed tau dr_U/dt": printed_upper},
        {"lower slope / printed": lower_ratio, "upper slope at Q=1 / printed": upper_ratio},
        ok,
        "the sandwich gives slopes inside the printed ones: r_L, r_U follow (both loose)" if ok
        else "the sandwich does not give the printed slopes",
    )


# --- item 2c: does the main-text probability follow from Theorem B.3? ------------------------------

def appendix_failure_after_remark(v_denominator: int = 32) -> DerivationResult:
    """1 - P(B.3) after the Remark's substitution, with min(1, eps/(d v)) resolved."""
    fail = sp.expand(1 - substitute(THEOREM_B3.conclusions["success_probability"], remark_substitution(v_denominator)))
    ratio = sp.simplify(substitute(epsilon / (d * v), remark_substitution(v_denominator)))  # eps/(d v)
    # The Min resolves to 1 where ratio >= 1 (all admissible Z <= 4 when v_denominator = 32).
    z = sp.Symbol("z", positive=True)
    Z_max_for_one = sp.solve(sp.Eq(ratio.subs(Z, z), 1), z)
    resolved = fail.replace(lambda e: isinstance(e, sp.Min), lambda e: 1 if bool(ratio.subs(Z, 4) >= 1) else ratio)
    resolved = sp.expand(resolved).replace(lambda e: isinstance(e, sp.exp), lambda e: sp.exp(sp.factor(e.args[0])))
    return DerivationResult(
        f"B.3 failure probability, v = 1/({v_denominator} sqrt Q)",
        {"failure": resolved, "eps/(d v)": ratio, "Z where eps/(d v) = 1": Z_max_for_one[0] if Z_max_for_one else sp.nan},
        {}, None, f"failure = {resolved}",
    )


def main_text_probability_from_b3() -> DerivationResult:
    """Whether 1 - 8KQ^{9/4} exp(-min(c sqrt Q/5, Q^{3/4}/256)) follows from Theorem B.3 under the Remark.

    Worst admissible case Z = 4 (Z <= 1/(4 l_b^2) <= 4, the failure increases with Z). The argument:
    for Q >= 9^4 each of the two B.3 terms is <= 4KQ^{9/4} e^{-m}; for Q < 9^4 the main-text probability
    is negative, so there it claims nothing.
    """
    fail_B3 = appendix_failure_after_remark(32).expressions["failure"]
    increasing_in_Z = sp.diff(fail_B3, Z)
    fail4 = sp.expand(fail_B3.subs(Z, 4))
    fail_main = sp.expand(1 - MAIN_TEXT_PROBABILITY)
    terms = sp.Add.make_args(fail4)
    prefactor = sp.Integer(36)
    q = sp.Symbol("q", positive=True)  # Q as a real variable, for solve
    Q_prefactor = sp.solve(sp.Eq(prefactor, 4 * q ** sp.Rational(1, 4)), q)[0]  # 36 <= 4 Q^{1/4}
    exponents = [sp.expand(-sp.log(term / (prefactor * K * Q**2)), force=True) for term in terms]
    # each exponent must dominate m: Q/144 >= Q^{3/4}/256 >= m and 32cQ/3 >= c sqrt Q/5 >= m for Q >= 1
    dominate = [sp.simplify(e - Q ** sp.Rational(3, 4) / 256) if not e.has(c) else sp.simplify(e - c * sp.sqrt(Q) / 5)
                for e in exponents]
    # vacuity of the main text below Q_prefactor: g(Q) = log 8 + 9/4 log Q - Q^{3/4}/256 > 0 there
    g = sp.log(8) + sp.Rational(9, 4) * sp.log(Q) - Q ** sp.Rational(3, 4) / 256
    stationary = sp.solve(sp.diff(g.subs(Q, q), q), q)[0]
    vacuous_below = bool(stationary >= Q_prefactor) and bool(g.subs(Q, 1) > 0)
    # where the two failure bounds cross at c = 1 (K cancels), for context
    cross = _largest_crossing(fail4.subs(c, 1) / K, fail_main.subs(c, 1) / K)
    holds = vacuous_below and all(_nonnegative_for_Q_ge_1(e) for e in dominate)
    return DerivationResult(
        "Theorem 4.2 probability from Theorem B.3",
        {"B.3 failure after Remark": fail_B3, "d/dZ of it": increasing_in_Z, "B.3 failure at Z = 4": fail4,
         "main-text failure": fail_main, "exponent margins over Q^{3/4}/256 resp. c sqrt(Q)/5": sp.Tuple(*dominate)},
        {"Q where 36 = 4 Q^{1/4}": Q_prefactor, "main-text g'(Q) = 0 at": stationary,
         "g(1) = log 8 - 1/256": sp.N(g.subs(Q, 1), 15),
         "largest Q with B.3 failure > main-text failure (c = 1)": cross},
        holds,
        ("follows, but not as the Remark suggests: the substitution gives 36KQ^2(e^{-Q/144} + e^{-32cQ/3}) "
         "(exponential in Q). Term by term it is <= 8KQ^{9/4}e^{-min(c sqrt Q/5, Q^{3/4}/256)} for Q >= 6561 "
         f"(36 <= 4Q^{{1/4}}); below 6561 the main-text probability is negative, so the implication holds for "
         f"every c > 0 and K. At c = 1 B.3's failure is the smaller one already for Q > {mpmath.nstr(cross, 6)}")
        if holds else "does not follow",
    )


def _nonnegative_for_Q_ge_1(expr: sp.Expr) -> bool:
    """Exact: write Q = (1+x)^4 with x >= 0; the margins factor into manifestly nonnegative pieces."""
    x = sp.Symbol("x", nonnegative=True)
    return bool(sp.factor(sp.expand(expr.subs(Q, (1 + x) ** 4))).is_nonnegative)


def _largest_crossing(f: sp.Expr, g: sp.Expr, dps: int = 30) -> mpmath.mpf:
    """Largest Q >= 1 with f(Q) = g(Q), for f - g changing sign once in log Q; bisection on a log grid."""
    h = sp.lambdify(Q, sp.log(f) - sp.log(g), "mpmath")
    with mpmath.workdps(dps):
        grid = [mpmath.mpf(10) ** (k / mpmath.mpf(8)) for k in range(0, 8 * 7)]
        last = None
        for lo, hi in zip(grid, grid[1:]):
            if h(lo) > 0 >= h(hi):
                last = (lo, hi)
        if last is None:
            return mpmath.mpf("nan")
        return mpmath.findroot(h, last, solver="bisect", tol=mpmath.mpf(10) ** (-dps + 5))


# --- item 2d: where the stated probabilities are vacuous ---------------------------------------------

def main_text_vacuous_until(K_value: int = 1, c_value=1) -> DerivationResult:
    """Largest Q at which 1 - 8KQ^{9/4} exp(-min(c sqrt Q/5, Q^{3/4}/256)) <= 0, in closed form.

    Vacuous iff min(...) <= L(Q) := log 8K + 9/4 log Q, i.e. iff Q^{3/4}/256 <= L(Q) (an interval [1, Q_B],
    with s = Q^{3/4}: s/256 - 3 log s <= log 8K) or c sqrt Q/5 <= L(Q) (an interval [Q_A0, Q_A], with
    s = sqrt Q: (c/5) s - 9/2 log s <= log 8K). Both via Lambert W_{-1}.
    """
    Kv, cv = sp.Integer(K_value), exact_number("c", c_value)
    if Kv < 1:
        raise ValueError(f"K must be >= 1, got {K_value}")
    if not cv > 0:
        raise ValueError(f"c must be positive, got {c_value}")
    L0 = sp.log(8 * Kv)
    roots_B = log_linear_roots(sp.Rational(1, 256), 3, L0)
    Q_B = roots_B[1] ** sp.Rational(4, 3)
    roots_A = log_linear_roots(cv / 5, sp.Rational(9, 2), L0)
    intervals = [(sp.Integer(1), Q_B)]
    if roots_A is not None:
        intervals.append((roots_A[0] ** 2, roots_A[1] ** 2))
    num = [(to_mpf(a), to_mpf(b)) for a, b in intervals]
    # merge: the vacuous set is [1, Q_vac] if the intervals overlap
    connected = len(num) == 1 or num[1][0] <= num[0][1] or num[1][1] <= num[0][1]
    Q_vac_num = max(b for _, b in num)
    Q_vac = Q_B if Q_vac_num == num[0][1] else intervals[1][1]
    c_star = 5 * Q_B ** sp.Rational(1, 4) / 256  # for c >= c_star the c-branch adds nothing beyond Q_B
    return DerivationResult(
        f"Theorem 4.2 probability vacuous (K = {Kv}, c = {cv})",
        {"Q_B (Q^{3/4}/256 branch)": Q_B, "Q_A (c sqrt Q/5 branch)": intervals[1][1] if roots_A else sp.nan,
         "Q_vac": Q_vac, "c* = 5 Q_B^{1/4}/256": c_star},
        {"Q_B": num[0][1], "Q_A": num[1][1] if roots_A else None, "Q_vac": Q_vac_num,
         "c*": to_mpf(c_star), "largest vacuous integer Q": int(mpmath.floor(Q_vac_num))},
        connected,
        f"probability <= 0 exactly for 1 <= Q <= {mpmath.nstr(Q_vac_num, 10)}"
        + ("" if connected else " (the vacuous set is not one interval; see Q_A, Q_B)"),
    )


def appendix_vacuous_until(K_value: int = 1, c_value=1, Z_value: int = 4, v_denominator: int = 32) -> DerivationResult:
    """Largest Q at which the B.3 probability after the Remark's substitution is <= 0.

    failure = (8Z+4)KQ^2 [e^{-Q/(4(Z+2)^2)} + e^{-64cQ/(Z+2)}] (v_denominator = 32). Each term alone = 1 has a
    closed form (W_{-1}); beyond the larger of those roots both terms decrease, so the sum crosses 1 once,
    found by bisection to 10^-25.
    """
    Kv, cv, Zv = sp.Integer(K_value), exact_number("c", c_value), sp.Integer(Z_value)
    if Kv < 1:
        raise ValueError(f"K must be >= 1, got {K_value}")
    if not cv > 0:
        raise ValueError(f"c must be positive, got {c_value}")
    if Zv < 1:
        raise ValueError(f"Z must be >= 1, got {Z_value}")
    fail = appendix_failure_after_remark(v_denominator).expressions["failure"].subs({K: Kv, c: cv, Z: Zv})
    terms = sp.Add.make_args(sp.expand(fail))
    single, half = [], []
    for term in terms:
        prefactor = term.subs(Q, 1) / sp.exp(-_rate(term))  # term = prefactor Q^2 e^{-rate Q}
        for target, out in ((1, single), (sp.Rational(1, 2), half)):
            roots = log_linear_roots(_rate(term), 2, sp.log(prefactor / target))
            out.append(roots[1] if roots else sp.Integer(1))
    lo, hi = max(to_mpf(x) for x in single), max(to_mpf(x) for x in half)
    f = sp.lambdify(Q, sp.log(fail), "mpmath")
    with mpmath.workdps(40):
        Q_vac = mpmath.findroot(f, (lo, hi), solver="bisect", tol=mpmath.mpf(10) ** -30) if f(lo) >= 0 > f(hi) else lo
    return DerivationResult(
        f"Theorem B.3 probability vacuous after Remark (K = {Kv}, c = {cv}, Z = {Zv})",
        {"failure": fail, "single-term roots": sp.Tuple(*single)},
        {"Q_vac": Q_vac, "largest vacuous integer Q": int(mpmath.floor(Q_vac))},
        None, f"probability <= 0 for Q <= {mpmath.nstr(Q_vac, 10)} (and > 0 beyond)",
    )


def _rate(term: sp.Expr) -> sp.Expr:
    (e,) = [f for f in sp.Mul.make_args(term) if isinstance(f, sp.exp)]
    return sp.simplify(-e.args[0] / Q)
