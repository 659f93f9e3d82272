"""Losses of the two rewards separately, f(r_w, r_l), and their §7 individual-reward dynamics.

r_s = beta log pi(y_s | x)/pi_ref(y_s | x) is the reward of one response (the log-ratio reward of §7); a margin
loss is the special case f(r_w - r_l). The five pair types of TRL 1.16.0 (`DPOTrainer._compute_loss`:
nca_pair, bco_pair, sppo_hard, apo_zero, apo_down) are translated by `trl_pair_loss`, rewritten from TRL's
unscaled log-ratios h_s = r_s / beta, and checked against TRL's own code in tests/test_trl_parity.py.

Weights. With L = (1/N) sum_i f(r_{w,i}, r_{l,i}) the gradient flow pushes y_w up with the chosen weight
omega_w = -df/dr_w and y_l down with the rejected weight omega_l = +df/dr_l; for f(r_w - r_l) both equal -f'(r).
Both are derived from f with sympy, never typed.

Dynamics. tau dW/dt = -grad_W L with r_s through the full log-softmax gives, for response y_{s,j},

    tau dr_{s,j}/dt = (beta^2/N) sum_i Sigma_ij (y_{s,j} - S_j)^T [omega_{w,i} (y_{w,i} - S_i) - omega_{l,i} (y_{l,i} - S_i)]

(S_i = S(W g(x_i))); the logit reward beta y_{s,j}^T (W - W0) g(x_j) drops the leading -S_j. The S_i terms
cancel only when omega_w = omega_l, i.e. for margin losses: a pair loss moves the log-normaliser of every
prompt it trains on. `PAIR_SHARING_FACTOR` holds the bracket as scalars; `derive_pair_reward` checks it
against sympy's chain rule, and `pair_reward_dynamics` specialises it to one pair (exact) and to the paper's
idealised cluster model (§7's printed reading, softmax terms dropped), with the likelihood-displacement
condition of each.
"""
from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import sympy as sp

from theory.concentration import LEMMA_B1
from theory.errors import UserInputError
from theory.individual_rewards import FACTOR_SYMBOLS, SIDES, log_ratio_reward, logit_reward
from theory.losses import (
    MARGIN_LOSS_TYPES, PAIR_LOSS_TYPES, SYMPY_GAVE_UP, NoUsableDerivative, PreferenceLoss, check_loss_type, derived_weight,
    logsigmoid, sigmoid, trl_loss, trl_parameters,
)
from theory.model import SymbolicInstance, softmax_policy
from theory.symbols import K, N, Q, beta, r, r_l, r_w


def _weight(name: str, f: sp.Expr, symbol: sp.Symbol, sign: int) -> sp.Expr:
    try:
        return derived_weight(f, symbol, sign)
    except NoUsableDerivative as error:
        raise UserInputError(f"loss {name!r}: f(r_w, r_l) = {f} has no usable derivative in {symbol} (got {error})") from None


@dataclass(frozen=True)
class PairLoss:
    """A per-sample loss f(r_w, r_l) of the two responses' rewards, and the weights that drive its dynamics."""

    name: str
    f: sp.Expr

    @cached_property
    def chosen_weight(self) -> sp.Expr:
        """omega_w = -df/dr_w: how hard the flow pushes the preferred response up."""
        return _weight(self.name, self.f, r_w, -1)

    @cached_property
    def rejected_weight(self) -> sp.Expr:
        """omega_l = +df/dr_l: how hard the flow pushes the rejected response down."""
        return _weight(self.name, self.f, r_l, +1)

    @classmethod
    def from_margin(cls, loss: PreferenceLoss) -> "PairLoss":
        """f(r_w - r_l) for a margin loss f(r)."""
        return cls(loss.name, loss.f.subs(r, r_w - r_l))

    def latex(self) -> str:
        return (rf"f(r_w, r_l) = {sp.latex(self.f)},\qquad \omega_w = -\partial_{{r_w}} f = {sp.latex(self.chosen_weight)},"
                rf"\qquad \omega_l = \partial_{{r_l}} f = {sp.latex(self.rejected_weight)}")


