"""Checks of theory/ that code mutants survived (mutmut, TESTING.md): each asserts a value derived by hand
from the paper's formulas, not how the code computes it."""
from __future__ import annotations

import pytest
import sympy as sp

from theory.concentration import LEMMA_B1
from theory.symbols import K, Q, Z as Z_, beta, l_b as l_b_sym
from theory.training_guarantee import envelope_slopes_from_lemma_b2


@pytest.mark.parametrize("v_denominator", [4, 8, 32])
def test_lemma_b2_slopes_at_each_v_condition(v_denominator):
    """The sandwich at N = 2KQ, sigma(-r) in [1/4, 1/2], (2Z+4) eps v <= 1/8, l_b^2 Z <= 1/4 and d v^2 = 5Q v^2:
    tau dr/dt >= beta^2/K (2 * 1/4 - 3/8 * 1/2) = 5 beta^2/(16K) (worst d v^2 = 0), and
    tau dr/dt <= beta^2/K (2 * 1/2 + 3/8 * 1/2) + d v^2 beta^2/(2KQ) = beta^2/K (19/16 + 5/(2 k^2 Q)) at the
    largest v = 1/(k sqrt Q): Theorem B.3's own condition is k = 4, Theorem 4.2's k = 32."""
    result = envelope_slopes_from_lemma_b2(v_denominator)
    upper = beta**2 / K * (sp.Rational(19, 16) + sp.Rational(5, 2 * v_denominator**2) / Q)
    assert result.holds
    assert sp.simplify(result.expressions["tau dr/dt >="] - 5 * beta**2 / (16 * K)) == 0
    assert sp.simplify(result.expressions["tau dr/dt <="] - upper) == 0
    assert result.numbers["lower slope / printed"] == sp.Rational(5, 2)  # printed r_L slope beta^2/(8K)
    assert result.numbers["upper slope at Q=1 / printed"] == (upper / (5 * beta**2 / K)).subs(Q, 1)


@pytest.mark.parametrize("tokens", ["chain", "disjoint", "grouped:3"])
def test_data_model_centres_are_lemma_b1_centres(tokens):
    """The claims measure Eqs. (9)-(13) from the data model's cluster means; those must have the Gram entries
    Lemma B.1 prints (1 + l_b^2 same cluster, l_b^2 - 1 opposite cluster, l_b^2 other pairs)."""
    import torch

    from verify.data_model import DiverseValueDistribution, token_layout

    K_value, d_value, l_b = 3, 9, 0.375
    dist = DiverseValueDistribution(K_value, d_value, 0.0, l_b, tokens=token_layout(tokens, K_value))
    means = dist.cluster_means([0], torch.device("cpu"), torch.float64)[0]  # (2K, d): pair i's + then - cluster
    gram = (means @ means.T).tolist()
    centre = {name: float(LEMMA_B1.conclusions[name].subs(l_b_sym, sp.Rational(3, 8)))
              for name in ("same_cluster_dot", "opposite_cluster_dot", "other_pair_dot")}
    for a in range(2 * K_value):
        for b in range(2 * K_value):
            name = ("same_cluster_dot" if a == b else "opposite_cluster_dot" if a // 2 == b // 2
                    else "other_pair_dot")
            assert gram[a][b] == pytest.approx(centre[name], abs=1e-15), (a, b, name)


# --- theory/readings.py: the readings the audit settles (no fast test ran these derivations) ---------------
def test_z_condition_reading():
    """Z <= l_b^2/4 allows at most Z = 1/16 at l_b = 1/2, so no Z >= 1; the proof's Z l_b^2/2 <= 1/8 is
    Z <= 1/(4 l_b^2)."""
    from theory.readings import z_condition_reading
    from theory.symbols import l_b

    result = z_condition_reading()
    assert result.holds is True
    assert result.expressions["max of l_b^2/4 over l_b <= 1/2"] == sp.Rational(1, 16)
    assert sp.simplify(result.expressions["proof's Z l_b^2/2 <= 1/8 gives"] - 1 / (4 * l_b**2)) == 0
    assert result.numbers["Z <= l_b^2/4 satisfiable with Z >= 1"] is False


