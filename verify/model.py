"""The single-token last-layer model in torch: the full-vocabulary reference and the reduced margin ODE.

Full vocabulary: logits W g(x) over all V tokens, log-softmax, autograd (as the paper's code does).
Reduced: Lemma 4.1's closed system tau dr/dt = (beta^2/N) M w(r), with M = (D D^T) o (G G^T) and the
weight w = -f'(r) lambdified from `theory.losses`.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import sympy as sp
import torch
from torchdiffeq import odeint

from theory.lemma_4_1 import loss_gradient
from theory.losses import DPO, PreferenceLoss
from theory.model import symbolic_instance
from theory.symbols import beta as beta_symbol
from verify.symbolic import loss_function as _loss_function
from verify.symbolic import weight_function as _weight_function
from verify.validation import check_positive as _check_positive, check_times as _check_times

# The ODE right-hand sides call these at every solver stage; lambdify once per loss, not once per call.
loss_function = functools.lru_cache(maxsize=64)(_loss_function)
weight_function = functools.lru_cache(maxsize=64)(_weight_function)


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


def reward_margins(W: torch.Tensor, W0: torch.Tensor, data: PreferenceData, beta: float) -> torch.Tensor:
    """Eq. (2) through the full log-softmax over the vocabulary."""
    if W.shape != W0.shape or W.shape[1] != data.features.shape[1]:
        raise ValueError(f"W {tuple(W.shape)}, W0 {tuple(W0.shape)} and features {tuple(data.features.shape)} do not match")
    log_ratio = torch.log_softmax(data.features @ W.T, dim=1) - torch.log_softmax(data.features @ W0.T, dim=1)
    rows = torch.arange(data.size, device=W.device)
    return beta * (log_ratio[rows, data.chosen] - log_ratio[rows, data.rejected])


def preference_loss(W, W0, data: PreferenceData, beta: float, loss: PreferenceLoss = DPO) -> torch.Tensor:
    """(1/N) sum_i f(r_i), Eq. (1) for DPO."""
    _check_positive("beta", beta)
    return loss_function(loss)(reward_margins(W, W0, data, beta)).mean()


def autograd_gradient(W, W0, data: PreferenceData, beta: float, loss: PreferenceLoss = DPO) -> torch.Tensor:
    W = W.detach().requires_grad_(True)
    (gradient,) = torch.autograd.grad(preference_loss(W, W0, data, beta, loss), W)
    return gradient


def symbolic_gradient(W, W0, data: PreferenceData, beta: float, loss: PreferenceLoss = DPO) -> torch.Tensor:
    """grad_W L from `theory.lemma_4_1.loss_gradient` (sympy's chain rule), lambdified and evaluated in float64."""
    _check_positive("beta", beta)
    V, d = W.shape
    data.check_vocabulary(V)
    instance = symbolic_instance(V, d, list(zip(data.chosen.tolist(), data.rejected.tolist())))
    symbols = [*instance.W, *instance.W0, *(s for g in instance.features for s in g), beta_symbol]
    evaluate = sp.lambdify(symbols, list(loss_gradient(instance, loss)), modules="math")
    values = [*W.reshape(-1).tolist(), *W0.reshape(-1).tolist(), *data.features.reshape(-1).tolist(), float(beta)]
    return torch.tensor(evaluate(*values), dtype=torch.float64).reshape(V, d)


def sharing_matrix(data: PreferenceData) -> torch.Tensor:
    """P_ji = (y_{w,j} - y_{l,j})^T (y_{w,i} - y_{l,i}), from token indices (never a V-sized one-hot)."""
    yw, yl = data.chosen, data.rejected
    same = lambda a, b: (a[:, None] == b[None, :]).to(data.features.dtype)
    return same(yw, yw) - same(yw, yl) - same(yl, yw) + same(yl, yl)


def interaction_matrix(data: PreferenceData) -> torch.Tensor:
    """M_ji = C(x_i, x_j) = P_ji Sigma_ij (Lemma 4.1)."""
    return sharing_matrix(data) * (data.features @ data.features.T)


def margin_velocity(margins, M, beta: float, tau: float, loss: PreferenceLoss = DPO):
    """dr/dt = (beta^2 / (N tau)) M w(r), Eq. (3)."""
    return (beta**2 / (M.shape[0] * tau)) * (M @ weight_function(loss)(margins))


def integrate_margin_ode(data, beta, tau, times, loss=DPO, rtol=1e-12, atol=1e-14):
    """Margins r(t) at `times` from the reduced ODE, with an adaptive Dormand–Prince solver (torchdiffeq)."""
    _check_positive("beta", beta), _check_positive("tau", tau), _check_times(times)
    M = interaction_matrix(data)
    r0 = torch.zeros(data.size, dtype=data.features.dtype)
    return odeint(lambda t, r: margin_velocity(r, M, beta, tau, loss), r0, times, rtol=rtol, atol=atol, method="dopri5")


def integrate_weight_flow(W0, data, beta, tau, times, loss=DPO, rtol=1e-12, atol=1e-14):
    """Margins r(t) from gradient flow tau dW/dt = -grad_W L on the full vocabulary, with autograd."""
    _check_positive("beta", beta), _check_positive("tau", tau), _check_times(times)
    data.check_vocabulary(W0.shape[0])
    W_path = odeint(
        lambda t, W: -autograd_gradient(W, W0, data, beta, loss) / tau, W0.clone(), times, rtol=rtol, atol=atol, method="dopri5"
    )
    return torch.stack([reward_margins(W, W0, data, beta) for W in W_path])
