"""The simulations behind the notebooks: each returns the paper's quantities as arrays; `verify.plots` draws them.

Every formula (r_L, r_U, tau_1, the idealised margin, the bounds) comes from the statement objects in
`theory/`, lambdified; nothing is retyped here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import sympy as sp
import torch

from theory.closed_forms import idealised_margin
from theory.generalization import THEOREM_4_3
from theory.numbers import float_at_most
from theory.objectives import ObjectiveDerivation
from theory.symbols import K as K_symbol, Q as Q_symbol, beta as beta_symbol, r, t as t_symbol, tau as tau_symbol
from theory.training_guarantee import THEOREM_4_2
from verify.data_model import DiverseValueDistribution
from verify.exact_risk import exact_risk
from verify.fits import LinearFit, linear_fit
from verify.instances import random_instance
from verify.model import autograd_gradient, symbolic_gradient
from verify.scaling_curves import ScalingCurves, scaling_curves  # noqa: F401  (notebook 03 imports them from here)
from verify.symbolic import numpy_function
from verify.training import adam, gradient_flow, tau_1, zero_one_risk


def _in_time(expr: sp.Expr, K: int, beta: float, tau: float):
    """A theory expression in t with K, beta, tau fixed, as a numpy function of t."""
    return numpy_function(expr.subs({K_symbol: K, beta_symbol: beta, tau_symbol: tau}), t_symbol)


# --- Lemma 4.1 (notebook 01) -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Lemma41Numeric:
    """Full-vocabulary gradient flow of W against the reduced form (Lemma 4.1's dynamics) on one random instance."""

    times: np.ndarray
    weight_flow: np.ndarray  # (T, N) margins from tau dW/dt = -grad_W L, autograd, full softmax
    margin_ode: np.ndarray  # (T, N) margins from the reduced form: the occurring rows only, margins linear in dW
    rtol: float

    @property
    def max_difference(self) -> float:
        return float(np.abs(self.weight_flow - self.margin_ode).max())


def chain_rule_against_autograd(seed: int = 0, vocabulary_size: int = 6, dimension: int = 4, samples: int = 12,
                                beta: float = 0.5) -> float:
    """max |grad_W L| difference between torch autograd and sympy's chain rule (Eq. 6's right side) at a random W."""
    W0, data = random_instance(seed, vocabulary_size, dimension, samples)
    W = W0 + torch.randn(W0.shape, generator=torch.Generator().manual_seed(seed + 1), dtype=W0.dtype)
    return float((autograd_gradient(W, W0, data, beta) - symbolic_gradient(W, W0, data, beta)).abs().max())


def lemma_4_1_numeric(seed: int = 0, vocabulary_size: int = 6, dimension: int = 4, samples: int = 12, beta: float = 0.5,
                      tau: float = 1.0, horizon: float = 10.0, points: int = 21, rtol: float = 1e-9) -> Lemma41Numeric:
    W0, data = random_instance(seed, vocabulary_size, dimension, samples)
    times = torch.linspace(0, horizon, points, dtype=torch.float64)
    # Both solvers at the same tolerance: their difference is solver error, O(100 rtol), not a modelling gap.
    flow = gradient_flow(data, beta, tau, times, form="full", W0=W0, rtol=rtol, atol=rtol / 100).train_margins[0]
    ode = gradient_flow(data, beta, tau, times, rtol=rtol, atol=rtol / 100).train_margins[0]
    return Lemma41Numeric(times.numpy(), flow.numpy(), ode.numpy(), rtol)


# --- Theorem 4.2 (notebook 02) -----------------------------------------------------------------------------
@dataclass(frozen=True)
class EnvelopeRun:
    """Training margins on P under gradient flow up to tau_1, with r_L, r_U and the idealised margin."""

    K: int
    Q: int
    l_b: float
    v: float
    d: int
    seed: int
    tau_1: float
    times: np.ndarray
    margins: np.ndarray  # (T, N)
    r_L: np.ndarray
    r_U: np.ndarray
    idealised: np.ndarray  # u - W_0(e^u), noise-free disjoint-token model

    @property
    def inside(self) -> bool:
        """r_L(t) <= r_i(t) <= r_U(t) for all recorded t <= tau_1 and all i (Theorem 4.2)."""
        return bool(((self.margins >= self.r_L[:, None]) & (self.margins <= self.r_U[:, None])).all())

    @property
    def at_tau_1(self) -> tuple[float, float]:
        return float(self.margins[-1].min()), float(self.margins[-1].max())


def _largest_admissible_noise(Q: int) -> float:
    """The largest float v with v <= 1/(32 sqrt Q), Theorem 4.2's condition read from the statement."""
    return float_at_most(THEOREM_4_2.v_boundary(Q))


def envelope_run(K: int, l_b: float, Q: int = 16, beta: float = 1.0, tau: float = 1.0, seed: int = 0,
                 points: int = 41) -> EnvelopeRun:
    """Inside Theorem 4.2's conditions: v = 1/(32 sqrt Q), d = min(5Q, 2K + 2) <= 5Q, disjoint tokens (Z = 1)."""
    v, d = _largest_admissible_noise(Q), min(5 * Q, 2 * K + 2)
    model = DiverseValueDistribution(K=K, d=d, v=v, l_b=l_b)
    horizon = tau_1(K, beta, tau)
    times = torch.linspace(0, horizon, points, dtype=torch.float64)
    margins = gradient_flow(model.sample([seed], Q), beta, tau, times).train_margins[0].numpy()
    grid = times.numpy()
    curve = lambda expr: np.broadcast_to(_in_time(expr, K, beta, tau)(grid), grid.shape).astype(float)
    return EnvelopeRun(K, Q, l_b, v, d, seed, horizon, grid, margins, curve(THEOREM_4_2.conclusions["r_L"]),
                       curve(THEOREM_4_2.conclusions["r_U"]), curve(idealised_margin()))


# --- Theorem 4.3 and the scaling law (notebook 03) -------------------------------------------------------
@dataclass(frozen=True)
class RiskRow:
    """The exact population risk at one Q (mean over the seeds' models, in log10: no underflow), Monte Carlo
    on test draws as the cross-check, and the bound."""

    Q: int
    v: float
    log10_risk: float  # log10 of the exact R(P), averaged over the seeds' models
    log10_risk_per_seed: tuple[float, ...]
    errors: int  # Monte Carlo: test errors pooled over the seeds
    n: int
    rate: float
    upper: float  # 95% Clopper–Pearson upper bound of the Monte Carlo rate
    bound: float  # 2 K Q^2 e^{-Q/45}

    @property
    def risk(self) -> float:
        """The exact mean risk as a float (0.0 where it underflows; log10_risk keeps it)."""
        return 10.0 ** self.log10_risk


def mean_log10_risk(exact) -> tuple[float, tuple[float, ...]]:
    """log10 of the mean of the seeds' exact risks (logsumexp, so nothing underflows), and each seed's log10 risk."""
    from scipy.special import logsumexp

    log_mean = float(logsumexp(exact.log_risk) - np.log(len(exact.log_risk)))
    return log_mean / np.log(10), tuple(float(x) for x in exact.log10_risk)


def risk_against_Q(K: int = 2, Qs: Sequence[int] = (8, 16, 32, 64), v_rule: str = "theorem", fixed_v: float = 0.5,
                   l_b: float = 0.5, test_size: int = 1000, seeds: Sequence[int] = (0, 1), beta: float = 1.0,
                   tau: float = 1.0) -> list[RiskRow]:
    """The exact risk R(P) of the implicit reward model at tau_1 (mean over seeds, log10) next to Theorem 4.3's
    bound, with the Monte Carlo error count on `test_size` draws per seed as the cross-check.

    v_rule "theorem": v = 1/(32 sqrt Q) (inside the conditions); "fixed": v = fixed_v (outside them).
    """
    if v_rule not in ("theorem", "fixed"):
        raise ValueError(f"v_rule must be 'theorem' or 'fixed', got {v_rule!r}")
    bound = numpy_function(THEOREM_4_3.conclusions["risk_bound"].subs(K_symbol, K), Q_symbol)
    rows = []
    for q in Qs:
        v = _largest_admissible_noise(q) if v_rule == "theorem" else fixed_v
        model = DiverseValueDistribution(K=K, d=min(5 * q, 2 * K + 2), v=v, l_b=l_b)
        result = gradient_flow(model.sample(list(seeds), q), beta, tau, [0.0, tau_1(K, beta, tau)],
                               test=model.test_set(list(seeds), test_size))
        log10_risk, per_seed = mean_log10_risk(exact_risk(model, list(seeds), result.rows, result.delta_rows, beta))
        risk = zero_one_risk(result.test_margins[:, -1].reshape(1, -1))
        rows.append(RiskRow(q, v, log10_risk, per_seed, int(risk.errors[0]), risk.n, float(risk.rate[0]),
                            float(risk.upper[0]), float(bound(q))))
    return rows


# --- Value diversity, the analogue of Fig. 5 (notebook 04) ----------------------------------------------
@dataclass(frozen=True)
class DiversityRun:
    """Mean train/test margins over time for one K and one trainer, and the final test error: the exact R(P)
    averaged over the seeds' models, with the Monte Carlo rate on the test draws (pooled) as the cross-check."""

    K: int
    trainer: str
    times: np.ndarray
    train_margin: np.ndarray  # (T,) mean over samples and seeds
    test_margin: np.ndarray
    test_error: float  # exact R(P), mean over seeds
    test_n: int  # Monte Carlo test draws, pooled over seeds
    monte_carlo_error: float = float("nan")


@dataclass(frozen=True)
class ValueDiversity:
    Ks: tuple[int, ...]
    Q: int
    d: int | None  # None: d = 2K + 2
    v: float
    l_b: float
    beta: float
    seeds: tuple[int, ...]
    runs: dict[tuple[str, int], DiversityRun]

    def test_errors(self, trainer: str) -> np.ndarray:
        return np.array([self.runs[trainer, K].test_error for K in self.Ks])

    def fit(self, trainer: str) -> LinearFit:
        return linear_fit(self.Ks, self.test_errors(trainer))


def value_diversity(Ks: Sequence[int] = (1, 2, 4, 8, 16), Q: int = 8, v: float = 0.5, l_b: float = 0.5, beta: float = 0.01,
                    lr: float = 1e-3, steps: int = 100, seeds: Sequence[int] = tuple(range(8)), test_size: int = 500,
                    points: int = 21, dimension: int | None = None) -> ValueDiversity:
    """Gradient flow and full-batch Adam (lr 1e-3, beta 0.01, 100 steps, §4) on P for each K.

    d = 2K + 2 (the smallest that holds b and the c_i) unless `dimension` fixes one d for every K. With disjoint
    tokens a test sample's margin only sees its own pair's training rows, so K reaches the test error only
    through d (the number of noise coordinates); a fixed d is the control for that.

    Flow runs with tau = beta^2, so flow time t equals the rescaled time beta^2 t/tau of Eq. (3), up to the
    largest K's tau_1; every K shares that horizon, as Fig. 5 shares the step count.
    """
    tau = beta**2
    horizon = tau_1(max(Ks), beta, tau)
    flow_times = torch.linspace(0, horizon, points, dtype=torch.float64)
    record = sorted({int(round(s)) for s in np.linspace(0, steps, points)})
    runs = {}
    for K in Ks:
        model = DiverseValueDistribution(K=K, d=dimension or 2 * K + 2, v=v, l_b=l_b)
        sample, test = model.sample(list(seeds), Q), model.test_set(list(seeds), test_size)
        for name, result in (("gradient flow", gradient_flow(sample, beta, tau, flow_times, test=test)),
                             ("Adam", adam(sample, beta, steps, lr=lr, record=record, test=test))):
            risk = zero_one_risk(result.test_margins[:, -1].reshape(1, -1))
            exact = float(np.mean(exact_risk(model, list(seeds), result.rows, result.delta_rows, beta).risk))
            runs[name, K] = DiversityRun(K, name, result.times.numpy(), result.train_margins.mean((0, 2)).numpy(),
                                         result.test_margins.mean((0, 2)).numpy(), exact, risk.n, float(risk.rate[0]))
    return ValueDiversity(tuple(Ks), Q, dimension, v, l_b, beta, tuple(seeds), runs)


# --- Other objectives (notebook 05) ------------------------------------------------------------------------
@dataclass(frozen=True)
class ObjectiveRun:
    """Training margins of one loss on one sample of P, with the idealised closed form when derive found one."""

    name: str
    weight_at_zero: float  # -f'(0): the initial speed relative to the shared factor (beta^2/(N tau)) M 1
    times: np.ndarray
    margins: np.ndarray  # (T, N)
    idealised: np.ndarray | None


def objective_dynamics(derivations: Sequence[ObjectiveDerivation], K: int = 2, Q: int = 8, v: float = 0.05,
                       l_b: float = 0.5, beta: float = 1.0, tau: float = 1.0, horizon: float = 4.0, points: int = 41,
                       seed: int = 0) -> list[ObjectiveRun]:
    """The same sample and the same flow (Eq. 3 with weight -f'(r_i)) for every loss; only the weight differs (§7)."""
    model = DiverseValueDistribution(K=K, d=2 * K + 2, v=v, l_b=l_b)
    sample = model.sample([seed], Q)
    times = torch.linspace(0, horizon, points, dtype=torch.float64)
    runs = []
    for derivation in derivations:
        loss = derivation.loss
        margins = gradient_flow(sample, beta, tau, times, loss).train_margins[0].numpy()
        ideal = None
        if derivation.trajectory is not None:
            ideal = np.broadcast_to(_in_time(derivation.trajectory, K, beta, tau)(times.numpy()), (points,)).astype(float)
        runs.append(ObjectiveRun(loss.name, float(derivation.weight.subs(r, 0)), times.numpy(), margins, ideal))
    return runs

