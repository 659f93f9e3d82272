"""Shared plumbing of the probabilistic claims (Theorems 4.2/4.3, B.1-B.4, C.2-C.6, §7).

Every number a check compares against comes from a `theory.statements.Statement` (its assumptions via
`check_assumptions`, its conclusions via `evaluate` or `sp.lambdify`), never retyped here.

Decision rule, the same for every claim (tolerances from the sample size, not tuned):
- a trial "fails" when the statement's conclusion does not hold in it;
- with k failures in n trials the statement allows a failure probability p = 1 - P (P its success
  probability; p = 0 for a deterministic statement); it is violated if the 95% Clopper-Pearson lower bound
  on k/n exceeds p, or if a proof step's event held in a trial without its conclusion;
- it holds (established) only when a deterministic statement's per-trial check passed in every trial, or
  when the 95% Clopper-Pearson upper bound on k/n is <= p; otherwise, with no counterexample, it is only
  consistent, and the verdict says how many trials would establish it;
- order of verdicts: assumptions-unmet, violated, discrepancy, vacuous, holds or consistent. The
  measurement (and the proof-step tally) is run and reported whatever the verdict.
"""
from __future__ import annotations

import math
import sys
from typing import Iterable

import sympy as sp

from theory.statements import Statement
from theory.symbols import K as K_sym, beta as beta_sym, t as t_sym, tau as tau_sym
from verify.symbolic import weight_function
from verify.verdicts import (MAX_FEASIBLE_TRIALS, ProofStepTally, Status, Verdict, clopper_pearson,
                             trials_to_establish)
from theory.losses import DPO, PreferenceLoss

FLOAT_EPS = sys.float_info.epsilon  # float64's, read without importing torch
CONFIDENCE = 0.95


def conclusion(statement: Statement, name: str, **values) -> float:
    """A conclusion at numbers, as a float (mpmath underneath, so 1 - 1e-300 stays exact enough)."""
    needed = {s.name for s in statement.conclusions[name].free_symbols}
    evaluated = statement.evaluate(**{k: v for k, v in values.items() if k in needed})[name]
    if evaluated.approx is None:
        raise ValueError(f"{statement.name}: {name} needs {', '.join(evaluated.missing)}")
    return float(evaluated.approx)


def envelope_functions(statement: Statement):
    """r_L(t), r_U(t) and tau_1 as float functions of (K, beta, tau[, t]) lambdified from the statement."""
    args = (K_sym, beta_sym, tau_sym, t_sym)
    r_L = sp.lambdify(args, statement.conclusions["r_L"], "math")
    r_U = sp.lambdify(args, statement.conclusions["r_U"], "math")
    tau_1 = sp.lambdify(args[:3], statement.conclusions["tau_1"], "math")
    slope_L = sp.lambdify(args[:3], sp.diff(statement.conclusions["r_L"], t_sym) * tau_sym, "math")
    slope_U = sp.lambdify(args[:3], sp.diff(statement.conclusions["r_U"], t_sym) * tau_sym, "math")
    return r_L, r_U, tau_1, slope_L, slope_U


# --- memory estimates -----------------------------------------------------------------------------------
# A trained trial holds its features, the flow's copies of them (solver stages) and its margins; a test
# set holds its features and margins. The factors are upper estimates of those copies, in float64.
_TRAIN_COPIES, _TEST_COPIES = 12, 4


def training_footprint(values) -> int:
    """Bytes of the float64 arrays of `trials` training sets of 2KQ samples in d dimensions (plus test draws)."""
    K = max(int(values.get("K", 1)), *(int(k) for k in str(values.get("K_values", "1")).split(",")))
    d = max(int(values.get("d", 1)) if not isinstance(values.get("d"), str) else 2 * K + 2, K + 1)
    batch = values.get("trials", 1)
    train = 2 * K * values.get("Q", 1) * d * _TRAIN_COPIES
    test = values.get("test_size", 0) * d * _TEST_COPIES
    return 8 * batch * (train + test)


# --- measurement ----------------------------------------------------------------------------------------
def seeds_for(seed: int, trials: int) -> list[int]:
    return [seed + k for k in range(trials)]


def initial_slopes(sample, beta: float, tau: float, loss: PreferenceLoss = DPO) -> torch.Tensor:
    """tau dr_j/dt at t = 0 for every training sample, (B, N): one exact Lemma 4.1 step at r = 0.

    The margin is linear in dW, so the margin of the velocity dW/dt is dr/dt exactly.
    """
    import torch
    from verify.training import segment_gradient, segment_margins, training_set

    data = training_set(sample)
    zero = torch.zeros(data.batch_size, data.size, dtype=data.features.dtype)
    velocity = -segment_gradient(data, weight_function(loss)(zero), beta) / tau
    return data.in_input_order(segment_margins(data, velocity, beta)) * tau


