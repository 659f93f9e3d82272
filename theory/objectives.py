"""A new preference objective, derived the way §7 treats the GPO family.

For a loss f(r): the weight -f'(r) that replaces sigma(-r) in Eq. (3), the fixed points of the weight,
and the trajectory of the idealised model (noise-free clusters, disjoint tokens), where every training
margin obeys the scalar ODE  tau dr/dt = (2 beta^2 / K) w(r),  r(0) = 0  (SPEC §7 item 4).
"""
from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
from typing import Callable

import sympy as sp

from theory.lemma_4_1 import margin_dynamics_equation
from theory.losses import SYMPY_GAVE_UP, PreferenceLoss
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
    trajectory_note: str | None = None  # why there is none, when sympy ran out of time

    @property
    def fixed_points_found(self) -> bool:
        """False where sympy returned w(r) = 0 unsolved (a ConditionSet)."""
        return not self.fixed_points.has(sp.ConditionSet)

    def report_lines(self) -> list[str]:
        """The derivation as `dpo-verify derive` prints it: one line per result, then the LaTeX."""
        lines = [f"loss              f(r) = {self.loss.f}",
                 f"weight            -f'(r) = {self.weight}   (replaces sigma(-r) in Eq. (3))",
                 f"margin dynamics   {self.margin_dynamics.lhs} = {self.margin_dynamics.rhs}"]
        if self.fixed_points_found:
            lines.append(f"fixed points      w(r) = 0 at r in {self.fixed_points}")
        else:
            lines.append(f"fixed points      not found in closed form (w(r) = {self.weight} = 0)")
        if self.trajectory is not None:
            lines.append(f"idealised model   r(t) = {self.trajectory}   (tau r' = (2 beta^2/K) w(r), r(0) = 0; verified)")
        elif self.implicit_trajectory is not None:
            lines.append(f"idealised model   no closed form found; implicit relation: {self.implicit_trajectory}")
        elif self.trajectory_note is not None:
            lines.append(f"idealised model   no closed form found {self.trajectory_note}")
        else:
            lines.append("idealised model   no closed form found (sympy cannot integrate 1/w(r))")
        lines.append("LaTeX:")
        return lines + [f"  {name}: {latex}" for name, latex in self.latex().items()]

    def latex(self) -> dict[str, str]:
        out = {"loss": sp.latex(self.loss.f), "weight": sp.latex(self.weight),
               "margin_dynamics": sp.latex(self.margin_dynamics), "fixed_points": sp.latex(self.fixed_points)}
        if self.implicit_trajectory is not None:
            out["implicit_trajectory"] = sp.latex(self.implicit_trajectory)
        if self.trajectory is not None:
            out["trajectory"] = sp.latex(sp.Eq(sp.Function("r")(t), self.trajectory))
        return out


def idealised_trajectory(weight: sp.Expr, step: Callable[[str], None] = lambda name: None
                         ) -> tuple[sp.Eq | None, sp.Expr | None]:
    """Separate variables: int_0^r dx / w(x) = s. Returns the implicit relation and, if solvable, r(t).

    Either part is None where sympy finds no closed form (it raises NotImplementedError, returns an
    unevaluated Integral, or returns no single verified solution): that is a result, not an error.
    """
    if weight.has(sp.Heaviside, sp.sign, sp.Piecewise, sp.Max, sp.Min, sp.Abs):
        return None, None  # kinks: sympy's integrals of 1/w do not come back in closed form
    # w = c * g with c > 0 a number (TRL's IPO has c = 1/(50 beta^2)): integrate 1/g and solve with c moved
    # to the time side. A large c left in front of a log lets sympy's logcombine raise a number to the
    # power c, which at c = 10**12 no time limit can interrupt.
    scale, shape = weight.as_content_primitive()
    x, s = sp.Dummy("x", real=True), sp.Symbol("s", positive=True)
    step("the idealised trajectory: integral of 1/w(r)")
    try:
        antiderivative = sp.integrate(1 / shape.subs(r, x), (x, 0, r))
    except SYMPY_GAVE_UP:
        return None, None
    if antiderivative.has(sp.Integral) or antiderivative.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
        return None, None
    if antiderivative.has(sp.I):
        try:
            antiderivative = _real_branch(antiderivative, shape)
        except SYMPY_GAVE_UP:
            pass  # keep sympy's complex branch: still a valid antiderivative
    implicit = sp.Eq(antiderivative, scale * idealised_time)
    step("the idealised trajectory: solving for r(t)")
    try:  # NotImplementedError "multiple generators": no algorithm for this transcendental equation
        candidates = sp.solve(sp.Eq(antiderivative, s), r)
    except SYMPY_GAVE_UP:
        return implicit, None
    step("the idealised trajectory: checking r(t)")
    solutions = [sol for sol in candidates if isinstance(sol, sp.Expr) and _starts_at_zero_and_satisfies(antiderivative, sol, s)]
    trajectory = solutions[0].subs(s, scale * idealised_time) if len(solutions) == 1 else None
    return implicit, trajectory


