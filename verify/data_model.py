"""The diverse-preference distribution P of §1.5 (and Def. C.1), sampled in torch, batched over seeds.

P has K pairs of Gaussian clusters C_{i,+-} = N(+-c_i + b, v^2 I_d), b = l_b e_1, each of weight 1/(2K).
Pair i has two tokens (u_i, u_i'): (y_w, y_l) = (u_i, u_i') on C_{i,+} and (u_i', u_i) on C_{i,-}.

Layout conventions (0-based):
- coordinate 0 is e_1 (the direction of b); c_i = e_{i+2} in the paper's 1-based numbering, i.e.
  coordinate i + 1 here, so d >= K + 1 is needed;
- cluster a = 2 i + s holds (pair i, sign + if s = 0 else -);
- a training sample is stratified: cluster a occupies rows a Q .. (a+1) Q - 1, so N = 2 K Q.

Z (§1.5) is "the maximum number of times a token appears across all preference responses". SPEC §5
item 2 leaves open whether that counts pairs or clusters; both are reported. Every pair's two clusters
use the same two tokens, so Z_clusters = 2 Z_pairs always.

Variants (Lemma 4.1-level theory in `theory.data_variants`): `shares` gives value k a share p_k of the N
samples (`DiverseValueDistribution.cluster_sizes` states the rounding); `sample(..., flip_rate=eta)` swaps y_w
and y_l on a fraction eta of each cluster; `sample(..., weights=...)` attaches per-pair sample weights, which the
trainers use in L = (1/N) sum_i c_i f(r_i). All three default to the paper's model, with the same draws.

Reproducibility: trial b with seed s draws its concept vectors, its training set and each test set
from separate generators seeded by numpy's SeedSequence([s, stream]), so a trial is the same whether
it is drawn alone or inside a batch, and test sets are independent of the training set. CUDA draws
differ from CPU draws for the same seed (different generators), and float32 from float64.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch

from theory.concentration import concept_tilt
from theory.errors import UserInputError
from verify import DEFAULT_DTYPE
from verify.model import PreferenceData

_CONCEPT_STREAM, _TRAIN_STREAM, _TEST_STREAM = 0, 1, 2


# --- token layouts ------------------------------------------------------------------------------
def disjoint_tokens(K: int) -> tuple[tuple[int, int], ...]:
    """Pair i uses tokens (2i, 2i+1): no sharing, Z_pairs = 1 (the minimum)."""
    _check_count("K", K)
    return tuple((2 * i, 2 * i + 1) for i in range(K))


def chain_tokens(K: int) -> tuple[tuple[int, int], ...]:
    """Pair i uses (i, i+1): pair i's rejected token is pair i+1's chosen token, Z_pairs = min(2, K)."""
    _check_count("K", K)
    return tuple((i, i + 1) for i in range(K))


def grouped_tokens(K: int, Z: int) -> tuple[tuple[int, int], ...]:
    """Pairs in groups of Z share one rejected ("hub") token; chosen tokens are distinct. Z_pairs = min(Z, K)."""
    _check_count("K", K), _check_count("Z", Z)
    hubs = math.ceil(K / Z)
    return tuple((hubs + i, i // Z) for i in range(K))


def token_layout(tokens: str, K: int) -> tuple[tuple[int, int], ...]:
    """'disjoint' (Z = 1), 'chain' (Z = min(2, K)) or 'grouped:Z' (pairs share a hub token)."""
    if tokens == "disjoint":
        return disjoint_tokens(K)
    if tokens == "chain":
        return chain_tokens(K)
    if tokens.startswith("grouped:"):
        return grouped_tokens(K, int(tokens.split(":", 1)[1]))
    raise ValueError(f"tokens must be 'disjoint', 'chain' or 'grouped:Z', got {tokens!r}")


def _check_count(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _seed_for(seed: int, stream: int) -> int:
    return int(np.random.SeedSequence([int(seed), stream]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _generator(seed: int, stream: int, device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(_seed_for(seed, stream))


def _as_seeds(seeds) -> tuple[int, ...]:
    seeds = (seeds,) if isinstance(seeds, (int, np.integer)) else tuple(seeds)
    if not seeds or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ValueError(f"seeds must be a non-negative integer or a non-empty sequence of them, got {seeds!r}")
    return tuple(int(s) for s in seeds)


@dataclass(frozen=True)
class ClusterSample:
    """B independent draws (one per seed) from P: features (B, n, d) and per-sample labels (B, n)."""

    distribution: "DiverseValueDistribution"
    seeds: tuple[int, ...]
    features: torch.Tensor
    cluster: torch.Tensor
    chosen: torch.Tensor
    rejected: torch.Tensor
    means: torch.Tensor  # (B, 2K, d): the cluster means +-c_i + b of each trial
    per_cluster: int | None  # Q for a stratified training sample with equal cluster sizes, else None
    cluster_sizes: tuple[int, ...] | None = None  # samples in each of the 2K clusters (training sets only)
    flipped: torch.Tensor | None = None  # (B, n) True where y_w and y_l were swapped; None: no flips
    weights: torch.Tensor | None = None  # (B, n) per-pair sample weights c_i; None: all 1

    @property
    def batch_size(self) -> int:
        return self.features.shape[0]

    @property
    def size(self) -> int:
        return self.features.shape[1]

    def trial(self, b: int) -> PreferenceData:
        """Trial b as the single-trial container of `verify.model`."""
        return PreferenceData(self.features[b], self.chosen[b], self.rejected[b])


@dataclass(frozen=True)
class DiverseValueDistribution:
    """The distribution P of §1.5; `delta` > 0 gives delta-approximately orthogonal c_i (Def. C.1).

    With delta > 0, c_i = cos xi e_{c_i} + sin xi u_i (`theory.concentration.concept_tilt`, cos xi = 1 - delta^2/8),
    with u_i a random unit vector orthogonal to e_{c_i} drawn per trial: the boundary case of Def. C.1.
    """

    K: int
    d: int
    v: float
    l_b: float
    delta: float = 0.0
    tokens: tuple[tuple[int, int], ...] | None = None  # None: disjoint_tokens(K)
    shares: tuple[float, ...] | None = None  # p_k of value k (sum 1); None: the paper's equal split 1/K

    def __post_init__(self):
        _check_count("K", self.K)
        _check_count("d", self.d)
        if self.d < self.K + 1:
            raise ValueError(f"d = {self.d} cannot hold b and K = {self.K} orthogonal concept vectors; need d >= K + 1")
        for name in ("v", "l_b", "delta"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not self.delta < 0.5:
            raise ValueError(f"delta must satisfy 0 <= delta < 1/2 (Def. C.1), got {self.delta}")
        tokens = disjoint_tokens(self.K) if self.tokens is None else tuple(tuple(int(u) for u in p) for p in self.tokens)
        if len(tokens) != self.K or any(len(p) != 2 for p in tokens):
            raise ValueError(f"tokens must hold K = {self.K} pairs (u_i, u_i'), got {self.tokens!r}")
        for i, (u, u_) in enumerate(tokens):
            if u == u_ or u < 0 or u_ < 0:
                raise ValueError(f"tokens: pair {i} = ({u}, {u_}) needs two different non-negative token ids")
        sets = [frozenset(p) for p in tokens]
        if len(set(sets)) != len(sets):
            raise ValueError("tokens: two cluster pairs have the same set of responses, which P excludes (§1.5)")
        object.__setattr__(self, "tokens", tokens)
        if self.shares is not None:
            object.__setattr__(self, "shares", _checked_shares(self.shares, self.K))

    # --- token bookkeeping ------------------------------------------------------------------------
    @property
    def vocabulary_size(self) -> int:
        """The smallest V that holds every token."""
        return 1 + max(max(p) for p in self.tokens)

    @property
    def Z_pairs(self) -> int:
        """Max number of cluster pairs whose responses contain one token."""
        return max(Counter(u for p in self.tokens for u in p).values())

    @property
    def Z_clusters(self) -> int:
        """Max number of clusters whose responses contain one token (= 2 Z_pairs)."""
        return max(Counter(u for p in self.tokens for u in p for _ in range(2)).values())

    def shares_token(self, i1: int, i2: int) -> bool:
        return i1 != i2 and bool(set(self.tokens[i1]) & set(self.tokens[i2]))

    def cluster_tokens(self, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(y_w, y_l) of each of the 2K clusters, swapped on C_{i,-}."""
        u = torch.tensor([p[0] for p in self.tokens], device=device)
        u_ = torch.tensor([p[1] for p in self.tokens], device=device)
        return torch.stack([u, u_], 1).reshape(-1), torch.stack([u_, u], 1).reshape(-1)

    # --- geometry ---------------------------------------------------------------------------------
    def concept_vectors(self, seeds, device=None, dtype=DEFAULT_DTYPE) -> torch.Tensor:
        """c_i for each trial, shape (B, K, d)."""
        seeds = _as_seeds(seeds)
        eye = torch.zeros(self.K, self.d, device=device, dtype=dtype)
        eye[torch.arange(self.K), torch.arange(1, self.K + 1)] = 1
        out = eye.expand(len(seeds), -1, -1).clone()
        if self.delta == 0:
            return out
        cos, sin = concept_tilt(self.delta)
        for b, seed in enumerate(seeds):
            tilt = torch.randn(self.K, self.d, generator=_generator(seed, _CONCEPT_STREAM, device), device=device, dtype=dtype)
            tilt -= (tilt * eye).sum(1, keepdim=True) * eye  # orthogonal to e_{c_i}
            out[b] = cos * eye + sin * tilt / tilt.norm(dim=1, keepdim=True)
        return out

    def cluster_means(self, seeds, device=None, dtype=DEFAULT_DTYPE) -> torch.Tensor:
        """+-c_i + b for each cluster a = 2i + s, shape (B, 2K, d)."""
        c = self.concept_vectors(seeds, device, dtype)
        b = torch.zeros(self.d, device=device, dtype=dtype)
        b[0] = self.l_b
        return torch.stack([b + c, b - c], 2).reshape(c.shape[0], 2 * self.K, self.d)

    # --- sampling ---------------------------------------------------------------------------------
    @property
    def equal_shares(self) -> bool:
        """Every value has share 1/K (the paper's model), given as None or as K equal numbers."""
        return self.shares is None or len(set(self.shares)) == 1

    def cluster_sizes(self, Q: int) -> tuple[int, ...]:
        """Samples in each of the 2K clusters of a training set of N = 2KQ samples.

        Value k gets Q_k samples in each of its two clusters, Q_k from p_k K Q by the largest-remainder rule
        (floors first, then one more to the largest remainders, lower k first on ties), so sum_k Q_k = KQ and
        the two clusters of a value stay equal in size. Every Q_k must be >= 1.
        """
        _check_count("Q", Q)
        if self.equal_shares:
            return (Q,) * (2 * self.K)
        shares = [Fraction(p) for p in self.shares]
        total = sum(shares)
        quotas = [p / total * self.K * Q for p in shares]
        counts = [math.floor(q) for q in quotas]
        by_remainder = sorted(range(self.K), key=lambda k: (-(quotas[k] - counts[k]), k))
        for k in by_remainder[: self.K * Q - sum(counts)]:
            counts[k] += 1
        if min(counts) < 1:
            k = counts.index(0)
            raise UserInputError(f"shares: value {k} (p = {self.shares[k]:g}) gets no sample at Q = {Q}; "
                                 f"p_k K Q must round to >= 1 for every value")
        return tuple(c for c in counts for _ in range(2))

    def flip_counts(self, Q: int, flip_rate: float) -> tuple[int, ...]:
        """Samples with y_w and y_l swapped in each of the 2K clusters of `sample(seeds, Q, flip_rate=...)`."""
        return _flip_counts(flip_rate, self.cluster_sizes(Q))

    def realised_shares(self, Q: int) -> tuple[float, ...]:
        """Each value's share of the N = 2KQ training samples after rounding: 2 Q_k / N."""
        sizes = self.cluster_sizes(Q)
        return tuple(2 * sizes[2 * k] / sum(sizes) for k in range(self.K))

    def sample(self, seeds, Q: int, device=None, dtype=DEFAULT_DTYPE, *, flip_rate: float = 0.0,
               weights=None) -> ClusterSample:
        """A training set of N = 2KQ samples, one independent trial per seed.

        Q i.i.d. samples from each cluster under equal shares; with `shares`, Q_k per cluster of value k
        (`cluster_sizes`). `flip_rate` eta in [0, 1/2): in each cluster the last round(eta Q_a) samples (half
        rounded up) have y_w and y_l swapped; the samples of a cluster are i.i.d., so which ones is immaterial, and
        the same rows in every trial keep one token layout per batch. `weights`: per-pair sample weights, K
        numbers (one per value) or N numbers (one per pair, in sample order), each finite and > 0.
        """
        sizes = self.cluster_sizes(Q)
        flips = _flip_counts(flip_rate, sizes)
        seeds = _as_seeds(seeds)
        means = self.cluster_means(seeds, device, dtype)
        n = 2 * self.K * Q
        features = torch.empty(len(seeds), n, self.d, device=device, dtype=dtype)
        equal = len(set(sizes)) == 1
        cluster_of_row = torch.arange(2 * self.K, device=device).repeat_interleave(torch.tensor(sizes, device=device))
        for b, seed in enumerate(seeds):
            # Filled in place, so a draw needs no memory beyond the feature matrix itself.
            torch.randn(n, self.d, generator=_generator(seed, _TRAIN_STREAM, device), device=device, dtype=dtype, out=features[b])
            if equal:
                features[b].view(2 * self.K, Q, self.d).mul_(self.v).add_(means[b][:, None, :])
            else:
                features[b].mul_(self.v).add_(means[b][cluster_of_row])
        cluster = cluster_of_row.expand(len(seeds), -1)
        flipped = None
        if any(flips):
            stops = np.cumsum(sizes)
            mask = torch.zeros(n, dtype=torch.bool, device=device)
            for stop, m in zip(stops, flips):
                mask[stop - m: stop] = True
            flipped = mask.expand(len(seeds), -1)
        pair_weights = None if weights is None else _pair_weights(weights, sizes, device, dtype).expand(len(seeds), -1)
        return self._labelled(seeds, features, cluster, means, Q if equal else None, sizes, flipped, pair_weights)

    def test_set(self, seeds, size: int, stream: int = 0, device=None, dtype=DEFAULT_DTYPE) -> ClusterSample:
        """`size` i.i.d. draws from P (cluster a of value k with probability p_k/2; uniform over the 2K under equal
        shares), independent of `sample` for the same seeds. Test labels are clean (never flipped).

        Different `stream` values give further independent test sets.
        """
        _check_count("size", size)
        if not isinstance(stream, int) or stream < 0:
            raise ValueError(f"stream must be an integer >= 0, got {stream!r}")
        seeds = _as_seeds(seeds)
        means = self.cluster_means(seeds, device, dtype)
        features = torch.empty(len(seeds), size, self.d, device=device, dtype=dtype)
        cluster = torch.empty(len(seeds), size, dtype=torch.long, device=device)
        for b, seed in enumerate(seeds):
            generator = _generator(seed, _TEST_STREAM + stream, device)
            if self.equal_shares:
                torch.randint(2 * self.K, (size,), generator=generator, device=device, out=cluster[b])
            else:
                probabilities = torch.tensor([p / 2 for p in self.shares for _ in range(2)], dtype=torch.float64, device=device)
                cluster[b] = torch.multinomial(probabilities, size, replacement=True, generator=generator)
            torch.randn(size, self.d, generator=generator, device=device, dtype=dtype, out=features[b])
            features[b].mul_(self.v).add_(means[b][cluster[b]])
        return self._labelled(seeds, features, cluster, means, None)

    def _labelled(self, seeds, features, cluster, means, Q, sizes=None, flipped=None, weights=None) -> ClusterSample:
        chosen, rejected = self.cluster_tokens(features.device)
        chosen, rejected = chosen[cluster], rejected[cluster]
        if flipped is not None:
            chosen, rejected = torch.where(flipped, rejected, chosen), torch.where(flipped, chosen, rejected)
        return ClusterSample(self, seeds, features, cluster, chosen, rejected, means, Q, sizes, flipped, weights)


