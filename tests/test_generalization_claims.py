"""The risk claims (theorem-4.3, theorem-b.4, theorem-c.6) and scaling-law decided by the exact risk in log
space, their proof-step tallies, the Monte Carlo cross-check, and the exact risk in the experiments and sweeps."""
from __future__ import annotations

import dataclasses
import math

import mpmath
import pytest
import sympy as sp

from theory.generalization import THEOREM_4_3, THEOREM_B4, THEOREM_C6
from theory.statements import remark_epsilon
from verify.claims import get_claim
from verify.claims import generalization, scaling
from verify.claims.common import conclusion
from verify.claims.generalization import (check_generalization, exceeds, gram_deviation_bound, lemma_event,
                                          log_conclusion, monte_carlo_check)
from verify.data_model import DiverseValueDistribution, concentration_events, gram_statistics, token_layout
from verify.verdicts import ProofStepTally, Status, clopper_pearson, trials_to_establish

RISK_CLAIMS = {"theorem-4.3": THEOREM_4_3, "theorem-b.4": THEOREM_B4, "theorem-c.6": THEOREM_C6}


@pytest.fixture(scope="module")
def quick_verdicts():
    return {claim_id: get_claim(claim_id).run(quick=True) for claim_id in RISK_CLAIMS}


def _check(statement, claim_id="x", **overrides):
    parameters = {**get_claim("theorem-b.4").parameters(quick=True), "v_outside": 0.0, **overrides}
    return check_generalization(statement, claim_id, seed=0, **parameters)


# --- per-trial exact risk against the bound ----------------------------------------------------------------
@pytest.mark.parametrize("claim_id", RISK_CLAIMS)
def test_quick_verdicts_report_every_trials_log10_risk_against_the_bound(quick_verdicts, claim_id):
    verdict = quick_verdicts[claim_id]
    risks = verdict.details["log10 risk per trial"]
    bound = verdict.details["log10 risk bound"]
    assert len(risks) == verdict.trials == get_claim(claim_id).parameters(quick=True)["trials"]
    assert all(math.isfinite(x) and x < -100 for x in risks), risks  # numbers far below float range, not 0.0
    assert verdict.failures == sum(x > bound for x in risks) == 0
    assert "log10 R per trial" in verdict.summary and f"{verdict.trials} trials above the bound" in verdict.summary
    decades = verdict.details["decades below the bound per trial"]
    assert decades == pytest.approx([bound - x for x in risks], abs=1e-3)
    assert verdict.tightness["decades below the bound (closest trial)"] == pytest.approx(min(decades))
    assert verdict.status is not Status.VIOLATED


@pytest.mark.parametrize("claim_id", RISK_CLAIMS)
def test_quick_verdicts_carry_a_consistent_proof_step_tally(quick_verdicts, claim_id):
    verdict = quick_verdicts[claim_id]
    tally = verdict.proof_step
    assert isinstance(tally, ProofStepTally)
    assert tally.trials == verdict.trials and tally.counterexamples == 0
    events = verdict.details["proof step event per trial"]
    assert tally.event_held == sum(events) == verdict.trials  # E holds at the theorem's own epsilon here
    lemma = "Lemma C.3" if claim_id == "theorem-c.6" else "Lemma B.1"
    assert tally.event.startswith(lemma) and "proof step" in verdict.summary
    # the half-width is the lemma's at the theorem's epsilon: 2 eps v (B.1), 5/2 eps v (C.3)
    factor = 2.5 if claim_id == "theorem-c.6" else 2.0
    parameters = verdict.parameters
    assert verdict.details["proof step half-width"] == pytest.approx(factor * parameters["epsilon"] * parameters["v"])


def test_a_trial_above_the_bound_is_counted_as_a_failure():
    """v far outside the assumptions with the bound replaced by 1e-300: every trial's risk is above it."""
    tiny = dataclasses.replace(THEOREM_B4, conclusions={**THEOREM_B4.conclusions, "risk_bound": sp.Rational(1, 10**300)})
    verdict = _check(tiny, v=0.5)
    assert verdict.status is Status.ASSUMPTIONS_UNMET
    assert verdict.failures == verdict.trials > 0
    assert verdict.details["trials above the bound (seeds)"] == list(range(verdict.trials))
    assert all(x > -300 for x in verdict.details["log10 risk per trial"])


