"""What a sweep can run: any registered claim, or an experiment defined here.

A trial is a pure function of (target, parameters, seed): it returns a JSON-ready dict, and the same
inputs give the same dict in any process (float64, torch generators seeded from the seed only). That is
what makes resume, and local-vs-Ray comparisons, exact.

Experiment `empirical-scaling` (SPEC §2.3, Theorem 4.3): one trial trains the implicit reward model by
gradient flow to Theorem 4.2's tau_1 on one draw of P with Q samples per cluster, and counts test errors
(Def. 3.1: margin <= 0) as the cross-check of its exact population risk (`verify.exact_risk`, log10). Two regimes:
- `inside`: v = 1/(32 sqrt Q) (the theorem's boundary), everything else inside Theorem 4.3's assumptions
  except possibly Q >= 40 and d <= 5Q, which are reported per trial (`assumptions_unmet`);
- `fixed-v`: v as given, whatever Q.
A group (K, regime, ...) passes at Q when the mean of its seeds' exact risks is below delta (for results
stored without an exact risk: when the pooled errors have a 95% Clopper–Pearson upper bound below delta),
and, for `inside`, the assumptions hold: `passes`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from verify.parameters import COMMON, Parameter, resolve_parameters, vocabulary
from verify.verdicts import clopper_pearson


@dataclass(frozen=True)
class Experiment:
    """A trial function `run(seed=..., **parameters) -> dict` with defaults, and an optional pass criterion
    `passes(results, parameters) -> bool` over a group's trials (used by a sweep's [search]). `specs` declares
    every parameter and `footprint` estimates the bytes a trial allocates, as for claims."""

    id: str
    description: str
    run: Callable[..., dict]
    defaults: dict[str, Any] = field(default_factory=dict)
    passes: Callable[[list[dict], dict], bool] | None = None
    specs: Mapping[str, Parameter] = field(default_factory=dict)
    footprint: Callable[[Mapping[str, Any]], int] | None = None

    def parameters(self, **overrides) -> dict[str, Any]:
        """The defaults with the overrides, every value checked against `specs`."""
        return resolve_parameters(f"experiment {self.id}", self.specs, self.footprint, self.defaults, overrides)


REGIMES = ("inside", "fixed-v")


def dimension_rules(K: int) -> dict[str, int]:
    return {"2K+2": 2 * K + 2, "K+1": K + 1}


def dimension(d, K: int) -> int:
    """d as an integer, or the rule '2K+2' / 'K+1' (the smallest d holding b and K orthogonal c_i)."""
    if isinstance(d, int) and not isinstance(d, bool):
        return d
    rules = dimension_rules(K)
    if d not in rules:
        raise ValueError(f"d must be an integer or one of {sorted(rules)}, got {d!r}")
    return rules[d]


def empirical_scaling_trial(seed: int, regime: str, K: int, Q: int, v: float, l_b: float, d, tokens: str,
                            beta: float, tau: float, test_size: int, delta: float) -> dict:
    from theory.generalization import THEOREM_4_3
    from theory.numbers import float_at_most
    from verify.data_model import DiverseValueDistribution, token_layout
    from verify.exact_risk import exact_risk
    from verify.training import margins_at_tau_1, tau_1

    if regime not in REGIMES:
        raise ValueError(f"regime must be one of {REGIMES}, got {regime!r}")
    d = dimension(d, K)
    if regime == "inside":
        v = float_at_most(THEOREM_4_3.v_boundary(Q))  # the largest float the exact assumption accepts
    dist = DiverseValueDistribution(K, d, float(v), l_b, tokens=token_layout(tokens, K))
    test = dist.test_set([seed], test_size)
    result = margins_at_tau_1(dist.sample([seed], Q), beta, tau, test=test)
    exact = exact_risk(dist, [seed], result.rows, result.delta_rows, beta)
    wrong = result.test_margins[0, -1] <= 0
    errors = int(wrong.sum())
    per_cluster = torch.bincount(test.cluster[0][wrong], minlength=2 * K)
    unmet = THEOREM_4_3.unmet(Z=dist.Z_pairs, d=d, v=v, Q=Q, l_b=l_b)
    # JSON has no -inf: a risk of exactly 0 (v = 0) or a log that left float range is stored as None with the reason
    log10_risk = float(exact.log10_risk[0])
    return {"log10_risk": log10_risk if math.isfinite(log10_risk) else None,
            "log10_risk_underflow": bool(exact.log_underflow[0]),
            "errors": errors, "n": test_size, "risk": errors / test_size,
            "risk_upper": float(clopper_pearson(errors, test_size)[1]),
            "worst_cluster_errors": int(per_cluster.max()), "v": float(v), "d": d, "tau_1": tau_1(K, beta, tau),
            "train_margin_min": float(result.train_margins[0, -1].min()), "assumptions_unmet": unmet}


def _log10_exact_risk(result: dict) -> float | None:
    """A trial's exact log10 R, -inf for R = 0 or below float range, None where the trial has none (a result
    stored before the exact risk was recorded)."""
    if "log10_risk" not in result:
        return None
    return -math.inf if result["log10_risk"] is None else float(result["log10_risk"])


def empirical_scaling_passes(results: list[dict], parameters: dict) -> bool:
    """The mean of the seeds' exact risks < delta (computed in log space); where a result has no exact risk,
    the pooled Monte Carlo errors' 95% CP upper bound < delta. `inside` also needs the assumptions."""
    if parameters["regime"] == "inside" and any(r["assumptions_unmet"] for r in results):
        return False
    logs = [_log10_exact_risk(r) for r in results]
    if results and all(x is not None for x in logs):
        finite = [x for x in logs if math.isfinite(x)]
        if not finite:
            return True
        peak = max(finite)
        log10_mean = peak + math.log10(sum(10.0 ** (x - peak) for x in finite) / len(logs))
        return log10_mean < math.log10(parameters["delta"])
    errors, n = sum(r["errors"] for r in results), sum(r["n"] for r in results)
    return clopper_pearson(errors, n)[1] < parameters["delta"]


