"""What a check reports: one of five verdicts, with the evidence behind it."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from scipy.stats import beta as beta_distribution


class Status(str, Enum):
    HOLDS = "holds"
    VIOLATED = "violated"
    VACUOUS = "vacuous"
    ASSUMPTIONS_UNMET = "assumptions-unmet"
    DISCREPANCY = "discrepancy"


def clopper_pearson(failures: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact two-sided binomial interval for a failure rate."""
    if trials < 1 or not 0 <= failures <= trials:
        raise ValueError(f"need 0 <= failures <= trials and trials >= 1, got {failures}/{trials}")
    alpha = 1 - confidence
    lower = 0.0 if failures == 0 else float(beta_distribution.ppf(alpha / 2, failures, trials - failures + 1))
    upper = 1.0 if failures == trials else float(beta_distribution.ppf(1 - alpha / 2, failures + 1, trials - failures))
    return lower, upper


@dataclass
class Verdict:
    """A claim's outcome at one parameter set.

    `measured` and `bound` give the slack: the worst measured value next to what the statement allows.
    """

    claim: str
    status: Status
    summary: str
    parameters: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    trials: int = 0
    failures: int = 0
    measured: float | None = None
    bound: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    # measured / bound ratios (point 5 of issue 5): name -> float, inside and just outside the assumptions
    tightness: dict[str, Any] = field(default_factory=dict)

    @property
    def failure_rate_upper(self) -> float | None:
        """95% Clopper–Pearson upper bound on the failure rate, when trials were run."""
        return clopper_pearson(self.failures, self.trials)[1] if self.trials else None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["status"] = self.status.value
        out["failure_rate_upper"] = self.failure_rate_upper
        return out
