"""Last-layer preference training on frozen features (§1.6, §4): gradient flow, gradient descent, Adam/AdamW.

Every trainer runs in two forms:

- ``form="reduced"``: exact. The margin is r_n = beta (dW[y_w] - dW[y_l]) . g_n (§1.3), and the gradient of
  L = (1/N) sum_n f(r_n) touches only the rows of tokens that occur, so the state is dW on those U rows,
  shape (B, U, d), and a step costs the same for any vocabulary size V. Samples with the same
  (y_w, y_l) form contiguous segments; a step is two matrix-vector passes over the features (one batched
  row-vector x matrix product over all segments when they have equal lengths, as every ClusterSample has):
  r = beta G_p (dW[a_p] - dW[b_p]) per segment p, then h_p = G_p^T w_p with w = -f'(r), scattered to
  rows a_p (+) and b_p (-). That is 4 N d flops and two reads of G: bandwidth-bound.
- ``form="full"``: the reference. Logits W g over all V tokens, log-softmax, autograd, one trial at a time
  (as the paper's code does). The reference log-probabilities are computed once, as the paper's code does.

The loss is pluggable: f and -f' come from `theory.losses` through `verify.symbolic`.

Time: gradient flow solves tau dW/dt = -grad L (Eq. 6); gradient descent W <- W - eta grad L is one unit of
time per step, i.e. tau = 1/eta (§1.6); Adam has no tau. Reported times are flow time or step counts.

Adam/AdamW: with W(0) = W0 the gradient on a row of a token that never occurs is exactly 0 in the full
form too (the log-softmax backward subtracts softmax * sum(upstream) and the upstream sum is x - x = 0),
so Adam's moments stay 0 and those rows never move. AdamW's decoupled decay W <- (1 - lr wd) W still
shrinks them, W_u(k) = (1 - lr wd)^k W0_u, but that only changes the log-softmax normaliser, which cancels
in every margin; the reduced form therefore carries W = W0 + dW on the occurring rows only (the decay
acts on W, not dW, so W0's occurring rows are needed) and `non_occurring_rows` gives the rest in closed form.
W0 defaults to zeros; pass a (V, d) W0 to exercise the normaliser.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import sympy as sp
import torch
from torchdiffeq import odeint

from theory.losses import DPO, PreferenceLoss
from theory.symbols import K as K_symbol
from theory.symbols import beta as beta_symbol
from theory.symbols import tau as tau_symbol
from theory.training_guarantee import THEOREM_4_2
from verify.data_model import ClusterSample
from verify.model import PreferenceData
from verify.symbolic import loss_function, weight_function
from verify.validation import check_positive as _check_positive, check_times
from verify.verdicts import clopper_pearson

FORMS = ("reduced", "full")

# Theorem 4.2's horizon, tau_1 = K tau log 3 / (5 beta^2), from the statement object in theory/ (SPEC §2.2).
TAU_1 = THEOREM_4_2.conclusions["tau_1"]
_tau_1 = sp.lambdify((K_symbol, beta_symbol, tau_symbol), TAU_1, modules="math")


def tau_1(K: int, beta: float, tau: float) -> float:
    """tau_1 = K tau log 3 / (5 beta^2): the end of Theorem 4.2's guarantee, in flow time."""
    if isinstance(K, bool) or not isinstance(K, (int, np.integer)) or K < 1:
        raise ValueError(f"K must be an integer >= 1, got {K!r}")
    _check_positive("beta", beta), _check_positive("tau", tau)
    return float(_tau_1(int(K), beta, tau))


