"""Checks of user-facing numeric parameters, shared by the numeric modules."""
from __future__ import annotations

import math

import numpy as np


def check_positive(name: str, value) -> None:
    """A finite real number > 0, or a ValueError that names the parameter."""
    if not (isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def check_times(times) -> None:
    """Output times of an ODE solve: a 1-D increasing sequence that starts at 0, with two entries at least."""
    if times.ndim != 1 or len(times) < 2 or float(times[0]) != 0.0 or not bool((times.diff() > 0).all()):
        raise ValueError("times must be an increasing 1-D sequence starting at 0 with at least two entries")
