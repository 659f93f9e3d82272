"""The single-token last-layer model of §1 (Eqs. 1–2, Def. 3.1), as sympy objects.

Only the unembedding W is trained on frozen features g(x); the policy is S(W g(x)) and the
reference is S(W0 g(x)).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import sympy as sp

from theory.symbols import beta


def log_softmax(logits: sp.Matrix) -> sp.Matrix:
    """log S(z)_k = z_k - log sum_m exp(z_m), written without cancelling anything."""
    normaliser = sp.log(sum(sp.exp(z) for z in logits))
    return logits.applyfunc(lambda z: z - normaliser)


def softmax_policy(W: sp.Matrix, g: sp.Matrix) -> sp.Matrix:
    """pi(. | x) = S(W g(x)) (§1.1)."""
    logits = W * g
    normaliser = sum(sp.exp(z) for z in logits)
    return logits.applyfunc(lambda z: sp.exp(z) / normaliser)


def one_hot(index: int, size: int) -> sp.Matrix:
    return sp.Matrix([1 if k == index else 0 for k in range(size)])


def reward_margin(W: sp.Matrix, W0: sp.Matrix, g: sp.Matrix, y_w: int, y_l: int, beta=beta):
    """Eq. (2): beta log pi(y_w)/pi_ref(y_w) - beta log pi(y_l)/pi_ref(y_l), through the full log-softmax."""
    log_ratio = log_softmax(W * g) - log_softmax(W0 * g)
    return beta * (log_ratio[y_w] - log_ratio[y_l])


def linear_reward_margin(W: sp.Matrix, W0: sp.Matrix, g: sp.Matrix, y_w: int, y_l: int, beta=beta):
    """The closed form of §1.3: beta (y_w - y_l)^T (W - W0) g(x)."""
    V = W.shape[0]
    return beta * ((one_hot(y_w, V) - one_hot(y_l, V)).T * (W - W0) * g)[0, 0]


def dpo_loss(margins: Sequence[sp.Expr]) -> sp.Expr:
    """Eq. (1): -(1/N) sum_i log sigma(r_i)."""
    return -sum(sp.log(1 / (1 + sp.exp(-m))) for m in margins) / len(margins)


def zero_one_loss(margin: sp.Expr) -> sp.Expr:
    """Def. 3.1: l(r) = 0 if r > 0 and 1 otherwise; the population risk is E[l(r)] = Pr[r <= 0]."""
    return sp.Piecewise((0, margin > 0), (1, True))


@dataclass(frozen=True)
class SymbolicInstance:
    """A concrete-size instance with symbolic W, W0 and features; responses are concrete token indices."""

    W: sp.Matrix
    W0: sp.Matrix
    features: list[sp.Matrix]
    pairs: list[tuple[int, int]]

    @property
    def vocabulary_size(self) -> int:
        return self.W.shape[0]

    @property
    def weight_symbols(self) -> list[sp.Symbol]:
        return list(self.W)

    def margins(self) -> list[sp.Expr]:
        return [reward_margin(self.W, self.W0, g, w, l) for g, (w, l) in zip(self.features, self.pairs)]

    def preference_sharing(self, j: int, i: int) -> int:
        """(y_{w,j} - y_{l,j})^T (y_{w,i} - y_{l,i}), the sharing factor of Lemma 4.1."""
        (wj, lj), (wi, li) = self.pairs[j], self.pairs[i]
        return int(wj == wi) - int(wj == li) - int(lj == wi) + int(lj == li)

    def gram(self, i: int, j: int) -> sp.Expr:
        """Sigma_ij = g(x_i)^T g(x_j)."""
        return (self.features[i].T * self.features[j])[0, 0]


def symbolic_instance(vocabulary_size: int, dimension: int, pairs: Sequence[tuple[int, int]]) -> SymbolicInstance:
    """Build W, W0 (V x d) and one feature vector per pair, all as real symbols."""
    if vocabulary_size < 2 or dimension < 1:
        raise ValueError(f"need vocabulary_size >= 2 and dimension >= 1, got {vocabulary_size} and {dimension}")
    for w, l in pairs:
        if w == l:
            raise ValueError(f"pair ({w}, {l}) has y_w == y_l; a preference needs two different responses")
        if not (0 <= w < vocabulary_size and 0 <= l < vocabulary_size):
            raise ValueError(f"pair ({w}, {l}) is outside the vocabulary of size {vocabulary_size}")
    W = sp.Matrix(vocabulary_size, dimension, lambda a, b: sp.Symbol(f"W_{a}_{b}", real=True))
    W0 = sp.Matrix(vocabulary_size, dimension, lambda a, b: sp.Symbol(f"W0_{a}_{b}", real=True))
    features = [sp.Matrix(dimension, 1, lambda m, _: sp.Symbol(f"g_{i}_{m}", real=True)) for i in range(len(pairs))]
    return SymbolicInstance(W, W0, features, list(pairs))


def single_token_margin_residual(vocabulary_size: int, dimension: int, y_w: int = 0, y_l: int = 1) -> sp.Expr:
    """§1.3: Eq. (2) minus beta (y_w - y_l)^T (W - W0) g, simplified; 0 because the log-softmax normaliser cancels."""
    instance = symbolic_instance(vocabulary_size, dimension, [(y_w, y_l)])
    g = instance.features[0]
    residual = reward_margin(instance.W, instance.W0, g, y_w, y_l) - linear_reward_margin(instance.W, instance.W0, g, y_w, y_l)
    return sp.simplify(sp.expand_log(residual, force=True))
