"""Mutation testing of the claims: falsified copies of the paper's statements, each aimed at one claim.

A mutant is a modified copy of a real object that a claim's check reads: a `Statement` (a conclusion or an
assumption changed, with `dataclasses.replace`), a loss, a table of printed formulas, or a theory function.
It carries the parameters at which the change is detectable. Running it puts the copy in place of the
original wherever the claim can reach it (every module-level binding of the original in `theory` and `verify`,
and the statement bound into the claim's check), runs the claim, and restores everything. It is killed when
the verdict is one of its `kills`: violated or discrepancy, or only violated where the unmutated verdict is
already a discrepancy (eq-5: the printed Eq. (5) is one by design).

`EQUIVALENT` holds changes that are not false at any point a check can reach (true statements): they are run
and listed as surviving, never counted. A check that refutes one of them would be wrong.

Nothing here imports torch: the targets are named by module and resolved when a mutant runs.
"""
from __future__ import annotations

import functools
import importlib
import math
import sys
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping
from unittest import mock

import sympy as sp

from theory.symbols import K as K_sym, Z as Z_sym, beta as beta_sym, delta as delta_sym, r as r_sym
from verify.parameters import ParameterError
from verify.verdicts import Status, Verdict

KILLING = frozenset({Status.VIOLATED, Status.DISCREPANCY})
ONLY_VIOLATED = frozenset({Status.VIOLATED})
_PROJECT_PACKAGES = ("theory", "verify")


@dataclass(frozen=True)
class Mutant:
    """One falsified statement aimed at one claim.

    target: "module:name" (or "module:Class.attribute") of the real object; `change` maps it to the mutated
    copy. `overrides` are the parameters (on top of the claim's profile) at which the change is detectable,
    and `detectable` says why there. `kills`: the verdicts that count as a kill.
    """

    id: str
    claim: str
    target: str
    change: Callable[[Any], Any]
    description: str
    detectable: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    kills: frozenset = KILLING


@dataclass(frozen=True)
class MutantResult:
    mutant: Mutant
    verdict: Verdict
    seconds: float

    @property
    def killed(self) -> bool:
        return self.verdict.status in self.mutant.kills

    def evidence(self, width: int = 220) -> str:
        """The verdict's status and summary, shortened, and the proof-step counterexamples if any."""
        text = f"{self.verdict.status.value}: {self.verdict.summary}"
        tally = self.verdict.proof_step
        suffix = f" [proof step: {tally.counterexamples}/{tally.event_held} counterexamples]" if tally else ""
        if len(text) + len(suffix) > width:
            text = text[: max(0, width - len(suffix) - 3)] + "..."
        return text + suffix


# --- how copies are made ---------------------------------------------------------------------------------
def conclusion_changed(name: str, change: Callable[[sp.Expr], sp.Expr]) -> Callable:
    """A copy of a Statement with conclusion `name` replaced by change(conclusion)."""
    def mutate(statement):
        return replace(statement, conclusions={**statement.conclusions, name: change(statement.conclusions[name])})
    return mutate


def assumption_dropped(name: str) -> Callable:
    """A copy of a Statement without assumption `name`."""
    def mutate(statement):
        if name not in statement.assumptions:
            raise KeyError(f"{statement.name} has no assumption {name!r}")
        return replace(statement, assumptions={k: rel for k, rel in statement.assumptions.items() if k != name})
    return mutate


def entry_changed(key: str, change: Callable[[Any], Any]) -> Callable:
    """A copy of a dict with entry `key` replaced by change(entry)."""
    return lambda table: {**table, key: change(table[key])}


def _exponent_scaled(factor) -> Callable[[sp.Expr], sp.Expr]:
    """exp(-E) -> exp(-factor E) in a risk bound."""
    return lambda bound: bound.replace(sp.exp, lambda argument: sp.exp(factor * argument))


