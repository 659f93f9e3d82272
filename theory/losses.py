"""The GPO family of preference losses (paper §7): L = (1/N) sum_i f(r_i).

Lemma 4.1 holds for every f with sigma(-r_i) replaced by the weight -f'(r_i). A loss is stored as its
expression f(r); the weight is derived from it with sympy, never typed.

TRL's loss types (`trl_loss`) follow TRL 1.16.0: the margin types here, the types that are functions of
(r_w, r_l) separately in `theory.pair_losses`.

Subgradient convention: at a kink, the weight takes the value that torch's autograd produces for the
same expression, i.e. Heaviside(0) = 0 (as relu'(0) = 0) and sign(0) = 0. For SLiC this gives
-f'(r) = 1[r < 1].
"""
from __future__ import annotations

import ast
import functools
import math
import sys
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property

import sympy as sp

from theory.errors import UserInputError
from theory.numbers import exact_rational
from theory.symbols import r


# sympy's solvers, integrator and simplifier fail on some valid input with errors other than
# NotImplementedError (a TypeError from a nan comparison inside solveset, for one). Around those calls,
# any of these means "sympy found no closed form", never bad input.
SYMPY_GAVE_UP = (NotImplementedError, TypeError, ValueError, AttributeError, IndexError, KeyError,
                 ZeroDivisionError, RecursionError)


def apply_subgradient_convention(expr: sp.Expr) -> sp.Expr:
    """Heaviside(0) = 0 wherever sympy's derivative of a kink produced a Heaviside."""
    return expr.replace(lambda e: isinstance(e, sp.Heaviside), lambda e: sp.Heaviside(e.args[0], 0))


class NoUsableDerivative(ValueError):
    """sympy's derivative is unevaluated or a distribution; the caller names the loss."""


# simplify() costs up to a second per loss; equal expressions (the same TRL type at another beta, sigmoid and
# sigmoid_norm) share one result.
@functools.lru_cache(maxsize=256)
def derived_weight(f: sp.Expr, variable: sp.Symbol, sign: int) -> sp.Expr:
    """sign * df/d(variable), with the subgradient convention of this module, simplified where that is safe."""
    derivative = sp.diff(f, variable)
    if derivative.has(sp.Derivative, sp.Subs, sp.DiracDelta):
        raise NoUsableDerivative(str(derivative))
    weight = apply_subgradient_convention(sign * derivative)
    # simplify() would rewrite sign/Heaviside kinks into Piecewise forms that hide the convention.
    if weight.has(sp.sign, sp.Heaviside, sp.Abs, sp.Piecewise):
        return weight
    try:
        return sp.simplify(weight)
    except SYMPY_GAVE_UP:
        return weight


@dataclass(frozen=True)
class PreferenceLoss:
    """A per-sample loss f(r) of the reward margin r, and the weight -f'(r) that drives Lemma 4.1."""

    name: str
    f: sp.Expr

    @cached_property
    def weight(self) -> sp.Expr:
        """-f'(r), with the subgradient convention of this module (simplified once, then kept)."""
        try:
            return derived_weight(self.f, r, -1)
        except NoUsableDerivative as error:
            raise UserInputError(f"loss {self.name!r}: f(r) = {self.f} has no usable derivative in r (got {error})") from None

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
# parse_expr, so no string can run code. The tree is also bounded before sympy sees it, because sympy
# evaluates numeric powers eagerly in C-level integer arithmetic that no time limit can interrupt
# ('r**10**10' would allocate gigabytes): the bounds keep every number sympy builds small.
MAX_EXPRESSION_CHARS = 2000
MAX_NODES = 500  # numbers, names, operators and calls; a realistic loss has a few dozen
MAX_DEPTH = 50  # nesting levels; a chain a + b - c or a * b / c is one level, as it is read
MAX_LITERAL = 10**12  # every number literal is 0 or has 10**-12 <= |x| <= 10**12
MAX_EXPONENT = 64  # a constant exponent p has |p| <= 64; numbers inside an exponent of r have |x| <= 64
# Numbers sympy builds from powers stay below 2**10000 (about 3000 digits): fast to compute, and under
# Python's 4300-digit limit for printing an integer.
MAX_NUMBER_BITS = 10_000

