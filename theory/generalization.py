"""Generalization bounds: Theorem 4.3 (main text), Theorem B.4, Theorem C.6, and the predecessor's bound.

SPEC §2.3, §2.6, §2.7; PREDECESSOR §2 (ICLR Theorem 4.2). The refined displays of B.4 and C.6 are [R].
"""
from __future__ import annotations

import sympy as sp

from theory.statements import DerivationResult, Statement, remark_substitution, substitute
from theory.symbols import K, Q, Z, d, epsilon, l_b, v
from theory.training_guarantee import APPENDIX_CONDITIONS, MAIN_TEXT_PROBABILITY, THEOREM_4_2, THEOREM_B3, THEOREM_C5

THEOREM_4_3 = Statement(
    name="Theorem 4.3",
    reference="§4.2, Generalization Error; SPEC §2.3",
    assumptions={**THEOREM_4_2.assumptions, "Q >= 40": sp.Ge(Q, 40)},
    conclusions={
        "risk_bound": 2 * K * Q**2 * sp.exp(-Q / 45),
        "success_probability": MAIN_TEXT_PROBABILITY,
    },
    notes=("[V] bound 2KQ^2 e^{-Q/45} (papernotes); risk of the implicit reward model at tau_1.",
           "The role of Q >= 40 is unclear (SPEC §5 item 5)."),
)

THEOREM_B4 = Statement(
    name="Theorem B.4",
    reference="App. B, refined generalization; SPEC §2.6",
    assumptions=dict(APPENDIX_CONDITIONS),
    conclusions={
        "risk_bound": 2 * K * Q**2 * sp.exp(-epsilon**2 / (2 * (1 + l_b**2 + d * v**2 + 2 * epsilon * v))),
        "success_probability": THEOREM_B3.conclusions["success_probability"],
    },
    notes=("[V] conditions and probability (printed 'KP^2'); [R] risk display from the proof's variance bound.",
           "Proof uses eps <= 1/(8 v (Z+2)), statement eps <= 1/(16 v (Z+2)); the statement's is encoded."),
)

THEOREM_C6 = Statement(
    name="Theorem C.6",
    reference="App. C, generalization for delta-approximately orthogonal clusters; SPEC §2.7",
    assumptions=dict(THEOREM_C5.assumptions),
    conclusions={
        "risk_bound": 2 * K * Q**2 * sp.exp(
            -epsilon**2 / (2 * (1 + l_b**2 + d * v**2 + sp.Rational(5, 2) * epsilon * v))),
        "success_probability": THEOREM_C5.conclusions["success_probability"],
    },
    notes=("[R] display; variance bound (1 + l_b^2 + d v^2 + 5/2 eps v) v^2 [V].",),
)

PREDECESSOR_THEOREM_4_2 = Statement(
    name="ICLR Theorem 4.2 (predecessor)",
    reference="arXiv 2408.03459 v1-v3, Theorem 4.2, Eq. (11); PREDECESSOR §2",
    assumptions={
        "Z <= 1/(4 l_b^2)": sp.Le(Z, 1 / (4 * l_b**2)),
        "Z <= Q^{1/4} - 2": sp.Le(Z, Q ** sp.Rational(1, 4) - 2),
        "d <= 5Q": sp.Le(d, 5 * Q),
        "v <= 1/(4 sqrt(Q))": sp.Le(v, 1 / (4 * sp.sqrt(Q))),
        "Q >= 40": sp.Ge(Q, 40),
    },
    conclusions={
        "risk_bound": 2 * K * Q**2 * sp.exp(-Q ** sp.Rational(1, 4) / 6),
        "success_probability": MAIN_TEXT_PROBABILITY,
    },
    notes=("[V] as printed in the ICLR submission.",),
)

GENERALIZATION_STATEMENTS = (THEOREM_4_3, THEOREM_B4, THEOREM_C6, PREDECESSOR_THEOREM_4_2)


