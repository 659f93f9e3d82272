"""Last-layer preference training on frozen features (§1.6, §4): gradient flow, gradient descent, Adam/AdamW.

One API: every trainer takes (data, beta, <tau | eta>, <times | steps>, loss) and the keywords `test`, `form`,
`W0` and `vocabulary_size`, and runs in two forms:

- ``form="reduced"``: exact, on the occurring rows only (`verify.layout`): the state is dW = W - W0 on the U
  rows of tokens that occur, shape (B, U, d), so a step costs the same for any vocabulary size V.
- ``form="full"``: the reference. Logits W g over all V tokens, log-softmax, autograd, one trial at a time
  (`verify.model.FullVocabularyTrial`, as the paper's code does).

The loss is pluggable: f and -f' come from `theory.losses` through `verify.symbolic`.

Time: gradient flow solves tau dW/dt = -grad L (Eq. 6); gradient descent W <- W - eta grad L is one unit of
time per step, i.e. tau = 1/eta (§1.6); Adam has no tau. Reported times are flow time or step counts.

W0: the margins depend on W - W0 only, so gradient flow and gradient descent give the same margins for
every W0; W0 (and vocabulary_size) then fix W itself, which `TrainingResult.weights()` returns. Adam needs
W0 on the occurring rows only when there is weight decay, which acts on W. With W(0) = W0 the gradient on a
row of a token that never occurs is exactly 0 in the full form too (the log-softmax backward subtracts
softmax * sum(upstream) and the upstream sum is x - x = 0), so those rows never move; AdamW's decoupled
decay W <- (1 - lr wd) W still shrinks them, W_u(k) = (1 - lr wd)^k W0_u (`non_occurring_rows`), which
changes only the log-softmax normaliser and cancels in every margin. W0 defaults to zeros.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

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
from verify.layout import TrainingSet, sample_margins, segment_gradient, segment_margins, training_set
from verify.model import FullVocabularyTrial
from verify.symbolic import weight_function
from verify.validation import check_positive, check_times

FORMS = ("reduced", "full")

# Default solver tolerances of every gradient flow. dopri5's global error is a small multiple of rtol times
# the O(1) margins, so rtol = 1e-10 keeps a flow about 100x inside the 1e-8 at which the two forms, and Lemma
# 4.1's check, must agree; its step count grows as rtol^(-1/5), so 1e-12 would cost 2.5x the steps for
# digits no check reads. atol = rtol / 100 keeps the control relative for margins that start at 0.
RTOL = 1e-10
ATOL = 1e-12

# Theorem 4.2's horizon, tau_1 = K tau log 3 / (5 beta^2), from the statement object in theory/ (SPEC §2.2).
TAU_1 = THEOREM_4_2.conclusions["tau_1"]
_tau_1 = sp.lambdify((K_symbol, beta_symbol, tau_symbol), TAU_1, modules="math")


def tau_1(K: int, beta: float, tau: float) -> float:
    """tau_1 = K tau log 3 / (5 beta^2): the end of Theorem 4.2's guarantee, in flow time."""
    if isinstance(K, bool) or not isinstance(K, (int, np.integer)) or K < 1:
        raise ValueError(f"K must be an integer >= 1, got {K!r}")
    check_positive("beta", beta), check_positive("tau", tau)
    return float(_tau_1(int(K), beta, tau))


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
    reference: torch.Tensor | None = None  # W0, (V, d) or (B, V, d), in the data's dtype; None: zeros
    vocabulary_size: int | None = None
    other_rows_scale: float = 1.0  # W / W0 on the rows that never occur (AdamW's decay)
    final_weights: torch.Tensor | None = None  # (B, V, d), kept by the full form

    def at(self, time: float) -> int:
        """Index of a recorded time (exact match)."""
        hits = torch.nonzero(self.times == time).flatten()
        if not len(hits):
            raise ValueError(f"time {time} was not recorded; recorded: {self.times.tolist()}")
        return int(hits[0])

    def weights(self) -> torch.Tensor:
        """W at the last recorded time, (B, V, d): the full form's own W; in the reduced form W0 + dW on the
        occurring rows and the closed form of the other rows."""
        if self.final_weights is not None:
            return self.final_weights
        B, _, d = self.delta_rows.shape
        if self.reference is None:
            W = self.delta_rows.new_zeros(B, self.vocabulary_size, d)
        else:
            W = (self.reference * self.other_rows_scale).expand(B, -1, -1).clone()
        reference_rows = 0.0 if self.reference is None else self.reference[..., self.rows, :]
        W[:, self.rows] = reference_rows + self.delta_rows
        return W


