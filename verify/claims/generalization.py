"""Claims theorem-4.3, theorem-b.4, theorem-c.6: the population 0-1 risk of the implicit reward model at tau_1.

Each trial trains on one draw of P to tau_1 and evaluates its population risk R(P) exactly, in log space
(`verify.exact_risk`). A trial fails iff log R > log bound, the bound's logarithm taken by mpmath from the
Statement, so a bound of 1e-190 and a risk of 1e-50000 are compared as numbers, never as floats that
underflowed to 0.0. The failure rate over trials is then judged by `decide` against 1 - P.

Monte Carlo on fresh test draws is the cross-check: wherever it resolves the risk (it saw an error, or expects
one), the exact risk must lie in its 99.9% Clopper-Pearson interval (Bonferroni over those trials); a
disagreement is reported as a discrepancy.

Proof step (SPEC §3, Theorem 4.3 / B.4): given the training set and Lemma B.1's event E at the theorem's
epsilon, every test point outside an event of probability at most the bound has a positive margin at tau_1,
so on E the risk is at most the bound. The conclusion checked per trial is therefore R(P) <= bound (the
training margins in [0, log 3] that step 4 uses are Theorem B.3's conclusion, checked by that claim and
reported here). E is evaluated with Lemma B.1's inequalities (Lemma C.3's half-width 5/2 eps v for C.6).
"""
from __future__ import annotations

import functools
import math
import sys
from dataclasses import dataclass, replace

import mpmath
import sympy as sp

from theory.concentration import LEMMA_B1, LEMMA_C3
from theory.losses import DPO, PreferenceLoss
from theory.generalization import THEOREM_4_3, THEOREM_B4, THEOREM_C6, refined_exponent_after_remark
from theory.statements import Statement
from theory.symbols import delta as delta_sym
from theory.training_guarantee import LOG3, THEOREM_4_2, THEOREM_B3, THEOREM_C5
from verify.claims import Claim, register
from verify.claims.common import FLOAT_EPS, conclusion, decide, envelope_functions, seeds_for, training_footprint
from verify.claims.training_guarantee import probable_v, statement_setting
from verify.parameters import vocabulary
from verify.verdicts import ProofStepTally, clopper_pearson

# Each risk statement is about the model at the tau_1 of its training statement.
_TRAINING = {THEOREM_4_3.name: THEOREM_4_2, THEOREM_B4.name: THEOREM_B3, THEOREM_C6.name: THEOREM_C5}
MONTE_CARLO_CONFIDENCE = 0.999
LN10 = math.log(10)
_LOG_FLOAT_FLOOR = -sys.float_info.max  # below this, log R itself underflows (`ExactRisk.log_underflow`)


@functools.lru_cache(maxsize=None)
def _derivations(name: str) -> tuple[tuple[str, bool | None, str], ...]:
    if name != THEOREM_4_3.name:
        return ()
    # The Remark: B.4 with v = 1/(32 sqrt Q) must give e^{-Q/45}; with B.4's own v <= 1/(4 sqrt Q) it cannot
    # (reported, not a discrepancy of 4.3: the Remark substitutes 1/32).
    results = [refined_exponent_after_remark(32), refined_exponent_after_remark(4)]
    return tuple((r.claim, r.holds if r is results[0] else None, r.verdict) for r in results)


# --- measurement ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainedModels:
    """Models trained by gradient flow to a horizon, one per seed: their exact risk and the Monte Carlo check."""

    seeds: list[int]
    sample: object  # the training ClusterSample
    exact: object  # verify.exact_risk.ExactRisk
    errors: list[int]  # Monte Carlo: test margins <= 0 (Def. 3.1) per trial
    test_size: int
    train_margins: object  # (B, N) at the horizon

    @property
    def log_risk(self) -> list[float]:
        return [float(x) for x in self.exact.log_risk]


