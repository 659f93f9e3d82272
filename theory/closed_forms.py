"""Closed-form margin trajectories: the idealised DPO model and the IPO linear system (SPEC §2.5, §7 item 4).

Idealised model: noise-free clusters (v = 0), disjoint tokens (Z = 1). Every sample then follows
tau dr/dt = (2 beta^2/K) sigma(-r), r(0) = 0, solved by r(t) = u - W_0(e^u), u = 1 + 2 beta^2 t/(K tau).
IPO: tau dr/dt = (beta^2/N) M (2(1 - r)) is linear, so r(t) = (I - exp(-2 beta^2 M t/(N tau))) 1.
The weights sigma(-r) and 2(1 - r) come from `theory.losses`, not retyped.
"""
from __future__ import annotations

import functools

import sympy as sp

from theory.concentration import expected_gram_entries
from theory.losses import DPO, IPO
from theory.objectives import idealised_time
from theory.statements import DerivationResult
from theory.symbols import K, N, Q, beta, r, t, tau
from theory.training_guarantee import THEOREM_4_2

margin = sp.Function("r")


def idealised_rate() -> sp.Expr:
    """The coefficient of sigma(-r) in tau dr/dt for the idealised model, from Lemma 4.1's sum.

    A sample of C_{i,+} sees Q samples of its own cluster (sharing +2, Gram 1 + l_b^2) and Q of C_{i,-}
    (sharing -2, Gram l_b^2 - 1), all with the same weight by symmetry; other pairs share no token.
    """
    gram = expected_gram_entries().expressions
    per_sample = 2 * gram["same_cluster_dot"] + (-2) * gram["opposite_cluster_dot"]
    return sp.simplify(beta**2 * Q * per_sample / N).subs(N, 2 * K * Q)


def idealised_ode() -> sp.Eq:
    return sp.Eq(tau * margin(t).diff(t), idealised_rate() * DPO.weight.subs(r, margin(t)))


def idealised_margin() -> sp.Expr:
    """r(t) = u - W_0(e^u), u = 1 + s with s = 2 beta^2 t/(K tau) the idealised time: the printed closed form."""
    u = 1 + idealised_time
    return u - sp.LambertW(sp.exp(u))


def derive_idealised_margin() -> DerivationResult:
    """dsolve the ODE, fix C1 by r(0) = 0, compare with `idealised_margin`, and verify by substitution.

    r(0) = C1 - W_0(e^{C1}) = 0 has the root C1 = 1 (W_0(e) = 1), unique since d/dC (C - W_0(e^C)) = 1/(1 + W_0) > 0.
    The ODE residual is checked in terms of w = W_0(e^u), using e^u = w e^w, i.e. u = w + log w.
    """
    general = sp.dsolve(idealised_ode(), margin(t)).rhs
    (C1,) = general.free_symbols - {beta, tau, K, t}
    at_zero = general.subs(t, 0)
    unique = sp.simplify(sp.diff(at_zero, C1).subs(sp.LambertW(sp.exp(C1)), sp.Symbol("w", positive=True)))
    particular = general.subs(C1, 1)
    matches = sp.simplify(particular - idealised_margin()) == 0 and sp.simplify(at_zero.subs(C1, 1)) == 0
    residual, initial = verify_idealised_margin()
    ok = matches and residual == 0 and initial == 0
    return DerivationResult(
        "Idealised DPO margin", {"dsolve general": general, "r(0) = 0 at C1": at_zero,
                                 "d/dC1 r(0)": unique, "solution": particular},
        {"ODE residual": residual, "r(0)": initial, "r(tau_1)": margin_at_tau_1()}, ok,
        "r(t) = u - W0(e^u), u = 1 + 2 beta^2 t/(K tau), solves the ODE with r(0) = 0" if ok else "mismatch",
    )


def verify_idealised_margin() -> tuple[sp.Expr, sp.Expr]:
    """(ODE residual, r(0)) of the closed form, both simplified; 0 and 0 when it solves the problem."""
    candidate = idealised_margin()
    rhs = idealised_ode().rhs.subs(margin(t), candidate)
    residual = tau * sp.diff(candidate, t) - rhs
    u = 1 + idealised_time
    w = sp.Symbol("w", positive=True)
    # W_0(e^u) -> w, then t from u = w + log w, which makes every e^{u - w} equal to w
    t_of_w = sp.solve(sp.Eq(u, w + sp.log(w)), t)[0]
    residual = sp.simplify(residual.subs(sp.LambertW(sp.exp(u)), w).subs(t, t_of_w))
    return residual, sp.simplify(candidate.subs(t, 0))


def margin_at_tau_1() -> sp.Expr:
    """r(tau_1) in the idealised model, tau_1 = K tau log 3/(5 beta^2) from Theorem 4.2."""
    return sp.simplify(idealised_margin().subs(t, THEOREM_4_2.conclusions["tau_1"]))


def symmetric_matrix(n: int, name: str = "m") -> sp.Matrix:
    return sp.Matrix(n, n, lambda i, j: sp.Symbol(f"{name}_{min(i, j)}{max(i, j)}"))  # complex: more general, and faster to simplify


def ipo_margins(M: sp.Matrix) -> sp.Matrix:
    """r(t) = (I - exp(-2 beta^2 M t/(N tau))) 1."""
    return sp.Matrix(_ipo_margins(sp.ImmutableMatrix(M)))


@functools.lru_cache(maxsize=16)
def _ipo_margins(M: sp.ImmutableMatrix) -> sp.ImmutableMatrix:
    n = M.shape[0]
    return sp.ImmutableMatrix((sp.eye(n) - (-2 * beta**2 * sp.Matrix(M) * t / (N * tau)).exp()) * sp.ones(n, 1))


def ipo_ode_residual(M: sp.Matrix) -> sp.Matrix:
    """tau dr/dt - (beta^2/N) M w(r), w = IPO.weight elementwise, at the closed form; zero vector if it solves."""
    R = ipo_margins(M)
    weights = R.applyfunc(lambda x: IPO.weight.subs(r, x))
    return sp.simplify(tau * R.diff(t) - (beta**2 / N) * M * weights)


def derive_ipo_margins(M: sp.Matrix | None = None) -> DerivationResult:
    """Verify the IPO closed form against its ODE and r(0) = 0, for a symbolic symmetric 2x2 M by default."""
    M = symmetric_matrix(2) if M is None else M
    residual = ipo_ode_residual(M)
    initial = sp.simplify(ipo_margins(M).subs(t, 0))
    ok = residual == sp.zeros(*residual.shape) and initial == sp.zeros(*initial.shape)
    return DerivationResult(
        "IPO linear system", {"M": M, "r(t)": ipo_margins(M), "ODE residual": residual, "r(0)": initial},
        {}, ok, "r(t) = (I - exp(-2 beta^2 M t/(N tau))) 1 solves tau r' = (beta^2/N) M 2(1 - r), r(0) = 0"
        if ok else "mismatch",
    )
