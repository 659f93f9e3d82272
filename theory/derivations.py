"""All statement objects and the item-2 derivations of issue 3 in one place, for an audit command to print."""
from __future__ import annotations

import sympy as sp

from theory.concentration import LEMMA_B1, LEMMA_C2, LEMMA_C3, derive_lemma_c2, expected_gram_entries
from theory.failure_mode import FAILURE_MODE, derive_failure_threshold
from theory.generalization import (PREDECESSOR_THEOREM_4_2, THEOREM_4_3, THEOREM_B4, THEOREM_C6,
                                   refined_exponent_after_remark)
from theory.statements import DerivationResult, log_linear_roots, to_mpf
from theory.training_guarantee import (LEMMA_B2, THEOREM_4_2, THEOREM_B3, THEOREM_C5, appendix_vacuous_until,
                                       envelope_at_tau_1, envelope_slopes_from_lemma_b2, main_text_probability_from_b3,
                                       main_text_vacuous_until)

ALL_STATEMENTS = (THEOREM_4_2, THEOREM_4_3, LEMMA_B1, LEMMA_B2, THEOREM_B3, THEOREM_B4,
                  LEMMA_C2, LEMMA_C3, THEOREM_C5, THEOREM_C6, FAILURE_MODE, PREDECESSOR_THEOREM_4_2)


def risk_bound_vacuous_until(K_value: int = 1) -> DerivationResult:
    """Largest Q with 2KQ^2 e^{-Q/45} >= 1 (the bound says nothing there): the W_{-1} root at delta = 1."""
    root = log_linear_roots(sp.Rational(1, 45), 2, sp.log(2 * sp.Integer(K_value)))[1]
    return DerivationResult(f"Theorem 4.3 risk bound >= 1 (K = {K_value})", {"Q": root},
                            {"Q": to_mpf(root)}, None, f"risk bound >= 1 for Q <= {sp.N(root, 8)}")


def item_2_results(K_value: int = 1, c_value=1) -> list[DerivationResult]:
    return [
        envelope_at_tau_1(THEOREM_4_2),
        envelope_at_tau_1(THEOREM_C5),
        envelope_slopes_from_lemma_b2(32),
        refined_exponent_after_remark(32),
        refined_exponent_after_remark(4),
        main_text_probability_from_b3(),
        main_text_vacuous_until(K_value, c_value),
        appendix_vacuous_until(K_value, c_value),
        risk_bound_vacuous_until(K_value),
        expected_gram_entries(),
        derive_lemma_c2(),
        derive_failure_threshold(),
    ]
