"""Claims of §3–4.1 and §7 that are exact identities: Eq. (2)'s linear margin, Lemma 4.1, the GPO form.

Their tolerances come from floating-point error, not from sampling: a violation is a real defect, and a
pass is established instance by instance (`exact=True`: no failure-rate bound; `trials` counts instances).
"""
from __future__ import annotations

from theory.lemma_4_1 import derive_lemma_4_1
from theory.losses import PAPER_LOSSES, PRINTED_WEIGHTS, parse_loss_expression
from theory.model import single_token_margin_residual, symbolic_instance
from verify.claims import Claim, register
from verify.parameters import Parameter, vocabulary
from verify.verdicts import Status, Verdict

import sympy as sp

# Required agreement of the two numeric identities (float64 round-off is far below both).
GRADIENT_RELATIVE_TOLERANCE = 1e-12
FLOW_TOLERANCE = 1e-8


def _resolve_loss(loss: str):
    return PAPER_LOSSES[loss] if loss in PAPER_LOSSES else parse_loss_expression(loss)


def check_lemma_4_1(seed: int, V: int, d: int, N: int, trials: int, beta: float, tau: float, t_end: float, loss: str) -> Verdict:
    """Lemma 4.1: symbolic chain rule vs Eq. (3); autograd vs symbolic gradient; Eq. (3) as printed (with M) vs
    the velocity of the full-vocabulary margins at a W away from W0; full-W flow vs the reduced flow."""
    import torch
    from verify.instances import random_instance
    from verify.model import autograd_gradient, directional_derivative, interaction_matrix, margin_velocity, reward_margins, symbolic_gradient
    from verify.training import gradient_flow

    preference = _resolve_loss(loss)
    W0, data = random_instance(seed, V, d, N)
    pairs = list(zip(data.chosen.tolist(), data.rejected.tolist()))
    symbolic = derive_lemma_4_1(symbolic_instance(V, min(d, 2), pairs[: min(N, 5)]))
    parameters = dict(V=V, d=d, N=N, trials=trials, beta=beta, tau=tau, t_end=t_end, loss=loss)
    if not symbolic.holds:
        return Verdict("lemma-4.1", Status.DISCREPANCY, "the chain rule does not give Eq. (3)",
                       parameters, seed, details={"residuals": [str(x) for x in symbolic.residuals]}, exact=True)
    worst_gradient, worst_velocity, worst_flow, failures, first_failure = 0.0, 0.0, 0.0, 0, None
    times = torch.linspace(0, t_end, 5, dtype=torch.float64)
    relative = lambda x, y: float((x - y).norm() / max(float(y.norm()), torch.finfo(y.dtype).tiny))
    for trial in range(trials):
        W0, data = random_instance(seed + trial, V, d, N)
        W = W0 + 0.5 * torch.randn(W0.shape, generator=torch.Generator().manual_seed(seed + trial), dtype=W0.dtype)
        a, s = autograd_gradient(W, W0, data, beta, preference), symbolic_gradient(W, W0, data, beta, preference)
        gradient_error = relative(s, a)
        # dr/dt = J_r(W) dW/dt with tau dW/dt = -grad_W L, against Eq. (3)'s (beta^2/(N tau)) M w(r).
        velocity = directional_derivative(lambda X: reward_margins(X, W0, data, beta), W, -a / tau)
        printed = margin_velocity(reward_margins(W, W0, data, beta), interaction_matrix(data), beta, tau, preference)
        velocity_error = relative(velocity, printed)
        full = gradient_flow(data, beta, tau, times, preference, form="full", W0=W0).train_margins
        flow_error = float((full - gradient_flow(data, beta, tau, times, preference).train_margins).abs().max())
        worst_gradient, worst_flow = max(worst_gradient, gradient_error), max(worst_flow, flow_error)
        worst_velocity = max(worst_velocity, velocity_error)
        if max(gradient_error, velocity_error) > GRADIENT_RELATIVE_TOLERANCE or flow_error > FLOW_TOLERANCE:
            failures += 1
            first_failure = first_failure if first_failure is not None else seed + trial
    details = {"gradient_relative_error": worst_gradient, "eq_3_velocity_relative_error": worst_velocity,
               "flow_vs_margin_ode": worst_flow,
               "gradient_tolerance": GRADIENT_RELATIVE_TOLERANCE, "flow_tolerance": FLOW_TOLERANCE}
    if failures:
        return Verdict("lemma-4.1", Status.VIOLATED, f"{failures}/{trials} instances exceed the tolerance",
                       parameters, first_failure, trials, failures, worst_flow, FLOW_TOLERANCE, details, exact=True)
    return Verdict("lemma-4.1", Status.HOLDS,
                   f"symbolic residual 0; |grad autograd - grad symbolic|/|grad| <= {worst_gradient:.1e}; "
                   f"Eq. (3) vs autograd dr/dt <= {worst_velocity:.1e} (relative); "
                   f"|r_full - r_reduced| <= {worst_flow:.1e} over {trials} instance{'s' if trials != 1 else ''}",
                   parameters, seed, trials, 0, worst_flow, FLOW_TOLERANCE, details, exact=True)