def _min_dropped(expr: sp.Expr) -> sp.Expr:
    """min(1, x) -> 1: the Bernstein term of Lemma B.1 without its small-epsilon branch."""
    return expr.replace(lambda e: isinstance(e, sp.Min), lambda e: sp.Integer(1))


# --- theory functions, changed ------------------------------------------------------------------------------
def _margin_without_beta(original):
    return lambda W, W0, g, y_w, y_l, beta=beta_sym: original(W, W0, g, y_w, y_l, beta=1)


def _margin_without_reference(original):
    return lambda W, W0, g, y_w, y_l, beta=beta_sym: original(W, sp.zeros(*W0.shape), g, y_w, y_l, beta=beta)


def _dynamics_with_beta(original):
    return lambda instance, weights: [e / beta_sym for e in original(instance, weights)]


def _dynamics_with_negated_weights(original):
    return lambda instance, weights: original(instance, [-w for w in weights])


def _velocity_with_beta(original):
    return lambda margins, M, beta, tau, *rest, **kw: original(margins, M, beta, tau, *rest, **kw) / beta


def _velocity_with_negated_weights(original):
    return lambda margins, M, beta, tau, *rest, **kw: -original(margins, M, beta, tau, *rest, **kw)


def _ipo_target_flipped(losses):
    from theory.losses import PreferenceLoss

    return {**losses, "ipo": PreferenceLoss("ipo", losses["ipo"].f.subs(r_sym, -r_sym))}  # (r - 1)^2 -> (r + 1)^2


def _cap_tenth(original):
    return lambda *args, **kwargs: original(*args, **kwargs) / 10


def _Q_min_minus_one(original):
    def samples_per_value(*args, **kwargs):
        result = original(*args, **kwargs)
        return replace(result, Q_min=result.Q_min - 1)
    return samples_per_value


def _Q_min_from_the_other_root(original):
    from theory.scaling_law import MINIMUM_Q

    def samples_per_value(*args, **kwargs):
        result = original(*args, **kwargs)
        return replace(result, Q_min=max(MINIMUM_Q, math.ceil(result.other_root_value)))
    return samples_per_value


def _last_token_missing(original):
    return lambda self, i, j, side: sp.Integer(0) if j == self.length - 1 else original(self, i, j, side)


def _token_reward_reversed(original):
    return lambda W, W0, g, y, beta=beta_sym: original(W0, W, g, y, beta=beta)


def _printed_sharing_flipped(table):
    from theory.individual_rewards import shares_rejected

    return {**table, "printed": table["printed"].subs(shares_rejected, -shares_rejected)}


def _log_ratio_without_softmax(table):
    from theory.individual_rewards import prob_chosen, prob_rejected

    return {**table, "log_ratio": table["log_ratio"].subs({prob_chosen: 0, prob_rejected: 0})}


def _bracket_without(symbol_name: str):
    def mutate(brackets):
        from theory import multi_token as mt

        symbol = getattr(mt, symbol_name)
        return {reading: bracket.subs(symbol, 0) for reading, bracket in brackets.items()}
    return mutate


def _law_noise_variance_halved(statement):
    """The tight law with the training noise's variance v^2/(2Q) halved: nu x sqrt 2 and omega^2 x 2."""
    c = statement.conclusions
    return replace(statement, conclusions={**c, "gaussian_mean": sp.sqrt(2) * c["gaussian_mean"],
                                           "chi_noncentrality": 2 * c["chi_noncentrality"]})


def _law_risk_at(factor):
    """The tight law's risk_bound Phi(-q) -> Phi(-factor q): its exponent q^2/2 times factor^2."""
    from theory.tight_risk_law import q

    return conclusion_changed("risk_bound", lambda e: e.subs(q, factor * q))


