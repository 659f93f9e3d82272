"""Least-squares line y = a + b x with its coefficient of determination, as the paper fits test error against K (§5)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class LinearFit:
    slope: float
    intercept: float
    r_squared: float  # 1 - SS_res / SS_tot, the R^2 the paper reports
    n: int

    def __call__(self, x):
        return self.intercept + self.slope * np.asarray(x, dtype=float)


def linear_fit(x, y) -> LinearFit:
    """Ordinary least squares (scipy.stats.linregress); R^2 = rvalue^2 for a line with intercept."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 3:
        raise ValueError(f"need two 1-D sequences of equal length >= 3, got shapes {x.shape} and {y.shape}")
    if np.ptp(x) == 0:
        raise ValueError("x is constant; a line cannot be fitted")
    if np.ptp(y) == 0:  # linregress's rvalue is undefined; a flat line fits exactly
        return LinearFit(0.0, float(y[0]), 1.0, len(x))
    fit = stats.linregress(x, y)
    return LinearFit(float(fit.slope), float(fit.intercept), float(fit.rvalue**2), len(x))
