"""§4.3 (App. B of v1–v3, App. D of v5): the multi-token last-layer model, Eqs. (4) and (5), derived.

The model is an autoregressive softmax over a trained unembedding W on frozen context embeddings:

    pi(y | x_i) = prod_j S(W g(i, j, s))^T y^(j),    g(i, j, s) = g(x_i, y_s^(1), ..., y_s^(j-1)).

A context embedding is a function of (prompt, prefix) only, so the two responses of a pair share
g(i, 1, w) = g(i, 1, l) = g(x_i), and any common prefix beyond it.

Token-wise reward (printed):  r(y^(j)) = beta (log S(W g) - log S(W0 g))^T y^(j).
Eq. (4):  r(x_i, y_w, y_l) = sum_j r(y_w^(j)) - sum_j r(y_l^(j)).
Eq. (5), for a token y (one-hot) with context embedding g*, S* = S(W g*), S_ijs = S(W g(i, j, s)):

    tau dr(y)/dt = (beta^2/N) sum_i w_i sum_j sum_{s in w,l} eps_s C*(i,j,s) [y^T y_s^(j) - p(i,j,s) + d_p(i,j,s)]

with w_i = sigma(-r_i) (any GPO weight -f'(r_i)), eps_w = +1, eps_l = -1, C* = g(i,j,s)^T g*,
d_p = S*^T S_ijs, and the probability factor p printed as the DIFFERENCE S_ijs^T y - S*^T y_s^(j).
The chain rule (tau dW/dt = -grad_W L, then dr(y)/dt = beta (y - S*)^T dW/dt g*) gives the SUM
S_ijs^T y + S*^T y_s^(j) instead; `derive_eq_5` computes both residuals.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Sequence

import sympy as sp

from theory.lemma_4_1 import weights_as_symbols
from theory.model import log_softmax, one_hot, softmax_policy
from theory.symbols import beta

generic_loss = sp.Function("f")
SIDES = ("w", "l")
SIDE_SIGN = {"w": 1, "l": -1}  # eps_s of Eq. (5)

# The four scalar factors of one (i, j, s) term of Eq. (5); the bracket is written in these, once, so
# that the symbolic verdict and the numeric check (`verify.multi_token`) use the same expression.
co_occurrence = sp.Symbol("o", real=True)  # y^T y_s^(j)
prob_y_in_context = sp.Symbol("q", real=True)  # S(W g(i,j,s))^T y
prob_token_in_probe = sp.Symbol("q_star", real=True)  # S(W g*)^T y_s^(j)
output_correlation = sp.Symbol("d_p", real=True)  # S(W g*)^T S(W g(i,j,s))
BRACKET_SYMBOLS = (co_occurrence, prob_y_in_context, prob_token_in_probe, output_correlation)

PROBABILITY_FACTOR = {
    "difference": prob_y_in_context - prob_token_in_probe,  # as printed
    "sum": prob_y_in_context + prob_token_in_probe,  # as the chain rule gives
}
EQ5_BRACKET = {
    reading: co_occurrence - p + output_correlation for reading, p in PROBABILITY_FACTOR.items()
}


# --- the model ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MultiTokenInstance:
    """Symbolic W, W0 (V x d); one symbolic context embedding per distinct (prompt, prefix)."""

    W: sp.Matrix
    W0: sp.Matrix
    responses: list[tuple[tuple[int, ...], tuple[int, ...]]]  # (y_w, y_l) token sequences per prompt
    contexts: dict[tuple[int, tuple[int, ...]], sp.Matrix]

    @property
    def vocabulary_size(self) -> int:
        return self.W.shape[0]

    @property
    def length(self) -> int:
        return len(self.responses[0][0])

    @property
    def weight_symbols(self) -> list[sp.Symbol]:
        return list(self.W)

    def sequence(self, i: int, side: str) -> tuple[int, ...]:
        return self.responses[i][SIDES.index(side)]

    def token(self, i: int, j: int, side: str) -> int:
        """y_s^(j) as a token index (j counts from 0 here, from 1 in the paper)."""
        return self.sequence(i, side)[j]

    def context(self, i: int, j: int, side: str) -> sp.Matrix:
        """g(i, j, s) = g(x_i, y_s^(<j)), shared by every response with the same prefix."""
        return self.contexts[(i, self.sequence(i, side)[:j])]

    def token_reward(self, i: int, j: int, side: str) -> sp.Expr:
        return token_reward(self.W, self.W0, self.context(i, j, side), self.token(i, j, side))

    def sequence_log_ratio(self, i: int, side: str) -> sp.Expr:
        """beta log pi(y_s | x_i) / pi_ref(y_s | x_i), with pi the product of the per-token softmaxes."""
        pi = sp.Mul(*(softmax_policy(self.W, self.context(i, j, side))[self.token(i, j, side)] for j in range(self.length)))
        pi_ref = sp.Mul(*(softmax_policy(self.W0, self.context(i, j, side))[self.token(i, j, side)] for j in range(self.length)))
        return beta * sp.log(pi / pi_ref)

    def margins(self) -> list[sp.Expr]:
        """Eq. (2) on whole sequences: r_i = beta log pi(y_w)/pi_ref(y_w) - beta log pi(y_l)/pi_ref(y_l)."""
        return [self.sequence_log_ratio(i, "w") - self.sequence_log_ratio(i, "l") for i in range(len(self.responses))]


def token_reward(W: sp.Matrix, W0: sp.Matrix, g: sp.Matrix, y: int, beta=beta) -> sp.Expr:
    """r(y) = beta (log S(W g) - log S(W0 g))^T y: the token-wise reward of §4.3."""
    return beta * (log_softmax(W * g) - log_softmax(W0 * g))[y]


def multi_token_instance(
    vocabulary_size: int, dimension: int, responses: Sequence[tuple[Sequence[int], Sequence[int]]]
) -> MultiTokenInstance:
    """Build W, W0 and the context embeddings of every (prompt, prefix) the responses visit."""
    if vocabulary_size < 2 or dimension < 1:
        raise ValueError(f"need vocabulary_size >= 2 and dimension >= 1, got {vocabulary_size} and {dimension}")
    if not responses:
        raise ValueError("need at least one prompt with a (y_w, y_l) pair")
    seqs = [(tuple(w), tuple(l)) for w, l in responses]
    length = len(seqs[0][0])
    for i, (w, l) in enumerate(seqs):
        if length < 1 or len(w) != length or len(l) != length:
            raise ValueError(f"prompt {i}: responses must all have the same length L >= 1, got {len(w)} and {len(l)}")
        if w == l:
            raise ValueError(f"prompt {i}: y_w == y_l == {w}; a preference needs two different responses")
        if not all(0 <= y < vocabulary_size for y in w + l):
            raise ValueError(f"prompt {i}: a token of {w} or {l} is outside the vocabulary of size {vocabulary_size}")
    W = sp.Matrix(vocabulary_size, dimension, lambda a, b: sp.Symbol(f"W_{a}_{b}", real=True))
    W0 = sp.Matrix(vocabulary_size, dimension, lambda a, b: sp.Symbol(f"W0_{a}_{b}", real=True))
    contexts = {}
    for i, pair in enumerate(seqs):
        for seq in pair:
            for j in range(length):
                key = (i, seq[:j])
                if key not in contexts:
                    name = f"g_{i}_x" + "".join(map(str, seq[:j]))  # g_<prompt>_x<prefix tokens>
                    contexts[key] = sp.Matrix(dimension, 1, lambda m, _: sp.Symbol(f"{name}_{m}", real=True))
    return MultiTokenInstance(W, W0, seqs, contexts)


# --- Eq. (4) --------------------------------------------------------------------------------------
def eq_4_residuals(instance: MultiTokenInstance) -> list[sp.Expr]:
    """Sequence margin minus the sum of token-wise rewards (Eq. 4), simplified; each is 0."""
    out = []
    for i, margin in enumerate(instance.margins()):
        decomposed = sum(instance.token_reward(i, j, "w") - instance.token_reward(i, j, "l") for j in range(instance.length))
        out.append(_simplify_log_identity(margin - decomposed))
    return out


def token_reward_is_linear(instance: MultiTokenInstance) -> bool:
    """Whether r(y^(j)) reduces to beta y^T (W - W0) g like the single-token margin (§1.3). It does not:
    a token reward keeps the log-normalisers, which cancel only in a margin sharing one context."""
    i, j, side = 0, 0, "w"
    g, y = instance.context(i, j, side), instance.token(i, j, side)
    linear = beta * (one_hot(y, instance.vocabulary_size).T * (instance.W - instance.W0) * g)[0, 0]
    return _simplify_log_identity(instance.token_reward(i, j, side) - linear) == 0


def _simplify_log_identity(expr: sp.Expr) -> sp.Expr:
    # log(exp(z)) -> z and log of products -> sums; what is left must cancel term by term.
    expr = sp.expand(sp.expand_log(expr, force=True))
    return sp.Integer(0) if expr == 0 else sp.simplify(expr)


# --- Eq. (5) --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Probe:
    """The token y (index) whose reward Eq. (5) differentiates, and its context embedding g*."""

    token: int
    context: sp.Matrix


def eq_5_printed(instance: MultiTokenInstance, probe: Probe, weights: Sequence[sp.Expr], reading: str) -> sp.Expr:
    """Right-hand side of Eq. (5), tau dr(y)/dt, with the probability factor read as `reading`."""
    if reading not in EQ5_BRACKET:
        raise ValueError(f"reading must be one of {sorted(EQ5_BRACKET)}, got {reading!r}")
    S_star = softmax_policy(instance.W, probe.context)
    total = sp.Integer(0)
    for i in range(len(instance.responses)):
        for j in range(instance.length):
            for side in SIDES:
                g, token = instance.context(i, j, side), instance.token(i, j, side)
                S = softmax_policy(instance.W, g)
                factors = {
                    co_occurrence: int(probe.token == token),
                    prob_y_in_context: S[probe.token],
                    prob_token_in_probe: S_star[token],
                    output_correlation: (S_star.T * S)[0, 0],
                }
                C_star = (g.T * probe.context)[0, 0]
                total += weights[i] * SIDE_SIGN[side] * C_star * EQ5_BRACKET[reading].subs(factors)
    return beta**2 * total / len(instance.responses)


@dataclass(frozen=True)
class Eq5Derivation:
    """Derived and printed tau dr(y)/dt for one probe, and the residuals of both readings of p.

    `difference_gap` is what the chain rule says the difference reading is off by:
    -(2 beta^2/N) sum_i w_i sum_j sum_s eps_s C*(i,j,s) S*^T y_s^(j); `gap_residual` is 0 when it is exactly that.
    """

    derived: sp.Expr
    printed: dict[str, sp.Expr]
    residuals: dict[str, sp.Expr]
    difference_gap: sp.Expr
    gap_residual: sp.Expr
    difference_at_point: sp.Float
    verdict: str = field(default="")


def _softmax_parts_as_symbols(expr: sp.Expr) -> sp.Expr:
    # Each normaliser sum_k exp(z_k) becomes a free symbol Z_c and each exp(z_k) a free symbol E_k. An
    # identity in these free symbols is an identity in W (the converse need not hold).
    sums = sorted(
        (a for a in expr.atoms(sp.Add) if a.args and all(isinstance(x, sp.exp) for x in a.args)), key=sp.default_sort_key
    )
    expr = expr.xreplace({a: sp.Symbol(f"Z_{k}", positive=True) for k, a in enumerate(sums)})
    atoms = sorted(expr.atoms(sp.exp), key=sp.default_sort_key)
    return expr.xreplace({a: sp.Symbol(f"E_{k}", positive=True) for k, a in enumerate(atoms)})


def rational_residual(expr: sp.Expr) -> sp.Expr:
    """Expand `expr` with softmax numerators and normalisers as free symbols; 0 proves the identity."""
    expanded = sp.expand(_softmax_parts_as_symbols(expr))
    return sp.Integer(0) if expanded == 0 else sp.factor_terms(expanded)


def derive_eq_5(instance: MultiTokenInstance, probe: Probe | None = None, seed: int = 7) -> Eq5Derivation:
    """Push tau dW/dt = -grad_W L through r(y) by sympy's chain rule and compare with Eq. (5).

    Without a probe, y is the last token of prompt 0's preferred response in its own context.
    `difference_at_point` evaluates derived - printed(difference) at a random rational point, showing that
    the difference reading is not an identity (a free-symbol residual alone cannot show that).
    """
    if probe is None:
        j = instance.length - 1
        probe = Probe(instance.token(0, j, "w"), instance.context(0, j, "w"))
    if not 0 <= probe.token < instance.vocabulary_size or probe.context.shape != (instance.W.shape[1], 1):
        raise ValueError(f"probe token {probe.token} or context shape {probe.context.shape} does not fit the instance")
    # r_i in its Eq. (4) form (sums of z - log sum exp z; `eq_4_residuals` shows it equals Eq. 2 on sequences):
    # differentiating the product form gives the same function, in a shape sympy expands far more slowly.
    margins = [sp.expand_log(m, force=True) for m in instance.margins()]
    loss = sum(generic_loss(m) for m in margins) / len(margins)
    reward = token_reward(instance.W, instance.W0, probe.context, probe.token)
    # tau dr/dt = sum_ab (d r / d W_ab) (tau dW_ab/dt), tau dW/dt = -grad_W L.
    derived = sum(-sp.diff(reward, w) * sp.diff(loss, w) for w in instance.weight_symbols)
    weights = list(sp.symbols(f"w_0:{len(margins)}", real=True))
    derived = weights_as_symbols(derived, margins, weights)
    if derived.has(sp.Subs, sp.Derivative):
        raise RuntimeError("the chain rule left an unevaluated derivative of f")
    printed = {reading: eq_5_printed(instance, probe, weights, reading) for reading in EQ5_BRACKET}
    residuals = {reading: rational_residual(derived - p) for reading, p in printed.items()}

    S_star = softmax_policy(instance.W, probe.context)
    gap = sp.Integer(0)
    for i in range(len(margins)):
        for j in range(instance.length):
            for side in SIDES:
                C_star = (instance.context(i, j, side).T * probe.context)[0, 0]
                gap += -2 * weights[i] * SIDE_SIGN[side] * C_star * S_star[instance.token(i, j, side)]
    gap = beta**2 * gap / len(margins)
    gap_residual = rational_residual(derived - printed["difference"] - gap)

    rng = random.Random(seed)
    free = sorted((derived - printed["difference"]).free_symbols, key=sp.default_sort_key)
    point = {s: sp.Rational(rng.choice([-9, -5, -3, -2, 1, 2, 4, 6, 8]), 7) for s in free}  # no zeros: a zero weight could hide the gap
    point[beta] = sp.Integer(1)
    at_point = sp.N((derived - printed["difference"]).xreplace(point), 30)

    holds = {reading: res == 0 for reading, res in residuals.items()}
    if holds["sum"] and not holds["difference"] and gap_residual == 0 and at_point != 0:
        verdict = "discrepancy: Eq. (5) holds with p = S_ijs^T y + S*^T y^(j) (a sum); the printed difference is off by " \
                  "-(2 beta^2/N) sum w_i eps_s C* S*^T y^(j)"
    elif holds["difference"]:
        verdict = "holds as printed (difference)"
    else:
        verdict = "neither reading matches the chain rule"
    return Eq5Derivation(derived, printed, residuals, gap, gap_residual, at_point, verdict)



def token_reward_chain_rule_residuals(vocabulary_size: int, dimension: int) -> list[sp.Expr]:
    """The step between the unnumbered display and Eq. (5): for any velocity dW/dt (free symbols),
    dr(y)/dt = sum_ab (dr(y)/dW_ab) dW_ab/dt = beta (y - S*)^T (dW/dt) g*, one residual per token y (all 0)."""
    instance = multi_token_instance(vocabulary_size, dimension, [((0,), (1,))])
    g_star = instance.context(0, 0, "w")
    W_dot = sp.Matrix(vocabulary_size, dimension, lambda a, b: sp.Symbol(f"Wdot_{a}_{b}", real=True))
    S_star = softmax_policy(instance.W, g_star)
    out = []
    for y in range(vocabulary_size):
        reward = token_reward(instance.W, instance.W0, g_star, y)
        chain = sum(sp.diff(reward, w) * W_dot[k] for k, w in enumerate(instance.weight_symbols))
        closed = beta * ((one_hot(y, vocabulary_size) - S_star).T * W_dot * g_star)[0, 0]
        out.append(rational_residual(chain - closed))
    return out
