"""What a check reports: one of six verdicts, with the evidence behind it."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, Mapping


class Status(str, Enum):
    HOLDS = "holds"  # established: an exact check, or a failure-rate bound within what the statement allows
    CONSISTENT = "consistent"  # no counterexample, but the evidence does not establish the statement
    VIOLATED = "violated"
    VACUOUS = "vacuous"
    ASSUMPTIONS_UNMET = "assumptions-unmet"
    DISCREPANCY = "discrepancy"


def clopper_pearson(errors, n: int, confidence: float = 0.95):
    """Exact two-sided binomial interval: lower = Beta(a/2; k, n-k+1), upper = Beta(1-a/2; k+1, n-k), 0 and 1 at the ends.

    `errors` may be an integer (floats come back) or an array of them (arrays come back).
    """
    import numpy as np  # here, not at the top: `dpo-verify list` imports this module and needs neither
    from scipy.stats import beta as beta_distribution

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    k = np.asarray(errors)
    if np.any(k < 0) or np.any(k > n) or np.any(k != np.floor(k)):
        raise ValueError(f"errors must be integers in [0, {n}], got {errors!r}")
    alpha = 1 - confidence
    with np.errstate(invalid="ignore"):
        lower = np.where(k == 0, 0.0, beta_distribution.ppf(alpha / 2, k, n - k + 1))
        upper = np.where(k == n, 1.0, beta_distribution.ppf(1 - alpha / 2, k + 1, n - k))
    return (float(lower), float(upper)) if k.ndim == 0 else (lower, upper)


# Beyond this many trials no run could establish a statement: it reads "no feasible number of trials".
MAX_FEASIBLE_TRIALS = 10**9


def trials_to_establish(allowed: float, confidence: float = 0.95) -> float:
    """The fewest trials n whose Clopper-Pearson upper bound with 0 failures is <= `allowed`: with 0 failures
    the upper end of the two-sided interval is 1 - (alpha/2)^(1/n), so n >= ln(alpha/2)/ln(1 - allowed),
    alpha = 1 - confidence. It is the same bound the report shows and `holds` requires.

    An int up to MAX_FEASIBLE_TRIALS (checked against `clopper_pearson` itself, so it agrees with the rule at
    the edge), a float above it (an estimate), inf when nothing is allowed.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence!r}")
    if not allowed > 0:
        return math.inf
    if allowed >= 1:
        return 1
    n = math.log((1 - confidence) / 2) / math.log1p(-allowed)
    if n > MAX_FEASIBLE_TRIALS:
        return n
    n = max(1, math.ceil(n))
    while n > 1 and clopper_pearson(0, n - 1, confidence)[1] <= allowed:
        n -= 1
    while clopper_pearson(0, n, confidence)[1] > allowed:
        n += 1
    return n


@dataclass(frozen=True)
class ProofStepTally:
    """A proof step checked in every trial: on the event `event` (e.g. Lemma B.1's at the theorem's epsilon)
    the proof says `conclusion` holds deterministically. A trial with the event and without the conclusion is
    a counterexample to the proof, whatever the stated probability."""

    event: str
    conclusion: str
    trials: int
    event_held: int  # trials in which the event held
    counterexamples: int  # trials in which the event held and the conclusion failed
    first_counterexample_seed: int | None = None

    def __post_init__(self):
        if not 0 <= self.counterexamples <= self.event_held <= self.trials:
            raise ValueError(f"inconsistent tally: {self.counterexamples} <= {self.event_held} <= {self.trials} fails")

    def line(self) -> str:
        return (f"proof step: {self.event} held in {self.event_held}/{self.trials} trials; "
                f"{self.conclusion} failed in {self.counterexamples} of those")


@dataclass
class Verdict:
    """A claim's outcome at one parameter set.

    `measured` and `bound` give the slack: the worst measured value next to what the statement allows.
    `exact`: the verdict rests on a check of each instance (exact, or at a tolerance derived from round-off),
    not on a failure rate, so it has no failure-rate bound; `trials` then counts the instances checked.
    `proof_step`: the implication a proof relies on, checked in every trial, when the claim has one.
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
    # measured / bound ratios: name -> float, inside and just outside the assumptions
    tightness: dict[str, Any] = field(default_factory=dict)
    exact: bool = False
    proof_step: ProofStepTally | None = None

    @property
    def established(self) -> bool:
        """`holds` is established; `consistent` (no counterexample, evidence too weak) is not."""
        return self.status is Status.HOLDS

    @property
    def failure_rate_upper(self) -> float | None:
        """95% Clopper–Pearson upper bound on the failure rate, when trials were run and counted as a rate."""
        return clopper_pearson(self.failures, self.trials)[1] if self.trials and not self.exact else None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["status"] = self.status.value
        out["established"] = self.established
        out["failure_rate_upper"] = self.failure_rate_upper
        return out


def establishment(status: Status | str, exact: bool, details: Mapping[str, Any]) -> str:
    """How a verdict stands, in a few words for a table: established (by an exact check, or by a 95% CP upper
    bound within the allowed failure rate), or the trials n with 0 failures that would establish it.

    Works on a `Verdict`'s fields and on its `to_dict()` (a results.json entry) alike.
    """
    status = Status(status)
    if status is Status.HOLDS:
        return "yes (exact)" if exact else "yes (95% CP)"
    if status is not Status.CONSISTENT:
        return ""
    needed = details.get("trials_to_establish")
    return "no (no feasible n)" if needed is None else f"no (n >= {needed})"
