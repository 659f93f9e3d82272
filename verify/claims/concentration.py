"""Claims lemma-b.1 (Gram entries concentrate, Eqs. 9-13) and lemma-c.2 (approximately orthogonal concepts).

lemma-b.1: the event of Eqs. (9)-(13) with half-width 2 eps v (from `theory.concentration.LEMMA_B1`) is
measured with `verify.data_model.concentration_events`; its failure frequency is compared with
1 - P (P the printed probability, which depends on the unspecified Bernstein constant c). By default eps is
the one the theorems use, the Remark's 1/(16 v (Z+2)), whose half-width 1/(8 (Z+2)) does not shrink with v,
at the largest v where P reaches 95%; a larger v (v_contrast) is measured at the theorems' eps for contrast.
lemma-c.2: |<c_i1, c_i2>| <= delta, a deterministic bound: checked on the data model's concept vectors and
on the worst-case construction (c_1 tilted toward e_{c_2} and c_2 toward e_{c_1}), with a round-off tolerance.
"""
from __future__ import annotations

import math
from dataclasses import replace

from theory.concentration import LEMMA_B1, LEMMA_C2, concept_tilt, derive_lemma_c2, expected_gram_entries
from theory.numbers import float_at_most
from theory.statements import remark_epsilon
from verify.claims import Claim, register
from verify.claims.common import FLOAT_EPS, conclusion, decide, seeds_for, training_footprint
from verify.parameters import Parameter, ParameterError, vocabulary


def _gram_run(dist, seeds, Q: int, half_width: float):
    """Per trial: the largest deviation of each block of Eqs. (9)-(13) and whether all lie within half_width."""
    from verify.data_model import concentration_events, gram_statistics

    sample = dist.sample(seeds, Q)
    stats = gram_statistics(sample)
    failed = ~concentration_events(sample, 1.0, half_width)["all"]  # epsilon unused with a half-width
    return stats, failed


