"""Numbers for §4.3 (Eqs. 4–5) and §7 (individual rewards, likelihood displacement, the failure mode).

Every formula compared with autograd comes from `theory/` (lambdified), never retyped here:
`theory.multi_token.EQ5_BRACKET`, `theory.individual_rewards.SHARING_FACTOR`, the DPO weight of
`theory.losses`, and the closed forms of the idealised failure-mode model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import sympy as sp
import torch
from torchdiffeq import odeint

from theory import individual_rewards as ir
from theory import multi_token as mt
from theory.losses import DPO
from theory.symbols import K as K_symbol, beta as beta_symbol, t as t_symbol, tau as tau_symbol
from verify.model import PreferenceData, reward_margins
from verify.symbolic import loss_function, torch_function, weight_function
from verify.validation import check_positive as _check_positive, check_times

UNIT_ROUNDOFF = 2.0**-53  # float64
TOLERANCE_CEILING = 1e-9  # the brief's ceiling; the derived tolerance must not exceed it

# lambdified once: `verify.model.preference_loss` lambdifies on every call, too slow inside an ODE solver.
_dpo_loss = loss_function(DPO)
_dpo_weight = weight_function(DPO)


# --- the autoregressive last-layer model ----------------------------------------------------------
@dataclass(frozen=True)
class SequencePreferenceData:
    """N prompts with (y_w, y_l) token sequences of length L, and frozen context embeddings.

    contexts[i, s, j] = g(i, j, s) = g(x_i, y_s^(<j)) for s = 0 (w), 1 (l): N x 2 x L x d.
    """

    contexts: torch.Tensor
    tokens: torch.Tensor  # N x 2 x L, token indices

    def __post_init__(self):
        if self.contexts.ndim != 4 or self.contexts.shape[:3] != self.tokens.shape or self.tokens.shape[1] != 2:
            raise ValueError(f"contexts {tuple(self.contexts.shape)} must be N x 2 x L x d and tokens N x 2 x L")
        same = (self.tokens[:, 0] == self.tokens[:, 1]).all(dim=1).nonzero()
        if len(same):
            raise ValueError(f"prompt {int(same[0])} has y_w == y_l; a preference needs two different responses")

    @property
    def size(self) -> int:
        return self.tokens.shape[0]

    @property
    def length(self) -> int:
        return self.tokens.shape[2]


def frozen_context_encoder(seed: int, prompts: int, vocabulary_size: int, dimension: int, dtype=torch.float64):
    """A fixed recurrent backbone: h_0 = P[x], h_{k+1} = tanh(A h_k + E[y^(k)]); g(x, y^(<j)) = h_{j-1}.

    The context depends on (prompt, prefix) only, so responses sharing a prefix share its embeddings.
    """
    gen = torch.Generator().manual_seed(seed)
    P = torch.randn(prompts, dimension, generator=gen, dtype=dtype)
    E = torch.randn(vocabulary_size, dimension, generator=gen, dtype=dtype)
    A = torch.randn(dimension, dimension, generator=gen, dtype=dtype) / math.sqrt(dimension)

    def encode(tokens: torch.Tensor) -> torch.Tensor:
        N, _, L = tokens.shape
        h = P[:N, None, :].expand(N, 2, dimension)
        out = [h]
        for j in range(L - 1):
            h = torch.tanh(h @ A.T + E[tokens[:, :, j]])
            out.append(h)
        return torch.stack(out, dim=2)

    return encode


def random_sequence_data(
    seed: int, prompts: int = 4, length: int = 3, vocabulary_size: int = 6, dimension: int = 5, dtype=torch.float64
) -> SequencePreferenceData:
    """Random pairs over a small vocabulary (so tokens recur across prompts and positions); every second
    prompt's responses share their first token, so some contexts beyond g(x_i) are shared too."""
    if length < 1 or vocabulary_size < 2 or prompts < 1 or dimension < 1:
        raise ValueError(f"need prompts, length, dimension >= 1 and vocabulary_size >= 2, got {prompts}, {length}, {dimension}, {vocabulary_size}")
    gen = torch.Generator().manual_seed(seed + 1)
    tokens = torch.randint(vocabulary_size, (prompts, 2, length), generator=gen)
    if length > 1:
        tokens[::2, 1, 0] = tokens[::2, 0, 0]
    for i in range(prompts):  # make y_w != y_l by changing the last token of y_l if needed
        if torch.equal(tokens[i, 0], tokens[i, 1]):
            tokens[i, 1, -1] = (tokens[i, 1, -1] + 1) % vocabulary_size
    encode = frozen_context_encoder(seed, prompts, vocabulary_size, dimension, dtype)
    return SequencePreferenceData(encode(tokens), tokens)


