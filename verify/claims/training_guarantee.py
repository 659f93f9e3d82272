"""Claims theorem-4.2, theorem-b.3, theorem-c.5: the margin envelope r_L(t) <= r_j(t) <= r_U(t) up to tau_1.

One check serves the three statements (SPEC §2.2, §2.6, §2.7); each brings its own assumptions, envelope
and success probability from `theory.training_guarantee`. The dynamics are the exact gradient flow of
`verify.training` on samples of `verify.data_model`, batched over seeds.

Besides the statement, each trial checks the step its proof rests on (SPEC §3): on the event E of Lemma B.1
(Lemma C.3 for C.5) at the epsilon the theorem uses, Lemma B.2's sandwich of tau dr/dt holds at every
recorded time and the margins stay in [r_L, r_U] up to tau_1. A trial with E and without either is a
counterexample to the proof, whatever the stated probability.
"""
from __future__ import annotations

import functools
from dataclasses import replace

import sympy as sp

from theory.concentration import LEMMA_B1, LEMMA_C3
from theory.numbers import float_at_most
from theory.statements import REMARK_EPSILON, Statement, parameter_values
from theory.symbols import (N as N_sym, Q as Q_sym, Z as Z_sym, beta as beta_sym, d as d_sym, delta as delta_sym,
                           epsilon as epsilon_sym, l_b as l_b_sym, v as v_sym)
from theory.training_guarantee import (LEMMA_B2, THEOREM_4_2, THEOREM_B3, THEOREM_C5, envelope_at_tau_1,
                                       envelope_slopes_from_lemma_b2, main_text_probability_from_b3, s_max, s_min)
from theory.losses import DPO, PreferenceLoss
from verify.claims import Claim, register
from verify.claims.common import (CONFIDENCE, FLOAT_EPS, conclusion, decide, envelope_functions, flow_with_error,
                                  initial_slopes, seeds_for, training_footprint)
from verify.parameters import vocabulary
from verify.symbolic import weight_function
from verify.verdicts import ProofStepTally

# The event each theorem's proof conditions on: Lemma B.1's (Eqs. 9-13), or Lemma C.3's wider one in App. C.
PROOF_EVENT = {THEOREM_4_2.name: LEMMA_B1, THEOREM_B3.name: LEMMA_B1, THEOREM_C5.name: LEMMA_C3}
_HALF_WIDTH = sp.Symbol("h", positive=True)  # the event's half-width, whatever epsilon and v make it


def _derivation_key(statement: Statement) -> tuple:
    """What the derivations read: the statement's and Lemma B.2's conclusions (a changed statement re-derives)."""
    return (statement.name, tuple(statement.conclusions.items()), tuple(LEMMA_B2.conclusions.items()),
            tuple(THEOREM_4_2.conclusions.items()))


# Derivations by the contents they read (a Statement holds dicts, so it cannot key an lru_cache itself).
_DERIVED: dict[tuple, tuple[tuple[str, bool | None, str], ...]] = {}


def derivation_checks(statement: Statement) -> tuple[tuple[str, bool | None, str], ...]:
    """The symbolic re-derivations behind a training statement (theory/training_guarantee.py item 2)."""
    key = _derivation_key(statement)
    if key not in _DERIVED:
        results = [envelope_at_tau_1(statement)]
        if statement.name == THEOREM_4_2.name:
            results += [envelope_slopes_from_lemma_b2(32), main_text_probability_from_b3()]
        elif statement.name == THEOREM_B3.name:
            results.append(envelope_slopes_from_lemma_b2(4))  # B.3's own condition v <= 1/(4 sqrt Q)
        _DERIVED[key] = tuple((r.claim, r.holds, r.verdict) for r in results)
    return _DERIVED[key]


# --- the proof step: Lemma B.2's sandwich on the event of Lemma B.1 -----------------------------------------
def margin_velocity(sample, margins, beta: float, tau: float, loss: PreferenceLoss = DPO):
    """tau dr_j/dt at the given margins (B, T, N) of every training sample, from Lemma 4.1 exactly:
    the margin of the velocity dW/dt = -grad L / tau at weights w(r) (the `initial_slopes` step at any time)."""
    import torch
    from verify.training import segment_gradient, segment_margins, training_set

    data = training_set(sample)
    weight = weight_function(loss)
    slopes = []
    for k in range(margins.shape[1]):
        stored = margins[:, k] if data.order is None else margins[:, k][:, data.order]
        velocity = -segment_gradient(data, weight(stored), beta) / tau
        slopes.append(data.in_input_order(segment_margins(data, velocity, beta)) * tau)
    return torch.stack(slopes, 1)