def _sleep_trial(seed: int, seconds: float, value: float, Q: int, threshold: int) -> dict:
    """A test double: a pure function of (seed, value, Q) that takes `seconds`; passes from Q = threshold on."""
    import time

    time.sleep(seconds)
    return {"value": value * (seed + 1) + Q, "seed": seed}


def _scaling_footprint(p) -> int:
    d = dimension(p["d"], p["K"])
    return 8 * (2 * p["K"] * p["Q"] * d * 12 + p["test_size"] * d * 4)


EXPERIMENTS = {
    "empirical-scaling": Experiment(
        "empirical-scaling", "risk at tau_1 on P against Q, per K (Theorem 4.3's scaling law, measured)",
        empirical_scaling_trial,
        dict(regime="fixed-v", K=1, Q=8, v=0.5, l_b=0.5, d="2K+2", tokens="disjoint", beta=1.0, tau=1.0,
             test_size=20000, delta=0.05),
        empirical_scaling_passes,
        vocabulary(regime=Parameter("choice", "inside: v at Theorem 4.3's boundary; fixed-v: the given v", choices=REGIMES),
                   d=Parameter("dimension", "feature dimension, or a rule in K", 1, 10**5, choices=tuple(dimension_rules(1))),
                   delta=Parameter("real", "target risk of the search's pass criterion", 0, 1, low_open=True, high_open=True)),
        _scaling_footprint),
    "sleep": Experiment("sleep", "test double: sleeps, returns value * (seed + 1) + Q", _sleep_trial,
                        dict(seconds=0.0, value=1.0, Q=1, threshold=1), lambda results, p: p["Q"] >= p["threshold"],
                        dict(seconds=Parameter("real", "sleep per trial", 0, 3600), value=Parameter("real", "returned scale", -1e6, 1e6),
                             Q=COMMON["Q"], threshold=Parameter("int", "smallest passing Q", 1, 10**7))),
}


def resolve_target(target: str):
    """'experiment:ID' or 'claim:ID' -> (kind, id, defaults); raises ValueError naming the known ids."""
    kind, sep, name = target.partition(":")
    if not sep or kind not in ("experiment", "claim"):
        raise ValueError(f"target must be 'experiment:ID' or 'claim:ID', got {target!r}")
    if kind == "experiment":
        if name not in EXPERIMENTS:
            raise ValueError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
        return kind, name, EXPERIMENTS[name].defaults
    from verify.claims import get_claim

    return kind, name, get_claim(name).defaults


def check_point(target: str, point: dict, quick: bool = False) -> dict:
    """The values of `point` checked against the target's declared parameters (the same validator as the CLI)."""
    kind, name, _ = resolve_target(target)
    if kind == "experiment":
        full = EXPERIMENTS[name].parameters(**point)
    else:
        from verify.claims import get_claim

        full = get_claim(name).parameters(quick, **point)
    return {key: full[key] for key in point}


def run_trial(target: str, parameters: dict, seed: int, quick: bool = False) -> dict:
    """One trial, in whatever process: the unit both executors ship."""
    kind, name, _ = resolve_target(target)
    if kind == "experiment":
        experiment = EXPERIMENTS[name]
        return experiment.run(seed=seed, **experiment.parameters(**parameters))
    from verify.claims import get_claim

    return get_claim(name).run(quick=quick, seed=seed, **parameters).to_dict()