def token_log_probs(W: torch.Tensor, contexts: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log S(W g)^T y for every context and its token."""
    return torch.log_softmax(contexts @ W.T, dim=-1).gather(-1, tokens[..., None])[..., 0]


def token_rewards(W, W0, data: SequencePreferenceData, beta: float) -> torch.Tensor:
    """r(y_s^(j)) = beta (log S(W g) - log S(W0 g))^T y_s^(j), N x 2 x L."""
    return beta * (token_log_probs(W, data.contexts, data.tokens) - token_log_probs(W0, data.contexts, data.tokens))


def sequence_margins(W, W0, data: SequencePreferenceData, beta: float) -> torch.Tensor:
    """Eq. (2) on sequences from the product of per-token probabilities (not from Eq. 4)."""
    pi = torch.softmax(data.contexts @ W.T, dim=-1).gather(-1, data.tokens[..., None])[..., 0].prod(dim=-1)
    pi_ref = torch.softmax(data.contexts @ W0.T, dim=-1).gather(-1, data.tokens[..., None])[..., 0].prod(dim=-1)
    log_ratio = beta * torch.log(pi / pi_ref)
    return log_ratio[:, 0] - log_ratio[:, 1]


def decomposed_margins(W, W0, data: SequencePreferenceData, beta: float) -> torch.Tensor:
    """Eq. (4): sum_j r(y_w^(j)) - sum_j r(y_l^(j))."""
    rewards = token_rewards(W, W0, data, beta)
    return rewards[:, 0].sum(dim=-1) - rewards[:, 1].sum(dim=-1)


def sequence_dpo_loss(W, W0, data: SequencePreferenceData, beta: float) -> torch.Tensor:
    return _dpo_loss(decomposed_margins(W, W0, data, beta)).mean()


# --- Eq. (5): autograd against the derived formula ------------------------------------------------
@dataclass
class Eq5NumericCheck:
    """tau dr(y)/dt by autograd and by Eq. (5) for each probe (token, context), both readings of p."""

    autograd: torch.Tensor
    formula: dict[str, torch.Tensor]
    residual: dict[str, float]  # max |formula - autograd| over probes
    tolerance: float
    eq_4_residual: float
    parameters: dict = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        holds = {k: v <= self.tolerance for k, v in self.residual.items()}
        if holds["sum"] and not holds["difference"]:
            return "discrepancy: Eq. (5) matches autograd with p as a sum, not as the printed difference"
        if holds["difference"]:
            return "holds as printed (difference)"
        return "neither reading matches autograd"


def eq_5_formula(W, data: SequencePreferenceData, beta: float, probe_tokens, probe_contexts, weights, reading: str):
    """(beta^2/N) sum_i w_i sum_j sum_s eps_s C*(i,j,s) bracket, the bracket lambdified from theory."""
    bracket = torch_function(mt.EQ5_BRACKET[reading], *mt.BRACKET_SYMBOLS)
    S = torch.softmax(data.contexts @ W.T, dim=-1)  # N x 2 x L x V
    S_star = torch.softmax(probe_contexts @ W.T, dim=-1)  # P x V
    P = len(probe_tokens)
    o = (data.tokens[None] == probe_tokens[:, None, None, None]).to(W.dtype)  # P x N x 2 x L
    q = S[..., probe_tokens].permute(3, 0, 1, 2)  # S_ijs^T y
    q_star = S_star[:, data.tokens.reshape(-1)].reshape(P, *data.tokens.shape)  # S*^T y_s^(j)
    d_p = torch.einsum("nslv,pv->pnsl", S, S_star)
    C_star = torch.einsum("nsld,pd->pnsl", data.contexts, probe_contexts)
    eps = torch.tensor([1.0, -1.0], dtype=W.dtype)[None, None, :, None]
    terms = weights[None, :, None, None] * eps * C_star * bracket(o, q, q_star, d_p)
    magnitude = (weights.abs()[None, :, None, None] * C_star.abs() * (o.abs() + q.abs() + q_star.abs() + d_p.abs())).sum(dim=(1, 2, 3))
    return beta**2 * terms.sum(dim=(1, 2, 3)) / data.size, beta**2 * magnitude / data.size


def _directional_derivative(f, W: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """J_f(W) direction, by reverse mode twice (torch.func.jvp costs ~1 s per call here): with
    v(u) = J^T u, the product J direction is the gradient of <v(u), direction> in u."""
    W = W.detach().requires_grad_(True)
    out = f(W)
    u = torch.zeros_like(out, requires_grad=True)
    (vjp,) = torch.autograd.grad(out, W, grad_outputs=u, create_graph=True)
    (jvp,) = torch.autograd.grad(vjp, u, grad_outputs=direction)
    return jvp.detach()


def eq_5_autograd(W, W0, data: SequencePreferenceData, beta: float, probe_tokens, probe_contexts):
    """tau dr(y)/dt = <grad_W r(y), tau dW/dt>, with tau dW/dt = -grad_W L by reverse mode and the
    contraction as the directional derivative of all probe rewards along tau dW/dt (one pass)."""
    Wg = W.detach().requires_grad_(True)
    (flow,) = torch.autograd.grad(sequence_dpo_loss(Wg, W0, data, beta), Wg)
    flow = -flow
    rows = torch.arange(len(probe_tokens))
    ref = torch.log_softmax(probe_contexts @ W0.T, dim=1)[rows, probe_tokens]

    def rewards(V):
        return beta * (torch.log_softmax(probe_contexts @ V.T, dim=1)[rows, probe_tokens] - ref)

    rates = _directional_derivative(rewards, W, flow)
    # |grad r| . |flow| for the error budget: grad_W r(y) = beta (y - S*) g*^T
    S_star = torch.softmax(probe_contexts @ W.T, dim=1)
    grad_abs = (torch.nn.functional.one_hot(probe_tokens, W.shape[0]).to(W.dtype) - S_star).abs()
    magnitudes = beta * torch.einsum("pv,vd,pd->p", grad_abs, flow.abs(), probe_contexts.abs())
    return rates.detach(), magnitudes.detach()


def check_eq_5(
    seed: int = 0, prompts: int = 4, length: int = 3, vocabulary_size: int = 6, dimension: int = 5,
    beta: float = 0.5, extra_probes: int = 3, displacement: float = 0.7,
) -> Eq5NumericCheck:
    """Probe every training token in its own context plus `extra_probes` fresh (token, context) pairs,
    at W = W0 + displacement * noise so that the weights and softmaxes are not at their initial values.

    Tolerance: a first-order float64 error budget, u * n * (sum of |terms| on both sides), with n the
    longest chain of roundings (a sum over N*2L training tokens for tau dW/dt, then V*d for the contraction,
    plus the softmax and dot products). It is reported and must stay below 1e-9.
    """
    _check_positive("beta", beta)
    if length < 1 or vocabulary_size < 2:
        raise ValueError(f"need length >= 1 and vocabulary_size >= 2, got {length} and {vocabulary_size}")
    data = random_sequence_data(seed, prompts, length, vocabulary_size, dimension)
    gen = torch.Generator().manual_seed(seed + 2)
    W0 = torch.randn(vocabulary_size, dimension, generator=gen, dtype=torch.float64)
    W = W0 + displacement * torch.randn(vocabulary_size, dimension, generator=gen, dtype=torch.float64)
    tokens = data.tokens.reshape(-1)
    contexts = data.contexts.reshape(-1, dimension)
    fresh_tokens = torch.randint(vocabulary_size, (extra_probes,), generator=gen)
    fresh_contexts = torch.randn(extra_probes, dimension, generator=gen, dtype=torch.float64)
    probe_tokens, probe_contexts = torch.cat([tokens, fresh_tokens]), torch.cat([contexts, fresh_contexts])

    margins = decomposed_margins(W, W0, data, beta)
    weights = _dpo_weight(margins)
    auto, auto_mag = eq_5_autograd(W, W0, data, beta, probe_tokens, probe_contexts)
    formula, residual, magnitude = {}, {}, auto_mag.clone()
    for reading in mt.EQ5_BRACKET:
        formula[reading], mag = eq_5_formula(W, data, beta, probe_tokens, probe_contexts, weights, reading)
        residual[reading] = float((formula[reading] - auto).abs().max())
        magnitude = torch.maximum(magnitude, auto_mag + mag)
    chain = prompts * 2 * length + vocabulary_size * dimension + vocabulary_size + dimension + 16
    tolerance = UNIT_ROUNDOFF * chain * float(magnitude.max())
    if tolerance > TOLERANCE_CEILING:
        raise ValueError(f"derived tolerance {tolerance:.2e} exceeds the ceiling {TOLERANCE_CEILING}; use a smaller instance")
    eq4 = float((sequence_margins(W, W0, data, beta) - margins).abs().max())
    params = dict(seed=seed, prompts=prompts, length=length, vocabulary_size=vocabulary_size, dimension=dimension,
                  beta=beta, probes=len(probe_tokens))
    return Eq5NumericCheck(auto, formula, residual, tolerance, eq4, params)


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
    rows = torch.arange(data.size)
    logits = data.features @ (W - W0).T
    log_ratio = torch.log_softmax(data.features @ W.T, 1) - torch.log_softmax(data.features @ W0.T, 1)
    values = logits if reward == "logit" else log_ratio
    return beta * torch.stack([values[rows, data.chosen], values[rows, data.rejected]], dim=1)


def individual_reward_autograd(W, W0, data: PreferenceData, beta: float, reward: str) -> torch.Tensor:
    """<grad_W r_{s,j}, tau dW/dt> for each response: directional derivative along tau dW/dt = -grad_W L."""
    flow = -dpo_gradient(W, W0, data, beta)
    return _directional_derivative(lambda V: _individual_rewards(V, W0, data, beta, reward), W, flow)


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


# --- gradient flow on W ---------------------------------------------------------------------------
def dpo_gradient(W, W0, data: PreferenceData, beta: float) -> torch.Tensor:
    """grad_W L for the single-token DPO loss (Eq. 1), by autograd."""
    W = W.detach().requires_grad_(True)
    (gradient,) = torch.autograd.grad(_dpo_loss(reward_margins(W, W0, data, beta)).mean(), W)
    return gradient


def weight_path(W0, data: PreferenceData, beta: float, tau: float, times: torch.Tensor, rtol=1e-11, atol=1e-13):
    """W(t) at `times` under tau dW/dt = -grad_W L (DPO), by torchdiffeq's dopri5 with autograd gradients."""
    _check_positive("beta", beta), _check_positive("tau", tau)
    check_times(times)
    return odeint(lambda _, W: -dpo_gradient(W, W0, data, beta) / tau, W0.clone(), times,
                  rtol=rtol, atol=atol, method="dopri5")


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
    times = torch.tensor([0.0, time], dtype=torch.float64)
    W_end = weight_path(W0, data, beta, tau, times, rtol=1e-8, atol=1e-10)[-1]  # signs, not digits, matter here
    first = [k for k, p in enumerate(pairs) if p == (0, 1)]
    logp = lambda W: torch.log_softmax(features @ W.T, dim=1)
    delta = (logp(W_end) - logp(W0))[first]
    rate = individual_reward_rates(W0, W0, data, beta, "log_ratio")[first]
    return {
        "delta_log_pi_a": float(delta[:, 0].mean()),
        "delta_log_pi_b": float(delta[:, 1].mean()),
        "margin_ab": float(reward_margins(W_end, W0, data, beta)[first].mean()),
        "initial_rate_log_pi_a": float(rate[:, 0].mean() / (beta * tau)),  # d log pi(a)/dt = rho_dot / beta
        "initial_rate_log_pi_b": float(rate[:, 1].mean() / (beta * tau)),
    }


def likelihood_displacement(seed: int = 0, per_pair: int = 4, beta: float = 0.5, tau: float = 1.0, time: float = 20.0,
                            noise: float = 0.05, reference_bias: float = 0.5) -> LikelihoodDisplacement:
    """One cluster g = c + noise, tokens a=0, b=1, c=2, d=3. The reference gives c a head start
    (W0[c] = reference_bias * c): the exact log-ratio dynamics then say d log pi(a)/dt < 0 at t = 0 in the
    shared case, since a's logit gains cancel and the softmax term is -w (S_c - S_b) Sigma."""
    _check_positive("time", time)
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


# --- §7 failure mode ------------------------------------------------------------------------------
@dataclass
class FailureModeCheck:
    """Per cluster: reference odds rho = pi_ref(y_l)/pi_ref(y_w), margin at tau_1, whether pi(y_w) > pi(y_l)
    at tau_1, the theory's time to flip, and the measured margin there (should equal beta log rho)."""

    threshold: float  # 3^(1/beta)
    tau_1: float
    odds: list[float]
    margin_at_tau_1: list[float]
    idealised_margin_at_tau_1: float
    flipped_at_tau_1: list[bool]
    time_to_flip: list[float]
    margin_at_flip_time: list[float]
    flipped_before: list[bool]  # at 0.99 t_flip
    flipped_after: list[bool]  # at 1.01 t_flip
    max_margin_error: float  # |measured r - idealised r(t)| over all checkpoints


def _lambdified(expr: sp.Expr, *symbols):
    # mpmath evaluates LambertW; the result is returned as a float.
    compiled = sp.lambdify(symbols, expr, modules="mpmath")
    return lambda *args: float(compiled(*args))


def idealised_cluster_data(pairs: int, per_cluster: int, l_b: float, odds: list[float]):
    """Noise-free clusters g = +-c_i + l_b e_1 (SPEC §1.5), tokens (u_i, u_i') = (2i, 2i+1), no sharing; W0 chosen
    so that the reference odds pi_ref(y_l)/pi_ref(y_w) on C_{i,+}, C_{i,-} are odds[2i], odds[2i+1]."""
    if len(odds) != 2 * pairs or any(o <= 0 for o in odds):
        raise ValueError(f"need 2K = {2 * pairs} positive odds, got {odds}")
    _check_positive("l_b", l_b)
    d = pairs + 1
    feats, chosen, rejected = [], [], []
    W0 = torch.zeros(2 * pairs, d, dtype=torch.float64)
    for i in range(pairs):
        c = torch.zeros(d, dtype=torch.float64)
        c[i + 1] = 1.0
        b = torch.zeros(d, dtype=torch.float64)
        b[0] = l_b
        a_plus, a_minus = math.log(odds[2 * i]), math.log(odds[2 * i + 1])
        # (W0[u'] - W0[u]) . (c + b) = a_plus and (W0[u] - W0[u']) . (-c + b) = a_minus
        W0[2 * i + 1] = (a_plus + a_minus) / 2 * c + (a_plus - a_minus) / (2 * l_b) * b / l_b
        for sign, (w, l) in ((1, (2 * i, 2 * i + 1)), (-1, (2 * i + 1, 2 * i))):
            feats += [sign * c + b] * per_cluster
            chosen += [w] * per_cluster
            rejected += [l] * per_cluster
    data = PreferenceData(torch.stack(feats), torch.tensor(chosen), torch.tensor(rejected))
    return data, W0


def failure_mode(pairs: int = 2, per_cluster: int = 2, beta: float = 0.5, tau: float = 1.0, l_b: float = 0.25,
                 odds_over_threshold: tuple[float, ...] = (1.5, 5.0, 0.5, 0.15)) -> FailureModeCheck:
    """Train by gradient flow to tau_1 and to 0.99 / 1.00 / 1.01 times the theory's flip time of each cluster."""
    _check_positive("beta", beta), _check_positive("tau", tau)
    threshold = float(ir.unflipped_odds_threshold().subs(beta_symbol, beta))
    odds = [f * threshold for f in odds_over_threshold]
    if any(o <= 1 for o in odds):
        raise ValueError(f"every reference odds ratio must exceed 1 (the reference favours y_l), got {odds}")
    data, W0 = idealised_cluster_data(pairs, per_cluster, l_b, odds)
    subs = {beta_symbol: beta, tau_symbol: tau, K_symbol: pairs}
    tau_1 = float(ir.tau_1.subs(subs))
    t_flip = _lambdified(ir.time_to_flip().subs(subs), ir.odds)
    r_of_t = _lambdified(ir.margin_at_time().subs(subs), t_symbol)
    flip_times = [t_flip(o) for o in odds]
    checkpoints = sorted({tau_1, *(f * s for f in flip_times for s in (0.99, 1.0, 1.01))})
    times = torch.tensor([0.0, *checkpoints], dtype=torch.float64)
    path = weight_path(W0, data, beta, tau, times, rtol=1e-10, atol=1e-12)
    margins = torch.stack([reward_margins(W, W0, data, beta) for W in path])
    clusters = [k * per_cluster for k in range(2 * pairs)]  # first sample of each cluster
    log_odds = torch.stack([torch.log_softmax(data.features @ W.T, 1) for W in path])
    rows = torch.arange(data.size)
    wins = log_odds[:, rows, data.chosen] > log_odds[:, rows, data.rejected]  # pi(y_w) > pi(y_l)
    index = {time: k for k, time in enumerate(times.tolist())}
    at = index.__getitem__
    error = max(abs(float(margins[k].max() - r_of_t(float(times[k])))) for k in range(len(times)))
    error = max(error, max(abs(float(margins[k].min() - r_of_t(float(times[k])))) for k in range(len(times))))
    return FailureModeCheck(
        threshold=threshold,
        tau_1=tau_1,
        odds=odds,
        margin_at_tau_1=[float(margins[at(tau_1), c]) for c in clusters],
        idealised_margin_at_tau_1=r_of_t(tau_1),
        flipped_at_tau_1=[bool(wins[at(tau_1), c]) for c in clusters],
        time_to_flip=flip_times,
        margin_at_flip_time=[float(margins[at(f), c]) for f, c in zip(flip_times, clusters)],
        flipped_before=[bool(wins[at(0.99 * f), c]) for f, c in zip(flip_times, clusters)],
        flipped_after=[bool(wins[at(1.01 * f), c]) for f, c in zip(flip_times, clusters)],
        max_margin_error=error,
    )
