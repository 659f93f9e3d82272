"""The GPO family of preference losses (paper §7): L = (1/N) sum_i f(r_i).

Lemma 4.1 holds for every f with sigma(-r_i) replaced by the weight -f'(r_i). A loss is stored as its
expression f(r); the weight is derived from it with sympy, never typed.

Subgradient convention: at a kink, the weight takes the value that torch's autograd produces for the
same expression, i.e. Heaviside(0) = 0 (as relu'(0) = 0) and sign(0) = 0. For SLiC this gives
-f'(r) = 1[r < 1].
"""
from __future__ import annotations

import ast
from dataclasses import dataclass

import sympy as sp

from theory.symbols import r


def apply_subgradient_convention(expr: sp.Expr) -> sp.Expr:
    """Heaviside(0) = 0 wherever sympy's derivative of a kink produced a Heaviside."""
    return expr.replace(lambda e: isinstance(e, sp.Heaviside), lambda e: sp.Heaviside(e.args[0], 0))


@dataclass(frozen=True)
class PreferenceLoss:
    """A per-sample loss f(r) of the reward margin r, and the weight -f'(r) that drives Lemma 4.1."""

    name: str
    f: sp.Expr

    @property
    def weight(self) -> sp.Expr:
        """-f'(r), with the subgradient convention of this module."""
        derivative = sp.diff(self.f, r)
        if derivative.has(sp.Derivative, sp.Subs, sp.DiracDelta):
            raise ValueError(f"loss {self.name!r}: f(r) = {self.f} has no usable derivative in r (got {derivative})")
        weight = apply_subgradient_convention(-derivative)
        # simplify() would rewrite sign/Heaviside kinks into Piecewise forms that hide the convention.
        return weight if weight.has(sp.sign, sp.Heaviside, sp.Abs, sp.Piecewise) else sp.simplify(weight)

    def latex(self) -> str:
        return rf"f(r) = {sp.latex(self.f)},\qquad -f'(r) = {sp.latex(self.weight)}"


def sigmoid(x: sp.Expr) -> sp.Expr:
    return 1 / (1 + sp.exp(-x))


DPO = PreferenceLoss("dpo", -sp.log(sigmoid(r)))
IPO = PreferenceLoss("ipo", (r - 1) ** 2)
SLIC = PreferenceLoss("slic", sp.Max(0, 1 - r))
PAPER_LOSSES = {loss.name: loss for loss in (DPO, IPO, SLIC)}

# The weights §7 prints, kept only to compare with what `PreferenceLoss.weight` derives.
PRINTED_WEIGHTS = {
    "dpo": sigmoid(-r),
    "ipo": 2 * (1 - r),
    "slic": sp.Heaviside(1 - r, 0),
}


# --- user expressions -------------------------------------------------------------------------
# A user's f(r) is translated from Python's syntax tree by hand: nothing reaches eval, sympify or
# parse_expr, so no string can run code.
_FUNCTIONS = {
    "exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "Abs": sp.Abs, "abs": sp.Abs,
    "Max": sp.Max, "max": sp.Max, "Min": sp.Min, "min": sp.Min,
    "tanh": sp.tanh, "sigmoid": sigmoid, "logsigmoid": lambda x: sp.log(sigmoid(x)),
    "softplus": lambda x: sp.log(1 + sp.exp(x)), "relu": lambda x: sp.Max(0, x),
}
_CONSTANTS = {"r": r, "pi": sp.pi, "E": sp.E}
_BINARY = {ast.Add: sp.Add, ast.Sub: lambda a, b: a - b, ast.Mult: sp.Mul,
           ast.Div: lambda a, b: a / b, ast.Pow: sp.Pow}
_UNARY = {ast.USub: lambda a: -a, ast.UAdd: lambda a: a}


def _translate(node: ast.AST) -> sp.Expr:
    if isinstance(node, ast.Expression):
        return _translate(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return sp.nsimplify(node.value, rational=True) if isinstance(node.value, float) else sp.Integer(node.value)
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise ValueError(f"unknown name {node.id!r}; the loss may use r, pi, E and {', '.join(sorted(_FUNCTIONS))}")
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return _BINARY[type(node.op)](_translate(node.left), _translate(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_translate(node.operand))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        if node.func.id not in _FUNCTIONS:
            raise ValueError(f"unknown function {node.func.id!r}; allowed: {', '.join(sorted(_FUNCTIONS))}")
        return _FUNCTIONS[node.func.id](*(_translate(a) for a in node.args))
    raise ValueError(f"unsupported syntax {type(node).__name__!r}; use numbers, r, + - * / **, and allowed functions")


def parse_loss_expression(text: str, name: str | None = None) -> PreferenceLoss:
    """A user's f(r), e.g. '(r-1)**2' or 'Max(0, 1-r)', checked against a whitelist before sympy sees it."""
    if len(text) > 2000:
        raise ValueError("loss expression is longer than 2000 characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise ValueError(f"loss expression {text!r} does not parse: {error.msg}") from None
    f = _translate(tree)
    if not f.has(r):
        raise ValueError(f"loss expression {text!r} does not depend on r")
    loss = PreferenceLoss(name or text, f)
    at_start = loss.weight.subs(r, 0)
    if not (at_start.is_real and at_start.is_finite):
        raise ValueError(f"loss {text!r} is not differentiable at r = 0, where every margin starts (-f'(0) = {at_start})")
    return loss


# --- TRL's loss types -------------------------------------------------------------------------
# TRL's DPOTrainer applies beta to the unscaled log-ratio difference h, while the paper's margin is
# already r = beta * h. Each TRL loss is therefore rewritten with h = r / beta; only the loss types
# that are a function of the margin alone belong to the GPO family.
def trl_loss(loss_type: str, beta_value, label_smoothing=0) -> PreferenceLoss:
    """TRL's per-sample loss for `loss_type` as f(r), with r the paper's margin (r = beta * h)."""
    b, eps = sp.nsimplify(beta_value), sp.nsimplify(label_smoothing)
    if not b > 0:
        raise ValueError(f"beta must be > 0, got {beta_value}")
    if not 0 <= eps < sp.Rational(1, 2):
        raise ValueError(f"label_smoothing must be in [0, 1/2), got {label_smoothing}")
    h = r / b
    logsig = lambda x: sp.log(sigmoid(x))
    if loss_type == "sigmoid":
        f = -(1 - eps) * logsig(b * h) - eps * logsig(-b * h)
    elif loss_type == "robust":
        f = (-(1 - eps) * logsig(b * h) + eps * logsig(-b * h)) / (1 - 2 * eps)
    elif loss_type == "exo_pair":
        eps = eps if eps != 0 else sp.Rational(1, 1000)  # TRL replaces 0 by 1e-3
        f = sigmoid(b * h) * (logsig(b * h) - sp.log(1 - eps)) + sigmoid(-b * h) * (logsig(-b * h) - sp.log(eps))
    elif loss_type == "hinge":
        f = sp.Max(0, 1 - b * h)
    elif loss_type == "ipo":
        f = (h - 1 / (2 * b)) ** 2
    else:
        raise ValueError(
            f"TRL loss type {loss_type!r} is not a function of the margin alone; GPO types: {', '.join(TRL_GPO_LOSS_TYPES)}"
        )
    return PreferenceLoss(f"trl-{loss_type}", f)


TRL_GPO_LOSS_TYPES = ("sigmoid", "robust", "exo_pair", "hinge", "ipo")
