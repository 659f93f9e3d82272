"""The theorems' assumptions and bounds at parameters fitted to real embeddings (SPEC §2.2, §2.3, §2.6, §2.7).

The statements come from `theory.training_guarantee` and `theory.generalization`; this module only
chooses the numbers: the fitted (l_b, v, delta, d, Q, K) of `verify.real.statistics`, Z under both readings
of SPEC §5 item 2 (pairs: Z = K; clusters: Z = 2K, since every persona uses " Yes" and " No"), and
the Remark's eps (`theory.statements.REMARK_EPSILON`), the largest value the appendix statements allow.
The Bernstein constant c is unknown; success probabilities are reported as their supremum over c > 0
(c -> infinity), so a non-positive value means the statement guarantees nothing for any c.
"""
from __future__ import annotations

from typing import Any

import sympy as sp

from theory.generalization import THEOREM_4_3, THEOREM_B4, THEOREM_C6
from theory.statements import remark_epsilon
from theory.symbols import c
from theory.training_guarantee import THEOREM_4_2, THEOREM_B3, THEOREM_C5
from verify.real.statistics import FittedParameters

STATEMENTS = (THEOREM_4_2, THEOREM_B3, THEOREM_C5, THEOREM_4_3, THEOREM_B4, THEOREM_C6)


def _decimal(x: float) -> str:
    # A short decimal string is taken exactly by theory.statements (a float would be its binary expansion).
    return format(float(x), ".12g")


def theorem_values(fit: FittedParameters, Z: int) -> dict[str, Any]:
    v = fit.v
    epsilon = float(remark_epsilon(v, Z)) if v > 0 else None
    values = {"K": fit.K, "Q": fit.Q, "d": fit.d, "Z": Z, "l_b": _decimal(fit.l_b), "v": _decimal(v),
              "delta": _decimal(fit.delta)}
    if epsilon is not None:
        values["epsilon"] = _decimal(epsilon)
    return values


def _number(expr: sp.Expr) -> float | None:
    value = sp.N(expr, 20)
    return float(value) if value.is_number and value.is_real else None


def check_at_fit(fit: FittedParameters, beta: float = 0.01) -> list[dict[str, Any]]:
    """For each statement and Z reading: failed assumptions (with the amount) and bounds at the fitted values."""
    rows = []
    for reading, Z in (("pairs", fit.Z_pairs), ("clusters", fit.Z_clusters)):
        values = theorem_values(fit, Z)
        for statement in STATEMENTS:
            needed = {s.name for rel in statement.assumptions.values() for s in rel.free_symbols}
            failures = statement.check_assumptions(**{k: x for k, x in values.items() if k in needed})
            evaluated = statement.evaluate(**values, beta=_decimal(beta), tau=1, t=0)
            row: dict[str, Any] = {
                "statement": statement.name,
                "Z_reading": reading,
                "Z": Z,
                "assumptions_hold": not failures,
                "failed_assumptions": [
                    {"assumption": f.name, "lhs": _number(f.lhs), "rhs": _number(f.rhs), "excess": float(f.approx)}
                    for f in failures
                ],
            }
            for name, value in evaluated.items():
                if name == "success_probability":
                    sup = value.exact.subs(c, sp.oo)
                    row["success_probability_sup_over_c"] = _number(sup)
                elif name == "risk_bound":
                    row["risk_bound"] = _number(value.exact)
                elif name == "tau_1":
                    row["tau_1_over_tau"] = float(value.approx)  # tau = 1: flow time in units of tau
            rows.append(row)
    return rows
