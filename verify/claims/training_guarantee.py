"""Claims theorem-4.2, theorem-b.3, theorem-c.5: the margin envelope r_L(t) <= r_j(t) <= r_U(t) up to tau_1.

One check serves the three statements (SPEC §2.2, §2.6, §2.7); each brings its own assumptions, envelope
and success probability from `theory.training_guarantee`. The dynamics are the exact gradient flow of
`verify.training` on samples of `verify.data_model`, batched over seeds.
"""
from __future__ import annotations

import functools

from theory.numbers import float_at_most  # noqa: F401 (imported from here by claim modules)
from theory.statements import Statement
from theory.training_guarantee import (THEOREM_4_2, THEOREM_B3, THEOREM_C5, envelope_at_tau_1,
                                       envelope_slopes_from_lemma_b2, main_text_probability_from_b3)
from theory.symbols import delta as delta_sym
from verify.claims import Claim, register
from verify.claims.common import (conclusion, decide, envelope_functions, flow_with_error, initial_slopes, seeds_for,
                                  training_footprint)
from verify.parameters import vocabulary


@functools.lru_cache(maxsize=None)
def derivation_checks(statement_name: str) -> tuple[tuple[str, bool | None, str], ...]:
    """The symbolic re-derivations behind a training statement (theory/training_guarantee.py item 2)."""
    statement = {s.name: s for s in (THEOREM_4_2, THEOREM_B3, THEOREM_C5)}[statement_name]
    results = [envelope_at_tau_1(statement)]
    if statement is THEOREM_4_2:
        results += [envelope_slopes_from_lemma_b2(32), main_text_probability_from_b3()]
    elif statement is THEOREM_B3:
        results.append(envelope_slopes_from_lemma_b2(4))  # B.3's own condition v <= 1/(4 sqrt Q)
    return tuple((r.claim, r.holds, r.verdict) for r in results)


def _envelope_run(dist, Q, seeds, beta, tau, statement, grid):
    """Flow to tau_1; per trial: inside the envelope? plus slopes and end margins."""
    import torch

    r_L, r_U, tau_1, slope_L, slope_U = envelope_functions(statement)
    K = dist.K
    horizon = tau_1(K, beta, tau)
    times = torch.linspace(0.0, horizon, grid, dtype=torch.float64)
    sample = dist.sample(seeds, Q)
    result, error = flow_with_error(sample, beta, tau, times)
    margins = result.train_margins  # (B, T, N)
    lower = torch.tensor([r_L(K, beta, tau, float(s)) for s in times], dtype=torch.float64)[None, :, None]
    upper = torch.tensor([r_U(K, beta, tau, float(s)) for s in times], dtype=torch.float64)[None, :, None]
    outside = ((margins < lower - error) | (margins > upper + error)).flatten(1).any(1)
    slopes = initial_slopes(sample, beta, tau)
    end = margins[:, -1]
    return dict(outside=outside, error=error, horizon=horizon, end_min=float(end.min()), end_max=float(end.max()),
                end_L=r_L(K, beta, tau, horizon), end_U=r_U(K, beta, tau, horizon),
                slope_min=float(slopes.min()), slope_max=float(slopes.max()),
                slope_L=slope_L(K, beta, tau), slope_U=slope_U(K, beta, tau))


