"""The data-model variants of `theory.data_variants`, simulated with the project's own trainer and compared.

Each check draws a training set from the sampler with the variant switched on (shares, flips, per-pair weights),
runs gradient flow in float64 from a fixed seed, and compares each value's mean margin (in the clean orientation:
a flipped pair's margin counts as -r) with the derived idealised dynamics tau dr_k/dt = rate_k(r_k), solved as a
scalar ODE to 1e-12 (or taken from the closed form where the statement has one). The statement is evaluated at
the realised data: each value's share 2 Q_k / N, flip rate m_k / Q_k and mean weight, as the sampler rounded them.

Tolerance. At v = 0 the idealised model is the data itself, so the margins agree up to the flow's solver error:
`AGREEMENT_TOLERANCE`. At v > 0 the tolerance adds `noise_bound`, a Gronwall bound on max_i |r_i - rho_i| from the
sample's own deviation of Lemma 4.1's interaction M from its v = 0 value (so it is derived from the noise scale
and the sample size of the draw, never tuned).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Sequence

import numpy as np
import sympy as sp
import torch
from scipy.integrate import solve_ivp
from scipy.optimize import brentq

from theory.data_variants import (LabelNoise, PairWeights, UnequalShares, derive_label_noise, derive_pair_weights,
                                  derive_unequal_shares, flip_rate, mean_weight, share)
from theory.errors import UserInputError
from theory.losses import DPO, PreferenceLoss
from theory.symbols import K as K_symbol
from theory.symbols import beta as beta_symbol
from theory.symbols import r as r_symbol
from theory.symbols import t as t_symbol
from theory.symbols import tau as tau_symbol
from verify.data_model import ClusterSample, DiverseValueDistribution
from verify.model import sharing_matrix
from verify.symbolic import numpy_function
from verify.trainers import RTOL, gradient_flow

# The flow runs at rtol = RTOL; dopri5's global error stays within about 100 local tolerances over the few
# hundred steps these runs take (as in `verify.derive`).
AGREEMENT_TOLERANCE = 100 * RTOL
# The scalar ODE of the prediction is solved 100x tighter than the flow, so its own error is negligible.
PREDICTION_RTOL = 1e-12
PREDICTION_ATOL = 1e-14
# Points of the dense prediction grid on which sup |w(rho)| and the range of the margins are taken.
DENSE_POINTS = 4001


@dataclass(frozen=True)
class VariantCheck:
    """One comparison: `error` and `tolerance` at the recorded time where error/tolerance is largest."""

    name: str
    error: float
    tolerance: float
    details: dict[str, Any] = field(default_factory=dict)
    scale: float = math.inf  # the size of what is compared (largest predicted |margin|); a tolerance above it is vacuous
    not_run: str | None = None  # why the comparison was not made: neither a pass nor a failure

    @property
    def passed(self) -> bool:
        return self.not_run is None and math.isfinite(self.error) and self.error <= self.tolerance

    @property
    def vacuous(self) -> bool:
        """The tolerance is at least the compared margins themselves: the check could not have failed."""
        return self.tolerance >= self.scale

    @property
    def verdict(self) -> str:
        return "NOT RUN" if self.not_run else "FAIL" if not self.passed else "VACUOUS" if self.vacuous else "PASS"

    def __str__(self) -> str:
        if self.not_run:
            return f"{self.verdict}  {self.name}: {self.not_run}"
        relation = "<=" if self.passed else ">"
        return f"{self.verdict}  {self.name}: error {self.error:.3e} {relation} tolerance {self.tolerance:.3e}"


@dataclass(frozen=True)
class VariantRun:
    """A simulated variant: margins in the clean orientation (B, T, N) and each value's mean (B, T, K), with the
    realised shares 2 Q_k / N, flip rates m_k / Q_k and mean weights of each value."""

    sample: ClusterSample
    times: np.ndarray
    beta: float
    tau: float
    loss: PreferenceLoss
    margins: np.ndarray
    value_means: np.ndarray
    shares: tuple[Fraction, ...]
    flip_rates: tuple[Fraction, ...]
    mean_weights: tuple[float, ...]


def simulate(distribution: DiverseValueDistribution, Q: int, times: Sequence[float], *, flip_rate: float = 0.0,
             weights=None, loss: PreferenceLoss = DPO, beta: float = 1.0, tau: float = 1.0,
             seeds: Sequence[int] = (0,)) -> VariantRun:
    """Sample the variant and run gradient flow (float64, the trainers' default tolerances) at `times`."""
    sample = distribution.sample(list(seeds), Q, flip_rate=flip_rate, weights=weights)
    result = gradient_flow(sample, beta, tau, list(times), loss)
    sign = torch.ones_like(sample.features[..., 0]) if sample.flipped is None else 1 - 2 * sample.flipped.to(sample.features.dtype)
    margins = (result.train_margins * sign[:, None, :]).numpy()
    value = (sample.cluster[0] // 2).numpy()
    K = distribution.K
    means = np.stack([margins[..., value == k].mean(-1) for k in range(K)], -1)
    sizes = sample.cluster_sizes
    flipped = np.zeros(sample.size, dtype=bool) if sample.flipped is None else sample.flipped[0].numpy()
    counts = [int(flipped[value == k].sum()) for k in range(K)]
    weight_values = np.ones(sample.size) if sample.weights is None else sample.weights[0].numpy()
    return VariantRun(sample, np.asarray(times, dtype=float), beta, tau, loss, margins, means,
                      tuple(Fraction(2 * sizes[2 * k], sample.size) for k in range(K)),
                      tuple(Fraction(counts[k], 2 * sizes[2 * k]) for k in range(K)),
                      tuple(float(weight_values[value == k].mean()) for k in range(K)))


# --- the prediction -----------------------------------------------------------------------------------------
def _exact(x) -> sp.Expr:
    return sp.Rational(x.numerator, x.denominator) if isinstance(x, Fraction) else sp.Float(x, 30) if isinstance(x, float) else x


def rate_at(rate: sp.Expr, *, K: int, beta: float, tau: float, p, eta=Fraction(0), wbar=1.0) -> sp.Expr:
    """A statement's tau dr/dt at numbers (p, eta exact fractions or floats), in r only (a ValueError otherwise)."""
    values = {share: _exact(p), flip_rate: _exact(eta), mean_weight: _exact(float(wbar)), K_symbol: K,
              beta_symbol: _exact(float(beta)), tau_symbol: _exact(float(tau))}
    expr = rate.subs(values)
    if expr.free_symbols - {r_symbol}:
        raise ValueError(f"the rate {rate} keeps {sorted(map(str, expr.free_symbols - {r_symbol}))} at these numbers")
    return expr


def value_rate(rate: sp.Expr, run: VariantRun, k: int) -> sp.Expr:
    """`rate_at` for value k at the run's realised share, flip rate and mean weight."""
    return rate_at(rate, K=run.sample.distribution.K, beta=run.beta, tau=run.tau, p=run.shares[k],
                   eta=run.flip_rates[k], wbar=run.mean_weights[k])


def _integrate(rate_in_r: sp.Expr, tau: float, end: float, events=None):
    speed = numpy_function(rate_in_r / _exact(float(tau)), r_symbol)
    solution = solve_ivp(lambda _, y: np.broadcast_to(speed(y), y.shape), (0.0, end), [0.0], method="DOP853",
                         rtol=PREDICTION_RTOL, atol=PREDICTION_ATOL, dense_output=True, events=events)
    if solution.status < 0:
        raise ValueError(f"the predicted trajectory could not be integrated: {solution.message}")
    return solution


def predicted_trajectory(rate: sp.Expr, run: VariantRun, k: int, times: np.ndarray) -> np.ndarray:
    """rho_k at `times`: tau drho/dt = rate(rho), rho(0) = 0, by DOP853 at PREDICTION_RTOL."""
    return _integrate(value_rate(rate, run, k), run.tau, float(times[-1])).sol(times)[0]


def closed_form_trajectory(trajectory: sp.Expr, run: VariantRun, k: int, times: np.ndarray) -> np.ndarray:
    """A statement's closed-form r_k(t) at the run's numbers, evaluated at `times`."""
    expr = trajectory.subs({share: _exact(run.shares[k]), K_symbol: run.sample.distribution.K,
                            beta_symbol: _exact(float(run.beta)), tau_symbol: _exact(float(run.tau))})
    if expr.free_symbols - {t_symbol}:
        raise ValueError(f"the trajectory {trajectory} keeps {sorted(map(str, expr.free_symbols - {t_symbol}))}")
    with np.errstate(all="ignore"):
        return np.broadcast_to(numpy_function(expr, t_symbol)(times), times.shape).astype(float)


# --- the tolerance at v > 0 -----------------------------------------------------------------------------------
@functools.lru_cache(maxsize=32)
def _weight_function(loss: PreferenceLoss):
    return numpy_function(loss.weight, r_symbol)


@functools.lru_cache(maxsize=32)
def _slope_function(loss: PreferenceLoss):
    """w'(r), or None where w has a jump (a Dirac delta in w'): then no Lipschitz constant exists."""
    slope = sp.diff(loss.weight, r_symbol)
    if slope.has(sp.DiracDelta, sp.Derivative, sp.Subs):
        return None
    return numpy_function(slope, r_symbol)


def noise_bound(run: VariantRun, dense_predictions: np.ndarray, observed_deviation: float) -> np.ndarray:
    """A bound E(t) on max_i |r_i(t) - rho_i(t)| at the run's times, worst over trials.

    With rho_i = +-rho_{k(i)} (minus for a flipped pair) the idealised margins, which satisfy Eq. (3) with the v = 0
    interaction Mbar (cluster means) exactly, e_i = r_i - rho_i obeys
        tau de_j/dt = (beta^2/N) sum_i c_i [M_ji (w(r_i) - w(rho_i)) + (M_ji - Mbar_ji) w(rho_i)],
    so tau dE/dt <= A E + B with A = (beta^2/N) L max_j sum_i c_i |M_ji| (L = sup |w'| on the margins' range) and
    B = (beta^2/N) max_j sum_i c_i |M_ji - Mbar_ji| sup |w(rho)|, and E(t) <= (B/A)(exp(A t/tau) - 1).
    `dense_predictions` (K, n) are the rho_k on a dense time grid, for the sups; L is taken on their range (and its
    mirror, for flipped pairs) widened by `observed_deviation`, the largest |r_i - rho_i| at the recorded times.
    """
    sample, beta, tau = run.sample, run.beta, run.tau
    weight, slope = _weight_function(run.loss), _slope_function(run.loss)
    both = np.concatenate([dense_predictions, -dense_predictions], 1)
    low, high = float(both.min()) - observed_deviation, float(both.max()) + observed_deviation
    grid = np.linspace(low, high, DENSE_POINTS)
    with np.errstate(all="ignore"):
        lipschitz = math.inf if slope is None else float(np.max(np.abs(np.broadcast_to(slope(grid), grid.shape))))
        weight_sup = float(np.max(np.abs(np.broadcast_to(weight(both), both.shape))))
    bounds = np.zeros((sample.batch_size, len(run.times)))
    for b in range(sample.batch_size):
        trial = sample.trial(b)
        P = sharing_matrix(trial)
        M = P * (trial.features @ trial.features.T)
        centres = sample.means[b][sample.cluster[b]]
        deviation_matrix = (M - P * (centres @ centres.T)).abs()
        c = torch.ones(sample.size, dtype=M.dtype) if sample.weights is None else sample.weights[b]
        scale = beta**2 / sample.size
        B = scale * float((deviation_matrix * c).sum(1).max()) * weight_sup
        A = scale * lipschitz * float((M.abs() * c).sum(1).max())
        if B == 0:
            continue
        if not (math.isfinite(A) and math.isfinite(B)):
            bounds[b] = math.inf
        elif A == 0:
            bounds[b] = B * run.times / tau
        else:
            bounds[b] = B / A * np.expm1(A * run.times / tau)
    return bounds.max(0)


# --- comparisons ------------------------------------------------------------------------------------------------
def compare(name: str, run: VariantRun, rate: sp.Expr, trajectory: sp.Expr | None = None,
            details: dict | None = None) -> VariantCheck:
    """Each value's mean margin against its predicted trajectory at every recorded time (all trials).

    tolerance(t) = AGREEMENT_TOLERANCE + noise_bound(t) (the latter 0 at v = 0)."""
    K = run.sample.distribution.K
    dense_times = np.linspace(0.0, float(run.times[-1]), DENSE_POINTS)
    if trajectory is not None:
        predicted = np.stack([closed_form_trajectory(trajectory, run, k, run.times) for k in range(K)], -1)
        dense = np.stack([closed_form_trajectory(trajectory, run, k, dense_times) for k in range(K)])
    else:
        dense = np.stack([predicted_trajectory(rate, run, k, dense_times) for k in range(K)])
        predicted = np.stack([predicted_trajectory(rate, run, k, run.times) for k in range(K)], -1)
    error = np.abs(run.value_means - predicted[None]).max(axis=(0, 2))  # (T,)
    bound = np.zeros_like(error)
    if run.sample.distribution.v > 0:
        per_sample = predicted[:, (run.sample.cluster[0] // 2).numpy()]  # (T, N), clean orientation
        bound = noise_bound(run, dense, float(np.max(np.abs(run.margins - per_sample[None]))))
    tolerance = AGREEMENT_TOLERANCE + bound
    ratio = np.where(np.isfinite(error), error / tolerance, math.inf)
    worst = int(np.argmax(ratio))
    out = {"time": float(run.times[worst]), "noise_bound": float(bound[worst]), "solver_tolerance": AGREEMENT_TOLERANCE,
           "realised_shares": tuple(float(p) for p in run.shares), "realised_flip_rates": tuple(float(x) for x in run.flip_rates),
           "mean_weights": run.mean_weights, "v": run.sample.distribution.v, "seeds": run.sample.seeds,
           "prediction": "closed form" if trajectory is not None else "scalar ODE of the derived rate"}
    out.update(details or {})
    return VariantCheck(name, float(error[worst]), float(tolerance[worst]), out, float(np.max(np.abs(predicted))))


def _distribution(K: int, v: float, l_b: float, shares=None, d: int | None = None) -> DiverseValueDistribution:
    return DiverseValueDistribution(K, K + 1 if d is None else d, v, l_b, shares=shares)


def _time_grid(horizon: float, K: int, beta: float, tau: float, points: int) -> np.ndarray:
    """`points` times up to an equal-split idealised time s = 2 beta^2 t/(K tau) of `horizon`."""
    return np.linspace(0.0, horizon * K * tau / (2 * beta**2), points)


def _jump_reason(loss: PreferenceLoss) -> str | None:
    """Why the comparisons cannot be made for this loss, or None: a weight with a jump (SLiC's 1[r < 1]) puts a
    discontinuity in the flow's right-hand side, where the solvers' error is not bounded by their tolerance."""
    if _slope_function(loss) is None:
        return (f"w(r) = {loss.weight} jumps, and at a jump the ODE solvers' error is not bounded by their tolerance, "
                "so no tolerance can be derived")
    return None


def _not_run(name: str, reason: str) -> VariantCheck:
    return VariantCheck(name, math.nan, AGREEMENT_TOLERANCE, {}, math.inf, reason)


@functools.lru_cache(maxsize=32)
def _shares_statement(loss: PreferenceLoss) -> UnequalShares:
    return derive_unequal_shares(loss.weight)


@functools.lru_cache(maxsize=32)
def _noise_statement(loss: PreferenceLoss) -> LabelNoise:
    return derive_label_noise(loss.weight)


@functools.lru_cache(maxsize=32)
def _weights_statement(loss: PreferenceLoss) -> PairWeights:
    return derive_pair_weights(loss.weight)


def check_shares(shares: Sequence[float] = (0.7, 0.2, 0.1), *, Q: int = 10, v: float = 0.0, l_b: float = 0.5,
                 loss: PreferenceLoss = DPO, beta: float = 1.0, tau: float = 1.0, seeds: Sequence[int] = (0,),
                 horizon: float = 3.0, points: int = 7, statement: UnequalShares | None = None) -> VariantCheck:
    """Unequal shares: each value's mean margin vs tau dr_k/dt = 2 beta^2 p_k w(r_k) (closed form where derived)."""
    name = f"unequal shares {tuple(shares)} (v = {v:g}): value margins vs 2 beta^2 p_k w(r)"
    if _jump_reason(loss):
        return _not_run(name, _jump_reason(loss))
    statement = _shares_statement(loss) if statement is None else statement
    K = len(shares)
    run = simulate(_distribution(K, v, l_b, tuple(shares)), Q, _time_grid(horizon, K, beta, tau, points),
                   loss=loss, beta=beta, tau=tau, seeds=seeds)
    return compare(name, run, statement.rate, statement.trajectory, {"derivation_holds": statement.holds})


def check_label_noise(flip_rate: float = 0.1, *, K: int = 2, Q: int | None = None, v: float = 0.0, l_b: float = 0.5,
                      loss: PreferenceLoss = DPO, beta: float = 1.0, tau: float = 1.0, seeds: Sequence[int] = (0,),
                      points: int = 9, settle: float = 1e-10, statement: LabelNoise | None = None) -> list[VariantCheck]:
    """Label noise: the value margins vs the derived expected-weight dynamics, and (at v = 0) their saturation at r*.

    At v = 0 the run lasts until the statement's own dynamics bring the predicted margin within `settle` of its r*
    (`_settling_time`); the saturation check compares the final mean margins with r* within AGREEMENT_TOLERANCE +
    `settle`. A statement whose r* is not where its rate settles runs to the time limit and fails. At v > 0 the
    Gronwall tolerance grows exponentially with time, so the run stops at the equal-split idealised time 3 and only
    the trajectory is compared. Q = None takes the least Q >= 20 at which round(eta Q) stays below Q/2.
    """
    name = f"label noise eta = {flip_rate:g} (v = {v:g}): value margins vs 2 beta^2 p ((1-eta) w(r) - eta w(-r))"
    if _jump_reason(loss):
        return [_not_run(name, _jump_reason(loss))]
    statement = _noise_statement(loss) if statement is None else statement
    distribution = _distribution(K, v, l_b)
    if Q is None:
        # floor(eta Q + 1/2) < Q/2 holds once Q > 1/(1 - 2 eta)
        Q = max(20, math.floor(1 / (1 - 2 * Fraction(flip_rate))) + 1) if 0 <= flip_rate < 0.5 else 20
    realised = Fraction(sum(distribution.flip_counts(Q, flip_rate)), 2 * K * Q)
    targets = _fixed_points(statement, realised)
    end = _settling_time(statement, realised, targets["r*"], beta, tau, settle, K) if v == 0 else \
        float(_time_grid(3.0, K, beta, tau, 2)[-1])
    run = simulate(distribution, Q, np.linspace(0.0, end, points), flip_rate=flip_rate, loss=loss, beta=beta, tau=tau,
                   seeds=seeds)
    checks = [compare(name, run, statement.rate, None, {"derivation_holds": statement.holds})]
    if v == 0 and targets["r*"] is not None:
        star = targets["r*"]
        error = float(np.max(np.abs(run.value_means[:, -1, :] - star)))
        checks.append(VariantCheck(f"label noise eta = {flip_rate:g}: margins saturate at r* = {star:.12g}", error,
                                   AGREEMENT_TOLERANCE + settle,
                                   {"r*": star, "source": targets["source"], "time": float(run.times[-1]),
                                    "settle": settle, "realised_flip_rate": float(realised)}, abs(star)))
    return checks


def _fixed_points(statement: LabelNoise, eta: Fraction) -> dict[str, Any]:
    """r* at the realised flip rate: the statement's closed form, or the first sign change of the derived expected
    weight on r > 0 (brentq), or None where the weight never changes sign (eta = 0)."""
    if eta == 0:
        return {"r*": None, "source": "no flips: no fixed point"}
    if statement.fixed_point is not None:
        return {"r*": float(sp.N(statement.fixed_point.subs(flip_rate, _exact(eta)), 30)), "source": "closed form"}
    expected = numpy_function(statement.expected_weight.subs(flip_rate, _exact(eta)), r_symbol)
    grid = np.linspace(0.0, 100.0, 10001)
    values = np.broadcast_to(expected(grid), grid.shape)
    change = np.nonzero(np.sign(values[1:]) != np.sign(values[:-1]))[0]
    if not len(change):
        return {"r*": None, "source": "the expected weight keeps its sign on [0, 100]"}
    i = int(change[0])
    return {"r*": brentq(lambda x: float(expected(np.array([x]))[0]), grid[i], grid[i + 1], xtol=1e-14),
            "source": "numeric root of the derived expected weight"}


def _settling_time(statement: LabelNoise, eta: Fraction, star: float | None, beta: float, tau: float, settle: float,
                   K: int) -> float:
    """The first flow time at which the statement's dynamics (equal shares p = 1/K, flip rate eta) bring the predicted
    margin within `settle` of r*, found by an event of the scalar ODE. It is searched up to 4 log(r*/settle)/lambda in
    units of s = 2 beta^2 t/(K tau), lambda the derived contraction rate at r* (100 where none is derived); the
    limit itself where the event never fires. Without r*: the equal-split time s = 3."""
    if star is None:
        return float(_time_grid(3.0, K, beta, tau, 2)[-1])
    contraction = None
    if statement.fixed_point is not None and statement.contractions:
        index = statement.fixed_points.index(statement.fixed_point)
        contraction = float(sp.N(statement.contractions[index].subs(flip_rate, _exact(eta)), 30))
    s_limit = 4 * math.log(max(abs(star), 1.0) / settle) / contraction if contraction and contraction > 0 else 100.0
    limit = s_limit * K * tau / (2 * beta**2)
    rate = rate_at(statement.rate, K=K, beta=beta, tau=tau, p=Fraction(1, K), eta=eta)
    arrived = lambda _, y: abs(y[0] - star) - settle
    arrived.terminal = True
    solution = _integrate(rate, tau, limit, events=arrived)
    return float(solution.t_events[0][0]) if len(solution.t_events[0]) else limit


def check_pair_weights(weights: Sequence[float] = (1.0, 3.0), *, Q: int = 10, v: float = 0.0, l_b: float = 0.5,
                       loss: PreferenceLoss = DPO, beta: float = 1.0, tau: float = 1.0, seeds: Sequence[int] = (0,),
                       horizon: float = 3.0, points: int = 7, statement: PairWeights | None = None) -> VariantCheck:
    """Per-pair weights constant on each value: each value's mean margin vs 2 beta^2 p_k wbar_k w(r)."""
    name = f"per-pair weights {tuple(weights)} (v = {v:g}): value margins vs 2 beta^2 p_k wbar_k w(r)"
    if _jump_reason(loss):
        return _not_run(name, _jump_reason(loss))
    statement = _weights_statement(loss) if statement is None else statement
    K = len(weights)
    run = simulate(_distribution(K, v, l_b), Q, _time_grid(horizon, K, beta, tau, points), weights=tuple(weights),
                   loss=loss, beta=beta, tau=tau, seeds=seeds)
    return compare(name, run, statement.rate, None, {"derivation_holds": statement.holds})


def run_variant_checks(loss: PreferenceLoss = DPO, *, shares: Sequence[float] | None = (0.7, 0.2, 0.1),
                       flip_rate: float | None = 0.1, weights: Sequence[float] | None = (1.0, 3.0), v: float = 0.0,
                       seeds: Sequence[int] = (0,)) -> list[VariantCheck]:
    """The three variant checks for one loss (None skips one), at v = 0 by default."""
    checks = []
    if shares is not None:
        checks.append(check_shares(tuple(shares), v=v, loss=loss, seeds=seeds, Q=_enough_samples(shares)))
    if flip_rate is not None:
        checks += check_label_noise(flip_rate, v=v, loss=loss, seeds=seeds)
    if weights is not None:
        checks.append(check_pair_weights(tuple(weights), v=v, loss=loss, seeds=seeds))
    return checks


def _enough_samples(shares: Sequence[float]) -> int:
    """The least Q (up to 1000) at which every quota p_k K Q is >= 1, so every value gets a sample per cluster."""
    K = len(shares)
    smallest = min(Fraction(p) for p in shares)
    Q = max(1, math.ceil(1 / (smallest * K)))
    if Q > 1000:
        raise UserInputError(f"shares: the smallest share {float(smallest):g} needs Q > 1000 samples per value")
    return Q


# --- the weighted Lemma 4.1, numerically ------------------------------------------------------------------------------
def check_weighted_lemma(seed: int = 0, *, vocabulary_size: int = 6, dimension: int = 4, samples: int = 12,
                         loss: PreferenceLoss = DPO, beta: float = 1.0, tau: float = 1.0, t_end: float = 2.0,
                         points: int = 5) -> list[VariantCheck]:
    """Eq. (3) with sample weights c_i (tau r' = (beta^2/N) M (c o w(r)), solved as an ODE in r) against the weighted
    gradient flow in both trainer forms, on a random instance with shared tokens and swapped pairs, c_i ~ U(1/2, 2)."""
    from verify.instances import random_instance
    from verify.model import interaction_matrix

    W0, data = random_instance(seed, vocabulary_size, dimension, samples)
    generator = torch.Generator().manual_seed(seed)
    c = 0.5 + 1.5 * torch.rand(samples, generator=generator, dtype=torch.float64)
    times = np.linspace(0.0, t_end, points)
    reduced = gradient_flow(data, beta, tau, list(times), loss, sample_weights=c).train_margins[0].numpy()
    full = gradient_flow(data, beta, tau, list(times), loss, form="full", W0=W0, sample_weights=c).train_margins[0].numpy()
    M = interaction_matrix(data).numpy()
    weight = _weight_function(loss)
    cw = c.numpy()
    solution = solve_ivp(lambda _, y: beta**2 / (samples * tau) * M @ (cw * np.broadcast_to(weight(y), y.shape)),
                         (0.0, t_end), np.zeros(samples), method="DOP853", rtol=PREDICTION_RTOL, atol=PREDICTION_ATOL,
                         dense_output=True)
    printed = solution.sol(times).T  # (T, N)
    scale = float(np.max(np.abs(printed)))
    details = {"seed": seed, "weights": cw.tolist()}
    return [VariantCheck("weighted Lemma 4.1: reduced weighted flow vs Eq. (3) with c_i w(r_i)",
                         float(np.max(np.abs(reduced - printed))), AGREEMENT_TOLERANCE, details, scale),
            VariantCheck("weighted Lemma 4.1: full-vocabulary weighted flow (autograd) vs Eq. (3) with c_i w(r_i)",
                         float(np.max(np.abs(full - printed))), AGREEMENT_TOLERANCE, details, scale)]