def test_role_of_Q_ge_40():
    """2KQ^2 e^{-Q/45} (K = 10): d log/dQ = 2/Q - 1/45 vanishes at Q = 90; it equals delta = 1/20 near
    Q = 1/20 (e^{-Q/45} ~ 1 there: 20 Q^2 = 1/20); at Q = 40 it is 32000 e^{-8/9}."""
    import math

    from theory.readings import role_of_Q_ge_40

    result = role_of_Q_ge_40()
    assert result.holds is True
    assert result.expressions["argmax of the bound"] == 90
    root = float(result.numbers["small root (K = 10, delta = 0.05)"])
    assert 20 * root**2 * math.exp(-root / 45) == pytest.approx(1 / 20, rel=1e-12)
    assert 0.05 < root < 0.0501
    assert float(result.numbers["bound at Q = 40"]) == pytest.approx(32000 * math.exp(-8 / 9), rel=1e-7)


def test_predecessor_exponents():
    """The Remark (v = 1/(4 sqrt Q), d = 5Q, eps = 1/(16 v (Z+2))) at the worst Z + 2 = Q^{1/4} gives
    eps = Q^{1/4}/4: eps^2/16 = sqrt(Q)/256 (a factor Q^{1/4} below Q^{3/4}/256), and the risk exponent
    eps^2/(2(2 + d v^2 + eps v)) = Q^{1/2}/(2(37 + Q^{-1/4})), which reaches Q^{1/4}/6 where s = Q^{1/4}
    solves 6 s^2 - 74 s - 2 = 0."""
    import math

    from theory.readings import predecessor_exponents

    result = predecessor_exponents()
    assert result.holds is False
    assert sp.simplify(result.expressions["eps^2/16 after Remark (worst Z)"] - sp.sqrt(Q) / 256) == 0
    assert sp.simplify(result.expressions["derived / printed Q^{3/4}/256"] - Q ** sp.Rational(-1, 4)) == 0
    risk = sp.sqrt(Q) / (2 * (37 + Q ** sp.Rational(-1, 4)))
    assert sp.simplify(result.expressions["risk exponent after Remark (worst Z)"] - risk) == 0
    s = (74 + math.sqrt(74**2 + 48)) / 12
    assert float(result.numbers["derived risk exponent >= Q^{1/4}/6 from Q ="]) == pytest.approx(s**4, rel=1e-10)


def test_predecessor_upper_envelope():
    """Printed slope 2 d v^2 at d = 5Q, v = 1/(4 sqrt Q) is 5/8; the proof's is 10Q: the ratio is 1/(16Q)."""
    from theory.readings import predecessor_upper_envelope
    from theory.symbols import d, v

    result = predecessor_upper_envelope()
    assert result.holds is False
    assert result.expressions["printed slope (x beta^2 t/(N tau))"] == 2 * d * v**2
    assert sp.expand(result.expressions["proof's slope x 2"] - (5 * Q + 2 * d * v**2)) == 0
    assert sp.simplify(result.expressions["printed / 10Q at d = 5Q, v = 1/(4 sqrt Q)"] - 1 / (16 * Q)) == 0


def test_generalization_exponent_per_Q_is_one_over_45():
    from theory.readings import generalization_exponent_per_Q

    assert generalization_exponent_per_Q() == sp.Rational(1, 45)


# --- theory/statements.py, theory/model.py ---------------------------------------------------------------
def test_appendix_probability_is_the_printed_union_bound():
    """Lemma B.1/C.3: P = 1 - A K Q^2 e^{-eps^2/16} - B K Q^2 exp(-(c eps/v) min(1, eps/(d v)))."""
    from theory.statements import appendix_probability
    from theory.symbols import K, Q, c, d, epsilon, v

    A, B = sp.symbols("A B", positive=True)
    printed = (1 - A * K * Q**2 * sp.exp(-epsilon**2 / 16)
               - B * K * Q**2 * sp.exp(-(c * epsilon / v) * sp.Min(1, epsilon / (d * v))))
    assert sp.simplify(appendix_probability(A, B) - printed) == 0
    # both branches of the min: eps/(d v) = 1/2 and 2
    point = {K: 3, Q: 50, c: 1, d: 4, v: sp.Rational(1, 10), A: 36, B: 20}
    for eps in (sp.Rational(1, 5), sp.Rational(4, 5)):
        at = {**point, epsilon: eps}
        assert sp.simplify(appendix_probability(A, B).subs(at) - printed.subs(at)) == 0


def test_zero_one_loss_counts_a_zero_margin_as_an_error():
    """Def. 3.1: l(r) = 0 if r > 0 and 1 otherwise."""
    from theory.model import zero_one_loss

    assert [zero_one_loss(sp.Integer(x)) for x in (-2, 0, 1)] == [1, 1, 0]
    assert [zero_one_loss(sp.Rational(x, 7)) for x in (-1, 1)] == [1, 0]


