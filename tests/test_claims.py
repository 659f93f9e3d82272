"""The claims: every one returns a verdict at its defaults (quick profile), the decision rule,
and the paper's own numbers (K = 10, Q = 880, beta = 0.01, l_b in {1/4, 1/2}) at the symbolic level."""
import math

import pytest
import sympy as sp

from theory.generalization import THEOREM_4_3, THEOREM_B4
from theory.numbers import float_at_most
from theory.training_guarantee import THEOREM_4_2
from verify.claims import get_claim
from verify.claims.common import conclusion, decide
from verify.verdicts import Status

CLAIMS = ("theorem-4.2", "theorem-4.3", "lemma-b.1", "theorem-b.3", "theorem-b.4", "lemma-c.2", "theorem-c.5",
          "theorem-c.6", "scaling-law", "sec7-failure-mode")


@pytest.mark.parametrize("claim_id", CLAIMS)
def test_every_claim_returns_a_verdict_at_its_quick_defaults(claim_id, quick_verdict):
    claim = get_claim(claim_id)
    verdict = quick_verdict(claim_id)
    assert verdict.claim == claim_id
    # no counterexample at the defaults, to the statement or to its proof, whichever status that earns
    assert verdict.failures == 0, verdict.summary
    assert verdict.proof_step is None or verdict.proof_step.counterexamples == 0, verdict.summary
    assert verdict.status in (Status.HOLDS, Status.CONSISTENT, Status.VACUOUS), verdict.summary
    assert verdict.established == (verdict.status is Status.HOLDS) == verdict.details["established"]
    # a deterministic statement (no stated probability) is checked per instance: no failure-rate bound
    deterministic = "success_probability" not in verdict.details
    assert verdict.trials >= 1 and verdict.exact == deterministic
    assert (verdict.failure_rate_upper is None) == deterministic
    if verdict.status is Status.HOLDS and not deterministic:
        assert verdict.failure_rate_upper <= verdict.details["allowed_failure_probability"]
    if verdict.status is Status.CONSISTENT:
        needed = verdict.details["trials_to_establish"]
        assert needed is None or needed > verdict.trials, verdict.summary
        assert "not established" in verdict.summary
    assert verdict.tightness, "every claim reports measured/bound ratios"
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
    v = float_at_most(THEOREM_4_3.v_boundary(Q))
    assert THEOREM_4_3.unmet(Z=Z, d=5 * Q, v=v, Q=Q, l_b=l_b) == []
    bound = conclusion(THEOREM_4_3, "risk_bound", K=K, Q=Q)
    assert 0.04 < bound < 0.05
    assert conclusion(THEOREM_4_3, "success_probability", K=K, Q=Q, c=1) < 0
    env = THEOREM_4_2.evaluate(K=K, beta=sp.Rational(1, 100), tau=1)
    assert math.isclose(float(env["tau_1"].approx), K * math.log(3) / (5 * 0.01**2), rel_tol=1e-12)


def test_paper_point_l_b_half_needs_disjoint_tokens():
    unmet = THEOREM_4_3.unmet(Z=2, d=50, v=0.001, Q=880, l_b=0.5)
    assert len(unmet) == 1 and unmet[0].startswith("Z <= 1/(4 l_b^2)")


def test_assumption_failures_say_by_how_much():
    (line,) = THEOREM_B4.unmet(Z=1, d=4, v=1.0, Q=16, l_b=0.25, epsilon=0.01)
    assert line.startswith("v <= 1/(4 sqrt(Q)) fails by 0.938")


def test_decision_rule():
    """The order of the verdicts; tests/test_verdicts.py takes each rule to its edges."""
    common = dict(unmet=[], first_failure=None, measured=0.0, bound=1.0, summary="s", details={}, tightness={})
    # 0 failures in 10 trials cannot establish a 1% failure probability (CP upper 0.31), 0 in 400 can (0.0092)
    assert decide("x", {}, 0, probability=0.99, failures=0, trials=10, **common).status is Status.CONSISTENT
    assert decide("x", {}, 0, probability=0.99, failures=0, trials=400, **common).status is Status.HOLDS
    # 1 failure in 10 is no counterexample to a 1% failure probability (CP lower 0.0025 < 0.01)
    assert decide("x", {}, 0, probability=0.99, failures=1, trials=10, **common).status is Status.CONSISTENT
    assert decide("x", {}, 0, probability=0.99, failures=5, trials=10, **{**common, "first_failure": 3}).status is Status.VIOLATED
    assert decide("x", {}, 0, probability=-1.0, failures=0, trials=10, **common).status is Status.VACUOUS
    assert decide("x", {}, 0, probability=None, failures=1, trials=10, **common).status is Status.VIOLATED
    assert decide("x", {}, 0, probability=0.5, failures=0, trials=10, **{**common, "unmet": ["a"]}).status is Status.ASSUMPTIONS_UNMET
    assert decide("x", {}, 0, probability=0.5, failures=0, trials=10, discrepancies=["d"], **common).status is Status.DISCREPANCY


def test_verdict_to_dict_carries_tightness():
    verdict = get_claim("lemma-c.2").run(quick=True)
    assert verdict.to_dict()["tightness"]["worst case 2 cos sin / delta"] < 1


# --- claims generated from their statements -----------------------------------------------------------
STATEMENT_CLAIMS = CLAIMS  # every inequality claim has a Statement; the exact identities type their text
IDENTITY_CLAIMS = ("eq-2", "lemma-4.1", "sec7-gpo", "eq-4", "eq-5", "sec7-individual-rewards")