def check_lemma_b1(seed: int, K: int, Q: int, d: int, v, l_b: float, epsilon, tokens: str, trials: int,
                   c: float, l_b_outside: float, v_contrast: float) -> object:
    from verify.claims.training_guarantee import probable_v
    from verify.data_model import DiverseValueDistribution, token_layout

    parameters = dict(K=K, Q=Q, d=d, v=v, l_b=l_b, epsilon=epsilon, tokens=tokens, trials=trials, c=c,
                      l_b_outside=l_b_outside, v_contrast=v_contrast)
    layout = token_layout(tokens, K)
    seeds = seeds_for(seed, trials)
    Z = DiverseValueDistribution(K, d, 0.0, l_b, tokens=layout).Z_pairs
    details = {"Z used": Z, "centres re-derived": expected_gram_entries().verdict}
    if v is None:
        v, details["v choice"] = probable_v(LEMMA_B1, K, Q, Z, d, c, epsilon)
    # The theorems' epsilon (B.3, C.5 and the proof of Theorem 4.2): the Remark's 1/(16 v (Z+2)).
    theorems_epsilon = lambda noise: float_at_most(remark_epsilon(noise, Z))
    if epsilon is None:
        if v == 0:
            raise ParameterError("claim lemma-b.1: v = 0 leaves the Remark's epsilon 1/(16 v (Z+2)) undefined; "
                                 "give v > 0 or an epsilon")
        epsilon = theorems_epsilon(v)
        details["epsilon choice"] = "the Remark's 1/(16 v (Z+2)), the epsilon the theorems use"
    parameters.update(v=v, epsilon=epsilon)
    values = dict(K=K, Q=Q, d=d, Z=Z, v=v, l_b=l_b, epsilon=epsilon, c=c)
    unmet = LEMMA_B1.unmet(l_b=l_b)
    probability = conclusion(LEMMA_B1, "success_probability", **values)
    half_width = conclusion(LEMMA_B1, "half_width", **values)
    dist = DiverseValueDistribution(K, d, v, l_b, tokens=layout)
    stats, failed = _gram_run(dist, seeds, Q, half_width)
    failures = int(failed.sum())
    first = seeds[int(failed.nonzero()[0])] if failures else None
    worst = {k: float(x.max()) for k, x in stats.items()}
    largest = max(worst.values())
    tightness = {f"{k} max deviation / half width": x / half_width for k, x in worst.items()}
    details.update({"max deviations": worst, "half width": half_width, "epsilon": epsilon,
                    # the epsilon the sample actually needed: the largest deviation over the half-width per epsilon
                    "smallest eps that covers every trial": largest * epsilon / half_width if half_width else math.nan})
    if v_contrast and v_contrast != v:
        # The same draws at a larger noise, at the theorems' epsilon there: where the half-width 1/(8 (Z+2))
        # no longer covers the deviations (about 8 v at these sizes) while the stated probability is negative.
        eps_contrast = theorems_epsilon(v_contrast)
        contrast_values = {**values, "v": v_contrast, "epsilon": eps_contrast}
        width = conclusion(LEMMA_B1, "half_width", **contrast_values)
        contrast_stats, contrast_failed = _gram_run(replace(dist, v=v_contrast), seeds, Q, width)
        contrast_largest = max(float(x.max()) for x in contrast_stats.values())
        tightness[f"v={v_contrast:g}, theorems' eps: max deviation / half width"] = contrast_largest / width
        details["contrast"] = {"v": v_contrast, "epsilon": eps_contrast, "half width": width,
                               "largest deviation": contrast_largest, "trials outside": int(contrast_failed.sum()),
                               "of": trials, "stated probability": conclusion(LEMMA_B1, "success_probability",
                                                                              **contrast_values)}
    if l_b_outside and l_b_outside != l_b:
        outside, _ = _gram_run(replace(dist, l_b=l_b_outside), seeds, Q, half_width)
        tightness.update({f"l_b={l_b_outside:g}: {k} / half width": float(x.max()) / half_width for k, x in outside.items()})
        details["outside assumptions"] = {"l_b": l_b_outside, "unmet": LEMMA_B1.unmet(l_b=l_b_outside)}
    summary = (f"Eqs. (9)-(13) within 2 eps v = {half_width:.3g} (eps = {epsilon:.4g}, v = {v:.4g}): largest "
               f"deviation {largest:.3g} (P >= {probability:.3g} at c = {c:g})")
    if "contrast" in details:
        contrast = details["contrast"]
        summary += (f"; at v = {v_contrast:g} and the theorems' eps = {contrast['epsilon']:.4g}: half-width "
                    f"{contrast['half width']:.3g} vs largest deviation {contrast['largest deviation']:.3g}, "
                    f"{contrast['trials outside']}/{trials} trials outside (P >= {contrast['stated probability']:.3g})")
    return decide("lemma-b.1", parameters, seed, unmet=unmet, probability=probability, failures=failures,
                  trials=trials, first_failure=first, measured=largest, bound=half_width, summary=summary,
                  details=details, tightness=tightness)


def worst_case_inner_product(delta: float, d: int = 4) -> float:
    """<c_1, c_2> for c_1 = cos e_1 + sin e_2, c_2 = cos e_2 + sin e_1 with Def. C.1's tilt
    (`theory.concentration.concept_tilt`, whose sin keeps its digits as delta -> 0): the largest inner product
    Def. C.1 allows, 2 cos sin."""
    import torch

    cos, sin = concept_tilt(delta)
    c = torch.zeros(2, d, dtype=torch.float64)
    c[0, 0], c[0, 1], c[1, 1], c[1, 0] = cos, sin, cos, sin
    return float(c[0] @ c[1])