# --- points ---------------------------------------------------------------------------------------------------
# Lemma B.1 at a noise level where its Bernstein term binds (eps < d v): K = 2, Q = 20 (the union bound's K Q^2
# sets how large eps must be), v = 1/2, d = 100, eps = v sqrt(12 d), so that exponent is 12 and the stated
# probability is 0.90 at c = 1; the Gram deviations (about 13) lie inside 2 eps v = 17.3 and outside eps v = 8.7.
_B1_SIZE = dict(K=2, Q=20, trials=8, v_contrast=0.0, l_b_outside=0.0)
_B1_BERNSTEIN_POINT = dict(d=100, v=0.5, epsilon=float(0.5 * math.sqrt(1200)), **_B1_SIZE)
# v = 1, d = 100, eps = 15: deviations (about 50) beyond 2 eps v = 30; the true probability is negative
# (Bernstein exponent c eps^2/(d v^2) = 2.25), without the min it would be 15 and the probability 0.98.
_B1_WIDE_POINT = dict(d=100, v=1.0, epsilon=15.0, **_B1_SIZE)
# Beyond the Remark's eps <= 1/(16 v (Z+2)): at eps = 3000 the bound's exponent eps^2/(2(1 + l_b^2 + d v^2 + 2 eps v))
# exceeds -ln R of the trained model, so R > bound, and Lemma B.1's event (half-width 2 eps v) holds.
_LARGE_EPSILON = dict(epsilon=3000.0)

_REMARK = "eps <= 1/(16 v (Z+2))"

# The tight risk law, at one point of its claim: inside Theorem 4.3's assumptions (chain tokens, Z = 2) or at the
# sweep's fixed noise v = 1/2, d = 130.
_TIGHT_LAW = "theory.tight_risk_law:TIGHT_RISK_LAW"
_TIGHT_INSIDE = dict(points="inside-chain")
_TIGHT_FIXED_NOISE = dict(points="fixed-noise-d130")