def train_and_measure(dist, Q: int, seeds: list[int], beta: float, tau: float, horizon: float,
                      test_size: int, loss: PreferenceLoss = DPO) -> TrainedModels:
    """Gradient flow on `Q` samples per cluster to `horizon`; the exact R(P) of each model and its Monte Carlo
    error count on `test_size` fresh draws."""
    from verify.exact_risk import exact_risk
    from verify.training import gradient_flow

    sample = dist.sample(seeds, Q)
    test = dist.test_set(seeds, test_size)
    result = gradient_flow(sample, beta, tau, [0.0, horizon], loss, test=test)
    exact = exact_risk(dist, seeds, result.rows, result.delta_rows, beta)
    errors = (result.test_margins[:, -1] <= 0).sum(1).tolist()
    return TrainedModels(list(seeds), sample, exact, errors, test_size, result.train_margins[:, -1])


def monte_carlo_check(models: TrainedModels) -> tuple[list[int], int]:
    """(seeds whose exact risk lies outside the Monte Carlo interval, number of resolvable trials).

    A trial is resolvable when Monte Carlo saw an error or expects at least one (n R >= 1); with 0 errors
    and n R < 1 the draws say nothing. The interval is Clopper-Pearson at 1 - 0.001/m over the m resolvable
    trials, so an exact risk that is right is flagged with probability <= 0.001.
    """
    n = models.test_size
    risks = [math.exp(x) for x in models.log_risk]
    resolvable = [b for b, (risk, errors) in enumerate(zip(risks, models.errors)) if errors > 0 or n * risk >= 1]
    if not resolvable:
        return [], 0
    confidence = 1 - (1 - MONTE_CARLO_CONFIDENCE) / len(resolvable)
    outside = []
    for b in resolvable:
        low, high = clopper_pearson(models.errors[b], n, confidence)
        if not low <= risks[b] <= high:
            outside.append(models.seeds[b])
    return outside, len(resolvable)


def log_conclusion(statement: Statement, name: str, **values) -> float:
    """The natural log of a positive conclusion, taken in mpmath: no underflow however small the value."""
    needed = {s.name for s in statement.conclusions[name].free_symbols}
    evaluated = statement.evaluate(**{k: x for k, x in values.items() if k in needed})[name]
    if evaluated.approx is None:
        raise ValueError(f"{statement.name}: {name} needs {', '.join(evaluated.missing)}")
    if not evaluated.approx > 0:
        raise ValueError(f"{statement.name}: {name} = {evaluated.approx} is not positive; it has no logarithm")
    return float(mpmath.log(evaluated.approx))


def exceeds(log_risk: float, log_bound: float) -> bool | None:
    """Is R > bound? None when both logarithms lie below float range (log R underflowed: undecided)."""
    if math.isinf(log_risk) and log_risk < 0:
        return None if log_bound < _LOG_FLOAT_FLOOR else False
    return log_risk > log_bound


def decades(log_bound: float, log_risk: float) -> float:
    """Tightness in decades, log10(bound) - log10(R); inf where R = 0 or log R underflowed."""
    from verify.exact_risk import log10_decades

    return math.inf if math.isinf(log_risk) and log_risk < 0 else float(log10_decades(log_bound, log_risk))


def _log10_list(log_risks) -> list[float]:
    return [round(x / LN10, 3) if math.isfinite(x) else x / LN10 for x in log_risks]


# --- Lemma B.1's event, per trial -------------------------------------------------------------------------
def gram_deviation_bound(sample, printed_centres: bool = False):
    """Per trial (B,): an upper bound on every deviation that Lemma B.1's Eqs. 9-13 bound (`gram_statistics`).

    x_j . x_k - mu_a . mu_b = mu_a . alpha_k + mu_b . alpha_j + alpha_j . alpha_k (minus d v^2 on the diagonal),
    so each deviation is at most 2 max |mu . alpha| + max(max ||alpha||^2, max | ||alpha||^2 - d v^2 |); measured
    from the printed centres (orthogonal c_i), plus max |mu_a . mu_b - printed centre|. O(N K d), against the
    O(N^2 d) of the exact maxima.
    """
    import torch

    from verify.data_model import DiverseValueDistribution

    features, means = sample.features, sample.means
    d = features.shape[2]
    alpha = features - means.gather(1, sample.cluster[..., None].expand(-1, -1, d))
    cross = torch.bmm(alpha, means.transpose(1, 2)).abs().flatten(1).amax(1)
    squared = (alpha * alpha).sum(2)
    centred = (squared - d * sample.distribution.v ** 2).abs()
    bound = 2 * cross + torch.maximum(squared.amax(1), centred.amax(1))
    if printed_centres:
        dist = sample.distribution
        printed = DiverseValueDistribution(dist.K, d, 0.0, dist.l_b, tokens=dist.tokens).cluster_means(
            sample.seeds[:1], features.device, features.dtype)
        shift = (means @ means.transpose(1, 2) - printed @ printed.transpose(1, 2)).abs().flatten(1).amax(1)
        bound = bound + shift
    return bound