# --- theory/closed_forms.py --------------------------------------------------------------------------------
def test_idealised_margin_root_is_unique():
    """r(0) = C1 - W_0(e^{C1}) has derivative 1/(1 + W_0(e^{C1})) > 0 in C1, so C1 = 1 is the only root."""
    from theory.closed_forms import derive_idealised_margin

    result = derive_idealised_margin()
    assert result.holds
    assert "mismatch" not in result.verdict
    slope = result.expressions["d/dC1 r(0)"]
    (w,) = slope.free_symbols
    assert slope.is_positive and sp.simplify(slope - 1 / (1 + w)) == 0


def test_ipo_derivation_rejects_a_wrong_initial_value_or_a_wrong_rate(monkeypatch):
    """Both conditions are checked: r = (I - 2 exp(-2 beta^2 M t/(N tau))) 1 solves the ODE but starts at -1;
    r = (I - exp(-beta^2 M t/(N tau))) 1 starts at 0 but grows at half the rate."""
    import theory.closed_forms as closed_forms
    from theory.symbols import N, t, tau

    M = sp.diag(2, 3)
    right = closed_forms.derive_ipo_margins(M)
    assert right.holds and right.expressions["M"] == M
    assert right.expressions["r(0)"] == sp.zeros(2, 1) and right.expressions["ODE residual"] == sp.zeros(2, 1)
    decay = lambda rate: (rate * beta**2 * M * t / (N * tau)).exp()
    wrong_start = sp.eye(2) * sp.ones(2, 1) - 2 * decay(-2) * sp.ones(2, 1)
    wrong_rate = (sp.eye(2) - decay(-1)) * sp.ones(2, 1)
    for candidate in (wrong_start, wrong_rate):
        monkeypatch.setattr(closed_forms, "ipo_margins", lambda _, candidate=candidate: candidate)
        assert closed_forms.derive_ipo_margins(M).holds is False


# --- theory/scaling_law.py ---------------------------------------------------------------------------------
def test_asymptotic_series_of_the_predecessor_bound_converges_to_its_Q_min():
    """For 2KQ^2 e^{-Q^{1/4}/6} the series is in s = Q^{1/4}, so Q = s^4: it must approach the exact root."""
    from fractions import Fraction

    from theory.scaling_law import PREDECESSOR_BOUND, evaluate_asymptotics, samples_per_value, samples_per_value_asymptotics

    res = samples_per_value_asymptotics(3, PREDECESSOR_BOUND)
    errors = []
    for K_value in (10**12, 10**24, 10**48):
        exact = samples_per_value(K_value, Fraction(1, 20), shape=PREDECESSOR_BOUND).root_value
        errors.append(abs(evaluate_asymptotics(res, K_value, Fraction(1, 20), PREDECESSOR_BOUND) / exact - 1))
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.005  # relative error O(log L / L)


# --- theory/training_guarantee.py ------------------------------------------------------------------------
def test_envelope_at_tau_1_ratios():
    """r_L(tau_1)/log 3 = (beta^2 tau_1/(8 K tau))/log 3 = 1/40 for Theorem 4.2 (r_L slope 1/8 of r_U's 5 ... /5),
    and 1/80 for Theorem C.5 (slope 1/16)."""
    from theory.training_guarantee import THEOREM_4_2, THEOREM_C5, envelope_at_tau_1

    assert envelope_at_tau_1(THEOREM_4_2).numbers["r_L(tau_1)/log 3"] == sp.Rational(1, 40)
    assert envelope_at_tau_1(THEOREM_C5).numbers["r_L(tau_1)/log 3"] == sp.Rational(1, 80)


def test_lemma_b2_slopes_need_an_upper_rate_increasing_in_the_interference(monkeypatch):
    """The worst case is read at the corners only because the upper rate grows with (2Z+4) eps v, l_b^2 Z and
    d v^2: with the (2Z+4) eps v term entering negatively that premise fails, and so must the derivation."""
    from theory.symbols import N, Z, epsilon, v
    from theory.training_guarantee import LEMMA_B2, s_max

    upper = LEMMA_B2.conclusions["upper_rate"]
    flipped = upper - 4 * beta**2 * Q / N * (2 * Z + 4) * epsilon * v * s_max
    monkeypatch.setitem(LEMMA_B2.conclusions, "upper_rate", flipped)
    assert envelope_slopes_from_lemma_b2(32).holds is False