_FUNCTIONS = {
    "exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "Abs": sp.Abs, "abs": sp.Abs,
    "Max": sp.Max, "max": sp.Max, "Min": sp.Min, "min": sp.Min,
    "tanh": sp.tanh, "sigmoid": sigmoid, "logsigmoid": lambda x: sp.log(sigmoid(x)),
    "softplus": lambda x: sp.log(1 + sp.exp(x)), "relu": lambda x: sp.Max(0, x),
}
# (fewest, most) arguments; None means no upper bound.
_ARITY = {name: (1, 1) for name in _FUNCTIONS}
_ARITY.update({"log": (1, 2), "Max": (1, None), "max": (1, None), "Min": (1, None), "min": (1, None)})
# Functions that put their argument into an exponent (exp(x) = E**x), bounded like the exponent of **.
_EXPONENTIAL = {"exp", "sigmoid", "logsigmoid", "softplus"}
_CONSTANTS = {"r": r, "pi": sp.pi, "E": sp.E}
_ADDITIVE, _MULTIPLICATIVE = (ast.Add, ast.Sub), (ast.Mult, ast.Div)
_UNARY = {ast.USub: lambda a: -a, ast.UAdd: lambda a: a}


def _chain_group(node: ast.AST):
    """The operator group of a + - or * / node, whose left-nested chains are read as one flat sum or product."""
    if isinstance(node, ast.BinOp):
        for group in (_ADDITIVE, _MULTIPLICATIVE):
            if isinstance(node.op, group):
                return group
    return None


def _check_size(tree: ast.Expression) -> None:
    """Count nodes and nesting without recursion: the tree of a 2000-character input can be 2000 deep."""
    nodes, stack = 0, [(tree.body, 1)]
    while stack:
        node, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise UserInputError(f"loss expression has more than {MAX_NODES} numbers, names and operators")
        if depth > MAX_DEPTH:
            raise UserInputError(f"loss expression is nested more than {MAX_DEPTH} levels deep")
        group = _chain_group(node)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                continues_chain = group is not None and child is node.left and _chain_group(child) is group
                stack.append((child, depth if continues_chain else depth + 1))


def _number(node: ast.Constant, source: str) -> sp.Rational:
    """A literal as the exact rational it spells: '0.1' is 1/10, not the nearest float."""
    value = node.value
    if isinstance(value, float):
        segment = ast.get_source_segment(source, node)
        if not math.isfinite(value):
            raise UserInputError(f"number {segment or value} in the loss is not finite (it overflows float64)")
        exact = Fraction(segment.replace("_", "")) if segment else Fraction(value)
    else:
        exact = Fraction(value)
    if exact != 0 and not Fraction(1, MAX_LITERAL) <= abs(exact) <= MAX_LITERAL:
        raise UserInputError(f"number {_shown(ast.get_source_segment(source, node) or value)} in the loss is out of range: literals must be 0 or have "
                         f"1e-12 <= |x| <= 1e12 (build larger constants with ** or exp)")
    return sp.Rational(exact.numerator, exact.denominator)


def _constant_value(expr: sp.Expr) -> complex | None:
    """The numeric value of a constant, or None where it has none (zoo, nan) or overflows a float."""
    try:
        value = complex(expr)
    except (TypeError, ValueError, OverflowError, ZeroDivisionError):
        return None
    return value if math.isfinite(value.real) and math.isfinite(value.imag) else None


def _check_exponent(exponent: sp.Expr, where: str) -> None:
    """Bound an exponent before sympy evaluates a power with it."""
    if exponent.free_symbols:
        # A power of r stays symbolic, but sympy may later split a**(c*r + k) into a**k * a**(c*r) and
        # evaluate a**k, so the numbers inside it are bounded too.
        for number in exponent.atoms(sp.Rational):
            if abs(number) > MAX_EXPONENT:
                raise UserInputError(f"number {_shown(number)} in {where} is too large: numbers in an exponent "
                                 f"must have |x| <= {MAX_EXPONENT}")
        return
    value = _constant_value(exponent)
    if value is None or value.imag != 0 or abs(value.real) > MAX_EXPONENT:
        raise UserInputError(f"{where} is {_shown(exponent)}: a constant exponent must be a real number with |p| <= {MAX_EXPONENT}")


