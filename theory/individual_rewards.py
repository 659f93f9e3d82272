"""§7: rewards of individual responses, and the training length a ranking needs to flip.

Individual-response rewards. §7 prints, for the preferred (or rejected) response of sample j,

    tau dr_{s,j}/dt = (1/N) sum_i beta^2 w_i y_{s,j}^T (y_{w,i} - y_{l,i}) Sigma_ij,    w_i = sigma(-r_i).

That is exact for the logit reward r_{s,j} := beta y_{s,j}^T (W - W0) g(x_j). For the log-probability ratio
rho_{s,j} := beta log pi(y_{s,j} | x_j) / pi_ref(y_{s,j} | x_j) the chain rule adds the softmax term
-(1/N) sum_i beta^2 w_i S(W g(x_j))^T (y_{w,i} - y_{l,i}) Sigma_ij (the log-normaliser moves too).

Failure mode. Theorem 4.2 caps every margin at r <= log 3 by tau_1 = K tau log 3 / (5 beta^2). Since
log pi(y_w)/pi(y_l) = r/beta - log rho with rho = pi_ref(y_l)/pi_ref(y_w), a pair with rho > 3^(1/beta)
is still ranked the wrong way at tau_1. How long a given rho takes is read off the idealised model
(noise-free clusters, no shared tokens), where each margin obeys tau dr/dt = (2 beta^2 / K) sigma(-r).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

import sympy as sp

from theory import failure_mode
from theory.closed_forms import idealised_margin, idealised_rate
from theory.lemma_4_1 import loss_gradient, weights_as_symbols
from theory.losses import DPO
from theory.model import SymbolicInstance, log_softmax, one_hot, softmax_policy, symbolic_instance
from theory.multi_token import rational_residual
from theory.symbols import beta, r, t, tau
from theory.training_guarantee import THEOREM_4_2

SIDES = ("w", "l")

# Scalar factors of one (i, j) term, so that the numeric check evaluates the same expression.
shares_chosen = sp.Symbol("a_w", real=True)  # y_{s,j}^T y_{w,i}
shares_rejected = sp.Symbol("a_l", real=True)  # y_{s,j}^T y_{l,i}
prob_chosen = sp.Symbol("s_w", real=True)  # S(W g(x_j))^T y_{w,i}
prob_rejected = sp.Symbol("s_l", real=True)  # S(W g(x_j))^T y_{l,i}
FACTOR_SYMBOLS = (shares_chosen, shares_rejected, prob_chosen, prob_rejected)

SHARING_FACTOR = {
    "printed": shares_chosen - shares_rejected,  # §7, as printed
    "logit": shares_chosen - shares_rejected,  # exact for the logit reward
    "log_ratio": (shares_chosen - shares_rejected) - (prob_chosen - prob_rejected),  # exact for the log-ratio
}


def logit_reward(instance: SymbolicInstance, j: int, side: str, beta=beta) -> sp.Expr:
    """r_{s,j} = beta y_{s,j}^T (W - W0) g(x_j)."""
    y = instance.pairs[j][SIDES.index(side)]
    return beta * (one_hot(y, instance.vocabulary_size).T * (instance.W - instance.W0) * instance.features[j])[0, 0]


def log_ratio_reward(instance: SymbolicInstance, j: int, side: str, beta=beta) -> sp.Expr:
    """rho_{s,j} = beta log pi(y_{s,j} | x_j) / pi_ref(y_{s,j} | x_j), through the full log-softmax."""
    y = instance.pairs[j][SIDES.index(side)]
    g = instance.features[j]
    return beta * (log_softmax(instance.W * g) - log_softmax(instance.W0 * g))[y]


REWARDS = {"logit": logit_reward, "log_ratio": log_ratio_reward}


def individual_reward_dynamics(instance: SymbolicInstance, j: int, side: str, weights: Sequence[sp.Expr], form: str) -> sp.Expr:
    """tau dr_{s,j}/dt = (beta^2/N) sum_i w_i [sharing factor of `form`] Sigma_ij."""
    if form not in SHARING_FACTOR:
        raise ValueError(f"form must be one of {sorted(SHARING_FACTOR)}, got {form!r}")
    y = instance.pairs[j][SIDES.index(side)]
    S = softmax_policy(instance.W, instance.features[j])
    total = sp.Integer(0)
    for i, (yw, yl) in enumerate(instance.pairs):
        factors = {shares_chosen: int(y == yw), shares_rejected: int(y == yl), prob_chosen: S[yw], prob_rejected: S[yl]}
        total += weights[i] * SHARING_FACTOR[form].subs(factors) * instance.gram(i, j)
    return beta**2 * total / len(instance.pairs)


@dataclass(frozen=True)
class IndividualRewardDerivation:
    """Chain-rule dynamics of one response's reward, and residuals against the printed and exact forms."""

    reward: str
    derived: sp.Expr
    residual_printed: sp.Expr  # derived - §7 as printed
    residual_exact: sp.Expr  # derived - the exact form for this reward
    printed_at_point: sp.Float  # derived - printed at a random rational point; nonzero shows the gap is real

    @property
    def printed_holds(self) -> bool:
        return self.residual_printed == 0 and self.printed_at_point == 0

    @property
    def exact_holds(self) -> bool:
        return self.residual_exact == 0


