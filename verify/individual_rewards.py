"""Numbers for §7: the dynamics of individual-response rewards, and likelihood displacement.

The rates compared with autograd come from `theory.individual_rewards.SHARING_FACTOR` (lambdified), the DPO
weight from `theory.losses`; margins, gradients and log-probabilities come from the full-vocabulary model
(`verify.model`) and training from the one trainer (`verify.trainers`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from theory import individual_rewards as ir
from theory.losses import DPO
from verify.model import PreferenceData, autograd_gradient, directional_derivative, log_probabilities, reward_margins
from verify.multi_token import TOLERANCE_CEILING, UNIT_ROUNDOFF
from verify.symbolic import torch_function, weight_function
from verify.trainers import gradient_flow
from verify.validation import check_positive

_dpo_weight = weight_function(DPO)


# --- §7 individual-response rewards ---------------------------------------------------------------
@dataclass
class IndividualRewardCheck:
    """max |formula - autograd| of tau dr_{s,j}/dt over all responses, per (reward, form)."""

    residual: dict[tuple[str, str], float]
    tolerance: float
    softmax_term_size: float  # max |log-ratio rate - logit rate|: how much the printed form misses


def individual_reward_rates(W, W0, data: PreferenceData, beta: float, form: str) -> torch.Tensor:
    """tau dr_{s,j}/dt from `theory.individual_rewards.SHARING_FACTOR[form]`, N x 2 (s = w, l)."""
    factor = torch_function(ir.SHARING_FACTOR[form], *ir.FACTOR_SYMBOLS)
    G = data.features
    S = torch.softmax(G @ W.T, dim=1)  # row j: S(W g(x_j))
    weights = _dpo_weight(reward_margins(W, W0, data, beta))
    Sigma = G @ G.T
    out = []
    for own in (data.chosen, data.rejected):  # y_{s,j}
        a_w = (own[:, None] == data.chosen[None, :]).to(G.dtype)  # [j, i]
        a_l = (own[:, None] == data.rejected[None, :]).to(G.dtype)
        s_w = S[:, data.chosen]
        s_l = S[:, data.rejected]
        out.append(beta**2 * (factor(a_w, a_l, s_w, s_l) * weights[None, :] * Sigma).sum(dim=1) / data.size)
    return torch.stack(out, dim=1)


def _individual_rewards(W, W0, data: PreferenceData, beta: float, reward: str) -> torch.Tensor:
    """r_{s,j} for s = w, l, N x 2: beta times the logit change or the log-probability ratio."""
    tokens = torch.stack([data.chosen, data.rejected], dim=1)
    if reward == "logit":
        return beta * (data.features @ (W - W0).T).gather(1, tokens)
    return beta * (log_probabilities(W, data.features, tokens) - log_probabilities(W0, data.features, tokens))


def individual_reward_autograd(W, W0, data: PreferenceData, beta: float, reward: str) -> torch.Tensor:
    """<grad_W r_{s,j}, tau dW/dt> for each response: directional derivative along tau dW/dt = -grad_W L."""
    flow = -autograd_gradient(W, W0, data, beta)
    return directional_derivative(lambda V: _individual_rewards(V, W0, data, beta, reward), W, flow)


def check_individual_rewards(seed: int = 0, vocabulary_size: int = 6, dimension: int = 4, samples: int = 10,
                             beta: float = 0.5) -> IndividualRewardCheck:
    """Random single-token data with recurring tokens, W away from W0; compare every (reward, form)."""
    gen = torch.Generator().manual_seed(seed)
    G = torch.randn(samples, dimension, generator=gen, dtype=torch.float64)
    chosen = torch.randint(vocabulary_size, (samples,), generator=gen)
    rejected = (chosen + torch.randint(1, vocabulary_size, (samples,), generator=gen)) % vocabulary_size
    data = PreferenceData(G, chosen, rejected)
    W0 = torch.randn(vocabulary_size, dimension, generator=gen, dtype=torch.float64)
    W = W0 + 0.7 * torch.randn(vocabulary_size, dimension, generator=gen, dtype=torch.float64)
    residual, auto = {}, {}
    for reward in ("logit", "log_ratio"):
        auto[reward] = individual_reward_autograd(W, W0, data, beta, reward)
        for form in ("printed", reward):
            residual[(reward, form)] = float((individual_reward_rates(W, W0, data, beta, form) - auto[reward]).abs().max())
    gap = auto["log_ratio"] - auto["logit"]
    # first-order budget: sums over N samples and V*d entries, values of size |G|^2 * beta^2.
    magnitude = beta**2 * float((G.norm(dim=1) ** 2).max()) * 4
    tolerance = UNIT_ROUNDOFF * (samples + vocabulary_size * dimension + 16) * magnitude
    return IndividualRewardCheck(residual, min(tolerance, TOLERANCE_CEILING), float(gap.abs().max()))


# --- §7 likelihood displacement -------------------------------------------------------------------
@dataclass
class LikelihoodDisplacement:
    """Changes of log pi over training for the pair (a > b), when a is also rejected in its cluster
    (pairs c > a) and, as a control, when it is not (pairs c > d)."""

    shared: dict[str, float]  # Delta log pi(a), Delta log pi(b), margin r(a > b), initial rates
    control: dict[str, float]
    time: float


def _displacement_run(pairs, beta, tau, time, W0, features):
    data = PreferenceData(features, torch.tensor([p[0] for p in pairs]), torch.tensor([p[1] for p in pairs]))
    result = gradient_flow(data, beta, tau, [0.0, time], W0=W0, rtol=1e-8, atol=1e-10)  # signs, not digits, matter here
    W_end = result.weights()[0]
    first = [k for k, p in enumerate(pairs) if p == (0, 1)]
    a_and_b = torch.tensor([0, 1])
    delta = (log_probabilities(W_end, features, a_and_b) - log_probabilities(W0, features, a_and_b))[first]
    rate = individual_reward_rates(W0, W0, data, beta, "log_ratio")[first]
    return {
        "delta_log_pi_a": float(delta[:, 0].mean()),
        "delta_log_pi_b": float(delta[:, 1].mean()),
        "margin_ab": float(result.train_margins[0, -1, first].mean()),
        "initial_rate_log_pi_a": float(rate[:, 0].mean() / (beta * tau)),  # d log pi(a)/dt = rho_dot / beta
        "initial_rate_log_pi_b": float(rate[:, 1].mean() / (beta * tau)),
    }


def likelihood_displacement(seed: int = 0, per_pair: int = 4, beta: float = 0.5, tau: float = 1.0, time: float = 20.0,
                            noise: float = 0.05, reference_bias: float = 0.5) -> LikelihoodDisplacement:
    """One cluster g = c + noise, tokens a=0, b=1, c=2, d=3. The reference gives c a head start
    (W0[c] = reference_bias * c): the exact log-ratio dynamics then say d log pi(a)/dt < 0 at t = 0 in the
    shared case, since a's logit gains cancel and the softmax term is -w (S_c - S_b) Sigma."""
    check_positive("time", time)
    gen = torch.Generator().manual_seed(seed)
    d = 3
    centre = torch.zeros(d, dtype=torch.float64)
    centre[0] = 1.0
    features = centre + noise * torch.randn(2 * per_pair, d, generator=gen, dtype=torch.float64)
    W0 = torch.zeros(4, d, dtype=torch.float64)
    W0[2] = reference_bias * centre
    shared = _displacement_run([(0, 1)] * per_pair + [(2, 0)] * per_pair, beta, tau, time, W0, features)
    control = _displacement_run([(0, 1)] * per_pair + [(2, 3)] * per_pair, beta, tau, time, W0, features)
    return LikelihoodDisplacement(shared, control, time)