def _shown(expr, limit: int = 40) -> str:
    """An expression for a message, cut to one short line."""
    text = str(expr)
    return text if len(text) <= limit else f"{text[:limit // 2]}...{text[-limit // 4:]} ({len(text)} characters)"


def _bits(number: sp.Rational) -> int:
    return max(abs(number.p).bit_length(), number.q.bit_length())


def _check_built(expr: sp.Expr) -> sp.Expr:
    """What sympy built stays inside the bounds: it combines powers as it goes ((r**8)**8 is r**64, and
    exp(r)**8 is exp(8*r)), so the bounds on exponents are checked again on the result."""
    for sub in sp.preorder_traversal(expr):
        if isinstance(sub, sp.Rational):
            if _bits(sub) > MAX_NUMBER_BITS:
                raise UserInputError(f"the loss builds a number with more than {MAX_NUMBER_BITS} bits "
                                 f"(about 3000 digits); it must stay below 2**{MAX_NUMBER_BITS}")
        elif isinstance(sub, sp.exp) and sub.args[0].free_symbols:
            _check_exponent(sub.args[0], f"exp({_shown(sub.args[0])})")
        elif isinstance(sub, sp.Pow) and sub.base.free_symbols:
            _check_exponent(sub.exp, f"the exponent of {_shown(sub)}")
    return expr


def _power(base: sp.Expr, exponent: sp.Expr) -> sp.Expr:
    _check_exponent(exponent, "the exponent of **")
    if isinstance(base, sp.Rational) and isinstance(exponent, sp.Rational) and base != 0:
        # sympy computes a rational power at once: estimate its size before it is computed.
        if _bits(base) * abs(exponent) > MAX_NUMBER_BITS:
            raise UserInputError(f"{_shown(base)}**{exponent} has more than {MAX_NUMBER_BITS} bits "
                             f"(about 3000 digits); the loss must stay below 2**{MAX_NUMBER_BITS}")
    return sp.Pow(base, exponent)


def _call(node: ast.Call, source: str) -> sp.Expr:
    name = node.func.id
    if name not in _FUNCTIONS:
        raise UserInputError(f"unknown function {name!r}; allowed: {', '.join(sorted(_FUNCTIONS))}")
    fewest, most = _ARITY[name]
    if not fewest <= len(node.args) <= (most if most is not None else len(node.args)):
        expected = (f"{fewest}" if fewest == most else f"{fewest} or {most}" if most is not None
                    else f"at least {fewest}")
        raise UserInputError(f"{name} takes {expected} argument{'' if expected.endswith('1') else 's'}, got {len(node.args)}")
    arguments = [_translate(a, source) for a in node.args]
    if name in _EXPONENTIAL:
        _check_exponent(arguments[0], f"the argument of {name}")
    return _FUNCTIONS[name](*arguments)


def _chain(node: ast.BinOp, source: str) -> sp.Expr:
    """a + b - c or a * b / c, read along its left spine without recursion (a 999-term sum is one level)."""
    group, operands = _chain_group(node), []
    while _chain_group(node) is group:
        operands.append((node.op, node.right))
        node = node.left
    terms = [_translate(node, source)]
    for op, operand in reversed(operands):
        value = _translate(operand, source)
        terms.append(-value if isinstance(op, ast.Sub) else 1 / value if isinstance(op, ast.Div) else value)
    return sp.Add(*terms) if group is _ADDITIVE else sp.Mul(*terms)


def _translate(node: ast.AST, source: str) -> sp.Expr:
    return _check_built(_translate_node(node, source))


