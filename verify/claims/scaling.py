"""Claim scaling-law (§4.2, Fig. 4): Q = Q_min(K), the samples per value with 2KQ^2 e^{-Q/45} <= delta, suffice
for a risk of at most delta.

Numeric side (what can fail): for each K, train at Q = Q_min(K) inside Theorem 4.3's assumptions (v at its
boundary 1/(32 sqrt Q)) and evaluate each trial's population risk exactly, in log space
(`verify.claims.generalization`); a trial fails iff its risk exceeds delta. The same is measured across Q below
Q_min (the floor Q = 40, Q_min/4, Q_min/2) against the bound and delta: how loose the bound is, in decades. The
proof step is Theorem 4.3's: on Lemma B.1's event at the Remark's epsilon, R(P) <= bound(Q_min) <= delta.

Symbolic side (reported in details; it guards the table, not the claim): `theory.scaling_law.samples_per_value`
(Lambert W_{-1}) against the Statement's own risk bound at Q_min and Q_min - 1, and the paper's "K = 10 needs
more than 875". Only sufficiency is proved (SPEC §5 item 10): no check can confirm the "Theta".
"""
from __future__ import annotations

import math
from dataclasses import replace

from theory.generalization import THEOREM_4_3
from theory.numbers import exact_rational, float_at_most
from theory.scaling_law import SCALING_LAW, paper_claim_K10, samples_per_value
from theory.training_guarantee import THEOREM_4_2
from verify.claims import Claim, register
from verify.claims.common import conclusion, decide, envelope_functions, seeds_for, training_footprint
from verify.claims.generalization import (LN10, MONTE_CARLO_CONFIDENCE, decades, exceeds, log_conclusion,
                                          monte_carlo_check, proof_step, train_and_measure)
from verify.parameters import Parameter, vocabulary
from verify.verdicts import ProofStepTally

# Q below Q_min at which the risk is also measured: fractions of Q_min, and Theorem 4.3's floor Q >= 40.
BELOW_Q_MIN = (1 / 4, 1 / 2)
MINIMUM_Q = 40


def _largest_Q_min(parameters) -> int:
    return max(samples_per_value(K, exact_rational("delta", parameters["delta"])).Q_min for K in _ints(parameters["K_values"]))


def _ints(text) -> list[int]:
    return [int(x) for x in str(text).split(",") if x.strip()]


def q_grid(Q_min: int) -> list[int]:
    """Q_min and a few Q below it, none below Theorem 4.3's Q >= 40."""
    return sorted({MINIMUM_Q, Q_min, *(max(MINIMUM_Q, int(Q_min * f)) for f in BELOW_Q_MIN)})


def symbolic_table(Ks, delta) -> tuple[dict[int, int], list[str]]:
    """Q_min(K) and the discrepancies of the table: the bound must be <= delta at Q_min and > delta at Q_min - 1."""
    discrepancies, table = [], {}
    for K in Ks:
        Q_min = samples_per_value(K, exact_rational("delta", delta)).Q_min
        at, before = (conclusion(THEOREM_4_3, "risk_bound", K=K, Q=q) for q in (Q_min, Q_min - 1))
        if not (at <= delta and (Q_min == MINIMUM_Q or before > delta)):
            discrepancies.append(f"K = {K}: Q_min = {Q_min} but the bound is {at:.4g} there and {before:.4g} at Q_min - 1")
        table[K] = Q_min
    return table, discrepancies


def _merge(tallies: list[ProofStepTally], event: str, conclusion_text: str) -> ProofStepTally | None:
    if not tallies:
        return None
    firsts = [t.first_counterexample_seed for t in tallies if t.first_counterexample_seed is not None]
    return ProofStepTally(event, conclusion_text, sum(t.trials for t in tallies), sum(t.event_held for t in tallies),
                          sum(t.counterexamples for t in tallies), firsts[0] if firsts else None)