@functools.lru_cache(maxsize=None)
def _sandwich_functions(lower: sp.Expr, upper: sp.Expr, half_width: sp.Expr):
    """Lemma B.2's bounds as torch functions of (s_min, s_max, Q, beta, N, l_b, d, v, Z, h), epsilon written
    through the event's half-width h: Lemma B.2 is derived from Lemma B.1's half-width (2 eps v), so with
    Lemma C.3's (5/2 eps v) it is the same display at the eps whose B.1 half-width is h (Lemma C.4)."""
    from verify.symbolic import torch_function

    per_epsilon = sp.simplify(half_width / epsilon_sym)  # 2 v for Lemma B.1
    as_h = {epsilon_sym: _HALF_WIDTH / per_epsilon}
    symbols = (s_min, s_max, Q_sym, beta_sym, N_sym, l_b_sym, d_sym, v_sym, Z_sym, _HALF_WIDTH)
    return tuple(torch_function(sp.expand(e.subs(as_h)), *symbols) for e in (lower, upper))


def event_half_width(event: Statement, epsilon, v: float, Z: int) -> float:
    """The half-width of the event's Gram bounds at (epsilon, v); epsilon None: the Remark's 1/(16 v (Z+2)),
    whose half-width does not depend on v (so v = 0 is its limit)."""
    width = event.conclusions["half_width"]
    width = sp.simplify(width.subs(epsilon_sym, REMARK_EPSILON)) if epsilon is None else width
    values = parameter_values({k: x for k, x in dict(epsilon=epsilon, v=v, Z=Z).items() if x is not None})
    return float(width.subs(values))


def proof_step(statement: Statement, sample, margins, outside, beta: float, tau: float, Z: int, epsilon,
               seeds, loss: PreferenceLoss = DPO) -> tuple[ProofStepTally, dict, dict]:
    """Per trial: E (the event of the theorem's proof at its epsilon), Lemma B.2's sandwich at every recorded
    time, and the envelope; the tally counts trials with E and a failed conclusion."""
    import torch
    from verify.data_model import concentration_events

    dist = sample.distribution
    event = PROOF_EVENT.get(statement.name, LEMMA_B1)
    width = event_half_width(event, epsilon, dist.v, Z)
    held = concentration_events(sample, 1.0, width, printed_centres=True)["all"]  # epsilon unused with a width

    slopes = margin_velocity(sample, margins, beta, tau, loss)  # (B, T, N)
    weights = weight_function(loss)(margins)  # sigma(-r): Lemma B.2's s_min, s_max are their extremes over k
    low_w, high_w = weights.amin(2), weights.amax(2)  # (B, T)
    Q, (B, T, N), d = sample.per_cluster, slopes.shape, dist.d
    lower_f, upper_f = _sandwich_functions(LEMMA_B2.conclusions["lower_rate"], LEMMA_B2.conclusions["upper_rate"],
                                           LEMMA_B1.conclusions["half_width"])
    arguments = [torch.tensor(float(x), dtype=slopes.dtype) for x in (Q, beta, N, dist.l_b, d, dist.v, Z, width)]
    lower, upper = lower_f(low_w, high_w, *arguments), upper_f(low_w, high_w, *arguments)  # (B, T)
    # Round-off of the velocity (two passes of sums over N samples and d coordinates) and of the bounds,
    # relative to sum_k |M_jk| w_k <= 2 |x_j| sum_k |x_k| s_max.
    norms = sample.features.norm(dim=2)  # (B, N)
    scale = beta**2 / N * 2 * norms.amax(1)[:, None] * norms.sum(1)[:, None] * high_w  # (B, T)
    tolerance = (N + d + 20) * FLOAT_EPS * scale
    sandwich_failed = outside_sandwich(slopes, lower, upper, tolerance)
    counter = held & (sandwich_failed | outside)
    first = seeds[int(counter.nonzero()[0])] if bool(counter.any()) else None
    tally = ProofStepTally(
        event=f"{event.name}'s event (Eqs. 9-13 within {width:.4g} of the printed centres"
              + (f", eps = {epsilon:.4g})" if epsilon is not None else ", the Remark's eps)"),
        conclusion="Lemma B.2's sandwich of tau dr/dt at every recorded time and r_L <= r <= r_U to tau_1",
        trials=B, event_held=int(held.sum()), counterexamples=int(counter.sum()), first_counterexample_seed=first)
    on_event = held[:, None, None].expand_as(slopes)
    ratio_low = (slopes / lower[..., None])[on_event]
    ratio_high = (slopes / upper[..., None])[on_event]
    details = {
        "proof step: event": {"statement": event.name, "half width": width, "epsilon": epsilon,
                              "trials where it held": int(held.sum()), "of": B},
        "proof step: Lemma B.2 sandwich": {"recorded times": T, "trials where it failed": int(sandwich_failed.sum()),
                                           "of those with the event": int((held & sandwich_failed).sum())},
        "proof step: envelope to tau_1": {"trials where it failed": int(outside.sum()),
                                          "of those with the event": int((held & outside).sum())},
    }
    tightness = {}
    if len(ratio_low):
        tightness["on the event: min tau r' / Lemma B.2 lower bound"] = float(ratio_low.min())
        tightness["on the event: max tau r' / Lemma B.2 upper bound"] = float(ratio_high.max())
    return tally, details, tightness


