"""The exact population risk against Monte Carlo, and its log-space evaluation."""
from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from theory.population_risk import derive_population_risk
from verify.data_model import DiverseValueDistribution, token_layout
from verify.exact_risk import exact_risk, log_normal_tail
from verify.training import gradient_flow, tau_1
from verify.verdicts import clopper_pearson

SEEDS = [0, 1]
TEST_DRAWS = 100_000


def test_the_cluster_risk_is_derived_from_the_gaussian_margin():
    assert derive_population_risk().holds


@pytest.mark.parametrize("K, tokens, v, delta", [
    (1, "disjoint", 1.2, 0.0), (2, "chain", 0.8, 0.0), (3, "chain", 0.6, 0.3), (4, "grouped:2", 0.7, 0.0),
    (3, "disjoint", 0.5, 0.45),
])
def test_exact_risk_agrees_with_monte_carlo_within_the_999_interval(K, tokens, v, delta):
    dist = DiverseValueDistribution(K, K + 4, v, 0.3, tokens=token_layout(tokens, K), delta=delta)
    result = gradient_flow(dist.sample(SEEDS, 10), 1.0, 1.0, [0.0, tau_1(K, 1.0, 1.0)],
                           test=dist.test_set(SEEDS, TEST_DRAWS))
    exact = exact_risk(dist, SEEDS, result.rows, result.delta_rows, 1.0).risk
    errors = (result.test_margins[:, -1] <= 0).sum(1).tolist()
    for risk, count in zip(exact, errors):
        assert 1e-3 <= risk <= 0.3, "choose parameters where Monte Carlo resolves the risk"
        low, high = clopper_pearson(count, TEST_DRAWS, 0.999)
        assert low <= risk <= high, (risk, count / TEST_DRAWS, (low, high))


def test_a_wrong_risk_is_outside_the_interval():
    """The agreement test can fail: the risk of the cluster means alone (v -> 0, i.e. 0 here) is rejected."""
    dist = DiverseValueDistribution(2, 6, 0.8, 0.3, tokens=token_layout("chain", 2))
    result = gradient_flow(dist.sample(SEEDS, 10), 1.0, 1.0, [0.0, tau_1(2, 1.0, 1.0)],
                           test=dist.test_set(SEEDS, TEST_DRAWS))
    exact = exact_risk(dist, SEEDS, result.rows, result.delta_rows, 1.0).risk
    errors = (result.test_margins[:, -1] <= 0).sum(1).tolist()
    low, high = clopper_pearson(errors[0], TEST_DRAWS, 0.999)
    assert not low <= exact[0] / 2 <= high


def test_log_space_reaches_far_below_float_range():
    z = np.array([1.0, 40.0, 1e3, 1e100])
    for value, log_tail in zip(z, log_normal_tail(z)):
        with mpmath.workdps(40):
            assert math.isclose(log_tail, float(mpmath.log(mpmath.ncdf(-mpmath.mpf(value)))), rel_tol=1e-13)


def test_inside_the_theorem_the_risk_is_a_number_not_zero():
    Q = 40
    dist = DiverseValueDistribution(2, 6, 1 / (32 * math.sqrt(Q)) * 0.999, 0.25, tokens=token_layout("chain", 2))
    result = gradient_flow(dist.sample([0], Q), 0.01, 1.0, [0.0, tau_1(2, 0.01, 1.0)])
    exact = exact_risk(dist, [0], result.rows, result.delta_rows, 0.01)
    assert exact.risk[0] == 0.0 and -1e5 < exact.log10_risk[0] < -1000 and not exact.log_underflow[0]


def test_noise_free_and_untrained_models_are_exact():
    dist = DiverseValueDistribution(2, 6, 0.0, 0.3, tokens=token_layout("disjoint", 2))
    result = gradient_flow(dist.sample([0], 4), 1.0, 1.0, [0.0, 1.0])
    assert np.isneginf(exact_risk(dist, [0], result.rows, result.delta_rows, 1.0).log_risk[0])  # R = 0 exactly
    untrained = exact_risk(dist, [0], result.rows, result.delta_rows * 0, 1.0)
    assert untrained.log_risk[0] == 0.0  # margin 0 everywhere: Def. 3.1 counts it as an error