def check_scaling_law(seed: int, K_values: str, K_table: str, delta: float, d: int, l_b: float, beta: float, tau: float,
                      tokens: str, trials: int, test_size: int, c: float, v_outside: float):
    from verify.data_model import DiverseValueDistribution, token_layout

    parameters = dict(K_values=K_values, K_table=K_table, delta=delta, d=d, l_b=l_b, beta=beta, tau=tau, tokens=tokens,
                      trials=trials, test_size=test_size, c=c, v_outside=v_outside)
    table, discrepancies = symbolic_table(sorted(set(_ints(K_table) + _ints(K_values))), delta)
    paper = paper_claim_K10()
    if not paper.holds:
        discrepancies.append(paper.verdict)
    ks = sorted(table)
    increase = {f"{a}->{b}": table[b] - table[a] for a, b in zip(ks, ks[1:])}

    log_delta = math.log(delta)
    seeds = seeds_for(seed, trials)
    horizon_of = envelope_functions(THEOREM_4_2)[2]
    unmet, probabilities, tallies, across, outside = [], [], [], {}, {}
    at_Q_min: list[tuple[int, float]] = []  # (seed, log R) of every trial at Q_min, over the K
    above: list[bool | None] = []
    disagree, resolvable, mc_errors = [], 0, []
    for K in _ints(K_values):
        Q_min = table[K]
        layout = token_layout(tokens, K)
        dK = max(d, K + 1)
        Z = DiverseValueDistribution(K, dK, 0.0, l_b, tokens=layout).Z_pairs
        horizon = horizon_of(K, beta, tau)
        across[K] = {}
        for Q in q_grid(Q_min):
            v = float_at_most(THEOREM_4_3.v_boundary(Q))
            point_unmet = THEOREM_4_3.unmet(Z=Z, d=dK, v=v, Q=Q, l_b=l_b)
            dist = DiverseValueDistribution(K, dK, v, l_b, tokens=layout)
            models = train_and_measure(dist, Q, seeds, beta, tau, horizon, test_size)
            log_bound = log_conclusion(THEOREM_4_3, "risk_bound", K=K, Q=Q)
            out, count = monte_carlo_check(models)
            disagree += [f"K = {K}, Q = {Q}, seed {s}" for s in out]
            resolvable += count
            across[K][Q] = {"log10 risk per trial": [round(x / LN10, 4) for x in models.log_risk],
                            "log10 bound": log_bound / LN10, "log10 delta": log_delta / LN10,
                            "decades below the bound (closest trial)": min(decades(log_bound, x) for x in models.log_risk),
                            "decades below delta (closest trial)": min(decades(log_delta, x) for x in models.log_risk),
                            "Monte Carlo errors per trial": models.errors}
            if point_unmet:
                across[K][Q]["unmet"] = point_unmet
            if Q != Q_min:
                continue
            unmet += [f"K = {K}: {u}" for u in point_unmet]
            probabilities.append(conclusion(THEOREM_4_3, "success_probability", K=K, Q=Q, c=c))
            exceed = [exceeds(x, log_delta) for x in models.log_risk]
            above += exceed
            at_Q_min += list(zip(seeds, models.log_risk))
            mc_errors += models.errors
            epsilon = THEOREM_4_3.resolve_noise(Q, Z, v, None, 0.0)[1]  # the Remark's 1/(16 v (Z+2))
            tally, _ = proof_step(THEOREM_4_3, models.sample, seeds, epsilon, v,
                                  [None if a is None else not a for a in exceed], "R(P) <= delta")
            if tally is not None:
                tallies.append(tally)
            if v_outside:
                far = train_and_measure(replace(dist, v=v_outside), Q, seeds, beta, tau, horizon, test_size)
                outside[f"K={K}, v={v_outside:g}: decades below delta at Q_min (closest trial)"] = \
                    min(decades(log_delta, x) for x in far.log_risk)
                far_out, far_count = monte_carlo_check(far)
                disagree += [f"K = {K}, v = {v_outside:g}, seed {s}" for s in far_out]
                resolvable += far_count
    if disagree:
        discrepancies.append(f"exact risk outside the Monte Carlo {MONTE_CARLO_CONFIDENCE:.1%} interval: {disagree}")
    failures = sum(1 for a in above if a)
    first = next((s for (s, _), a in zip(at_Q_min, above) if a), None)
    tally = _merge(tallies, "Lemma B.1's event E at the Remark's eps = 1/(16 v (Z+2)) (half-width 2 eps v)",
                   "R(P) <= delta at Q_min(K)")
    worst = max(x for _, x in at_Q_min)
    closest = min(decades(log_delta, x) for _, x in at_Q_min)
    tightness = {"decades below delta at Q_min (closest trial)": closest,
                 **{f"bound(Q_min(K={K})) / delta": conclusion(THEOREM_4_3, "risk_bound", K=K, Q=table[K]) / delta
                    for K in _ints(K_values)}, **outside}
    details = {"Q_min": table, "Q_min increase per step of K": increase, "paper's K = 10 claim": paper.verdict,
               "log10 risk at Q_min per trial": [round(x / LN10, 4) for _, x in at_Q_min],
               "trials above delta at Q_min (seeds)": [s for (s, _), a in zip(at_Q_min, above) if a],
               "exact risk across Q (v = 1/(32 sqrt Q))": across,
               "measured and bound": "log10 of the largest exact risk at Q_min and log10 delta",
               "Monte Carlo errors per trial at Q_min": mc_errors, "Monte Carlo resolvable trials": resolvable,
               "Theta(log K)": "only the upper bound (sufficiency) is proved; SPEC §5 item 10"}
    summary = (f"Q_min(K) for delta = {delta:g}: {table}; exact risk at Q_min(K) for K in {_ints(K_values)}: log10 R "
               f"<= {worst / LN10:.6g} vs log10 delta {log_delta / LN10:.4g}: {failures}/{len(above)} trials above delta, "
               f"the closest {closest:.4g} decades below")
    return decide("scaling-law", parameters, seed, unmet=unmet, probability=min(probabilities), failures=failures,
                  trials=len(above), first_failure=first, measured=worst / LN10,  # -inf: R = 0 exactly
                  bound=log_delta / LN10, summary=summary, details=details, tightness=tightness,
                  discrepancies=discrepancies, proof_step=tally)


register(Claim(
    "scaling-law", check=check_scaling_law, statement=SCALING_LAW,
    defaults=dict(K_values="1,2,4", K_table="1,10,100,1000", delta=0.05, d=6, l_b=0.25, beta=0.01, tau=1.0,
                  tokens="chain", trials=2, test_size=2000, c=1.0, v_outside=0.3),
    quick=dict(K_values="1", K_table="1,10", trials=1, test_size=1000, d=4, v_outside=0.0),
    specs=vocabulary(
        K_values=Parameter("int-list", "the K at which models are trained at Q_min(K)", 1, 10**4),
        K_table=Parameter("int-list", "the K of the Q_min(K) table (symbolic only)", 1, 10**12),
        delta=Parameter("real", "target risk", 0, 1, low_open=True, high_open=True)),
    footprint=lambda p: training_footprint({**p, "Q": _largest_Q_min(p)})))
