"""A paper statement (lemma or theorem) as one object: assumptions, conclusions, checks, LaTeX.

Assumptions are sympy relations over the symbols of `theory.symbols`; conclusions are sympy expressions
(r_L, r_U, tau_1, the risk bound, the success probability, ...). Concrete numbers are substituted
exactly: ints, `fractions.Fraction`, strings such as "1/32" and sympy numbers stay exact; a Python
float is taken at its exact binary value (so 0.1 means 3602879701896397/36028797018963968).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import mpmath
import sympy as sp

from theory.numbers import exact_rational, float_at_most
from theory.symbols import PARAMETERS, Q, Z, d, epsilon, v

DEFAULT_DPS = 30

# The Remark after Theorems B.3/B.4: the largest eps the appendix statements allow, eps = 1/(16 v (Z+2)).
REMARK_EPSILON = 1 / (16 * v * (Z + 2))


def compact(expr: sp.Basic) -> str:
    """sympy's one-line str with ^ for powers, constants first (1 - x, not -x + 1): how relations and
    conclusions are shown in plain text."""
    return sp.sstr(expr, order="rev-lex").replace("**", "^")


@dataclass(frozen=True)
class AssumptionFailure:
    """One assumption that does not hold at the given numbers.

    `excess` is how far the relation is violated, oriented so that it is >= 0: lhs - rhs for <, <=
    and rhs - lhs for >, >= (0 means equality where a strict inequality is required). It is exact;
    `approx` is its value to DEFAULT_DPS digits.
    """

    name: str
    relation: sp.Rel
    lhs: sp.Expr
    rhs: sp.Expr
    excess: sp.Expr
    approx: mpmath.mpf

    def __str__(self) -> str:
        return f"{self.name}: {self.lhs} vs {self.rhs} fails by {self.excess} (~{mpmath.nstr(self.approx, 8)})"


@dataclass(frozen=True)
class Evaluated:
    """A conclusion at concrete numbers: the exact value, its numeric value (None if symbols remain)."""

    exact: sp.Expr
    approx: mpmath.mpf | None
    missing: tuple[str, ...]


@dataclass(frozen=True)
class DerivationResult:
    """The outcome of one derivation: the expressions it produced, key numbers, and a verdict."""

    claim: str
    expressions: dict[str, sp.Expr]
    numbers: dict[str, Any]
    holds: bool | None
    verdict: str

    def __str__(self) -> str:
        lines = [f"{self.claim}: {self.verdict}"]
        lines += [f"  {k} = {e}" for k, e in self.expressions.items()]
        lines += [f"  {k} = {x}" for k, x in self.numbers.items()]
        return "\n".join(lines)


def exact_number(name: str, value: Any) -> sp.Expr:
    """Convert a user value to an exact sympy number, or raise ValueError naming the parameter.

    Plain numbers and numeric text go through `theory.numbers` (never an evaluator); sympy numbers built by
    the code itself are taken as they are.
    """
    if isinstance(value, sp.Basic):
        x = value
    else:
        x = exact_rational(name, value)
    if not (x.is_number and x.is_real and x.is_finite):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return x


def to_mpf(expr: sp.Expr, dps: int = DEFAULT_DPS) -> mpmath.mpf:
    with mpmath.workdps(dps):
        return mpmath.mpf(sp.N(expr, dps + 5))


def parameter_values(values: Mapping[str, Any], extra: Mapping[str, sp.Symbol] = {}) -> dict[sp.Symbol, sp.Expr]:
    """Map names to symbols and check each value against the symbol's domain (integer, positive, ...)."""
    known = {**PARAMETERS, **extra}
    out = {}
    for name, value in values.items():
        if name not in known:
            raise ValueError(f"unknown parameter {name!r}; known: {', '.join(sorted(known))}")
        sym, x = known[name], exact_number(name, value)
        if sym.is_integer and not x.is_integer:
            raise ValueError(f"{name} must be an integer, got {value!r}")
        if sym.is_positive and not x.is_positive:
            raise ValueError(f"{name} must be positive{' (>= 1)' if sym.is_integer else ''}, got {value!r}")
        if sym.is_nonnegative and not x.is_nonnegative:
            raise ValueError(f"{name} must be nonnegative, got {value!r}")
        out[sym] = x
    return out


