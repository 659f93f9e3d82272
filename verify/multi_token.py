"""Numbers for §4.3: the multi-token reward (Eq. 4) and its gradient decomposition (Eq. 5), against autograd.

Every formula compared with autograd comes from `theory/` (lambdified), never retyped here:
`theory.multi_token.EQ5_BRACKET` and the DPO loss and weight of `theory.losses`. Log-probabilities come from
`verify.model.log_probabilities`, the full-vocabulary log-softmax of the single-token model.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from theory import multi_token as mt
from theory.losses import DPO
from verify.model import directional_derivative, log_probabilities
from verify.symbolic import loss_function, torch_function, weight_function
from verify.validation import check_positive

UNIT_ROUNDOFF = 2.0**-53  # float64
# An identity check needs its float64 error budget below this; a larger budget means the instance is too big
# for the residual to tell a wrong formula from rounding.
TOLERANCE_CEILING = 1e-9

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
    return log_probabilities(W, contexts, tokens[..., None])[..., 0]


def token_rewards(W, W0, data: SequencePreferenceData, beta: float) -> torch.Tensor:
    """r(y_s^(j)) = beta (log S(W g) - log S(W0 g))^T y_s^(j), N x 2 x L."""
    return beta * (token_log_probs(W, data.contexts, data.tokens) - token_log_probs(W0, data.contexts, data.tokens))


def sequence_margins(W, W0, data: SequencePreferenceData, beta: float) -> torch.Tensor:
    """Eq. (2) on sequences from the product of per-token probabilities: the side of Eq. (4)'s check that does
    not use Eq. (4), so it is computed apart from `decomposed_margins` on purpose."""
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


def eq_5_autograd(W, W0, data: SequencePreferenceData, beta: float, probe_tokens, probe_contexts):
    """tau dr(y)/dt = <grad_W r(y), tau dW/dt>, with tau dW/dt = -grad_W L by reverse mode and the
    contraction as the directional derivative of all probe rewards along tau dW/dt (one pass)."""
    Wg = W.detach().requires_grad_(True)
    (flow,) = torch.autograd.grad(sequence_dpo_loss(Wg, W0, data, beta), Wg)
    flow = -flow
    ref = token_log_probs(W0, probe_contexts, probe_tokens)

    def rewards(V):
        return beta * (token_log_probs(V, probe_contexts, probe_tokens) - ref)

    rates = directional_derivative(rewards, W, flow)
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
    check_positive("beta", beta)
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
