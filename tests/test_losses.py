"""Losses: user expressions (a syntax-tree whitelist stands between the string and sympy), TRL 1.16's loss
types with their label_smoothing semantics, and the pair losses f(r_w, r_l) with their §7 dynamics."""
import random

import mpmath
import pytest
import sympy as sp
from hypothesis import given, strategies as st

from theory import individual_rewards as ir
from theory import pair_losses as pl
from theory.closed_forms import idealised_rate
from theory.errors import UserInputError
from theory.losses import (
    DPO, LABEL_SMOOTHING_DOMAINS, LOSS_TYPES, MARGIN_LOSS_TYPES, PAIR_LOSS_TYPES, TRL_VERSION, UNMODELLED_LOSS_TYPES,
    PreferenceLoss, parse_loss_expression, sigmoid, trl_loss,
)
from theory.model import symbolic_instance
from theory.symbols import beta, r, r_l, r_w


@pytest.mark.parametrize("text, weight", [
    ("(r-1)**2", 2 - 2 * r),
    ("log(1+exp(-r))", 1 / (sp.exp(r) + 1)),
    ("Max(0, 1-r)", sp.Heaviside(1 - r, 0)),
    ("-logsigmoid(r)", DPO.weight),
])
def test_user_losses_get_their_derived_weight(text, weight):
    assert sp.simplify(parse_loss_expression(text).weight - weight) == 0


@pytest.mark.parametrize("text, message", [
    ("__import__('os').system('true')", "unsupported syntax"),
    ("__import__('os')", "unknown function"),
    ("r.__class__", "unsupported syntax"),
    ("(lambda: 1)()", "unsupported syntax"),
    ("open('x')", "unknown function"),
    ("exp(r, base=2)", "unsupported syntax"),
    ("r +", "does not parse"),
    ("'r'", "unsupported syntax"),
    ("3", "does not depend on r"),
    ("x**2", "unknown name"),
])
def test_expressions_outside_the_whitelist_are_refused(text, message):
    with pytest.raises(ValueError, match=message):
        parse_loss_expression(text)


@given(st.text(max_size=30))
def test_no_string_escapes_the_whitelist(text):
    try:
        loss = parse_loss_expression(text)
    except ValueError:
        return
    assert loss.f.free_symbols <= {r}


# --- TRL's loss types: the semantics of TRL 1.16 (tests/test_trl_parity.py runs TRL's own code) --------------
# Earlier versions of this module followed TRL <= 0.28: 'sigmoid' read label_smoothing as cDPO's epsilon, and
# 'exo_pair' replaced label_smoothing = 0 by 1e-3. TRL 1.16 ignores the first and raises on the second.
IGNORING_SMOOTHING = [t for t in LOSS_TYPES if t not in LABEL_SMOOTHING_DOMAINS]


def test_the_version_followed_is_stated():
    import theory.losses

    assert TRL_VERSION == "1.16.0" and "TRL 1.16.0" in theory.losses.__doc__
    assert "TRL 1.16.0" in pl.__doc__


@pytest.mark.parametrize("loss_type", IGNORING_SMOOTHING)
def test_a_label_smoothing_without_effect_is_a_one_line_error(loss_type):
    assert pl.trl_any_loss(loss_type, "0.1", 0) is not None  # 0 is what TRL's default means: accepted
    with pytest.raises(UserInputError) as error:
        pl.trl_any_loss(loss_type, "0.1", "0.1")
    message = str(error.value)
    assert "\n" not in message and "label_smoothing = 0.1" in message and repr(loss_type) in message
    assert "robust, cdpo, exo_pair" in message  # the types that do use it