def flow_with_error(sample, beta: float, tau: float, times, test=None, rtol: float = 1e-10, atol: float = 1e-12,
                    loss: PreferenceLoss = DPO):
    """Gradient flow at (rtol, atol) plus an a-posteriori bound on its error: the difference to a run at
    100 x looser tolerances (which bounds the tighter run's error), plus the round-off of a d-term dot
    product (d eps |r|)."""
    from verify.training import gradient_flow

    fine = gradient_flow(sample, beta, tau, times, loss, test=test, rtol=rtol, atol=atol)
    coarse = gradient_flow(sample, beta, tau, times, loss, rtol=rtol * 100, atol=atol * 100)
    d = sample.features.shape[2]
    scale = float(fine.train_margins.abs().max())
    error = float((coarse.train_margins - fine.train_margins).abs().max()) + d * FLOAT_EPS * scale
    return fine, error


def exceeds_rate(errors: Iterable[int], n: int, rate: float, trials: int) -> list[bool]:
    """Per trial: is `errors` out of n significantly above `rate`? One-sided binomial test at level
    (1 - CONFIDENCE)/trials (Bonferroni over the trials)."""
    from scipy.stats import binom

    level = (1 - CONFIDENCE) / trials
    rate = min(max(rate, 0.0), 1.0)
    return [bool(e > 0 and binom.sf(int(e) - 1, n, rate) < level) for e in errors]


def ratio(measured: float, bound: float) -> float:
    """measured / bound, with a bound that underflowed to 0.0 giving 0 (nothing measured) or inf."""
    if bound > 0:
        return measured / bound
    return 0.0 if measured == 0 else math.inf


# --- verdicts -------------------------------------------------------------------------------------------
def decide(claim: str, parameters: dict, seed: int, *, unmet: list[str], probability: float | None,
           failures: int, trials: int, first_failure: int | None, measured: float | None, bound: float | None,
           summary: str, details: dict, tightness: dict, discrepancies: list[str] = (),
           vacuous_bound: bool = False, proof_step: ProofStepTally | None = None) -> Verdict:
    """Apply the decision rule of this module and write the summary line.

    probability None: a deterministic statement, no failure allowed (round-off is in the failure test); its
    trials are instances of an exact check, not a sample of a rate, so the verdict has no failure-rate bound.
    """
    deterministic = probability is None
    allowed = 0.0 if deterministic else min(1.0, max(0.0, 1.0 - probability))
    lower, upper = clopper_pearson(failures, trials, CONFIDENCE) if trials else (0.0, 1.0)
    if not trials:
        rate_line = ""
    elif deterministic:
        rate_line = f"; {failures}/{trials} trials fail (deterministic: none allowed)"
    else:
        rate_line = f"; {failures}/{trials} trials fail (95% CP upper {upper:.3g}, allowed {allowed:.3g})"
        details["failure_rate_interval"] = (lower, upper)
    details["allowed_failure_probability"] = allowed
    if not deterministic:
        details["success_probability"] = probability
    if discrepancies:
        details["discrepancies"] = list(discrepancies)
    proof_line = "" if proof_step is None else "; " + proof_step.line()
    reported_seed = seed if first_failure is None else first_failure
    tail = ""
    if unmet:
        status, head = Status.ASSUMPTIONS_UNMET, "assumptions unmet: " + "; ".join(unmet) + ". Measured: "
    elif trials and failures and lower > allowed:
        status, head = Status.VIOLATED, f"counterexample at seed {first_failure}: "
    elif proof_step is not None and proof_step.counterexamples:
        counter_seed = proof_step.first_counterexample_seed
        reported_seed = reported_seed if counter_seed is None else counter_seed
        status, head = Status.VIOLATED, ("counterexample to the proof: " if counter_seed is None
                                         else f"counterexample to the proof at seed {counter_seed}: ")
    elif discrepancies:
        status, head = Status.DISCREPANCY, "; ".join(discrepancies) + ". Measured: "
    elif (probability is not None and probability <= 0) or vacuous_bound:
        why = [] + (["stated probability %.3g <= 0" % probability] if probability is not None and probability <= 0 else []) \
            + (["bound >= 1"] if vacuous_bound else [])
        status, head = Status.VACUOUS, " and ".join(why) + "; still measured: "
    elif trials and (deterministic or upper <= allowed):  # deterministic with failures was violated above
        status, head = Status.HOLDS, ""
    else:
        status, head = Status.CONSISTENT, ""
        tail = "; not established: " + _what_would_establish(allowed, deterministic, details)
    details["established"] = status is Status.HOLDS
    return Verdict(claim, status, head + summary + rate_line + proof_line + tail, parameters, reported_seed,
                   trials, failures, measured, bound, details, tightness, exact=deterministic, proof_step=proof_step)


def _what_would_establish(allowed: float, deterministic: bool, details: dict) -> str:
    """The consistent verdict's last words, with details["trials_to_establish"] (None: no feasible n)."""
    if deterministic:  # only reached with no trial run
        details["trials_to_establish"] = 1
        return "no instance was checked"
    needed = trials_to_establish(allowed, CONFIDENCE)
    feasible = needed <= MAX_FEASIBLE_TRIALS
    details["trials_to_establish"] = int(needed) if feasible else None
    if feasible:
        return f"0 failures in n >= {needed} trials would establish it (95% CP upper <= {allowed:.3g})"
    if allowed == 0:
        return "the statement allows no failure (1 - P is 0 in float64), which no number of trials establishes"
    return (f"no feasible number of trials could (0 failures in n >= {needed:.2g} would, for the allowed "
            f"failure rate {allowed:.3g})")