def _ratios(run: dict, prefix: str = "") -> dict[str, float]:
    return {f"{prefix}min slope / printed lower slope": run["slope_min"] / run["slope_L"],
            f"{prefix}max slope / printed upper slope": run["slope_max"] / run["slope_U"],
            f"{prefix}min r(tau_1) / r_L(tau_1)": run["end_min"] / run["end_L"],
            f"{prefix}max r(tau_1) / r_U(tau_1)": run["end_max"] / run["end_U"]}


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
                             grid: int, epsilon=None, delta=None, Z_reading: str = "pairs"):
    from verify.data_model import DiverseValueDistribution

    parameters = dict(K=K, Q=Q, d=d, v=v, l_b=l_b, beta=beta, tau=tau, tokens=tokens, trials=trials, c=c,
                      v_outside=v_outside, grid=grid, epsilon=epsilon, delta=delta, Z_reading=Z_reading)
    probe, Z, v, epsilon, delta, values, unmet = statement_setting(statement, K, Q, d, v, l_b, tokens, c, epsilon,
                                                                  delta, Z_reading)
    layout = probe.tokens
    parameters.update(v=v, epsilon=epsilon, delta=delta)
    probability = conclusion(statement, "success_probability", **values)

    seeds = seeds_for(seed, trials)
    dist = DiverseValueDistribution(K, d, v, l_b, delta=delta, tokens=layout)
    run = _envelope_run(dist, Q, seeds, beta, tau, statement, grid)
    failures = int(run["outside"].sum())
    first = seeds[int(run["outside"].nonzero()[0])] if failures else None
    tightness = _ratios(run)
    details = {"Z_pairs": probe.Z_pairs, "Z_clusters": probe.Z_clusters, "Z used": Z, "tau_1": run["horizon"],
               "solver error bound": run["error"], "tau r'(0) range": (run["slope_min"], run["slope_max"]),
               "printed slopes": (run["slope_L"], run["slope_U"]), "r(tau_1) range": (run["end_min"], run["end_max"]),
               "envelope at tau_1": (run["end_L"], run["end_U"])}
    # Just outside: the same draws at a fixed noise v_outside (e.g. v independent of Q).
    if v_outside and v_outside != v:
        outside_dist = DiverseValueDistribution(K, d, v_outside, l_b, delta=delta, tokens=layout)
        out = _envelope_run(outside_dist, Q, seeds, beta, tau, statement, grid)
        tightness.update(_ratios(out, f"v={v_outside:g}: "))
        tightness[f"v={v_outside:g}: trials outside the envelope"] = int(out["outside"].sum())
        details["outside assumptions"] = {"v": v_outside, "unmet": statement.unmet_among({**values, "v": v_outside})}
    derivations = derivation_checks(statement.name)
    details["derivations"] = [f"{name}: {verdict}" for name, _, verdict in derivations]
    discrepancies = [f"{name}: {verdict}" for name, holds, verdict in derivations if holds is False]
    summary = (f"r in [r_L, r_U] checked at {grid} times to tau_1 = {run['horizon']:.4g} for N = {2 * K * Q} margins; "
               f"tau r'(0) in [{run['slope_min']:.3g}, {run['slope_max']:.3g}] vs printed slopes "
               f"[{run['slope_L']:.3g}, {run['slope_U']:.3g}]; r(tau_1) in [{run['end_min']:.4f}, {run['end_max']:.4f}] "
               f"vs [{run['end_L']:.4f}, {run['end_U']:.4f}]")
    return decide(claim, parameters, seed, unmet=unmet, probability=probability, failures=failures, trials=trials,
                  first_failure=first, measured=run["end_max"], bound=run["end_U"], summary=summary,
                  details=details, tightness=tightness, discrepancies=discrepancies)


_COMMON = dict(beta=0.01, tau=1.0, tokens="chain", c=1.0, grid=9, Z_reading="pairs")
_QUICK = dict(K=2, Q=20, d=4, trials=3, grid=5)
_SPECS = vocabulary(v="optional", epsilon="optional", delta="optional")
_CLAIM = dict(specs=_SPECS, footprint=training_footprint)


def _register(claim_id: str, statement: Statement, v, **noise) -> None:
    register(Claim(claim_id, check=functools.partial(check_training_guarantee, statement, claim_id), statement=statement,
                   defaults=dict(K=4, Q=60, d=8, v=v, l_b=0.25, trials=8, v_outside=0.1, **noise, **_COMMON),
                   quick=_QUICK, **_CLAIM))


_register("theorem-4.2", THEOREM_4_2, v=None)
_register("theorem-b.3", THEOREM_B3, v=5e-4, epsilon=None)
_register("theorem-c.5", THEOREM_C5, v=5e-4, epsilon=None, delta=None)