def test_sigmoid_ignores_label_smoothing_and_cdpo_is_its_own_type():
    eps = sp.Rational(1, 10)
    cdpo = trl_loss("cdpo", "0.1", "0.1")
    assert sp.simplify(cdpo.f - (-(1 - eps) * sp.log(sigmoid(r)) - eps * sp.log(sigmoid(-r)))) == 0
    assert sp.solve(cdpo.weight, r) == [sp.log(9)]  # Mitchell's fixed point log((1 - eps)/eps)
    assert trl_loss("cdpo", "0.1", 0).f == trl_loss("sigmoid", "0.1").f == trl_loss("sigmoid_norm", "0.1").f
    with pytest.raises(UserInputError, match="TRL <= 0.28's smoothed sigmoid is the loss type 'cdpo'"):
        trl_loss("sigmoid", "0.1", "0.1")


def test_exo_pair_needs_a_positive_label_smoothing():
    with pytest.raises(UserInputError, match=r"label_smoothing must be in \(0, 1\) for 'exo_pair'.*got 0$"):
        trl_loss("exo_pair", "0.1", 0)  # formerly replaced by 1e-3 in silence
    with pytest.raises(UserInputError, match=r"\(0, 1\)"):
        trl_loss("exo_pair", "0.1", 1)
    exo = trl_loss("exo_pair", "0.1", "0.001")
    assert sp.solve(exo.weight, r) == [sp.log(999)]  # the EXO target p_w = 1 - eps: r = log((1 - eps)/eps)


@pytest.mark.parametrize("loss_type", ["robust", "cdpo"])
def test_robust_and_cdpo_need_label_smoothing_below_one_half(loss_type):
    with pytest.raises(UserInputError, match=r"\[0, 1/2\)"):
        trl_loss(loss_type, "0.1", "0.5")
    assert trl_loss("robust", "0.1", 0).f == trl_loss("sigmoid", "0.1").f


def test_discopop_is_a_margin_loss_with_dpoconfig_default_tau():
    loss = trl_loss("discopop", "0.1")
    assert isinstance(loss, PreferenceLoss) and loss.f.free_symbols == {r}
    modulation = sigmoid(20 * r)  # tau = 0.05 = 1/20
    assert sp.simplify(loss.f - (-sp.log(sigmoid(r)) * (1 - modulation) + sp.exp(-r) * modulation)) == 0
    assert trl_loss("discopop", "0.1", discopop_tau="0.05").f == loss.f
    assert trl_loss("discopop", "0.1", discopop_tau="0.5").f != loss.f
    with pytest.raises(UserInputError, match="discopop_tau must be > 0"):
        trl_loss("discopop", "0.1", discopop_tau=0)
    with pytest.raises(UserInputError, match="discopop_tau = 0.05 has no effect on the 'sigmoid' loss"):
        trl_loss("sigmoid", "0.1", discopop_tau="0.05")


@pytest.mark.parametrize("loss_type", sorted(UNMODELLED_LOSS_TYPES))
def test_types_outside_the_model_are_named_with_the_reason(loss_type):
    with pytest.raises(UserInputError) as error:
        trl_loss(loss_type, "0.1")
    assert "\n" not in str(error.value) and UNMODELLED_LOSS_TYPES[loss_type] in str(error.value)


def test_unknown_types_and_the_accepted_tuples():
    with pytest.raises(UserInputError, match="unknown loss type 'kto'; margin types: sigmoid"):
        trl_loss("kto", "0.1")
    assert set(MARGIN_LOSS_TYPES) | set(PAIR_LOSS_TYPES) == set(LOSS_TYPES) and len(LOSS_TYPES) == 13
    for loss_type in MARGIN_LOSS_TYPES:
        assert isinstance(trl_loss(loss_type, "0.5", "0.1" if loss_type in LABEL_SMOOTHING_DOMAINS else 0), PreferenceLoss)
        assert isinstance(pl.trl_any_loss(loss_type, "0.5", "0.1" if loss_type in LABEL_SMOOTHING_DOMAINS else 0), PreferenceLoss)
    for loss_type in PAIR_LOSS_TYPES:
        assert isinstance(pl.trl_pair_loss(loss_type, "0.5"), pl.PairLoss)
        assert pl.trl_any_loss(loss_type, "0.5") == pl.trl_pair_loss(loss_type, "0.5")
        with pytest.raises(UserInputError, match="not of the margin alone"):
            trl_loss(loss_type, "0.5")
    with pytest.raises(UserInputError, match="function of the margin alone"):
        pl.trl_pair_loss("sigmoid", "0.5")
    with pytest.raises(UserInputError, match="outside the model"):
        pl.trl_any_loss("sft", "0.5")