def _one_trial(sample, b: int):
    part = slice(b, b + 1)
    return replace(sample, seeds=(sample.seeds[b],), features=sample.features[part], cluster=sample.cluster[part],
                   chosen=sample.chosen[part], rejected=sample.rejected[part], means=sample.means[part])


def lemma_event(sample, epsilon: float, half_width: float, printed_centres: bool = True) -> list[bool]:
    """Per trial: does Lemma B.1's event (Eqs. 9-13 within `half_width`, measured from the printed centres as
    the lemmas state them; for delta = 0 they are the exact ones) hold?

    Where `gram_deviation_bound`, plus the float round-off of a d-term dot product, is already inside the
    half-width the event holds; every other trial is decided by `verify.data_model.concentration_events`.
    """
    from verify.data_model import concentration_events

    d = sample.features.shape[2]
    scale = float((sample.features * sample.features).sum(2).max()) + float((sample.means * sample.means).sum(2).max())
    round_off = 4 * d * FLOAT_EPS * scale
    certified = (gram_deviation_bound(sample, printed_centres) + round_off <= half_width).tolist()
    return [True if ok else
            bool(concentration_events(_one_trial(sample, b), epsilon, half_width, printed_centres=printed_centres)["all"][0])
            for b, ok in enumerate(certified)]


def _lemma_of(statement: Statement) -> Statement:
    """Lemma C.3 for the delta statements (App. C), Lemma B.1 otherwise."""
    uses_delta = any(delta_sym in rel.free_symbols for rel in statement.assumptions.values())
    return LEMMA_C3 if uses_delta else LEMMA_B1


def proof_step(statement: Statement, sample, seeds: list[int], epsilon: float | None, v: float,
               holds: list[bool | None], conclusion_text: str) -> tuple[ProofStepTally | None, dict]:
    """The tally of 'on E, `conclusion_text`' over the trials (`holds[b]`: the conclusion in trial b, None:
    undecided, not counted against it), and its details. None when v > 0 comes without an epsilon."""
    lemma = _lemma_of(statement)
    width_text = sp.sstr(lemma.conclusions["half_width"])
    if v == 0:  # no noise: every Gram entry equals its centre, so E holds whatever the half-width
        event, width = [True] * len(seeds), 0.0
        name = f"{lemma.name}'s event E (v = 0: every Gram entry equals its centre)"
    elif not epsilon:
        return None, {"proof step": f"not evaluated: {lemma.name}'s event needs an epsilon"}
    else:
        width = float(lemma.evaluate(epsilon=epsilon, v=v)["half_width"].approx)
        event = lemma_event(sample, epsilon, width)
        name = f"{lemma.name}'s event E (Eqs. 9-13 within {width_text} = {width:.4g}, eps = {epsilon:.4g})"
    counter = [s for s, e, ok in zip(seeds, event, holds) if e and ok is False]
    tally = ProofStepTally(name, conclusion_text, len(seeds), sum(event), len(counter), counter[0] if counter else None)
    return tally, {"proof step event per trial": event, "proof step half-width": width}


# --- the noise level -------------------------------------------------------------------------------------------
def resolve_v(statement: Statement, K: int, Q: int, d: int, v, l_b: float, tokens: str, c: float, epsilon,
              Z_reading: str) -> tuple[float, str]:
    """v as given, or (None) the training claims' default: the largest v inside the assumptions at which the
    stated probability reaches 0.95 (`probable_v`), the assumption boundary where it does not depend on v."""
    from verify.data_model import DiverseValueDistribution, token_layout

    probe = DiverseValueDistribution(K, d, 0.0, l_b, tokens=token_layout(tokens, K))
    Z = probe.Z_pairs if Z_reading == "pairs" else probe.Z_clusters
    chosen, why = probable_v(statement, K, Q, Z, d, c, epsilon)
    if v is None:
        return chosen, why
    return float(v), f"v = {float(v):.4g} as given; the default rule gives {why}"