# --- data in the reduced layout -----------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingSet:
    """Features (B, N, d) of B trials that share one token layout, cut into (y_w, y_l) segments.

    `order` is None when the input was already segment-contiguous (every ClusterSample is); otherwise
    the features were copied once in sorted order and `order[k]` is the input index of sorted sample k.
    """

    features: torch.Tensor
    chosen: torch.Tensor  # (N,), in the stored order
    rejected: torch.Tensor
    rows: torch.Tensor  # (U,) the token ids that occur, ascending
    starts: tuple[int, ...]
    stops: tuple[int, ...]
    winner: torch.Tensor  # (P,) row index (into `rows`) of each segment's y_w
    loser: torch.Tensor
    order: torch.Tensor | None

    @property
    def batch_size(self) -> int:
        return self.features.shape[0]

    @property
    def size(self) -> int:
        return self.features.shape[1]

    @property
    def segment_length(self) -> int | None:
        lengths = {b - a for a, b in zip(self.starts, self.stops)}
        return lengths.pop() if len(lengths) == 1 else None

    def in_input_order(self, margins: torch.Tensor) -> torch.Tensor:
        """Undo the sort on the last dimension."""
        if self.order is None:
            return margins
        out = torch.empty_like(margins)
        out[..., self.order] = margins
        return out

    def trial(self, b: int) -> PreferenceData:
        return PreferenceData(self.features[b], self.chosen, self.rejected)


def training_set(data: ClusterSample | PreferenceData) -> TrainingSet:
    """Bring a ClusterSample (B trials) or a PreferenceData (one trial) into the reduced layout."""
    if isinstance(data, PreferenceData):
        features, chosen, rejected = data.features[None], data.chosen, data.rejected
    elif isinstance(data, ClusterSample):
        chosen, rejected = data.chosen[0], data.rejected[0]
        if not (bool((data.chosen == chosen).all()) and bool((data.rejected == rejected).all())):
            raise ValueError("data: the trials of a training batch must share one token layout (use sample(), not test_set())")
        features = data.features
    else:
        raise ValueError(f"data must be a ClusterSample or a PreferenceData, got {type(data).__name__}")
    if features.shape[1] < 1:
        raise ValueError("data: need at least one sample")
    pair_code = chosen * (int(torch.maximum(chosen, rejected).max()) + 1) + rejected
    change = torch.nonzero(pair_code[1:] != pair_code[:-1]).flatten() + 1
    order = None
    if len(change) + 1 > len(torch.unique(pair_code)):
        # A pair occurs in several runs: sort once so every pair is one segment (one copy of G).
        order = torch.sort(pair_code, stable=True).indices
        features, chosen, rejected, pair_code = features[:, order], chosen[order], rejected[order], pair_code[order]
        change = torch.nonzero(pair_code[1:] != pair_code[:-1]).flatten() + 1
    starts = [0, *change.tolist()]
    stops = [*change.tolist(), len(pair_code)]
    rows = torch.unique(torch.cat([chosen, rejected]))
    index = torch.searchsorted(rows, torch.stack([chosen[starts], rejected[starts]]))
    return TrainingSet(features, chosen, rejected, rows, tuple(starts), tuple(stops), index[0], index[1], order)


def _batched_segments(data: TrainingSet) -> bool:
    # bmm parallelises over its batch, torch.mv inside one product: with fewer segments than threads the
    # mv loop keeps every core streaming.
    return data.segment_length is not None and data.batch_size * len(data.starts) >= torch.get_num_threads()


def segment_margins(data: TrainingSet, delta_rows: torch.Tensor, beta: float) -> torch.Tensor:
    """Pass 1: r_n = beta g_n . (dW[y_w] - dW[y_l]) for all B trials, shape (B, N)."""
    D = delta_rows[:, data.winner] - delta_rows[:, data.loser]  # (B, P, d)
    B, N, d = data.features.shape
    L = data.segment_length
    if _batched_segments(data):
        # (1 x d) @ (d x L) per segment: the row-vector form streams G; G_p @ D_p as (L x d) @ (d x 1) does not.
        G = data.features.reshape(B * len(data.starts), L, d)
        return beta * torch.bmm(D.reshape(-1, 1, d), G.transpose(1, 2)).reshape(B, N)
    r = torch.empty(B, N, dtype=data.features.dtype, device=data.features.device)
    for b in range(B):
        for p, (s, e) in enumerate(zip(data.starts, data.stops)):
            torch.mv(data.features[b, s:e], D[b, p], out=r[b, s:e])
    return r.mul_(beta)