def test_appendix_failure_after_the_remark():
    """eps = 1/(16 v (Z+2)), v = 1/(32 sqrt Q), d = 5Q: eps = 2 sqrt(Q)/(Z+2), eps/(d v) = 64/(5(Z+2)) (= 1 at
    Z = 54/5), eps^2/16 = Q/(4(Z+2)^2) and c eps/v = 64 c Q/(Z+2); B.3's union factors are 8Z+4."""
    from theory.symbols import c
    from theory.training_guarantee import appendix_failure_after_remark

    result = appendix_failure_after_remark(32)
    expected = (8 * Z_ + 4) * K * Q**2 * (sp.exp(-Q / (4 * (Z_ + 2) ** 2)) + sp.exp(-64 * c * Q / (Z_ + 2)))
    assert sp.simplify(result.expressions["failure"] - expected) == 0
    assert sp.simplify(result.expressions["eps/(d v)"] - sp.Rational(64, 5) / (Z_ + 2)) == 0
    assert result.expressions["Z where eps/(d v) = 1"] == sp.Rational(54, 5)


def test_appendix_vacuity_root_solves_failure_equals_one_where_both_terms_matter():
    """At c = 1/3072 (Z = 4, K = 1) the failure is 36 Q^2 (e^{-Q/144} + e^{-Q/288}): the root of failure = 1
    lies beyond that of its larger term alone (36 Q^2 e^{-Q/288} = 1), by a relative 4e-11."""
    import mpmath
    from fractions import Fraction

    from theory.training_guarantee import appendix_vacuous_until

    Q_vac = appendix_vacuous_until(1, Fraction(1, 3072), 4).numbers["Q_vac"]
    with mpmath.workdps(40):
        failure = 36 * Q_vac**2 * (mpmath.exp(-Q_vac / 144) + mpmath.exp(-Q_vac / 288))
        assert abs(failure - 1) < mpmath.mpf(10) ** -25
        larger_term_alone = mpmath.findroot(lambda q: 36 * q**2 * mpmath.exp(-q / 288) - 1, 6000)
        assert Q_vac - larger_term_alone > mpmath.mpf(10) ** -8


def test_main_text_probability_from_b3_numbers():
    """The exponents of 36 K Q^2 (e^{-Q/144} + e^{-32 c Q/3}) over the main text's Q^{3/4}/256 and c sqrt(Q)/5;
    g(Q) = log 8 + 9/4 log Q - Q^{3/4}/256 is stationary where Q^{3/4} = 768; 36 = 4 Q^{1/4} at Q = 9^4; and at
    the reported crossing (c = 1) both failure bounds are equal."""
    import mpmath

    from theory.symbols import c
    from theory.training_guarantee import main_text_probability_from_b3

    result = main_text_probability_from_b3()
    assert result.holds
    margins = set(result.expressions["exponent margins over Q^{3/4}/256 resp. c sqrt(Q)/5"])
    expected = {Q / 144 - Q ** sp.Rational(3, 4) / 256, 32 * c * Q / 3 - c * sp.sqrt(Q) / 5}
    assert len(margins) == 2 and all(any(sp.simplify(m - e) == 0 for e in expected) for m in margins)
    numbers = result.numbers
    assert numbers["Q where 36 = 4 Q^{1/4}"] == 6561
    assert sp.simplify(numbers["main-text g'(Q) = 0 at"] - sp.Integer(768) ** sp.Rational(4, 3)) == 0
    assert float(numbers["g(1) = log 8 - 1/256"]) == pytest.approx(float(sp.log(8)) - 1 / 256, rel=1e-14)
    with mpmath.workdps(30):
        q = numbers["largest Q with B.3 failure > main-text failure (c = 1)"]
        appendix = 36 * q**2 * (mpmath.exp(-q / 144) + mpmath.exp(-32 * q / 3))
        main = 8 * q ** mpmath.mpf(2.25) * mpmath.exp(-min(mpmath.sqrt(q) / 5, q ** mpmath.mpf(0.75) / 256))
        assert 70 < q < 80 and abs(appendix / main - 1) < mpmath.mpf(10) ** -20


