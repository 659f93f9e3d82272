"""Claim tight-risk-law: the tight risk law of the paper's model (`theory.tight_risk_law`) against the exact risk.

At each named point (`verify.tight_risk_law.POINTS`: inside Theorem 4.3's assumptions and outside them) the
claim trains `trials` models by gradient flow to tau_1 and measures (`verify.tight_risk_law.measure_point`):

- the statement: with probability >= 1 - delta' over training sets, R(P) <= B. A trial fails when its exact
  risk exceeds B (compared in log space); the failures, pooled over the points (each point's failure rate is at
  most delta' if the law holds), are judged by `decide` against 1 - delta' with the Clopper-Pearson rule;
- the law's distribution, two-sided: the leading-order margin of one cluster per trial through the law's
  distribution function must look uniform (Kolmogorov-Smirnov, exact p-value, level 0.001 split over the
  points); a rejection is a discrepancy, so a law that is loose where it claims to be tight is caught too;
- the statement's conclusions re-derived from explicit vectors (`rederivation_discrepancies`): a disagreement
  is a discrepancy;
- the approximation error in decades: |log10 R_law - log10 R| per trial, at leading order (equal weights) and
  with the first correction of the weights; and the law's mean risk next to the measured mean.
"""
from __future__ import annotations

import functools
import math

from theory.tight_risk_law import TIGHT_RISK_LAW, rederivation_discrepancies
from verify.claims import Claim, register
from verify.claims.common import decide, seeds_for
from verify.parameters import Parameter, vocabulary

CALIBRATION_LEVEL = 0.001  # the KS test's level, split over the points (Bonferroni)
LN10 = math.log(10)


def _points():
    from verify.tight_risk_law import POINTS  # torch: imported when the claim runs, not when it is listed

    return POINTS


POINT_NAMES = ("inside-disjoint", "inside-chain", "fixed-noise-d130", "fixed-noise-2K+2", "shared-hub",
               "orthogonal-delta", "above-floor")


def _round(x: float, digits: int = 4) -> float:
    return float(f"{x:.{digits}g}") if math.isfinite(x) else x


def check_tight_risk_law(statement, seed: int, points: str, trials: int, delta_prime: float, beta: float, tau: float):
    import numpy as np

    from verify.tight_risk_law import measure_point

    parameters = dict(points=points, trials=trials, delta_prime=delta_prime, beta=beta, tau=tau)
    names = [name for name in points.split(",")]
    seeds = seeds_for(seed, trials)
    measured = [measure_point(_points()[name], seeds, beta, tau, delta_prime, statement) for name in names]

    unmet = [f"{m.point.name}: {line}" for m in measured for line in m.unmet_law]
    failures = sum(sum(m.above_bound) for m in measured)
    total = trials * len(measured)
    first = next((s for m in measured for s, above in zip(m.seeds, m.above_bound) if above), None)
    level = CALIBRATION_LEVEL / len(measured)
    rejected = [f"{m.point.name} (KS p = {m.calibration_p:.3g} < {level:.3g})" for m in measured if m.calibration_p < level]
    discrepancies = ([f"the law's distribution of z is rejected at {', '.join(rejected)}"] if rejected else [])
    rederived = rederivation_discrepancies(statement)
    discrepancies += [f"re-derivation disagrees: {'; '.join(rederived)}"] if rederived else []

    leading = np.concatenate([m.leading_error for m in measured])
    corrected = np.concatenate([m.corrected_error for m in measured])
    closest = min(float(m.decades_below_bound.min()) for m in measured)
    worst_excess = max(float((m.log_risk.max() - m.log_bound) / LN10) for m in measured)
    inside = [m.point.name for m in measured if not m.unmet_paper]
    details = {"per point": {m.point.name: _point_details(m) for m in measured},
               "inside Theorem 4.3's assumptions": inside,
               "outside them": [m.point.name for m in measured if m.unmet_paper],
               "measured and bound": "the largest log10 R - log10 B over the trials, and 0",
               "approximation": "leading order: equal time-integrated weights; first correction: weights "
                                "(log 2 - log(1 + e^-r_n))/r_n from the leading-order margins at tau_1",
               "calibration level per point (KS)": level,
               "re-derived (risk_bound, the per-cluster law, the worst geometry)": rederived or "all agree"}
    tightness = {"approximation error, leading order (decades, largest)": float(leading.max()),
                 "approximation error, leading order (decades, median)": float(np.median(leading)),
                 "approximation error, first correction (decades, largest)": float(corrected.max()),
                 "decades of the bound above the risk (closest trial)": closest,
                 **{f"{m.point.name}: log10 B - log10 R (closest trial)": float(m.decades_below_bound.min())
                    for m in measured}}
    plural = lambda n, word: f"{n} {word}{'' if n == 1 else 's'}"
    summary = (f"R <= B in {total - failures}/{total} trials at {plural(len(measured), 'point')} ({len(inside)} inside "
               f"Theorem 4.3's assumptions), the closest {closest:.3g} decades below B; approximation error of the "
               f"law's risk at most {leading.max():.3g} decades (median {np.median(leading):.2g}) at leading order, "
               f"{corrected.max():.3g} with the first correction of the weights; calibration of z: KS p >= "
               f"{min(m.calibration_p for m in measured):.3g}")
    return decide("tight-risk-law", parameters, seed, unmet=unmet, probability=1 - delta_prime, failures=failures,
                  trials=total, first_failure=first, measured=worst_excess, bound=0.0, summary=summary,
                  details=details, tightness=tightness, discrepancies=discrepancies)


