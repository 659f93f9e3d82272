"""The tight risk law (`theory.tight_risk_law`, `verify.tight_risk_law`, claim tight-risk-law): its derivation, its
integrals against independent evaluations, its distribution against draws of the model, Q_min, and the claim."""
from __future__ import annotations

import math
from dataclasses import replace

import mpmath
import numpy as np
import pytest
import sympy as sp
import torch
from scipy import special

from theory.tight_risk_law import (DERIVATIONS, PAPER_V_RULE, TIGHT_RISK_LAW, law_latex, leading_samples_per_value,
                                   noise_floor, q, rederivation_discrepancies, risk_bound, standard_normal_quantile,
                                   tight_samples_per_value, worst_cluster_law)
from verify.claims import get_claim
from verify.data_model import DiverseValueDistribution
from verify.tight_risk_law import (POINTS, Point, cluster_geometry, directions, failure_probability_float, law_on_draw,
                                   law_parameters, preference_gram, sample_law_risks, standardised_margins)
from verify.verdicts import Status, clopper_pearson

# the sweep's fixed-noise point (benchmarks/sweeps/empirical_scaling.md): v = 1/2, l_b = 1/2, d = 130
D130 = dict(Q_value=36, d_value=130, v_value=0.5, l_b_value=0.5)


@pytest.mark.parametrize("derivation", DERIVATIONS, ids=lambda f: f.__name__)
def test_every_step_of_the_derivation_holds(derivation):
    result = derivation()
    assert result.holds, str(result)


def test_the_law_has_its_latex():
    text = law_latex()
    assert r"\textbf{Tight risk law}" in text and r"\Pr[z_k < q]" in text and "I_{" in text  # the Bessel function
    assert r"\mathbb E[\Phi(-z_k)]" in text and text.count(r"\begin{align*}") == 3


def test_the_statement_agrees_with_its_rederivation_and_a_changed_one_does_not():
    assert rederivation_discrepancies() == []
    halved = replace(TIGHT_RISK_LAW, conclusions={**TIGHT_RISK_LAW.conclusions,
                                                  "risk_bound": TIGHT_RISK_LAW.conclusions["risk_bound"].subs(q, q / 2)})
    assert any(line.startswith("risk_bound - Phi(-q)") for line in rederivation_discrepancies(halved))


def test_the_quadrature_agrees_with_adaptive_integration_and_float64():
    """The cached Gauss-Legendre grid, the integrand-following panels, mpmath's adaptive tanh-sinh and scipy's
    float64 quad share no nodes, so their agreement measures the quadrature error: 10 of the 20 digits (float64:
    scipy's epsrel 1e-10 plus the float density), in the sweep's regime and deep inside Theorem 4.3's assumptions
    (margin about 165)."""
    for law, thresholds in ((worst_cluster_law(TIGHT_RISK_LAW, **D130), (1.4, 1.6)),
                            (worst_cluster_law(TIGHT_RISK_LAW, 40, 12, 1 / (32 * math.sqrt(40)), 0.25, 2), (165.0,))):
        for threshold in thresholds:
            kappa = threshold / mpmath.sqrt(law.scale**2 - threshold**2)
            grid, adaptive = law.failure_probability(threshold), law.failure_probability_adaptive(threshold)
            panels = law._panel_probability(kappa)
            assert 1e-6 < grid < 1 and abs(grid / adaptive - 1) < 1e-10 and abs(panels / adaptive - 1) < 1e-10
            floats = failure_probability_float(threshold, float(law.scale), float(law.gaussian_mean),
                                               float(law.chi_noncentrality), law.chi_degrees)
            assert abs(floats / float(grid) - 1) < 1e-8


def test_a_probability_deep_in_the_tail_is_a_number():
    """Far below the grid's floor the panels follow the integrand: Pr[z < q] at 9 spreads below the median is tiny
    but positive, decreases with q, and the quantile search still brackets through it."""
    law = worst_cluster_law(TIGHT_RISK_LAW, 40, 12, 1 / (32 * math.sqrt(40)), 0.25, 2)
    far, farther = law.failure_probability(163.0), law.failure_probability(160.0)
    assert 0 < farther < far < mpmath.mpf(10) ** -60
    assert law.failure_probability(law.quantile(1e-3)) == pytest.approx(1e-3, rel=1e-9)