# --- pair losses: weights ---------------------------------------------------------------------------------
def test_a_margin_loss_as_a_pair_loss_has_equal_weights():
    pair = pl.PairLoss.from_margin(DPO)
    margin_weight = DPO.weight.subs(r, r_w - r_l)
    assert sp.simplify(pair.chosen_weight - margin_weight) == 0
    assert sp.simplify(pair.rejected_weight - margin_weight) == 0


PAIR_WEIGHTS = {  # -df/dr_w and df/dr_l of TRL's formulas, worked by hand, at beta = 1/2
    "nca_pair": (sigmoid(-r_w) - sigmoid(r_w) / 2, sigmoid(r_l) / 2),
    "bco_pair": (sigmoid(-r_w), sigmoid(r_l)),
    "sppo_hard": (8 * (sp.Rational(1, 2) - r_w), 8 * (r_l + sp.Rational(1, 2))),  # 2 (1/2 - r_w)/beta^2
    "apo_zero": (sigmoid(r_w) * sigmoid(-r_w), sigmoid(r_l) * sigmoid(-r_l)),
    "apo_down": (sigmoid(r_w - r_l) * sigmoid(r_l - r_w) - sigmoid(r_w) * sigmoid(-r_w),
                 sigmoid(r_w - r_l) * sigmoid(r_l - r_w)),
}


@pytest.mark.parametrize("loss_type", PAIR_LOSS_TYPES)
def test_pair_weights_are_derived(loss_type):
    loss = pl.trl_pair_loss(loss_type, "0.5")
    chosen, rejected = PAIR_WEIGHTS[loss_type]
    for derived, expected in ((loss.chosen_weight, chosen), (loss.rejected_weight, rejected)):
        assert sp.simplify((derived - expected).rewrite(sp.exp)) == 0


# --- pair losses: §7 dynamics -------------------------------------------------------------------------------
@pytest.mark.parametrize("j, side", [(0, "w"), (1, "l")])
def test_pair_dynamics_sum_form_is_the_chain_rule(j, side):
    instance = symbolic_instance(3, 1, [(0, 1), (1, 2)])  # token 1 is chosen in one pair and rejected in the other
    for reward in ("logit", "log_ratio"):
        derivation = pl.derive_pair_reward(instance, j, side, reward)
        assert derivation.exact_holds
        assert derivation.residuals["printed"] != 0 and derivation.printed_at_point != 0
        other = "log_ratio" if reward == "logit" else "logit"
        assert derivation.residuals[other] != 0


@pytest.mark.parametrize("reading", ["printed", "logit", "log_ratio"])
def test_with_equal_weights_the_pair_form_is_section_7s(reading):
    w = sp.Symbol("w", real=True)
    equal = {pl.chosen_weight_symbol: w, pl.rejected_weight_symbol: w}
    assert sp.expand(pl.PAIR_SHARING_FACTOR[reading].xreplace(equal) - w * ir.SHARING_FACTOR[reading]) == 0


def test_single_pair_geometry():
    assert pl.single_pair_geometry_residual("w") == 0 and pl.single_pair_geometry_residual("l") == 0
    assert pl.chosen_distance_minus_squeeze() == 1 - pl.prob_at_chosen + pl.prob_at_rejected


def test_cluster_model_margin_rate_is_the_papers():
    """r_w - r_l in the cluster model, for a margin loss (both weights w), is Lemma 4.1's idealised rate."""
    w = sp.Symbol("w", real=True)
    equal = {pl.chosen_weight_symbol: w, pl.rejected_weight_symbol: w}
    margin_rate = (pl.cluster_rate("w") - pl.cluster_rate("l")).xreplace(equal)
    assert sp.simplify(margin_rate - idealised_rate() * w) == 0


