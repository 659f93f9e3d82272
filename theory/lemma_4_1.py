"""Lemma 4.1 (reward dynamics), Eq. (3), and its GPO form (§7), derived by the chain rule.

Gradient flow tau dW/dt = -grad_W L is pushed through the margin, dr_j/dt = sum_ab (dr_j/dW_ab) dW_ab/dt,
and compared with the printed right-hand side

    tau dr_j/dt = (1/N) sum_i beta^2 (-f'(r_i)) (y_{w,j} - y_{l,j})^T (y_{w,i} - y_{l,i}) Sigma_ij.

With f left as an undefined function the derivation covers every loss of the GPO family at once;
DPO's sigma(-r_i) is the case f(r) = -log sigma(r).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import sympy as sp

from theory.losses import PreferenceLoss, apply_subgradient_convention
from theory.model import SymbolicInstance, symbolic_instance
from theory.symbols import beta, r, tau

generic_loss = sp.Function("f")


def loss_expression(instance: SymbolicInstance, loss: PreferenceLoss | None = None) -> sp.Expr:
    """(1/N) sum_i f(r_i(W)), with r_i built through the full log-softmax (Eq. 2)."""
    margins = instance.margins()
    per_sample = (lambda m: generic_loss(m)) if loss is None else (lambda m: loss.f.subs(r, m))
    return sum(per_sample(m) for m in margins) / len(margins)


def loss_gradient(instance: SymbolicInstance, loss: PreferenceLoss | None = None) -> sp.Matrix:
    """grad_W L, entry by entry, by sympy's chain rule (no closed form is assumed)."""
    L = loss_expression(instance, loss)
    return instance.W.applyfunc(lambda w: apply_subgradient_convention(sp.diff(L, w)))


def printed_margin_dynamics(instance: SymbolicInstance, weights: Sequence[sp.Expr]) -> list[sp.Expr]:
    """Right-hand side of Eq. (3), tau dr_j/dt, for given weights -f'(r_i)."""
    n = len(instance.pairs)
    return [
        sum(beta**2 * weights[i] * instance.preference_sharing(j, i) * instance.gram(i, j) for i in range(n)) / n
        for j in range(n)
    ]


@dataclass(frozen=True)
class Lemma41Derivation:
    """The derived and printed tau dr/dt on one symbolic instance, with their simplified difference."""

    derived: list[sp.Expr]
    printed: list[sp.Expr]
    residuals: list[sp.Expr]

    @property
    def holds(self) -> bool:
        return all(res == 0 for res in self.residuals)


def weights_as_symbols(expr: sp.Expr, margins: Sequence[sp.Expr], weight_symbols: Sequence[sp.Symbol]) -> sp.Expr:
    """Replace each f'(r_i(W)) that sympy's chain rule produced by -w_i, w_i the GPO weight -f'(r_i), so that
    a residual is linear in the weights."""
    for margin, w in zip(margins, weight_symbols):
        expr = expr.replace(lambda e, m=margin: isinstance(e, sp.Subs) and e.point == (m,), lambda e, w=w: -w)
    return expr


def derive_lemma_4_1(instance: SymbolicInstance, loss: PreferenceLoss | None = None) -> Lemma41Derivation:
    """Derive tau dr_j/dt from tau dW/dt = -grad_W L and compare it with Eq. (3).

    With `loss=None`, f is an undefined function and the weights are kept as symbols w_i = -f'(r_i).
    With a concrete loss, the weights in the printed form are `loss.weight` at r_i(W).
    """
    margins = instance.margins()
    flow = -loss_gradient(instance, loss)  # tau dW/dt
    derived = []
    for margin in margins:
        derived.append(sum(sp.diff(margin, w) * flow[k] for k, w in enumerate(instance.weight_symbols)))
    if loss is None:
        weight_symbols = list(sp.symbols(f"w_0:{len(margins)}", real=True))
        derived = [weights_as_symbols(e, margins, weight_symbols) for e in derived]
        printed = printed_margin_dynamics(instance, weight_symbols)
    else:
        printed = printed_margin_dynamics(instance, [loss.weight.subs(r, m) for m in margins])
    residuals = [_simplify_residual(a - b) for a, b in zip(derived, printed)]
    return Lemma41Derivation(derived, printed, residuals)


def _simplify_residual(expr: sp.Expr) -> sp.Expr:
    # log(exp(z)) -> z makes every margin r_i(W) linear in W, so equal weights cancel syntactically.
    expr = sp.expand(sp.expand_log(expr, force=True))
    if expr == 0:
        return sp.Integer(0)
    return sp.simplify(expr)


def lemma_4_1_residuals(
    vocabulary_size: int, dimension: int, pairs: Sequence[tuple[int, int]], loss: PreferenceLoss | None = None
) -> list[sp.Expr]:
    """Build an instance of the given sizes and return the simplified residuals of Eq. (3) (all 0)."""
    return derive_lemma_4_1(symbolic_instance(vocabulary_size, dimension, pairs), loss).residuals


def margin_dynamics_equation(loss: PreferenceLoss) -> sp.Eq:
    """Eq. (3) in index notation, for display: tau dr_j/dt = (beta^2/N) sum_i (-f'(r_i)) C(x_i, x_j)."""
    i, j = sp.symbols("i j", integer=True)
    n = sp.Symbol("N", integer=True, positive=True)
    r_i = sp.Indexed(sp.IndexedBase("r"), i)
    C = sp.Function("C")(sp.Indexed(sp.IndexedBase("x"), i), sp.Indexed(sp.IndexedBase("x"), j))
    rhs = sp.Sum(beta**2 * loss.weight.subs(r, r_i) * C, (i, 1, n)) / n
    return sp.Eq(tau * sp.Derivative(sp.Function("r_j")(sp.Symbol("t")), sp.Symbol("t")), rhs)