# --- the check --------------------------------------------------------------------------------------------
def check_generalization(statement: Statement, claim: str, seed: int, K: int, Q: int, d: int, v, l_b: float,
                         beta: float, tau: float, tokens: str, trials: int, test_size: int, c: float, v_outside: float,
                         epsilon=None, delta=None, Z_reading: str = "pairs", loss: PreferenceLoss = DPO,
                         training: Statement | None = None, end_margin: sp.Expr = LOG3):
    from verify.data_model import DiverseValueDistribution

    parameters = dict(K=K, Q=Q, d=d, v=v, l_b=l_b, beta=beta, tau=tau, tokens=tokens, trials=trials,
                      test_size=test_size, c=c, v_outside=v_outside, epsilon=epsilon, delta=delta, Z_reading=Z_reading)
    v, noise = resolve_v(statement, K, Q, d, v, l_b, tokens, c, epsilon, Z_reading)
    probe, Z, v, epsilon, delta, values, unmet = statement_setting(statement, K, Q, d, v, l_b, tokens, c, epsilon,
                                                                  delta, Z_reading)
    layout = probe.tokens
    parameters.update(v=v, epsilon=epsilon, delta=delta)
    log_bound = log_conclusion(statement, "risk_bound", **values)
    bound = conclusion(statement, "risk_bound", **values)  # for display; log_bound decides
    probability = conclusion(statement, "success_probability", **values)
    horizon = envelope_functions(training or _TRAINING[statement.name])[2](K, beta, tau)

    seeds = seeds_for(seed, trials)
    dist = DiverseValueDistribution(K, d, v, l_b, delta=delta, tokens=layout)
    models = train_and_measure(dist, Q, seeds, beta, tau, horizon, test_size, loss)
    above = [exceeds(x, log_bound) for x in models.log_risk]
    failures = sum(1 for a in above if a)
    first = next((s for s, a in zip(seeds, above) if a), None)
    per_trial_decades = [decades(log_bound, x) for x in models.log_risk]
    closest = min(per_trial_decades)
    tally, proof_details = proof_step(statement, models.sample, seeds, epsilon, v, [None if a is None else not a for a in above],
                                      "R(P) <= the risk bound")
    disagree, resolvable = monte_carlo_check(models)
    discrepancies = [f"exact risk outside the Monte Carlo {MONTE_CARLO_CONFIDENCE:.1%} interval at seeds {disagree}"] if disagree else []
    in_range = int(((models.train_margins >= 0) & (models.train_margins <= float(end_margin))).all(1).sum())

    log10_risks = _log10_list(models.log_risk)
    details = {"log10 risk per trial": log10_risks, "log10 risk bound": log_bound / LN10,
               "decades below the bound per trial": [round(x, 4) for x in per_trial_decades],
               "trials above the bound (seeds)": [s for s, a in zip(seeds, above) if a],
               "undecided trials (log R and log bound below float range)": [s for s, a in zip(seeds, above) if a is None],
               "measured and bound": "log10 of the largest exact risk and log10 of the bound",
               "risk bound": bound, "tau_1": horizon, "Z used": Z,
               "noise": noise,
               f"training margins in [0, {end_margin}] at tau_1 (step 4's premise, Theorem B.3)": f"{in_range}/{trials} trials",
               **proof_details,
               "Monte Carlo errors per trial": models.errors, "Monte Carlo test size per trial": test_size,
               "Monte Carlo resolvable trials": resolvable, "Monte Carlo disagreements (seeds)": disagree}
    tightness = {"decades below the bound (closest trial)": closest}
    if v_outside and v_outside != v:
        outside = train_and_measure(replace(dist, v=v_outside), Q, seeds, beta, tau, horizon, test_size, loss)
        # the bound evaluated at the outside point (eps re-resolved to the Remark's value there)
        _, out_eps, _ = statement.resolve_noise(Q, Z, v_outside, None, 0.0)
        out_values = {**values, "v": v_outside, "epsilon": out_eps}
        out_log_bound = log_conclusion(statement, "risk_bound", **out_values)
        out_disagree, out_resolvable = monte_carlo_check(outside)
        if out_disagree:
            discrepancies.append(f"v = {v_outside:g}: exact risk outside the Monte Carlo interval at seeds {out_disagree}")
        out_decades = min(decades(out_log_bound, x) for x in outside.log_risk)
        tightness[f"v={v_outside:g}: decades below the bound there (closest trial)"] = out_decades
        details["outside assumptions"] = {
            "v": v_outside, "log10 risk per trial": _log10_list(outside.log_risk),
            "log10 bound there": out_log_bound / LN10,
            "trials above the bound there": sum(1 for x in outside.log_risk if exceeds(x, out_log_bound)),
            "Monte Carlo errors per trial": outside.errors, "Monte Carlo resolvable trials": out_resolvable,
            "unmet": statement.unmet_among(out_values)}
    derivations = _derivations(statement.name)
    details["derivations"] = [f"{name}: {verdict}" for name, _, verdict in derivations]
    discrepancies += [f"{name}: {verdict}" for name, holds, verdict in derivations if holds is False]
    finite = [x for x in log10_risks if math.isfinite(x)]
    spread = f"[{min(finite):.6g}, {max(finite):.6g}]" if finite else "all -inf"
    summary = (f"exact risk at tau_1: log10 R per trial in {spread} vs log10 bound {log_bound / LN10:.6g}: "
               f"{failures}/{trials} trials above the bound, the closest {closest:.4g} decades below it; Monte Carlo "
               f"cross-check {sum(models.errors)}/{trials * test_size} test errors, {resolvable} trials resolvable, "
               f"{len(disagree)} disagree")
    worst = max(models.log_risk)
    return decide(claim, parameters, seed, unmet=unmet, probability=probability, failures=failures, trials=trials,
                  first_failure=first, measured=worst / LN10,  # -inf: R = 0 exactly (v = 0)
                  bound=log_bound / LN10, summary=summary, details=details, tightness=tightness,
                  discrepancies=discrepancies, vacuous_bound=log_bound >= 0, proof_step=tally)