DISPLACEMENT = {  # can omega_w < 0, and where it vanishes
    "nca_pair": (True, [sp.log(2)]), "sppo_hard": (True, [sp.Rational(1, 2)]), "apo_down": (True, [r_l / 2]),
    "bco_pair": (False, None), "apo_zero": (False, None),
}


@pytest.mark.parametrize("loss_type", PAIR_LOSS_TYPES)
def test_likelihood_displacement_facts(loss_type):
    dynamics = pl.pair_reward_dynamics(pl.trl_pair_loss(loss_type, "0.5"))
    negative, zeros = DISPLACEMENT[loss_type]
    assert dynamics.chosen_weight_can_be_negative is negative and dynamics.chosen_weight_zeros == zeros
    if negative:
        assert dynamics.loss.chosen_weight.xreplace(dynamics.chosen_weight_witness) < 0
        assert dynamics.displacement().startswith("yes, by the loss itself")
    else:
        assert dynamics.displacement().startswith("only through the data")
    rate = dynamics.single_pair["w"]
    assert rate.has(pl.squeeze) and rate.has(pl.distance_chosen) and not rate.has(pl.chosen_weight_symbol)
    assert "\\tau\\dot r_w" in dynamics.latex() and len(dynamics.report_lines()) == 7


# Numeric check at 50 digits: the rate of each response's reward along tau dW/dt = -grad_W L, both gradients by
# central differences of the actual loss and reward, against the sum form with the derived weights. With step
# 1e-20 the truncation error is (1e-20)^2 times third derivatives of order one and the rounding 1e-50/1e-20, so
# 1e-25 bounds the difference with five orders to spare; the softmax terms the printed reading drops are
# ten orders larger.
FD_STEP, FD_TOLERANCE = mpmath.mpf("1e-20"), mpmath.mpf("1e-25")


def _log_softmax(logits):
    top = max(logits)
    normaliser = top + mpmath.log(sum(mpmath.exp(z - top) for z in logits))
    return [z - normaliser for z in logits]


def _numeric_instance(seed, pairs, vocabulary=4, dimension=2):
    rng = random.Random(seed)
    draw = lambda: mpmath.mpf(rng.uniform(-1.5, 1.5))
    W0 = [[draw() for _ in range(dimension)] for _ in range(vocabulary)]
    W = [[W0[a][b] + draw() for b in range(dimension)] for a in range(vocabulary)]
    features = [[draw() for _ in range(dimension)] for _ in pairs]
    return W, W0, features


def _rewards(W, W0, g, pair, beta_value):
    logits = [sum(row[m] * g[m] for m in range(len(g))) for row in W]
    reference = [sum(row[m] * g[m] for m in range(len(g))) for row in W0]
    now, before = _log_softmax(logits), _log_softmax(reference)
    return [beta_value * (now[y] - before[y]) for y in pair]


def _gradient(function, W):
    grad = []
    for a in range(len(W)):
        for b in range(len(W[0])):
            plus = [row[:] for row in W]
            minus = [row[:] for row in W]
            plus[a][b] += FD_STEP
            minus[a][b] -= FD_STEP
            grad.append((function(plus) - function(minus)) / (2 * FD_STEP))
    return grad


def _formula_rate(loss, W, features, pairs, beta_value, W0, j, side, reading):
    chosen_weight = sp.lambdify((r_w, r_l), loss.chosen_weight, "mpmath")
    rejected_weight = sp.lambdify((r_w, r_l), loss.rejected_weight, "mpmath")
    factor = sp.lambdify((*pl.PAIR_FACTOR_SYMBOLS, pl.chosen_weight_symbol, pl.rejected_weight_symbol),
                         pl.PAIR_SHARING_FACTOR[reading], "mpmath")
    softmax = lambda g: [mpmath.exp(z) for z in _log_softmax([sum(row[m] * g[m] for m in range(len(g))) for row in W])]
    y = pairs[j][ir.SIDES.index(side)]
    S_j = softmax(features[j])
    total = 0
    for i, (yw, yl) in enumerate(pairs):
        S_i = softmax(features[i])
        rw, rl = _rewards(W, W0, features[i], (yw, yl), beta_value)
        gram = sum(a * b for a, b in zip(features[i], features[j]))
        total += gram * factor(int(y == yw), int(y == yl), S_j[yw], S_j[yl], S_i[y], sum(a * b for a, b in zip(S_j, S_i)),
                               chosen_weight(rw, rl), rejected_weight(rw, rl))
    return beta_value**2 * total / len(pairs)


