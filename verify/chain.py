"""The numeric side of `theory.chain`: a chain's Theorem 4.2 and 4.3 for a new loss, checked by the same
claim machinery as the paper's (gradient flow with that loss, the envelope with Lemma B.2's proof step, the
exact population risk), on the quick profiles of `theorem-4.2` and `theorem-4.3`; and the chain over grids of
losses, shares and flip rates, for notebook 06."""
from __future__ import annotations

import math
from dataclasses import dataclass

import sympy as sp

from theory.chain import DataVariant, TheoremChain, margin_chain
from theory.losses import DPO
from verify.verdicts import Verdict

# The quick profiles of the paper's claims (verify/claims/training_guarantee.py, generalization.py).
ENVELOPE_PROFILE = dict(K=2, Q=80, d=4, v=None, l_b=0.25, tau=1.0, tokens="chain", trials=3, c=1.0,
                        v_outside=0.0, grid=5, Z_reading="pairs")
RISK_PROFILE = dict(K=2, Q=40, d=4, v=None, l_b=0.25, tau=1.0, tokens="chain", trials=3, test_size=1000, c=1.0,
                    v_outside=0.0, Z_reading="pairs")


def check_chain(chain: TheoremChain, beta: float, seed: int = 0) -> list[Verdict]:
    """Verdicts for the chain's derived statements, as far as the chain got."""
    from verify.claims.generalization import check_generalization
    from verify.claims.training_guarantee import check_training_guarantee

    verdicts = []
    envelope = chain.envelope_statement
    if envelope is not None:
        verdicts.append(check_training_guarantee(envelope, f"chain:{chain.loss.name}:envelope", seed,
                                                 beta=beta, loss=chain.loss, derived_elsewhere=True,
                                                 **ENVELOPE_PROFILE))
    if chain.risk_statement is not None:
        verdicts.append(check_generalization(chain.risk_statement, f"chain:{chain.loss.name}:risk", seed, beta=beta,
                                             loss=chain.loss, training=envelope,
                                             end_margin=sp.N(chain.values["r_end"], 17), **RISK_PROFILE))
    return verdicts


# --- the variants, over a grid (notebook 06) ----------------------------------------------------------------
@dataclass(frozen=True)
class ChainRow:
    """One loss's chain on both routes: where it stops, or its end margin and Q_min(K) at delta."""

    loss: str
    stopped_at: str | None
    r_end: float | None
    end_ratio: sp.Expr | None
    Q_min_paper: int | None
    Q_min_tight: int | None


def chain_table(losses, K: int = 10, delta=sp.Rational(1, 20)) -> list[ChainRow]:
    rows = []
    for loss in losses:
        paper, tight = margin_chain(loss, "paper"), margin_chain(loss, "tight")
        if not paper.complete:
            rows.append(ChainRow(loss.name, paper.stopped_at, None, None, None, None))
            continue
        rows.append(ChainRow(loss.name, None, float(paper.values["r_end"]), paper.values["end_ratio"],
                             paper.samples_per_value(K, delta).Q_min,
                             tight.samples_per_value(K, delta).Q_min if tight.complete else None))
    return rows


@dataclass(frozen=True)
class MinorityShare:
    """Two values with shares (1 - p, p): whether the chain covers the minority, and the N it then needs."""

    share: sp.Rational
    covered: bool
    samples_needed: float  # 2 Q_min(K) / p where covered, nan where the proof stops
    stopped_at: str | None


def minority_shares(loss=DPO, shares=None, delta=sp.Rational(1, 20), route: str = "paper") -> list[MinorityShare]:
    """The per-value risk bound needs the value's own count Q_k = p N / 2 >= Q_min(K): N >= 2 Q_min(K) / p."""
    shares = shares or [sp.Rational(i, 100) for i in range(30, 51, 2)]
    rows = []
    for p in shares:
        chain = margin_chain(loss, route, DataVariant(shares=(1 - p, p)))
        if chain.complete:
            needed = float(2 * chain.samples_per_value(2, delta).Q_min / p)
        else:
            needed = math.nan
        rows.append(MinorityShare(p, chain.complete, needed, chain.stopped_at))
    return rows


@dataclass(frozen=True)
class LabelNoisePoint:
    flip_rate: sp.Rational
    fixed_point: float  # r*(eta), where the expected weight vanishes
    covered: bool  # the chain goes through at this eta


def label_noise_points(loss=DPO, flip_rates=None, route: str = "paper") -> list[LabelNoisePoint]:
    from theory.data_variants import derive_label_noise, flip_rate

    flip_rates = flip_rates or [sp.Rational(i, 100) for i in range(2, 50, 4)]
    (root, *_) = derive_label_noise(loss.weight).fixed_points
    return [LabelNoisePoint(eta, float(root.subs(flip_rate, eta)),
                            margin_chain(loss, route, DataVariant(flip_rate=eta)).complete) for eta in flip_rates]


def simulated_saturation(flip_rate: float, loss=DPO, horizon: float = 150.0, seed: int = 0) -> float:
    """The clean-orientation mean margin of the variant's trainer (v = 0, K = 2) at `horizon` (beta = tau = 1)."""
    from verify.data_model import DiverseValueDistribution
    from verify.data_variants import simulate

    run = simulate(DiverseValueDistribution(2, 8, 0.0, 0.5), 10, [0.0, horizon], flip_rate=flip_rate, loss=loss,
                   seeds=(seed,))
    return float(run.value_means[0, -1].mean())
