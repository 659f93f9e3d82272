"""Claims of §4.3 (multi-token rewards, Eqs. 4–5) and §7 (individual-response rewards).

Identities: the tolerances are float64 error budgets derived in `verify.multi_token`; a verdict rests on the
instance checked (`exact=True`: `trials` counts instances, there is no failure-rate bound).
"""
from __future__ import annotations

from theory import multi_token as mt
from verify.claims import Claim, register
from verify.parameters import Parameter, vocabulary
from verify.verdicts import Status, Verdict

# Two prompts, L = 2, sharing tokens and a prefix: every term of Eq. (5) appears.
SYMBOLIC_RESPONSES = [((0, 1), (0, 2)), ((1, 2), (2, 0))]


def check_eq_4(seed: int, V: int, d: int) -> Verdict:
    residuals = mt.eq_4_residuals(mt.multi_token_instance(V, d, SYMBOLIC_RESPONSES))
    holds = all(res == 0 for res in residuals)
    return Verdict("eq-4", Status.HOLDS if holds else Status.DISCREPANCY,
                   f"sequence margin minus the sum of token-wise rewards: symbolic residuals {residuals}",
                   dict(V=V, d=d), seed, details={"residuals": [str(x) for x in residuals]}, exact=True)


def check_eq_5_claim(seed: int, prompts: int, length: int, V: int, d: int, beta: float) -> Verdict:
    from verify.multi_token import check_eq_5

    symbolic = mt.derive_eq_5(mt.multi_token_instance(3, 2, SYMBOLIC_RESPONSES))
    numeric = check_eq_5(seed, prompts, length, V, d, beta)
    parameters = dict(prompts=prompts, length=length, V=V, d=d, beta=beta)
    details = {"symbolic verdict": symbolic.verdict, "numeric verdict": numeric.verdict,
               "residual (p as a sum)": numeric.residual["sum"],
               "residual (p as printed, a difference)": numeric.residual["difference"],
               "tolerance (float64 budget)": numeric.tolerance, "eq-4 residual": numeric.eq_4_residual}
    sum_holds = numeric.residual["sum"] <= numeric.tolerance
    printed_holds = numeric.residual["difference"] <= numeric.tolerance
    if printed_holds:
        status, summary = Status.HOLDS, "Eq. (5) as printed matches autograd"
    elif sum_holds:
        status = Status.DISCREPANCY
        summary = (f"printed p = S_ijs^T y - S*^T y^(j) is off by {numeric.residual['difference']:.2e}; with p as a sum "
                   f"the residual is {numeric.residual['sum']:.1e} <= {numeric.tolerance:.1e}")
    else:
        status, summary = Status.VIOLATED, "neither reading of Eq. (5) matches autograd"
    return Verdict("eq-5", status, summary, parameters, seed, 1, int(status is Status.VIOLATED),
                   numeric.residual["sum"], numeric.tolerance, details, exact=True)


def check_individual_rewards_claim(seed: int, V: int, d: int, N: int, beta: float) -> Verdict:
    from verify.individual_rewards import check_individual_rewards, likelihood_displacement

    numeric = check_individual_rewards(seed, V, d, N, beta)
    logit = numeric.residual[("logit", "printed")]
    log_ratio_printed = numeric.residual[("log_ratio", "printed")]
    log_ratio_exact = numeric.residual[("log_ratio", "log_ratio")]
    displacement = likelihood_displacement(seed)
    details = {"logit reward vs printed": logit, "log-ratio vs printed": log_ratio_printed,
               "log-ratio vs exact (with softmax term)": log_ratio_exact, "tolerance": numeric.tolerance,
               "softmax term size": numeric.softmax_term_size,
               "likelihood displacement (shared)": displacement.shared,
               "likelihood displacement (control)": displacement.control}
    parameters = dict(V=V, d=d, N=N, beta=beta)
    if logit <= numeric.tolerance and log_ratio_exact <= numeric.tolerance:
        summary = (f"exact for the logit reward ({logit:.1e}); for the log-probability ratio the printed form misses a "
                   f"softmax term of size {numeric.softmax_term_size:.2e}")
        return Verdict("sec7-individual-rewards", Status.HOLDS, summary, parameters, seed, 1, 0, logit,
                       numeric.tolerance, details, exact=True)
    return Verdict("sec7-individual-rewards", Status.VIOLATED, "individual-reward dynamics do not match autograd",
                   parameters, seed, 1, 1, max(logit, log_ratio_exact), numeric.tolerance, details, exact=True)


# Eq. (4)'s check is symbolic in every entry of W (V x d symbols): sympy's cost grows fast with V d.
_SYMBOLIC = vocabulary(V=Parameter("int", "vocabulary size (the symbolic responses use tokens 0-2)", 3, 8),
                       d=Parameter("int", "feature dimension", 1, 4))
_NUMERIC = vocabulary(prompts=Parameter("int", "prompts", 1, 10**3), length=Parameter("int", "response length L", 1, 50),
                      V=Parameter("int", "vocabulary size", 3, 10**4), d=Parameter("int", "feature dimension", 1, 10**4))
_NUMERIC_FOOTPRINT = lambda p: 8 * 16 * (p["V"] * p["d"] + p.get("prompts", 1) * p.get("length", 1) * (p["V"] + p["d"])
                                          + p.get("N", 1) * (p["V"] + p["d"]))

register(Claim("eq-4", "Multi-token reward is the sum of token-wise rewards", "§4.3, Eq. (4)",
               "autoregressive last-layer softmax, fixed context embeddings", check_eq_4, dict(V=3, d=2), {},
               specs=_SYMBOLIC))
register(Claim("eq-5", "Reward-gradient decomposition with C*, p and d_p", "§4.3, Eq. (5); App. D",
               "gradient flow of W, fixed context embeddings", check_eq_5_claim,
               dict(prompts=4, length=3, V=6, d=5, beta=0.5), dict(prompts=2), specs=_NUMERIC,
               footprint=_NUMERIC_FOOTPRINT))
register(Claim("sec7-individual-rewards", "Dynamics of individual-response rewards; likelihood displacement", "§7",
               "single-token responses, gradient flow of W", check_individual_rewards_claim,
               dict(V=6, d=4, N=10, beta=0.5), {}, specs=_NUMERIC,
               footprint=_NUMERIC_FOOTPRINT))