def adamw_decay(lr: float, weight_decay: float, steps: int) -> float:
    """(1 - lr wd)^steps: AdamW's decoupled decay after `steps` steps."""
    return (1 - lr * weight_decay) ** steps


def non_occurring_rows(W0: torch.Tensor, lr: float, weight_decay: float, steps: int) -> torch.Tensor:
    """AdamW rows of tokens that never occur: (1 - lr wd)^steps W0 (their gradient is exactly 0)."""
    return W0 * adamw_decay(lr, weight_decay, steps)


# --- shared plumbing ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Run:
    """The checked inputs every trainer shares."""

    data: TrainingSet
    test: ClusterSample | None
    W0: torch.Tensor | None  # (V, d) or (B, V, d) in the data's dtype and device; None: zeros
    vocabulary_size: int
    weights: torch.Tensor | None = None  # (B, N) per-pair sample weights in the training set's order; None: all 1

    def weighted(self, weights: torch.Tensor) -> torch.Tensor:
        """-f'(r_n) times each pair's sample weight c_n: the gradient of (1/N) sum_n c_n f(r_n)."""
        return weights if self.weights is None else weights * self.weights

    def reference(self, b: int) -> torch.Tensor:
        """Trial b's W0 as (V, d)."""
        if self.W0 is None:
            d = self.data.features.shape[2]
            return torch.zeros(self.vocabulary_size, d, dtype=self.data.features.dtype, device=self.data.features.device)
        return self.W0 if self.W0.ndim == 2 else self.W0[b]

    def zero_rows(self) -> torch.Tensor:
        """Zeros shaped like dW on the occurring rows, (B, U, d)."""
        features = self.data.features
        return torch.zeros(features.shape[0], len(self.data.rows), features.shape[2], dtype=features.dtype, device=features.device)

    def reference_rows(self) -> torch.Tensor:
        """W0 on the occurring rows, (B, U, d)."""
        if self.W0 is None:
            return self.zero_rows()
        B, _, d = self.data.features.shape
        return self.W0[..., self.data.rows, :].expand(B, len(self.data.rows), d).clone()

    def test_margins(self, delta_rows, beta) -> torch.Tensor | None:
        if self.test is None:
            return None
        return sample_margins(self.test.features, self.test.chosen, self.test.rejected, self.data.rows, delta_rows, beta)

    def result(self, trainer, form, times, train, test, delta_rows, **extra) -> TrainingResult:
        return TrainingResult(trainer, form, times, self.data.in_input_order(train), test, self.data.rows, delta_rows,
                              self.W0, self.vocabulary_size, **extra)


def _sample_weights(given, training: TrainingSet, sample_weights) -> torch.Tensor | None:
    """The per-pair weights of a run, (B, N) in the training set's order: `sample_weights` or those the data
    carries (`DiverseValueDistribution.sample(..., weights=...)`), never both; None when there are none."""
    carried = given.weights if isinstance(given, ClusterSample) else None
    if sample_weights is not None and carried is not None:
        raise ValueError("sample_weights: the data already carries per-pair weights; give them once")
    weights = carried if sample_weights is None else sample_weights
    if weights is None:
        return None
    B, N = training.batch_size, training.size
    try:
        weights = torch.as_tensor(weights, dtype=training.features.dtype, device=training.features.device)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"sample_weights must be numbers of shape (N,) or (B, N), got {type(weights).__name__}") from None
    if weights.shape not in ((N,), (B, N)):
        raise ValueError(f"sample_weights must have shape (N,) = ({N},) or (B, N) = ({B}, {N}), got {tuple(weights.shape)}")
    if not bool((torch.isfinite(weights) & (weights > 0)).all()):
        raise ValueError("sample_weights must all be finite and > 0")
    weights = weights.expand(B, N)
    return weights if training.order is None else weights[:, training.order]