def _point_details(m) -> dict:
    import numpy as np

    finite = m.log_risk[np.isfinite(m.log_risk)] / LN10
    out = {"K, Q, d, v, l_b, tokens, delta, Z": (m.point.K, m.point.Q, m.point.d, m.v, m.point.l_b, m.point.tokens,
                                                 m.point.delta, m.Z),
           "Theorem 4.3's assumptions": "hold" if not m.unmet_paper else "; ".join(m.unmet_paper),
           "log10 R (exact, range over trials)": (_round(float(finite.min()), 8), _round(float(finite.max()), 8)),
           "log10 B": _round(m.log_bound / LN10, 8), "quantile q of z at level": (_round(m.threshold, 8), m.level),
           "trials with R > B": int(sum(m.above_bound)),
           "approximation error (decades), leading: largest, median": (_round(float(m.leading_error.max())),
                                                                       _round(float(np.median(m.leading_error)))),
           "approximation error (decades), first correction: largest, median": (
               _round(float(m.corrected_error.max())), _round(float(np.median(m.corrected_error)))),
           "calibration KS p": _round(m.calibration_p)}
    if m.mean_law is not None:
        out["mean R: measured, law (worst geometry)"] = (_round(m.mean_risk), _round(m.mean_law))
    return out


def _footprint(values) -> int:
    points = [_POINT_SIZES[name] for name in str(values.get("points", "")).split(",") if name in _POINT_SIZES]
    largest = max((2 * K * Q * d for K, Q, d in points), default=0)
    return 8 * 12 * values.get("trials", 1) * largest


# (K, Q, d) of each point, for the memory estimate without importing torch
_POINT_SIZES = {"inside-disjoint": (4, 40, 12), "inside-chain": (4, 40, 12), "fixed-noise-d130": (2, 36, 130),
                "fixed-noise-2K+2": (8, 5, 18), "shared-hub": (6, 20, 16), "orthogonal-delta": (4, 20, 12),
                "above-floor": (2, 10, 200)}

register(Claim(
    "tight-risk-law", check=functools.partial(check_tight_risk_law, TIGHT_RISK_LAW), statement=TIGHT_RISK_LAW,
    defaults=dict(points=",".join(POINT_NAMES), trials=64, delta_prime=0.05, beta=1.0, tau=1.0),
    quick=dict(points="inside-chain,fixed-noise-d130", trials=36),
    specs=vocabulary(
        points=Parameter("choice-list", "the settings of P measured (inside and outside Theorem 4.3's assumptions)",
                         choices=POINT_NAMES),
        trials=Parameter("int", "training sets per point (seeds)", 8, 10**4),
        delta_prime=Parameter("real", "share of training sets on which the bound may fail", 0, 1, low_open=True,
                              high_open=True)),
    footprint=_footprint))