def test_a_falsified_bound_inside_the_assumptions_is_a_counterexample_to_the_proof():
    """Theorem 4.3's stated probability is negative (vacuous); a bound below the exact risk on the event E is
    still reported: violated, through the proof step."""
    falsified = dataclasses.replace(THEOREM_4_3, conclusions={**THEOREM_4_3.conclusions, "risk_bound": sp.exp(-10**10)})
    verdict = _check(falsified, claim_id="theorem-4.3", v=None, epsilon=None)
    assert conclusion(THEOREM_4_3, "success_probability", K=2, Q=40, c=1.0) < 0
    assert verdict.failures == verdict.trials
    assert verdict.proof_step.event_held == verdict.proof_step.counterexamples == verdict.trials
    assert verdict.status is Status.VIOLATED and "counterexample to the proof" in verdict.summary
    # the same check with the true bound: no counterexample, still vacuous
    honest = _check(THEOREM_4_3, claim_id="theorem-4.3", v=None, epsilon=None)
    assert honest.status is Status.VACUOUS and honest.proof_step.counterexamples == 0 and honest.failures == 0


def test_risk_above_the_bound_is_strict_and_log_underflow_is_undecided_only_below_float_range():
    assert exceeds(-5.0, -5.0) is False  # R = bound is not above it
    assert exceeds(math.nextafter(-5.0, 0.0), -5.0) is True
    assert exceeds(-math.inf, -1e300) is False
    assert exceeds(-math.inf, -math.inf) is None


def test_the_bound_is_compared_in_log_space_where_the_float_underflows():
    values = dict(K=4, Q=100, d=8, Z=2, l_b=0.25, v=1e-5, epsilon=float(remark_epsilon(1e-5, 2)))
    assert conclusion(THEOREM_B4, "risk_bound", **values) == 0.0
    expected = THEOREM_B4.evaluate(**values)["risk_bound"].approx
    assert log_conclusion(THEOREM_B4, "risk_bound", **values) == pytest.approx(float(mpmath.log(expected)), rel=1e-14)
    assert -1e7 < log_conclusion(THEOREM_B4, "risk_bound", **values) < -1e4


# --- Monte Carlo cross-check -------------------------------------------------------------------------------
def test_monte_carlo_agrees_where_it_resolves_the_risk(quick_verdicts):
    outside = quick_verdicts["theorem-b.4"].details["outside assumptions"]
    assert outside["Monte Carlo resolvable trials"] > 0
    assert quick_verdicts["theorem-b.4"].details["Monte Carlo disagreements (seeds)"] == []
    assert not any("Monte Carlo" in d for d in quick_verdicts["theorem-b.4"].details.get("discrepancies", []))


def test_monte_carlo_flags_an_exact_risk_it_contradicts():
    dist = DiverseValueDistribution(2, 6, 0.6, 0.25, tokens=token_layout("chain", 2))
    models = generalization.train_and_measure(dist, 20, [0, 1], 0.01, 1.0, 4000.0, 4000)
    assert all(0.005 < math.exp(x) < 0.3 for x in models.log_risk)  # resolvable
    assert monte_carlo_check(models) == ([], 2)
    fiftieth = type(models.exact)(models.exact.log_risk - math.log(50), models.exact.log_cluster_risk,
                                  models.exact.standardised_margin, models.exact.log_underflow)
    assert monte_carlo_check(dataclasses.replace(models, exact=fiftieth))[0] == [0, 1]
    # with no error seen and n R < 1 nothing is resolvable, and nothing is asserted
    tiny = type(models.exact)(models.exact.log_risk - 1000, models.exact.log_cluster_risk,
                              models.exact.standardised_margin, models.exact.log_underflow)
    assert monte_carlo_check(dataclasses.replace(models, exact=tiny, errors=[0, 0])) == ([], 0)


