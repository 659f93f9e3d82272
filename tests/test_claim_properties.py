"""Property-based tests of every inequality claim.

For each claim one strategy draws parameter sets inside its assumptions (no trial may fail and no proof
step may meet a counterexample, whether the verdict is holds, consistent or vacuous) and one draws sets just outside (the check must say `assumptions-unmet`, and still measure:
what it measured is recorded with `note`, it is not asserted to fail). `target` steers toward the
smallest slack; every failure prints a reproducer (claim id, parameters, seed). Sizes stay small: the
paper's own point (K = 10, Q = 880) is simulated once as an @example of theorem-4.3 and otherwise
checked symbolically in test_claims.py.
"""
import math
import sys

from hypothesis import example, given, note, settings, strategies as st, target

from theory.numbers import exact_rational, float_at_most
from theory.training_guarantee import THEOREM_4_2
from verify.claims import get_claim
from verify.verdicts import Status

# A third of the active profile's budget per property: 20 properties in the `ci` profile stay fast, and
# `thorough` scales them up.
EXAMPLES = max(2, settings.default.max_examples // 5)
SEEDS = st.integers(0, 2**16)
SMALL = dict(beta=0.01, tau=1.0, trials=2)


def v_inside(fraction: float, Q: int) -> float:
    """fraction x Theorem 4.2's v boundary 1/(32 sqrt Q) (inside every training statement's) as the largest float
    at or below the exact value: computed in floats it can land above the exact boundary (by 1e-19 at Q = 40)
    and so outside the assumptions it was drawn inside. A subnormal result becomes 0: the claims' declared domain
    (verify.parameters) has no subnormal v, whose Remark epsilon 1/(16 v (Z+2)) would overflow float64."""
    v = float_at_most(exact_rational("fraction", fraction) * THEOREM_4_2.v_boundary(Q))
    return v if v >= sys.float_info.min else 0.0


def run(claim_id, seed, **parameters):
    note(f"reproduce: get_claim({claim_id!r}).check(seed={seed}, **{parameters!r})")
    verdict = get_claim(claim_id).check(seed=seed, **parameters)
    note(f"verdict: {verdict.status.value}: {verdict.summary}")
    note(f"tightness: {verdict.tightness}")
    return verdict


def no_counterexample(verdict):
    """Inside the assumptions: no trial failed and no proof step met its event without its conclusion. The
    status must then be one of the honest ones for that evidence, and agree with it."""
    assert verdict.failures == 0, verdict.summary
    assert verdict.proof_step is None or verdict.proof_step.counterexamples == 0, verdict.summary
    assert verdict.measured is not None and verdict.trials >= 1
    if verdict.status is Status.HOLDS:  # established: per instance, or a CP upper bound within the allowed rate
        assert verdict.exact or verdict.failure_rate_upper <= verdict.details["allowed_failure_probability"]
    elif verdict.status is Status.CONSISTENT:  # not established: says what would establish it
        needed = verdict.details["trials_to_establish"]
        assert (needed is None or needed > verdict.trials) and "not established" in verdict.summary
    else:
        assert verdict.status is Status.VACUOUS and "still measured" in verdict.summary, verdict.summary
    assert verdict.established == (verdict.status is Status.HOLDS)


def inside(claim_id, seed, steer: str | None = None, **parameters):
    verdict = run(claim_id, seed, **parameters)
    no_counterexample(verdict)
    if steer is not None and math.isfinite(verdict.tightness.get(steer, math.nan)):
        target(float(verdict.tightness[steer]), label=steer)
    return verdict


def outside(claim_id, seed, **parameters):
    verdict = run(claim_id, seed, **parameters)
    assert verdict.status is Status.ASSUMPTIONS_UNMET, verdict.summary
    assert "Measured" in verdict.summary and verdict.measured is not None
    return verdict


# --- theorem-4.2 / theorem-b.3 / theorem-c.5 ---------------------------------------------------------------
@st.composite
def envelope_inside(draw, appendix=False):
    K = draw(st.integers(1, 3))
    Q = draw(st.integers(2, 24))
    d = draw(st.integers(K + 1, min(5 * Q, K + 4)))
    tokens = draw(st.sampled_from(["disjoint", "chain"]))
    Z = 1 if tokens == "disjoint" or K == 1 else 2
    l_b = draw(st.floats(0.25, 0.5 if Z == 1 else 0.35))
    fraction = draw(st.floats(0.0, 1.0))
    # main text: v <= 1/(32 sqrt Q); appendix: small v so that eps = 1/(16 v (Z+2)) is meaningful
    v = v_inside(fraction, Q) if not appendix else 1e-4 + fraction * 1e-3
    return dict(K=K, Q=Q, d=d, v=v, l_b=l_b, tokens=tokens, c=1.0, v_outside=0.0, grid=4, Z_reading="pairs", **SMALL)


@st.composite
def envelope_outside(draw, appendix=False):
    params = draw(envelope_inside(appendix))
    broken = draw(st.sampled_from(["v", "l_b", "d"]))
    Q = params["Q"]
    if broken == "v":  # fixed noise instead of v shrinking like 1/sqrt(Q)
        params["v"] = draw(st.floats(1.5, 20)) / ((4 if appendix else 32) * math.sqrt(Q))
    elif broken == "l_b":
        params["l_b"] = draw(st.floats(0.52, 0.9))
    else:
        params.update(Q=1, d=max(6, params["K"] + 1))
        if not appendix:
            params["v"] = min(params["v"], 1 / 32)
    return params


@settings(max_examples=EXAMPLES)
@given(envelope_inside(), SEEDS)
def test_theorem_4_2_inside(params, seed):
    inside("theorem-4.2", seed, "max r(tau_1) / r_U(tau_1)", **params)


@settings(max_examples=EXAMPLES)
@given(envelope_outside(), SEEDS)
def test_theorem_4_2_just_outside(params, seed):
    outside("theorem-4.2", seed, **params)


@settings(max_examples=EXAMPLES)
@given(envelope_inside(appendix=True), SEEDS)
def test_theorem_b3_inside(params, seed):
    inside("theorem-b.3", seed, "max r(tau_1) / r_U(tau_1)", epsilon=None, **params)


@settings(max_examples=EXAMPLES)
@given(envelope_outside(appendix=True), SEEDS)
def test_theorem_b3_just_outside(params, seed):
    outside("theorem-b.3", seed, epsilon=None, **params)


@settings(max_examples=EXAMPLES)
@given(envelope_inside(appendix=True), SEEDS, st.floats(0.0, 1.0))
def test_theorem_c5_inside(params, seed, fraction):
    delta = fraction * params["v"] / (16 * 4 * 8)  # <= eps v / 8 with eps = 1/(16 v (Z+2)), Z <= 2
    inside("theorem-c.5", seed, "max r(tau_1) / r_U(tau_1)", epsilon=None, delta=delta, **params)


@settings(max_examples=EXAMPLES)
@given(envelope_inside(appendix=True), SEEDS, st.floats(1.5, 50))
def test_theorem_c5_just_outside(params, seed, factor):
    delta = min(0.45, factor / (8 * 16 * 3))  # > eps v / 8 = 1/(128 (Z+2)) for Z >= 1
    outside("theorem-c.5", seed, epsilon=None, delta=delta, **params)


# --- theorem-4.3 / theorem-b.4 / theorem-c.6 ------------------------------------------------------------
@st.composite
def risk_inside(draw, appendix=False):
    params = draw(envelope_inside(appendix))
    params.pop("grid")
    if not appendix:
        params["Q"] = draw(st.integers(40, 120))  # Theorem 4.3 needs Q >= 40
        params["v"] = v_inside(draw(st.floats(0, 1)), params["Q"])
    return dict(params, test_size=400)


@settings(max_examples=EXAMPLES)
@example(dict(K=10, Q=880, d=11, v=None, l_b=0.25, tokens="chain", c=1.0, v_outside=0.0, Z_reading="pairs",
              test_size=500, beta=0.01, tau=1.0, trials=1), 0)  # the paper's point, l_b = 1/4
@example(dict(K=10, Q=880, d=11, v=None, l_b=0.5, tokens="disjoint", c=1.0, v_outside=0.0, Z_reading="pairs",
              test_size=500, beta=0.01, tau=1.0, trials=1), 0)  # l_b = 1/2 allows only Z = 1
@given(risk_inside(), SEEDS)
def test_theorem_4_3_inside(params, seed):
    verdict = inside("theorem-4.3", seed, "risk 95% CP upper / bound", **params)
    if params["Q"] == 880:
        assert verdict.bound < 0.05  # the paper's "more than 875 samples per value" at K = 10


@settings(max_examples=EXAMPLES)
@given(risk_inside(), SEEDS, st.sampled_from(["Q", "v"]))
def test_theorem_4_3_just_outside(params, seed, broken):
    if broken == "Q":
        params.update(Q=20, v=min(params["v"], v_inside(1.0, 20)))  # Q >= 40 fails
    else:
        params["v"] = 0.1  # fixed noise
    outside("theorem-4.3", seed, **params)


@settings(max_examples=EXAMPLES)
@given(risk_inside(appendix=True), SEEDS)
def test_theorem_b4_inside(params, seed):
    inside("theorem-b.4", seed, epsilon=None, **params)


@settings(max_examples=EXAMPLES)
@given(risk_inside(appendix=True), SEEDS, st.floats(1.5, 4))
def test_theorem_b4_just_outside(params, seed, factor):
    params["v"] = factor / (4 * math.sqrt(params["Q"]))
    outside("theorem-b.4", seed, epsilon=None, **params)


@settings(max_examples=EXAMPLES)
@given(risk_inside(appendix=True), SEEDS, st.floats(0, 1))
def test_theorem_c6_inside(params, seed, fraction):
    inside("theorem-c.6", seed, epsilon=None, delta=fraction * params["v"] / (16 * 4 * 8), **params)


@settings(max_examples=EXAMPLES)
@given(risk_inside(appendix=True), SEEDS, st.floats(1.5, 50))
def test_theorem_c6_just_outside(params, seed, factor):
    outside("theorem-c.6", seed, epsilon=None, delta=min(0.45, factor / (8 * 16 * 3)), **params)


# --- lemma-b.1 / lemma-c.2 -------------------------------------------------------------------------------
# eps >= 16 makes every draw's stated probability >= 0.997: (8Z+4) K Q^2 e^{-eps^2/16} <= 24000 e^{-16} and
# the Bernstein term is below e^{-200} (eps/v >= 320, eps/(d v) >= 1). A failing trial is then a finding.
CONFIDENT_EPSILON, VACUOUS_EPSILON = (16.0, 40.0), (1.0, 16.0)


@st.composite
def gram_inside(draw, epsilon=CONFIDENT_EPSILON):
    K = draw(st.integers(1, 3))
    return dict(K=K, Q=draw(st.integers(2, 20)), d=draw(st.integers(K + 1, K + 8)), v=draw(st.floats(1e-3, 0.05)),
                l_b=draw(st.floats(0.01, 0.5)), epsilon=draw(st.floats(*epsilon)),
                tokens=draw(st.sampled_from(["disjoint", "chain"])), trials=4, c=1.0, l_b_outside=0.0, v_contrast=0.0)


@settings(max_examples=EXAMPLES)
@given(gram_inside(), SEEDS)
def test_lemma_b1_inside(params, seed):
    verdict = inside("lemma-b.1", seed, **params)
    assert verdict.details["success_probability"] >= 0.997  # the strategy's premise


@settings(max_examples=EXAMPLES)
@given(gram_inside(VACUOUS_EPSILON), SEEDS)
def test_lemma_b1_at_small_epsilon_counts_what_it_measures(params, seed):
    """Below eps = 16 the stated probability may be small or negative, so failing trials are allowed: the
    count must still follow the measurement, and only a negative probability may read vacuous."""
    verdict = run("lemma-b.1", seed, **params)
    assert 0 <= verdict.failures <= verdict.trials
    assert (verdict.failures > 0) == (verdict.measured > verdict.bound), verdict.summary
    assert verdict.proof_step is None or verdict.proof_step.counterexamples == 0, verdict.summary
    if verdict.details["success_probability"] <= 0:
        assert verdict.status is Status.VACUOUS, verdict.summary
    else:
        assert verdict.status in (Status.HOLDS, Status.CONSISTENT), verdict.summary
        assert verdict.established == (verdict.failure_rate_upper <= verdict.details["allowed_failure_probability"])


@settings(max_examples=EXAMPLES)
@given(gram_inside(), SEEDS, st.floats(0.51, 2.0))
def test_lemma_b1_just_outside(params, seed, l_b):
    outside("lemma-b.1", seed, **{**params, "l_b": l_b})


@settings(max_examples=EXAMPLES)
@example(dict(K=2, d=3, delta=0.499, trials=2, delta_outside=0.0), 0)
@given(st.fixed_dictionaries(dict(K=st.integers(2, 5), d=st.integers(6, 10), delta=st.floats(0.0, 0.499),
                                  trials=st.just(4), delta_outside=st.just(0.0))), SEEDS)
def test_lemma_c2_inside(params, seed):
    inside("lemma-c.2", seed, "worst case 2 cos sin / delta", **params)


@settings(max_examples=EXAMPLES)
@given(st.floats(0.5, 1.0), SEEDS)
def test_lemma_c2_just_outside(delta, seed):
    verdict = outside("lemma-c.2", seed, K=3, d=6, delta=delta, trials=2, delta_outside=0.0)
    note(f"worst case at delta = {delta}: {verdict.details['worst case']}")


# --- scaling-law / sec7-failure-mode -----------------------------------------------------------------------
SCALING = dict(K_table="1", d=4, beta=0.01, tau=1.0, tokens="chain", trials=1, test_size=300, c=1.0, v_outside=0.0)


@settings(max_examples=max(1, EXAMPLES // 2))
@given(st.sampled_from(["1", "2"]), st.floats(0.02, 0.5), st.floats(0.25, 0.35), SEEDS)
def test_scaling_law_inside(K_values, delta, l_b, seed):
    inside("scaling-law", seed, "risk 95% CP upper / delta", **{**SCALING, "K_values": K_values, "delta": delta, "l_b": l_b})


@settings(max_examples=max(1, EXAMPLES // 2))
@given(st.floats(0.52, 0.9), SEEDS)
def test_scaling_law_just_outside(l_b, seed):
    outside("scaling-law", seed, **{**SCALING, "K_values": "1", "delta": 0.3, "l_b": l_b})


@st.composite
def failure_inside(draw):
    K = draw(st.integers(2, 4))
    Q = draw(st.integers(2, 20))
    return dict(K=K, Q=Q, d=draw(st.integers(K + 1, K + 4)), v=v_inside(draw(st.floats(0, 1)), Q),
                l_b=draw(st.floats(0.25, 0.5)), beta=draw(st.floats(0.005, 0.5)), tau=1.0, trials=2,
                odds_low=draw(st.floats(0.01, 0.9)), odds_high=draw(st.floats(1.2, 3.0)))


@settings(max_examples=EXAMPLES)
@given(failure_inside(), SEEDS)
def test_failure_mode_inside(params, seed):
    inside("sec7-failure-mode", seed, "max r(tau_1) / log 3", **params)


@settings(max_examples=EXAMPLES)
@given(failure_inside(), SEEDS, st.sampled_from(["odds", "v"]))
def test_failure_mode_just_outside(params, seed, broken):
    if broken == "odds":
        params.update(odds_low=0.05, odds_high=0.5)  # no reference odds above 3^(1/beta)
    else:
        params["v"] = 0.2
    outside("sec7-failure-mode", seed, **params)
