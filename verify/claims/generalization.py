"""Claims theorem-4.3, theorem-b.4, theorem-c.6: the population 0-1 risk of the implicit reward model at tau_1.

The risk of each trained trial is estimated on an independent test set from P (Def. 3.1: r <= 0 is an
error). A trial exceeds the bound when its error count is significantly above bound x n (one-sided binomial
test, Bonferroni over trials); the statement allows a fraction 1 - P of trials to exceed it (common.py).
"""
from __future__ import annotations

import functools

from theory.generalization import THEOREM_4_3, THEOREM_B4, THEOREM_C6, refined_exponent_after_remark
from theory.statements import Statement
from theory.training_guarantee import THEOREM_4_2, THEOREM_B3, THEOREM_C5
from verify.claims import Claim, register
from verify.claims.common import conclusion, decide, envelope_functions, exceeds_rate, ratio, seeds_for, training_footprint
from verify.claims.training_guarantee import statement_setting
from verify.parameters import vocabulary
from verify.verdicts import clopper_pearson

# Each risk statement is about the model at the tau_1 of its training statement.
_TRAINING = {THEOREM_4_3.name: THEOREM_4_2, THEOREM_B4.name: THEOREM_B3, THEOREM_C6.name: THEOREM_C5}


@functools.lru_cache(maxsize=None)
def _derivations(name: str) -> tuple[tuple[str, bool | None, str], ...]:
    if name != THEOREM_4_3.name:
        return ()
    # The Remark: B.4 with v = 1/(32 sqrt Q) must give e^{-Q/45}; with B.4's own v <= 1/(4 sqrt Q) it cannot
    # (reported, not a discrepancy of 4.3: the Remark substitutes 1/32).
    results = [refined_exponent_after_remark(32), refined_exponent_after_remark(4)]
    return tuple((r.claim, r.holds if r is results[0] else None, r.verdict) for r in results)


def test_risk(dist, Q, seeds, beta, tau, horizon, test_size):
    """Errors per trial on `test_size` fresh draws after gradient flow to `horizon`."""
    from verify.training import gradient_flow

    sample = dist.sample(seeds, Q)
    test = dist.test_set(seeds, test_size)
    result = gradient_flow(sample, beta, tau, [0.0, horizon], test=test)
    margins = result.test_margins[:, -1]
    return (margins <= 0).sum(1).tolist(), float(margins.abs().min())


def check_generalization(statement: Statement, claim: str, seed: int, K: int, Q: int, d: int, v, l_b: float,
                         beta: float, tau: float, tokens: str, trials: int, test_size: int, c: float, v_outside: float,
                         epsilon=None, delta=None, Z_reading: str = "pairs"):
    from verify.data_model import DiverseValueDistribution

    parameters = dict(K=K, Q=Q, d=d, v=v, l_b=l_b, beta=beta, tau=tau, tokens=tokens, trials=trials,
                      test_size=test_size, c=c, v_outside=v_outside, epsilon=epsilon, delta=delta, Z_reading=Z_reading)
    probe, Z, v, epsilon, delta, values, unmet = statement_setting(statement, K, Q, d, v, l_b, tokens, c, epsilon,
                                                                  delta, Z_reading)
    layout = probe.tokens
    parameters.update(v=v, epsilon=epsilon, delta=delta)
    bound = conclusion(statement, "risk_bound", **values)
    probability = conclusion(statement, "success_probability", **values)
    horizon = envelope_functions(_TRAINING[statement.name])[2](K, beta, tau)

    seeds = seeds_for(seed, trials)
    dist = DiverseValueDistribution(K, d, v, l_b, delta=delta, tokens=layout)
    errors, closest = test_risk(dist, Q, seeds, beta, tau, horizon, test_size)
    exceed = exceeds_rate(errors, test_size, bound, trials)
    failures = sum(exceed)
    first = seeds[exceed.index(True)] if failures else None
    total = trials * test_size
    rate = sum(errors) / total
    lower, upper = (float(x) for x in clopper_pearson(sum(errors), total))
    tightness = {"risk / bound": ratio(rate, bound), "risk 95% CP upper / bound": ratio(upper, bound)}
    details = {"errors per trial": errors, "test size per trial": test_size, "risk": rate, "risk CP interval": (lower, upper),
               "risk bound": bound, "tau_1": horizon, "smallest |test margin|": closest, "Z used": Z}
    if v_outside and v_outside != v:
        out_errors, _ = test_risk(DiverseValueDistribution(K, d, v_outside, l_b, delta=delta, tokens=layout),
                                  Q, seeds, beta, tau, horizon, test_size)
        out_rate = sum(out_errors) / total
        out_upper = float(clopper_pearson(sum(out_errors), total)[1])
        # the bound evaluated at the outside point (eps re-resolved to the Remark's value there)
        _, out_eps, _ = statement.resolve_noise(Q, Z, v_outside, None, 0.0)
        out_bound = conclusion(statement, "risk_bound", **{**values, "v": v_outside, "epsilon": out_eps})
        tightness.update({f"v={v_outside:g}: risk / bound there": ratio(out_rate, out_bound),
                          f"v={v_outside:g}: risk 95% CP upper / bound there": ratio(out_upper, out_bound)})
        details.setdefault("outside bound", out_bound)
        details["outside assumptions"] = {"v": v_outside, "risk": out_rate, "risk CP upper": out_upper,
                                          "unmet": statement.unmet_among({**values, "v": v_outside})}
    derivations = _derivations(statement.name)
    details["derivations"] = [f"{name}: {verdict}" for name, _, verdict in derivations]
    discrepancies = [f"{name}: {verdict}" for name, holds, verdict in derivations if holds is False]
    summary = (f"risk at tau_1 {rate:.3g} (95% CP upper {upper:.3g}, {sum(errors)}/{total} test errors) vs bound "
               f"{bound:.3g}; {failures}/{trials} trials significantly above the bound")
    return decide(claim, parameters, seed, unmet=unmet, probability=probability, failures=failures, trials=trials,
                  first_failure=first, measured=upper, bound=bound, summary=summary, details=details,
                  tightness=tightness, discrepancies=discrepancies, vacuous_bound=bound >= 1)


_COMMON = dict(beta=0.01, tau=1.0, c=1.0, Z_reading="pairs")
_CLAIM = dict(specs=vocabulary(v="optional", epsilon="optional", delta="optional"), footprint=training_footprint)


_QUICK = dict(K=2, Q=40, d=4, trials=3, test_size=2000)


def _register(claim_id: str, statement: Statement, defaults: dict) -> None:
    register(Claim(claim_id, check=functools.partial(check_generalization, statement, claim_id), statement=statement,
                   defaults={**defaults, **_COMMON}, quick=_QUICK, **_CLAIM))


# the paper's own point (K = 10, Q = 880, beta = 0.01, l_b = 1/4), small d (d <= 5Q holds)
_register("theorem-4.3", THEOREM_4_3,
          dict(K=10, Q=880, d=12, v=None, l_b=0.25, tokens="chain", trials=4, test_size=20000, v_outside=0.3))
_register("theorem-b.4", THEOREM_B4,
          dict(K=4, Q=100, d=8, v=5e-4, l_b=0.25, tokens="chain", trials=8, test_size=10000, v_outside=0.3, epsilon=None))
_register("theorem-c.6", THEOREM_C6,
          dict(K=4, Q=100, d=8, v=5e-4, l_b=0.25, tokens="chain", trials=8, test_size=10000, v_outside=0.3, epsilon=None,
               delta=None))
