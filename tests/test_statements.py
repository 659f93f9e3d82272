"""Statement objects (Theorems 4.2, 4.3, B.3, B.4, C.5, C.6, Lemmas B.1, B.2, C.2, C.3, §7) and item-2 derivations."""
import math
import sys
from fractions import Fraction

import mpmath
import pytest
import sympy as sp
from hypothesis import example, given, strategies as st

from theory import symbols
from theory.concentration import LEMMA_C2, derive_lemma_c2, expected_gram_entries
from theory.derivations import ALL_STATEMENTS, risk_bound_vacuous_until
from theory.statements import DerivationResult
from theory.failure_mode import FAILURE_MODE, derive_failure_threshold
from theory.generalization import THEOREM_4_3, THEOREM_B4, refined_exponent_after_remark
from theory.training_guarantee import (MAIN_TEXT_PROBABILITY, THEOREM_4_2, THEOREM_B3, THEOREM_C5,
                                       appendix_vacuous_until, envelope_at_tau_1, envelope_slopes_from_lemma_b2,
                                       main_text_probability_from_b3, main_text_vacuous_until)

LOG3 = sp.log(3)
positive_rationals = st.fractions(min_value=Fraction(1, 1000), max_value=Fraction(1000), max_denominator=1000)


@st.composite
def theorem_4_2_point(draw):
    """A point inside Theorem 4.2's assumptions: 1/4 <= l_b <= 1/2, Z <= 1/(4 l_b^2), d <= 5Q, v <= 1/(32 sqrt Q)."""
    Q = draw(st.integers(1, 10**6))
    l_b = draw(st.fractions(Fraction(1, 4), Fraction(1, 2), max_denominator=64))
    Z = draw(st.integers(1, math.floor(Fraction(1, 4) / l_b**2)))
    d = draw(st.integers(1, 5 * Q))
    v = Fraction(1, 32 * (math.isqrt(Q) + 1)) * draw(st.fractions(0, 1, max_denominator=100))
    return dict(K=draw(st.integers(1, 1000)), Q=Q, d=d, v=v, l_b=l_b, Z=Z, c=1)


def test_every_statement_exports_latex_and_has_assumptions_and_conclusions():
    names = set()
    for s in ALL_STATEMENTS:
        tex = s.latex()
        assert s.name in tex and tex.count(r"\begin{align*}") == 2 and s.assumptions and s.conclusions
        names.add(s.name)
    assert {"Theorem 4.2", "Theorem 4.3", "Lemma B.1", "Lemma B.2", "Theorem B.3", "Theorem B.4", "Lemma C.2",
            "Lemma C.3", "Theorem C.5", "Theorem C.6", "§7 failure mode"} <= names


@given(K=st.integers(1, 10**4), beta=positive_rationals, tau=positive_rationals,
       frac=st.fractions(0, 1, max_denominator=1000))
def test_envelope_ordered_and_inside_0_log3_up_to_tau_1(K, beta, tau, frac):
    for s in (THEOREM_4_2, THEOREM_C5):
        tau_1 = s.evaluate(K=K, beta=beta, tau=tau)["tau_1"].exact
        at = s.evaluate(K=K, beta=beta, tau=tau, t=tau_1 * sp.Rational(frac.numerator, frac.denominator))
        r_L, r_U = at["r_L"].exact, at["r_U"].exact
        assert 0 <= r_L <= r_U <= LOG3  # exact comparisons


def test_envelope_endpoints_derived():
    main, appendix_c = envelope_at_tau_1(THEOREM_4_2), envelope_at_tau_1(THEOREM_C5)
    assert main.holds and main.expressions["r_U(tau_1)"] == LOG3 and main.expressions["r_L(tau_1)"] == LOG3 / 40
    assert appendix_c.expressions["r_L(tau_1)"] == LOG3 / 80


def test_lemma_b2_sandwich_gives_slopes_inside_printed_envelope():
    res = envelope_slopes_from_lemma_b2()
    assert res.holds and res.numbers["lower slope / printed"] == sp.Rational(5, 2)
    assert res.numbers["upper slope at Q=1 / printed"] < sp.Rational(1, 4)  # r_U's constant 5 is loose (SPEC §5.6)


@given(theorem_4_2_point())
@example(dict(K=10, Q=900, d=4500, v=Fraction(1, 960), l_b=Fraction(1, 4), Z=4, c=1))
def test_assumption_check_passes_inside(point):
    assert THEOREM_4_2.check_assumptions(**point) == []
    expected = [] if point["Q"] >= 40 else ["Q >= 40"]
    assert [f.name for f in THEOREM_4_3.check_assumptions(**point)] == expected