def _setup(data, test, form: str, W0, vocabulary_size, sample_weights=None) -> _Run:
    if form not in FORMS:
        raise ValueError(f"form must be one of {FORMS}, got {form!r}")
    given, data = data, training_set(data)
    weights = _sample_weights(given, data, sample_weights)
    if test is not None:
        if not isinstance(test, ClusterSample):
            raise ValueError(f"test must be a ClusterSample, got {type(test).__name__}")
        if test.batch_size != data.batch_size or test.features.shape[2] != data.features.shape[2]:
            raise ValueError(f"test has shape {tuple(test.features.shape)}; it must match the training batch "
                             f"B = {data.batch_size} and d = {data.features.shape[2]}")
    B, d = data.batch_size, data.features.shape[2]
    V_min = int(data.rows.max()) + 1
    if vocabulary_size is not None and (isinstance(vocabulary_size, bool) or not isinstance(vocabulary_size, (int, np.integer))):
        raise ValueError(f"vocabulary_size must be an integer, got {vocabulary_size!r}")
    if W0 is None:
        V = V_min if vocabulary_size is None else int(vocabulary_size)
        if V < V_min:
            raise ValueError(f"vocabulary_size = {V} does not hold token {V_min - 1}")
        return _Run(data, test, None, V, weights)
    if (not isinstance(W0, torch.Tensor) or W0.ndim not in (2, 3) or W0.shape[-1] != d or W0.shape[-2] < V_min
            or (W0.ndim == 3 and W0.shape[0] != B)):
        raise ValueError(f"W0 must be (V, d) or (B, V, d) with V > {V_min - 1}, d = {d} and B = {B}, "
                         f"got {tuple(W0.shape) if isinstance(W0, torch.Tensor) else type(W0).__name__}")
    if not bool(torch.isfinite(W0).all()):
        raise ValueError("W0 contains non-finite values")
    if vocabulary_size is not None and vocabulary_size != W0.shape[-2]:
        raise ValueError(f"vocabulary_size = {vocabulary_size} disagrees with W0's {W0.shape[-2]} rows")
    return _Run(data, test, W0.to(data.features), W0.shape[-2], weights)


def _record_steps(steps, record) -> list[int]:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    recorded = list(range(steps + 1)) if record is None else sorted({int(k) for k in record})
    if not recorded or recorded[0] < 0 or recorded[-1] > steps:
        raise ValueError(f"record must hold step indices in [0, {steps}], got {record!r}")
    return recorded


class _WeightedTrial(FullVocabularyTrial):
    """A full-vocabulary trial whose loss is (1/N) sum_n c_n f(r_n), by autograd."""

    def __init__(self, features, chosen, rejected, W0, beta, loss, sample_weights):
        super().__init__(features, chosen, rejected, W0, beta, loss)
        self.sample_weights = sample_weights

    def gradient(self, W) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            W = W.detach().requires_grad_(True)
            r = self.margins(W)
            (gradient,) = torch.autograd.grad((self.sample_weights * self.f(r)).mean(), W)
        return gradient, r.detach()


def _full_trials(run: _Run, beta, loss) -> list[FullVocabularyTrial]:
    data = run.data
    if run.weights is not None:
        return [_WeightedTrial(data.features[b], data.chosen, data.rejected, run.reference(b), beta, loss, run.weights[b])
                for b in range(data.batch_size)]
    return [FullVocabularyTrial(data.features[b], data.chosen, data.rejected, run.reference(b), beta, loss)
            for b in range(data.batch_size)]


def _full_result(trainer, run: _Run, times, beta, paths, margins, **extra) -> TrainingResult:
    """A full-form result from each trial's W at the recorded times and its training margins."""
    rows = run.data.rows
    final = torch.stack([path[-1] for path in paths])
    delta_rows = torch.stack([path[-1][rows] - run.reference(b)[rows] for b, path in enumerate(paths)])
    test_margins = None
    if run.test is not None:
        test = run.test
        trials = [FullVocabularyTrial(test.features[b], test.chosen[b], test.rejected[b], run.reference(b), beta)
                  for b in range(test.batch_size)]
        test_margins = torch.stack([torch.stack([trial.margins(W) for W in path]) for trial, path in zip(trials, paths)])
    return run.result(trainer, "full", times, torch.stack(margins), test_margins, delta_rows, final_weights=final, **extra)