def outside_sandwich(slopes, lower, upper, tolerance):
    """Per trial: does some slope (B, T, N) leave [lower, upper] (B, T) by more than the round-off tolerance?"""
    below = slopes < (lower - tolerance)[..., None]
    above = slopes > (upper + tolerance)[..., None]
    return (below | above).flatten(1).any(1)


# --- the measurement ------------------------------------------------------------------------------------
def _envelope_run(dist, Q, seeds, beta, tau, statement, grid, loss: PreferenceLoss = DPO):
    """Flow to tau_1; per trial: inside the envelope? plus slopes and end margins."""
    import torch

    r_L, r_U, tau_1, slope_L, slope_U = envelope_functions(statement)
    K = dist.K
    horizon = tau_1(K, beta, tau)
    times = torch.linspace(0.0, horizon, grid, dtype=torch.float64)
    sample = dist.sample(seeds, Q)
    result, error = flow_with_error(sample, beta, tau, times, loss=loss)
    margins = result.train_margins  # (B, T, N)
    lower = torch.tensor([r_L(K, beta, tau, float(s)) for s in times], dtype=torch.float64)[None, :, None]
    upper = torch.tensor([r_U(K, beta, tau, float(s)) for s in times], dtype=torch.float64)[None, :, None]
    outside = ((margins < lower - error) | (margins > upper + error)).flatten(1).any(1)
    slopes = initial_slopes(sample, beta, tau, loss)
    end = margins[:, -1]
    return dict(outside=outside, error=error, horizon=horizon, end_min=float(end.min()), end_max=float(end.max()),
                end_L=r_L(K, beta, tau, horizon), end_U=r_U(K, beta, tau, horizon),
                slope_min=float(slopes.min()), slope_max=float(slopes.max()),
                slope_L=slope_L(K, beta, tau), slope_U=slope_U(K, beta, tau),
                sample=sample, margins=margins, times=times)


def _ratios(run: dict, prefix: str = "") -> dict[str, float]:
    return {f"{prefix}min slope / printed lower slope": run["slope_min"] / run["slope_L"],
            f"{prefix}max slope / printed upper slope": run["slope_max"] / run["slope_U"],
            f"{prefix}min r(tau_1) / r_L(tau_1)": run["end_min"] / run["end_L"],
            f"{prefix}max r(tau_1) / r_U(tau_1)": run["end_max"] / run["end_U"]}