# --- data-model variants: shares, flips, weights ---------------------------------------------------------------
def _finite_number(name: str, value) -> Fraction:
    """A real number as an exact fraction (a float at its binary value), or a one-line error naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction, np.integer, np.floating)):
        raise UserInputError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise UserInputError(f"{name} = {value!r} is not finite")
    return Fraction(value)


def _checked_shares(shares, K: int) -> tuple[float, ...]:
    """K shares, each > 0, summing to 1 up to float64 rounding of the numbers given.

    Each float is within 2^-53 of its intended value relatively, so K shares meant to sum to 1 sum to within
    2^-53 of 1 (0.7 + 0.2 + 0.1 does not sum to 1 exactly in binary).
    """
    try:
        values = tuple(shares)
    except TypeError:
        raise UserInputError(f"shares must be a sequence of K = {K} numbers, got {shares!r}") from None
    if len(values) != K:
        raise UserInputError(f"shares must hold K = {K} numbers (one per value), got {len(values)}: {values!r}")
    exact = [_finite_number(f"shares[{k}]", p) for k, p in enumerate(values)]
    for k, p in enumerate(exact):
        if not p > 0:
            raise UserInputError(f"shares[{k}] = {values[k]!r} must be > 0 (every value needs data)")
    if abs(sum(exact) - 1) > Fraction(1, 2**53):
        raise UserInputError(f"shares must sum to 1, got {float(sum(exact))!r} for {values!r}")
    return tuple(float(p) for p in values)


def _flip_counts(flip_rate, sizes: tuple[int, ...]) -> tuple[int, ...]:
    """Flipped samples per cluster: eta Q_a rounded half up, exactly; each realised rate must stay below 1/2."""
    eta = _finite_number("flip_rate", flip_rate)
    if not 0 <= eta < Fraction(1, 2):
        raise UserInputError(f"flip_rate must be in [0, 1/2), got {flip_rate!r}")
    counts = tuple(math.floor(eta * size + Fraction(1, 2)) for size in sizes)
    for size, m in zip(sizes, counts):
        if 2 * m >= size and m > 0:
            raise UserInputError(f"flip_rate = {flip_rate!r} flips {m} of the {size} samples of a cluster, not fewer "
                                 f"than half; use more samples per cluster")
    return counts


def _pair_weights(weights, sizes: tuple[int, ...], device, dtype) -> torch.Tensor:
    """Per-pair weights (n,) from K per-value numbers or n per-pair numbers, each finite and > 0."""
    if isinstance(weights, (torch.Tensor, np.ndarray)):
        weights = weights.tolist() if weights.ndim == 1 else weights
    if isinstance(weights, (str, bytes)) or not hasattr(weights, "__len__"):
        raise UserInputError(f"weights must be a 1-D sequence of numbers, got {weights!r}")
    values = [float(_finite_number(f"weights[{i}]", x)) for i, x in enumerate(weights)]
    K, n = len(sizes) // 2, sum(sizes)
    for i, x in enumerate(values):
        if not x > 0:
            raise UserInputError(f"weights[{i}] = {x!r} must be > 0")
    if len(values) == K:
        values = [values[a // 2] for a, size in enumerate(sizes) for _ in range(size)]
    elif len(values) != n:
        raise UserInputError(f"weights must hold K = {K} numbers (one per value) or N = {n} (one per pair), got {len(values)}")
    return torch.tensor(values, dtype=dtype, device=device)


# --- Lemma B.1: Gram statistics and concentration events ----------------------------------------------
GRAM_BLOCKS = {
    "eq9_same_cluster": "x_j . x_k, j != k in one cluster; expectation 1 + l_b^2",
    "eq10_norms": "||x_j||^2; expectation 1 + l_b^2 + d v^2",
    "eq11_opposite_cluster": "x in C_{i,+-} . x in C_{i,-+}; expectation l_b^2 - 1",
    "eq12_sharing_same_sign": "x in C_{i1,s} . x in C_{i2,s}, pairs i1 != i2 sharing a token; expectation l_b^2",
    "eq13_sharing_opposite_sign": "x in C_{i1,s} . x in C_{i2,-s}, pairs sharing a token; expectation l_b^2",
}


def gram_statistics(sample: ClusterSample, printed_centres: bool = False) -> dict[str, torch.Tensor]:
    """Max |x_j . x_k - E[x_j . x_k]| over each block of Lemma B.1 (Eqs. 9-13), per trial: (B,) tensors.

    The expectation is the exact one of the sampled model, mu_a . mu_a' + [j = k] d v^2, which is the
    printed centre of Eqs. 9-13 when delta = 0 (for delta > 0 it includes the c_i1 . c_i2 terms that
    Lemma C.3 absorbs into a wider half-width). `printed_centres` measures from the printed centres
    (1 + l_b^2, l_b^2 - 1, l_b^2: orthogonal c_i) instead, as Lemma C.3's event does for delta > 0.
    A block absent from the layout (e.g. no shared tokens) reports 0. Works one cluster at a time, so
    memory is O(B Q N), never O(N^2) at once.
    """
    dist, Q = sample.distribution, sample.per_cluster
    if Q is None:
        raise ValueError("sample: Gram statistics need a stratified training sample with equal cluster sizes "
                         "(DiverseValueDistribution.sample without unequal shares)")
    B, n, d = sample.features.shape
    A = 2 * dist.K
    G = sample.features.view(B, A, Q, d)
    means = sample.means
    if printed_centres:
        orthogonal = DiverseValueDistribution(dist.K, d, 0.0, dist.l_b, tokens=dist.tokens)
        means = orthogonal.cluster_means(sample.seeds[:1], sample.features.device, sample.features.dtype)
    mean_dots = (means @ means.transpose(1, 2)).expand(B, A, A)  # (B, 2K, 2K)
    pair = torch.arange(A) // 2
    sign = torch.arange(A) % 2
    stats = {key: torch.zeros(B, dtype=sample.features.dtype, device=sample.features.device) for key in GRAM_BLOCKS}
    off_diagonal = ~torch.eye(Q, dtype=torch.bool, device=G.device)
    for a in range(A):
        deviation = (G[:, a] @ sample.features.transpose(1, 2)).view(B, Q, A, Q) - mean_dots[:, a, None, :, None]
        own = deviation[:, :, a, :]  # (B, Q, Q); its diagonal is ||x_j||^2 - ||mu_a||^2
        norms = (own.diagonal(dim1=1, dim2=2) - d * dist.v**2).abs()
        deviation = deviation.abs()
        own = deviation[:, :, a, :]
        stats["eq10_norms"] = torch.maximum(stats["eq10_norms"], norms.amax(1))
        if Q > 1:
            stats["eq9_same_cluster"] = torch.maximum(stats["eq9_same_cluster"], own[:, off_diagonal].amax(1))
        stats["eq11_opposite_cluster"] = torch.maximum(stats["eq11_opposite_cluster"], deviation[:, :, a ^ 1, :].flatten(1).amax(1))
        for a2 in range(A):
            if dist.shares_token(int(pair[a]), int(pair[a2])):
                key = "eq12_sharing_same_sign" if sign[a] == sign[a2] else "eq13_sharing_opposite_sign"
                stats[key] = torch.maximum(stats[key], deviation[:, :, a2, :].flatten(1).amax(1))
    return stats


def concentration_events(sample: ClusterSample, epsilon: float, half_width: float | None = None,
                         printed_centres: bool = False) -> dict[str, torch.Tensor]:
    """Per trial (B,) booleans: does each of Lemma B.1's Eqs. 9-13 hold with half-width 2 epsilon v?

    Key "all" is the intersection, the event Lemma B.1 lower-bounds. `half_width` overrides 2 epsilon v
    (e.g. 5/2 epsilon v for Lemma C.3, with `printed_centres`: see `gram_statistics`). Frequencies over
    trials are `.float().mean()`.
    """
    if not (isinstance(epsilon, (int, float)) and epsilon > 0):
        raise ValueError(f"epsilon must be > 0, got {epsilon!r}")
    width = 2 * epsilon * sample.distribution.v if half_width is None else half_width
    if width < 0:
        raise ValueError(f"half_width must be >= 0, got {half_width!r}")
    events = {key: value <= width for key, value in gram_statistics(sample, printed_centres).items()}
    events["all"] = torch.stack(list(events.values())).all(0)
    return events
