"""Proof-step checks of the training claims (theorem-4.2, theorem-b.3, theorem-c.5), lemma-b.1 at the theorems'
epsilon, and the sec7-failure-mode redesign: each check is shown to be able to fail by a falsified statement."""
import math

import pytest
import sympy as sp
import torch

from theory.concentration import LEMMA_B1, LEMMA_C3
from theory.failure_mode import FAILURE_MODE
from theory.statements import remark_epsilon
from theory.symbols import beta as beta_sym
from theory.training_guarantee import LEMMA_B2, THEOREM_4_2, THEOREM_B3
from verify.claims import get_claim
from verify.claims import failure_mode as failure_mode_claim
from verify.claims.common import conclusion, initial_slopes
from verify.claims.training_guarantee import event_half_width, margin_velocity, probable_v
from verify.verdicts import ProofStepTally, Status

TRAINING = ("theorem-4.2", "theorem-b.3", "theorem-c.5")


# --- the proof step of the training claims ------------------------------------------------------------------
@pytest.mark.parametrize("claim_id", TRAINING)
def test_training_claims_report_a_consistent_tally_at_quick_settings(claim_id):
    verdict = get_claim(claim_id).run(quick=True)
    tally = verdict.proof_step
    assert isinstance(tally, ProofStepTally) and tally.trials == verdict.trials
    assert tally.counterexamples == 0 and verdict.failures == 0, verdict.summary
    # the quick defaults are chosen so that the proof's event holds in most trials
    assert 2 * tally.event_held > tally.trials, verdict.summary
    event = verdict.details["proof step: event"]
    assert event["trials where it held"] == tally.event_held and event["of"] == tally.trials
    for part in ("proof step: Lemma B.2 sandwich", "proof step: envelope to tau_1"):
        assert verdict.details[part]["of those with the event"] <= min(tally.event_held, verdict.details[part]["trials where it failed"])
    assert tally.line() in verdict.summary
    # the sandwich is checked, and it is not loose: the actual tau dr/dt lies within 20% of its bounds
    assert 1 <= verdict.tightness["on the event: min tau r' / Lemma B.2 lower bound"] < 1.2
    assert 0.8 < verdict.tightness["on the event: max tau r' / Lemma B.2 upper bound"] <= 1


def test_the_event_is_lemma_b1_at_the_remark_epsilon_and_lemma_c3_for_c5():
    Z = 2
    assert event_half_width(LEMMA_B1, None, 0.003, Z) == pytest.approx(1 / (8 * (Z + 2)), rel=1e-15)
    assert event_half_width(LEMMA_C3, None, 0.003, Z) == pytest.approx(5 / (32 * (Z + 2)), rel=1e-15)
    assert event_half_width(LEMMA_B1, 10.0, 0.003, Z) == pytest.approx(2 * 10.0 * 0.003, rel=1e-15)
    assert event_half_width(LEMMA_B1, None, 0.0, Z) == pytest.approx(1 / 32)  # the Remark's limit at v = 0
    verdict = get_claim("theorem-c.5").run(quick=True)
    assert verdict.details["proof step: event"]["statement"] == LEMMA_C3.name
    assert verdict.parameters["delta"] > 0  # the C.x version runs with tilted concepts


def test_margin_velocity_is_the_derivative_of_the_flow():
    from verify.data_model import DiverseValueDistribution, chain_tokens
    from verify.training import gradient_flow

    dist = DiverseValueDistribution(3, 5, 0.05, 0.25, tokens=chain_tokens(3))
    sample = dist.sample([0, 1], 6)
    beta, tau, t, h = 0.5, 1.0, 20.0, 1e-3
    flow = gradient_flow(sample, beta, tau, [0.0, t - h, t, t + h], rtol=1e-12, atol=1e-14)
    margins = flow.train_margins
    velocity = margin_velocity(sample, margins, beta, tau)
    central = (margins[:, 3] - margins[:, 1]) / (2 * h) * tau
    # central difference error ~ h^2 r''' / 6, far below the slopes (~ beta^2 / K)
    assert torch.allclose(velocity[:, 2], central, rtol=1e-5, atol=1e-9)
    assert torch.equal(velocity[:, 0], initial_slopes(sample, beta, tau))


