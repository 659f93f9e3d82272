"""Geometry of real embeddings against the data model P of SPEC §1.5 (paper §5, Fig. 3, App. E).

- shared component: average cosine similarity between statements of different personas (Fig. 3a);
- near-orthogonality: the same matrix after subtracting the global mean embedding (Fig. 3b);
- Gaussian-cluster spread: per cluster, the Frobenius norm of the covariance and the mean squared distance
  to the cluster mean, with embeddings scaled to unit norm on average (App. E: 0.058 and 0.227 on
  Llama-3.1-8B);
- the model's parameters fitted to the clusters: b, c_i, l_b, v, delta (Def. C.1) and Z.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

PAPER_COVARIANCE_FROBENIUS = 0.058  # App. E, Llama-3.1-8B, average over personas
PAPER_MEAN_SQUARED_DISTANCE = 0.227


def unit_norm_on_average(X: np.ndarray) -> tuple[np.ndarray, float]:
    """X / mean_n ||x_n|| and that scale (App. E's normalisation: the norms average to 1, not each is 1)."""
    X = np.asarray(X, dtype=np.float64)
    scale = float(np.linalg.norm(X, axis=1).mean())
    if not scale > 0:
        raise ValueError("all embeddings are zero")
    return X / scale, scale


# --- Fig. 3: persona x persona cosine matrices ------------------------------------------------------------
def mean_pairwise_cosine(A: np.ndarray, B: np.ndarray | None = None) -> float:
    """Mean of a_j . b_k over all pairs of unit-normalised rows; with B None, over pairs j != k of A.

    Uses mean(a) . mean(b): the mean of all pairwise dot products is the dot product of the means.
    """
    A = _normalised_rows(A)
    if B is None:
        n = len(A)
        if n < 2:
            raise ValueError("need at least two rows for within-set pairs")
        s = A.sum(0)
        return float((s @ s - n) / (n * (n - 1)))  # sum over all pairs minus the n self-pairs (each 1)
    return float(A.mean(0) @ _normalised_rows(B).mean(0))


def _normalised_rows(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError("a zero embedding has no direction")
    return X / norms


def cosine_matrix(groups: Sequence[np.ndarray], center: np.ndarray | None = None) -> np.ndarray:
    """M[i, j] = mean cosine between statements of persona i and persona j (diagonal: distinct pairs).

    With `center`, it is subtracted from every embedding first (Fig. 3b subtracts the global mean).
    """
    groups = [np.asarray(g, dtype=np.float64) - (0 if center is None else center) for g in groups]
    k = len(groups)
    M = np.empty((k, k))
    for i in range(k):
        for j in range(i, k):
            M[i, j] = M[j, i] = mean_pairwise_cosine(groups[i]) if i == j else mean_pairwise_cosine(groups[i], groups[j])
    return M


def off_diagonal(M: np.ndarray) -> np.ndarray:
    return M[~np.eye(len(M), dtype=bool)]


# --- App. E: Gaussian-cluster spread ---------------------------------------------------------------------
@dataclass(frozen=True)
class ClusterSpread:
    """Spread of one cluster: ||Cov||_F (sample covariance, ddof = 1) and mean ||x - mean||^2 (1/n).

    For N(mu, Sigma): E||x - mu||^2 = tr Sigma; ||Sigma||_F = sqrt(tr Sigma^2). effective_rank
    = (tr Sigma)^2 / tr Sigma^2 is d for isotropic noise and 1 for noise along one direction.
    """

    size: int
    covariance_frobenius: float
    mean_squared_distance: float
    covariance_trace: float
    top_eigenvalue: float

    @property
    def effective_rank(self) -> float:
        return self.covariance_trace**2 / self.covariance_frobenius**2


def cluster_spread(X: np.ndarray) -> ClusterSpread:
    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    if n < 2:
        raise ValueError(f"a cluster needs at least 2 points for a covariance, got {n}")
    centred = X - X.mean(0)
    # Gram trick: the covariance's nonzero spectrum is that of centred centred^T / (n-1), so d may exceed n.
    small = centred @ centred.T if n <= X.shape[1] else centred.T @ centred
    eigenvalues = np.clip(np.linalg.eigvalsh(small / (n - 1)), 0, None)
    return ClusterSpread(
        size=n,
        covariance_frobenius=float(np.sqrt((eigenvalues**2).sum())),
        mean_squared_distance=float((centred**2).sum() / n),
        covariance_trace=float(eigenvalues.sum()),
        top_eigenvalue=float(eigenvalues.max()),
    )


# --- fitted parameters of P ------------------------------------------------------------------------------
@dataclass(frozen=True)
class FittedParameters:
    """P's parameters fitted to K personas' clusters (SPEC §1.5, Def. C.1), in the model's units.

    Fit: c_i = (mu_{i,+} - mu_{i,-})/2, b = mean_i (mu_{i,+} + mu_{i,-})/2, everything scaled by
    1/mean_i ||c_i|| so the concept vectors have unit norm on average, as the model's unit c_i.
    l_b = ||b||; v^2 = mean over clusters of tr(Cov)/d (the isotropic variance with the same total spread);
    v_top = sqrt(largest covariance eigenvalue), the spread along the worst direction;
    delta: Def. C.1 with e_1 = b/||b|| and e_{c_i} the symmetric (Loewdin) orthonormalisation of the c_i
    projected off e_1; delta_i = sqrt(8 (1 - <c_i/||c_i||, e_{c_i}>)). Loewdin minimises sum_i ||c_i - e_i||^2,
    so this delta is achievable, possibly not the smallest. Lemma C.2 then needs |cos(c_i, c_j)| <= delta.
    Z = K: both tokens (" Yes", " No") occur in every pair's responses (2K counting clusters).
    """

    K: int
    d: int
    Q: int  # training samples per cluster (smallest cluster)
    scale: float  # multiply raw embeddings by this to reach model units
    l_b: float
    v: float
    v_top: float
    delta: float
    concept_norm_range: tuple[float, float]
    max_concept_cosine: float  # max_{i != j} |cos(c_i, c_j)|
    max_concept_shared_cosine: float  # max_i |cos(c_i, b)|

    @property
    def Z_pairs(self) -> int:
        return self.K

    @property
    def Z_clusters(self) -> int:
        return 2 * self.K


def nearest_orthonormal(vectors: np.ndarray) -> np.ndarray:
    """Rows U with U U^T = I closest to `vectors` in Frobenius norm (polar factor: A = P S R^T -> P R^T)."""
    P, _, Rt = np.linalg.svd(np.asarray(vectors, dtype=np.float64), full_matrices=False)
    return P @ Rt


def fit_parameters(clusters: Mapping[str, tuple[np.ndarray, np.ndarray]], Q: int | None = None) -> FittedParameters:
    """Fit (l_b, v, delta, Z) to {persona: (X_plus, X_minus)} (rows are embeddings)."""
    if not clusters:
        raise ValueError("need at least one persona")
    plus = [np.asarray(p, dtype=np.float64) for p, _ in clusters.values()]
    minus = [np.asarray(m, dtype=np.float64) for _, m in clusters.values()]
    d = plus[0].shape[1]
    mu_plus = np.stack([p.mean(0) for p in plus])
    mu_minus = np.stack([m.mean(0) for m in minus])
    C = (mu_plus - mu_minus) / 2
    b = ((mu_plus + mu_minus) / 2).mean(0)
    norms = np.linalg.norm(C, axis=1)
    if not (norms > 0).all():
        raise ValueError("a persona has identical cluster means: no concept direction")
    scale = 1.0 / float(norms.mean())
    spreads = [cluster_spread(X) for X in plus + minus]
    v = scale * float(np.sqrt(np.mean([s.covariance_trace for s in spreads]) / d))
    v_top = scale * float(np.sqrt(max(s.top_eigenvalue for s in spreads)))
    unit_C = C / norms[:, None]
    b_norm = float(np.linalg.norm(b))
    e1 = b / b_norm if b_norm > 0 else np.zeros(d)
    projected = unit_C - np.outer(unit_C @ e1, e1)
    frame = nearest_orthonormal(projected)
    alignment = np.clip(np.abs((unit_C * frame).sum(1)), 0, 1)
    delta = float(np.sqrt(8 * (1 - alignment)).max())
    G = unit_C @ unit_C.T
    K = len(plus)
    return FittedParameters(
        K=K,
        d=d,
        Q=int(min(len(X) for X in plus + minus)) if Q is None else int(Q),
        scale=scale,
        l_b=scale * b_norm,
        v=v,
        v_top=v_top,
        delta=delta,
        concept_norm_range=(float(scale * norms.min()), float(scale * norms.max())),
        max_concept_cosine=float(np.abs(G[~np.eye(K, dtype=bool)]).max()) if K > 1 else 0.0,
        max_concept_shared_cosine=float(np.abs(unit_C @ e1).max()),
    )