def _translate_node(node: ast.AST, source: str) -> sp.Expr:
    if isinstance(node, ast.Expression):
        return _translate(node.body, source)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _number(node, source)
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise UserInputError(f"unknown name {node.id!r}; the loss may use r, pi, E and {', '.join(sorted(_FUNCTIONS))}")
    if _chain_group(node) is not None:
        return _chain(node, source)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        return _power(_translate(node.left, source), _translate(node.right, source))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_translate(node.operand, source))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        return _call(node, source)
    raise UserInputError(f"unsupported syntax {type(node).__name__!r}; use numbers, r, + - * / **, and allowed functions")


def parse_loss_expression(text: str, name: str | None = None) -> PreferenceLoss:
    """A user's f(r), e.g. '(r-1)**2' or 'Max(0, 1-r)', checked against a whitelist before sympy sees it.

    Refused with a one-line UserInputError: anything outside the whitelist, wrong numbers of arguments, and
    inputs beyond the bounds above (length, nodes, nesting, literal size, exponent size).
    """
    if len(text) > MAX_EXPRESSION_CHARS:
        raise UserInputError(f"loss expression is longer than {MAX_EXPRESSION_CHARS} characters")
    source = text.strip()
    if not source:
        raise UserInputError("loss expression is empty; give f(r), e.g. '(r-1)**2'")
    quoted = _shown(repr(text), 80)
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as error:
        raise UserInputError(f"loss expression {quoted} does not parse: {error.msg}") from None
    except ValueError as error:  # null bytes, on Python versions that do not call them a SyntaxError
        raise UserInputError(f"loss expression {quoted} does not parse: {error}") from None
    except (RecursionError, MemoryError):  # Python's own parser gives up on very deep input
        raise UserInputError(f"loss expression is nested too deeply for Python's parser (limit {MAX_DEPTH} levels)") from None
    _check_size(tree)
    f = _translate(tree, source)
    if f.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        raise UserInputError(f"loss expression {quoted} is undefined (it divides by zero or takes log(0)): f(r) = {_shown(f, 80)}")
    if not f.has(r):
        raise UserInputError(f"loss expression {quoted} does not depend on r")
    loss = PreferenceLoss(name or text, f)
    try:
        at_start = loss.weight.subs(r, 0)
    except SYMPY_GAVE_UP as error:  # e.g. Max(r, 0, log(r)): sympy refuses Max(0, 0, zoo) at r = 0
        raise UserInputError(f"loss {quoted} is not differentiable at r = 0, where every margin starts "
                             f"(sympy cannot evaluate -f'(0): {_shown(error, 80)})") from None
    if not (at_start.is_real and at_start.is_finite):
        raise UserInputError(f"loss {quoted} is not differentiable at r = 0, where every margin starts "
                         f"(-f'(0) = {_shown(at_start, 80)})")
    return loss


# --- TRL's loss types -------------------------------------------------------------------------
# The definitions followed are those of TRL 1.16.0 (`DPOTrainer._compute_loss` in trl/trainer/dpo_trainer.py,
# defaults from `DPOConfig`); tests/test_trl_parity.py runs that code against the translations below.
# TRL applies beta to the unscaled log-ratios h_s = log pi(y_s)/pi_ref(y_s), while the paper's margin is
# already r = beta * (h_w - h_l). Each margin loss is therefore rewritten with h = r / beta, and each pair
# loss with r_s = beta * h_s (theory/pair_losses.py). Completions are one token long, as everywhere in the
# paper's model: TRL's 'ipo' and 'sigmoid_norm' divide each h_s by its completion length, which is then 1.
TRL_VERSION = "1.16.0"

