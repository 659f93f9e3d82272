"""A new preference objective, derived the way §7 treats the GPO family.

For a loss f(r): the weight -f'(r) that replaces sigma(-r) in Eq. (3), the fixed points of the weight,
and the trajectory of the idealised model (noise-free clusters, disjoint tokens), where every training
margin obeys the scalar ODE  tau dr/dt = (2 beta^2 / K) w(r),  r(0) = 0  (SPEC §7 item 4).
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from theory.lemma_4_1 import margin_dynamics_equation
from theory.losses import PreferenceLoss
from theory.symbols import K, beta, r, t, tau

# Rescaled time of the idealised model: s = 2 beta^2 t / (K tau), so that dr/ds = w(r).
idealised_time = 2 * beta**2 * t / (K * tau)


@dataclass(frozen=True)
class ObjectiveDerivation:
    loss: PreferenceLoss
    weight: sp.Expr
    margin_dynamics: sp.Eq
    fixed_points: sp.Set
    implicit_trajectory: sp.Eq | None
    trajectory: sp.Expr | None  # r(t) of the idealised model, when sympy finds it

    def latex(self) -> dict[str, str]:
        out = {"loss": sp.latex(self.loss.f), "weight": sp.latex(self.weight),
               "margin_dynamics": sp.latex(self.margin_dynamics), "fixed_points": sp.latex(self.fixed_points)}
        if self.implicit_trajectory is not None:
            out["implicit_trajectory"] = sp.latex(self.implicit_trajectory)
        if self.trajectory is not None:
            out["trajectory"] = sp.latex(sp.Eq(sp.Function("r")(t), self.trajectory))
        return out


def idealised_trajectory(weight: sp.Expr) -> tuple[sp.Eq | None, sp.Expr | None]:
    """Separate variables: int_0^r dx / w(x) = s. Returns the implicit relation and, if solvable, r(t)."""
    if weight.has(sp.Heaviside, sp.sign, sp.Piecewise, sp.Max, sp.Min, sp.Abs):
        return None, None  # kinks: sympy's integrals of 1/w do not come back in closed form
    x, s = sp.Dummy("x", real=True), sp.Symbol("s", positive=True)
    antiderivative = sp.integrate(1 / weight.subs(r, x), (x, 0, r))
    if antiderivative.has(sp.Integral):
        return None, None
    if antiderivative.has(sp.I):
        antiderivative = _real_branch(antiderivative, weight)
    implicit = sp.Eq(antiderivative, idealised_time)
    solutions = [
        sol for sol in sp.solve(sp.Eq(antiderivative, s), r)
        if sp.simplify(sol.subs(s, 0)) == 0 and _satisfies(antiderivative, sol, s)
    ]
    trajectory = solutions[0].subs(s, idealised_time) if len(solutions) == 1 else None
    return implicit, trajectory


def _real_branch(antiderivative: sp.Expr, weight: sp.Expr) -> sp.Expr:
    """sympy's log branch can leave i*pi terms; the margin runs from 0 towards the nearest fixed point r* > 0,
    so write r = r* - y with y > 0, simplify, and substitute back."""
    fixed = sp.solveset(weight, r, sp.S.Reals)
    ahead = [p for p in fixed if p.is_positive] if isinstance(fixed, sp.FiniteSet) else []
    if not ahead:
        return antiderivative
    nearest, y = min(ahead), sp.Symbol("y", positive=True)
    real = sp.simplify(antiderivative.subs(r, nearest - y))
    return antiderivative if real.has(sp.I) else real.subs(y, nearest - r)


def _satisfies(antiderivative: sp.Expr, solution: sp.Expr, s: sp.Symbol) -> bool:
    """G(r(s)) = s with G(r) = int_0^r dx/w(x), which is the ODE dr/ds = w(r) with r(0) = 0.

    sympy does not apply W(z) e^{W(z)} = z by itself, so each Lambert W(z(s)) becomes a symbol w and s
    is eliminated through z(s) = w e^w (the substitution is verified, not assumed).
    """
    residual = antiderivative.subs(r, solution) - s
    for lambert in solution.atoms(sp.LambertW):
        w = sp.Symbol("w", positive=True)
        s_of_w = sp.solve(sp.Eq(lambert.args[0], w * sp.exp(w)), s)
        if len(s_of_w) != 1:
            return False
        residual = residual.subs(lambert, w).subs(s, s_of_w[0])
    return sp.simplify(sp.expand_log(sp.expand(residual), force=True)) == 0


def derive_objective(loss: PreferenceLoss) -> ObjectiveDerivation:
    weight = loss.weight
    fixed = sp.solveset(weight, r, sp.S.Reals)
    implicit, trajectory = idealised_trajectory(weight)
    return ObjectiveDerivation(loss, weight, margin_dynamics_equation(loss), fixed, implicit, trajectory)
