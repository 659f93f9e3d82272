"""Shared plumbing of the probabilistic claims (Theorems 4.2/4.3, B.1-B.4, C.2-C.6, §7).

Every number a check compares against comes from a `theory.statements.Statement` (its assumptions via
`check_assumptions`, its conclusions via `evaluate` or `sp.lambdify`), never retyped here.

Decision rule, the same for every claim (tolerances from the sample size, not tuned):
- a trial "fails" when the statement's conclusion does not hold in it;
- with k failures in n trials the statement allows a failure probability p = 1 - P (P its success
  probability); it is violated only if the 95% Clopper-Pearson lower bound on k/n exceeds p;
- order of verdicts: assumptions-unmet, violated, discrepancy, vacuous, holds. The measurement is run and
  reported whatever the verdict.
"""
from __future__ import annotations

import math
from typing import Iterable

import sympy as sp
import torch
from scipy.stats import binom

from theory.statements import Statement
from theory.symbols import K as K_sym, Q as Q_sym, beta as beta_sym, t as t_sym, tau as tau_sym
from verify.data_model import chain_tokens, disjoint_tokens, grouped_tokens
from verify.training import gradient_flow, segment_gradient, segment_margins, training_set, weight_function
from verify.verdicts import Status, Verdict, clopper_pearson
from theory.losses import DPO

FLOAT_EPS = torch.finfo(torch.float64).eps
CONFIDENCE = 0.95


# --- parameters -----------------------------------------------------------------------------------------
def token_layout(tokens: str, K: int) -> tuple[tuple[int, int], ...]:
    """'disjoint' (Z = 1), 'chain' (Z = min(2, K)) or 'grouped:Z' (pairs share a hub token)."""
    if tokens == "disjoint":
        return disjoint_tokens(K)
    if tokens == "chain":
        return chain_tokens(K)
    if tokens.startswith("grouped:"):
        return grouped_tokens(K, int(tokens.split(":", 1)[1]))
    raise ValueError(f"tokens must be 'disjoint', 'chain' or 'grouped:Z', got {tokens!r}")


def v_boundary(statement: Statement, Q: int) -> sp.Expr:
    """The largest v the statement allows at Q, exactly (the rhs of its 'v <= ...' assumption)."""
    (rel,) = [rel for name, rel in statement.assumptions.items() if name.startswith("v <=")]
    return rel.rhs.subs(Q_sym, Q)


def assumptions_at(statement: Statement, values: dict) -> list[str]:
    """`assumption_report` with only the values that the statement's assumptions mention."""
    needed = {s.name for rel in statement.assumptions.values() for s in rel.free_symbols}
    return assumption_report(statement, **{k: x for k, x in values.items() if k in needed})


def assumption_report(statement: Statement, **values) -> list[str]:
    """Each failing assumption as 'name: lhs vs rhs, fails by x'."""
    return [f"{f.name} fails by {float(f.approx):.3g} (lhs {float(sp.N(f.lhs)):.4g}, rhs {float(sp.N(f.rhs)):.4g})"
            for f in statement.check_assumptions(**values)]


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


def initial_slopes(sample, beta: float, tau: float) -> torch.Tensor:
    """tau dr_j/dt at t = 0 for every training sample, (B, N): one exact Lemma 4.1 step at r = 0.

    The margin is linear in dW, so the margin of the velocity dW/dt is dr/dt exactly.
    """
    data = training_set(sample)
    zero = torch.zeros(data.batch_size, data.size, dtype=data.features.dtype)
    velocity = -segment_gradient(data, weight_function(DPO)(zero), beta) / tau
    return data.in_input_order(segment_margins(data, velocity, beta)) * tau


def flow_with_error(sample, beta: float, tau: float, times, test=None, rtol: float = 1e-10, atol: float = 1e-12):
    """Gradient flow at (rtol, atol) plus an a-posteriori bound on its error: the difference to a run at
    100 x looser tolerances (which bounds the tighter run's error), plus the round-off of a d-term dot
    product (d eps |r|)."""
    fine = gradient_flow(sample, beta, tau, times, test=test, rtol=rtol, atol=atol)
    coarse = gradient_flow(sample, beta, tau, times, rtol=rtol * 100, atol=atol * 100)
    d = sample.features.shape[2]
    scale = float(fine.train_margins.abs().max())
    error = float((coarse.train_margins - fine.train_margins).abs().max()) + d * FLOAT_EPS * scale
    return fine, error


def exceeds_rate(errors: Iterable[int], n: int, rate: float, trials: int) -> list[bool]:
    """Per trial: is `errors` out of n significantly above `rate`? One-sided binomial test at level
    (1 - CONFIDENCE)/trials (Bonferroni over the trials)."""
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
           vacuous_bound: bool = False) -> Verdict:
    """Apply the decision rule of this module and write the summary line."""
    # probability None: a deterministic statement, no failure allowed (round-off is in the failure test)
    allowed = 0.0 if probability is None else min(1.0, max(0.0, 1.0 - probability))
    rate_line = ""
    if trials:
        lower, upper = clopper_pearson(failures, trials, CONFIDENCE)
        rate_line = f"; {failures}/{trials} trials fail (95% CP upper {upper:.3g}, allowed {allowed:.3g})"
        details["failure_rate_interval"] = (lower, upper)
    details["allowed_failure_probability"] = allowed
    if probability is not None:
        details["success_probability"] = probability
    if discrepancies:
        details["discrepancies"] = list(discrepancies)
    if unmet:
        status, head = Status.ASSUMPTIONS_UNMET, "assumptions unmet: " + "; ".join(unmet) + ". Measured: "
    elif trials and failures and clopper_pearson(failures, trials, CONFIDENCE)[0] > allowed:
        status, head = Status.VIOLATED, f"counterexample at seed {first_failure}: "
    elif discrepancies:
        status, head = Status.DISCREPANCY, "; ".join(discrepancies) + ". Measured: "
    elif (probability is not None and probability <= 0) or vacuous_bound:
        why = [] + (["stated probability %.3g <= 0" % probability] if probability is not None and probability <= 0 else []) \
            + (["bound >= 1"] if vacuous_bound else [])
        status, head = Status.VACUOUS, " and ".join(why) + "; still measured: "
    else:
        status, head = Status.HOLDS, ""
    return Verdict(claim, status, head + summary + rate_line, parameters, seed if first_failure is None else first_failure,
                   trials, failures, measured, bound, details, tightness)