def test_the_law_is_the_distribution_of_the_equal_weight_margin():
    """Draws of P (no training): the equal-weight margin of cluster 0 below q, counted over 3000 draws, against the
    law's Pr[z < q] (99.9% Clopper-Pearson, Bonferroni over the thresholds), and the mean risk against E[R]."""
    point = Point("test", K=1, Q=4, d=7, v=0.4, l_b=0.5)
    dist = point.distribution()
    seeds = list(range(3000))
    sample = dist.sample(seeds, point.Q)
    W = torch.as_tensor(preference_gram(dist), dtype=sample.features.dtype)
    z = standardised_margins(directions(sample.features, W, point.Q), sample.means, dist.v)
    law = worst_cluster_law(TIGHT_RISK_LAW, point.Q, point.d, point.v, point.l_b)
    thresholds = (float(law.leading_margin) - 0.4, float(law.leading_margin), float(law.leading_margin) + 0.2)
    for threshold in thresholds:
        low, high = clopper_pearson(int((z[:, 0] < threshold).sum()), len(seeds), 1 - 0.001 / len(thresholds))
        assert low <= float(law.failure_probability(threshold)) <= high, threshold
    risks = special.ndtr(-z[:, 0])
    tolerance = 4 * risks.std() / math.sqrt(len(risks))  # a 4-sigma band of the sample mean
    assert abs(risks.mean() - float(law.expected_risk())) < tolerance
    assert abs(sample_law_risks(1, 4, 7, 0.4, 0.5, 400_000, np.random.default_rng(0)).mean()
               - float(law.expected_risk())) < 4 * risks.std() / math.sqrt(400_000)


def test_a_wrong_noise_dimension_is_outside_the_interval():
    """The check above can fail: the law with the chi's d - 1 degrees replaced by 1 is rejected by the same draws."""
    point = Point("test", K=1, Q=4, d=7, v=0.4, l_b=0.5)
    dist = point.distribution()
    sample = dist.sample(list(range(3000)), point.Q)
    W = torch.as_tensor(preference_gram(dist), dtype=sample.features.dtype)
    z = standardised_margins(directions(sample.features, W, point.Q), sample.means, dist.v)
    wrong = replace(TIGHT_RISK_LAW, conclusions={**TIGHT_RISK_LAW.conclusions, "chi_degrees": sp.Integer(1)})
    law = worst_cluster_law(wrong, point.Q, point.d, point.v, point.l_b)
    threshold = float(law.leading_margin)
    low, high = clopper_pearson(int((z[:, 0] < threshold).sum()), 3000, 0.999)
    assert not low <= float(law.failure_probability(threshold)) <= high


def test_the_per_cluster_geometry_reduces_to_the_worst_case_where_it_is_attained():
    """Disjoint tokens, delta = 0: every cluster's (T, nu, omega^2) is the statement's worst case; inside a chain the
    middle clusters attain the Z = 2 worst case and the end clusters lie above it (rho = 2/sqrt 5 > 2/sqrt 6)."""
    for tokens, Z in (("disjoint", 1), ("chain", 2)):
        dist = DiverseValueDistribution(4, 12, 0.3, 0.25, tokens=Point("x", 4, 20, 12, 0.3, 0.25, tokens).distribution().tokens)
        g = cluster_geometry(dist, dist.cluster_means([0]))
        T, nu, omega2, k = law_parameters(TIGHT_RISK_LAW, 20, 12, 0.3, g["P"], g["M2"], g["U2"], g["g2"])
        worst = worst_cluster_law(TIGHT_RISK_LAW, 20, 12, 0.3, 0.25, Z)
        assert k == 11 and np.allclose(T, float(worst.scale), rtol=1e-14)
        middle = slice(2, 6) if tokens == "chain" else slice(None)
        assert np.allclose(nu[0, middle], float(worst.gaussian_mean), rtol=1e-13)
        assert np.all(nu[0] >= float(worst.gaussian_mean) * (1 - 1e-13))
        if tokens == "chain":
            assert nu[0, 0] > float(worst.gaussian_mean) * 1.01