def trl_pair_loss(loss_type: str, beta_value, label_smoothing=0, discopop_tau=None) -> PairLoss:
    """TRL 1.16's per-sample loss for a pair type as f(r_w, r_l), r_s = beta h_s.

    beta is taken exactly as in `theory.losses.trl_loss` (which translates the margin types). No pair type
    reads label_smoothing or discopop_tau, so setting either is a one-line UserInputError.
    """
    if loss_type in MARGIN_LOSS_TYPES:
        raise UserInputError(f"TRL loss type {loss_type!r} is a function of the margin alone; pair types: "
                             f"{', '.join(PAIR_LOSS_TYPES)} (a margin loss is `PairLoss.from_margin`)")
    b, _, _ = trl_parameters(loss_type, beta_value, label_smoothing, discopop_tau)
    h_w, h_l = r_w / b, r_l / b
    if loss_type == "nca_pair":
        f = -logsigmoid(b * h_w) - logsigmoid(-b * h_w) / 2 - logsigmoid(-b * h_l) / 2
    elif loss_type == "bco_pair":
        f = -logsigmoid(b * h_w) - logsigmoid(-b * h_l)
    elif loss_type == "sppo_hard":  # the hard-label SPPO: P = 1 for the winner, 0 for the loser
        f = (h_w - 1 / (2 * b)) ** 2 + (h_l + 1 / (2 * b)) ** 2
    elif loss_type == "apo_zero":
        f = (1 - sigmoid(b * h_w)) + sigmoid(b * h_l)
    else:  # apo_down
        f = sigmoid(b * h_w) + (1 - sigmoid(b * (h_w - h_l)))
    return PairLoss(f"trl-{loss_type}", f)


def trl_any_loss(loss_type: str, beta_value, label_smoothing=0, discopop_tau=None) -> PreferenceLoss | PairLoss:
    """`theory.losses.trl_loss` for a margin type, `trl_pair_loss` for a pair type; anything else is the
    one-line UserInputError of `theory.losses.check_loss_type`."""
    check_loss_type(loss_type)
    if loss_type in PAIR_LOSS_TYPES:
        return trl_pair_loss(loss_type, beta_value, label_smoothing, discopop_tau)
    return trl_loss(loss_type, beta_value, label_smoothing, discopop_tau)


# --- the general sum form -----------------------------------------------------------------------------
shares_chosen, shares_rejected, prob_chosen, prob_rejected = FACTOR_SYMBOLS  # a_w, a_l, s_w, s_l
prob_own_under_i = sp.Symbol("p", real=True)  # S(W g(x_i))^T y_{s,j}: sample i's policy at the response followed
policy_overlap = sp.Symbol("q", real=True)  # S(W g(x_j))^T S(W g(x_i))
chosen_weight_symbol = sp.Symbol("omega_w", real=True)  # omega_{w,i}
rejected_weight_symbol = sp.Symbol("omega_l", real=True)  # omega_{l,i}
PAIR_FACTOR_SYMBOLS = (*FACTOR_SYMBOLS, prob_own_under_i, policy_overlap)

# The bracket of one (i, j) term of tau dr_{s,j}/dt, times beta^2 Sigma_ij / N.
PAIR_SHARING_FACTOR = {
    # §7's printed form with its weight split in two: every softmax term dropped
    "printed": chosen_weight_symbol * shares_chosen - rejected_weight_symbol * shares_rejected,
    # exact for the logit reward: y_{s,j}^T [omega_w (y_w,i - S_i) - omega_l (y_l,i - S_i)]
    "logit": chosen_weight_symbol * (shares_chosen - prob_own_under_i)
             - rejected_weight_symbol * (shares_rejected - prob_own_under_i),
    # exact for the log-ratio reward: (y_{s,j} - S_j)^T [omega_w (y_w,i - S_i) - omega_l (y_l,i - S_i)]
    "log_ratio": chosen_weight_symbol * (shares_chosen - prob_own_under_i - prob_chosen + policy_overlap)
                 - rejected_weight_symbol * (shares_rejected - prob_own_under_i - prob_rejected + policy_overlap),
}
PAIR_REWARDS = {"logit": logit_reward, "log_ratio": log_ratio_reward}


def general_rate_latex(reading: str = "log_ratio") -> str:
    """tau dr_{s,j}/dt as a sum over the training set, for one reading of `PAIR_SHARING_FACTOR`."""
    return (rf"\tau\,\dot r_{{s,j}} = \frac{{\beta^2}}{{N}} \sum_i \Sigma_{{ij}}\,\Big[{sp.latex(PAIR_SHARING_FACTOR[reading])}\Big],"
            r"\quad a_c = y_{s,j}^\top y_{c,i},\ s_c = S_j^\top y_{c,i}\ (c = w, l),\ p = S_i^\top y_{s,j},\ q = S_j^\top S_i")