MUTANTS: tuple[Mutant, ...] = (
    # §3, Eq. (2)
    Mutant("eq-2/without-beta", "eq-2", "theory.model:linear_reward_margin", _margin_without_beta,
           "the linear margin (y_w - y_l)^T (W - W0) g without its factor beta",
           "symbolic: the residual against Eq. (2) is (beta - 1) times the margin"),
    Mutant("eq-2/without-reference", "eq-2", "theory.model:linear_reward_margin", _margin_without_reference,
           "the linear margin with W in place of W - W0 (reference dropped)",
           "symbolic: the residual is beta (y_w - y_l)^T W0 g"),
    # §4.1, Lemma 4.1
    Mutant("lemma-4.1/beta-not-squared", "lemma-4.1", "theory.lemma_4_1:printed_margin_dynamics", _dynamics_with_beta,
           "Eq. (3) with beta in place of beta^2", "symbolic: the chain rule gives beta^2"),
    Mutant("lemma-4.1/weight-sign", "lemma-4.1", "theory.lemma_4_1:printed_margin_dynamics",
           _dynamics_with_negated_weights, "Eq. (3) with the weight -f'(r_i) replaced by f'(r_i)",
           "symbolic: the residual is twice the printed right-hand side"),
    Mutant("lemma-4.1/velocity-beta", "lemma-4.1", "verify.model:margin_velocity", _velocity_with_beta,
           "the numeric Eq. (3), (beta/(N tau)) M w(r), with beta for beta^2",
           "numeric: at beta = 0.9 the velocity is off by 11% against autograd (tolerance 1e-12)"),
    Mutant("lemma-4.1/velocity-weight-sign", "lemma-4.1", "verify.model:margin_velocity",
           _velocity_with_negated_weights, "the numeric Eq. (3) with the weight's sign flipped",
           "numeric: autograd's dr/dt has the opposite sign"),
    # §7, GPO weights
    Mutant("sec7-gpo/dpo-weight-sigma-r", "sec7-gpo", "theory.losses:PRINTED_WEIGHTS",
           entry_changed("dpo", lambda weight: weight.subs(r_sym, -r_sym)),
           "§7's printed DPO weight sigma(r) instead of sigma(-r)", "symbolic: -f'(r) of -log sigma(r) is sigma(-r)"),
    Mutant("sec7-gpo/ipo-target-flipped", "sec7-gpo", "theory.losses:PAPER_LOSSES", _ipo_target_flipped,
           "the IPO loss (r + 1)^2 instead of (r - 1)^2", "symbolic: its weight -2(r + 1) is not the printed 2(1 - r)"),
    # §4.1, Theorem 4.2 (its stated probability is negative at quick sizes: only the proof step and the
    # derivations can refute it there)
    Mutant("theorem-4.2/r_U-x0.5", "theorem-4.2", "theory.training_guarantee:THEOREM_4_2",
           conclusion_changed("r_U", lambda e: e / 2), "r_U halved",
           "derivation: r_U(tau_1) = log(3)/2, not the cap log 3 (the margins, about r_U/5, stay below it)"),
    Mutant("theorem-4.2/tau_1-x3", "theorem-4.2", "theory.training_guarantee:THEOREM_4_2",
           conclusion_changed("tau_1", lambda e: 3 * e), "tau_1 tripled",
           "derivation: r_U(3 tau_1) = 3 log 3, so tau_1 is not where r_U reaches log 3"),
    Mutant("theorem-4.2/r_L-x20", "theorem-4.2", "theory.training_guarantee:THEOREM_4_2",
           conclusion_changed("r_L", lambda e: 20 * e), "r_L x 20",
           "proof step: 20 r_L(tau_1) = log(3)/2 lies above the trained margins (about log(3)/5) on Lemma B.1's event"),
    Mutant("theorem-4.2/lemma-b2-upper-third", "theorem-4.2", "theory.training_guarantee:LEMMA_B2",
           conclusion_changed("upper_rate", lambda e: e / 3), "Lemma B.2's upper rate divided by 3",
           "proof step: tau dr/dt (within 20% of the true upper rate) exceeds it on Lemma B.1's event"),
    # App. B, Theorem B.3 (stated probability 0.95 at its default v)
    Mutant("theorem-b.3/r_U-x0.5", "theorem-b.3", "theory.training_guarantee:THEOREM_B3",
           conclusion_changed("r_U", lambda e: e / 2), "r_U halved", "derivation: r_U(tau_1) = log(3)/2"),
    Mutant("theorem-b.3/r_L-x20", "theorem-b.3", "theory.training_guarantee:THEOREM_B3",
           conclusion_changed("r_L", lambda e: 20 * e), "r_L x 20",
           "every trial leaves the envelope (3/3 against an allowed 5%) and the proof step fails on the event"),
    Mutant("theorem-b.3/lemma-b2-lower-x3", "theorem-b.3", "theory.training_guarantee:LEMMA_B2",
           conclusion_changed("lower_rate", lambda e: 3 * e), "Lemma B.2's lower rate x 3",
           "proof step: tau dr/dt (within 20% of the true lower rate) falls below it on Lemma B.1's event"),
    # App. C, Theorem C.5
    Mutant("theorem-c.5/r_U-x0.5", "theorem-c.5", "theory.training_guarantee:THEOREM_C5",
           conclusion_changed("r_U", lambda e: e / 2), "r_U halved", "derivation: r_U(tau_1) = log(3)/2"),
    Mutant("theorem-c.5/tau_1-x3", "theorem-c.5", "theory.training_guarantee:THEOREM_C5",
           conclusion_changed("tau_1", lambda e: 3 * e), "tau_1 tripled", "derivation: r_U(3 tau_1) = 3 log 3"),
    Mutant("theorem-c.5/r_L-x20", "theorem-c.5", "theory.training_guarantee:THEOREM_C5",
           conclusion_changed("r_L", lambda e: 20 * e), "r_L x 20",
           "20 r_L(tau_1) = log(3)/4 lies above the trained margins: every trial, on Lemma C.3's event"),
    # §4.2, Theorem 4.3: its bound lies ~7000 decades above the exact risk at quick sizes, so only a bound
    # beyond the measured rate e^{-Q/0.0029} can be refuted
    Mutant("theorem-4.3/exponent-1000Q", "theorem-4.3", "theory.generalization:THEOREM_4_3",
           conclusion_changed("risk_bound", _exponent_scaled(45_000)), "risk bound 2KQ^2 e^{-1000 Q} (exponent Q/45 x 45000)",
           "exact risk: ln R ~ -1.6e4 > ln bound ~ -4e4 at Q = 40, on Lemma B.1's event (proof step)"),
    # App. B, Theorem B.4
    Mutant("theorem-b.4/remark-epsilon-dropped", "theorem-b.4", "theory.generalization:THEOREM_B4",
           assumption_dropped(_REMARK), f"Theorem B.4 without its assumption {_REMARK}",
           "at eps = 3000 the bound falls below the exact risk (the unmutated claim reports assumptions-unmet there)",
           _LARGE_EPSILON),
    Mutant("theorem-b.4/bound-e-1e6", "theorem-b.4", "theory.generalization:THEOREM_B4",
           conclusion_changed("risk_bound", lambda e: e * sp.exp(-10**6)), "risk bound x e^{-10^6}",
           "exact risk: ln R ~ -3.7e5 at the quick point, above ln bound ~ -1e6"),
    # App. C, Theorem C.6
    Mutant("theorem-c.6/remark-epsilon-dropped", "theorem-c.6", "theory.generalization:THEOREM_C6",
           assumption_dropped(_REMARK), f"Theorem C.6 without its assumption {_REMARK}",
           "at eps = 3000 the bound falls below the exact risk", _LARGE_EPSILON),
    Mutant("theorem-c.6/bound-e-1e6", "theorem-c.6", "theory.generalization:THEOREM_C6",
           conclusion_changed("risk_bound", lambda e: e * sp.exp(-10**6)), "risk bound x e^{-10^6}",
           "exact risk: ln R ~ -3.9e5 at the quick point, above ln bound ~ -1e6"),
    # App. B, Lemma B.1
    Mutant("lemma-b.1/half-width-halved", "lemma-b.1", "theory.concentration:LEMMA_B1",
           conclusion_changed("half_width", lambda e: e / 2), "half-width eps v instead of 2 eps v",
           "at v = 0.5, d = 100, eps = 17.3 (stated probability 0.90): deviations ~13 lie between eps v and 2 eps v",
           _B1_BERNSTEIN_POINT),
    Mutant("lemma-b.1/bernstein-min-dropped", "lemma-b.1", "theory.concentration:LEMMA_B1",
           conclusion_changed("success_probability", _min_dropped),
           "the Bernstein term exp(-(c eps/v) min(1, eps/(d v))) without the min",
           "at v = 1, d = 100, eps = 15 it claims probability 0.98; every trial leaves the half-width 30",
           _B1_WIDE_POINT),
    # App. C, Lemma C.2
    Mutant("lemma-c.2/delta-halved", "lemma-c.2", "theory.concentration:LEMMA_C2",
           conclusion_changed("inner_product_bound", lambda e: e / 2), "|<c_i1, c_i2>| <= delta/2",
           "the worst-case tilt reaches 2 cos sin = 0.296 > 0.15 at delta = 0.3"),
    Mutant("lemma-c.2/worst-sine-delta-half", "lemma-c.2", "theory.concentration:LEMMA_C2",
           conclusion_changed("sine_of_worst_angle", lambda e: delta_sym / 2), "sin xi printed as delta/2",
           "derivation: sin xi = sqrt(delta^2/4 - delta^4/64), not delta/2"),
    # §4.2, scaling law
    Mutant("scaling-law/Q_min-minus-1", "scaling-law", "theory.scaling_law:samples_per_value", _Q_min_minus_one,
           "Q_min(K) - 1", "table: the bound exceeds delta at Q_min - 1"),
    Mutant("scaling-law/lambert-w0-root", "scaling-law", "theory.scaling_law:samples_per_value",
           _Q_min_from_the_other_root, "Q_min from the W_0 root (where the bound still rises)",
           "table: the bound is far above delta at Q = 40"),
    Mutant("scaling-law/bound-exponent-Q/40", "scaling-law", "theory.generalization:THEOREM_4_3",
           conclusion_changed("risk_bound", _exponent_scaled(sp.Rational(45, 40))),
           "Theorem 4.3's bound with e^{-Q/40}", "table: Q_min(K) from e^{-Q/45} is not minimal for e^{-Q/40}"),
    # §7 failure mode
    Mutant("sec7-failure-mode/threshold-2^(1/beta)", "sec7-failure-mode", "theory.failure_mode:FAILURE_MODE",
           conclusion_changed("threshold", lambda e: e.subs(sp.Integer(3), sp.Integer(2))), "threshold 2^{1/beta}",
           "proof step: where r <= log 3 binds (t_s), pairs with rho just above 2^{1/beta} flip"),
    Mutant("sec7-failure-mode/cap-log3-over-10", "sec7-failure-mode", "theory.failure_mode:margin_cap", _cap_tenth,
           "Theorem 4.2's cap r(tau_1) <= log(3)/10", "the trained margins reach about log(3)/5 at tau_1"),
    # §4.3, Eq. (4)
    Mutant("eq-4/last-token-missing", "eq-4", "theory.multi_token:MultiTokenInstance.token_reward",
           _last_token_missing, "Eq. (4)'s sum without its last token's term",
           "symbolic: the residual is the last tokens' rewards"),
    Mutant("eq-4/reward-reversed", "eq-4", "theory.multi_token:token_reward", _token_reward_reversed,
           "token reward beta (log S(W0 g) - log S(W g))^T y (sign flipped)", "symbolic: the residual is twice the margin"),
    # §4.3, Eq. (5): already a discrepancy as printed; a mutant must make even the corrected reading fail
    Mutant("eq-5/without-d_p", "eq-5", "theory.multi_token:EQ5_BRACKET", _bracket_without("output_correlation"),
           "Eq. (5)'s bracket without d_p (both readings of p)",
           "numeric: neither reading matches autograd (violated, not the printed discrepancy)", kills=ONLY_VIOLATED),
    Mutant("eq-5/without-co-occurrence", "eq-5", "theory.multi_token:EQ5_BRACKET", _bracket_without("co_occurrence"),
           "Eq. (5)'s bracket without y^T y_s^(j)", "numeric: neither reading matches autograd", kills=ONLY_VIOLATED),
    # §7, individual-response rewards
    Mutant("sec7-individual-rewards/rejected-sign", "sec7-individual-rewards",
           "theory.individual_rewards:SHARING_FACTOR", _printed_sharing_flipped,
           "§7's factor y_{s,j}^T (y_w,i + y_l,i) instead of (y_w,i - y_l,i)",
           "numeric: the logit reward's rate no longer matches autograd"),
    Mutant("sec7-individual-rewards/log-ratio-softmax-dropped", "sec7-individual-rewards",
           "theory.individual_rewards:SHARING_FACTOR", _log_ratio_without_softmax,
           "the log-ratio reward's rate without its softmax term",
           "numeric: the log-probability ratio's rate no longer matches autograd"),
    # beyond the paper, the tight risk law: inside the assumptions its bound lies a few decades above R ~ 1e-5930
    Mutant("tight-risk-law/exponent-doubled", "tight-risk-law", _TIGHT_LAW, _law_risk_at(sp.sqrt(2)),
           "risk bound Phi(-sqrt(2) q) ~ e^{-q^2} instead of Phi(-q) ~ e^{-q^2/2}",
           "every trial's exact risk (log10 R ~ -5925) lies above the squared bound (~ -11840); the re-derivation "
           "Phi(-q) disagrees", _TIGHT_INSIDE),
    Mutant("tight-risk-law/exponent-halved", "tight-risk-law", _TIGHT_LAW, _law_risk_at(1 / sp.sqrt(2)),
           "risk bound Phi(-q/sqrt 2) ~ e^{-q^2/4}: looser, still above R",
           "re-derivation: a cluster with standardised margin q has risk Phi(-q), not Phi(-q/sqrt 2)", _TIGHT_INSIDE),
    Mutant("tight-risk-law/cross-cluster-terms-dropped", "tight-risk-law", _TIGHT_LAW,
           conclusion_changed("worst_direction_norm", lambda e: e.subs(Z_sym, 1)),
           "worst |m~|^2 of disjoint tokens (4) for shared ones: the neighbours' concepts no longer turn the direction",
           "with a chain (Z = 2) the bound falls about 3000 decades below R in every trial", _TIGHT_INSIDE),
    Mutant("tight-risk-law/union-bound-dropped", "tight-risk-law", _TIGHT_LAW,
           conclusion_changed("union_level", lambda e: e * 2 * K_sym), "level delta' per cluster, not delta'/(2K)",
           "inside the assumptions the risk is the worst cluster's: 8 of 36 trials exceed the bound (allowed 5%)",
           _TIGHT_INSIDE),
    Mutant("tight-risk-law/noise-dimensions-dropped", "tight-risk-law", _TIGHT_LAW,
           conclusion_changed("chi_degrees", lambda e: sp.Integer(1)), "the chi's d - 1 degrees replaced by 1",
           "at d = 130, v = 1/2 the law puts z near 2 against the measured 1.66: every trial exceeds the bound",
           _TIGHT_FIXED_NOISE),
    Mutant("tight-risk-law/noise-variance-halved", "tight-risk-law", _TIGHT_LAW, _law_noise_variance_halved,
           "the averaged training noise's variance v^2/(4Q) instead of v^2/(2Q)",
           "at d = 130, v = 1/2 most trials exceed the bound and the calibration of z is rejected", _TIGHT_FIXED_NOISE),
)