def test_the_leading_order_law_is_within_hundredths_of_a_decade_of_the_exact_risk():
    """Trained models at the sweep's d = 130 point: the law's risk for the same draw within 0.02 decades, and the first
    correction of the weights brings the median error down at least fivefold."""
    from verify.training import gradient_flow, tau_1
    from verify.exact_risk import exact_risk

    point = POINTS["fixed-noise-d130"]
    dist, seeds = point.distribution(), list(range(6))
    sample = dist.sample(seeds, point.Q)
    horizon = tau_1(point.K, 1.0, 1.0)
    trained = gradient_flow(sample, 1.0, 1.0, [0.0, horizon])
    exact = exact_risk(dist, seeds, trained.rows, trained.delta_rows, 1.0).log_risk
    law = law_on_draw(dist, sample, 1.0, 1.0, horizon)
    leading, corrected = (np.abs(x - exact) / math.log(10) for x in (law.leading_log_risk, law.corrected_log_risk))
    assert leading.max() < 0.02 and 5 * np.median(corrected) < np.median(leading)


def test_the_risk_at_tau_1_is_the_same_for_every_beta_and_tau():
    from verify.training import gradient_flow, tau_1
    from verify.exact_risk import exact_risk

    point = POINTS["fixed-noise-2K+2"]
    dist, seeds = point.distribution(), [0, 1]
    sample = dist.sample(seeds, point.Q)
    risks = []
    for beta, tau in ((1.0, 1.0), (0.01, 1.0), (0.3, 7.0)):
        trained = gradient_flow(sample, beta, tau, [0.0, tau_1(point.K, beta, tau)])
        risks.append(exact_risk(dist, seeds, trained.rows, trained.delta_rows, beta).log_risk)
    # the flows agree to the solver's tolerance (rtol 1e-10 on O(1) margins), far inside 1e-6 of log R
    assert np.allclose(risks[0], risks[1], rtol=0, atol=1e-6) and np.allclose(risks[0], risks[2], rtol=0, atol=1e-6)


def test_the_bound_is_a_number_far_below_float_range_inside_the_assumptions():
    bound = risk_bound(TIGHT_RISK_LAW, 4, 40, 12, 1 / (32 * math.sqrt(40)), 0.25, 2)
    assert -6000 < bound.log10_bound < -5000  # Theorem 4.3's bound is 2 K Q^2 e^{-Q/45} ~ 10^3.7 here
    assert float(bound.level) == pytest.approx(0.05 / 8, rel=1e-15)


def test_closed_forms_noise_floor_and_q_min():
    z = float(standard_normal_quantile(0.95))
    assert noise_floor(TIGHT_RISK_LAW, 0.05, 0.5) == pytest.approx(1 / z, rel=1e-12)
    assert noise_floor(TIGHT_RISK_LAW, 0.05, 0.5, 2) == pytest.approx(math.sqrt(2 / 3) / z, rel=1e-12)
    closed = 129 * 0.5**4 * z**2 / (2 * (1 - 0.25 * z**2))
    assert float(leading_samples_per_value(130, 0.5)) == pytest.approx(closed, rel=1e-12)
    assert leading_samples_per_value(130, 0.7) is None  # above the floor
    mean = tight_samples_per_value(4, 130, 0.5, criterion="mean")
    assert mean.Q_min == 35 and mean.value_at <= 0.05 < mean.value_before  # the sweep measured 35-37 at d = 130
    leading = tight_samples_per_value(4, 130, 0.5, criterion="leading")
    assert leading.Q_min == math.ceil(closed)
    above = tight_samples_per_value(1, 130, 0.7)
    assert above.Q_min is None and "noise floor" in above.reason


def test_q_min_at_the_paper_point_is_one_sample_inside_the_assumptions():
    result = tight_samples_per_value(10, 11, PAPER_V_RULE, 0.05, 0.25, criterion="leading")
    assert result.Q_min == 1 and result.value_at < 1e-200


