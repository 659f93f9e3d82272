"""Data-model variants: unequal shares, label noise, per-pair weights (theory/data_variants.py, verify/data_variants.py,
and their options in the sampler and the trainers)."""
import dataclasses
import math
from fractions import Fraction

import pytest
import sympy as sp
import torch
from hypothesis import given
from hypothesis import strategies as st

from theory import data_variants as theory
from theory.closed_forms import idealised_margin, idealised_rate
from theory.errors import UserInputError
from theory.losses import DPO, IPO
from theory.symbols import K, beta, r, t
from verify import data_variants as numeric
from verify.data_model import DiverseValueDistribution
from verify.trainers import gradient_descent, gradient_flow

w = theory.generic_weight
eta, p, wbar = theory.flip_rate, theory.share, theory.mean_weight


# --- the sampler ------------------------------------------------------------------------------------------------
def test_defaults_and_equal_shares_draw_the_paper_model_bit_for_bit():
    plain = DiverseValueDistribution(3, 5, 0.1, 0.4)
    equal = DiverseValueDistribution(3, 5, 0.1, 0.4, shares=(1 / 3, 1 / 3, 1 / 3))
    a = plain.sample([2, 3], 4)
    for b in (plain.sample([2, 3], 4, flip_rate=0.0, weights=None), equal.sample([2, 3], 4)):
        for name in ("features", "cluster", "chosen", "rejected"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name
        assert b.flipped is None and b.weights is None and b.per_cluster == 4
    assert torch.equal(plain.test_set([2], 11).cluster, equal.test_set([2], 11).cluster)


def test_largest_remainder_counts():
    dist = DiverseValueDistribution(3, 4, 0.0, 0.5, shares=(0.5, 0.3, 0.2))
    # quotas 4.5, 2.7, 1.8 of 9: floors 4, 2, 1, then the two largest remainders (0.8, 0.7) get one more
    assert dist.cluster_sizes(3) == (4, 4, 3, 3, 2, 2)
    assert dist.realised_shares(3) == (4 / 9, 3 / 9, 2 / 9)


@given(st.lists(st.integers(1, 50), min_size=1, max_size=6), st.integers(1, 40))
def test_cluster_sizes_keep_N_and_stay_within_one_of_the_quota(weights, Q):
    shares = [Fraction(x, sum(weights)) for x in weights]
    K_value = len(shares)
    dist = DiverseValueDistribution(K_value, K_value + 1, 0.0, 0.5, shares=tuple(float(x) for x in shares))
    try:
        sizes = dist.cluster_sizes(Q)
    except UserInputError as error:
        assert "shares" in str(error) and min(shares) * K_value * Q < 1
        return
    assert sum(sizes) == 2 * K_value * Q and sizes[::2] == sizes[1::2]
    assert all(abs(sizes[2 * k] - float(s) * K_value * Q) < 1 for k, s in enumerate(shares))


def test_unequal_shares_sample_and_test_set():
    dist = DiverseValueDistribution(2, 3, 0.0, 0.5, shares=(0.8, 0.2))
    sample = dist.sample([0], 5)
    assert sample.cluster_sizes == (8, 8, 2, 2) and sample.per_cluster is None
    assert torch.equal(sample.features[0], sample.means[0][sample.cluster[0]])  # v = 0: every row is its mean
    test = dist.test_set([0], 4000)
    counts = torch.bincount(test.cluster[0], minlength=4).double() / 4000
    assert abs(float(counts[:2].sum()) - 0.8) < 5 * math.sqrt(0.16 / 4000)  # 5 standard errors


def test_flips_swap_exactly_the_stated_rows():
    dist = DiverseValueDistribution(2, 3, 0.1, 0.5)
    clean, noisy = dist.sample([1], 10), dist.sample([1], 10, flip_rate=0.25)  # round(2.5) = 3 per cluster
    assert dist.flip_counts(10, 0.25) == (3, 3, 3, 3)
    flipped = noisy.flipped[0]
    assert int(flipped.sum()) == 12 and bool(flipped.view(4, 10)[:, -3:].all())
    assert torch.equal(noisy.features, clean.features)
    assert torch.equal(noisy.chosen[0][flipped], clean.rejected[0][flipped])
    assert torch.equal(noisy.rejected[0][~flipped], clean.rejected[0][~flipped])


def test_weights_per_value_and_per_pair():
    dist = DiverseValueDistribution(2, 3, 0.1, 0.5)
    per_value = dist.sample([0], 3, weights=(1.0, 2.5)).weights[0]
    assert per_value.tolist() == [1.0] * 6 + [2.5] * 6
    per_pair = dist.sample([0], 3, weights=list(range(1, 13))).weights[0]
    assert per_pair.tolist() == [float(x) for x in range(1, 13)]


@pytest.mark.parametrize("call, name", [
    (lambda: DiverseValueDistribution(3, 4, 0.0, 0.5, shares=(0.5, 0.5)), "shares"),
    (lambda: DiverseValueDistribution(2, 4, 0.0, 0.5, shares=(1.2, -0.2)), r"shares\[1\]"),
    (lambda: DiverseValueDistribution(2, 4, 0.0, 0.5, shares=(0.5, 0.6)), "shares"),
    (lambda: DiverseValueDistribution(2, 4, 0.0, 0.5, shares=(float("nan"), 0.5)), r"shares\[0\]"),
    (lambda: DiverseValueDistribution(2, 4, 0.0, 0.5, shares=(0.99, 0.01)).sample([0], 2), "shares"),
    (lambda: DiverseValueDistribution(2, 4, 0.0, 0.5).sample([0], 10, flip_rate=0.5), "flip_rate"),
    (lambda: DiverseValueDistribution(2, 4, 0.0, 0.5).sample([0], 10, flip_rate=-0.1), "flip_rate"),
    (lambda: DiverseValueDistribution(2, 4, 0.0, 0.5).sample([0], 2, flip_rate=0.3), "flip_rate"),
    (lambda: DiverseValueDistribution(2, 4, 0.0, 0.5).sample([0], 2, weights=(1.0, 0.0)), r"weights\[1\]"),
    (lambda: DiverseValueDistribution(2, 4, 0.0, 0.5).sample([0], 2, weights=(1.0, 2.0, 3.0)), "weights"),
    (lambda: DiverseValueDistribution(2, 4, 0.0, 0.5).sample([0], 2, weights=(1.0, float("inf"))), r"weights\[1\]"),
])
def test_bad_variant_options_are_one_line_errors_naming_the_parameter(call, name):
    with pytest.raises(UserInputError, match=name) as error:
        call()
    assert "\n" not in str(error.value)


# --- the trainers' sample weights ---------------------------------------------------------------------------------
def test_unit_weights_change_nothing_and_weights_are_given_once():
    dist = DiverseValueDistribution(2, 4, 0.1, 0.4)
    sample = dist.sample([0], 3, flip_rate=0.2)
    plain = gradient_flow(sample, 1.0, 1.0, [0.0, 1.0]).train_margins
    ones = gradient_flow(sample, 1.0, 1.0, [0.0, 1.0], sample_weights=torch.ones(sample.size, dtype=torch.float64)).train_margins
    assert torch.equal(plain, ones)
    with pytest.raises(ValueError, match="sample_weights"):
        gradient_flow(dist.sample([0], 3, weights=(1.0, 2.0)), 1.0, 1.0, [0.0, 1.0], sample_weights=torch.ones(12))
    with pytest.raises(ValueError, match="sample_weights"):
        gradient_flow(sample, 1.0, 1.0, [0.0, 1.0], sample_weights=-torch.ones(sample.size))


def test_weighted_gradient_descent_reduced_equals_full_and_differs_from_unweighted():
    sample = DiverseValueDistribution(2, 4, 0.2, 0.4).sample([3], 3, flip_rate=0.2, weights=[0.5 + 0.1 * i for i in range(12)])
    reduced = gradient_descent(sample, 1.0, 0.5, 4).train_margins
    full = gradient_descent(sample, 1.0, 0.5, 4, form="full").train_margins
    assert float((reduced - full).abs().max()) < 1e-12
    unweighted = gradient_descent(dataclasses.replace(sample, weights=None), 1.0, 0.5, 4).train_margins
    assert float((reduced - unweighted).abs().max()) > 1e-3


def test_weighted_lemma_4_1_numerically():
    for check in numeric.check_weighted_lemma(seed=1):
        assert check.passed and not check.vacuous, check


# --- the theory ----------------------------------------------------------------------------------------------------
def test_value_rate_derivation():
    value = theory.derive_value_rate()
    assert value.holds, value.residuals
    assert sp.simplify(value.coefficient - 2 * beta**2 * p * wbar) == 0
    assert sp.expand(value.expected_weight - ((1 - eta) * w(r) - eta * w(-r))) == 0
    assert sp.expand(theory.flipped_pair_weight() - ((1 - eta) * w(r) - eta * w(-r))) == 0


def test_unequal_shares_reduce_to_the_equal_split_and_dpo_closed_form():
    shares = theory.derive_unequal_shares(DPO.weight)
    assert shares.holds, shares.residuals
    assert sp.simplify(shares.rate.subs(p, 1 / K) - idealised_rate() * DPO.weight) == 0
    assert sp.simplify(shares.time_ratio - K * p) == 0
    assert sp.simplify(shares.trajectory - idealised_margin().subs(t, K * p * t)) == 0
    assert sp.simplify(theory.dpo_share_margin() - shares.trajectory) == 0
    assert r"\tau" in shares.latex()


@pytest.mark.parametrize("loss, expected", [(DPO, sp.log((1 - eta) / eta)), (IPO, 1 - 2 * eta)])
def test_label_noise_fixed_point(loss, expected):
    noise = theory.derive_label_noise(loss.weight)
    assert noise.holds, noise.residuals
    assert sp.simplify(noise.fixed_point - expected) == 0
    assert sp.simplify(noise.slopes[0] - sp.diff(expected, eta)) == 0
    assert noise.limits[0][1] == 0  # eta -> 1/2: nothing is learned


def test_dpo_label_noise_saturates_below_infinity_and_falls_with_eta():
    noise = theory.derive_label_noise(DPO.weight)
    assert noise.limits[0][0] == sp.oo
    values = [float(noise.fixed_point.subs(eta, x)) for x in (sp.Rational(1, 20), sp.Rational(1, 10), sp.Rational(1, 4))]
    assert values[0] > values[1] > values[2] > 0
    assert sp.simplify(noise.contractions[0] - eta * (1 - eta)) == 0


def test_pair_weights_scale_the_rate_by_the_mean_weight():
    weights = theory.derive_pair_weights(DPO.weight)
    assert weights.holds and weights.lemma.holds
    assert weights.weight_ratio == wbar
    assert sp.simplify(weights.rate - 2 * beta**2 * p * wbar * DPO.weight) == 0


# --- simulation vs theory ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("v, Q", [(0.0, 10), (0.01, 20)])
def test_unequal_shares_simulation_matches_and_a_falsified_rate_is_caught(v, Q):
    check = numeric.check_shares((0.7, 0.2, 0.1), v=v, Q=Q)
    assert check.passed and not check.vacuous, check
    statement = theory.derive_unequal_shares(DPO.weight)
    equal_split = dataclasses.replace(statement, rate=statement.rate.subs(p, 1 / K), trajectory=None)
    assert not numeric.check_shares((0.7, 0.2, 0.1), v=v, Q=Q, statement=equal_split).passed
    if v == 0:
        assert check.error < numeric.AGREEMENT_TOLERANCE and check.details["noise_bound"] == 0


def test_equal_shares_cannot_tell_the_falsified_rate_apart():
    # the mutant differs from the statement only when the shares are unequal: the check is about p_k
    statement = theory.derive_unequal_shares(DPO.weight)
    equal_split = dataclasses.replace(statement, rate=statement.rate.subs(p, 1 / K), trajectory=None)
    assert numeric.check_shares((0.5, 0.5), Q=4, statement=equal_split).passed


def test_label_noise_simulation_saturates_at_the_derived_fixed_point():
    trajectory, saturation = numeric.check_label_noise(0.1, Q=20)
    assert trajectory.passed and saturation.passed and not saturation.vacuous, (trajectory, saturation)
    assert saturation.details["r*"] == pytest.approx(math.log(9), abs=1e-14)
    statement = theory.derive_label_noise(DPO.weight)
    wrong = dataclasses.replace(statement, fixed_points=(sp.log(1 / eta),))
    assert not numeric.check_label_noise(0.1, Q=20, statement=wrong)[1].passed
    noisy_v = numeric.check_label_noise(0.1, Q=20, v=0.01)
    assert len(noisy_v) == 1 and noisy_v[0].passed and not noisy_v[0].vacuous


def test_pair_weights_simulation_matches_and_an_unweighted_rate_is_caught():
    check = numeric.check_pair_weights((1.0, 3.0))
    assert check.passed and not check.vacuous, check
    statement = theory.derive_pair_weights(DPO.weight)
    unweighted = dataclasses.replace(statement, rate=statement.rate.subs(wbar, 1))
    assert not numeric.check_pair_weights((1.0, 3.0), statement=unweighted).passed


def test_same_seed_same_result():
    dist = DiverseValueDistribution(2, 3, 0.05, 0.5, shares=(0.75, 0.25))
    runs = [numeric.simulate(dist, 8, [0.0, 1.0, 2.0], flip_rate=0.25, weights=(1.0, 2.0), seeds=(5,)) for _ in range(2)]
    assert (runs[0].margins == runs[1].margins).all()
    other = numeric.simulate(dist, 8, [0.0, 1.0, 2.0], flip_rate=0.25, weights=(1.0, 2.0), seeds=(6,))
    assert not (other.margins == runs[0].margins).all()
    checks = [numeric.check_shares((0.7, 0.3), v=0.02, Q=10, seeds=(4,)) for _ in range(2)]
    assert checks[0].error == checks[1].error and checks[0].tolerance == checks[1].tolerance


def test_a_weight_with_a_jump_is_not_run_and_says_why():
    from theory.losses import SLIC
    checks = numeric.run_variant_checks(SLIC)
    assert checks and all(c.verdict == "NOT RUN" and not c.passed and "jumps" in c.not_run for c in checks)
