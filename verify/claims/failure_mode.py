"""Claim sec7-failure-mode (§7): if pi_ref(y_l|x)/pi_ref(y_w|x) > 3^{1/beta}, the policy still prefers y_l at tau_1.

The reference model W0 is built so that the reference odds rho of pair i's cluster means are
(3^{1/beta})^{f_i}, with f_i spread log-uniformly over [odds_low, odds_high] (by default 1 -+ 5%), so the
samples straddle the threshold: some just above it, some just below. The threshold is read from the
statement. After gradient flow (the trainer) the policy log-odds are computed from the full softmax of
(W0 + dW) g, independently of the identity log-odds = r/beta - log rho (Eq. 2) that the proof uses.

At tau_1, per trial (a failure if any part fails):
- r(tau_1) <= log 3 = r_U(tau_1) for every training margin (Theorem 4.2's cap, the premise of §7);
- no sample with rho above the threshold prefers y_w;
- a sample below the threshold flips exactly when r/beta > log rho (Eq. 2).
At tau_1 the margins sit near log 3 / 5, far below the cap, so a lower threshold (2^{1/beta}) would pass
there too. The proof's step is "r <= log 3 and rho > threshold => no flip"; it is checked where its premise
binds: the flow continues to t_s, the last recorded time at which every margin is still <= log 3, and the same
ordering checks run there. A trial whose premise held at t_s and whose ordering failed is a counterexample
to the proof (ProofStepTally).
"""
from __future__ import annotations

import math

import sympy as sp

from theory.failure_mode import FAILURE_MODE, derive_failure_threshold, margin_cap
from theory.numbers import exact_rational
from theory.symbols import beta as beta_sym
from theory.training_guarantee import THEOREM_4_2
from verify.claims import Claim, register
from theory.numbers import float_at_most
from verify.claims.common import FLOAT_EPS, decide, envelope_functions, seeds_for, training_footprint
from verify.parameters import Parameter, vocabulary
from verify.verdicts import ProofStepTally

# Recorded times from 0 to the time r_L reaches log 3 (40 tau_1, by when Theorem 4.2's lower slope, valid
# while every r <= log 3, has carried every margin past the cap): the margins grow by about log 3 / 20 per
# step there, so at t_s the largest margin is within that of log 3.
_STEPS_TO_CAP = 160


def _ordering(policy, log_rho, r, beta: float, log_threshold: float, tolerance):
    """Per trial (B,): samples above the threshold that prefer y_w; samples below whose flip disagrees with
    r/beta > log rho (those within the tolerance of the boundary are not judged)."""
    above = log_rho > log_threshold
    wrong_above = above & (policy >= -tolerance)
    decided = (r / beta - log_rho).abs() > tolerance
    mismatched = ~above & decided & ((policy > 0) != (r / beta > log_rho))
    return above, wrong_above.any(1), mismatched.any(1)