def test_a_falsified_sandwich_is_a_counterexample_even_where_the_probability_is_negative(monkeypatch):
    upper = LEMMA_B2.conclusions["upper_rate"]
    monkeypatch.setitem(LEMMA_B2.conclusions, "upper_rate", upper / 3)
    verdict = get_claim("theorem-4.2").run(quick=True)
    assert verdict.details["success_probability"] <= 0
    assert verdict.status is Status.VIOLATED and "counterexample to the proof" in verdict.summary
    tally = verdict.proof_step
    assert tally.counterexamples == tally.event_held > 0
    assert verdict.details["proof step: Lemma B.2 sandwich"]["trials where it failed"] == tally.trials


def test_a_falsified_envelope_is_caught(monkeypatch):
    r_U = THEOREM_4_2.conclusions["r_U"]
    # r_U / 0.15 lies below the measured margins (r(tau_1) / r_U(tau_1) is about 0.19): a counterexample on E
    monkeypatch.setitem(THEOREM_4_2.conclusions, "r_U", sp.Rational(15, 100) * r_U)
    verdict = get_claim("theorem-4.2").run(quick=True)
    assert verdict.status is Status.VIOLATED and verdict.details["success_probability"] <= 0
    assert verdict.proof_step.counterexamples == verdict.proof_step.event_held > 0
    assert verdict.details["proof step: envelope to tau_1"]["trials where it failed"] == verdict.trials
    # r_U / 2 still lies above every margin (the envelope is 5x loose): only the derivation r_U(tau_1) = log 3 sees it
    monkeypatch.setitem(THEOREM_4_2.conclusions, "r_U", r_U / 2)
    verdict = get_claim("theorem-4.2").run(quick=True)
    assert verdict.proof_step.counterexamples == 0 and verdict.failures == 0
    assert verdict.status is Status.DISCREPANCY and "envelope at tau_1" in verdict.summary


def test_b3_default_noise_is_the_largest_at_which_the_statement_claims_95_percent():
    verdict = get_claim("theorem-b.3").run(quick=True)
    p = verdict.parameters
    Z = verdict.details["Z used"]
    v = p["v"]
    assert v < float(THEOREM_B3.v_boundary(p["Q"])) / 10  # forced far below 1/(4 sqrt Q)
    assert "forced below the assumption boundary" in verdict.details["v choice"]
    assert p["epsilon"] == pytest.approx(float(remark_epsilon(v, Z)), rel=1e-15)
    at = lambda noise: conclusion(THEOREM_B3, "success_probability", K=p["K"], Q=p["Q"], Z=Z, d=p["d"], c=p["c"],
                                  v=noise, epsilon=float(remark_epsilon(noise, Z)))
    assert at(v) >= 0.95 > at(v * 1.001)
    assert verdict.details["proof step: event"]["trials where it held"] == verdict.trials
    assert probable_v(THEOREM_4_2, 2, 80, 2, 4, 1.0)[0] == pytest.approx(float(THEOREM_4_2.v_boundary(80)), rel=1e-15)


# --- lemma-b.1 at the theorems' epsilon ----------------------------------------------------------------------
def test_lemma_b1_defaults_to_the_theorems_epsilon_and_reports_the_contrast():
    verdict = get_claim("lemma-b.1").run(quick=True)
    p, details = verdict.parameters, verdict.details
    Z = details["Z used"]
    assert p["epsilon"] == pytest.approx(float(remark_epsilon(p["v"], Z)), rel=1e-15)
    assert details["half width"] == pytest.approx(2 * p["epsilon"] * p["v"], rel=1e-15)
    assert details["half width"] == pytest.approx(1 / (8 * (Z + 2)), rel=1e-12)
    assert verdict.failures == 0 and details["success_probability"] >= 0.95
    assert verdict.status is Status.CONSISTENT  # 0/8 cannot establish a 5% failure rate
    # at v = 0.01 the theorems' epsilon gives the same half-width, below the deviations (about 8 v)
    contrast = details["contrast"]
    assert contrast["half width"] == pytest.approx(details["half width"], rel=1e-12)
    assert contrast["largest deviation"] > contrast["half width"] and contrast["stated probability"] < 0
    assert contrast["trials outside"] == verdict.trials