def derive_individual_reward(instance: SymbolicInstance, j: int, side: str, reward: str, seed: int = 3) -> IndividualRewardDerivation:
    """Push tau dW/dt = -grad_W L (f undefined: every GPO loss) through the reward of y_{s,j}."""
    if reward not in REWARDS:
        raise ValueError(f"reward must be one of {sorted(REWARDS)}, got {reward!r}")
    if side not in SIDES or not 0 <= j < len(instance.pairs):
        raise ValueError(f"need side in {SIDES} and 0 <= j < {len(instance.pairs)}, got {side!r}, {j}")
    margins = instance.margins()
    flow = -loss_gradient(instance)  # tau dW/dt
    value = REWARDS[reward](instance, j, side)
    derived = sum(sp.diff(value, w) * flow[k] for k, w in enumerate(instance.weight_symbols))
    weights = list(sp.symbols(f"w_0:{len(margins)}", real=True))
    derived = weights_as_symbols(derived, margins, weights)
    printed = individual_reward_dynamics(instance, j, side, weights, "printed")
    exact = individual_reward_dynamics(instance, j, side, weights, reward)
    gap = derived - printed
    rng = random.Random(seed)
    free = sorted(gap.free_symbols, key=sp.default_sort_key)
    point = {s: sp.Rational(rng.choice([-9, -5, -3, -2, 1, 2, 4, 6, 8]), 7) for s in free}  # no zeros
    point[beta] = sp.Integer(1)
    return IndividualRewardDerivation(
        reward, derived, rational_residual(gap), rational_residual(derived - exact), sp.N(gap.xreplace(point), 30)
    )


def individual_reward_verdicts(vocabulary_size: int, dimension: int, pairs: Sequence[tuple[int, int]]) -> dict[str, str]:
    """For every response of a symbolic instance: does §7's printed form hold for each reward reading?"""
    instance = symbolic_instance(vocabulary_size, dimension, pairs)
    out = {}
    for reward in REWARDS:
        results = [derive_individual_reward(instance, j, side, reward) for j in range(len(pairs)) for side in SIDES]
        if not all(res.exact_holds for res in results):
            out[reward] = "the exact form does not match the chain rule"
        elif all(res.printed_holds for res in results):
            out[reward] = "holds as printed"
        else:
            out[reward] = "printed form misses the softmax term -(beta^2/N) sum_i w_i S_j^T (y_w,i - y_l,i) Sigma_ij"
    return out


# --- failure mode: which rankings flip, and when --------------------------------------------------
odds = failure_mode.rho  # pi_ref(y_l | x) / pi_ref(y_w | x)
target = sp.Symbol("r_star", real=True)  # a margin to be reached

# Theorem 4.2 as stated (SPEC §2.2): horizon and upper envelope.
tau_1 = THEOREM_4_2.conclusions["tau_1"]
r_upper = THEOREM_4_2.conclusions["r_U"]


def policy_log_odds(margin: sp.Expr = r) -> sp.Expr:
    """log pi(y_w)/pi(y_l) = r/beta + log pi_ref(y_w)/pi_ref(y_l) (Eq. 2 rearranged), from `theory.failure_mode`."""
    return failure_mode.policy_log_odds().subs(r, margin)


def flip_margin() -> sp.Expr:
    """The margin at which pi(y_w) = pi(y_l): r* = beta log rho."""
    (solution,) = sp.solve(sp.Eq(policy_log_odds(r), 0), r)
    return solution


def unflipped_odds_threshold(margin_cap: sp.Expr | None = None) -> sp.Expr:
    """Odds above which r <= margin_cap leaves the ranking wrong; 3^(1/beta) with the cap r_U(tau_1) = log 3."""
    cap = r_upper.subs(t, tau_1) if margin_cap is None else margin_cap
    (threshold,) = sp.solve(sp.Eq(flip_margin(), cap), odds)
    return sp.powsimp(sp.expand_log(threshold, force=True), force=True)


def idealised_margin_rate() -> sp.Expr:
    """tau dr/dt in the idealised model: `theory.closed_forms.idealised_rate` (Lemma 4.1 summed over the
    clusters) times the DPO weight sigma(-r) of `theory.losses`."""
    return idealised_rate() * DPO.weight


def time_to_margin(margin: sp.Expr = target) -> sp.Expr:
    """Separate variables in tau dr/dt = rate(r): t(r*) = tau int_0^r* dr / rate(r)."""
    s = sp.Symbol("s", real=True)
    integrand = (tau / idealised_margin_rate()).subs(r, s)
    return sp.simplify(sp.integrate(sp.expand(integrand), (s, 0, margin)))


def margin_at_time() -> sp.Expr:
    """The inverse of `time_to_margin`: r(t) = u - W_0(e^u), `theory.closed_forms.idealised_margin`."""
    return idealised_margin()


def margin_at_time_residual() -> sp.Expr:
    """t(r(t)) - t, simplified; 0 shows that `margin_at_time` inverts `time_to_margin`.

    sympy does not apply e^(-W(z)) = W(z)/z (the defining identity W e^W = z) on its own; it is applied here.
    """
    expr = sp.expand(time_to_margin(margin_at_time()) - t, power_exp=True)
    expr = expr.replace(
        lambda e: isinstance(e, sp.exp) and isinstance(-e.args[0], sp.LambertW),
        lambda e: (-e.args[0]) / (-e.args[0]).args[0],
    )
    return sp.simplify(expr)


def time_to_flip() -> sp.Expr:
    """Training time for a pair with odds rho to flip in the idealised model: t(beta log rho)."""
    return sp.simplify(time_to_margin(flip_margin()))