def probable_v(statement: Statement, K: int, Q: int, Z: int, d: int, c: float, epsilon=None,
               target: float = CONFIDENCE) -> tuple[float, str]:
    """The default noise level: the largest v inside the assumptions at which the stated success probability is
    at least `target` (at the given epsilon, or the Remark's 1/(16 v (Z+2))), and a line saying why.

    The assumption boundary where the probability reaches `target` there or does not depend on v (Theorem 4.2:
    negative at every v for Q below ~1.4e5); else the probability increases as v falls, and bisection on log v
    finds where it reaches `target`: this forces a v below the boundary.
    """
    import mpmath

    # A statement without a v assumption (Lemma B.1): the search starts at v = 1, where every stated
    # probability of App. B/C is far below 0.
    bounded = statement.upper_bound("v", Q=Q) is not None
    boundary = float_at_most(statement.v_boundary(Q)) if bounded else 1.0
    probability = statement.conclusions["success_probability"]
    probability = probability.subs(epsilon_sym, REMARK_EPSILON if epsilon is None else sp.Float(epsilon, 30))
    probability = probability.subs(parameter_values(dict(K=K, Q=Q, Z=Z, d=d, c=c)))
    if v_sym not in probability.free_symbols:
        return boundary, f"v at the assumption boundary {boundary:.4g} (the stated probability does not depend on v)"
    at = sp.lambdify(v_sym, probability, "mpmath")
    with mpmath.workdps(30):
        at_boundary = at(mpmath.mpf(boundary))
        if at_boundary >= target:
            return boundary, f"v at the assumption boundary {boundary:.4g} (stated probability {float(at_boundary):.3g})"
        low, high = mpmath.mpf(boundary) * mpmath.mpf(10) ** -8, mpmath.mpf(boundary)
        if at(low) < target:
            return boundary, (f"v at the assumption boundary {boundary:.4g}: the stated probability stays below "
                              f"{target:g} at every v down to {float(low):.3g}")
        for _ in range(80):
            middle = mpmath.sqrt(low * high)
            low, high = (middle, high) if at(middle) >= target else (low, middle)
        v = float_at_most(sp.Float(low, 30))
    where = (f"forced below the assumption boundary {boundary:.4g}, where it is {float(at_boundary):.3g}" if bounded
             else f"no assumption bounds v; at v = 1 it is {float(at_boundary):.3g}")
    return v, f"v = {v:.4g}, the largest v at which the stated probability reaches {target:g}: {where}"


def statement_setting(statement: Statement, K: int, Q: int, d: int, v, l_b: float, tokens: str, c: float, epsilon,
                      delta, Z_reading: str):
    """The noise-free distribution (its token layout and Z), Z, the resolved noise parameters, the values for
    `theory`, and the unmet assumptions."""
    from verify.data_model import DiverseValueDistribution, token_layout

    layout = token_layout(tokens, K)
    probe = DiverseValueDistribution(K, d, 0.0, l_b, tokens=layout)
    Z = probe.Z_pairs if Z_reading == "pairs" else probe.Z_clusters
    uses_delta = any(delta_sym in rel.free_symbols for rel in statement.assumptions.values())
    v, epsilon, delta = statement.resolve_noise(Q, Z, v, epsilon, delta if uses_delta else 0.0)
    values = dict(K=K, Q=Q, d=d, Z=Z, v=v, l_b=l_b, c=c, delta=delta, epsilon=epsilon if epsilon else 1)
    return probe, Z, v, epsilon, delta, values, statement.unmet_among(values)