def segment_gradient(data: TrainingSet, weights: torch.Tensor, beta: float) -> torch.Tensor:
    """Pass 2: grad of (1/N) sum f(r_n) on the occurring rows, (B, U, d), given weights -f'(r_n)."""
    B, N, d = data.features.shape
    P = len(data.starts)
    L = data.segment_length
    if _batched_segments(data):
        h = torch.bmm(weights.reshape(B * P, 1, L), data.features.reshape(B * P, L, d)).reshape(B, P, d)
    else:
        h = torch.empty(B, P, d, dtype=data.features.dtype, device=data.features.device)
        for b in range(B):
            for p, (s, e) in enumerate(zip(data.starts, data.stops)):
                torch.mv(data.features[b, s:e].T, weights[b, s:e], out=h[b, p])
    grad = torch.zeros(B, len(data.rows), d, dtype=h.dtype, device=h.device)
    grad.index_add_(1, data.winner, h).index_add_(1, data.loser, h, alpha=-1)
    return grad.mul_(-beta / N)


def sample_margins(features: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor, rows: torch.Tensor,
                   delta_rows: torch.Tensor, beta: float) -> torch.Tensor:
    """Margins of any samples (B, n) under dW given on `rows`; a token outside `rows` has dW = 0 exactly."""
    B, U, d = delta_rows.shape
    padded = torch.cat([delta_rows, delta_rows.new_zeros(B, 1, d)], 1)
    def row_of(tokens):
        index = torch.searchsorted(rows, tokens).clamp(max=U - 1)
        return torch.where(rows[index] == tokens, index, U)
    scores = torch.bmm(features, padded.transpose(1, 2))  # (B, n, U + 1): n d U flops, U is small
    chosen, rejected = chosen.expand(B, -1), rejected.expand(B, -1)
    return beta * (scores.gather(2, row_of(chosen)[..., None]) - scores.gather(2, row_of(rejected)[..., None]))[..., 0]


# --- results -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingResult:
    """Margins at the recorded times; trajectories are (B, T, N) for training and (B, T, n) for the test set."""

    trainer: str
    form: str
    times: torch.Tensor  # (T,) flow time (gradient_flow) or step count (gradient_descent, adam)
    train_margins: torch.Tensor
    test_margins: torch.Tensor | None
    rows: torch.Tensor  # (U,) token ids that occur in training
    delta_rows: torch.Tensor  # (B, U, d): W - W0 on those rows at the last recorded time

    def at(self, time: float) -> int:
        """Index of a recorded time (exact match)."""
        hits = torch.nonzero(self.times == time).flatten()
        if not len(hits):
            raise ValueError(f"time {time} was not recorded; recorded: {self.times.tolist()}")
        return int(hits[0])


def non_occurring_rows(W0: torch.Tensor, lr: float, weight_decay: float, steps: int) -> torch.Tensor:
    """AdamW rows of tokens that never occur: (1 - lr wd)^steps W0 (their gradient is exactly 0)."""
    return W0 * (1 - lr * weight_decay) ** steps


# --- shared plumbing ------------------------------------------------------------------------------------
def _check_form(form: str) -> None:
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")


def _reference(data: TrainingSet, W0, vocabulary_size) -> torch.Tensor:
    """W0 as (V, d); zeros of the smallest V that holds every token when not given."""
    d = data.features.shape[2]
    V_min = int(data.rows.max()) + 1
    if W0 is None:
        V = V_min if vocabulary_size is None else int(vocabulary_size)
        if V < V_min:
            raise ValueError(f"vocabulary_size = {V} does not hold token {V_min - 1}")
        return torch.zeros(V, d, dtype=data.features.dtype, device=data.features.device)
    if W0.ndim != 2 or W0.shape[1] != d or W0.shape[0] < V_min:
        raise ValueError(f"W0 must be (V, d) with V > {V_min - 1} and d = {d}, got {tuple(W0.shape)}")
    if vocabulary_size is not None and vocabulary_size != W0.shape[0]:
        raise ValueError(f"vocabulary_size = {vocabulary_size} disagrees with W0's {W0.shape[0]} rows")
    return W0.to(data.features)


def _test_margins(test: ClusterSample | None, rows, delta_rows, beta) -> torch.Tensor | None:
    if test is None:
        return None
    return sample_margins(test.features, test.chosen, test.rejected, rows, delta_rows, beta)