def risk_exponent(statement: Statement) -> sp.Expr:
    """E with risk_bound = 2 K Q^2 exp(-E)."""
    (factor,) = [f for f in sp.Mul.make_args(statement.conclusions["risk_bound"]) if isinstance(f, sp.exp)]
    return -factor.args[0]


def admissible_corners() -> list[tuple[int, sp.Expr]]:
    """(Z, largest l_b) over the admissible set: Z integer, 1/4 <= l_b <= 1/2 and Z <= 1/(4 l_b^2).

    Z <= 1/(4 l_b^2) with l_b >= 1/4 forces Z <= 4; for each Z the largest l_b is min(1/2, 1/(2 sqrt Z)).
    """
    return [(z, sp.Min(sp.Rational(1, 2), 1 / (2 * sp.sqrt(z)))) for z in range(1, 5)]


def refined_exponent_after_remark(v_denominator: int = 32) -> DerivationResult:
    """Theorem B.4's exponent after eps = 1/(16 v (Z+2)), v = 1/(v_denominator sqrt Q), d = 5Q, per unit Q.

    The exponent decreases in Z, l_b and d (checked by the sign of the derivatives), so its minimum over the
    admissible set (d <= 5Q, SPEC §5 reading of Z) is at d = 5Q and the corners of `admissible_corners`.
    """
    x_Z, x_l, x_D = sp.symbols("x_Z x_l x_D", positive=True)  # Z, l_b, d v^2 as real variables
    E = risk_exponent(THEOREM_B4)
    sub = remark_substitution(v_denominator)
    E_real = substitute(E.subs(d, x_D / v**2), sub).subs({Z: x_Z, l_b: x_l})  # x_D = d v^2 <= 5 / v_denominator^2
    signs = {name: sp.factor(sp.diff(E_real, x)).is_negative for name, x in (("Z", x_Z), ("l_b", x_l), ("d", x_D))}
    per_Q = sp.simplify(substitute(E, remark_substitution(v_denominator)) / Q)
    corners = {z: sp.simplify(per_Q.subs({Z: z, l_b: lb})) for z, lb in admissible_corners()}
    worst_Z = min(corners, key=lambda z: corners[z])
    worst = corners[worst_Z]
    stated = sp.Rational(1, 45)
    # the paper's route: (Z+2)^2 <= 36 and 1 + l_b^2 + d v^2 + 2 eps v <= 5/2
    denominator = sp.simplify(substitute(1 + l_b**2 + d * v**2 + 2 * epsilon * v, remark_substitution(v_denominator)))
    denominator_max = max(sp.simplify(denominator.subs({Z: z, l_b: lb})) for z, lb in admissible_corners())
    implies = bool(worst >= stated)
    return DerivationResult(
        f"Theorem B.4 -> Theorem 4.3 exponent (v = 1/({v_denominator} sqrt Q))",
        {"exponent": substitute(E, remark_substitution(v_denominator)), "exponent / Q": per_Q,
         "1 + l_b^2 + d v^2 + 2 eps v": denominator},
        {"d(exponent)/d(Z, l_b, d v^2) < 0": signs, "exponent/Q at Z = 1..4 (largest l_b)": corners,
         "minimum exponent/Q": worst, "Q / minimum exponent": 1 / worst, "as decimal": sp.N(1 / worst, 12),
         "max of 1 + l_b^2 + d v^2 + 2 eps v": denominator_max, "paper's bound on it": sp.Rational(5, 2)},
        implies and all(signs.values()),
        (f"implies e^(-Q/45): the exact minimum exponent is {worst}*Q = Q/{sp.N(1 / worst, 6)} (Z = {worst_Z}, "
         f"l_b = 1/4, d = 5Q)") if implies else
        f"does NOT imply e^(-Q/45): the exponent is only {worst}*Q = Q/{sp.N(1 / worst, 6)} at Z = {worst_Z}",
    )