def check_training_guarantee(statement: Statement, claim: str, seed: int, K: int, Q: int, d: int, v, l_b: float,
                             beta: float, tau: float, tokens: str, trials: int, c: float, v_outside: float,
                             grid: int, epsilon=None, delta=None, Z_reading: str = "pairs", loss: PreferenceLoss = DPO,
                             derived_elsewhere: bool = False):
    """`derived_elsewhere`: the statement comes from a derivation of its own (theory/chain.py), so the
    re-derivations of the paper's printed envelope do not apply to it."""
    from verify.data_model import DiverseValueDistribution, token_layout

    parameters = dict(K=K, Q=Q, d=d, v=v, l_b=l_b, beta=beta, tau=tau, tokens=tokens, trials=trials, c=c,
                      v_outside=v_outside, grid=grid, epsilon=epsilon, delta=delta, Z_reading=Z_reading)
    v_choice = None
    if v is None:
        layout = DiverseValueDistribution(K, d, 0.0, l_b, tokens=token_layout(tokens, K))
        Z_probe = layout.Z_pairs if Z_reading == "pairs" else layout.Z_clusters
        v, v_choice = probable_v(statement, K, Q, Z_probe, d, c, epsilon)
    probe, Z, v, epsilon, delta, values, unmet = statement_setting(statement, K, Q, d, v, l_b, tokens, c, epsilon,
                                                                  delta, Z_reading)
    layout = probe.tokens
    parameters.update(v=v, epsilon=epsilon, delta=delta)
    probability = conclusion(statement, "success_probability", **values)

    seeds = seeds_for(seed, trials)
    dist = DiverseValueDistribution(K, d, v, l_b, delta=delta, tokens=layout)
    run = _envelope_run(dist, Q, seeds, beta, tau, statement, grid, loss)
    failures = int(run["outside"].sum())
    first = seeds[int(run["outside"].nonzero()[0])] if failures else None
    tightness = _ratios(run)
    details = {"Z_pairs": probe.Z_pairs, "Z_clusters": probe.Z_clusters, "Z used": Z, "tau_1": run["horizon"],
               "solver error bound": run["error"], "tau r'(0) range": (run["slope_min"], run["slope_max"]),
               "printed slopes": (run["slope_L"], run["slope_U"]), "r(tau_1) range": (run["end_min"], run["end_max"]),
               "envelope at tau_1": (run["end_L"], run["end_U"])}
    if v_choice:
        details["v choice"] = v_choice
    tally, step_details, step_tightness = proof_step(statement, run["sample"], run["margins"], run["outside"], beta,
                                                     tau, Z, epsilon, seeds, loss)
    details.update(step_details)
    tightness.update(step_tightness)
    # Just outside: the same draws at a fixed noise v_outside (e.g. v independent of Q).
    if v_outside and v_outside != v:
        out = _envelope_run(replace(dist, v=v_outside), Q, seeds, beta, tau, statement, grid, loss)
        tightness.update(_ratios(out, f"v={v_outside:g}: "))
        tightness[f"v={v_outside:g}: trials outside the envelope"] = int(out["outside"].sum())
        details["outside assumptions"] = {"v": v_outside, "unmet": statement.unmet_among({**values, "v": v_outside})}
    derivations = () if derived_elsewhere else derivation_checks(statement)
    details["derivations"] = [f"{name}: {verdict}" for name, _, verdict in derivations]
    discrepancies = [f"{name}: {verdict}" for name, holds, verdict in derivations if holds is False]
    summary = (f"r in [r_L, r_U] checked at {grid} times to tau_1 = {run['horizon']:.4g} for N = {2 * K * Q} margins; "
               f"tau r'(0) in [{run['slope_min']:.3g}, {run['slope_max']:.3g}] vs printed slopes "
               f"[{run['slope_L']:.3g}, {run['slope_U']:.3g}]; r(tau_1) in [{run['end_min']:.4f}, {run['end_max']:.4f}] "
               f"vs [{run['end_L']:.4f}, {run['end_U']:.4f}]")
    return decide(claim, parameters, seed, unmet=unmet, probability=probability, failures=failures, trials=trials,
                  first_failure=first, measured=run["end_max"], bound=run["end_U"], summary=summary,
                  details=details, tightness=tightness, discrepancies=discrepancies, proof_step=tally)


_COMMON = dict(beta=0.01, tau=1.0, tokens="chain", c=1.0, grid=9, Z_reading="pairs")
# Q = 80 in the quick profile: at Theorem 4.2's v = 1/(32 sqrt Q) the Gram deviations (about 8 v at these
# sizes) fall inside the Remark's half-width 1/(8 (Z+2)) once sqrt Q >= (Z+2) 8/4, so the proof's event holds.
_QUICK = dict(K=2, Q=80, d=4, trials=3, grid=5)
_SPECS = vocabulary(v="optional", epsilon="optional", delta="optional")
_CLAIM = dict(specs=_SPECS, footprint=training_footprint)


def _register(claim_id: str, statement: Statement, **noise) -> None:
    register(Claim(claim_id, check=functools.partial(check_training_guarantee, statement, claim_id), statement=statement,
                   defaults=dict(K=4, Q=60, d=8, v=None, l_b=0.25, trials=8, v_outside=0.1, **noise, **_COMMON),
                   quick=_QUICK, **_CLAIM))


_register("theorem-4.2", THEOREM_4_2)
_register("theorem-b.3", THEOREM_B3, epsilon=None)
_register("theorem-c.5", THEOREM_C5, epsilon=None, delta=None)
