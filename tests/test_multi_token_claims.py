"""The §4.3 and §7 claims: their verdicts follow from the residuals they report, symbolic and numeric agree."""
from verify.claims import get_claim
from verify.verdicts import Status


def test_eq_4_is_an_exact_identity():
    verdict = get_claim("eq-4").run(quick=True)
    assert verdict.status is Status.HOLDS and verdict.details["residuals"] == ["0", "0"]


def test_eq_5_verdict_follows_from_its_residuals():
    verdict = get_claim("eq-5").run(quick=True)
    d = verdict.details
    sum_ok = d["residual (p as a sum)"] <= d["tolerance (float64 budget)"]
    printed_ok = d["residual (p as printed, a difference)"] <= d["tolerance (float64 budget)"]
    expected = Status.HOLDS if printed_ok else Status.DISCREPANCY if sum_ok else Status.VIOLATED
    assert verdict.status is expected
    # the symbolic derivation and the autograd check reach the same reading
    assert ("a sum" in d["symbolic verdict"]) == ("with p as a sum" in d["numeric verdict"])
    assert d["eq-4 residual"] <= d["tolerance (float64 budget)"]


def test_individual_rewards_and_likelihood_displacement():
    verdict = get_claim("sec7-individual-rewards").run(quick=True)
    d = verdict.details
    assert verdict.status is Status.HOLDS
    assert d["log-ratio vs printed"] > d["tolerance"]  # the printed form misses the softmax term there
    shared = d["likelihood displacement (shared)"]
    assert shared["delta_log_pi_a"] < 0 and shared["delta_log_pi_b"] < 0 and shared["margin_ab"] > 0
