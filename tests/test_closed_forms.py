"""Closed forms: the idealised DPO margin u - W0(e^u) and the IPO linear system (SPEC §2.5, §7 item 4).

Numeric comparisons with scipy's solve_ivp use a tolerance derived from the solver, not tuned: both ODEs
are contractive (d/dr of the right side is <= 0: -c sigma(1 - sigma) for DPO, -(2 beta^2/(N tau)) M with M
positive semidefinite for IPO), so local errors do not grow and the global error is at most the sum of the
per-step local errors, each kept by the solver below atol + rtol |y|. The closed forms are evaluated with
mpmath at 30 digits, so their own error is below one float64 ulp.
"""
import functools
from fractions import Fraction

import mpmath
import numpy as np
import sympy as sp
from hypothesis import given, strategies as st
from scipy.integrate import solve_ivp

from theory import symbols
from theory.closed_forms import (derive_idealised_margin, derive_ipo_margins, idealised_margin, idealised_rate,
                                 ipo_margins, ipo_ode_residual, margin_at_tau_1,
                                 symmetric_matrix)
from theory.losses import DPO, IPO
from theory.training_guarantee import THEOREM_4_2

RTOL, ATOL = 1e-10, 1e-12


def solve(fun, T, y0):
    return solve_ivp(fun, (0, T), y0, method="DOP853", rtol=RTOL, atol=ATOL)


def solver_tolerance(fun, sol, scale: float) -> float:
    """A-posteriori error of `sol`: its distance to a solve 1000x tighter, at the same (accepted) steps.

    The step controller's rtol is a target, not a bound (a single step can exceed it), so the error is
    measured rather than assumed; the reference's own error is <= 1/1000 of it, hence the factor 2.
    """
    reference = solve_ivp(fun, (0, sol.t[-1]), sol.y[:, 0], method="DOP853", rtol=RTOL / 1000, atol=ATOL / 1000,
                          t_eval=sol.t)
    return 2 * float(np.max(np.abs(sol.y - reference.y))) + 4 * np.finfo(float).eps * scale


def test_idealised_rate_is_derived_from_lemma_4_1():
    assert sp.simplify(idealised_rate() - 2 * symbols.beta**2 / symbols.K) == 0


def test_lambert_form_from_dsolve_satisfies_ode_and_initial_condition():
    res = derive_idealised_margin()
    assert res.holds and res.numbers["ODE residual"] == 0 and res.numbers["r(0)"] == 0
    assert sp.simplify(res.expressions["solution"] - idealised_margin()) == 0


def test_margin_at_tau_1_inside_theorem_4_2_envelope():
    value = sp.N(margin_at_tau_1(), 30)
    assert sp.log(3) / 40 < value < sp.log(3)
    assert abs(value - sp.Float("0.2081", 30)) < 5e-5  # SPEC §7 item 4 quotes 0.2081 (4 digits)


@given(K=st.integers(1, 64), beta=st.fractions(Fraction(1, 100), 4, max_denominator=100),
       tau=st.fractions(Fraction(1, 10), 100, max_denominator=100))
def test_lambert_form_matches_ode_solver(K, beta, tau):
    rate = float(idealised_rate().subs({symbols.beta: sp.Rational(beta.numerator, beta.denominator),
                                        symbols.K: K}))
    weight = sp.lambdify(symbols.r, DPO.weight, "math")
    tau_f = float(tau)
    tau_1 = float(THEOREM_4_2.conclusions["tau_1"].subs({symbols.K: K, symbols.tau: tau_f,
                                                          symbols.beta: float(beta)}))
    T = 3 * tau_1
    fun = lambda _, y: [rate * weight(y[0]) / tau_f]
    sol = solve(fun, T, [0.0])
    closed = sp.lambdify(symbols.t, idealised_margin().subs({symbols.beta: sp.Rational(beta.numerator, beta.denominator),
                                                            symbols.K: K, symbols.tau: sp.Rational(tau.numerator, tau.denominator)}),
                         "mpmath")
    with mpmath.workdps(30):
        exact = np.array([float(closed(mpmath.mpf(float(x)))) for x in sol.t])
    scale = float(np.max(np.abs(sol.y[0]))) + 1.0
    assert np.max(np.abs(sol.y[0] - exact)) <= solver_tolerance(fun, sol, scale)


def test_ipo_closed_form_solves_its_ode_for_symbolic_symmetric_M():
    res = derive_ipo_margins()
    assert res.holds


def test_ipo_closed_form_3x3_exact_and_uses_ipo_weight():
    M = sp.Matrix([[2, 1, 0], [1, 2, 0], [0, 0, 3]])
    assert ipo_ode_residual(M) == sp.zeros(3, 1)
    assert IPO.weight == 2 - 2 * symbols.r  # what the ODE uses, derived from f(r) = (r - 1)^2


def test_ipo_residual_nonzero_for_wrong_rate():
    M = sp.Matrix([[2, 1], [1, 2]])
    wrong = (sp.eye(2) - (-symbols.beta**2 * M * symbols.t / (symbols.N * symbols.tau)).exp()) * sp.ones(2, 1)
    weights = wrong.applyfunc(lambda x: IPO.weight.subs(symbols.r, x))
    residual = sp.simplify(symbols.tau * wrong.diff(symbols.t) - (symbols.beta**2 / symbols.N) * M * weights)
    assert residual != sp.zeros(2, 1)


@functools.lru_cache(maxsize=1)
def generic_ipo_closed_form():
    """ipo_margins for a generic symmetric 2x2 M, lambdified once in (m_00, m_01, m_11, t, N); beta = tau = 1.

    sympy's generic 2x2 exp divides by m_01 and by sqrt((m_00 - m_11)^2 + 4 m_01^2): the strategy keeps m_01 != 0.
    """
    M = symmetric_matrix(2)
    expr = ipo_margins(M).subs({symbols.beta: 1, symbols.tau: 1})
    return sp.lambdify((M[0, 0], M[0, 1], M[1, 1], symbols.t, symbols.N), expr, "mpmath")


@st.composite
def psd_with_coupling(draw):
    """Symmetric positive semidefinite [[p, q], [q, s]] with q != 0 (p s >= q^2), like a Gram-Hadamard M."""
    q = draw(st.integers(1, 5)) * draw(st.sampled_from([-1, 1]))
    p = draw(st.integers(1, 10))
    s = -(-q * q // p) + draw(st.integers(0, 5))
    return np.array([[p, q], [q, s]], dtype=float)


@given(M=psd_with_coupling(), N=st.integers(1, 50))
def test_ipo_closed_form_matches_ode_solver(M, N):
    T = 2.0 * N
    fun = lambda _, y: (M @ (2 * (1 - y))) / N
    sol = solve(fun, T, [0.0, 0.0])
    closed = generic_ipo_closed_form()
    with mpmath.workdps(30):
        m = [int(x) for x in (M[0, 0], M[0, 1], M[1, 1])]
        exact = np.array([[float(mpmath.re(x)) for x in closed(*m, mpmath.mpf(float(s)), N)] for s in sol.t]).T
    scale = float(np.max(np.abs(sol.y))) + 1.0
    assert np.max(np.abs(sol.y - exact)) <= solver_tolerance(fun, sol, scale)