@given(theorem_4_2_point(), st.integers(1, 100))
def test_assumption_check_reports_exact_excess_just_outside(point, extra):
    point = dict(point, d=5 * point["Q"] + extra)
    failures = THEOREM_4_2.check_assumptions(**point)
    assert [f.name for f in failures] == ["d <= 5Q"] and failures[0].excess == extra


def test_assumption_check_irrational_excess_and_strict_equality():
    (f,) = [f for f in THEOREM_4_2.check_assumptions(K=1, Q=2, d=1, v=1, l_b="1/4", Z=1, c=1)]
    assert f.name == "v <= 1/(32 sqrt(Q))" and sp.simplify(f.excess - (1 - sp.sqrt(2) / 64)) == 0
    (g,) = FAILURE_MODE.check_assumptions(beta=1, rho=3, r=0)  # rho = 3^{1/beta}: strict '>' fails by 0
    assert g.excess == 0 and g.name.startswith("rho >")


def test_appendix_v_condition_is_the_printed_one():
    point = dict(K=1, Q=100, d=10, v=Fraction(1, 40), l_b=Fraction(1, 2), Z=1, epsilon=Fraction(1, 100), c=1)
    assert THEOREM_B3.check_assumptions(**point) == []  # v = 1/(4 sqrt Q) satisfies B.3 ...
    assert [f.name for f in THEOREM_4_2.check_assumptions(**point)] == ["v <= 1/(32 sqrt(Q))"]  # ... not 4.2


@pytest.mark.parametrize("bad, name", [(dict(K=0), "K"), (dict(K=Fraction(3, 2)), "K"), (dict(Q=-1), "Q"),
                                       (dict(foo=1), "foo"), (dict(v="x"), "v"), (dict(K=True), "K")])
def test_bad_values_raise_naming_the_parameter(bad, name):
    with pytest.raises(ValueError, match=name):
        THEOREM_4_2.evaluate(**bad)


def test_check_assumptions_needs_every_parameter():
    with pytest.raises(ValueError, match="l_b"):
        THEOREM_4_2.check_assumptions(K=1, Q=1, d=1, v=0, Z=1)


def test_evaluate_is_exact_and_numeric():
    out = THEOREM_4_3.evaluate(K=10, Q=880, c=1)
    assert out["risk_bound"].exact == 2 * 10 * 880**2 * sp.exp(sp.Rational(-880, 45))
    assert out["risk_bound"].approx < 0.05 < THEOREM_4_3.evaluate(K=10, Q=879)["risk_bound"].approx
    assert out["success_probability"].approx < 0  # vacuous at Q = 880
    partial = THEOREM_4_2.evaluate(K=2)
    assert partial["tau_1"].approx is None and set(partial["tau_1"].missing) == {"beta", "tau"}


def test_refined_bound_implies_q_over_45_with_exact_exponent():
    res = refined_exponent_after_remark(32)
    assert res.holds and res.numbers["minimum exponent/Q"] == sp.Rational(512, 10029)
    assert 19.58 < float(res.numbers["Q / minimum exponent"]) < 19.6  # SPEC §2.3: 'about Q/19.6'
    assert res.numbers["max of 1 + l_b^2 + d v^2 + 2 eps v"] <= sp.Rational(5, 2)
    appendix = refined_exponent_after_remark(4)  # with B.4's own v <= 1/(4 sqrt Q)
    assert not appendix.holds and appendix.numbers["minimum exponent/Q"] == sp.Rational(1, 1608)


@given(Q=st.integers(40, 10**5), K=st.integers(1, 100))
def test_refined_bound_at_worst_corner_below_simplified(Q, K):
    point = dict(K=K, Q=Q, d=5 * Q, l_b=sp.Rational(1, 4), Z=4, v=1 / (32 * sp.sqrt(Q)),
                 epsilon=2 * sp.sqrt(Q) / 6)
    refined = THEOREM_B4.evaluate(**point)["risk_bound"].exact
    assert sp.simplify(refined - 2 * K * Q**2 * sp.exp(-sp.Rational(512, 10029) * Q)) == 0
    assert bool(refined <= THEOREM_4_3.evaluate(K=K, Q=Q)["risk_bound"].exact)


def test_main_text_probability_follows_from_b3():
    res = main_text_probability_from_b3()
    assert res.holds and res.numbers["Q where 36 = 4 Q^{1/4}"] == 6561
    assert res.numbers["main-text g'(Q) = 0 at"] > 6561 and 75 < res.numbers[
        "largest Q with B.3 failure > main-text failure (c = 1)"] < 76


def _main_probability(K, c, Q):
    return mpmath.mpf(sp.N(MAIN_TEXT_PROBABILITY.subs({symbols.K: K, symbols.c: c, symbols.Q: Q}), 40))