def _real_branch(antiderivative: sp.Expr, weight: sp.Expr) -> sp.Expr:
    """sympy's log branch can leave i*pi terms; the margin runs from 0 towards the nearest fixed point r* > 0,
    so write r = r* - y with y > 0, simplify, and substitute back."""
    fixed = fixed_points(weight)
    ahead = [p for p in fixed if p.is_positive] if isinstance(fixed, sp.FiniteSet) else []
    try:
        nearest = min(ahead) if ahead else None
    except TypeError:  # sympy cannot order these roots
        nearest = None
    if nearest is not None:
        y = sp.Symbol("y", positive=True)
        real = sp.simplify(antiderivative.subs(r, nearest - y))
        if not real.has(sp.I):
            return real.subs(y, nearest - r)
    return _flip_negative_logs(antiderivative, weight)


def _flip_negative_logs(antiderivative: sp.Expr, weight: sp.Expr) -> sp.Expr:
    """log(u) with u(0) < 0 is log(-u) + i*pi on the margin's interval; keep the result only if the i*pi
    terms cancel and it is still an antiderivative of 1/w vanishing at 0 (checked, not assumed)."""
    flips = {}
    for term in antiderivative.atoms(sp.log):
        at_start = term.args[0].subs(r, 0)
        if at_start.is_extended_real and at_start.is_negative:
            flips[term] = sp.log(-term.args[0]) + sp.I * sp.pi
    if not flips:
        return antiderivative
    candidate = sp.expand(antiderivative.xreplace(flips))
    if candidate.has(sp.I) or sp.simplify(candidate.subs(r, 0)) != 0:
        return antiderivative
    if sp.simplify(sp.diff(candidate, r) - 1 / weight) != 0:
        return antiderivative
    return candidate


def _starts_at_zero_and_satisfies(antiderivative: sp.Expr, solution: sp.Expr, s: sp.Symbol) -> bool:
    try:
        return sp.simplify(solution.subs(s, 0)) == 0 and _satisfies(antiderivative, solution, s)
    except SYMPY_GAVE_UP:  # sympy cannot decide: the candidate is not verified
        return False


def _satisfies(antiderivative: sp.Expr, solution: sp.Expr, s: sp.Symbol) -> bool:
    """G(r(s)) = s with G(r) = int_0^r dx/w(x), which is the ODE dr/ds = w(r) with r(0) = 0.

    sympy does not apply W(z) e^{W(z)} = z by itself, so each Lambert W(z(s)) becomes a symbol w and s
    is eliminated through z(s) = w e^w (the substitution is verified, not assumed).
    """
    residual = eliminate_lambert_w(antiderivative.subs(r, solution) - s, solution, s)
    return residual is not None and residual == 0


def eliminate_lambert_w(residual: sp.Expr, solution: sp.Expr, variable: sp.Symbol) -> sp.Expr | None:
    """The residual with each Lambert W(z(variable)) of `solution` replaced by a symbol w and `variable`
    eliminated through z = w e^w (verified by solving, not assumed), simplified; None where z = w e^w does not
    give `variable` uniquely."""
    for lambert in solution.atoms(sp.LambertW):
        w = sp.Symbol("w", positive=True)
        in_w = sp.solve(sp.Eq(lambert.args[0], w * sp.exp(w)), variable)
        if len(in_w) != 1:
            return None
        residual = residual.subs(lambert, w).subs(variable, in_w[0])
    return sp.simplify(sp.expand_log(sp.expand(residual), force=True))


