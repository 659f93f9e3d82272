"""Scaling law Q_min(K) of §4.2 (Theorem 4.3's bound) and the predecessor's bound."""
from fractions import Fraction

import mpmath
import pytest
import sympy as sp
from hypothesis import example, given, strategies as st

from theory import symbols
from theory.scaling_law import (MINIMUM_Q, PREDECESSOR_BOUND, SCALING_BOUND, evaluate_asymptotics, paper_claim_K10,
                                samples_per_value, samples_per_value_asymptotics, samples_per_value_table)

deltas = st.fractions(Fraction(1, 10**6), Fraction(999, 1000), max_denominator=10**6)


def bound(shape, K, Q, dps=40):
    with mpmath.workdps(dps):
        return mpmath.mpf(sp.N(shape.bound.subs({symbols.K: K, symbols.Q: Q}), dps))


def test_paper_sentence_K10_comes_out():
    res = samples_per_value(10, Fraction(1, 20))
    assert res.root == -90 * sp.LambertW(-sp.Rational(1, 1800), -1)  # exact closed form
    assert res.Q_min == 880 and 879 < res.root_value < 880  # SPEC §7: 879.8
    claim = paper_claim_K10()
    assert claim.holds and claim.numbers["bound at 875"] > 0.05


@given(K=st.integers(1, 10**6), delta=deltas)
@example(K=10, delta=Fraction(1, 20))
def test_Q_min_is_the_smallest_admissible_Q(K, delta):
    res = samples_per_value(K, delta)
    with mpmath.workdps(40):
        delta = mpmath.mpf(delta.numerator) / delta.denominator
    assert res.bound_at_Q_min <= delta < res.bound_at_Q_min_minus_1
    # the W_0 root sits where the bound still rises, below Q = 40; the W_{-1} root is the answer
    assert res.other_root_value < MINIMUM_Q < res.Q_min and bound(SCALING_BOUND, K, MINIMUM_Q) > delta
    with mpmath.workdps(40):  # B(root) = delta up to working precision
        assert abs(bound(SCALING_BOUND, K, res.root) / delta - 1) < mpmath.mpf(10) ** -30


@given(K=st.integers(1, 10**6), extra=st.integers(1, 10**6), delta=deltas)
def test_Q_min_increasing_in_K(K, extra, delta):
    a, b = samples_per_value(K, delta), samples_per_value(K + extra, delta)
    assert a.root_value < b.root_value and a.Q_min <= b.Q_min


@given(Q1=st.integers(1, 10**5), gap=st.integers(1, 10**5), K=st.integers(1, 100))
def test_bound_increasing_before_and_decreasing_after_peak(Q1, gap, K):
    peak = SCALING_BOUND.peak
    assert peak == 90
    Q2 = Q1 + gap
    if Q1 >= peak:
        assert bound(SCALING_BOUND, K, Q1) > bound(SCALING_BOUND, K, Q2)
    elif Q2 <= peak:
        assert bound(SCALING_BOUND, K, Q1) < bound(SCALING_BOUND, K, Q2)


def test_table_matches_direct_solution_and_is_monotone():
    rows = samples_per_value_table(range(1, 1001))
    assert len(rows) == 1000
    Qs = [q for _, _, q in rows]
    assert all(a <= b for a, b in zip(Qs, Qs[1:])) and all(a < b for (_, a, _), (_, b, _) in zip(rows, rows[1:]))
    for K in (1, 10, 137, 1000):
        assert rows[K - 1][2] == samples_per_value(K).Q_min
    # SPEC §7 table
    assert {K: rows[K - 1][2] for K in (1, 2, 4, 8, 10, 16, 32, 64, 100, 1000)} == {
        1: 764, 2: 799, 4: 834, 8: 869, 10: 880, 16: 904, 32: 938, 64: 973, 100: 995, 1000: 1108}


def test_asymptotic_series_terms_and_convergence():
    res = samples_per_value_asymptotics(3)
    L, Lam = sp.symbols("L Lambda", positive=True)
    expected = 45 * L + 90 * Lam + 180 * Lam / L + (360 * Lam - 180 * Lam**2) / L**2
    assert sp.expand(res.expressions["Q_min (L = log(2K/delta), Lambda = log(kappa L))"] - expected) == 0
    errors = [abs(evaluate_asymptotics(res, K) - samples_per_value(K).root_value) for K in (10, 10**3, 10**6, 10**12)]
    assert all(a > b for a, b in zip(errors, errors[1:]))
    # leading behaviour: Q_min(K^2) - Q_min(K) ~ 45 log K
    big = samples_per_value(10**40).root_value, samples_per_value(10**80).root_value
    assert 1.0 < (big[1] - big[0]) / (45 * mpmath.log(10**40)) < 1.02


def test_predecessor_bound_needs_billions():
    res = samples_per_value(10, Fraction(1, 20), shape=PREDECESSOR_BOUND)
    assert PREDECESSOR_BOUND.peak == 48**4
    assert res.Q_min == 9420397511
    assert res.bound_at_Q_min <= 0.05 < res.bound_at_Q_min_minus_1


@pytest.mark.parametrize("K, delta, name", [(0, 0.05, "K"), (2.5, 0.05, "K"), (10, 0, "delta"), (10, 1, "delta"),
                                            (10, 1.5, "delta"), (10, -0.1, "delta"), ("x", 0.05, "K")])
def test_bad_inputs_raise_naming_the_parameter(K, delta, name):
    with pytest.raises(ValueError, match=name):
        samples_per_value(K, delta)
    with pytest.raises(ValueError, match=name):
        samples_per_value_table([K], delta)