@given(K=st.integers(1, 1000), c=st.sampled_from([sp.Rational(1, 100), sp.Rational(1, 4), 1, 10]))
@example(K=1, c=1)
def test_main_text_vacuity_threshold_brackets_sign_change(K, c):
    res = main_text_vacuous_until(K, c)
    q = res.numbers["largest vacuous integer Q"]
    assert res.holds and _main_probability(K, c, q) <= 0 < _main_probability(K, c, q + 1)
    if c >= res.numbers["c*"]:
        assert res.numbers["Q_vac"] == res.numbers["Q_B"]  # c drops out above c*


def test_vacuity_numbers_for_c_1():
    assert main_text_vacuous_until(1, 1).numbers["largest vacuous integer Q"] == 143468
    appendix = appendix_vacuous_until(1, 1)
    assert appendix.numbers["largest vacuous integer Q"] == 2802
    f = appendix.expressions["failure"]
    assert sp.N(f.subs(symbols.Q, 2802)) >= 1 > sp.N(f.subs(symbols.Q, 2803))
    assert 608 < risk_bound_vacuous_until(1).numbers["Q"] < 609


@given(st.fractions(0, Fraction(1, 2), max_denominator=10**4).filter(lambda x: x < Fraction(1, 2)))
def test_lemma_c2_sine_bound(delta):
    sine = LEMMA_C2.evaluate(delta=delta)["sine_of_worst_angle"].exact
    assert bool(2 * sine <= sp.Rational(delta.numerator, delta.denominator))
    assert LEMMA_C2.check_assumptions(delta=delta) == []


def test_small_derivations():
    assert expected_gram_entries().holds and derive_lemma_c2().holds
    fm = derive_failure_threshold()
    assert fm.holds and fm.expressions["threshold"] == sp.Integer(3) ** (1 / symbols.beta)


# --- boundaries and noise read from the statements --------------------------------------------------------
@given(Q=st.integers(1, 10**6))
def test_v_boundary_is_the_v_assumption(Q):
    from theory.numbers import float_at_most

    for statement, denominator in ((THEOREM_4_2, 32), (THEOREM_B3, 4), (THEOREM_C5, 4), (THEOREM_4_3, 32)):
        bound = statement.v_boundary(Q)
        assert bound == 1 / (denominator * sp.sqrt(Q))
        v = float_at_most(bound)
        assert sp.Rational(v) <= bound < sp.Rational(math.nextafter(v, math.inf))
        assert not [f for f in statement.check_assumptions(Z=1, d=1, v=v, Q=Q, l_b=sp.Rational(1, 4), epsilon=1,
                                                           delta=0) if f.name.startswith("v <=")]


@given(v=st.floats(1e-12, 10.0), Z=st.integers(1, 100))
def test_remark_epsilon_is_the_largest_the_appendix_allows(v, Z):
    from theory.statements import remark_epsilon, substitute, remark_substitution

    eps = remark_epsilon(v, Z)
    assert THEOREM_B3.upper_bound("epsilon", v=v, Z=Z) == eps
    # the same object as the Remark's substitution
    assert substitute(symbols.epsilon, remark_substitution()[:1]).subs({symbols.v: sp.Rational(v), symbols.Z: Z}) == eps
    assert THEOREM_4_2.upper_bound("epsilon", v=v, Z=Z) is None  # the main text has no eps condition


@given(Q=st.integers(1, 10**4), Z=st.integers(1, 4), v=st.one_of(st.none(), st.floats(1e-9, 1e-2)))
def test_resolve_noise_lands_inside_the_boundaries(Q, Z, v):
    from theory.numbers import float_at_most

    v_res, eps, delta = THEOREM_C5.resolve_noise(Q, Z, v)
    if v is None:
        assert v_res == float_at_most(THEOREM_C5.v_boundary(Q))
    exact_eps = sp.Rational(eps)
    assert 16 * exact_eps * sp.Rational(v_res) * (Z + 2) <= 1  # independent of theory's form
    assert sp.Rational(delta) <= sp.Min(exact_eps * sp.Rational(v_res) / 8, sp.Rational(1, 4))
    assert sp.Rational(math.nextafter(delta, math.inf)) > sp.Min(exact_eps * sp.Rational(v_res) / 8, sp.Rational(1, 4))
    failing = {f.name for f in THEOREM_C5.check_assumptions(Z=Z, d=1, v=v_res, Q=Q, l_b=sp.Rational(1, 4),
                                                            epsilon=eps, delta=delta)}
    assert not failing & {"eps <= 1/(16 v (Z+2))", "delta <= eps v / 8", "delta <= 1/4"}
    assert THEOREM_4_2.resolve_noise(Q, Z, v, delta=None)[2] == 0.0  # not a statement about delta


