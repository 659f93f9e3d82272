"""The empirical 0-1 risk of trained margins, with its Clopper–Pearson interval."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from verify.verdicts import clopper_pearson


@dataclass(frozen=True)
class RiskEstimate:
    """Empirical 0-1 risk (Def. 3.1: a margin r <= 0 is an error) with a two-sided Clopper–Pearson interval."""

    errors: np.ndarray
    n: int
    rate: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    confidence: float


def zero_one_risk(margins: torch.Tensor, confidence: float = 0.95) -> RiskEstimate:
    """Errors counted along the last dimension of `margins` (e.g. a (B, n) test-margin slice)."""
    errors = (margins <= 0).sum(-1).cpu().numpy()
    n = margins.shape[-1]
    lower, upper = clopper_pearson(errors, n, confidence)
    return RiskEstimate(errors, n, errors / n, lower, upper, confidence)
