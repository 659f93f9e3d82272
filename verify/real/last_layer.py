"""Last-layer DPO on frozen real features, across the paper's value sets (SPEC §4, App. F; Fig. 5a,b).

Setup as the paper's last-layer runs: beta = 0.01, full-batch Adam with lr 1e-3 for 100 steps, two tokens
(" Yes" = 0, " No" = 1), W initialised at the reference W0, a 90/10 train/test split over the pooled
statements of the K personas (the paper's last-layer script splits the pooled data, not per persona).
The trainer is `verify.training.adam` (reduced form, the DPO loss from `theory.losses` through
`verify.symbolic`).

W0 does not affect any margin: r = beta (y_w - y_l)^T (W - W0) g (§1.3), and Adam's steps depend on W only
through r, so the trajectory of W - W0 is the same for every W0. It only sets the reference probabilities.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import torch

from theory.losses import DPO
from verify.data_model import ClusterSample
from verify.model import PreferenceData
from verify.training import adam, gradient_descent, tau_1, zero_one_risk

YES, NO = 0, 1
PAPER_BETA = 0.01
PAPER_LR = 1e-3
PAPER_STEPS = 100
TEST_FRACTION = 0.1
OPTIMIZERS = ("adam", "gradient_descent")


def theory_step_size(beta: float = PAPER_BETA, steps: int = PAPER_STEPS) -> float:
    """eta with which `steps` gradient-descent steps reach Theorem 4.2's tau_1 for K = 1 (tau = 1/eta, §1.6).

    Used for every K, so the comparison across K is at equal time, where the theory predicts margins ~ 1/K.
    """
    return tau_1(1, beta, 1.0) / steps


@dataclass(frozen=True)
class ValueSetData:
    """The pooled statements of K personas: features (n, d), the persona of each row, and its cluster sign."""

    personas: tuple[str, ...]
    features: np.ndarray
    persona_index: np.ndarray
    matching_yes: np.ndarray

    @property
    def K(self) -> int:
        return len(self.personas)

    def chosen(self) -> np.ndarray:
        """y_w: " Yes" on C_{i,+}, " No" on C_{i,-} (the matching answer)."""
        return np.where(self.matching_yes, YES, NO)

    def rejected(self) -> np.ndarray:
        return np.where(self.matching_yes, NO, YES)


def pool(personas: Sequence[str], features: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray]) -> ValueSetData:
    return ValueSetData(
        tuple(personas),
        np.concatenate([features[p] for p in personas]),
        np.concatenate([np.full(len(features[p]), i) for i, p in enumerate(personas)]),
        np.concatenate([np.asarray(labels[p], dtype=bool) for p in personas]),
    )


def split(n: int, seed: int, test_fraction: float = TEST_FRACTION) -> tuple[np.ndarray, np.ndarray]:
    """A seeded permutation cut into train and test indices (test = round(test_fraction n), at least 1)."""
    if n < 2:
        raise ValueError(f"need at least 2 samples to split, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    n_test = min(n - 1, max(1, int(round(test_fraction * n))))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def _as_test_sample(features: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor, cluster: torch.Tensor) -> ClusterSample:
    # verify.training takes its test set as a ClusterSample; real data have no distribution P or cluster
    # means, so those fields are empty and only features/chosen/rejected (the fields the trainer reads) are set.
    d = features.shape[1]
    return ClusterSample(None, (0,), features[None], cluster[None], chosen[None], rejected[None],
                         features.new_zeros(1, 0, d), None)


@dataclass(frozen=True)
class LastLayerRun:
    K: int
    personas: tuple[str, ...]
    n_train: int
    n_test: int
    steps: np.ndarray
    train_margin: np.ndarray  # mean reward margin over the training set, per recorded step
    test_margin: np.ndarray
    train_accuracy: np.ndarray
    test_accuracy: np.ndarray
    test_error: float  # 1 - accuracy at the last step (Def. 3.1: r <= 0 is an error)
    test_error_interval: tuple[float, float]  # Clopper-Pearson 95%
    train_error: float
    per_persona_test_error: dict[str, float] = field(default_factory=dict)


def train_value_set(data: ValueSetData, seed: int, W0: torch.Tensor, beta: float = PAPER_BETA, lr: float = PAPER_LR,
                    steps: int = PAPER_STEPS, optimizer: str = "adam") -> LastLayerRun:
    """Train the two answer rows of W from W0; train and test margins at every step.

    optimizer "adam": the paper's full-batch Adam with learning rate `lr`; "gradient_descent": the theory's
    dynamics (§1.6), full-batch gradient descent with step size `lr` (see `theory_step_size`).
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    train_idx, test_idx = split(len(data.features), seed)
    G = torch.as_tensor(data.features, dtype=torch.float64)
    yw = torch.as_tensor(data.chosen(), dtype=torch.long)
    yl = torch.as_tensor(data.rejected(), dtype=torch.long)
    cluster = torch.as_tensor(2 * data.persona_index + (~data.matching_yes), dtype=torch.long)
    tr, te = torch.as_tensor(train_idx), torch.as_tensor(test_idx)
    train = PreferenceData(G[tr], yw[tr], yl[tr])
    test = _as_test_sample(G[te], yw[te], yl[te], cluster[te])
    # The problem is a few thousand x 384 doubles; one thread avoids the oversubscription that made the trainer's
    # small batched matmuls ~50x slower on a busy 2-core machine. The thread count changes results at most by rounding.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if optimizer == "adam":
            result = adam(train, beta=beta, steps=steps, loss=DPO, lr=lr, test=test, form="reduced", W0=W0.to(G))
        else:
            result = gradient_descent(train, beta, lr, steps, DPO, test=test, form="reduced", W0=W0.to(G))
    finally:
        torch.set_num_threads(threads)
    r_train, r_test = result.train_margins[0], result.test_margins[0]  # (T, n)
    final_test = r_test[-1]
    risk = zero_one_risk(final_test[None])
    persona_of_test = data.persona_index[test_idx]
    per_persona = {
        p: float((final_test[torch.as_tensor(persona_of_test == i)] <= 0).double().mean())
        for i, p in enumerate(data.personas) if (persona_of_test == i).any()
    }
    return LastLayerRun(
        K=data.K,
        personas=data.personas,
        n_train=len(train_idx),
        n_test=len(test_idx),
        steps=result.times.numpy().astype(int),
        train_margin=r_train.mean(1).numpy(),
        test_margin=r_test.mean(1).numpy(),
        train_accuracy=(r_train > 0).double().mean(1).numpy(),
        test_accuracy=(r_test > 0).double().mean(1).numpy(),
        test_error=float(risk.rate[0]),
        test_error_interval=(float(risk.lower[0]), float(risk.upper[0])),
        train_error=float((r_train[-1] <= 0).double().mean()),
        per_persona_test_error=per_persona,
    )


def reference_rows(d: int, seed: int) -> torch.Tensor:
    """A seeded random W0 for the two answer tokens (2 x d, N(0, 1/d) entries), for encoders without an lm_head."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(2, d, generator=generator, dtype=torch.float64) / np.sqrt(d)
