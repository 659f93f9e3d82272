"""Numeric side of `dpo-verify derive`: a derived objective checked against the torch trainers."""
from __future__ import annotations

import functools
import math
import sys
from dataclasses import dataclass

import numpy as np
import sympy as sp
import torch

from theory.errors import UserInputError
from theory.objectives import ObjectiveDerivation, idealised_time
from theory.symbols import K as K_symbol, beta as beta_symbol, t as t_symbol, tau as tau_symbol
from verify.data_model import DiverseValueDistribution
from verify.instances import random_instance
from verify.model import interaction_matrix, margin_velocity
from verify.symbolic import numpy_function
from verify.training import gradient_flow

# Both comparisons integrate with rtol 1e-10 (training) or 1e-12 (model); an adaptive solver's global
# error stays within about 100 local tolerances over the few hundred steps these runs take.
SOLVER_RTOL = 1e-10
AGREEMENT_TOLERANCE = 100 * SOLVER_RTOL

# What the ODE solvers raise when they cannot integrate: torchdiffeq asserts "underflow in dt" on stiff or
# blowing-up dynamics; torch raises RuntimeError; math on the step sizes can overflow.
_SOLVER_FAILURES = (AssertionError, RuntimeError, OverflowError, ZeroDivisionError)


@dataclass(frozen=True)
class NumericCheck:
    name: str
    error: float  # nan when the check could not run
    tolerance: float
    not_run: str | None = None  # why the check could not run: neither a pass nor a disagreement

    @property
    def passed(self) -> bool:
        return self.not_run is None and self.error <= self.tolerance


def check_numeric_beta(beta: float) -> None:
    """The check's times scale as 1/beta^2 and its speeds as beta^2: both must be normal finite float64.

    Raises UserInputError naming beta and the range, 1.5e-154 <= beta <= 6.7e153 (rounded inward).
    """
    squared = beta * beta  # float multiplication gives inf or 0, never OverflowError
    if not (math.isfinite(beta) and beta > 0 and sys.float_info.min <= squared and 1 / squared >= sys.float_info.min):
        low = math.sqrt(sys.float_info.min)
        high = math.sqrt(1 / sys.float_info.min)
        raise UserInputError(f"beta = {beta!r} is outside the numeric check's range {low:.2g} <= beta <= {high:.2g} "
                         f"(beta^2 and 1/beta^2 must be normal float64); use --no-numeric to derive only")


@functools.lru_cache(maxsize=None)
def _time_of_idealised_time():
    """t as a float function of (s, K, beta, tau), solved from `theory.objectives.idealised_time` = s."""
    s = sp.Symbol("s", positive=True)
    (time,) = sp.solve(sp.Eq(idealised_time, s), t_symbol)
    return sp.lambdify((s, K_symbol, beta_symbol, tau_symbol), time, "math")


def _time_at_idealised_time(s: float, K: int, beta: float, tau: float) -> float:
    return float(_time_of_idealised_time()(s, K, beta, tau))


def _not_run(name: str, tolerance: float, reason: str) -> NumericCheck:
    return NumericCheck(name, math.nan, tolerance, reason)


def _finite_error(name: str, tolerance: float, difference: torch.Tensor) -> NumericCheck:
    error = float(difference.abs().max())
    if not math.isfinite(error):
        return _not_run(name, tolerance, "the margins are not finite (the dynamics of this loss blow up)")
    return NumericCheck(name, error, tolerance)


def check_objective(derivation: ObjectiveDerivation, beta: float, seed: int = 0) -> list[NumericCheck]:
    """Lemma 4.1 for this loss (full-W flow vs margin ODE) and, if found, the idealised closed form.

    A check the solvers cannot carry out (stiff or exploding dynamics) comes back with `not_run` set.
    """
    check_numeric_beta(beta)
    loss, tau, K = derivation.loss, 1.0, 2
    horizon = _time_at_idealised_time(2.0, K, beta, tau)  # the idealised time runs to 2
    times = torch.linspace(0, horizon, 5, dtype=torch.float64)
    W0, data = random_instance(seed, 6, 4, 12)
    identity_name = "Lemma 4.1 with this loss: full-W flow vs margin ODE"
    # Run until the fastest initial margin would have moved by 1: long enough to test, short for stiff losses.
    # Where no margin moves at first (w(0) = 0), r = 0 is a fixed point and any horizon tests it.
    initial_speed = float(margin_velocity(torch.zeros(data.size, dtype=torch.float64), interaction_matrix(data), beta, tau, loss).abs().max())
    if not math.isfinite(initial_speed):
        checks = [_not_run(identity_name, 1e-8, f"the initial margin speed is not finite at beta = {beta:g}")]
    else:
        identity_end = 1.0 / initial_speed if initial_speed > 0 and math.isfinite(1.0 / initial_speed) else horizon
        identity_times = torch.linspace(0, identity_end, 5, dtype=torch.float64)
        try:
            difference = (gradient_flow(data, beta, tau, identity_times, loss, form="full", W0=W0).train_margins
                          - gradient_flow(data, beta, tau, identity_times, loss).train_margins)
            checks = [_finite_error(identity_name, 1e-8, difference)]
        except _SOLVER_FAILURES as failure:
            checks = [_not_run(identity_name, 1e-8, f"the ODE solver failed: {failure}")]
    if derivation.trajectory is not None:
        name = "idealised model (v = 0, disjoint tokens): trainer vs closed form"
        model = DiverseValueDistribution(K=K, d=K + 1, v=0.0, l_b=0.5)
        sample = model.sample([seed], Q=2)
        try:
            simulated = gradient_flow(sample, beta, tau, times, loss, rtol=SOLVER_RTOL, atol=SOLVER_RTOL / 100).train_margins[0]
        except _SOLVER_FAILURES as failure:
            return checks + [_not_run(name, AGREEMENT_TOLERANCE, f"the ODE solver failed: {failure}")]
        closed = numpy_function(derivation.trajectory.subs({K_symbol: K, beta_symbol: beta, tau_symbol: tau}), t_symbol)
        with np.errstate(all="ignore"):  # a non-finite value is reported below, not warned about
            predicted = np.broadcast_to(closed(times.numpy()), times.shape).copy()  # a constant r(t) comes back as a scalar
        checks.append(_finite_error(name, AGREEMENT_TOLERANCE, simulated - torch.as_tensor(predicted)[:, None]))
    return checks