_COMMON = dict(beta=0.01, tau=1.0, c=1.0, Z_reading="pairs")
_CLAIM = dict(specs=vocabulary(v="optional", epsilon="optional", delta="optional"), footprint=training_footprint)
# Monte Carlo is the cross-check only: a few thousand draws resolve risks down to about 1e-3.
_QUICK = dict(K=2, Q=40, d=4, trials=3, test_size=1000)


def _register(claim_id: str, statement: Statement, defaults: dict) -> None:
    register(Claim(claim_id, check=functools.partial(check_generalization, statement, claim_id), statement=statement,
                   defaults={**defaults, **_COMMON}, quick=_QUICK, **_CLAIM))


# the paper's own point (K = 10, Q = 880, beta = 0.01, l_b = 1/4), small d (d <= 5Q holds); v at the boundary
_register("theorem-4.3", THEOREM_4_3,
          dict(K=10, Q=880, d=12, v=None, l_b=0.25, tokens="chain", trials=4, test_size=2000, v_outside=0.3))
# B.4 and C.6: v (auto) is the largest at which the stated probability reaches 0.95 (about 9.6e-4 at K = 4,
# Q = 100; the assumption boundary 1/(4 sqrt Q) = 0.025 gives a negative probability), eps the Remark's; 72 trials
# are the fewest whose 95% Clopper-Pearson upper bound with no failure is <= 0.05.
_register("theorem-b.4", THEOREM_B4,
          dict(K=4, Q=100, d=8, v=None, l_b=0.25, tokens="chain", trials=72, test_size=1000, v_outside=0.3,
               epsilon=None))
_register("theorem-c.6", THEOREM_C6,
          dict(K=4, Q=100, d=8, v=None, l_b=0.25, tokens="chain", trials=72, test_size=1000, v_outside=0.3, epsilon=None,
               delta=None))