def pair_reward_rate(instance: SymbolicInstance, j: int, side: str, chosen_weights: Sequence[sp.Expr],
                     rejected_weights: Sequence[sp.Expr], reading: str) -> sp.Expr:
    """tau dr_{s,j}/dt = (beta^2/N) sum_i Sigma_ij [PAIR_SHARING_FACTOR[reading]] on a symbolic instance."""
    if reading not in PAIR_SHARING_FACTOR:
        raise ValueError(f"reading must be one of {sorted(PAIR_SHARING_FACTOR)}, got {reading!r}")
    y = instance.pairs[j][SIDES.index(side)]
    S_j = softmax_policy(instance.W, instance.features[j])
    total = sp.Integer(0)
    for i, (yw, yl) in enumerate(instance.pairs):
        S_i = softmax_policy(instance.W, instance.features[i])
        factors = {shares_chosen: int(y == yw), shares_rejected: int(y == yl), prob_chosen: S_j[yw],
                   prob_rejected: S_j[yl], prob_own_under_i: S_i[y], policy_overlap: (S_j.T * S_i)[0, 0],
                   chosen_weight_symbol: chosen_weights[i], rejected_weight_symbol: rejected_weights[i]}
        total += PAIR_SHARING_FACTOR[reading].xreplace(factors) * instance.gram(i, j)
    return beta**2 * total / len(instance.pairs)


def rational_residual(expr: sp.Expr) -> sp.Expr:
    """`expr` with every exp(.) a free positive symbol, cancelled as a rational function; 0 proves the identity.

    (`theory.multi_token.rational_residual` also turns each normaliser into its own symbol, which loses
    sum_k S_k = 1; a pair loss's S_i terms need that relation.)
    """
    # sympy merges exp(x) * exp(x) into exp(2x): one symbol E stands for exp(x), and exp(kx) becomes E**k.
    expr = sp.expand(expr, power_exp=True, mul=False, multinomial=False)
    symbols, replacements = {}, {}
    for atom in sorted(expr.atoms(sp.exp), key=sp.default_sort_key):
        coefficient, rest = atom.args[0].as_coeff_Mul()
        if not coefficient.is_Integer:
            coefficient, rest = sp.Integer(1), atom.args[0]
        symbol = symbols.setdefault(rest, sp.Symbol(f"E_{len(symbols)}", positive=True))
        replacements[atom] = symbol**coefficient
    as_symbols = expr.xreplace(replacements)
    return sp.cancel(sp.together(as_symbols))


class _GenericPairLoss(sp.Function):
    """f(r_w, r_l) left undefined: one derivation covers every pair loss."""

    nargs = 2

    def fdiff(self, argindex=1):
        return (_partial_chosen if argindex == 1 else _partial_rejected)(*self.args)


_partial_chosen = sp.Function("f_w")  # df/dr_w = -omega_w
_partial_rejected = sp.Function("f_l")  # df/dr_l = +omega_l


@dataclass(frozen=True)
class PairRewardDerivation:
    """The chain rule's tau dr_{s,j}/dt for a generic pair loss, and its residual against each reading."""

    reward: str
    derived: sp.Expr
    residuals: dict[str, sp.Expr]  # reading -> rational residual; 0 proves the reading exact
    printed_at_point: sp.Float  # derived - printed at a random rational point; nonzero shows the gap is real

    @property
    def exact_holds(self) -> bool:
        return self.residuals[self.reward] == 0


