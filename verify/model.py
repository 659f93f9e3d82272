"""The single-token last-layer model on the full vocabulary, and Lemma 4.1's margin velocity.

Full vocabulary: logits W g(x) over all V tokens, log-softmax, autograd (as the paper's code does).
`FullVocabularyTrial` is the one place where the margin (Eq. 2) and grad_W L are computed on the full
vocabulary; the trainers' full form, the multi-token and §7 checks and the failure-mode claim all use it.
The trainers themselves (flow, gradient descent, Adam, in a full and a reduced form) are in
`verify.trainers`. Lemma 4.1's right-hand side (beta^2/(N tau)) M w(r), with M = (D D^T) o (G G^T) and the
weight w = -f'(r) lambdified from `theory.losses`, is `margin_velocity`.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
import torch

from theory.lemma_4_1 import loss_gradient
from theory.losses import DPO, PreferenceLoss
from theory.model import symbolic_instance
from theory.symbols import beta as beta_symbol
from verify.symbolic import loss_function, weight_function
from verify.validation import check_positive


@dataclass(frozen=True)
class PreferenceData:
    """N preference triples: features g(x_i) (N x d) and token indices y_w, y_l."""

    features: torch.Tensor
    chosen: torch.Tensor
    rejected: torch.Tensor

    def __post_init__(self):
        G, yw, yl = self.features, self.chosen, self.rejected
        if G.ndim != 2:
            raise ValueError(f"features must be an N x d matrix, got shape {tuple(G.shape)}")
        if yw.shape != (G.shape[0],) or yl.shape != (G.shape[0],):
            raise ValueError(
                f"chosen and rejected must each hold one token per sample ({G.shape[0]}), "
                f"got shapes {tuple(yw.shape)} and {tuple(yl.shape)}"
            )
        if not torch.isfinite(G).all():
            raise ValueError("features contain non-finite values")
        same = (yw == yl).nonzero()
        if len(same):
            raise ValueError(f"sample {int(same[0])} has y_w == y_l == {int(yw[same[0]])}; a preference needs two responses")

    @property
    def size(self) -> int:
        return self.features.shape[0]

    def check_vocabulary(self, vocabulary_size: int) -> None:
        top = int(torch.maximum(self.chosen, self.rejected).max())
        if top >= vocabulary_size or int(torch.minimum(self.chosen, self.rejected).min()) < 0:
            raise ValueError(f"token index {top} is outside the vocabulary of size {vocabulary_size}")


# --- the full-vocabulary model ------------------------------------------------------------------------
def log_probabilities(W: torch.Tensor, contexts: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log S(W g)^T y from the log-softmax over all V tokens: contexts (..., d), tokens (..., k) -> (..., k).

    W is (V, d), or (B, V, d) with contexts (B, ..., d); the k tokens of a context share one normaliser.
    """
    log_p = torch.log_softmax(contexts @ W.transpose(-1, -2), dim=-1)
    return log_p.gather(-1, tokens.expand(*log_p.shape[:-1], tokens.shape[-1]))