def check_failure_mode(seed: int, K: int, Q: int, d: int, v, l_b: float, beta: float, tau: float, trials: int,
                       odds_low: float, odds_high: float):
    import torch
    from verify.data_model import DiverseValueDistribution, disjoint_tokens
    from verify.model import policy_log_odds
    from verify.training import gradient_flow

    parameters = dict(K=K, Q=Q, d=d, v=v, l_b=l_b, beta=beta, tau=tau, trials=trials, odds_low=odds_low, odds_high=odds_high)
    v = float_at_most(THEOREM_4_2.v_boundary(Q)) if v is None else float(v)
    parameters["v"] = v
    dist = DiverseValueDistribution(K, d, v, l_b, tokens=disjoint_tokens(K))
    unmet = THEOREM_4_2.unmet(Z=dist.Z_pairs, d=d, v=v, Q=Q, l_b=l_b)  # r <= log 3 rests on Thm 4.2
    threshold = FAILURE_MODE.conclusions["threshold"].subs(beta_sym, exact_rational("beta", beta))
    log_threshold = float(sp.expand_log(sp.log(threshold), force=True))
    cap = float(margin_cap())
    seeds = seeds_for(seed, trials)
    sample = dist.sample(seeds, Q)
    r_L, _, tau_1 = envelope_functions(THEOREM_4_2)[:3]
    horizon = tau_1(K, beta, tau)
    to_cap = horizon * cap / r_L(K, beta, tau, horizon)

    # W0: rows +-s_i c_i on pair i's tokens give the cluster means log rho = 2 s_i = f_i log threshold.
    V = dist.vocabulary_size
    concepts = dist.concept_vectors(seeds)  # (B, K, d)
    scale = torch.logspace(math.log10(odds_low), math.log10(odds_high), K, dtype=torch.float64) * log_threshold / 2
    W0 = torch.zeros(len(seeds), V, d, dtype=torch.float64)
    chosen_token = torch.tensor([p[0] for p in dist.tokens])
    rejected_token = torch.tensor([p[1] for p in dist.tokens])
    W0[:, rejected_token] = scale[None, :, None] * concepts  # pushes C_{i,+}'s y_l up and C_{i,-}'s y_l (= u_i) down
    W0[:, chosen_token] = -scale[None, :, None] * concepts
    log_rho = -policy_log_odds(W0, sample.features, sample.chosen, sample.rejected)
    # Round-off of log-odds from logits of size |log rho| and |r|/beta: a d-term dot product and a log-sum-exp.
    def tolerance_for(policy, r):
        return 8 * (d + 2) * FLOAT_EPS * float((log_rho.abs() + policy.abs() + r.abs() / beta).max())

    # (1) at tau_1: the statement.
    at_tau_1 = gradient_flow(sample, beta, tau, [0.0, horizon], W0=W0)
    policy = policy_log_odds(at_tau_1.weights(), sample.features, sample.chosen, sample.rejected)
    r = at_tau_1.train_margins[:, -1]
    tolerance = tolerance_for(policy, r)
    above, wrong_above, mismatched = _ordering(policy, log_rho, r, beta, log_threshold, tolerance)
    over_cap = (r > cap + tolerance * beta).any(1)
    failed = over_cap | wrong_above | mismatched
    failures = int(failed.sum())
    first = seeds[int(failed.nonzero()[0])] if failures else None
    if not bool(above.any()):
        unmet.append(f"no sample has rho above the threshold (largest log rho {float(log_rho.max()):.4g} vs {log_threshold:.4g})")
    below = ~above

    # (2) where the premise r <= log 3 binds: t_s per trial, then that trial trained to t_s.
    times = torch.linspace(0.0, to_cap, _STEPS_TO_CAP + 1, dtype=torch.float64)
    path = gradient_flow(sample, beta, tau, times).train_margins.amax(2)  # (B, T): largest margin
    last_inside = [int(torch.nonzero(row <= cap).flatten()[-1]) for row in path]
    premise_held, step_failed, r_s_max, below_flipped_s, above_policy_s = [], [], [], 0, -math.inf
    for b, index in enumerate(last_inside):
        t_s = float(times[index])
        trial = dist.sample([seeds[b]], Q)
        if index:
            run = gradient_flow(trial, beta, tau, [0.0, t_s], W0=W0[b:b + 1])
            weights, r_s = run.weights(), run.train_margins[:, -1]
        else:  # the first step already carried a margin past log 3: t_s = 0, W = W0
            weights, r_s = W0[b:b + 1], torch.zeros_like(trial.features[..., 0])
        policy_s = policy_log_odds(weights, trial.features, trial.chosen, trial.rejected)
        tolerance_s = tolerance_for(policy_s, r_s)
        above_s, wrong_s, mismatched_s = _ordering(policy_s, log_rho[b:b + 1], r_s, beta, log_threshold, tolerance_s)
        premise_held.append(bool((r_s <= cap).all()))
        step_failed.append(bool(wrong_s[0] | mismatched_s[0]))
        r_s_max.append(float(r_s.max()))
        below_flipped_s += int((~above_s & (policy_s > 0)).sum())
        if bool(above_s.any()):
            above_policy_s = max(above_policy_s, float(policy_s[above_s].max()))
    counter = [h and f for h, f in zip(premise_held, step_failed)]
    tally = ProofStepTally(
        event="every training margin <= log 3 = r_U(tau_1) at t_s (the last recorded time before one exceeds it)",
        conclusion="rho above the threshold keeps y_l preferred, and below it flips exactly when r/beta > log rho",
        trials=trials, event_held=sum(premise_held), counterexamples=sum(counter),
        first_counterexample_seed=seeds[counter.index(True)] if any(counter) else None)

    symbolic = derive_failure_threshold()
    largest_above = float(policy[above].max()) if bool(above.any()) else None
    flipped = below & (policy > 0)
    tightness = {"max r(tau_1) / log 3": float(r.max()) / cap,
                 "max r(t_s) / log 3 (how close the premise binds)": max(r_s_max) / cap,
                 "log of the actual flip threshold / log 3^(1/beta)": float(r.max()) / beta / log_threshold}
    if bool(below.any()):
        tightness["below the threshold: fraction whose ranking flipped at tau_1"] = float(flipped.sum()) / float(below.sum())
        tightness["below the threshold: fraction whose ranking flipped at t_s"] = below_flipped_s / float(below.sum())
    details = {"samples above threshold": int(above.sum()), "samples below": int(below.sum()),
               "largest policy log-odds above threshold": largest_above,
               "largest policy log-odds above threshold at t_s": above_policy_s if above_policy_s > -math.inf else None,
               "log threshold": log_threshold, "tolerance": tolerance, "symbolic": symbolic.verdict,
               "trials with r(tau_1) > log 3": int(over_cap.sum()),
               "trials with a sample above the threshold preferring y_w": int(wrong_above.sum()),
               "trials where a flip below the threshold disagreed with r/beta > log rho": int(mismatched.sum()),
               "t_s per trial": [float(times[i]) for i in last_inside], "tau_1": horizon,
               "flips below threshold at tau_1": int(flipped.sum())}
    summary = (f"{int(above.sum())} samples with rho above the threshold: largest policy log-odds {largest_above} at "
               f"tau_1 (must be < 0); {int(flipped.sum())}/{int(below.sum())} below it flipped at tau_1, "
               f"{below_flipped_s} at t_s; max r(tau_1) = {float(r.max()):.4f} (cap log 3 = {cap:.4f}), max r(t_s) = "
               f"{max(r_s_max):.4f}")
    return decide("sec7-failure-mode", parameters, seed, unmet=unmet, probability=None, failures=failures, trials=trials,
                  first_failure=first, bound=0.0,
                  # above the threshold if any sample is, else over all samples (just outside the assumptions)
                  measured=largest_above if largest_above is not None else float(policy.max()),
                  summary=summary, details=details, tightness=tightness, proof_step=tally,
                  discrepancies=[] if symbolic.holds else [f"§7 threshold derivation: {symbolic.verdict}"])


_ODDS = Parameter("real", "reference odds rho of the cluster means as a power f of the threshold 3^{1/beta} "
                           "(f spread log-uniformly over the pairs)", 1e-6, 1e6, low_open=False)

register(Claim(
    "sec7-failure-mode", check=check_failure_mode, statement=FAILURE_MODE,
    defaults=dict(K=6, Q=60, d=8, v=None, l_b=0.25, beta=0.01, tau=1.0, trials=4, odds_low=0.95, odds_high=1.05),
    quick=dict(K=3, Q=20, d=4, trials=2),
    # beta >= 1e-3: the reference logits, about log 3 / beta, stay below ~1e3, where float64 log-odds keep
    # about 13 significant digits.
    specs=vocabulary(v="optional", beta=Parameter("real", "DPO's beta", 1e-3, 1e3),
                     odds_low=_ODDS, odds_high=_ODDS),
    footprint=lambda p: training_footprint(p) + 8 * p["trials"] * 2 * p["K"] * p["Q"] * (2 * p["K"] + 1) * 4))