def _check_test(test, data: TrainingSet) -> None:
    if test is None:
        return
    if not isinstance(test, ClusterSample):
        raise ValueError(f"test must be a ClusterSample, got {type(test).__name__}")
    if test.batch_size != data.batch_size or test.features.shape[2] != data.features.shape[2]:
        raise ValueError(f"test has shape {tuple(test.features.shape)}; it must match the training batch "
                         f"B = {data.batch_size} and d = {data.features.shape[2]}")


def _record_steps(steps, record) -> list[int]:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    recorded = list(range(steps + 1)) if record is None else sorted({int(k) for k in record})
    if not recorded or recorded[0] < 0 or recorded[-1] > steps:
        raise ValueError(f"record must hold step indices in [0, {steps}], got {record!r}")
    return recorded


class FullVocabularyTrial:
    """One trial on the full vocabulary: log-softmax over V, autograd (the reference form)."""

    def __init__(self, features, chosen, rejected, W0, beta, loss):
        self.G, self.chosen, self.rejected, self.W0, self.beta = features, chosen, rejected, W0, beta
        self.f = loss_function(loss)
        self.reference = torch.log_softmax(features @ W0.T, dim=1)  # computed once, as in the paper's code
        self.index = torch.arange(features.shape[0], device=features.device)

    def margins(self, W) -> torch.Tensor:
        log_ratio = torch.log_softmax(self.G @ W.T, dim=1) - self.reference
        return self.beta * (log_ratio[self.index, self.chosen] - log_ratio[self.index, self.rejected])

    def gradient(self, W) -> tuple[torch.Tensor, torch.Tensor]:
        """(grad_W L, margins) at W."""
        with torch.enable_grad():
            W = W.detach().requires_grad_(True)
            r = self.margins(W)
            (grad,) = torch.autograd.grad(self.f(r).mean(), W)
        return grad, r.detach()


def _full_trials(data: TrainingSet, W0, beta, loss):
    return [FullVocabularyTrial(data.features[b], data.chosen, data.rejected, W0, beta, loss) for b in range(data.batch_size)]


def _full_result(trainer, times, data, test, W0, Ws, train, beta) -> TrainingResult:
    """Assemble a full-form result from per-trial final W and recorded train margins."""
    delta_rows = torch.stack([W[data.rows] - W0[data.rows] for W in Ws])
    test_margins = None
    if test is not None:
        test_trials = [FullVocabularyTrial(test.features[b], test.chosen[b], test.rejected[b], W0, beta, DPO) for b in range(test.batch_size)]
        test_margins = torch.stack([torch.stack([trial.margins(W) for W in path]) for trial, path in zip(test_trials, train["paths"])])
    return TrainingResult(trainer, "full", times, data.in_input_order(train["margins"]), test_margins, data.rows, delta_rows)


# --- (a) gradient flow ------------------------------------------------------------------------------------
def _max_norm(tensor: torch.Tensor) -> torch.Tensor:
    # The error norm ignores rows that never move, so both forms take the same steps whatever V is.
    return tensor.abs().max()


def gradient_flow(data, beta: float, tau: float, times, loss: PreferenceLoss = DPO, *, test: ClusterSample | None = None,
                  form: str = "reduced", W0: torch.Tensor | None = None, vocabulary_size: int | None = None,
                  rtol: float = 1e-10, atol: float = 1e-12) -> TrainingResult:
    """tau dW/dt = -grad_W L (Eq. 6) from W(0) = W0, solved by dopri5 (torchdiffeq) with a max-norm error control.

    `times`: increasing, starting at 0. In the full form the state is W - W0 on all V rows.
    """
    _check_positive("beta", beta), _check_positive("tau", tau), _check_form(form)
    _check_positive("rtol", rtol), _check_positive("atol", atol)
    data = training_set(data)
    _check_test(test, data)
    times = torch.as_tensor(times, dtype=data.features.dtype, device=data.features.device)
    check_times(times)
    options = dict(norm=_max_norm)
    if form == "reduced":
        weight = weight_function(loss)
        def velocity(t, delta_rows):
            return -segment_gradient(data, weight(segment_margins(data, delta_rows, beta)), beta) / tau
        start = torch.zeros(data.batch_size, len(data.rows), data.features.shape[2], dtype=data.features.dtype, device=data.features.device)
        path = odeint(velocity, start, times, rtol=rtol, atol=atol, method="dopri5", options=options)  # (T, B, U, d)
        train = torch.stack([segment_margins(data, state, beta) for state in path], 1)
        test_margins = None if test is None else torch.stack([_test_margins(test, data.rows, state, beta) for state in path], 1)
        return TrainingResult("gradient_flow", form, times, data.in_input_order(train), test_margins, data.rows, path[-1])
    W0 = _reference(data, W0, vocabulary_size)
    paths, margins = [], []
    for trial in _full_trials(data, W0, beta, loss):
        delta_path = odeint(lambda t, dW: -trial.gradient(W0 + dW)[0] / tau, torch.zeros_like(W0), times,
                            rtol=rtol, atol=atol, method="dopri5", options=options)
        paths.append([W0 + dW for dW in delta_path])
        margins.append(torch.stack([trial.margins(W) for W in paths[-1]]))
    return _full_result("gradient_flow", times, data, test, W0, [p[-1] for p in paths],
                        dict(paths=paths, margins=torch.stack(margins)), beta)