def test_lemma_b1_half_width_is_pinned_to_two_eps_v(monkeypatch):
    claim = get_claim("lemma-b.1")
    base = dict(quick=True, v=0.01, epsilon=20.0, v_contrast=0.0, l_b_outside=0.0)
    needed = claim.run(**base).details["smallest eps that covers every trial"]
    epsilon = 1.25 * needed  # 2 eps v covers every trial by 25%; eps v covers none of the worst
    real = claim.run(**{**base, "epsilon": epsilon})
    assert real.failures == 0 and real.details["half width"] == pytest.approx(2 * epsilon * 0.01, rel=1e-15)
    monkeypatch.setitem(LEMMA_B1.conclusions, "half_width", LEMMA_B1.conclusions["half_width"] / 2)  # eps v
    mutant = claim.run(**{**base, "epsilon": epsilon})
    assert mutant.details["half width"] == pytest.approx(epsilon * 0.01, rel=1e-15)
    assert mutant.failures >= 1


# --- sec7-failure-mode ---------------------------------------------------------------------------------------
def test_failure_mode_checks_the_cap_and_both_sides_of_the_threshold():
    verdict = get_claim("sec7-failure-mode").run(quick=True)
    assert verdict.status is Status.HOLDS and verdict.failures == 0, verdict.summary
    tally = verdict.proof_step
    assert tally.event_held == tally.trials == verdict.trials and tally.counterexamples == 0
    details = verdict.details
    assert details["samples above threshold"] > 0 and details["samples below"] > 0
    assert details["largest policy log-odds above threshold"] < 0
    # where the premise binds, r(t_s) exceeds log 2: a threshold 2^(1/beta) would be refuted there
    assert math.log(2) / math.log(3) < verdict.tightness["max r(t_s) / log 3 (how close the premise binds)"] <= 1
    assert 0 < verdict.tightness["below the threshold: fraction whose ranking flipped at t_s"] < 1


def test_failure_mode_catches_a_falsified_threshold(monkeypatch):
    monkeypatch.setitem(FAILURE_MODE.conclusions, "threshold", sp.Integer(2) ** (1 / beta_sym))
    verdict = get_claim("sec7-failure-mode").run(quick=True)
    assert verdict.status is Status.VIOLATED and "counterexample to the proof" in verdict.summary
    assert verdict.proof_step.counterexamples == verdict.trials


def test_failure_mode_cap_is_a_conclusion_that_can_fail(monkeypatch):
    log3 = sp.log(3)
    monkeypatch.setattr(failure_mode_claim, "margin_cap", lambda: log3 / 10)  # below r(tau_1) ~ log 3 / 5
    verdict = get_claim("sec7-failure-mode").run(quick=True)
    assert verdict.status is Status.VIOLATED and verdict.failures == verdict.trials
    assert verdict.details["trials with r(tau_1) > log 3"] == verdict.trials


def test_failure_mode_ordering_within_the_tolerance():
    tolerance = 1e-9
    log_rho = torch.tensor([[10.0, 10.0, 10.0, 1.0, 1.0, 1.0]])
    r = torch.tensor([[0.0, 0.0, 0.0, 2.0, 0.5, 1.0 + tolerance / 2]])  # beta = 1: r/beta vs log rho
    policy = torch.tensor([[-tolerance / 2, -2 * tolerance, -1.0, 1.0, -0.5, -1.0]])
    above, wrong_above, mismatched = failure_mode_claim._ordering(policy, log_rho, r, 1.0, 5.0, tolerance)
    assert above.tolist() == [[True, True, True, False, False, False]]
    assert wrong_above.tolist() == [True]  # log-odds within the tolerance of 0 above the threshold count as a flip
    assert mismatched.tolist() == [False]  # r = log rho within the tolerance is not judged
    policy[0, 4] = 0.5  # flipped although r/beta < log rho
    assert failure_mode_claim._ordering(policy, log_rho, r, 1.0, 5.0, tolerance)[2].tolist() == [True]
    policy[0, 4], policy[0, 3] = -0.5, -1.0  # not flipped although r/beta > log rho
    assert failure_mode_claim._ordering(policy, log_rho, r, 1.0, 5.0, tolerance)[2].tolist() == [True]