def derive_pair_reward(instance: SymbolicInstance, j: int, side: str, reward: str, seed: int = 3) -> PairRewardDerivation:
    """Push tau dW/dt = -grad_W L, L = (1/N) sum_i f(r_{w,i}, r_{l,i}) with log-ratio rewards (as TRL computes
    them) and f undefined, through the `reward` of y_{s,j}; compare with every reading of the sum form."""
    if reward not in PAIR_REWARDS:
        raise ValueError(f"reward must be one of {sorted(PAIR_REWARDS)}, got {reward!r}")
    if side not in SIDES or not 0 <= j < len(instance.pairs):
        raise ValueError(f"need side in {SIDES} and 0 <= j < {len(instance.pairs)}, got {side!r}, {j}")
    n = len(instance.pairs)
    rewards = [(log_ratio_reward(instance, i, "w"), log_ratio_reward(instance, i, "l")) for i in range(n)]
    loss = sum(_GenericPairLoss(rw, rl) for rw, rl in rewards) / n
    value = PAIR_REWARDS[reward](instance, j, side)
    derived = sum(-sp.diff(value, w) * sp.diff(loss, w) for w in instance.weight_symbols)
    chosen = list(sp.symbols(f"omega_w_0:{n}", real=True))
    rejected = list(sp.symbols(f"omega_l_0:{n}", real=True))
    derived = derived.xreplace({_partial_chosen(*rewards[i]): -chosen[i] for i in range(n)})
    derived = derived.xreplace({_partial_rejected(*rewards[i]): rejected[i] for i in range(n)})
    readings = {reading: pair_reward_rate(instance, j, side, chosen, rejected, reading) for reading in PAIR_SHARING_FACTOR}
    residuals = {reading: rational_residual(derived - rate) for reading, rate in readings.items()}
    gap = derived - readings["printed"]
    rng = random.Random(seed)
    point = {s: sp.Rational(rng.choice([-9, -5, -3, -2, 1, 2, 4, 6, 8]), 7)
             for s in sorted(gap.free_symbols, key=sp.default_sort_key)}
    point[beta] = sp.Integer(1)
    return PairRewardDerivation(reward, derived, residuals, sp.N(gap.xreplace(point), 30))


# --- one pair, exactly; the idealised cluster model, in the printed reading ----------------------------
gram_self = sp.Symbol("Sigma", positive=True)  # Sigma_jj = ||g(x_j)||^2
prob_at_chosen = sp.Symbol("S_w", positive=True)  # S(W g(x))^T y_w
prob_at_rejected = sp.Symbol("S_l", positive=True)  # S(W g(x))^T y_l
policy_square = sp.Symbol("S_2", positive=True)  # ||S(W g(x))||^2
# The geometry of one pair: A_s = ||y_s - S||^2 >= 0 and B = (y_w - S)^T (y_l - S), the softmax (squeezing) term.
distance_chosen = sp.Symbol("A_w", nonnegative=True)
distance_rejected = sp.Symbol("A_l", nonnegative=True)
squeeze = sp.Symbol("B", real=True)
PAIR_GEOMETRY = {
    distance_chosen: 1 - 2 * prob_at_chosen + policy_square,
    distance_rejected: 1 - 2 * prob_at_rejected + policy_square,
    squeeze: policy_square - prob_at_chosen - prob_at_rejected,
}


def _single_pair_factors(side: str) -> dict[sp.Symbol, sp.Expr]:
    """The scalars of the sum form for N = 1: S_i = S_j = S, y_{s,j} is the pair's own y_s."""
    own = prob_at_chosen if side == "w" else prob_at_rejected
    return {shares_chosen: int(side == "w"), shares_rejected: int(side == "l"), prob_chosen: prob_at_chosen,
            prob_rejected: prob_at_rejected, prob_own_under_i: own, policy_overlap: policy_square}


def single_pair_rate(side: str, reading: str = "log_ratio") -> sp.Expr:
    """tau dr_s/dt for one training pair (N = 1), in omega_w, omega_l, beta, Sigma and the policy S at x."""
    factor = PAIR_SHARING_FACTOR[reading].xreplace(_single_pair_factors(side))
    return sp.expand(beta**2 * gram_self * factor)


def single_pair_rate_in_geometry(side: str) -> sp.Expr:
    """The exact single-pair rate written with A_w, A_l and B: beta^2 Sigma (omega_w A_w - omega_l B) for y_w,
    beta^2 Sigma (omega_w B - omega_l A_l) for y_l. `single_pair_geometry_residual` checks it is the same rate."""
    distance = distance_chosen if side == "w" else distance_rejected
    pushed, other = (chosen_weight_symbol, rejected_weight_symbol) if side == "w" else (rejected_weight_symbol, chosen_weight_symbol)
    sign = 1 if side == "w" else -1
    return sign * beta**2 * gram_self * (pushed * distance - other * squeeze)


def single_pair_geometry_residual(side: str) -> sp.Expr:
    return sp.expand(single_pair_rate_in_geometry(side).xreplace(PAIR_GEOMETRY) - single_pair_rate(side))


def chosen_distance_minus_squeeze() -> sp.Expr:
    """A_w - B = (y_w - S)^T (y_w - y_l) = 1 - S_w + S_l > 0: with omega_w = omega_l (a margin loss) one pair
    never lowers log pi(y_w) while the weight is positive, and with omega_w >= 0 it needs omega_l > omega_w."""
    return sp.expand((distance_chosen - squeeze).xreplace(PAIR_GEOMETRY))


