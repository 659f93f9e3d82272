"""Least-squares line y = a + b x and its R^2, as the paper fits test error against K (paper §5).

The one linear fit of the package: the notebooks, the simulations (`verify.experiments`), the paper's tables
(`verify.paper_data`) and the real-data report (`verify.real`) all call `linear_fit`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class LinearFit:
    slope: float
    intercept: float
    r_squared: float  # 1 - SS_res / SS_tot, the R^2 the paper reports; nan when y is constant (SS_tot = 0)
    n: int

    def __call__(self, x):
        return self.intercept + self.slope * np.asarray(x, dtype=float)


def linear_fit(x, y) -> LinearFit:
    """Ordinary least squares (scipy.stats.linregress); R^2 = rvalue^2 for a line with intercept.

    Flat data (y constant): the fitted line is y = y[0] with slope 0, which leaves no residual, but
    R^2 = 1 - SS_res / SS_tot is 0/0 there: no share of a zero variance can be explained, so R^2 is
    undefined and returned as nan. A caller that draws or compares R^2 must handle nan.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 3:
        raise ValueError(f"need two 1-D sequences of equal length >= 3, got shapes {x.shape} and {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite")
    if np.ptp(x) == 0:
        raise ValueError("x is constant; a line cannot be fitted")
    if np.ptp(y) == 0:  # linregress's rvalue is 0/0 here
        return LinearFit(0.0, float(y[0]), float("nan"), len(x))
    fit = stats.linregress(x, y)
    return LinearFit(float(fit.slope), float(fit.intercept), float(fit.rvalue**2), len(x))