def _reduced_steps(run: _Run, beta, loss, recorded, state, offset, update: Callable) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Steps 0..recorded[-1] on the occurring rows: dW = state - offset (offset None: the state is dW);
    `update(state, grad, step)` in place between steps. Training and test margins at `recorded`, (B, T, .)."""
    weight = weight_function(loss)
    train, test = [], []
    for k in range(recorded[-1] + 1):
        delta = state if offset is None else state - offset
        r = segment_margins(run.data, delta, beta)
        if k in recorded:
            train.append(r)
            if run.test is not None:
                test.append(run.test_margins(delta, beta))
        if k == recorded[-1]:
            break
        update(state, segment_gradient(run.data, run.weighted(weight(r)), beta), k + 1)
    return torch.stack(train, 1), torch.stack(test, 1) if run.test is not None else None


def _full_steps(run: _Run, beta, loss, recorded, start: Callable) -> tuple[list, list]:
    """Steps 0..recorded[-1] of each trial on the full vocabulary, W a Parameter from W0; `start(W)` returns
    the update applied to W given grad_W L. Each trial's W and training margins at `recorded`."""
    paths, margins = [], []
    for b, trial in enumerate(_full_trials(run, beta, loss)):
        W = torch.nn.Parameter(run.reference(b).clone())
        update = start(W)
        path, rs = [], []
        for k in range(recorded[-1] + 1):
            grad, r = trial.gradient(W.detach())
            if k in recorded:
                path.append(W.detach().clone()), rs.append(r)
            if k == recorded[-1]:
                break
            update(grad)
        paths.append(path), margins.append(torch.stack(rs))
    return paths, margins


def _as_times(times, data: TrainingSet) -> torch.Tensor:
    """`times` (a list, numpy array or tensor) as a tensor in the data's dtype and device, checked."""
    try:
        times = torch.as_tensor(np.asarray(times, dtype=float) if not isinstance(times, torch.Tensor) else times,
                                dtype=data.features.dtype, device=data.features.device)
    except (TypeError, ValueError) as error:
        raise ValueError(f"times must be a 1-D sequence of numbers, got {times!r}") from error
    check_times(times)
    return times


# --- (a) gradient flow ------------------------------------------------------------------------------------
def _max_norm(tensor: torch.Tensor) -> torch.Tensor:
    # The error norm ignores rows that never move, so both forms take the same steps whatever V is.
    return tensor.abs().max()


def gradient_flow(data, beta: float, tau: float, times, loss: PreferenceLoss = DPO, *, test: ClusterSample | None = None,
                  form: str = "reduced", W0: torch.Tensor | None = None, vocabulary_size: int | None = None,
                  rtol: float = RTOL, atol: float = ATOL, sample_weights=None) -> TrainingResult:
    """tau dW/dt = -grad_W L (Eq. 6) from W(0) = W0, solved by dopri5 (torchdiffeq) with a max-norm error control.

    `times`: a list, numpy array or tensor, increasing, starting at 0. The state is W - W0: on the occurring
    rows in the reduced form, on all V rows in the full form. `sample_weights` c_n, (N,) or (B, N) in the data's
    order (or carried by the data): L = (1/N) sum_n c_n f(r_n), TRL's sample weights; None: all 1.
    """
    check_positive("beta", beta), check_positive("tau", tau)
    check_positive("rtol", rtol), check_positive("atol", atol)
    run = _setup(data, test, form, W0, vocabulary_size, sample_weights)
    data = run.data
    times = _as_times(times, data)
    options = dict(norm=_max_norm)
    if form == "reduced":
        weight = weight_function(loss)
        def velocity(t, delta_rows):
            return -segment_gradient(data, run.weighted(weight(segment_margins(data, delta_rows, beta))), beta) / tau
        path = odeint(velocity, run.zero_rows(), times, rtol=rtol, atol=atol, method="dopri5", options=options)  # (T, B, U, d)
        train = torch.stack([segment_margins(data, state, beta) for state in path], 1)
        test_margins = None if test is None else torch.stack([run.test_margins(state, beta) for state in path], 1)
        return run.result("gradient_flow", form, times, train, test_margins, path[-1])
    paths, margins = [], []
    for b, trial in enumerate(_full_trials(run, beta, loss)):
        reference = run.reference(b)
        delta_path = odeint(lambda t, dW: -trial.gradient(reference + dW)[0] / tau, torch.zeros_like(reference), times,
                            rtol=rtol, atol=atol, method="dopri5", options=options)
        paths.append([reference + dW for dW in delta_path])
        margins.append(torch.stack([trial.margins(W) for W in paths[-1]]))
    return _full_result("gradient_flow", run, times, beta, paths, margins)