@pytest.mark.parametrize("arguments, message", [
    (dict(K_value=0, d_value=4, v_value=0.5), "K must be"), (dict(K_value=4, d_value=4, v_value=0.5), "d = 4"),
    (dict(K_value=1, d_value=4, v_value="0.5"), "v must be"), (dict(K_value=1, d_value=4, v_value=-1.0), "v must be"),
    (dict(K_value=1, d_value=4, v_value=0.5, risk_target=1.0), "risk_target"),
    (dict(K_value=1, d_value=4, v_value=0.5, criterion="median"), "criterion"),
])
def test_q_min_refuses_bad_input(arguments, message):
    with pytest.raises(ValueError, match=message):
        tight_samples_per_value(**arguments)


def test_the_claim_holds_at_its_quick_points_and_reports_decades():
    verdict = get_claim("tight-risk-law").run(quick=True)
    assert verdict.status is Status.HOLDS, verdict.summary
    assert verdict.trials == 72 and verdict.failures == 0 and verdict.measured < 0 == verdict.bound
    assert "decades" in verdict.summary
    assert 0 < verdict.tightness["approximation error, leading order (decades, largest)"] < 2
    assert (verdict.tightness["approximation error, first correction (decades, largest)"]
            < verdict.tightness["approximation error, leading order (decades, largest)"])
    assert verdict.details["inside Theorem 4.3's assumptions"] == ["inside-chain"]


def test_the_claim_refutes_a_law_that_is_too_tight():
    from verify.claims.tight_risk_law import check_tight_risk_law

    doubled = replace(TIGHT_RISK_LAW, conclusions={**TIGHT_RISK_LAW.conclusions,
                                                   "risk_bound": TIGHT_RISK_LAW.conclusions["risk_bound"].subs(q, 2 * q)})
    verdict = check_tight_risk_law(doubled, seed=0, points="inside-disjoint", trials=8, delta_prime=0.05, beta=1.0, tau=1.0)
    assert verdict.status is Status.VIOLATED and verdict.failures == 8


def test_the_points_are_declared_once():
    from verify.claims.tight_risk_law import POINT_NAMES, _POINT_SIZES

    assert tuple(POINTS) == POINT_NAMES and set(_POINT_SIZES) == set(POINTS)
    assert all(_POINT_SIZES[name] == (p.K, p.Q, p.d) for name, p in POINTS.items())


def test_the_figure_uses_the_object_api(object_api_only, tmp_path):
    from verify import plots
    from verify.tight_risk_law import Curve, CurvePoint, SamplesRow, draw_figure

    curve = Curve("K = 1", 1, 4, 0.5, (CurvePoint(1, (-1.2, -1.3), -1.0, -1.3, -1.25, 0.3),
                                       CurvePoint(4, (-1.5,), -1.2, -1.6, None, 0.9)))
    rows = [SamplesRow("d = 130", K, 130, 0.5, 764, 35, 54, 33.7, 36, (33, 39)) for K in (1, 2)]
    path = plots.save(draw_figure([curve], [curve], rows), tmp_path / "law.png")
    assert path.stat().st_size > 10_000


def test_a_quantile_above_the_leading_margin_is_bracketed_upwards():
    """Level 0.9 lies above Pr[z < leading margin], so the search widens its bracket upwards."""
    law = worst_cluster_law(TIGHT_RISK_LAW, **D130)
    level = 0.9
    assert law.failure_probability(law.leading_margin) < level
    quantile = law.quantile(level)
    assert quantile > law.leading_margin and law.failure_probability(quantile) == pytest.approx(level, rel=1e-9)


def test_each_points_risk_range_is_a_range_of_risks():
    """log10 R over the trials: min <= max <= 0 (a risk is at most 1), and a trial exceeds B exactly when the
    largest risk does."""
    from verify.claims import get_claim

    for name, point in get_claim("tight-risk-law").run(quick=True).details["per point"].items():
        low, high = point["log10 R (exact, range over trials)"]
        assert low <= high <= 0, name
        assert (point["trials with R > B"] > 0) == (high > point["log10 B"]), name