# --- Lemma B.1's event ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("v", [1e-3, 0.02, 0.3])
@pytest.mark.parametrize("printed", [False, True])
def test_the_gram_deviation_bound_bounds_every_block(v, printed):
    dist = DiverseValueDistribution(3, 6, v, 0.25, delta=0.1, tokens=token_layout("chain", 3))
    sample = dist.sample([0, 1], 12)
    bound = gram_deviation_bound(sample, printed)
    for values in gram_statistics(sample, printed).values():
        assert (values <= bound).all()
    if v == 1e-3:  # the printed centres are off by the c_i1 . c_i2 terms (up to delta): the bound must see them
        assert (gram_deviation_bound(sample, True) > gram_deviation_bound(sample, False) + 0.01).all()


@pytest.mark.parametrize("v, holds", [(1e-3, True), (0.3, False)])
def test_lemma_event_is_concentration_events(v, holds):
    dist = DiverseValueDistribution(2, 5, v, 0.25, tokens=token_layout("chain", 2))
    sample = dist.sample([0, 1, 2], 15)
    assert lemma_event(sample, 1.0, 0.03125) == concentration_events(sample, 1.0, 0.03125)["all"].tolist() == [holds] * 3


def test_lemma_event_decides_exactly_where_the_bound_is_not_inside_the_half_width():
    dist = DiverseValueDistribution(2, 5, 0.02, 0.25, tokens=token_layout("chain", 2))
    sample = dist.sample([0], 15)
    largest = max(float(x[0]) for x in gram_statistics(sample).values())
    bound = float(gram_deviation_bound(sample)[0])
    assert largest < bound
    between = (largest + bound) / 2  # the bound certifies nothing here; the exact maxima decide
    assert lemma_event(sample, 1.0, between) == [True] and lemma_event(sample, 1.0, largest * 0.999) == [False]


# --- the defaults' noise level ---------------------------------------------------------------------------------
@pytest.mark.parametrize("claim_id", ["theorem-b.4", "theorem-c.6"])
def test_appendix_defaults_take_the_largest_v_with_probability_095_and_enough_trials(claim_id):
    statement, parameters = RISK_CLAIMS[claim_id], get_claim(claim_id).parameters()
    K, Q, d = parameters["K"], parameters["Q"], parameters["d"]
    assert parameters["v"] is None
    v, why = generalization.resolve_v(statement, K, Q, d, None, 0.25, "chain", 1.0, None, "pairs")
    at = lambda x: conclusion(statement, "success_probability", K=K, Q=Q, d=d, Z=2, c=1.0, v=x,
                              epsilon=float(remark_epsilon(x, 2)))
    boundary = float(statement.v_boundary(Q))
    # 0.95 up to the round-off of eps = 1/(16 v (Z+2)) in floats; small v forced: the boundary's is negative
    assert at(v) == pytest.approx(0.95, abs=1e-12) and at(v * 1.01) < 0.94 and at(boundary) < 0
    assert v < boundary / 20 and "forced below the assumption boundary" in why
    # the fewest trials whose 0 failures establish it
    assert parameters["trials"] == trials_to_establish(1 - 0.95) and clopper_pearson(0, parameters["trials"])[1] <= 1 - at(v)


def test_theorem_4_3_default_v_is_its_boundary():
    v, why = generalization.resolve_v(THEOREM_4_3, 10, 880, 12, None, 0.25, "chain", 1.0, None, "pairs")
    assert v == float(THEOREM_4_3.v_boundary(880)) or v == pytest.approx(float(THEOREM_4_3.v_boundary(880)), rel=1e-15)
    assert "does not depend on v" in why


# --- scaling-law ---------------------------------------------------------------------------------------------------
def test_scaling_law_measures_the_exact_risk_at_and_below_Q_min():
    verdict = get_claim("scaling-law").run(quick=True)
    Q_min = verdict.details["Q_min"][1]
    across = verdict.details["exact risk across Q (v = 1/(32 sqrt Q))"][1]
    assert sorted(across) == scaling.q_grid(Q_min) and min(across) == 40 and max(across) == Q_min
    risks = verdict.details["log10 risk at Q_min per trial"]
    assert risks == across[Q_min]["log10 risk per trial"] and all(x < math.log10(0.05) for x in risks)
    assert verdict.failures == 0 and verdict.status is Status.VACUOUS
    assert verdict.proof_step.trials == verdict.trials and verdict.proof_step.counterexamples == 0