@pytest.mark.parametrize("loss_type", PAIR_LOSS_TYPES)
def test_pair_dynamics_match_finite_differences_of_the_loss(loss_type):
    pairs = [(0, 1), (1, 2), (3, 0)]
    beta_value = mpmath.mpf(1) / 2
    loss = pl.trl_pair_loss(loss_type, "0.5")
    f = sp.lambdify((r_w, r_l), loss.f, "mpmath")
    with mpmath.workdps(50):
        W, W0, features = _numeric_instance(sum(map(ord, loss_type)), pairs)
        total_loss = lambda V: sum(f(*_rewards(V, W0, g, p, beta_value)) for g, p in zip(features, pairs)) / len(pairs)
        loss_gradient = _gradient(total_loss, W)
        for j, side in [(0, "w"), (1, "l"), (2, "w")]:
            reward = lambda V: _rewards(V, W0, features[j], pairs[j], beta_value)[ir.SIDES.index(side)]
            rate = -sum(a * b for a, b in zip(_gradient(reward, W), loss_gradient))  # tau dr/dt, tau = 1
            exact = _formula_rate(loss, W, features, pairs, beta_value, W0, j, side, "log_ratio")
            printed = _formula_rate(loss, W, features, pairs, beta_value, W0, j, side, "printed")
            assert abs(rate - exact) <= FD_TOLERANCE, (j, side, rate, exact)
            assert abs(rate - printed) > 1e10 * FD_TOLERANCE  # the softmax terms are real, not rounding


def test_bco_pair_lowers_the_chosen_likelihood_of_one_pair_with_positive_weights():
    """The squeezing case: the reference puts almost no mass on y_w and y_l, the policy's mass sits on a third
    response, so B > 0 and omega_l / omega_w > A_w / B: log pi(y_w) falls although omega_w > 0."""
    loss = pl.trl_pair_loss("bco_pair", 1)
    f = sp.lambdify((r_w, r_l), loss.f, "mpmath")
    with mpmath.workdps(50):
        W0 = [[mpmath.mpf(-10)], [mpmath.mpf(-10)], [mpmath.mpf(0)]]
        W = [[mpmath.mpf(-2)], [mpmath.mpf(3)], [mpmath.mpf(6)]]
        g, pair = [mpmath.mpf(1)], (0, 1)
        loss_gradient = _gradient(lambda V: f(*_rewards(V, W0, g, pair, 1)), W)
        chosen_gradient = _gradient(lambda V: _rewards(V, W0, g, pair, 1)[0], W)
        rate = -sum(a * b for a, b in zip(chosen_gradient, loss_gradient))
        dynamics = pl.pair_reward_dynamics(loss)
        probabilities = [mpmath.exp(z) for z in _log_softmax([row[0] for row in W])]
        rw, rl = _rewards(W, W0, g, pair, 1)
        point = {pl.prob_at_chosen: probabilities[0], pl.prob_at_rejected: probabilities[1],
                 pl.policy_square: sum(p**2 for p in probabilities), pl.gram_self: 1, beta: 1, r_w: rw, r_l: rl}
        predicted = dynamics.single_pair["w"].xreplace(pl.PAIR_GEOMETRY).xreplace(point)
        assert sp.N(loss.chosen_weight.xreplace({r_w: rw, r_l: rl})) > 0
        assert rate < 0 and abs(rate - mpmath.mpf(str(sp.N(predicted, 40)))) <= FD_TOLERANCE
