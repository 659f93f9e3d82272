"""Q_min(K) curves for Fig. 4 (Theorem 4.3 and the predecessor's bound): exact roots from `theory.scaling_law`.

Apart from `verify.experiments` because they need no torch: `dpo-verify scaling` draws them without importing it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from theory.scaling_law import (PAPER_K, PAPER_SAMPLES_PER_VALUE, PREDECESSOR_BOUND, SCALING_BOUND, BoundShape,
                                samples_per_value, samples_per_value_table)


@dataclass(frozen=True)
class ScalingCurves:
    """Q_min(K) for Theorem 4.3 and for the predecessor's bound at one target delta (Fig. 4)."""

    delta: sp.Rational
    K: np.ndarray
    theorem_4_3: np.ndarray  # smallest integer Q >= 40
    predecessor: np.ndarray
    K10_Q_min: int
    K10_root: float
    K10_paper: int = PAPER_SAMPLES_PER_VALUE  # §4.2: "more than this many samples per value" at K = PAPER_K


def _Q_min(Ks, delta, shape: BoundShape) -> np.ndarray:
    return np.array([row[2] for row in samples_per_value_table(Ks, delta, shape)], dtype=float)


def scaling_curves(delta=sp.Rational(1, 20), K_max: int = 1000, points: int = 40) -> ScalingCurves:
    Ks = sorted({int(round(k)) for k in np.geomspace(1, K_max, points)} | {PAPER_K})
    k10 = samples_per_value(PAPER_K, delta, SCALING_BOUND)
    return ScalingCurves(delta, np.array(Ks), _Q_min(Ks, delta, SCALING_BOUND), _Q_min(Ks, delta, PREDECESSOR_BOUND),
                         k10.Q_min, float(k10.root_value))