# --- (b) gradient descent -----------------------------------------------------------------------------------
def gradient_descent(data, beta: float, eta: float, steps: int, loss: PreferenceLoss = DPO, *, record: Sequence[int] | None = None,
                     test: ClusterSample | None = None, form: str = "reduced", W0: torch.Tensor | None = None,
                     vocabulary_size: int | None = None) -> TrainingResult:
    """W <- W - eta grad_W L for `steps` steps (tau = 1/eta, one time unit per step); margins at steps `record`.

    In margins this is the exact map r(k+1) = r(k) + eta (beta^2/N) M w(r(k)) of §1.6, computed without M.
    """
    _check_positive("beta", beta), _check_positive("eta", eta), _check_form(form)
    data = training_set(data)
    _check_test(test, data)
    recorded = _record_steps(steps, record)
    times = torch.tensor(recorded, dtype=data.features.dtype)
    if form == "reduced":
        weight = weight_function(loss)
        delta_rows = torch.zeros(data.batch_size, len(data.rows), data.features.shape[2], dtype=data.features.dtype, device=data.features.device)
        train, test_out = [], []
        for k in range(recorded[-1] + 1):
            r = segment_margins(data, delta_rows, beta)
            if k in recorded:
                train.append(r)
                if test is not None:
                    test_out.append(_test_margins(test, data.rows, delta_rows, beta))
            if k == recorded[-1]:
                break
            delta_rows -= eta * segment_gradient(data, weight(r), beta)
        return TrainingResult("gradient_descent", form, times, data.in_input_order(torch.stack(train, 1)),
                              torch.stack(test_out, 1) if test is not None else None, data.rows, delta_rows)
    W0 = _reference(data, W0, vocabulary_size)
    paths, margins = [], []
    for trial in _full_trials(data, W0, beta, loss):
        W, path, rs = W0.clone(), [], []
        for k in range(recorded[-1] + 1):
            grad, r = trial.gradient(W)
            if k in recorded:
                path.append(W.clone()), rs.append(r)
            if k == recorded[-1]:
                break
            W = W - eta * grad
        paths.append(path), margins.append(torch.stack(rs))
    return _full_result("gradient_descent", times, data, test, W0, [p[-1] for p in paths],
                        dict(paths=paths, margins=torch.stack(margins)), beta)