@dataclass(frozen=True)
class Statement:
    """One lemma or theorem of the paper.

    name: as numbered in the paper (v5); reference: where it is printed and which SPEC section restates it;
    assumptions: name -> sympy relation; conclusions: name -> sympy expression;
    notes: provenance flags ([V] printed, [R] reconstructed) and conflicts with other statements.
    """

    name: str
    reference: str
    assumptions: dict[str, sp.Rel]
    conclusions: dict[str, sp.Expr]
    notes: tuple[str, ...] = ()
    extra_symbols: dict[str, sp.Symbol] = field(default_factory=dict)

    def __post_init__(self):
        for name, rel in self.assumptions.items():
            if not isinstance(rel, sp.core.relational.Relational):
                raise TypeError(f"{self.name}: assumption {name!r} is {rel!r}, not a relation (use evaluate=False)")

    def _subs(self, values: Mapping[str, Any]) -> dict[sp.Symbol, sp.Expr]:
        return parameter_values(values, self.extra_symbols)

    def check_assumptions(self, **values: Any) -> list[AssumptionFailure]:
        """The assumptions that fail at these numbers, each with the exact amount by which it fails."""
        subs = self._subs(values)
        missing = sorted({s.name for rel in self.assumptions.values() for s in rel.free_symbols} - {s.name for s in subs})
        if missing:
            raise ValueError(f"{self.name}: the assumptions need values for {', '.join(missing)}")
        failures = []
        for name, rel in self.assumptions.items():
            lhs, rhs = rel.lhs.subs(subs), rel.rhs.subs(subs)
            if bool(type(rel)(lhs, rhs)):
                continue
            excess = sp.radsimp(sp.simplify(lhs - rhs if isinstance(rel, (sp.Le, sp.Lt)) else rhs - lhs))
            failures.append(AssumptionFailure(name, rel, lhs, rhs, excess, to_mpf(excess)))
        return failures

    def holds_at(self, **values: Any) -> bool:
        return not self.check_assumptions(**values)

    def evaluate(self, dps: int = DEFAULT_DPS, **values: Any) -> dict[str, Evaluated]:
        """Every conclusion at the given numbers: exact where the symbols allow, mpmath to `dps` digits."""
        subs = self._subs(values)
        out = {}
        for name, expr in self.conclusions.items():
            exact = expr.subs(subs)
            missing = tuple(sorted(s.name for s in exact.free_symbols))
            out[name] = Evaluated(exact, None if missing else to_mpf(exact, dps), missing)
        return out

    def upper_bound(self, name: str, **values: Any) -> sp.Expr | None:
        """The largest value of parameter `name` that the assumptions allow once `values` are substituted, exactly.

        Each assumption is read as g <= 0 (or g < 0); those with g linear in `name` and a positive coefficient
        bound it from above at the root of g. The least of those roots (a supremum for a strict relation), or None
        if no assumption bounds `name` from above at these values.
        """
        symbol = {**PARAMETERS, **self.extra_symbols}.get(name)
        if symbol is None:
            raise ValueError(f"unknown parameter {name!r}")
        subs = self._subs(values)
        bounds = []
        for rel in self.assumptions.values():
            if symbol not in rel.free_symbols:
                continue
            g = rel.lhs - rel.rhs if isinstance(rel, (sp.Le, sp.Lt)) else rel.rhs - rel.lhs
            g = sp.expand(g.subs(subs))
            if g.free_symbols != {symbol} or sp.degree(g, symbol) != 1:
                continue
            slope, offset = g.coeff(symbol, 1), g.coeff(symbol, 0)
            if slope.is_positive:
                bounds.append(-offset / slope)
        return sp.Min(*bounds) if bounds else None

    def v_boundary(self, Q: Any) -> sp.Expr:
        """The largest v the assumptions allow at Q, exactly."""
        bound = self.upper_bound("v", Q=Q)
        if bound is None:
            raise ValueError(f"{self.name}: no assumption bounds v from above")
        return bound

    def resolve_noise(self, Q: Any, Z: Any, v=None, epsilon=None, delta=None) -> tuple[float, float | None, float]:
        """Floats for the noise parameters, at or inside the boundaries; None picks the boundary.

        v: the largest v at Q; epsilon: the Remark's 1/(16 v (Z+2)) (None where v = 0); delta: the largest the
        assumptions allow at (epsilon, v), or 0.0 where none bounds it (the statement is not about delta).
        """
        v = float_at_most(self.v_boundary(Q)) if v is None else float(v)
        if epsilon is None and v > 0:
            epsilon = float_at_most(remark_epsilon(v, Z))
        if delta is None:
            bound = self.upper_bound("delta", epsilon=epsilon, v=v) if epsilon else None
            delta = float_at_most(bound) if bound is not None else 0.0
        return v, epsilon, delta

    def unmet(self, **values: Any) -> list[str]:
        """Each failing assumption as 'name fails by x (lhs a, rhs b)', short enough for a verdict line."""
        return [f"{f.name} fails by {float(f.approx):.3g} (lhs {float(sp.N(f.lhs)):.4g}, rhs {float(sp.N(f.rhs)):.4g})"
                for f in self.check_assumptions(**values)]

    def unmet_among(self, values: Mapping[str, Any]) -> list[str]:
        """`unmet` with only the values that the assumptions mention."""
        needed = {s.name for rel in self.assumptions.values() for s in rel.free_symbols}
        return self.unmet(**{k: x for k, x in values.items() if k in needed})

    def assumption_text(self) -> str:
        """The assumptions as printed relations, '; '-separated."""
        return "; ".join(compact(rel) for rel in self.assumptions.values())

    def conclusion_text(self, names: tuple[str, ...] | None = None) -> str:
        """The conclusions `names` (default: all but the success probability) as 'name = expression'."""
        names = tuple(n for n in self.conclusions if n != "success_probability") if names is None else names
        return ", ".join(f"{n} = {compact(self.conclusions[n])}" for n in names)

    def latex(self) -> str:
        lines = [rf"\textbf{{{self.name}}} ({self.reference}).", r"\textit{Assumptions:}", r"\begin{align*}"]
        lines += [rf"&{sp.latex(rel)} && \text{{{_latex_text(name)}}}\\" for name, rel in self.assumptions.items()]
        lines += [r"\end{align*}", r"\textit{Conclusions:}", r"\begin{align*}"]
        lines += [rf"&\text{{{_latex_text(name)}}}: {sp.latex(e)}\\" for name, e in self.conclusions.items()]
        lines.append(r"\end{align*}")
        return "\n".join(lines)


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "^": r"\^{}", **{ch: "\\" + ch for ch in "{}_&%$#"}}