EQUIVALENT: tuple[Mutant, ...] = (
    Mutant("theorem-4.3/bound-divided-by-10", "theorem-4.3", "theory.generalization:THEOREM_4_3",
           conclusion_changed("risk_bound", lambda e: e / 10), "risk bound / 10",
           "true: inside the assumptions ln R ~ -Q/0.003 (benchmarks/empirical_constant.md), thousands of decades "
           "below; outside them the verdict is assumptions-unmet"),
    Mutant("theorem-4.3/exponent-Q/4", "theorem-4.3", "theory.generalization:THEOREM_4_3",
           conclusion_changed("risk_bound", _exponent_scaled(sp.Rational(45, 4))), "risk bound 2KQ^2 e^{-Q/4}",
           "true: the measured rate e^{-Q/0.003} is faster than e^{-Q/4} at every Q inside the assumptions"),
    Mutant("theorem-b.4/bound-divided-by-10", "theorem-b.4", "theory.generalization:THEOREM_B4",
           conclusion_changed("risk_bound", lambda e: e / 10), "risk bound / 10",
           "true: the bound lies about 1.6e5 decades above the exact risk at the quick point"),
    Mutant("theorem-4.2/r_L-x2", "theorem-4.2", "theory.training_guarantee:THEOREM_4_2",
           conclusion_changed("r_L", lambda e: 2 * e), "r_L x 2",
           "true on Lemma B.1's event: Lemma B.2's sandwich gives tau dr/dt >= 5 beta^2/(16 K) = 2.5 x r_L's slope "
           "while r in [0, log 3]"),
    Mutant("lemma-c.2/assumption-widened", "lemma-c.2", "theory.concentration:LEMMA_C2",
           assumption_dropped("delta < 1/2 (Def. C.1)"), "Lemma C.2 without delta < 1/2",
           "true: sin xi <= delta/2 gives |<c_1, c_2>| <= delta for every delta (worst case 0.79 at delta = 0.9)",
           dict(delta=0.9)),
    Mutant("tight-risk-law/union-level-halved", "tight-risk-law", _TIGHT_LAW,
           conclusion_changed("union_level", lambda e: e / 2), "level delta'/(4K): a more conservative bound",
           "true: a union bound at half the level holds with probability >= 1 - delta'/2", _TIGHT_INSIDE),
)


