"""Claim scaling-law (§4.2, Fig. 4): Q_min(K), the samples per value for 2KQ^2 e^{-Q/45} <= delta, grows like log K.

Symbolic side: `theory.scaling_law.samples_per_value` (Lambert W_{-1}); checked here against the Statement's
own risk bound at Q_min and Q_min - 1, and the paper's "K = 10 needs more than 875". Numeric side: train at
Q = Q_min(K) inside Theorem 4.3's assumptions and measure the risk against delta. Only sufficiency is
proved (SPEC §5 item 10): no check can confirm the "Theta".
"""
from __future__ import annotations

from theory.generalization import THEOREM_4_3
from theory.numbers import exact_rational, float_at_most
from theory.scaling_law import SCALING_LAW, paper_claim_K10, samples_per_value
from theory.training_guarantee import THEOREM_4_2
from verify.claims import Claim, register
from verify.claims.common import conclusion, decide, envelope_functions, exceeds_rate, seeds_for, training_footprint
from verify.claims.generalization import test_risk
from verify.parameters import Parameter, vocabulary
from verify.verdicts import clopper_pearson


def _largest_Q_min(parameters) -> int:
    return max(samples_per_value(K, exact_rational("delta", parameters["delta"])).Q_min for K in _ints(parameters["K_values"]))


def _ints(text) -> list[int]:
    return [int(x) for x in str(text).split(",") if x.strip()]


def check_scaling_law(seed: int, K_values: str, K_table: str, delta: float, d: int, l_b: float, beta: float, tau: float,
                      tokens: str, trials: int, test_size: int, c: float, v_outside: float):
    from verify.data_model import DiverseValueDistribution, token_layout

    parameters = dict(K_values=K_values, K_table=K_table, delta=delta, d=d, l_b=l_b, beta=beta, tau=tau, tokens=tokens,
                      trials=trials, test_size=test_size, c=c, v_outside=v_outside)
    discrepancies, table = [], {}
    for K in sorted(set(_ints(K_table) + _ints(K_values))):
        Q_min = samples_per_value(K, exact_rational("delta", delta)).Q_min
        at, before = (conclusion(THEOREM_4_3, "risk_bound", K=K, Q=q) for q in (Q_min, Q_min - 1))
        if not (at <= delta and (Q_min == 40 or before > delta)):
            discrepancies.append(f"K = {K}: Q_min = {Q_min} but the bound is {at:.4g} there and {before:.4g} at Q_min - 1")
        table[K] = Q_min
    paper = paper_claim_K10()
    if not paper.holds:
        discrepancies.append(paper.verdict)
    ks = sorted(table)
    decades = {f"{a}->{b}": table[b] - table[a] for a, b in zip(ks, ks[1:])}

    unmet, errors_all, exceed_all, probabilities, outside, seeds = [], [], [], [], {}, seeds_for(seed, trials)
    horizon_of = envelope_functions(THEOREM_4_2)[2]
    for K in _ints(K_values):
        Q = table[K]
        layout = token_layout(tokens, K)
        dK = max(d, K + 1)
        dist0 = DiverseValueDistribution(K, dK, 0.0, l_b, tokens=layout)
        v = float_at_most(THEOREM_4_3.v_boundary(Q))
        unmet += [f"K = {K}: {u}" for u in THEOREM_4_3.unmet(Z=dist0.Z_pairs, d=dK, v=v, Q=Q, l_b=l_b)]
        probabilities.append(conclusion(THEOREM_4_3, "success_probability", K=K, Q=Q, c=c))
        horizon = horizon_of(K, beta, tau)
        errors, _ = test_risk(DiverseValueDistribution(K, dK, v, l_b, tokens=layout), Q, seeds, beta, tau, horizon, test_size)
        errors_all += errors
        exceed_all += exceeds_rate(errors, test_size, delta, trials * len(_ints(K_values)))
        if v_outside:
            out, _ = test_risk(DiverseValueDistribution(K, dK, v_outside, l_b, tokens=layout), Q, seeds, beta, tau, horizon, test_size)
            outside[f"K={K}, v={v_outside:g}: risk / delta"] = sum(out) / (trials * test_size) / delta
    total = len(errors_all) * test_size
    rate = sum(errors_all) / total
    upper = float(clopper_pearson(sum(errors_all), total)[1])
    failures = sum(exceed_all)
    tightness = {"risk at Q_min / delta": rate / delta, "risk 95% CP upper / delta": upper / delta,
                 **{f"bound(Q_min(K={K})) / delta": conclusion(THEOREM_4_3, "risk_bound", K=K, Q=table[K]) / delta
                    for K in _ints(K_values)}, **outside}
    details = {"Q_min": table, "Q_min increase per step of K": decades, "paper's K = 10 claim": paper.verdict,
               "errors per trial": errors_all, "Theta(log K)": "only the upper bound (sufficiency) is proved; SPEC §5 item 10"}
    summary = (f"Q_min(K) for delta = {delta:g}: {table} (increase {decades}); trained at Q_min(K) for K in "
               f"{_ints(K_values)}: risk {rate:.3g} (95% CP upper {upper:.3g}) vs delta {delta:g}")
    return decide("scaling-law", parameters, seed, unmet=unmet, probability=min(probabilities), failures=failures,
                  trials=len(exceed_all), first_failure=None if not failures else seeds[exceed_all.index(True) % trials],
                  measured=upper, bound=delta, summary=summary, details=details, tightness=tightness,
                  discrepancies=discrepancies)


register(Claim(
    "scaling-law", check=check_scaling_law, statement=SCALING_LAW,
    defaults=dict(K_values="1,2,4", K_table="1,10,100,1000", delta=0.05, d=6, l_b=0.25, beta=0.01, tau=1.0,
                  tokens="chain", trials=2, test_size=10000, c=1.0, v_outside=0.3),
    quick=dict(K_values="1", K_table="1,10", trials=1, test_size=1000, d=4, v_outside=0.0),
    specs=vocabulary(
        K_values=Parameter("int-list", "the K at which models are trained at Q_min(K)", 1, 10**4),
        K_table=Parameter("int-list", "the K of the Q_min(K) table (symbolic only)", 1, 10**12),
        delta=Parameter("real", "target risk", 0, 1, low_open=True, high_open=True)),
    footprint=lambda p: training_footprint({**p, "Q": _largest_Q_min(p)})))