# The paper's idealised model (noise-free clusters, disjoint tokens, SPEC §1.5): a sample of C_{k,+} sees Q
# samples of its own cluster (same pair, Gram 1 + l_b^2) and Q of C_{k,-} (swapped pair, Gram l_b^2 - 1);
# other pairs share no token with it. By the symmetry of the two clusters every sample of value k has the same
# (r_w, r_l), hence the same weights.
def _cluster_neighbours(side: str) -> list[tuple[dict, sp.Expr]]:
    gram = LEMMA_B1.conclusions
    own_pair = {shares_chosen: int(side == "w"), shares_rejected: int(side == "l")}
    swapped_pair = {shares_chosen: int(side == "l"), shares_rejected: int(side == "w")}
    return [(own_pair, gram["same_cluster_dot"]), (swapped_pair, gram["opposite_cluster_dot"])]


def cluster_rate(side: str) -> sp.Expr:
    """tau dr_s/dt in the idealised cluster model, §7's printed reading: (beta^2/N) Q sum over both clusters."""
    total = sum(PAIR_SHARING_FACTOR["printed"].xreplace(shares) * gram for shares, gram in _cluster_neighbours(side))
    rate = sp.expand((beta**2 * Q * total / N).subs(N, 2 * K * Q))
    return sp.collect(rate, [chosen_weight_symbol, rejected_weight_symbol], sp.factor)


# --- likelihood displacement ---------------------------------------------------------------------------
# Exact rational points at which a weight is evaluated, looking for a witness of its sign.
_PROBE_VALUES = tuple(sp.Rational(k, 2) for k in (-8, -4, -2, -1, 0, 1, 2, 4, 8))


def _sign_facts(weight: sp.Expr) -> tuple[bool | None, dict | None]:
    """(can the weight be negative, a witness point): True with a point where sympy evaluates it < 0;
    False when sympy proves it >= 0 for all real (r_w, r_l); None when neither is found."""
    for a, b in itertools.product(_PROBE_VALUES, repeat=2):
        point = {r_w: a, r_l: b}
        value = weight.xreplace(point)
        if value.is_number and sp.N(value, 30) < 0:
            return True, point
    if weight.is_nonnegative:
        return False, None
    try:
        if sp.simplify(weight).is_nonnegative:
            return False, None
    except SYMPY_GAVE_UP:
        pass
    return None, None


def _zeros(weight: sp.Expr) -> list[sp.Expr] | None:
    """The r_w at which the weight vanishes (possibly in terms of r_l); None when sympy finds no closed form."""
    if weight.has(sp.Heaviside, sp.Max, sp.Min, sp.Abs, sp.sign, sp.Piecewise):
        return None
    try:
        return [sp.simplify(z) for z in sp.solve(weight, r_w) if z.is_real is not False]
    except SYMPY_GAVE_UP:
        return None


