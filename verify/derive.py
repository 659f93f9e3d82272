"""Numeric side of `dpo-verify derive`: a derived objective checked against the torch trainers."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from theory.objectives import ObjectiveDerivation
from theory.symbols import K as K_symbol, beta as beta_symbol, t as t_symbol, tau as tau_symbol
from verify.data_model import DiverseValueDistribution
from verify.instances import random_instance
from verify.model import integrate_margin_ode, integrate_weight_flow, interaction_matrix, margin_velocity
from verify.symbolic import numpy_function
from verify.training import gradient_flow

# Both comparisons integrate with rtol 1e-10 (training) or 1e-12 (model); an adaptive solver's global
# error stays within about 100 local tolerances over the few hundred steps these runs take.
SOLVER_RTOL = 1e-10
AGREEMENT_TOLERANCE = 100 * SOLVER_RTOL


@dataclass(frozen=True)
class NumericCheck:
    name: str
    error: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.error <= self.tolerance


def check_objective(derivation: ObjectiveDerivation, beta: float, seed: int = 0) -> list[NumericCheck]:
    """Lemma 4.1 for this loss (full-W flow vs margin ODE) and, if found, the idealised closed form."""
    loss, tau, K = derivation.loss, 1.0, 2
    horizon = 2.0 * K * tau / (2 * beta**2)  # rescaled time s = 2 beta^2 t / (K tau) runs to 2
    times = torch.linspace(0, horizon, 5, dtype=torch.float64)
    W0, data = random_instance(seed, 6, 4, 12)
    # Run until the fastest initial margin would have moved by 1: long enough to test, short for stiff losses.
    initial_speed = float(margin_velocity(torch.zeros(data.size, dtype=torch.float64), interaction_matrix(data), beta, tau, loss).abs().max())
    identity_times = torch.linspace(0, 1.0 / initial_speed, 5, dtype=torch.float64)
    identity = float((integrate_weight_flow(W0, data, beta, tau, identity_times, loss)
                      - integrate_margin_ode(data, beta, tau, identity_times, loss)).abs().max())
    checks = [NumericCheck("Lemma 4.1 with this loss: full-W flow vs margin ODE", identity, 1e-8)]
    if derivation.trajectory is not None:
        model = DiverseValueDistribution(K=K, d=K + 1, v=0.0, l_b=0.5)
        sample = model.sample([seed], Q=2)
        simulated = gradient_flow(sample, beta, tau, times, loss, rtol=SOLVER_RTOL, atol=SOLVER_RTOL / 100).train_margins[0]
        closed = numpy_function(derivation.trajectory.subs({K_symbol: K, beta_symbol: beta, tau_symbol: tau}), t_symbol)
        error = float((simulated - torch.as_tensor(closed(times.numpy()))[:, None]).abs().max())
        checks.append(NumericCheck("idealised model (v = 0, disjoint tokens): trainer vs closed form", error, AGREEMENT_TOLERANCE))
    return checks
