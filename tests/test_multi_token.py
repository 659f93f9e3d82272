"""§4.3 Eqs. (4)–(5) and §7 (individual rewards, likelihood displacement, failure mode): symbolic and numeric.

§7's failure mode on the idealised model is checked here with the trainer; the registered claim
(`sec7-failure-mode`) checks it on samples of P (tests/test_claims.py, tests/test_claim_properties.py).
"""
import math

import pytest
import sympy as sp
import torch
from hypothesis import example, given, strategies as st

from theory import individual_rewards as ir
from theory import multi_token as mt
from theory.model import symbolic_instance
from theory.symbols import K, beta, t, tau
from verify import individual_rewards as vir
from verify import multi_token as vmt
from verify.model import PreferenceData, policy_log_odds
from verify.training import gradient_flow, tau_1

# Two prompts; prompt 0's responses share their first token (so g(0, 2, w) = g(0, 2, l)), token 2 recurs
# across prompts and positions.
SHARED = [((0, 1), (0, 2)), ((1, 2), (2, 0))]


# --- theory: Eq. (4) and the token-wise reward ----------------------------------------------------
def test_eq_4_sequence_margin_is_the_sum_of_token_rewards():
    instance = mt.multi_token_instance(3, 2, [((0, 1, 2), (0, 2, 2)), ((2, 2, 1), (1, 0, 0))])
    assert mt.eq_4_residuals(instance) == [0, 0]


def test_token_reward_keeps_its_normaliser():
    # unlike the single-token margin (§1.3), one token's reward is not linear in W - W0
    assert not mt.token_reward_is_linear(mt.multi_token_instance(3, 2, SHARED))


def test_contexts_depend_on_prompt_and_prefix_only():
    instance = mt.multi_token_instance(3, 2, SHARED)
    assert instance.context(0, 0, "w") is instance.context(0, 0, "l")  # g(x_i) starts both responses
    assert instance.context(0, 1, "w") is instance.context(0, 1, "l")  # common prefix (0,)
    assert instance.context(1, 1, "w") is not instance.context(1, 1, "l")
    assert set(instance.contexts) == {(0, ()), (0, (0,)), (1, ()), (1, (1,)), (1, (2,))}


def test_token_reward_velocity_is_beta_y_minus_softmax_times_flow():
    assert mt.token_reward_chain_rule_residuals(3, 2) == [0, 0, 0]


def test_instance_rejects_bad_input():
    with pytest.raises(ValueError, match="same length"):
        mt.multi_token_instance(3, 2, [((0, 1), (1, 0, 0))])
    with pytest.raises(ValueError, match="y_w == y_l"):
        mt.multi_token_instance(3, 2, [((0, 1), (0, 1))])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        mt.multi_token_instance(3, 2, [((0, 3), (0, 1))])
    with pytest.raises(ValueError, match="reading"):
        instance = mt.multi_token_instance(3, 2, SHARED)
        mt.eq_5_printed(instance, mt.Probe(0, instance.context(0, 0, "w")), [1, 1], "product")


# --- theory: Eq. (5) ------------------------------------------------------------------------------
def test_eq_5_holds_with_a_sum_not_the_printed_difference():
    derivation = mt.derive_eq_5(mt.multi_token_instance(3, 2, SHARED))
    assert derivation.residuals["sum"] == 0
    assert derivation.residuals["difference"] != 0
    assert abs(derivation.difference_at_point) > 1e-3  # the difference reading is not an identity
    assert derivation.gap_residual == 0  # and it is off by exactly -(2 beta^2/N) sum w eps C* S*^T y^(j)
    assert derivation.verdict.startswith("discrepancy")


def test_eq_5_for_a_token_outside_the_training_contexts():
    instance = mt.multi_token_instance(3, 2, [((0, 1, 2), (0, 1, 0)), ((1, 2, 2), (2, 0, 1))])
    probe = mt.Probe(1, sp.Matrix(sp.symbols("h_0 h_1", real=True)))
    derivation = mt.derive_eq_5(instance, probe)
    assert derivation.residuals["sum"] == 0 and derivation.gap_residual == 0
    assert derivation.residuals["difference"] != 0


# --- verify: Eq. (5) against autograd -------------------------------------------------------------
@given(
    seed=st.integers(0, 10_000),
    prompts=st.integers(3, 5),
    length=st.integers(3, 4),
    vocabulary_size=st.integers(6, 8),
    beta_value=st.sampled_from([0.01, 0.1, 0.5, 1.0]),
)
@example(seed=0, prompts=4, length=3, vocabulary_size=6, beta_value=0.5)
def test_eq_5_matches_autograd_only_with_the_sum(seed, prompts, length, vocabulary_size, beta_value):
    check = vmt.check_eq_5(seed, prompts, length, vocabulary_size, beta=beta_value)
    assert check.tolerance <= vmt.TOLERANCE_CEILING
    assert check.residual["sum"] <= check.tolerance, check.parameters
    # the printed reading misses 2 (beta^2/N) sum w eps C* S*^T y^(j): far above rounding
    assert check.residual["difference"] > 1e3 * check.tolerance, check.parameters
    assert check.eq_4_residual <= 1e-12
    assert check.verdict.startswith("discrepancy")