# Functions of the margin alone (the GPO family of §7). 'cdpo' is not a TRL 1.16 type: it is the conservative
# DPO of Mitchell (2023), -(1-eps) log sigma(r) - eps log sigma(-r), which TRL <= 0.28 built from 'sigmoid'
# with label_smoothing = eps and TRL 1.16 computes only inside 'aot'.
TRL_MARGIN_LOSS_TYPES = ("sigmoid", "hinge", "ipo", "robust", "exo_pair", "discopop", "sigmoid_norm")
MARGIN_LOSS_TYPES = TRL_MARGIN_LOSS_TYPES + ("cdpo",)
TRL_GPO_LOSS_TYPES = MARGIN_LOSS_TYPES  # the earlier name of the margin types
# Functions of (r_w, r_l) separately: `theory.pair_losses.PairLoss`.
PAIR_LOSS_TYPES = ("nca_pair", "bco_pair", "sppo_hard", "apo_zero", "apo_down")
LOSS_TYPES = MARGIN_LOSS_TYPES + PAIR_LOSS_TYPES
# TRL 1.16's remaining types, and why no per-sample loss of the rewards describes them.
UNMODELLED_LOSS_TYPES = {
    "sft": "it is not a preference loss: it trains the chosen likelihood only and never sees the rejected response",
    "aot": "it sorts log-ratio differences across the batch, so a sample's loss depends on other samples' margins",
    "aot_unpaired": "it sorts chosen and rejected log-ratios across the batch separately, so a sample's loss "
                    "depends on other samples' rewards",
}
# Which types read label_smoothing (eps), and the eps each accepts.
LABEL_SMOOTHING_DOMAINS = {
    "robust": "a finite number in [0, 1/2)",  # the flip rate of Robust DPO; TRL 1.16 warns outside [0, 0.5)
    "cdpo": "a finite number in [0, 1/2)",
    "exo_pair": "a finite number in (0, 1)",  # TRL 1.16 raises at 0; log(eps) and log(1 - eps) need 0 < eps < 1
}
DISCOPOP_TAU_DEFAULT = "0.05"  # DPOConfig.discopop_tau in TRL 1.16 (read as the decimal 1/20)


def _exact_parameter(name: str, value, domain: str) -> sp.Rational:
    try:
        return exact_rational(name, value)
    except ValueError as error:
        raise UserInputError(f"{error}; {name} must be {domain}") from None


def _check_float_range(name: str, value: sp.Rational, given) -> None:
    # TRL holds every parameter as float64; a value outside the normal range has no faithful float64 and,
    # taken exactly, would fill the formulas with thousand-digit numbers.
    if value != 0 and value < _SMALLEST_NORMAL:
        raise UserInputError(f"{name} = {given} is below the smallest normal float64 ({sys.float_info.min:.1e})")
    if value > _LARGEST_FLOAT:
        raise UserInputError(f"{name} = {given} is above the largest float64 ({sys.float_info.max:.1e})")


def _smoothing_users() -> str:
    return ", ".join(LABEL_SMOOTHING_DOMAINS)


def check_loss_type(loss_type) -> str:
    """`loss_type` if this module translates it; else a one-line UserInputError saying why not."""
    if loss_type in UNMODELLED_LOSS_TYPES:
        raise UserInputError(f"TRL loss type {loss_type!r} is outside the model: {UNMODELLED_LOSS_TYPES[loss_type]}")
    if loss_type not in LOSS_TYPES:
        raise UserInputError(f"unknown loss type {_shown(repr(loss_type))}; margin types: {', '.join(MARGIN_LOSS_TYPES)}; "
                             f"pair types: {', '.join(PAIR_LOSS_TYPES)}")
    return loss_type