def check_margin_linearity(seed: int, V: int, d: int) -> Verdict:
    """§1.3: the single-token margin equals beta (y_w - y_l)^T (W - W0) g exactly."""
    residual = single_token_margin_residual(V, d, 0, V - 1)
    status = Status.HOLDS if residual == 0 else Status.DISCREPANCY
    return Verdict("eq-2", status, f"symbolic residual of Eq. (2) vs the linear form: {residual}",
                   dict(V=V, d=d), seed, details={"residual": str(residual)}, exact=True)


def check_gpo_weights(seed: int, losses: str) -> Verdict:
    """§7: for each loss, -f'(r) derived by sympy equals the weight the paper prints."""
    mismatches = {}
    for name in losses.split(","):
        derived = PAPER_LOSSES[name].weight
        if sp.simplify(derived - PRINTED_WEIGHTS[name]) != 0:
            mismatches[name] = (str(derived), str(PRINTED_WEIGHTS[name]))
    if mismatches:
        return Verdict("sec7-gpo", Status.DISCREPANCY, f"derived weights differ from the printed ones: {mismatches}",
                       dict(losses=losses), seed, details=mismatches, exact=True)
    return Verdict("sec7-gpo", Status.HOLDS, f"-f'(r) derived for {losses} equals §7's printed weights",
                   dict(losses=losses), seed, exact=True)


_SPECS = vocabulary(
    t_end=Parameter("real", "end time of the flow", 0, 1e4, low_open=True),
    loss=Parameter("choice", "the preference loss f(r)", choices=tuple(PAPER_LOSSES)),
    losses=Parameter("choice-list", "the losses whose weights are compared", choices=tuple(PAPER_LOSSES)))
# Lemma 4.1's check holds W (V x d) and the gradient flow's copies of it, per trial, and the N x d features.
_FLOW_FOOTPRINT = lambda p: 8 * p.get("trials", 1) * (p["V"] * p["d"] * 12 + p.get("N", 1) * (p["d"] + p["V"]) * 4)

register(Claim(
    "eq-2", "Single-token reward margin is linear in W - W0", "§3, Eq. (2)",
    "single-token responses, y_w != y_l", check_margin_linearity, dict(V=6, d=4), dict(V=4, d=3),
    specs=vocabulary(V=Parameter("int", "vocabulary size", 2, 40), d=Parameter("int", "feature dimension", 1, 40))))
register(Claim(
    "lemma-4.1", "Reward dynamics under gradient flow of W", "§4.1, Lemma 4.1, Eq. (3)",
    "fixed features g, only W trained, gradient flow tau dW/dt = -grad L", check_lemma_4_1,
    dict(V=6, d=4, N=12, trials=6, beta=0.9, tau=1.0, t_end=4.0, loss="dpo"), dict(V=5, d=4, N=10, trials=1, t_end=2.0),
    specs=_SPECS, footprint=_FLOW_FOOTPRINT))
register(Claim(
    "sec7-gpo", "GPO family: sigma(-r) becomes -f'(r)", "§7",
    "loss f differentiable except at kinks (torch's subgradient convention)", check_gpo_weights,
    dict(losses="dpo,ipo,slic"), {}, specs=_SPECS))