def _latex_text(name: str) -> str:
    """Escape a plain name for \\text{...}."""
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in name)


def appendix_probability(union_gauss: sp.Expr, union_bernstein: sp.Expr) -> sp.Expr:
    """1 - A K Q^2 e^{-eps^2/16} - B K Q^2 exp(-(c eps/v) min(1, eps/(d v))) (Lemmas B.1, C.3)."""
    from theory.symbols import K, c
    return (1 - union_gauss * K * Q**2 * sp.exp(-epsilon**2 / 16)
            - union_bernstein * K * Q**2 * sp.exp(-(c * epsilon / v) * sp.Min(1, epsilon / (d * v))))


def remark_substitution(v_denominator: int = 32) -> list[tuple[sp.Symbol, sp.Expr]]:
    """The Remark after Theorems B.3/B.4: eps = REMARK_EPSILON, then v = 1/(v_denominator sqrt Q), d = 5Q.

    A list, to be applied in order with `expr.subs(...)` (eps is written in terms of v first).
    The main text's v condition gives v_denominator = 32; the appendix's own condition gives 4.
    """
    return [(epsilon, REMARK_EPSILON), (v, 1 / (v_denominator * sp.sqrt(Q))), (d, 5 * Q)]


def remark_epsilon(v_value: Any, Z_value: Any) -> sp.Expr:
    """The Remark's eps at numbers v > 0 and Z, exactly (a float v is taken at its binary value)."""
    return REMARK_EPSILON.subs(parameter_values({"v": v_value, "Z": Z_value}))


def substitute(expr: sp.Expr, substitution: list[tuple[sp.Symbol, sp.Expr]]) -> sp.Expr:
    for old, new in substitution:
        expr = expr.subs(old, new)
    return expr


def log_linear_roots(a: sp.Expr, b: sp.Expr, L0: sp.Expr) -> tuple[sp.Expr, sp.Expr] | None:
    """Positive solutions s of a s - b log s = L0 (a, b > 0), exactly, via Lambert W.

    s_k = -(b/a) W_k(-(a/b) e^{-L0/b}) for k = 0 and k = -1. The left side is convex with its minimum at
    s = b/a, so s_0 <= b/a <= s_{-1} and {a s - b log s <= L0} = [s_0, s_{-1}]. None if that set is empty.
    With symbols in a, b or L0 the roots come back unconditionally.
    """
    z = -(a / b) * sp.exp(-L0 / b)
    if z.is_number and bool(z < -sp.exp(-1)):
        return None
    return -(b / a) * sp.LambertW(z), -(b / a) * sp.LambertW(z, -1)