def test_numeric_instance_has_shared_tokens_and_contexts():
    data = vmt.random_sequence_data(0)
    assert data.contexts.shape == (4, 2, 3, 5) and data.length >= 3
    assert torch.equal(data.contexts[:, 0, 0], data.contexts[:, 1, 0])  # g(x_i) starts both responses
    assert torch.equal(data.contexts[0, 0, 1], data.contexts[0, 1, 1])  # shared first token -> shared context
    counts = torch.bincount(data.tokens.reshape(-1), minlength=6)
    assert int(counts.max()) >= 3  # some token recurs across prompts or positions


def test_numeric_rejects_bad_input():
    with pytest.raises(ValueError, match="beta"):
        vmt.check_eq_5(beta=0.0)
    with pytest.raises(ValueError, match="y_w == y_l"):
        vmt.SequencePreferenceData(torch.zeros(1, 2, 2, 3, dtype=torch.float64), torch.zeros(1, 2, 2, dtype=torch.long))


# --- §7 individual-response rewards ---------------------------------------------------------------
def test_individual_rewards_symbolic():
    verdicts = ir.individual_reward_verdicts(3, 2, [(0, 1), (1, 2), (0, 2)])
    assert verdicts["logit"] == "holds as printed"
    assert verdicts["log_ratio"].startswith("printed form misses the softmax term")
    instance = symbolic_instance(3, 2, [(0, 1), (1, 2)])
    derivation = ir.derive_individual_reward(instance, 0, "w", "log_ratio")
    assert derivation.exact_holds and not derivation.printed_holds and derivation.printed_at_point != 0


@given(seed=st.integers(0, 10_000), beta_value=st.sampled_from([0.1, 0.5, 1.0]))
def test_individual_rewards_numeric(seed, beta_value):
    check = vir.check_individual_rewards(seed, beta=beta_value)
    for key in [("logit", "printed"), ("logit", "logit"), ("log_ratio", "log_ratio")]:
        assert check.residual[key] <= check.tolerance, (key, seed)
    # the printed form is off for the log-ratio by exactly the softmax term, which is not rounding
    assert check.residual[("log_ratio", "printed")] == pytest.approx(check.softmax_term_size, rel=1e-9)
    assert check.softmax_term_size > 1e3 * check.tolerance


def test_likelihood_displacement():
    result = vir.likelihood_displacement()
    shared, control = result.shared, result.control
    # a is preferred over b and rejected against c in the same cluster: both likelihoods of (a > b) fall
    assert shared["margin_ab"] > 0
    assert shared["delta_log_pi_a"] < -0.1 and shared["delta_log_pi_b"] < -0.1
    assert shared["initial_rate_log_pi_a"] < 0 and shared["initial_rate_log_pi_b"] < 0  # predicted by the exact dynamics
    # when a is never rejected, its likelihood rises while b's falls
    assert control["delta_log_pi_a"] > 0.1 and control["delta_log_pi_b"] < -0.1
    assert control["initial_rate_log_pi_a"] > 0


# --- §7 failure mode ------------------------------------------------------------------------------
def test_failure_mode_theory():
    assert sp.simplify(ir.unflipped_odds_threshold() - 3 ** (1 / beta)) == 0
    assert sp.simplify(ir.idealised_margin_rate() - 2 * beta**2 / (K * (1 + sp.exp(ir.r)))) == 0
    # SPEC §7.4: r + e^r = 1 + 2 beta^2 t / (K tau)
    spec = K * tau * (ir.target + sp.exp(ir.target) - 1) / (2 * beta**2)
    assert sp.simplify(ir.time_to_margin() - spec) == 0
    assert ir.margin_at_time_residual() == 0
    r_tau_1 = float(ir.margin_at_time().subs(t, ir.tau_1).subs({beta: 1, tau: 1, K: 1}))
    assert r_tau_1 == pytest.approx(0.2081, abs=1e-4)  # SPEC §7.4, independent of beta, K, tau
    assert r_tau_1 < math.log(3)


