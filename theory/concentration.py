"""Concentration lemmas: Lemma B.1 (Gram entries of Gaussian clusters), Lemma C.2 (approximate
orthogonality of concept vectors) and Lemma C.3 (B.1 for delta-approximately orthogonal clusters).

SPEC §2.6–2.7. The probability expressions are printed [V]; the displayed dot-product bounds are [R].
"""
from __future__ import annotations

import functools

import sympy as sp

from theory.statements import DerivationResult, Statement, appendix_probability
from theory.symbols import Z, d, delta, epsilon, l_b, v

LEMMA_B1 = Statement(
    name="Lemma B.1",
    reference="App. B, Eqs. (9)-(13); SPEC §2.6",
    assumptions={"l_b <= 1/2": sp.Le(l_b, sp.Rational(1, 2))},
    conclusions={
        "success_probability": appendix_probability(8 * Z + 4, 8 * Z + 4),
        "half_width": 2 * epsilon * v,
        "same_cluster_dot": 1 + l_b**2,
        "squared_norm": 1 + l_b**2 + d * v**2,
        "opposite_cluster_dot": l_b**2 - 1,
        "other_pair_dot": l_b**2,
    },
    notes=(
        "[V] probability; [R] displays of Eqs. (9)-(13).",
        "Half-width 2*eps*v is a reconstruction (SPEC §5 item 7): eps*v Gaussian part + eps*v Bernstein part.",
        "Union bound: 2KQ^2 for (9)+(10), 2KQ^2 for (11), 4ZKQ^2 each for (12) and (13): (8Z+4)KQ^2.",
    ),
)


def expected_gram_entries() -> DerivationResult:
    """E[x_j . x_k] for the cluster model of SPEC §1.5, from explicit means b = l_b e1, c_i = e2, c_i' = e3.

    The noise alpha ~ N(0, v^2 I_d) adds E[alpha_j . alpha_k] = d v^2 [j = k] and nothing else.
    """
    e = sp.eye(3)
    b, c1, c2 = l_b * e[:, 0], e[:, 1], e[:, 2]
    dot = lambda x, y: (x.T * y)[0, 0]
    derived = {
        "same_cluster_dot": dot(c1 + b, c1 + b),
        "squared_norm": dot(c1 + b, c1 + b) + d * v**2,
        "opposite_cluster_dot": dot(c1 + b, -c1 + b),
        "other_pair_dot": dot(c1 + b, c2 + b),
    }
    residuals = {k: sp.simplify(derived[k] - LEMMA_B1.conclusions[k]) for k in derived}
    ok = all(r == 0 for r in residuals.values())
    return DerivationResult(
        "Lemma B.1 centres", derived, {f"residual[{k}]": r for k, r in residuals.items()}, ok,
        "the centres of Eqs. (9)-(13) equal the expected Gram entries" if ok else "centres differ from E[x.x']",
    )


# Def. C.1's boundary case: a concept vector at angle xi to its basis vector, cos xi = 1 - delta^2/8.
TILT_COSINE = 1 - delta**2 / 8
# sin xi from 1 - cos^2 factored, delta sqrt(4 - delta) sqrt(4 + delta)/8: in floats, 1 - cos^2 would lose
# every digit once delta^2/8 is below the float64 epsilon (delta < 4e-8), and most of them well above it.
TILT_SINE = sp.sqrt(sp.factor(1 - TILT_COSINE**2))


@functools.lru_cache(maxsize=None)
def _tilt_functions():
    return sp.lambdify(delta, TILT_COSINE, "math"), sp.lambdify(delta, TILT_SINE, "math")


def concept_tilt(delta_value: float) -> tuple[float, float]:
    """(cos xi, sin xi) of Def. C.1's boundary case at a float 0 <= delta <= sqrt 8 (where cos xi >= 0)."""
    if not 0 <= delta_value <= 8**0.5:
        raise ValueError(f"delta must lie in [0, sqrt 8] for a tilt with cos >= 0, got {delta_value!r}")
    cosine, sine = _tilt_functions()
    return float(cosine(delta_value)), float(sine(delta_value))


LEMMA_C2 = Statement(
    name="Lemma C.2",
    reference="App. C, Def. C.1 and Lemma C.2; SPEC §2.7",
    assumptions={"delta >= 0": sp.Ge(delta, 0, evaluate=False), "delta < 1/2 (Def. C.1)": sp.Lt(delta, sp.Rational(1, 2))},
    conclusions={
        "inner_product_bound": delta,
        "sine_of_worst_angle": TILT_SINE,
    },
    notes=("[R] display; proof via angles xi <= arccos(1 - delta^2/8) to the basis vectors.",),
)


def derive_lemma_c2() -> DerivationResult:
    """|<c_1, c_2>| <= sin(xi_1 + xi_2) <= sin xi_1 + sin xi_2 <= delta, with cos xi = TILT_COSINE."""
    xi = sp.acos(TILT_COSINE)
    sine = sp.sqrt(sp.expand(1 - sp.cos(xi) ** 2))
    gap = sp.expand((delta / 2) ** 2 - sine**2)  # delta^4/64 >= 0, so sin xi <= delta/2
    # sin(xi1 + xi2) <= sin xi1 + sin xi2 needs xi1 + xi2 <= pi/2; worst case delta -> 1/2.
    worst_angle_sum = 2 * xi.subs(delta, sp.Rational(1, 2))
    ok = (sp.simplify(sine - LEMMA_C2.conclusions["sine_of_worst_angle"]) == 0
          and sp.simplify(gap - delta**4 / 64) == 0 and bool(worst_angle_sum < sp.pi / 2))
    return DerivationResult(
        "Lemma C.2", {"sin_xi": sine, "(delta/2)^2 - sin_xi^2": gap, "max xi1+xi2": worst_angle_sum},
        {"max xi1+xi2 (rad)": sp.N(worst_angle_sum, 15)}, ok,
        "sin xi = sqrt(delta^2/4 - delta^4/64) <= delta/2, so |<c_1,c_2>| <= delta" if ok else "derivation failed",
    )


LEMMA_C3 = Statement(
    name="Lemma C.3",
    reference="App. C, Lemma C.3 and Eq. (54); SPEC §2.7",
    assumptions={
        "delta <= eps v / 8": sp.Le(delta, epsilon * v / 8),
        "delta <= 1/4": sp.Le(delta, sp.Rational(1, 4)),
        "delta >= 0": sp.Ge(delta, 0, evaluate=False),
        "l_b <= 1/2": sp.Le(l_b, sp.Rational(1, 2)),
    },
    conclusions={
        "success_probability": appendix_probability(16 * Z + 8, 8 * Z + 4),
        "half_width": sp.Rational(5, 2) * epsilon * v,
    },
    notes=(
        "[V] conditions and probability; [R] half-width 5/2 eps v (the paper: 'increased by a factor of 5/4').",
    ),
)