# --- running ------------------------------------------------------------------------------------------------
def _resolve(target: str) -> tuple[Any, str]:
    module_name, _, path = target.partition(":")
    owner: Any = importlib.import_module(module_name)
    *parents, attribute = path.split(".")
    for name in parents:
        owner = getattr(owner, name)
    if not hasattr(owner, attribute):
        raise AttributeError(f"mutant target {target!r} does not exist")
    return owner, attribute


def _bindings(original: Any) -> list[tuple[Any, str]]:
    """Every module-level name in `theory` and `verify` bound to `original`."""
    out = []
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] not in _PROJECT_PACKAGES or name == __name__:
            continue
        out += [(module, attribute) for attribute, value in list(vars(module).items()) if value is original]
    return out


@contextmanager
def applied(mutant: Mutant):
    """The mutated copy in place of the original for the duration; yields (original, mutated)."""
    from verify.claims import all_claims

    all_claims()  # the claim modules' bindings exist before they are searched
    owner, attribute = _resolve(mutant.target)
    original = getattr(owner, attribute)
    mutated = mutant.change(original)
    bindings = [(owner, attribute)] + [(m, name) for m, name in _bindings(original) if (m, name) != (owner, attribute)]
    with ExitStack() as stack:
        for where, name in bindings:
            stack.enter_context(mock.patch.object(where, name, mutated))
        yield original, mutated