@dataclass(frozen=True)
class PairRewardDynamics:
    """§7's individual-reward dynamics of one pair loss, and when the chosen log-probability can fall.

    single_pair: exact tau dr_s/dt for one training pair (log-ratio rewards, softmax kept), in the geometry
    A_w = ||y_w - S||^2, A_l = ||y_l - S||^2, B = (y_w - S)^T (y_l - S). r_w falls iff omega_w A_w < omega_l B.
    clusters: tau dr_s/dt in the paper's idealised cluster model in §7's printed reading (softmax terms
    dropped); r_w falls iff omega_w (1 + l_b^2) < omega_l (l_b^2 - 1).
    """

    loss: PairLoss
    single_pair: dict[str, sp.Expr]  # side -> rate, weights substituted
    clusters: dict[str, sp.Expr]
    chosen_weight_can_be_negative: bool | None
    chosen_weight_witness: dict | None  # a point (r_w, r_l) with omega_w < 0
    chosen_weight_zeros: list[sp.Expr] | None  # r_w where omega_w = 0
    rejected_weight_can_be_negative: bool | None
    chosen_weight_at_start: sp.Expr  # omega_w at r_w = r_l = 0
    rejected_weight_at_start: sp.Expr

    @property
    def displacement_single_pair(self) -> sp.Rel:
        """The condition on the data under which tau dr_w/dt < 0 for one pair."""
        return sp.Lt(chosen_weight_symbol * distance_chosen, rejected_weight_symbol * squeeze)

    @property
    def displacement_clusters(self) -> sp.Rel:
        return sp.Lt(chosen_weight_symbol * LEMMA_B1.conclusions["same_cluster_dot"],
                     -rejected_weight_symbol * LEMMA_B1.conclusions["opposite_cluster_dot"])

    def displacement(self) -> str:
        """Whether, and under what condition on the data, log pi(y_w) can fall: in words."""
        one_pair = "one pair: r_w falls iff omega_w A_w < omega_l B"
        squeezing = ("B > 0, i.e. ||S||^2 > S_w + S_l (the policy's mass on responses other than y_w and y_l), "
                     "and omega_l/omega_w > A_w/B > 1")
        clusters = "clusters (printed reading): r_w falls iff omega_w (1 + l_b^2) < omega_l (l_b^2 - 1)"
        if self.chosen_weight_can_be_negative:
            zeros = (f"; omega_w = 0 at r_w = {', '.join(map(str, self.chosen_weight_zeros))}"
                     if self.chosen_weight_zeros else "")
            return (f"yes, by the loss itself: omega_w < 0 at {_point_text(self.chosen_weight_witness)}{zeros}; "
                    f"{one_pair}, so there unless omega_l B > omega_w A_w, and where omega_w >= 0 when {squeezing}; "
                    f"{clusters}")
        if self.chosen_weight_can_be_negative is False:
            return (f"only through the data: omega_w >= 0 everywhere; {one_pair}, which needs {squeezing}; "
                    f"{clusters}, which needs l_b > 1 and omega_l > omega_w")
        return (f"not decided: sympy neither proved omega_w >= 0 nor found a point with omega_w < 0; "
                f"{one_pair}; {clusters}")

    def latex(self) -> str:
        single = {s: sp.latex(single_pair_rate_in_geometry(s)) for s in SIDES}
        cluster = {s: sp.latex(cluster_rate(s)) for s in SIDES}
        return "\n".join([
            self.loss.latex(),
            general_rate_latex("log_ratio"),
            rf"\text{{one pair: }}\tau\dot r_w = {single['w']},\quad \tau\dot r_l = {single['l']}",
            rf"\text{{clusters (printed reading): }}\tau\dot r_w = {cluster['w']},\quad \tau\dot r_l = {cluster['l']}",
            rf"\text{{$\log\pi(y_w)$ falls (one pair) iff }} {sp.latex(self.displacement_single_pair)}",
        ])

    def report_lines(self) -> list[str]:
        return [
            f"loss              {self.loss.name}: f(r_w, r_l) = {self.loss.f}",
            f"weights           omega_w = -df/dr_w = {self.loss.chosen_weight}; omega_l = df/dr_l = {self.loss.rejected_weight}",
            f"at the start      omega_w(0, 0) = {self.chosen_weight_at_start}, omega_l(0, 0) = {self.rejected_weight_at_start}",
            f"general           tau dr_s,j/dt = (beta^2/N) sum_i Sigma_ij [{PAIR_SHARING_FACTOR['log_ratio']}]",
            f"one pair          tau dr_w/dt = {single_pair_rate_in_geometry('w')}; tau dr_l/dt = {single_pair_rate_in_geometry('l')}",
            f"clusters          tau dr_w/dt = {self.clusters['w']}; tau dr_l/dt = {self.clusters['l']}",
            f"displacement      {self.displacement()}",
        ]


def _point_text(point: dict) -> str:
    return ", ".join(f"{s} = {v}" for s, v in point.items())


def pair_reward_dynamics(loss: PairLoss) -> PairRewardDynamics:
    """Specialise the verified sum form to `loss`: its weights in the single-pair and cluster rates, and the
    sign facts of omega_w and omega_l that decide likelihood displacement."""
    weights = {chosen_weight_symbol: loss.chosen_weight, rejected_weight_symbol: loss.rejected_weight}
    single = {s: single_pair_rate_in_geometry(s).xreplace(weights) for s in SIDES}
    clusters = {s: cluster_rate(s).xreplace(weights) for s in SIDES}
    chosen_negative, witness = _sign_facts(loss.chosen_weight)
    rejected_negative, _ = _sign_facts(loss.rejected_weight)
    start = {r_w: 0, r_l: 0}
    return PairRewardDynamics(
        loss, single, clusters, chosen_negative, witness, _zeros(loss.chosen_weight) if chosen_negative else None,
        rejected_negative, sp.simplify(loss.chosen_weight.xreplace(start)), sp.simplify(loss.rejected_weight.xreplace(start)),
    )
