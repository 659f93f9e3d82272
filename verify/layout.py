"""The reduced layout of last-layer training data: the arithmetic of the trainers' reduced form.

The margin is r_n = beta (dW[y_w] - dW[y_l]) . g_n (§1.3), and the gradient of L = (1/N) sum_n f(r_n)
touches only the rows of tokens that occur, so the state is dW on those U rows, shape (B, U, d), and a step
costs the same for any vocabulary size V. Samples with the same (y_w, y_l) form contiguous segments; a step
is two matrix-vector passes over the features (one batched row-vector x matrix product over all segments
when they have equal lengths, as every ClusterSample has): r = beta G_p (dW[a_p] - dW[b_p]) per segment p,
then h_p = G_p^T w_p with w = -f'(r), scattered to rows a_p (+) and b_p (-). That is 4 N d flops and two
reads of G: bandwidth-bound.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from verify.data_model import ClusterSample
from verify.model import PreferenceData


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
    """Pass 1: r_n = beta g_n . (dW[y_w] - dW[y_l]) for all B trials, shape (B, N).

    The training set's case of `sample_margins`, by segments: 2 N d flops instead of N d U.
    """
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


def _padded(delta_rows: torch.Tensor) -> torch.Tensor:
    """dW on `rows` plus one zero row (index U) for every token that never occurs in training."""
    B, _, d = delta_rows.shape
    return torch.cat([delta_rows, delta_rows.new_zeros(B, 1, d)], 1)


def _row_of(rows: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Index of each token in `rows`, or U (the zero row) for a token outside them."""
    U = len(rows)
    index = torch.searchsorted(rows, tokens).clamp(max=U - 1)
    return torch.where(rows[index] == tokens, index, U)


def margin_directions(chosen: torch.Tensor, rejected: torch.Tensor, rows: torch.Tensor,
                      delta_rows: torch.Tensor) -> torch.Tensor:
    """a = dW^T (y_w - y_l) for each (y_w, y_l), shape (B, n, d): the margin of a feature g is beta a . g (Eq. 2)."""
    B, _, d = delta_rows.shape
    padded = _padded(delta_rows)
    take = lambda tokens: padded.gather(1, _row_of(rows, tokens).expand(B, -1)[..., None].expand(-1, -1, d))
    return take(chosen) - take(rejected)


def sample_margins(features: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor, rows: torch.Tensor,
                   delta_rows: torch.Tensor, beta: float) -> torch.Tensor:
    """The reduced margin of any samples (B, n) under dW given on `rows`; a token outside `rows` has dW = 0 exactly."""
    B = delta_rows.shape[0]
    scores = torch.bmm(features, _padded(delta_rows).transpose(1, 2))  # (B, n, U + 1): n d U flops, U is small
    chosen, rejected = _row_of(rows, chosen).expand(B, -1), _row_of(rows, rejected).expand(B, -1)
    return beta * (scores.gather(2, chosen[..., None]) - scores.gather(2, rejected[..., None]))[..., 0]
