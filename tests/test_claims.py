"""The claims of issue 5: every one returns a verdict at its defaults (quick profile), the decision rule,
and the paper's own numbers (K = 10, Q = 880, beta = 0.01, l_b in {1/4, 1/2}) at the symbolic level."""
import math

import pytest
import sympy as sp

from theory.generalization import THEOREM_4_3, THEOREM_B4
from theory.training_guarantee import THEOREM_4_2
from verify.claims import get_claim
from verify.claims.common import assumption_report, conclusion, decide, v_boundary
from verify.claims.training_guarantee import float_at_most
from verify.verdicts import Status

CLAIMS = ("theorem-4.2", "theorem-4.3", "lemma-b.1", "theorem-b.3", "theorem-b.4", "lemma-c.2", "theorem-c.5",
          "theorem-c.6", "scaling-law", "sec7-failure-mode")


@pytest.mark.parametrize("claim_id", CLAIMS)
def test_every_claim_returns_a_verdict_at_its_quick_defaults(claim_id):
    claim = get_claim(claim_id)
    verdict = claim.run(quick=True)
    assert verdict.claim == claim_id
    assert verdict.status in (Status.HOLDS, Status.VACUOUS), verdict.summary
    assert verdict.trials >= 1 and verdict.failure_rate_upper is not None
    assert verdict.tightness, "point 5: every claim reports measured/bound ratios"
    assert any(ch.isdigit() for ch in claim.reference), "section or equation number recorded"


def test_main_text_claims_are_vacuous_but_still_measured():
    verdict = get_claim("theorem-4.2").run(quick=True)
    assert verdict.status is Status.VACUOUS and "still measured" in verdict.summary
    assert verdict.measured is not None and verdict.details["success_probability"] <= 0


@pytest.mark.parametrize("l_b, tokens", [(0.25, "chain"), (0.5, "disjoint")])
def test_paper_point_symbolically(l_b, tokens):
    """K = 10, Q = 880, beta = 0.01: assumptions hold at the v boundary (l_b = 1/2 needs Z = 1); the risk
    bound is just under 0.05 and the stated probability is negative."""
    K, Q = 10, 880
    Z = 1 if tokens == "disjoint" else 2
    v = float_at_most(v_boundary(THEOREM_4_3, Q))
    assert assumption_report(THEOREM_4_3, Z=Z, d=5 * Q, v=v, Q=Q, l_b=l_b) == []
    bound = conclusion(THEOREM_4_3, "risk_bound", K=K, Q=Q)
    assert 0.04 < bound < 0.05
    assert conclusion(THEOREM_4_3, "success_probability", K=K, Q=Q, c=1) < 0
    env = THEOREM_4_2.evaluate(K=K, beta=sp.Rational(1, 100), tau=1)
    assert math.isclose(float(env["tau_1"].approx), K * math.log(3) / (5 * 0.01**2), rel_tol=1e-12)


def test_paper_point_l_b_half_needs_disjoint_tokens():
    unmet = assumption_report(THEOREM_4_3, Z=2, d=50, v=0.001, Q=880, l_b=0.5)
    assert len(unmet) == 1 and unmet[0].startswith("Z <= 1/(4 l_b^2)")


def test_assumption_failures_say_by_how_much():
    (line,) = assumption_report(THEOREM_B4, Z=1, d=4, v=1.0, Q=16, l_b=0.25, epsilon=0.01)
    assert line.startswith("v <= 1/(4 sqrt(Q)) fails by 0.938")


def test_decision_rule():
    common = dict(unmet=[], first_failure=None, measured=0.0, bound=1.0, summary="s", details={}, tightness={})
    assert decide("x", {}, 0, probability=0.99, failures=0, trials=10, **common).status is Status.HOLDS
    # 1 failure in 10 is consistent with a 1% failure probability (CP lower 0.0025 < 0.01)
    assert decide("x", {}, 0, probability=0.99, failures=1, trials=10, **common).status is Status.HOLDS
    assert decide("x", {}, 0, probability=0.99, failures=5, trials=10, **{**common, "first_failure": 3}).status is Status.VIOLATED
    assert decide("x", {}, 0, probability=-1.0, failures=0, trials=10, **common).status is Status.VACUOUS
    assert decide("x", {}, 0, probability=None, failures=1, trials=10, **common).status is Status.VIOLATED
    assert decide("x", {}, 0, probability=0.5, failures=0, trials=10, **{**common, "unmet": ["a"]}).status is Status.ASSUMPTIONS_UNMET
    assert decide("x", {}, 0, probability=0.5, failures=0, trials=10, discrepancies=["d"], **common).status is Status.DISCREPANCY


def test_verdict_to_dict_carries_tightness():
    verdict = get_claim("lemma-c.2").run(quick=True)
    assert verdict.to_dict()["tightness"]["worst case 2 cos sin / delta"] < 1