def fixed_points(weight: sp.Expr) -> sp.Set:
    """The real roots of w(r); a ConditionSet {r | w(r) = 0} where sympy cannot solve for them."""
    try:
        return sp.solveset(weight, r, sp.S.Reals)
    except SYMPY_GAVE_UP:
        return sp.ConditionSet(r, sp.Eq(weight, 0), sp.S.Reals)


def derive_objective(loss: PreferenceLoss, step: Callable[[str], None] = lambda name: None,
                     trajectory_seconds: float | None = None) -> ObjectiveDerivation:
    """Weight, fixed points, margin dynamics and idealised trajectory of `loss`.

    `step(name)` is called as each stage starts, so that a time limit can say where sympy was. The
    trajectory, the one optional result, gets its own `trajectory_seconds`; past them it is reported as not
    found in that time and the derivation goes on.
    """
    step("the weight -f'(r)")
    weight = loss.weight
    step("the fixed points w(r) = 0")
    fixed = fixed_points(weight)
    note = None
    if trajectory_seconds is None:
        implicit, trajectory = idealised_trajectory(weight, step)
    else:
        inner = SymbolicTimeLimit(trajectory_seconds, "the idealised trajectory")
        try:
            with inner:
                implicit, trajectory = idealised_trajectory(weight, lambda name: (step(name), inner.step(name)))
        except SymbolicTimeout as timeout:
            if getattr(timeout, "limit", None) is not inner:
                raise
            implicit, trajectory = None, None
            note = f"within {trajectory_seconds:g} s of sympy (it was at: {timeout.step})"
    step("the margin dynamics")
    return ObjectiveDerivation(loss, weight, margin_dynamics_equation(loss), fixed, implicit, trajectory, note)


# --- a wall-clock limit on sympy --------------------------------------------------------------------
# sympy has no cancellation hook and a thread cannot be stopped, so the only way to end a solve or an
# integral that runs too long, short of a subprocess, is a signal: SIGALRM raises in the main thread
# between two Python bytecodes. C-level integer arithmetic cannot be interrupted this way, which is why
# `theory.losses` bounds the numbers a loss can make sympy build.
class SymbolicTimeout(BaseException):
    """sympy ran past its time limit. A BaseException, like KeyboardInterrupt, so that sympy's own
    `except Exception` handlers cannot swallow it."""

    def __init__(self, seconds: float, step: str):
        super().__init__(f"sympy did not finish in {seconds:g} s: {step}")
        self.seconds, self.step = seconds, step


class SymbolicTimeLimit:
    """`with SymbolicTimeLimit(30) as limit: ...; limit.step("solving")`: raises SymbolicTimeout naming the
    step in progress once `seconds` have passed. Active only in the main thread of a POSIX process (where
    SIGALRM exists); elsewhere the work runs without a limit. The timer is cancelled and the previous
    SIGALRM handler and timer restored when the block ends, however it ends."""

    REPEAT_SECONDS = 1.0  # the alarm repeats in case a bare `except:` inside sympy swallowed one

    def __init__(self, seconds: float, first_step: str = "starting"):
        if not seconds > 0:
            raise ValueError(f"a time limit must be > 0 seconds, got {seconds}")
        self.seconds, self.current_step = seconds, first_step
        self._armed = False
        self._previous: tuple | None = None

    def step(self, name: str) -> None:
        self.current_step = name

    def _expire(self, signum, frame):
        if self._armed:
            timeout = SymbolicTimeout(self.seconds, self.current_step)
            timeout.limit = self  # which of nested limits expired
            raise timeout

    def __enter__(self) -> "SymbolicTimeLimit":
        if hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
            handler = signal.signal(signal.SIGALRM, self._expire)
            self._armed = True
            outer_timer = signal.setitimer(signal.ITIMER_REAL, self.seconds, self.REPEAT_SECONDS)
            self._previous = (handler, outer_timer, time.monotonic())
        return self

    def cancel(self) -> None:
        """Stop the timer and give SIGALRM back to whoever had it (idempotent)."""
        self._armed = False
        if self._previous is None:
            return
        handler, (outer_delay, outer_interval), started = self._previous
        self._previous = None
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, handler)
        if outer_delay > 0:  # an enclosing timer keeps its deadline
            remaining = max(outer_delay - (time.monotonic() - started), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, remaining, outer_interval)

    def __exit__(self, *exc) -> None:
        self.cancel()
