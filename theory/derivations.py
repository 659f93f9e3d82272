"""Every statement object of the paper in one tuple, and the Q below which Theorem 4.3's risk bound says nothing."""
from __future__ import annotations

import sympy as sp

from theory.concentration import LEMMA_B1, LEMMA_C2, LEMMA_C3
from theory.failure_mode import FAILURE_MODE
from theory.generalization import PREDECESSOR_THEOREM_4_2, THEOREM_4_3, THEOREM_B4, THEOREM_C6
from theory.scaling_law import SCALING_BOUND
from theory.statements import DerivationResult, to_mpf
from theory.symbols import K, delta
from theory.training_guarantee import LEMMA_B2, THEOREM_4_2, THEOREM_B3, THEOREM_C5

ALL_STATEMENTS = (THEOREM_4_2, THEOREM_4_3, LEMMA_B1, LEMMA_B2, THEOREM_B3, THEOREM_B4,
                  LEMMA_C2, LEMMA_C3, THEOREM_C5, THEOREM_C6, FAILURE_MODE, PREDECESSOR_THEOREM_4_2)


def risk_bound_vacuous_until(K_value: int = 1) -> DerivationResult:
    """Largest Q with 2KQ^2 e^{-Q/45} >= 1 (the bound says nothing there): the W_{-1} root at delta = 1."""
    root = SCALING_BOUND.threshold_root().subs({K: sp.Integer(K_value), delta: 1})
    return DerivationResult(f"Theorem 4.3 risk bound >= 1 (K = {K_value})", {"Q": root},
                            {"Q": to_mpf(root)}, None, f"risk bound >= 1 for Q <= {sp.N(root, 8)}")