# --- theory/generalization.py, theory/numbers.py, theory/objectives.py ------------------------------------
def test_paper_route_to_the_theorem_4_3_exponent():
    """After the Remark (v = 1/(32 sqrt Q), d = 5Q): d v^2 = 5/1024 and 2 eps v = 1/(8(Z+2)), so
    1 + l_b^2 + d v^2 + 2 eps v = 1 + l_b^2 + 5/1024 + 1/(8(Z+2)); its largest value over the admissible
    corners (l_b^2 = 1/(4Z)) is at Z = 1: 1 + 1/4 + 5/1024 + 1/24 = 3983/3072, inside the paper's 5/2."""
    from theory.generalization import refined_exponent_after_remark
    from theory.symbols import l_b

    result = refined_exponent_after_remark(32)
    expected = 1 + l_b**2 + sp.Rational(5, 1024) + 1 / (8 * (Z_ + 2))
    assert sp.simplify(result.expressions["1 + l_b^2 + d v^2 + 2 eps v"] - expected) == 0
    assert result.numbers["max of 1 + l_b^2 + d v^2 + 2 eps v"] == sp.Rational(3983, 3072)
    assert result.numbers["paper's bound on it"] == sp.Rational(5, 2)


def test_a_fraction_over_zero_names_the_parameter():
    from theory.numbers import NumberError, parse_number

    with pytest.raises(NumberError, match=r"^delta = '1/0' divides by zero$"):
        parse_number("delta", "1/0")


@pytest.mark.parametrize("loss_name", ["dpo", "ipo"])
def test_idealised_trajectory_is_found_and_solves_its_ode(loss_name):
    """Separation of variables gives r(t) in closed form for DPO and IPO; it must start at 0 and satisfy
    tau dr/dt = (2 beta^2/K) w(r) (the idealised model's rate, Lemma 4.1 with v = 0 and Z = 1)."""
    from theory.losses import PAPER_LOSSES
    from theory.objectives import idealised_trajectory
    from theory.symbols import r, t, tau

    weight = PAPER_LOSSES[loss_name].weight
    implicit, trajectory = idealised_trajectory(weight)
    assert implicit is not None and trajectory is not None
    assert sp.simplify(trajectory.subs(t, 0)) == 0
    residual = tau * sp.diff(trajectory, t) - 2 * beta**2 / K * weight.subs(r, trajectory)
    for point in ({beta: sp.Rational(1, 3), K: 2, tau: 1, t: sp.Rational(7, 5)}, {beta: 1, K: 5, tau: 2, t: 3}):
        assert abs(float(residual.subs(point))) < 1e-12


def test_derivations_name_themselves_and_state_a_verdict():
    """A derivation result is printed as 'claim: verdict' by the audit and `derive`: both must be sentences."""
    from theory.population_risk import derive_population_risk
    from theory.training_guarantee import main_text_vacuous_until

    for result in (derive_population_risk(), main_text_vacuous_until(1, 1)):
        assert isinstance(result.claim, str) and result.claim
        assert isinstance(result.verdict, str) and result.verdict
        assert str(result).startswith(f"{result.claim}: {result.verdict}")


# --- the idealised trajectory's guards (theory/objectives.py) ------------------------------------------------
def test_flipped_logs_are_kept_only_if_they_vanish_at_zero():
    """log(r - 2) - i pi flips to log(2 - r), an antiderivative of 1/(r - 2) that is real but log 2 at r = 0:
    not the trajectory's integral from 0, so the original is kept."""
    from theory.objectives import _flip_negative_logs
    from theory.symbols import r

    original = sp.log(r - 2) - sp.I * sp.pi
    assert _flip_negative_logs(original, r - 2) == original
    anchored = sp.log(r - 2) - sp.log(2) - sp.I * sp.pi  # the same, vanishing at 0: flipped
    assert _flip_negative_logs(anchored, r - 2) == sp.log(2 - r) - sp.log(2)


def test_real_branch_without_a_positive_fixed_point_goes_on_to_flip_the_logs():
    """w = r + 2 has its only root at -2, ahead of no margin: the branch is taken by flipping logs instead."""
    from theory.objectives import _real_branch
    from theory.symbols import r

    flippable = sp.log(r - 2) - sp.log(2) - sp.I * sp.pi  # an antiderivative of 1/(r - 2), but w = r + 2:
    assert _real_branch(flippable, r + 2) == flippable  # the flipped form fails the derivative check
    assert _real_branch(sp.log(r + 2) - sp.log(2), r + 2) == sp.log(r + 2) - sp.log(2)