# --- (b) gradient descent -----------------------------------------------------------------------------------
def gradient_descent(data, beta: float, eta: float, steps: int, loss: PreferenceLoss = DPO, *, record: Sequence[int] | None = None,
                     test: ClusterSample | None = None, form: str = "reduced", W0: torch.Tensor | None = None,
                     vocabulary_size: int | None = None, sample_weights=None) -> TrainingResult:
    """W <- W - eta grad_W L for `steps` steps (tau = 1/eta, one time unit per step); margins at steps `record`.

    In margins this is the exact map r(k+1) = r(k) + eta (beta^2/N) M w(r(k)) of §1.6, computed without M.
    `sample_weights`: as in `gradient_flow`.
    """
    check_positive("beta", beta), check_positive("eta", eta)
    run = _setup(data, test, form, W0, vocabulary_size, sample_weights)
    recorded = _record_steps(steps, record)
    times = torch.tensor(recorded, dtype=run.data.features.dtype)
    if form == "reduced":
        delta_rows = run.zero_rows()
        train, test_margins = _reduced_steps(run, beta, loss, recorded, delta_rows, None,
                                             lambda state, grad, step: state.sub_(eta * grad))
        return run.result("gradient_descent", form, times, train, test_margins, delta_rows)

    def start(W):
        def update(grad):
            with torch.no_grad():
                W.sub_(eta * grad)
        return update

    paths, margins = _full_steps(run, beta, loss, recorded, start)
    return _full_result("gradient_descent", run, times, beta, paths, margins)


# --- (c) Adam / AdamW -------------------------------------------------------------------------------------
def adam(data, beta: float = 0.01, steps: int = 100, loss: PreferenceLoss = DPO, *, lr: float = 1e-3,
         betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
         record: Sequence[int] | None = None, test: ClusterSample | None = None, form: str = "reduced",
         W0: torch.Tensor | None = None, vocabulary_size: int | None = None, sample_weights=None) -> TrainingResult:
    """Full-batch Adam (weight_decay = 0) or AdamW (decoupled decay) on W, as in the paper's last-layer runs
    (§4: beta = 0.01, lr = 1e-3, 100 full-batch steps). The full form uses torch.optim.Adam / AdamW; the reduced
    form repeats torch's update arithmetic on the occurring rows only. `sample_weights`: as in `gradient_flow`.
    """
    check_positive("beta", beta), check_positive("lr", lr), check_positive("eps", eps)
    if not (len(betas) == 2 and all(0 <= x < 1 for x in betas)):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
    if not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    run = _setup(data, test, form, W0, vocabulary_size, sample_weights)
    recorded = _record_steps(steps, record)
    times = torch.tensor(recorded, dtype=run.data.features.dtype)
    decay = adamw_decay(lr, weight_decay, recorded[-1])
    b1, b2 = betas
    if form == "reduced":
        W0_rows = run.reference_rows()
        W = W0_rows.clone()
        m, s = torch.zeros_like(W), torch.zeros_like(W)

        def update(W, grad, step):
            # torch.optim.Adam(W) arithmetic, in the same order (torch/optim/adam.py, single-tensor path).
            if weight_decay:
                W.mul_(1 - lr * weight_decay)
            m.lerp_(grad, 1 - b1)
            s.mul_(b2).addcmul_(grad, grad, value=1 - b2)
            denom = (s.sqrt() / math.sqrt(1 - b2**step)).add_(eps)
            W.addcdiv_(m, denom, value=-lr / (1 - b1**step))

        train, test_margins = _reduced_steps(run, beta, loss, recorded, W, W0_rows, update)
        return run.result("adam", form, times, train, test_margins, W - W0_rows, other_rows_scale=decay)

    def start(W):
        optimizer = (torch.optim.AdamW([W], lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=False)
                     if weight_decay else torch.optim.Adam([W], lr=lr, betas=betas, eps=eps, foreach=False))
        def update(grad):
            W.grad = grad
            optimizer.step()
        return update

    paths, margins = _full_steps(run, beta, loss, recorded, start)
    return _full_result("adam", run, times, beta, paths, margins, other_rows_scale=decay)


# --- outputs ---------------------------------------------------------------------------------------------
def margins_at_tau_1(data, beta: float, tau: float, loss: PreferenceLoss = DPO, *, test: ClusterSample | None = None,
                     form: str = "reduced", **options) -> TrainingResult:
    """Gradient flow from 0 to Theorem 4.2's tau_1 (K from the sample's distribution); `times` = [0, tau_1].
    `options`: the keywords of `gradient_flow` (W0, vocabulary_size, rtol, atol, sample_weights)."""
    if not isinstance(data, ClusterSample):
        raise ValueError("data must be a ClusterSample: tau_1 needs K")
    horizon = tau_1(data.distribution.K, beta, tau)
    return gradient_flow(data, beta, tau, [0.0, horizon], loss, test=test, form=form, **options)