def test_upper_bound_ignores_lower_bounds_and_unknown_names():
    assert THEOREM_4_2.upper_bound("l_b") == sp.Rational(1, 2)  # l_b >= 1/4 is a lower bound
    assert THEOREM_C5.upper_bound("delta", epsilon=1, v=sp.Rational(1, 4)) == sp.Rational(1, 32)
    with pytest.raises(ValueError, match="unknown parameter"):
        THEOREM_4_2.upper_bound("nonsense")


# --- one home for each formula -------------------------------------------------------------------------
@given(delta=st.one_of(st.floats(0, 2.8), st.floats(1e-300, 1e-6)))
def test_concept_tilt_is_a_unit_vector_with_a_stable_sine(delta):
    from theory.concentration import concept_tilt

    cos, sin = concept_tilt(delta)
    exact = sp.Rational(delta)
    ulps = 8 * sys.float_info.epsilon  # a handful of correctly rounded operations
    subnormal_ulps = 8 * 5e-324  # below the normal range an ulp is absolute: the smallest subnormal
    assert cos == pytest.approx(float(1 - exact**2 / 8), rel=ulps, abs=0)
    # sin xi = sqrt(1 - cos^2), also where 1 - cos^2 in floats would be 0
    one_minus_cos2 = 1 - (1 - Fraction(delta) ** 2 / 8) ** 2  # exact; sympy's sqrt would try to factor it
    with mpmath.workdps(30):
        oracle = float(mpmath.sqrt(mpmath.mpf(one_minus_cos2.numerator) / one_minus_cos2.denominator))
    assert sin == pytest.approx(oracle, rel=ulps, abs=subnormal_ulps)
    with pytest.raises(ValueError, match="delta"):
        concept_tilt(3.0)


def test_individual_rewards_reuse_the_statement_objects():
    from theory import closed_forms, failure_mode, individual_rewards as ir
    from theory.losses import DPO

    assert ir.tau_1 is THEOREM_4_2.conclusions["tau_1"] and ir.r_upper is THEOREM_4_2.conclusions["r_U"]
    assert ir.policy_log_odds() == failure_mode.policy_log_odds() and ir.odds == failure_mode.rho
    assert ir.margin_at_time() == closed_forms.idealised_margin()
    assert ir.idealised_margin_rate() == closed_forms.idealised_rate() * DPO.weight


def test_idealised_time_is_the_idealised_rate_times_t_over_tau():
    from theory.closed_forms import idealised_rate
    from theory.objectives import idealised_time

    assert sp.simplify(idealised_time - idealised_rate() * symbols.t / symbols.tau) == 0


def test_scaling_law_statement_and_paper_numbers():
    from theory.scaling_law import (PAPER_DELTA, PAPER_K, PAPER_SAMPLES_PER_VALUE, SCALING_BOUND, SCALING_LAW,
                                    paper_claim_K10, samples_per_value, samples_per_value_asymptotics)

    for K in (1, 10, 1000):
        root = SCALING_LAW.evaluate(K=K, delta=PAPER_DELTA)["Q_min_root"].approx
        assert root == samples_per_value(K, PAPER_DELTA).root_value
    claim = paper_claim_K10()
    assert claim.holds and claim.numbers["Q_min"] > PAPER_SAMPLES_PER_VALUE and str(PAPER_K) in claim.claim
    # the slope of Q_min in log K is the leading coefficient of the asymptotic expansion
    leading = samples_per_value_asymptotics().expressions["leading terms in log K"]
    assert leading.coeff(sp.Symbol("logK", positive=True)) == SCALING_BOUND.log_K_slope == 45


def _derivations_without_arguments():
    """Every public function of theory/ that returns a DerivationResult and needs no argument."""
    import importlib
    import inspect
    import pkgutil

    import theory

    found = {}
    for info in pkgutil.iter_modules(theory.__path__):
        module = importlib.import_module(f"theory.{info.name}")
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if function.__module__ != module.__name__ or name.startswith("_") or "__mutmut_" in name:
                continue  # (mutmut's copies of a function under test, x_NAME__mutmut_N, are not derivations)
            signature = inspect.signature(function)
            if signature.return_annotation in ("DerivationResult", DerivationResult) and all(
                    p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                    for p in signature.parameters.values()):
                found[f"{module.__name__}.{name}"] = function
    return found


def test_every_derivation_record_is_the_recorded_one(snapshot):
    """Each derivation's name, verdict and the labels of what it derived, as the audit, `derive` and the reports
    show them (the values themselves are tested where each is derived)."""
    import json

    records = {}
    for name, derive in _derivations_without_arguments().items():
        result = derive()
        records[name] = {"claim": result.claim, "holds": result.holds, "verdict": result.verdict,
                         "expressions": list(result.expressions), "numbers": list(result.numbers)}
    assert len(records) >= 29
    snapshot("derivations.json", json.dumps(records, indent=1, ensure_ascii=False) + "\n")