@pytest.mark.parametrize("claim_id", STATEMENT_CLAIMS)
def test_claim_text_is_generated_from_its_statement(claim_id):
    from dataclasses import replace

    from theory.statements import compact
    from verify.claims import Claim

    claim = get_claim(claim_id)
    statement = claim.statement
    assert statement is not None
    assert claim.reference == statement.reference and claim.title.startswith(statement.name + ": ")
    for relation in statement.assumptions.values():
        assert compact(relation) in claim.assumptions
    # change one relation in a copy of the statement: the generated text follows it
    name, relation = next(iter(statement.assumptions.items()))
    changed_relation = type(relation)(relation.lhs, relation.rhs + 7, evaluate=False)
    changed = replace(statement, assumptions={**statement.assumptions, name: changed_relation})
    copy = Claim(claim.id, check=claim.check, statement=changed, defaults=claim.defaults, specs=claim.specs)
    assert copy.assumptions != claim.assumptions and compact(changed_relation) in copy.assumptions
    # and so does a changed conclusion
    first = next(n for n in statement.conclusions if n != "success_probability")
    renamed = replace(statement, conclusions={**statement.conclusions, first: statement.conclusions[first] + 1})
    assert Claim(claim.id, check=claim.check, statement=renamed).title != claim.title


def test_a_statement_claim_cannot_also_type_its_text():
    claim = get_claim("theorem-4.2")
    from verify.claims import Claim

    with pytest.raises(TypeError, match="come from its statement"):
        Claim("x", title="restated by hand", check=claim.check, statement=claim.statement)
    with pytest.raises(TypeError, match="title, reference and assumptions are required"):
        Claim("x", check=claim.check)


@pytest.mark.parametrize("claim_id", IDENTITY_CLAIMS)
def test_identity_claims_have_no_failure_rate(claim_id):
    """An identity is checked exactly on each instance: its pass is established, with no failure-rate bound
    (a single instance read as one Bernoulli trial would show a 95% upper failure rate of 0.975)."""
    verdict = get_claim(claim_id).run(quick=True)
    assert verdict.exact and verdict.failure_rate_upper is None and verdict.failures == 0
    record = verdict.to_dict()
    assert record["failure_rate_upper"] is None and record["exact"] is True
    assert record["established"] == (verdict.status is Status.HOLDS)
    assert verdict.status in (Status.HOLDS, Status.DISCREPANCY), verdict.summary  # eq-5: the printed p's sign


@pytest.mark.parametrize("claim_id", IDENTITY_CLAIMS)
def test_identity_claims_keep_explicit_text(claim_id):
    claim = get_claim(claim_id)
    assert claim.statement is None and claim.title and claim.reference and claim.assumptions


def test_the_experiment_layer_registers_no_claim():
    """Importing the notebooks' and the sweeps' experiments must not import (and so register) any claim."""
    import subprocess
    import sys

    code = ("import sys, verify.experiments, verify.sweep.experiments; "
            "print([m for m in sys.modules if m.startswith('verify.claims')])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# Code forms of two formulas whose one home is theory/: the Remark's eps = 1/(16 v (Z+2)) and Def. C.1's
# cos xi = 1 - delta^2/8, each with a line it must match (prose such as "1/(16 v (Z+2))" is not matched).
RETYPED_FORMULAS = {
    "eps = 1/(16 v (Z+2))": (r"16\s*\*[^\n#]{0,40}\(\s*Z\w*\s*\+\s*2\s*\)",
                             "epsilon = 1 / (16 * sp.Rational(v) * (Z + 2))"),
    "cos = 1 - delta^2/8": (r"[\w.]*delta\w*\s*\*\*\s*2\s*/\s*8", "cos = 1 - self.delta**2 / 8"),
}


@pytest.mark.parametrize("formula", RETYPED_FORMULAS)
def test_formulas_live_only_in_theory(formula):
    import re
    from pathlib import Path

    pattern, example = RETYPED_FORMULAS[formula]
    pattern = re.compile(pattern)
    assert pattern.search(example)
    root = Path(__file__).resolve().parents[1]
    homes = [p for p in (root / "theory").rglob("*.py") if pattern.search(p.read_text())]
    assert homes, f"{formula}: no definition under theory/ (the pattern no longer matches it)"
    elsewhere = [str(p.relative_to(root)) for folder in ("verify", "notebooks", "benchmarks")
                 for p in (root / folder).rglob("*") if p.suffix in (".py", ".ipynb") and pattern.search(p.read_text())]
    assert elsewhere == [], f"{formula} retyped outside theory/: {elsewhere}"


def _keys(value):
    """The nested keys of a verdict's record (a dict's values are replaced by their own keys, or None)."""
    return {str(k): _keys(v) for k, v in value.items()} if isinstance(value, dict) else None


def test_every_claims_record_has_the_recorded_fields(snapshot, quick_verdict):
    """results.json is read by scripts: each claim's fields (parameters, details, tightness) at its quick
    settings are those recorded, so renaming one is a decision, not an accident."""
    import json

    from verify.claims import all_claims

    fields = {}
    for claim_id in sorted(all_claims()):
        verdict = quick_verdict(claim_id)
        fields[claim_id] = {"parameters": _keys(verdict.parameters), "details": _keys(verdict.details),
                            "tightness": _keys(verdict.tightness)}
    snapshot("claim_fields.json", json.dumps(fields, indent=1, ensure_ascii=False) + "\n")
