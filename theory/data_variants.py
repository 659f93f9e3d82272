"""Data-model variants of §1.5 at the level of Lemma 4.1: unequal shares, label noise, per-pair weights.

Everything here is read off Lemma 4.1's sum, Eq. (3) with the GPO weight of §7,

    tau dr_j/dt = (1/N) sum_i beta^2 c_i w(r_i) (y_{w,j} - y_{l,j})^T (y_{w,i} - y_{l,i}) Sigma_ij,

where w(r) = -f'(r) and c_i is pair i's sample weight (c_i = 1 without weights; the weighted form itself is
derived from the chain rule by `derive_weighted_lemma_4_1`). In the idealised model (v = 0, disjoint tokens)
all samples of one group (cluster C_{k,+-}, clean or flipped) have the same feature and tokens, so the sum
collapses to a sum over groups, each counted with its size and mean weight (`idealised_group_sum`). The
variants are substitutions into that one sum:

- unequal shares: value k has p_k N samples, half in each of its clusters;
- label noise: a fraction eta of each cluster has y_w and y_l swapped;
- per-pair weights: the two clusters of value k carry the same mean weight wbar_k.

The weight w is a generic sympy function during the derivation, so every result holds for any margin loss;
`at_weight` puts in a concrete w(r) (an expression in `theory.symbols.r`, e.g. `PreferenceLoss.weight`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import sympy as sp

from theory.closed_forms import idealised_margin, idealised_rate
from theory.lemma_4_1 import generic_loss, printed_margin_dynamics, weights_as_symbols
from theory.model import linear_reward_margin, one_hot, symbolic_instance
from theory.losses import SYMPY_GAVE_UP
from theory.objectives import eliminate_lambert_w, idealised_trajectory
from theory.symbols import K, N, beta, l_b, r, t, tau

# The parameters of the variants. eta is the flip rate of training labels (not a step size here).
share = sp.Symbol("p_k", positive=True)  # value k's share of the N training samples
flip_rate = sp.Symbol("eta", nonnegative=True)  # fraction of pairs with y_w and y_l swapped
mean_weight = sp.Symbol("wbar_k", positive=True)  # mean sample weight on value k's clusters

# The generic GPO weight w(r) = -f'(r) while deriving; `at_weight` replaces it by a concrete one.
generic_weight = sp.Function("w")


def at_weight(expr: sp.Expr, weight: sp.Expr) -> sp.Expr:
    """`expr` with every w(z) of the generic weight replaced by the concrete weight(r) at r = z."""
    x = sp.Dummy("x", real=True)
    return expr.replace(generic_weight, sp.Lambda(x, weight.subs(r, x)))


# --- the idealised Lemma 4.1 sum, by groups ----------------------------------------------------------------
@dataclass(frozen=True)
class SampleGroup:
    """Identical samples of the idealised model: one feature g and one (y_w, y_l), `count` of them, whose
    sample weights average `mean_weight`."""

    name: str
    feature: sp.Matrix
    chosen: int
    rejected: int
    count: sp.Expr
    mean_weight: sp.Expr


@dataclass(frozen=True)
class GroupSum:
    """tau dr/dt of each group from Eq. (3) summed over groups; margins are written through the clean margin
    of their cluster (`margins[name]` is +-r_cluster, as derived from Eq. (2), not assumed)."""

    groups: tuple[SampleGroup, ...]
    margins: dict[str, sp.Expr]
    rates: dict[str, sp.Expr]


def value_groups() -> tuple[SampleGroup, ...]:
    """Value k (tokens 0, 1) with clean and flipped samples in both clusters, and a second value (tokens 2, 3).

    Features are the cluster means of §1.5 with b = l_b e_1, c_k = e_2, c_other = e_3 (v = 0). A flipped
    sample of C_{k,+} has the tokens of C_{k,-}: (y_w, y_l) swapped.
    """
    e = sp.eye(3)
    b, c_k, c_other = l_b * e[:, 0], e[:, 1], e[:, 2]
    n = {name: sp.Symbol(f"n_{name}", nonnegative=True) for name in ("+", "+flip", "-", "-flip", "other")}
    c = {name: sp.Symbol(f"c_{name}", positive=True) for name in n}
    return (
        SampleGroup("+", b + c_k, 0, 1, n["+"], c["+"]),
        SampleGroup("+flip", b + c_k, 1, 0, n["+flip"], c["+flip"]),
        SampleGroup("-", b - c_k, 1, 0, n["-"], c["-"]),
        SampleGroup("-flip", b - c_k, 0, 1, n["-flip"], c["-flip"]),
        SampleGroup("other", b + c_other, 2, 3, n["other"], c["other"]),
    )


# The clean group of each cluster, whose margin names the cluster's margin.
CLUSTER_MARGINS = {"+": sp.Symbol("r_+", real=True), "-": sp.Symbol("r_-", real=True),
                   "other": sp.Symbol("r_o", real=True)}
_CLUSTER_OF = {"+": "+", "+flip": "+", "-": "-", "-flip": "-", "other": "other"}


def idealised_group_sum(groups: Sequence[SampleGroup] | None = None) -> GroupSum:
    """Eq. (3) for a sample of each group, the sum over i collapsed to groups (v = 0: a group's samples are identical).

    Each group's margin comes from Eq. (2)'s linear form beta (y_w - y_l)^T (W - W0) g with a symbolic W and is
    matched to +-1 times its cluster's clean margin; a group that matches neither sign is an error.
    """
    groups = value_groups() if groups is None else tuple(groups)
    V, dim = 1 + max(max(g.chosen, g.rejected) for g in groups), groups[0].feature.shape[0]
    W = sp.Matrix(V, dim, lambda a, k: sp.Symbol(f"W_{a}_{k}", real=True))
    W0 = sp.Matrix(V, dim, lambda a, k: sp.Symbol(f"W0_{a}_{k}", real=True))
    linear = {g.name: sp.expand(linear_reward_margin(W, W0, g.feature, g.chosen, g.rejected)) for g in groups}
    margins = {}
    for g in groups:
        cluster = _CLUSTER_OF[g.name]
        reference = linear[cluster]
        sign = next((s for s in (1, -1) if sp.expand(linear[g.name] - s * reference) == 0), None)
        if sign is None:
            raise ValueError(f"group {g.name}: its margin is not +-1 times the margin of cluster {cluster}")
        margins[g.name] = sign * CLUSTER_MARGINS[cluster]
    direction = lambda g: one_hot(g.chosen, V) - one_hot(g.rejected, V)
    rates = {}
    for j in groups:
        terms = [g.count * g.mean_weight * generic_weight(margins[g.name]) * (direction(j).T * direction(g))[0, 0]
                 * (j.feature.T * g.feature)[0, 0] for g in groups]
        rates[j.name] = sp.expand(beta**2 * sp.Add(*terms) / N)
    return GroupSum(groups, margins, rates)


def symmetric_value(p: sp.Expr = share, eta: sp.Expr = flip_rate, wbar: sp.Expr = mean_weight) -> dict[sp.Symbol, sp.Expr]:
    """Value k's group sizes and weights: p N samples, half per cluster, a fraction eta of each cluster flipped,
    every group with mean weight wbar; both clusters at one margin r."""
    groups = {g.name: g for g in value_groups()}
    half = p * N / 2
    subs = {groups["+"].count: (1 - eta) * half, groups["-"].count: (1 - eta) * half,
            groups["+flip"].count: eta * half, groups["-flip"].count: eta * half,
            CLUSTER_MARGINS["+"]: r, CLUSTER_MARGINS["-"]: r}
    subs.update({groups[name].mean_weight: wbar for name in ("+", "+flip", "-", "-flip")})
    return subs


@dataclass(frozen=True)
class ValueRate:
    """tau dr_k/dt = rate for value k of the idealised model, with the checks of its derivation.

    rate: from the group sum at `symmetric_value`; coefficient: rate / w(r) at eta = 0 (p_k, wbar_k enter here);
    expected_weight: rate / coefficient, the weight a value's margin feels; the residuals are 0 when
    - the other value's groups add nothing (disjoint tokens: sharing factor 0),
    - C_{k,-} moves at the same rate as C_{k,+}, so r_+ = r_- = r is kept by the flow,
    - a flipped sample's margin -r moves at minus the rate.
    """

    rate: sp.Expr
    coefficient: sp.Expr
    expected_weight: sp.Expr
    residuals: dict[str, sp.Expr]

    @property
    def holds(self) -> bool:
        return all(x == 0 for x in self.residuals.values())


def derive_value_rate() -> ValueRate:
    """The rate of one value with share p_k, flip rate eta and mean weight wbar_k, for a generic weight w."""
    total = idealised_group_sum()
    subs = symmetric_value()
    other = [g for g in total.groups if g.name == "other"][0]
    rate = sp.expand(total.rates["+"].subs(subs))
    residuals = {
        "other value's share of the sum": sp.expand(total.rates["+"].diff(other.count)),
        "C_{k,-} rate - C_{k,+} rate": sp.expand(total.rates["-"].subs(subs) - rate),
        "flipped rate + clean rate": sp.expand(total.rates["+flip"].subs(subs) + rate),
    }
    rate = rate.subs(other.count, 0)
    coefficient = sp.factor(sp.expand(rate.subs(flip_rate, 0)) / generic_weight(r))
    expected = sp.collect(sp.expand(sp.simplify(rate / coefficient)), [generic_weight(r), generic_weight(-r)])
    return ValueRate(sp.factor(rate), coefficient, expected, residuals)


# --- the weighted Lemma 4.1 on a symbolic instance ----------------------------------------------------------
@dataclass(frozen=True)
class WeightedLemmaDerivation:
    """tau dr/dt from tau dW/dt = -grad_W (1/N) sum_i c_i f(r_i), against Eq. (3) with c_i w_i for w_i."""

    derived: list[sp.Expr]
    printed: list[sp.Expr]
    residuals: list[sp.Expr]

    @property
    def holds(self) -> bool:
        return all(x == 0 for x in self.residuals)


def derive_weighted_lemma_4_1(vocabulary_size: int = 3, dimension: int = 2,
                              pairs: Sequence[tuple[int, int]] = ((0, 1), (1, 2), (1, 0))) -> WeightedLemmaDerivation:
    """Lemma 4.1 with sample weights c_i, by sympy's chain rule through the full log-softmax (Eq. 2), f generic."""
    instance = symbolic_instance(vocabulary_size, dimension, pairs)
    margins = instance.margins()
    c = sp.symbols(f"c_0:{len(margins)}", positive=True)
    loss = sum(ci * generic_loss(m) for ci, m in zip(c, margins)) / len(margins)
    flow = [-sp.diff(loss, w) for w in instance.weight_symbols]
    derived = [sum(sp.diff(m, w) * f for w, f in zip(instance.weight_symbols, flow)) for m in margins]
    w_symbols = sp.symbols(f"w_0:{len(margins)}", real=True)
    derived = [weights_as_symbols(e, margins, w_symbols) for e in derived]
    printed = printed_margin_dynamics(instance, [ci * wi for ci, wi in zip(c, w_symbols)])
    residuals = []
    for a, b in zip(derived, printed):
        difference = sp.expand(sp.expand_log(a - b, force=True))
        residuals.append(sp.Integer(0) if difference == 0 else sp.simplify(difference))
    return WeightedLemmaDerivation(derived, printed, residuals)


# --- the three variants ---------------------------------------------------------------------------------------
def _latex_block(title: str, rows: Sequence[tuple[str, sp.Basic]]) -> str:
    lines = [rf"\textbf{{{title}}}", r"\begin{align*}"]
    lines += [rf"&{left} = {sp.latex(right)}\\" for left, right in rows]
    lines.append(r"\end{align*}")
    return "\n".join(lines)


def _time_ratio(rate_coefficient: sp.Expr) -> sp.Expr:
    """How much faster than the equal split (tau r' = (2 beta^2/K) w(r), `closed_forms.idealised_rate`) a value runs."""
    return sp.simplify(rate_coefficient / idealised_rate())


def _scaled_trajectory(weight: sp.Expr, ratio: sp.Expr) -> sp.Expr | None:
    """The equal-split idealised trajectory of this weight at time ratio * t (None where sympy finds none)."""
    _, trajectory = idealised_trajectory(weight)
    return None if trajectory is None else trajectory.subs(t, ratio * t)


def _ode_residual(trajectory: sp.Expr, rate: sp.Expr) -> sp.Expr:
    """tau r'(t) - rate(r(t)), simplified; Lambert W terms W(z) are eliminated through z = W e^W as in
    `closed_forms.verify_idealised_margin`."""
    residual = tau * sp.diff(trajectory, t) - rate.subs(r, trajectory)
    eliminated = eliminate_lambert_w(residual, trajectory, t)
    return residual if eliminated is None else eliminated


@dataclass(frozen=True)
class UnequalShares:
    """Value k with share p_k of N (idealised model, no flips, no weights): tau dr_k/dt = 2 beta^2 p_k w(r_k).

    rate: tau dr_k/dt from the Lemma 4.1 group sum; time_ratio: rate / equal-split rate = K p_k, so value k's
    margin is the equal-split margin at time K p_k t; trajectory: that margin (DPO: u - W_0(e^u), u = 1 + 2 beta^2
    p_k t/tau) or None; residuals: the group-sum checks, the equal split p_k = 1/K against
    `closed_forms.idealised_rate`, and the trajectory's ODE residual and r(0).
    """

    weight: sp.Expr
    rate: sp.Expr
    time_ratio: sp.Expr
    trajectory: sp.Expr | None
    residuals: dict[str, sp.Expr]

    @property
    def holds(self) -> bool:
        return all(x == 0 for x in self.residuals.values())

    def latex(self) -> str:
        rows = [(r"\tau\,\dot r_k", self.rate), (r"\text{time ratio to the equal split}", self.time_ratio)]
        if self.trajectory is not None:
            rows.append((r"r_k(t)", self.trajectory))
        return _latex_block("Unequal shares (Lemma 4.1, Eq. (3), idealised model)", rows)


def derive_unequal_shares(weight: sp.Expr) -> UnequalShares:
    value = derive_value_rate()
    coefficient = value.coefficient.subs(mean_weight, 1)
    rate = coefficient * weight
    ratio = _time_ratio(coefficient)
    residuals = dict(value.residuals)
    residuals["equal split p_k = 1/K vs closed_forms.idealised_rate"] = sp.simplify(
        coefficient.subs(share, 1 / K) - idealised_rate())
    trajectory = _scaled_trajectory(weight, ratio)
    if trajectory is not None:
        residuals["trajectory ODE residual"] = _ode_residual(trajectory, rate)
        residuals["trajectory r(0)"] = sp.simplify(trajectory.subs(t, 0))
    return UnequalShares(weight, rate, ratio, trajectory, residuals)


def dpo_share_margin() -> sp.Expr:
    """DPO's idealised margin of a value with share p_k: the closed form of `closed_forms` at time K p_k t."""
    coefficient = derive_value_rate().coefficient.subs(mean_weight, 1)
    return idealised_margin().subs(t, _time_ratio(coefficient) * t)


@dataclass(frozen=True)
class LabelNoise:
    """A fraction eta of pairs with y_w, y_l swapped (idealised model, equal shares p_k).

    expected_weight: (1 - eta) w(r) - eta w(-r), derived twice, from one pair's gradient (`flipped_pair_weight`)
    and from the group sum (a residual compares them); rate: tau dr/dt = 2 beta^2 p_k times it; fixed_points: its real roots for
    0 < eta < 1/2 (DPO: log((1 - eta)/eta)); slopes: d r*/d eta by implicit differentiation (DPO: -1/(eta(1 - eta)));
    contractions: minus d(expected weight)/dr at r* (DPO: eta(1 - eta)), the rate at which r approaches r* per unit
    of s = 2 beta^2 p_k t/tau; limits: r* as eta -> 0+ (DPO: oo, no saturation) and eta -> 1/2- (0).
    """

    weight: sp.Expr
    expected_weight: sp.Expr
    rate: sp.Expr
    fixed_points: tuple[sp.Expr, ...]
    slopes: tuple[sp.Expr, ...]
    contractions: tuple[sp.Expr, ...]
    limits: tuple[tuple[sp.Expr | None, sp.Expr | None], ...]  # each r* as eta -> 0+ and eta -> 1/2-
    residuals: dict[str, sp.Expr]

    @property
    def holds(self) -> bool:
        return all(x == 0 for x in self.residuals.values())

    @property
    def fixed_point(self) -> sp.Expr | None:
        """The fixed point reached from r(0) = 0: the one root with r* >= 0 where it is unique, else None."""
        ahead = [p for p in self.fixed_points if _nonnegative_on_noise_range(p)]
        return ahead[0] if len(ahead) == 1 else None

    def latex(self) -> str:
        rows = [(r"\mathbb E[w]", self.expected_weight), (r"\tau\,\dot r", self.rate)]
        rows += [(rf"r^*_{{{i}}}", p) for i, p in enumerate(self.fixed_points)]
        rows += [(rf"\frac{{\partial r^*_{{{i}}}}}{{\partial\eta}}", s) for i, s in enumerate(self.slopes)]
        rows += [(rf"\lim_{{\eta\to 0^+}} r^*_{{{i}}}", low) for i, (low, _) in enumerate(self.limits) if low is not None]
        return _latex_block("Label noise (Lemma 4.1, Eq. (3), idealised model)", rows)


# Points of 0 < eta < 1/2 at which a candidate root is checked to be real and >= 0.
_NOISE_SAMPLE_POINTS = (sp.Rational(1, 100), sp.Rational(1, 10), sp.Rational(1, 4), sp.Rational(49, 100))


def _nonnegative_on_noise_range(root: sp.Expr) -> bool:
    return all(_real_value(root, x) is not None and _real_value(root, x) >= 0 for x in _NOISE_SAMPLE_POINTS)


def _real_value(root: sp.Expr, eta_value: sp.Rational) -> float | None:
    """root at eta = eta_value as a float, or None where it is not a finite real number."""
    value = sp.N(root.subs(flip_rate, eta_value), 30)
    return float(value) if value.is_real and value.is_finite else None


def flipped_pair_weight() -> sp.Expr:
    """The expected weight of one pair whose labels are swapped with probability eta, from the chain rule.

    One feature g, tokens (0, 1); the swapped pair is (1, 0). L = (1 - eta) f(r_clean) + eta f(r_swapped);
    -grad_W L is a multiple of grad_W r_clean, and the multiple, with f' = -w and each margin written as
    +-r_clean (as Eq. (2) gives it, checked), is the expected weight.
    """
    instance = symbolic_instance(2, 1, [(0, 1), (1, 0)])
    clean, swapped = (sp.expand(linear_reward_margin(instance.W, instance.W0, instance.features[0], *p))
                      for p in instance.pairs)
    loss = (1 - flip_rate) * generic_loss(clean) + flip_rate * generic_loss(swapped)
    entry = instance.W[0, 0]
    multiple = -sp.diff(loss, entry) / sp.diff(clean, entry)
    multiple = multiple.replace(lambda e: isinstance(e, sp.Subs), lambda e: -generic_weight(e.point[0]))

    def in_r(call):
        for sign in (1, -1):
            if sp.expand(call.args[0] - sign * clean) == 0:
                return generic_weight(sign * r)
        raise ValueError(f"a margin of the swapped pair is not +-r_clean: {call.args[0]}")

    multiple = sp.expand(multiple.replace(lambda e: isinstance(e, sp.Function) and e.func == generic_weight, in_r))
    if multiple.free_symbols - {r, flip_rate}:
        raise ValueError(f"the expected weight depends on more than r and eta: {multiple}")
    return multiple


def derive_label_noise(weight: sp.Expr) -> LabelNoise:
    value = derive_value_rate()
    from_sum = value.expected_weight
    from_pair = flipped_pair_weight()
    expected = at_weight(sp.collect(from_pair, [generic_weight(r), generic_weight(-r)]), weight)
    coefficient = value.coefficient.subs(mean_weight, 1)
    residuals = dict(value.residuals)
    residuals["group-sum weight - one-pair weight"] = sp.expand(from_sum - from_pair)
    try:
        candidates = sp.solve(expected, r)
    except SYMPY_GAVE_UP:  # no closed form (kinks, transcendental mixes): the numeric side finds r* itself
        candidates = []
    roots = tuple(sp.simplify(p) for p in candidates if all(_real_value(p, x) is not None for x in _NOISE_SAMPLE_POINTS))
    for i, p in enumerate(roots):
        residuals[f"expected weight at r*_{i}"] = sp.simplify(expected.subs(r, p))
    slopes = tuple(sp.simplify((-sp.diff(expected, flip_rate) / sp.diff(expected, r)).subs(r, p)) for p in roots)
    contractions = tuple(sp.simplify(-sp.diff(expected, r).subs(r, p)) for p in roots)
    limits = tuple((_limit(p, 0, "+"), _limit(p, sp.Rational(1, 2), "-")) for p in roots)
    return LabelNoise(weight, expected, coefficient * expected, roots, slopes, contractions, limits, residuals)


def _limit(expr: sp.Expr, point: sp.Expr, direction: str) -> sp.Expr | None:
    try:
        return sp.limit(expr, flip_rate, point, direction)
    except SYMPY_GAVE_UP:
        return None


@dataclass(frozen=True)
class PairWeights:
    """Per-pair sample weights c_i (TRL's sample weights; the loss is (1/N) sum_i c_i f(r_i)).

    lemma: the weighted Lemma 4.1 (c_i multiplies -f'(r_i)), derived by the chain rule; rate: in the idealised
    model with the mean weight wbar_k on both clusters of value k, tau dr_k/dt = 2 beta^2 p_k wbar_k w(r_k);
    weight_ratio: rate / unweighted rate = wbar_k.
    """

    weight: sp.Expr
    lemma: WeightedLemmaDerivation
    rate: sp.Expr
    weight_ratio: sp.Expr
    residuals: dict[str, sp.Expr]

    @property
    def holds(self) -> bool:
        return self.lemma.holds and all(x == 0 for x in self.residuals.values())

    def latex(self) -> str:
        i, j = sp.symbols("i j", integer=True)
        w_i = sp.Indexed(sp.IndexedBase("w"), i)
        c_i = sp.Indexed(sp.IndexedBase("c"), i)
        C = sp.Function("C")(sp.Indexed(sp.IndexedBase("x"), i), sp.Indexed(sp.IndexedBase("x"), j))
        lemma = sp.Sum(beta**2 * c_i * w_i * C, (i, 1, N)) / N
        return _latex_block("Per-pair weights (Lemma 4.1, Eq. (3))",
                            [(r"\tau\,\dot r_j", lemma), (r"\tau\,\dot r_k\ \text{(idealised)}", self.rate),
                             (r"\text{rate ratio to unweighted}", self.weight_ratio)])


def derive_pair_weights(weight: sp.Expr) -> PairWeights:
    value = derive_value_rate()
    rate = value.coefficient * weight
    ratio = sp.simplify(value.coefficient / value.coefficient.subs(mean_weight, 1))
    return PairWeights(weight, derive_weighted_lemma_4_1(), rate, ratio, dict(value.residuals))