# --- (c) Adam / AdamW -------------------------------------------------------------------------------------
def adam(data, beta: float = 0.01, steps: int = 100, loss: PreferenceLoss = DPO, *, lr: float = 1e-3,
         betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
         record: Sequence[int] | None = None, test: ClusterSample | None = None, form: str = "reduced",
         W0: torch.Tensor | None = None, vocabulary_size: int | None = None) -> TrainingResult:
    """Full-batch Adam (weight_decay = 0) or AdamW (decoupled decay) on W, as in the paper's last-layer runs
    (§4: beta = 0.01, lr = 1e-3, 100 full-batch steps). The full form uses torch.optim.Adam / AdamW; the reduced
    form repeats torch's update arithmetic on the occurring rows only.
    """
    _check_positive("beta", beta), _check_positive("lr", lr), _check_positive("eps", eps), _check_form(form)
    if not (len(betas) == 2 and all(0 <= x < 1 for x in betas)):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
    if not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    data = training_set(data)
    _check_test(test, data)
    recorded = _record_steps(steps, record)
    times = torch.tensor(recorded, dtype=data.features.dtype)
    b1, b2 = betas
    if form == "reduced":
        weight = weight_function(loss)
        W0_full = _reference(data, W0, vocabulary_size) if W0 is not None else None
        shape = (data.batch_size, len(data.rows), data.features.shape[2])
        W0_rows = (W0_full[data.rows].expand(shape).clone() if W0_full is not None
                   else torch.zeros(shape, dtype=data.features.dtype, device=data.features.device))
        W = W0_rows.clone()
        m, s = torch.zeros_like(W), torch.zeros_like(W)
        train, test_out = [], []
        for k in range(recorded[-1] + 1):
            r = segment_margins(data, W - W0_rows, beta)
            if k in recorded:
                train.append(r)
                if test is not None:
                    test_out.append(_test_margins(test, data.rows, W - W0_rows, beta))
            if k == recorded[-1]:
                break
            grad = segment_gradient(data, weight(r), beta)
            # torch.optim.Adam(W) arithmetic, in the same order (torch/optim/adam.py, single-tensor path).
            step = k + 1
            if weight_decay:
                W.mul_(1 - lr * weight_decay)
            m.lerp_(grad, 1 - b1)
            s.mul_(b2).addcmul_(grad, grad, value=1 - b2)
            denom = (s.sqrt() / math.sqrt(1 - b2**step)).add_(eps)
            W.addcdiv_(m, denom, value=-lr / (1 - b1**step))
        return TrainingResult("adam", form, times, data.in_input_order(torch.stack(train, 1)),
                              torch.stack(test_out, 1) if test is not None else None, data.rows, W - W0_rows)
    W0 = _reference(data, W0, vocabulary_size)
    paths, margins = [], []
    for trial in _full_trials(data, W0, beta, loss):
        W = torch.nn.Parameter(W0.clone())
        optimizer = (torch.optim.AdamW([W], lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=False)
                     if weight_decay else torch.optim.Adam([W], lr=lr, betas=betas, eps=eps, foreach=False))
        path, rs = [], []
        for k in range(recorded[-1] + 1):
            grad, r = trial.gradient(W.detach())
            if k in recorded:
                path.append(W.detach().clone()), rs.append(r)
            if k == recorded[-1]:
                break
            W.grad = grad
            optimizer.step()
        paths.append(path), margins.append(torch.stack(rs))
    return _full_result("adam", times, data, test, W0, [p[-1] for p in paths], dict(paths=paths, margins=torch.stack(margins)), beta)


# --- outputs ---------------------------------------------------------------------------------------------
def margins_at_tau_1(data, beta: float, tau: float, loss: PreferenceLoss = DPO, *, test: ClusterSample | None = None,
                     form: str = "reduced", **solver) -> TrainingResult:
    """Gradient flow from 0 to Theorem 4.2's tau_1 (K from the sample's distribution); `times` = [0, tau_1]."""
    if not isinstance(data, ClusterSample):
        raise ValueError("data must be a ClusterSample: tau_1 needs K")
    horizon = tau_1(data.distribution.K, beta, tau)
    return gradient_flow(data, beta, tau, [0.0, horizon], loss, test=test, form=form, **solver)


@dataclass(frozen=True)
class RiskEstimate:
    """Empirical 0-1 risk (Def. 3.1: a margin r <= 0 is an error) with a two-sided Clopper–Pearson interval."""

    errors: np.ndarray
    n: int
    rate: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    confidence: float


def zero_one_risk(margins: torch.Tensor, confidence: float = 0.95) -> RiskEstimate:
    """Errors counted along the last dimension of `margins` (e.g. a (B, n) test-margin slice)."""
    errors = (margins <= 0).sum(-1).cpu().numpy()
    n = margins.shape[-1]
    lower, upper = clopper_pearson(errors, n, confidence)
    return RiskEstimate(errors, n, errors / n, lower, upper, confidence)