def test_scaling_law_fails_when_the_model_at_Q_min_has_risk_above_delta(monkeypatch):
    """A forced model (the training replaced by an untrained one: margin 0, risk 1) on training sets where E
    holds: a counterexample to the proof, so violated although the stated probability is negative."""
    import torch

    import verify.training

    flow = verify.training.gradient_flow

    def untrained(*args, **kwargs):
        result = flow(*args, **kwargs)
        return dataclasses.replace(result, delta_rows=result.delta_rows * 0, test_margins=torch.zeros_like(result.test_margins))

    monkeypatch.setattr(verify.training, "gradient_flow", untrained)
    verdict = get_claim("scaling-law").run(quick=True)
    assert verdict.failures == verdict.trials == 1
    assert verdict.details["log10 risk at Q_min per trial"] == [0.0]
    assert verdict.proof_step.counterexamples == 1 and verdict.status is Status.VIOLATED
    # Monte Carlo counts a margin of exactly 0 as an error (Def. 3.1), as the exact risk does: they agree
    assert verdict.details["Monte Carlo errors per trial at Q_min"] == [verdict.parameters["test_size"]]
    assert not verdict.details.get("discrepancies")


def test_a_non_minimal_Q_min_is_a_discrepancy(monkeypatch):
    real = scaling.samples_per_value
    monkeypatch.setattr(scaling, "samples_per_value",
                        lambda K, delta: dataclasses.replace(real(K, delta), Q_min=real(K, delta).Q_min + 1))
    table, discrepancies = scaling.symbolic_table([1, 10], 0.05)
    assert table == {1: 765, 10: 881} and len(discrepancies) == 2
    monkeypatch.setattr(scaling, "samples_per_value", real)
    assert scaling.symbolic_table([1, 10], 0.05) == ({1: 764, 10: 880}, [])


# --- experiments and sweeps use the exact risk ------------------------------------------------------------------
def test_risk_against_Q_reports_the_exact_risk_with_monte_carlo_agreeing():
    from verify.experiments import risk_against_Q

    (row,) = risk_against_Q(1, Qs=(8,), v_rule="fixed", fixed_v=0.5, test_size=4000, seeds=(0, 1), beta=1.0)
    low, high = clopper_pearson(row.errors, row.n, 0.999)
    assert 1e-3 < row.risk < 0.3 and low <= row.risk <= high
    (inside,) = risk_against_Q(1, Qs=(40,), v_rule="theorem", test_size=100, seeds=(0,), beta=1.0)
    assert inside.risk == 0.0 and -1e6 < inside.log10_risk < -100  # a number, where the float underflows


def test_empirical_scaling_records_and_searches_by_the_exact_risk():
    from verify.sweep.experiments import EXPERIMENTS

    experiment = EXPERIMENTS["empirical-scaling"]
    result = experiment.run(seed=0, **experiment.parameters(test_size=500))
    low, high = clopper_pearson(result["errors"], result["n"], 0.999)
    assert low <= 10 ** result["log10_risk"] <= high
    passes = experiment.passes
    parameters = experiment.parameters()
    quiet = [{"log10_risk": -50.0, "errors": 40, "n": 100, "assumptions_unmet": []}]  # exact decides, not the count
    assert passes(quiet, parameters)
    loud = [{"log10_risk": -1.0, "errors": 0, "n": 100, "assumptions_unmet": []}]
    assert not passes(loud, parameters)
    mean_above = [{"log10_risk": -0.9, "errors": 0, "n": 100, "assumptions_unmet": []},
                  {"log10_risk": None, "errors": 0, "n": 100, "assumptions_unmet": []}]  # mean 0.063 > 0.05
    assert not passes(mean_above, parameters)
    stored_before = [{"errors": 0, "n": 1000, "assumptions_unmet": []}]  # no exact risk: Monte Carlo decides
    assert passes(stored_before, parameters) and not passes([{"errors": 60, "n": 1000, "assumptions_unmet": []}], parameters)