def check_lemma_c2(seed: int, K: int, d: int, delta: float, trials: int, delta_outside: float):
    import torch
    from verify.data_model import DiverseValueDistribution

    parameters = dict(K=K, d=d, delta=delta, trials=trials, delta_outside=delta_outside)
    unmet = LEMMA_C2.unmet(delta=delta)
    bound = conclusion(LEMMA_C2, "inner_product_bound", delta=delta)
    seeds = seeds_for(seed, trials)
    # Round-off: a d-term dot product of unit vectors and their normalisation (random tilts), and for the
    # worst case a product of cos and sin, each within a few ulps, so relative to the value itself.
    tolerance = 4 * d * FLOAT_EPS
    largest, failures, first = 0.0, 0, None
    if delta < 0.5:  # the data model implements Def. C.1 only for delta < 1/2
        c = DiverseValueDistribution(K, d, 0.0, 0.25, delta=delta).concept_vectors(seeds)
        gram = (c @ c.transpose(1, 2)).abs() - torch.eye(K, dtype=c.dtype)
        per_trial = gram.flatten(1).amax(1)
        failed = per_trial > bound + tolerance
        largest, failures = float(per_trial.max()), int(failed.sum())
        first = seeds[int(failed.nonzero()[0])] if failures else None
    adversarial = worst_case_inner_product(delta, d)
    adversarial_tolerance = 8 * FLOAT_EPS * adversarial
    symbolic = derive_lemma_c2()
    tightness = {"random tilts: max |<c_i, c_j>| / delta": largest / bound if bound else float("nan"),
                 "worst case 2 cos sin / delta": adversarial / bound if bound else float("nan")}
    if delta_outside:
        tightness[f"delta={delta_outside:g}: worst case / delta"] = worst_case_inner_product(delta_outside, d) / delta_outside
    adversarial_fails = adversarial > bound + adversarial_tolerance
    summary = (f"max |<c_i1, c_i2>| = {largest:.3g} over {trials} draws of K = {K} tilted concepts, worst-case "
               f"construction {adversarial:.6g}, vs delta = {bound:.6g}")
    details = {"tolerance": tolerance, "worst-case tolerance": adversarial_tolerance, "worst case": adversarial,
               "symbolic": symbolic.verdict}
    return decide("lemma-c.2", parameters, seed, unmet=unmet, probability=None,
                  failures=failures + int(adversarial_fails), trials=trials + 1, first_failure=first,
                  measured=max(largest, adversarial), bound=bound, summary=summary, details=details,
                  tightness=tightness, discrepancies=[] if symbolic.holds else [f"Lemma C.2 derivation: {symbolic.verdict}"])


# Def. C.1's tilt (`theory.concentration.concept_tilt`) needs cos xi >= 0, i.e. delta <= sqrt 8.
_DELTA = Parameter("real", "the delta of Def. C.1 (measured also outside Lemma C.2's delta < 1/2)", 0, 2)

register(Claim(
    "lemma-b.1", check=check_lemma_b1, statement=LEMMA_B1,
    defaults=dict(K=4, Q=60, d=16, v=None, l_b=0.25, epsilon=None, tokens="chain", trials=32, c=1.0, l_b_outside=0.75,
                  v_contrast=0.01),
    quick=dict(K=2, Q=20, d=6, trials=8),
    specs=vocabulary(v="optional", epsilon="optional",
                     l_b_outside=Parameter("real", "a bias norm outside the assumptions, measured for contrast (0: skip)", 0, 1e3),
                     v_contrast=Parameter("real", "a larger noise level measured at the theorems' epsilon for contrast "
                                                  "(0: skip)", 0, 1e3)),
    footprint=training_footprint))
register(Claim(
    "lemma-c.2", check=check_lemma_c2, statement=LEMMA_C2,
    defaults=dict(K=8, d=12, delta=0.3, trials=64, delta_outside=0.9), quick=dict(K=4, d=6, trials=8),
    specs=vocabulary(delta=_DELTA, delta_outside=_DELTA),
    footprint=lambda p: 8 * p["trials"] * p["K"] * (p["d"] + p["K"]) * 4))