def policy_log_odds(W: torch.Tensor, features: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """log pi_W(y_w|x) - log pi_W(y_l|x) for every sample, from the full softmax."""
    log_p = log_probabilities(W, features, torch.stack([chosen, rejected], -1))
    return log_p[..., 0] - log_p[..., 1]


class FullVocabularyTrial:
    """One trial on the full vocabulary: the margin (Eq. 2) and grad_W L by autograd.

    The reference log-odds under W0 are computed once, as the paper's code does. W (and W0) may carry a
    leading batch dimension when the features do.
    """

    def __init__(self, features, chosen, rejected, W0, beta: float, loss: PreferenceLoss = DPO):
        self.features, self.chosen, self.rejected, self.beta = features, chosen, rejected, beta
        self.f = loss_function(loss)
        self.reference = policy_log_odds(W0, features, chosen, rejected)

    def margins(self, W) -> torch.Tensor:
        """r = beta (log pi_W/pi_W0 (y_w|x) - log pi_W/pi_W0 (y_l|x)), Eq. (2)."""
        return self.beta * (policy_log_odds(W, self.features, self.chosen, self.rejected) - self.reference)

    def gradient(self, W) -> tuple[torch.Tensor, torch.Tensor]:
        """(grad_W L, margins) at W, with L = (1/N) sum_n f(r_n) (Eq. 1 for DPO)."""
        with torch.enable_grad():
            W = W.detach().requires_grad_(True)
            r = self.margins(W)
            (gradient,) = torch.autograd.grad(self.f(r).mean(), W)
        return gradient, r.detach()


def _trial(W, W0, data: PreferenceData, beta: float, loss: PreferenceLoss = DPO) -> FullVocabularyTrial:
    check_positive("beta", beta)
    if W.shape != W0.shape or W.shape[-1] != data.features.shape[-1]:
        raise ValueError(f"W {tuple(W.shape)}, W0 {tuple(W0.shape)} and features {tuple(data.features.shape)} do not match")
    data.check_vocabulary(W.shape[-2])
    return FullVocabularyTrial(data.features, data.chosen, data.rejected, W0, beta, loss)


def reward_margins(W: torch.Tensor, W0: torch.Tensor, data: PreferenceData, beta: float) -> torch.Tensor:
    """Eq. (2) through the full log-softmax over the vocabulary."""
    return _trial(W, W0, data, beta).margins(W)


def autograd_gradient(W, W0, data: PreferenceData, beta: float, loss: PreferenceLoss = DPO) -> torch.Tensor:
    """grad_W L on the full vocabulary, by autograd."""
    return _trial(W, W0, data, beta, loss).gradient(W)[0]


def directional_derivative(f, W: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """J_f(W) direction, by reverse mode twice (torch.func.jvp costs ~1 s per call here): with
    v(u) = J^T u, the product J direction is the gradient of <v(u), direction> in u."""
    with torch.enable_grad():
        W = W.detach().requires_grad_(True)
        out = f(W)
        u = torch.zeros_like(out, requires_grad=True)
        (vjp,) = torch.autograd.grad(out, W, grad_outputs=u, create_graph=True)
        (jvp,) = torch.autograd.grad(vjp, u, grad_outputs=direction)
    return jvp.detach()


def symbolic_gradient(W, W0, data: PreferenceData, beta: float, loss: PreferenceLoss = DPO) -> torch.Tensor:
    """grad_W L from `theory.lemma_4_1.loss_gradient` (sympy's chain rule), lambdified and evaluated in float64."""
    check_positive("beta", beta)
    V, d = W.shape
    data.check_vocabulary(V)
    instance = symbolic_instance(V, d, list(zip(data.chosen.tolist(), data.rejected.tolist())))
    symbols = [*instance.W, *instance.W0, *(s for g in instance.features for s in g), beta_symbol]
    evaluate = sp.lambdify(symbols, list(loss_gradient(instance, loss)), modules="math")
    values = [*W.reshape(-1).tolist(), *W0.reshape(-1).tolist(), *data.features.reshape(-1).tolist(), float(beta)]
    return torch.tensor(evaluate(*values), dtype=torch.float64).reshape(V, d)


# --- Lemma 4.1 ------------------------------------------------------------------------------------------
def sharing_matrix(data: PreferenceData) -> torch.Tensor:
    """P_ji = (y_{w,j} - y_{l,j})^T (y_{w,i} - y_{l,i}), from token indices (never a V-sized one-hot)."""
    yw, yl = data.chosen, data.rejected
    same = lambda a, b: (a[:, None] == b[None, :]).to(data.features.dtype)
    return same(yw, yw) - same(yw, yl) - same(yl, yw) + same(yl, yl)


def interaction_matrix(data: PreferenceData) -> torch.Tensor:
    """M_ji = C(x_i, x_j) = P_ji Sigma_ij (Lemma 4.1)."""
    return sharing_matrix(data) * (data.features @ data.features.T)


def margin_velocity(margins, M, beta: float, tau: float, loss: PreferenceLoss = DPO):
    """dr/dt = (beta^2 / (N tau)) M w(r), Eq. (3): the right-hand side as printed, with the N x N matrix M."""
    return (beta**2 / (M.shape[0] * tau)) * (M @ weight_function(loss)(margins))
