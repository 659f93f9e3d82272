"""Checks of user-facing numeric parameters, shared by the numeric modules."""
from __future__ import annotations

import math

import numpy as np


def check_positive(name: str, value) -> None:
    """A finite real number > 0, or a ValueError that names the parameter."""
    if not (isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