@pytest.mark.parametrize("infinity", [sp.zoo, sp.nan, sp.oo, -sp.oo])
def test_an_integral_that_diverges_has_no_closed_form_trajectory(monkeypatch, infinity):
    """sympy marks a divergent integral of 1/w with an infinity (1/r gives oo; zoo and nan come from 0/0-like
    limits): no implicit relation and no trajectory, rather than an equation in infinities."""
    from theory import objectives
    from theory.symbols import r

    monkeypatch.setattr(objectives.sp, "integrate", lambda *args, **kwargs: sp.log(r) + infinity)
    assert objectives.idealised_trajectory(1 - r) == (None, None)


# --- functions the fast tests did not reach ------------------------------------------------------------------
def test_eq_1_is_the_mean_of_the_dpo_member_of_the_loss_family():
    from theory.losses import DPO
    from theory.model import dpo_loss
    from theory.symbols import r

    margins = [sp.Rational(1, 2), -1, 3]
    assert sp.simplify(dpo_loss(margins) - sum(DPO.f.subs(r, m) for m in margins) / 3) == 0


def test_population_risk_weights_the_2k_clusters_equally():
    from theory.population_risk import population_risk

    risks = [sp.Rational(1, 10), sp.Rational(2, 10), sp.Rational(3, 10), sp.Rational(6, 10)]  # K = 2: four clusters
    assert population_risk(risks).subs(K, 2) == sp.Rational(3, 10)
    assert population_risk([]) == 0


def _latex_rows(block: str) -> dict[str, str]:
    return dict(line.removeprefix("&").removesuffix(r"\\").split(" = ", 1) for line in block.splitlines() if line.startswith("&"))


def test_label_noise_latex_has_every_derived_row():
    """DPO with flips: E[w], the rate, the fixed point log((1-eta)/eta), its slope and its eta -> 0 limit."""
    from theory.data_variants import derive_label_noise, flip_rate as eta
    from theory.losses import DPO

    derived = derive_label_noise(DPO.weight)
    rows = _latex_rows(derived.latex())
    assert list(rows) == [r"\mathbb E[w]", r"\tau\,\dot r", "r^*_{0}", r"\frac{\partial r^*_{0}}{\partial\eta}",
                          r"\lim_{\eta\to 0^+} r^*_{0}"]
    assert rows["r^*_{0}"] == sp.latex(sp.log((1 - eta) / eta)) and rows[r"\lim_{\eta\to 0^+} r^*_{0}"] == r"\infty"


def test_pair_weights_latex_states_the_weighted_lemma_and_the_ratio():
    from theory.data_variants import derive_pair_weights, mean_weight
    from theory.losses import DPO

    rows = _latex_rows(derive_pair_weights(DPO.weight).latex())
    assert list(rows) == [r"\tau\,\dot r_j", r"\tau\,\dot r_k\ \text{(idealised)}", r"\text{rate ratio to unweighted}"]
    assert "{w}_{i}" in rows[r"\tau\,\dot r_j"] and "{c}_{i}" in rows[r"\tau\,\dot r_j"]
    assert rows[r"\text{rate ratio to unweighted}"] == sp.latex(mean_weight)


def test_kinks_of_a_max_of_three_lines_and_of_a_piecewise():
    """max(0, 1 - r, 2 - 4r): the lines cross pairwise at r = 1/3, 1/2 and 1; a Piecewise switches where its
    condition's sides meet."""
    from theory.chain import kinks
    from theory.symbols import r

    assert kinks(sp.Max(0, 1 - r, 2 - 4 * r)) == [sp.Rational(1, 3), sp.Rational(1, 2), 1]
    assert kinks(sp.Piecewise((1 - r, r < 1), (0, True))) == [1]


def test_a_loss_without_a_closed_form_trajectory_says_so():
    """SLiC's hinge has a kink: no closed-form idealised trajectory, and the report says why."""
    from theory.losses import SLIC
    from theory.objectives import derive_objective

    lines = derive_objective(SLIC).report_lines()
    assert "idealised model   no closed form found (sympy cannot integrate 1/w(r))" in lines


def test_orthogonality_signs_are_checked_on_the_whole_grid():
    """Z in {1, 2, 3}, l_b in {1/4, 1/2, 1}, delta in {1/100, 1/10, 1/5}: the worst projection
    P = 2 - delta (Z l_b + 2Z - 2) is at least 2 - (3 + 6 - 2)/5 = 3/5 > 0 on all of it, so all 27 points count."""
    from theory.tight_risk_law import derive_orthogonality_bounds

    result = derive_orthogonality_bounds()
    assert result.holds and result.numbers["grid points with the safe signs"] == 27