def idealised_clusters(pairs: int, per_cluster: int, l_b: float, odds: list[float]):
    """Noise-free clusters g = +-c_i + l_b e_1 (SPEC §1.5), tokens (u_i, u_i') = (2i, 2i+1), no sharing; W0 chosen
    so that the reference odds pi_ref(y_l)/pi_ref(y_w) on C_{i,+}, C_{i,-} are odds[2i], odds[2i+1]."""
    d = pairs + 1
    feats, chosen, rejected = [], [], []
    W0 = torch.zeros(2 * pairs, d, dtype=torch.float64)
    for i in range(pairs):
        c = torch.zeros(d, dtype=torch.float64)
        c[i + 1] = 1.0
        b = torch.zeros(d, dtype=torch.float64)
        b[0] = l_b
        a_plus, a_minus = math.log(odds[2 * i]), math.log(odds[2 * i + 1])
        # (W0[u'] - W0[u]) . (c + b) = a_plus and (W0[u] - W0[u']) . (-c + b) = a_minus
        W0[2 * i + 1] = (a_plus + a_minus) / 2 * c + (a_plus - a_minus) / (2 * l_b) * b / l_b
        for sign, (w, l) in ((1, (2 * i, 2 * i + 1)), (-1, (2 * i + 1, 2 * i))):
            feats += [sign * c + b] * per_cluster
            chosen += [w] * per_cluster
            rejected += [l] * per_cluster
    return PreferenceData(torch.stack(feats), torch.tensor(chosen), torch.tensor(rejected)), W0


def closed_form(expr: sp.Expr, *symbols):
    compiled = sp.lambdify(symbols, expr, modules="mpmath")  # mpmath evaluates LambertW
    return lambda *args: float(compiled(*args))


@pytest.mark.parametrize("beta_value, pairs", [(0.5, 2), (0.01, 1)], ids=["beta=0.5,K=2", "beta=0.01 (paper),K=1"])
def test_failure_mode_numeric(beta_value, pairs):
    """The idealised model trained by the trainer: the reference odds are exact, the rankings above the threshold
    do not flip by tau_1, each ranking flips at the theory's time, and the margins follow the closed form r(t)."""
    per_cluster = 2
    threshold = float(ir.unflipped_odds_threshold().subs(beta, beta_value))
    assert threshold == pytest.approx(3 ** (1 / beta_value), rel=1e-12)
    odds = [f * threshold for f in (1.5, 5.0, 0.5, 0.15)[: 2 * pairs]]
    assert all(o > 1 for o in odds)  # every reference favours y_l
    data, W0 = idealised_clusters(pairs, per_cluster, 0.25, odds)
    clusters = [k * per_cluster for k in range(2 * pairs)]  # first sample of each cluster
    log_odds = lambda W: policy_log_odds(W, data.features, data.chosen, data.rejected)[clusters]
    assert (-log_odds(W0)).tolist() == pytest.approx([math.log(o) for o in odds], rel=1e-12)

    subs = {beta: beta_value, tau: 1.0, K: pairs}
    horizon = tau_1(pairs, beta_value, 1.0)
    r_of_t = closed_form(ir.margin_at_time().subs(subs), t)
    flip_times = [closed_form(ir.time_to_flip().subs(subs), ir.odds)(o) for o in odds]
    checkpoints = sorted({horizon, *(f * s for f in flip_times for s in (0.99, 1.0, 1.01))})
    result = gradient_flow(data, beta_value, 1.0, [0.0, *checkpoints], W0=W0)
    margins = result.train_margins[0]
    # dopri5 at rtol 1e-10 against the closed form, at every checkpoint and for every sample
    error = max(float((margins[k] - r_of_t(time)).abs().max()) for k, time in enumerate(result.times.tolist()))
    assert error < 1e-8

    def wins_at(time):  # pi(y_w) > pi(y_l), from the full softmax of W(time)
        return (log_odds(gradient_flow(data, beta_value, 1.0, [0.0, time], W0=W0).weights()[0]) > 0).tolist()

    at_tau_1 = margins[result.at(horizon)][clusters].tolist()
    for rho, wins, margin in zip(odds, wins_at(horizon), at_tau_1):
        assert margin <= math.log(3)  # Theorem 4.2's cap
        if rho > threshold:
            assert not wins  # the §7 failure mode
        # in the idealised model, exactly the pairs with beta log rho < r(tau_1) have flipped
        assert wins == (beta_value * math.log(rho) < r_of_t(horizon))
    for k, (rho, flip) in enumerate(zip(odds, flip_times)):
        assert float(margins[result.at(flip), clusters[k]]) == pytest.approx(beta_value * math.log(rho), abs=1e-8)
        assert not wins_at(0.99 * flip)[k] and wins_at(1.01 * flip)[k]


def test_eq_5_spot_check_point_is_seeded():
    """The same instance and seed give the same witness value, so a report can be reproduced."""
    instance = mt.multi_token_instance(3, 2, SHARED)
    assert mt.derive_eq_5(instance).difference_at_point == mt.derive_eq_5(instance).difference_at_point
