"""The exact population risk of trained models on P, in log space (theory.population_risk, evaluated).

For each trial and each of the 2K clusters the margin of a test point is Gaussian, so the cluster's risk is
Phi(-z_k) with z_k the standardised margin that `theory.population_risk.STANDARDISED_MARGIN` derives;
R(P) is their mean, taken with logsumexp. log Phi(-z) comes from scipy's `log_ndtr` in float64, which agrees
with mpmath to the last digits over the whole range where log Phi(-z) itself is a float (|z| < 1.9e154), so
a risk of 1e-5000 is a number (log10 R = -5000), not 0. Past that range the logarithm itself is below
-1.6e308: it is reported as -inf with `log_underflow` set, never as a risk of exactly 0. Monte Carlo on test
draws stays the cross-check.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import sympy as sp
import torch
from scipy.special import log_ndtr, logsumexp

from theory.population_risk import STANDARDISED_MARGIN, direction_norm_squared, projected_mean
from theory.symbols import beta as beta_sym, v as v_sym
from verify.layout import margin_directions

_standardised = sp.lambdify((beta_sym, projected_mean, direction_norm_squared, v_sym), STANDARDISED_MARGIN, "numpy")
LOG10 = math.log(10)


@dataclass(frozen=True)
class ExactRisk:
    """Per trial: log R(P) (natural log). -inf means R = 0 exactly (v = 0 and every z_k > 0) unless
    `log_underflow` is set: then R > 0 but log R < -1.6e308."""

    log_risk: np.ndarray  # (B,)
    log_cluster_risk: np.ndarray  # (B, 2K)
    standardised_margin: np.ndarray  # (B, 2K): z_k = a_k . mu_k / (v ||a_k||)
    log_underflow: np.ndarray  # (B,) bool

    @property
    def log10_risk(self) -> np.ndarray:
        return self.log_risk / LOG10

    @property
    def risk(self) -> np.ndarray:
        """R(P) as floats (0.0 where it underflows; use log_risk for those)."""
        return np.exp(self.log_risk)


def log_normal_tail(z: np.ndarray) -> np.ndarray:
    """log Phi(-z), accurate in float64 wherever the result is a float."""
    return log_ndtr(-np.asarray(z, dtype=np.float64))


def cluster_log_risks(z: np.ndarray, projected: np.ndarray, v: float) -> np.ndarray:
    """log Pr[r <= 0] per cluster. With v = 0 the margin is the constant beta a . mu: risk 1 if it is <= 0 (Def. 3.1
    counts r = 0 as an error), else 0."""
    if v == 0:
        return np.where(projected > 0, -np.inf, 0.0)
    return log_normal_tail(z)


def exact_risk(distribution, seeds, rows: torch.Tensor, delta_rows: torch.Tensor, beta: float) -> ExactRisk:
    """R(P) of the models dW (given on `rows`, shape (B, U, d)) trained on draws of `distribution` for `seeds`."""
    means = distribution.cluster_means(seeds, device=delta_rows.device, dtype=delta_rows.dtype)  # (B, 2K, d)
    chosen, rejected = distribution.cluster_tokens(delta_rows.device)
    directions = margin_directions(chosen, rejected, rows, delta_rows)  # (B, 2K, d)
    projected = (directions * means).sum(2).cpu().numpy()
    norms = (directions * directions).sum(2).cpu().numpy()
    v = float(distribution.v)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = _standardised(beta, projected, norms, v) if v > 0 else np.sign(projected) * np.inf
    # An untrained direction (a_k = 0) gives margin 0 for every test point: an error with probability 1.
    z = np.where(norms == 0, -np.inf, z)
    log_cluster = cluster_log_risks(z, projected, v)
    log_cluster = np.where(norms == 0, 0.0, log_cluster)
    log_risk = logsumexp(log_cluster, axis=1) - math.log(log_cluster.shape[1])
    underflow = np.isneginf(log_risk) & (v > 0)
    return ExactRisk(log_risk, log_cluster, z, underflow)


def log10_decades(log_bound: float, log_risk: float) -> float:
    """Tightness in decades: log10(bound) - log10(risk), with natural logs as input."""
    return (log_bound - log_risk) / LOG10
