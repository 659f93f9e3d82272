"""Uncertain readings of the paper (SPEC §5, PREDECESSOR §6) that a derivation can settle."""
from __future__ import annotations

import sympy as sp

from theory.generalization import THEOREM_4_3, risk_exponent
from theory.statements import DerivationResult, remark_substitution, substitute
from theory.symbols import K, Q, Z, d, epsilon, l_b, v

# The predecessor's failure terms and its printed main-text exponents (PREDECESSOR §2-3).
PREDECESSOR_CONCENTRATION_EXPONENT = epsilon**2 / 16
PREDECESSOR_RISK_EXPONENT = epsilon**2 / (2 * (2 + d * v**2 + epsilon * v))
PRINTED_PROBABILITY_EXPONENT = Q ** sp.Rational(3, 4) / 256
PRINTED_RISK_EXPONENT = Q ** sp.Rational(1, 4) / 6


def z_condition_reading() -> DerivationResult:
    """SPEC §5.2: Z <= 1/(4 l_b^2) or Z <= l_b^2/4?  Only the first can hold with Z >= 1 and l_b <= 1/2."""
    largest_alternative = (l_b**2 / 4).subs(l_b, sp.Rational(1, 2))
    proof_needs = sp.solve(sp.Le(Z * l_b**2 / 2, sp.Rational(1, 8)), Z)  # the proof's l_b^2 Z / 2 <= 1/8
    satisfiable_alternative = bool(largest_alternative >= 1)
    return DerivationResult(
        "Z condition reading",
        {"max of l_b^2/4 over l_b <= 1/2": largest_alternative, "proof's Z l_b^2/2 <= 1/8 gives": proof_needs.rhs
         if hasattr(proof_needs, "rhs") else proof_needs},
        {"Z <= l_b^2/4 satisfiable with Z >= 1": satisfiable_alternative},
        not satisfiable_alternative,
        "Z <= 1/(4 l_b^2): the other reading allows no Z >= 1 (l_b^2/4 <= 1/16), and the proof's "
        "interference bound Z l_b^2/2 <= 1/8 is exactly Z <= 1/(4 l_b^2)",
    )


def role_of_Q_ge_40(K_value: int = 10, delta_value=sp.Rational(1, 20)) -> DerivationResult:
    """SPEC §5.5: 2KQ^2 e^{-Q/45} = delta has a root below the bound's maximum (Q = 90); Q >= 40 excludes it."""
    q = sp.Symbol("q", positive=True)
    bound = THEOREM_4_3.conclusions["risk_bound"].subs(K, K_value)
    bound = bound.subs(Q, q)
    peak = sp.solve(sp.diff(sp.log(bound), q), q)[0]
    small_root = sp.nsolve(bound - delta_value, q, 0.05)
    return DerivationResult(
        "role of Q >= 40",
        {"argmax of the bound": peak},
        {"small root (K = 10, delta = 0.05)": small_root, "bound at Q = 40": sp.N(bound.subs(q, 40), 8)},
        bool(small_root < 40),
        f"only the smallest-Q branch is cut: the bound rises until Q = {peak} and equals delta again at "
        f"Q = {sp.N(small_root, 4)} < 40; nothing in the risk bound itself needs Q >= 40 (still unexplained)",
    )


def predecessor_exponents() -> DerivationResult:
    """PREDECESSOR §6.3: do Q^{3/4}/256 and e^{-Q^{1/4}/6} follow from the appendix after its Remark?

    Remark: eps = 1/(16 v (Z+2)), v = 1/(4 sqrt Q), d = 5Q, with Z + 2 <= Q^{1/4} (its assumption).
    """
    worst_Z = Q ** sp.Rational(1, 4) - 2
    concentration = sp.simplify(substitute(PREDECESSOR_CONCENTRATION_EXPONENT, remark_substitution(4)).subs(Z, worst_Z))
    risk = sp.simplify(substitute(PREDECESSOR_RISK_EXPONENT, remark_substitution(4)).subs(Z, worst_Z))
    q = sp.Symbol("q", positive=True)
    # Beyond which Q is the derived exponent at least the printed one (so the printed one follows, loosely)?
    risk_ok_from = sp.nsolve(risk.subs(Q, q) - PRINTED_RISK_EXPONENT.subs(Q, q), q, 3e4)
    concentration_ratio = sp.simplify(concentration / PRINTED_PROBABILITY_EXPONENT)
    return DerivationResult(
        "predecessor's main-text exponents",
        {"eps^2/16 after Remark (worst Z)": concentration, "risk exponent after Remark (worst Z)": risk,
         "derived / printed Q^{3/4}/256": concentration_ratio},
        {"derived risk exponent >= Q^{1/4}/6 from Q =": risk_ok_from},
        False,
        f"Q^(3/4)/256 does not follow (the Remark gives {concentration}, smaller by a factor Q^(1/4)); "
        f"e^(-Q^(1/4)/6) follows only as a looser bound, from Q >= {sp.N(risk_ok_from, 6)} (derived: e^(-{risk}))",
    )


def predecessor_upper_envelope() -> DerivationResult:
    """PREDECESSOR §6.4: Thm A.1 prints r^U = 2 d v^2 beta^2 t/(N tau); its proof ends at 10 Q beta^2 t/(N tau)."""
    printed = 2 * d * v**2
    from_proof = 5 * Q + 2 * d * v**2  # (5Q + 2dv^2) beta^2 t/(2 N tau), eq. (39-40), times 2
    at_remark = {d: 5 * Q, v: 1 / (4 * sp.sqrt(Q))}
    ratio = sp.simplify(printed.subs(at_remark) / (10 * Q))
    return DerivationResult(
        "predecessor Thm A.1 r^U",
        {"printed slope (x beta^2 t/(N tau))": printed, "proof's slope x 2": from_proof,
         "printed / 10Q at d = 5Q, v = 1/(4 sqrt Q)": ratio},
        {}, False,
        f"the printed r^U is {ratio} of the proof's 10Q beta^2 t/(N tau): a typo in the statement",
    )


def generalization_exponent_per_Q() -> sp.Expr:
    return sp.simplify(risk_exponent(THEOREM_4_3) / Q)
