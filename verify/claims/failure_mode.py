"""Claim sec7-failure-mode (§7): if pi_ref(y_l|x)/pi_ref(y_w|x) > 3^{1/beta}, the policy still prefers y_l at tau_1.

The reference model W0 is built so that the reference odds rho of pair i are about f_i 3^{1/beta}, with f_i
spread over [odds_low, odds_high] (in log scale), so some samples lie above the threshold and some below.
After gradient flow to Theorem 4.2's tau_1 the policy probabilities are computed from the full softmax
of (W0 + dW) g, independently of the identity log-odds = r/beta - log rho that the proof uses.
"""
from __future__ import annotations

import math

import sympy as sp

from theory.failure_mode import FAILURE_MODE, derive_failure_threshold, margin_cap
from theory.numbers import exact_rational
from theory.symbols import beta as beta_sym
from theory.training_guarantee import THEOREM_4_2
from verify.claims import Claim, register
from verify.claims.common import FLOAT_EPS, assumption_report, decide, envelope_functions, seeds_for, training_footprint, v_boundary
from verify.claims.training_guarantee import float_at_most
from verify.parameters import Parameter, vocabulary


def check_failure_mode(seed: int, K: int, Q: int, d: int, v, l_b: float, beta: float, tau: float, trials: int,
                       odds_low: float, odds_high: float):
    import torch
    from verify.data_model import DiverseValueDistribution, disjoint_tokens
    from verify.model import policy_log_odds
    from verify.training import gradient_flow

    parameters = dict(K=K, Q=Q, d=d, v=v, l_b=l_b, beta=beta, tau=tau, trials=trials, odds_low=odds_low, odds_high=odds_high)
    v = float_at_most(v_boundary(THEOREM_4_2, Q)) if v is None else float(v)
    parameters["v"] = v
    dist = DiverseValueDistribution(K, d, v, l_b, tokens=disjoint_tokens(K))
    unmet = assumption_report(THEOREM_4_2, Z=dist.Z_pairs, d=d, v=v, Q=Q, l_b=l_b)  # r <= log 3 rests on Thm 4.2
    log_threshold = float(sp.log(FAILURE_MODE.conclusions["threshold"].subs(beta_sym, exact_rational("beta", beta))))
    cap = float(margin_cap())
    seeds = seeds_for(seed, trials)
    sample = dist.sample(seeds, Q)
    horizon = envelope_functions(THEOREM_4_2)[2](K, beta, tau)

    V = dist.vocabulary_size
    concepts = dist.concept_vectors(seeds)  # (B, K, d)
    scale = torch.logspace(math.log10(odds_low), math.log10(odds_high), K, dtype=torch.float64) * log_threshold / 2
    W0 = torch.zeros(len(seeds), V, d, dtype=torch.float64)
    chosen_token = torch.tensor([p[0] for p in dist.tokens])
    rejected_token = torch.tensor([p[1] for p in dist.tokens])
    W0[:, rejected_token] = scale[None, :, None] * concepts  # pushes C_{i,+}'s y_l up and C_{i,-}'s y_l (= u_i) down
    W0[:, chosen_token] = -scale[None, :, None] * concepts
    result = gradient_flow(sample, beta, tau, [0.0, horizon], W0=W0)
    # log pi(y_w|x) - log pi(y_l|x) from the full softmax of W0 g and of W g; r from the trainer.
    log_rho = -policy_log_odds(W0, sample.features, sample.chosen, sample.rejected)
    policy = policy_log_odds(result.weights(), sample.features, sample.chosen, sample.rejected)
    r = result.train_margins[:, -1]
    inside = log_rho > log_threshold
    tolerance = 8 * FLOAT_EPS * (log_rho.abs() + policy.abs()).max().item()
    if not bool(inside.any()):
        unmet.append(f"no sample has rho > 3^(1/beta) (largest log rho {float(log_rho.max()):.4g} vs {log_threshold:.4g})")
    if float(r.max()) > cap:
        unmet.append(f"r <= log 3 fails: max r(tau_1) = {float(r.max()):.4g}")
    wrong = inside & (policy >= -tolerance)
    failed = wrong.flatten(1).any(1)
    failures = int(failed.sum())
    first = seeds[int(failed.nonzero()[0])] if failures else None
    below = ~inside
    flipped = below & (policy > 0)
    symbolic = derive_failure_threshold()
    tightness = {"max r(tau_1) / log 3": float(r.max()) / cap,
                 "log of the actual flip threshold / log 3^(1/beta)": float(r.max()) / beta / log_threshold}
    if bool(below.any()):
        tightness["below the threshold: fraction whose ranking flipped"] = float(flipped.sum()) / float(below.sum())
    details = {"samples above threshold": int(inside.sum()), "samples below": int(below.sum()),
               "largest policy log-odds above threshold": float(policy[inside].max()) if bool(inside.any()) else None,
               "log 3^(1/beta)": log_threshold, "tolerance": tolerance, "symbolic": symbolic.verdict,
               "flips below threshold predicted by r/beta > log rho": int((below & (r / beta > log_rho)).sum()),
               "flips below threshold observed": int(flipped.sum())}
    summary = (f"{int(inside.sum())} samples with rho > 3^(1/beta): largest policy log-odds "
               f"{details['largest policy log-odds above threshold']} (must be < 0); {int(flipped.sum())}/{int(below.sum())} "
               f"below the threshold flipped; max r(tau_1) = {float(r.max()):.4f} <= log 3")
    return decide("sec7-failure-mode", parameters, seed, unmet=unmet, probability=None, failures=failures, trials=trials,
                  first_failure=first, bound=0.0,
                  # above the threshold if any sample is, else over all samples (just outside the assumptions)
                  measured=details["largest policy log-odds above threshold"] if bool(inside.any()) else float(policy.max()),
                  summary=summary, details=details, tightness=tightness,
                  discrepancies=[] if symbolic.holds else [f"§7 threshold derivation: {symbolic.verdict}"])


_ODDS = Parameter("real", "reference odds rho as a multiple of 3^{1/beta} (the range is spread log-uniformly)",
                  1e-6, 1e6, low_open=False)

register(Claim(
    "sec7-failure-mode", check=check_failure_mode, statement=FAILURE_MODE,
    defaults=dict(K=6, Q=60, d=8, v=None, l_b=0.25, beta=0.01, tau=1.0, trials=4, odds_low=0.02, odds_high=1.5),
    quick=dict(K=3, Q=20, d=4, trials=2),
    # beta >= 1e-3: the reference logits, about log 3 / beta, stay below ~1e3, where float64 log-odds keep
    # about 13 significant digits.
    specs=vocabulary(v="optional", beta=Parameter("real", "DPO's beta", 1e-3, 1e3),
                     odds_low=_ODDS, odds_high=_ODDS),
    footprint=lambda p: training_footprint(p) + 8 * p["trials"] * 2 * p["K"] * p["Q"] * (2 * p["K"] + 1) * 4))