def trl_parameters(loss_type: str, beta_value, label_smoothing=0, discopop_tau=None) -> tuple[sp.Rational, sp.Rational, sp.Rational | None]:
    """(beta, eps, tau) as exact rationals, each checked against what TRL 1.16 means for `loss_type`.

    A parameter the type does not read is refused unless it is 0 (label_smoothing) or not given (discopop_tau):
    a setting without effect is an error, never silence.
    """
    check_loss_type(loss_type)
    b = _exact_parameter("beta", beta_value, "a finite number > 0")
    if not b > 0:
        raise UserInputError(f"beta must be > 0, got {beta_value}")
    _check_float_range("beta", b, beta_value)
    domain = LABEL_SMOOTHING_DOMAINS.get(loss_type, "0")
    eps = _exact_parameter("label_smoothing", label_smoothing, domain)
    if loss_type not in LABEL_SMOOTHING_DOMAINS:
        if eps != 0:
            hint = " (TRL <= 0.28's smoothed sigmoid is the loss type 'cdpo')" if loss_type == "sigmoid" else ""
            raise UserInputError(f"label_smoothing = {label_smoothing} has no effect on TRL {TRL_VERSION}'s {loss_type!r} loss; "
                                 f"only {_smoothing_users()} use it{hint}")
    elif loss_type == "exo_pair" and not 0 < eps < 1:
        raise UserInputError(f"label_smoothing must be in (0, 1) for 'exo_pair' (TRL {TRL_VERSION} raises at 0; "
                             f"the EXO paper recommends 1e-3), got {label_smoothing}")
    elif loss_type != "exo_pair" and not 0 <= eps < sp.Rational(1, 2):
        raise UserInputError(f"label_smoothing must be in [0, 1/2) for {loss_type!r}, got {label_smoothing}")
    _check_float_range("label_smoothing", eps, label_smoothing)
    tau_value = None
    if loss_type == "discopop":
        given = DISCOPOP_TAU_DEFAULT if discopop_tau is None else discopop_tau
        tau_value = _exact_parameter("discopop_tau", given, "a finite number > 0")
        if not tau_value > 0:
            raise UserInputError(f"discopop_tau must be > 0, got {given}")
        _check_float_range("discopop_tau", tau_value, given)
    elif discopop_tau is not None:
        raise UserInputError(f"discopop_tau = {discopop_tau} has no effect on the {loss_type!r} loss; only discopop uses it")
    return b, eps, tau_value


def logsigmoid(x: sp.Expr) -> sp.Expr:
    return sp.log(sigmoid(x))


def trl_loss(loss_type: str, beta_value, label_smoothing=0, discopop_tau=None) -> PreferenceLoss:
    """TRL 1.16's per-sample loss for a margin type (`MARGIN_LOSS_TYPES`), as f(r) with r = beta * h the
    paper's margin. The pair types (`PAIR_LOSS_TYPES`) are `theory.pair_losses.trl_pair_loss`; they, the types
    of `UNMODELLED_LOSS_TYPES` and unknown names are a one-line UserInputError here.

    beta, label_smoothing and discopop_tau are taken exactly (see `theory.numbers.exact_rational`: text keeps
    the decimal typed, '0.1' is 1/10; a float keeps its binary value). label_smoothing is read by 'robust'
    (the flip rate, [0, 1/2)), 'cdpo' ([0, 1/2)) and 'exo_pair' ((0, 1)); any other type needs it 0.
    discopop_tau (default DPOConfig's 0.05) is read by 'discopop' only.
    """
    if loss_type in PAIR_LOSS_TYPES:
        raise UserInputError(f"TRL loss type {loss_type!r} is a function of (r_w, r_l), not of the margin alone: it has "
                             f"individual-reward dynamics (theory.pair_losses), not a margin chain; "
                             f"margin types: {', '.join(MARGIN_LOSS_TYPES)}")
    b, eps, discopop_temperature = trl_parameters(loss_type, beta_value, label_smoothing, discopop_tau)
    h = r / b
    if loss_type in ("sigmoid", "sigmoid_norm"):  # sigmoid_norm divides h by the completion length, here 1
        f = -logsigmoid(b * h)
    elif loss_type == "cdpo":
        f = -(1 - eps) * logsigmoid(b * h) - eps * logsigmoid(-b * h)
    elif loss_type == "robust":
        f = (-(1 - eps) * logsigmoid(b * h) + eps * logsigmoid(-b * h)) / (1 - 2 * eps)
    elif loss_type == "exo_pair":
        f = sigmoid(b * h) * (logsigmoid(b * h) - sp.log(1 - eps)) + sigmoid(-b * h) * (logsigmoid(-b * h) - sp.log(eps))
    elif loss_type == "hinge":
        f = sp.Max(0, 1 - b * h)
    elif loss_type == "discopop":
        modulation = sigmoid(b * h / discopop_temperature)
        f = -logsigmoid(b * h) * (1 - modulation) + sp.exp(-b * h) * modulation
    else:  # ipo
        f = (h - 1 / (2 * b)) ** 2
    return PreferenceLoss(f"trl-{loss_type}", f)


_SMALLEST_NORMAL = sp.Rational(Fraction(sys.float_info.min))
_LARGEST_FLOAT = sp.Rational(Fraction(sys.float_info.max))
