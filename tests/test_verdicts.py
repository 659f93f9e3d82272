"""The decision rule at its edges: `holds` only when established, `consistent` with what would establish it,
`violated` by a significant failure rate or by a counterexample to a proof step, and Bonferroni in the
per-trial test."""
from __future__ import annotations

import json
import math

import pytest
from scipy.stats import binom

from verify.claims.common import CONFIDENCE, decide, exceeds_rate
from verify.report import verdict_table
from verify.verdicts import (MAX_FEASIBLE_TRIALS, ProofStepTally, Status, Verdict, clopper_pearson, establishment,
                             trials_to_establish)


def verdict(probability, failures, trials, **overrides):
    arguments = dict(unmet=[], first_failure=None if not failures else 7, measured=0.5, bound=1.0,
                     summary="measured 0.5 against 1", details={}, tightness={})
    arguments.update(overrides)
    return decide("x", {}, 0, probability=probability, failures=failures, trials=trials, **arguments)


def cp_upper_equal_to_its_own_complement():
    """(n, u): u = CP upper of 0 failures in n trials with 1 - (1 - u) == u in floats, so that a statement
    with P = 1 - u allows exactly u."""
    for n in range(20, 2000):
        upper = clopper_pearson(0, n)[1]
        if 1.0 - (1.0 - upper) == upper:
            return n, upper
    raise AssertionError("no such n below 2000")


# --- probabilistic statements: holds only when the CP upper bound is within the allowed rate ---------------
def test_cp_upper_exactly_at_the_allowed_rate_holds_and_one_ulp_above_does_not():
    n, upper = cp_upper_equal_to_its_own_complement()
    at_edge = verdict(1.0 - upper, 0, n)
    assert at_edge.details["allowed_failure_probability"] == upper == at_edge.failure_rate_upper
    assert at_edge.status is Status.HOLDS and at_edge.established and at_edge.details["established"] is True
    stricter = math.nextafter(1.0 - upper, 1.0)  # a larger P allows slightly less than the CP upper bound
    assert 1.0 - stricter < upper
    below = verdict(stricter, 0, n)
    assert below.status is Status.CONSISTENT and not below.established and below.details["established"] is False
    assert below.details["trials_to_establish"] == n + 1
    # and the count that would establish it is the edge found here
    assert trials_to_establish(upper) == n


def test_zero_failures_in_too_few_trials_is_consistent_with_the_trials_that_would_establish_it():
    # allowed 5%: the two-sided 95% CP upper bound of 0/n is 1 - 0.025^(1/n), <= 0.05 from n = 72 on
    assert math.ceil(math.log(0.025) / math.log(0.95)) == 72
    assert clopper_pearson(0, 72)[1] <= 0.05 < clopper_pearson(0, 71)[1]
    few = verdict(0.95, 0, 10)
    assert few.status is Status.CONSISTENT
    assert few.details["trials_to_establish"] == 72 and "0 failures in n >= 72 trials would establish it" in few.summary
    assert verdict(0.95, 0, 71).status is Status.CONSISTENT
    assert verdict(0.95, 0, 72).status is Status.HOLDS


@pytest.mark.parametrize("allowed", [0.3, 0.05, 0.0123, 1e-3, 1e-6])
def test_trials_to_establish_is_the_fewest_trials_the_rule_accepts(allowed):
    n = trials_to_establish(allowed)
    assert isinstance(n, int)
    assert clopper_pearson(0, n)[1] <= allowed
    assert n == 1 or clopper_pearson(0, n - 1)[1] > allowed
    assert abs(n - math.log((1 - CONFIDENCE) / 2) / math.log1p(-allowed)) <= 1


def test_no_feasible_number_of_trials_is_said_so():
    # the paper's theorem-b.3 allows a failure rate near 1e-21; 1e-12 already needs 3.7e12 trials
    assert trials_to_establish(1e-12) > MAX_FEASIBLE_TRIALS
    tiny = verdict(1 - 1e-12, 0, 80_000)
    assert tiny.status is Status.CONSISTENT and tiny.details["trials_to_establish"] is None
    assert "no feasible number of trials" in tiny.summary and "3.7e+12" in tiny.summary
    # a success probability that rounds to 1 allows nothing: no trial count establishes it
    assert trials_to_establish(0.0) == math.inf
    certain = verdict(1.0, 0, 10**6)
    assert certain.status is Status.CONSISTENT and certain.details["trials_to_establish"] is None
    assert establishment(certain.status, certain.exact, certain.details) == "no (no feasible n)"


def test_a_significant_failure_rate_is_violated_and_one_below_it_only_consistent():
    allowed, n = 0.01, 100
    k = next(k for k in range(1, n) if clopper_pearson(k, n)[0] > allowed)  # the fewest significant failures
    assert k == 4
    assert verdict(1 - allowed, k, n).status is Status.VIOLATED
    assert "counterexample at seed 7" in verdict(1 - allowed, k, n).summary
    not_significant = verdict(1 - allowed, k - 1, n)
    assert not_significant.status is Status.CONSISTENT and not not_significant.established