def _check_with(check: Callable, original: Any, mutated: Any) -> Callable:
    """The claim's check, with `original` replaced by `mutated` where the check has it bound (a partial)."""
    if isinstance(check, functools.partial) and any(a is original for a in check.args):
        return functools.partial(check.func, *(mutated if a is original else a for a in check.args), **check.keywords)
    return check


def _parameters(mutant: Mutant, quick: bool) -> dict:
    from verify.claims import get_claim

    return get_claim(mutant.claim).parameters(quick, **mutant.overrides)


def run_mutant(mutant: Mutant, quick: bool = True, seed: int = 0) -> MutantResult:
    """The claim's verdict with the mutant in place, at the mutant's parameters."""
    from verify.claims import get_claim

    claim = get_claim(mutant.claim)
    parameters = _parameters(mutant, quick)
    started = time.perf_counter()
    with applied(mutant) as (original, mutated):
        verdict = _check_with(claim.check, original, mutated)(seed=seed, **parameters)
    return MutantResult(mutant, verdict, time.perf_counter() - started)


def run_control(mutant: Mutant, quick: bool = True, seed: int = 0) -> Verdict:
    """The unmutated claim at the mutant's parameters: a kill must be due to the mutation."""
    from verify.claims import get_claim

    return get_claim(mutant.claim).check(seed=seed, **_parameters(mutant, quick))


def select(only: str | None) -> tuple[list[Mutant], list[Mutant]]:
    """(falsified, equivalent) mutants named in `only` (comma-separated mutant ids or claim ids); all for None."""
    if only is None:
        return list(MUTANTS), list(EQUIVALENT)
    names = [name.strip() for name in only.split(",")]
    every = MUTANTS + EQUIVALENT
    known = {m.id for m in every} | {m.claim for m in every}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ParameterError(f"--only {only!r}: no mutant or claim {', '.join(repr(n) for n in unknown)}; give "
                             f"comma-separated mutant ids or claim ids (listed by 'dpo-verify mutate --list')")
    chosen = lambda mutants: [m for m in mutants if m.id in names or m.claim in names]
    return chosen(MUTANTS), chosen(EQUIVALENT)