# --- deterministic statements: the check is the proof -------------------------------------------------
def test_a_deterministic_statement_holds_on_a_clean_check_with_no_failure_rate():
    clean = verdict(None, 0, 3)
    assert clean.status is Status.HOLDS and clean.exact and clean.established
    assert clean.failure_rate_upper is None and "failure_rate_interval" not in clean.details
    assert "0/3 trials fail (deterministic: none allowed)" in clean.summary
    assert clean.to_dict()["failure_rate_upper"] is None and clean.to_dict()["established"] is True


@pytest.mark.parametrize("trials", [1, 10_000])
def test_one_deterministic_failure_is_violated_however_many_trials_passed(trials):
    failed = verdict(None, 1, trials)
    assert failed.status is Status.VIOLATED and failed.seed == 7 and not failed.established


def test_a_deterministic_check_with_no_instance_establishes_nothing():
    assert verdict(None, 0, 0).status is Status.CONSISTENT


# --- proof steps ------------------------------------------------------------------------------------------
def tally(counterexamples, seed=None):
    return ProofStepTally("Lemma B.1's event", "r(tau_1) <= r_U(tau_1)", trials=8, event_held=6,
                          counterexamples=counterexamples, first_counterexample_seed=seed)


def test_a_counterexample_to_the_proof_is_violated_even_when_the_stated_probability_is_negative():
    step = tally(1, seed=12)
    broken = verdict(-3.0, 0, 8, proof_step=step)
    assert broken.status is Status.VIOLATED and broken.seed == 12
    assert broken.summary.startswith("counterexample to the proof at seed 12: ")
    assert step.line() in broken.summary and broken.proof_step == step
    # the same tally on a statement with a positive probability, and with none
    assert verdict(0.99, 0, 8, proof_step=step).status is Status.VIOLATED
    assert verdict(None, 0, 8, proof_step=step).status is Status.VIOLATED
    # assumptions-unmet still comes first: outside the assumptions the proof promises nothing
    assert verdict(-3.0, 0, 8, proof_step=step, unmet=["v <= 1/(4 sqrt(Q)) fails"]).status is Status.ASSUMPTIONS_UNMET


def test_a_vacuous_statement_still_reports_its_measurement_and_its_proof_step_tally():
    step = tally(0)
    vacuous = verdict(-3.0, 0, 8, proof_step=step)
    assert vacuous.status is Status.VACUOUS and not vacuous.established
    assert "measured 0.5 against 1" in vacuous.summary and step.line() in vacuous.summary
    assert "held in 6/8 trials" in vacuous.summary and "failed in 0 of those" in vacuous.summary
    record = json.loads(json.dumps(vacuous.to_dict()))
    assert record["proof_step"]["event_held"] == 6 and record["established"] is False


def test_a_proof_step_tally_must_add_up():
    with pytest.raises(ValueError, match="inconsistent tally"):
        ProofStepTally("E", "C", trials=4, event_held=2, counterexamples=3)
    with pytest.raises(ValueError, match="inconsistent tally"):
        ProofStepTally("E", "C", trials=4, event_held=5, counterexamples=0)


# --- Bonferroni in the per-trial test ---------------------------------------------------------------------
def test_exceeds_rate_divides_the_level_by_the_trials():
    # 4 errors in 100 at a 1% rate: p = 0.018, significant at 0.05 but not at 0.05/10
    p_value = binom.sf(3, 100, 0.01)
    assert 0.05 / 10 < p_value < 0.05
    assert exceeds_rate([4], 100, 0.01, trials=1) == [True]
    assert exceeds_rate([4], 100, 0.01, trials=10) == [False]
    assert exceeds_rate([0, 4, 9], 100, 0.01, trials=10) == [False, False, True]  # 9: p = 6e-6


# --- how the distinction is shown -------------------------------------------------------------------------
def test_the_report_table_shows_established_and_leaves_exact_checks_without_a_failure_rate():
    identity = Verdict("eq-2", Status.HOLDS, "residual 0", trials=6, exact=True)
    consistent = verdict(0.95, 0, 10)
    established = verdict(0.95, 0, 72)
    header, _, *rows = verdict_table([identity, consistent, established]).splitlines()
    columns = [c.strip() for c in header.split("|")[1:-1]]
    cells = [dict(zip(columns, (c.strip() for c in row.split("|")[1:-1]))) for row in rows]
    assert [c["established"] for c in cells] == ["yes (exact)", "no (n >= 72)", "yes (95% CP)"]
    assert cells[0]["95% upper failure rate"] == "" and cells[0]["trials"] == "6"
    assert float(cells[1]["95% upper failure rate"]) > 0.05 >= float(cells[2]["95% upper failure rate"])


def test_an_identity_read_as_one_trial_would_show_a_failure_rate():
    # the reason exact checks carry no rate: one Bernoulli trial without failure bounds the rate by 0.975
    assert Verdict("eq-5", Status.HOLDS, "s", trials=1).failure_rate_upper == pytest.approx(0.975)
    assert Verdict("eq-5", Status.HOLDS, "s", trials=1, exact=True).failure_rate_upper is None
