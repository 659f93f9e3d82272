"""Theorems 4.2 and 4.3 for any margin loss f: the proof of App. B with sigma(-r) replaced by w(r) = -f'(r).

Lemma 4.1 holds for every f with the weight w(r) = -f'(r) (§7). The rest of the proof uses the weight at
three places (SPEC §3), and each is redone here for the given w:

1. **The sandwich** (Lemma B.2, proof of Theorem 4.2 step 2). The paper keeps every margin in [0, log 3],
   where sigma(-r) lies in [1/4, 1/2]. log 3 is where DPO's weight has fallen to half its start,
   sigma(-log 3) = sigma(0)/2. The analogue for w is the end margin r_end, the first r > 0 with
   w(r_end) = w(0)/2, and the sandwich is [w_min, w_max], the range of w on [0, r_end].
2. **The envelope** (steps 3-4). The slopes of r_L and r_U are the sandwich's bounds on tau dr/dt. Two
   routes are derived:
   - `paper`: the constants of the paper's own proof. The lower slope is step 3 with the weights kept,
     (beta^2 / 2K) (2 w_min - I w_max), where the interference I = Z l_b^2 + 4 (Z+2) eps v is bounded by
     the theorem's conditions (I <= 1/2). Step 4 prints only its result, 5 beta^2/K at w_max = 1/2; the
     bound is linear in w_max, so the paper's upper slope for w is 5 beta^2/K * w_max / (1/2).
   - `tight`: Lemma B.2's display (`theory.training_guarantee.LEMMA_B2`) at its worst admissible corner,
     with s_min = w_min and s_max = w_max.
3. **The end of training** tau_1: r_U(tau_1) = r_end; there r_L(tau_1) = r_end * slope_L / slope_U.
4. **The test margin** (proof of Theorem 4.3, step 4): a test margin's drift stays positive on [0, tau_1]
   when 2 w_min - I_test w_max > 0, with I_test the interference at the proof's eps <= 1/(8 v (Z+2)).
   When it does, the test sample is ranked correctly outside the Gaussian tail event, whose probability
   2KQ^2 exp(-eps^2 / (2 D)) does not involve w: the risk bound and Q_min(K) follow as in Theorem 4.3.
   The paper's route bounds D = 1 + l_b^2 + d v^2 + 2 eps v by 5/2 and gets kappa = 45; the tight route
   takes the exact minimum over the admissible corners (`theory.generalization.refined_exponent_after_remark`).

Where a step does not go through for w, the chain stops there and says why: w(0) <= 0, a kink where the
sandwich would need a subgradient, a weight that never halves, a zero of w inside the envelope, or a
sandwich too wide for the lower slope or the test-margin drift to stay positive.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import mpmath
import sympy as sp

from theory.generalization import THEOREM_4_3, refined_exponent_after_remark
from theory.losses import DPO, SYMPY_GAVE_UP, PreferenceLoss
from theory.scaling_law import MINIMUM_Q, BoundShape, samples_per_value
from theory.statements import REMARK_EPSILON, Statement, compact
from theory.symbols import K, N, Q, Z, beta, d, epsilon, l_b, r, t, tau, v
from theory.training_guarantee import LEMMA_B2, THEOREM_4_2, s_max, s_min

ROUTES = ("paper", "tight")
# The largest r searched for r_end or a kink when sympy cannot solve in closed form; the weights met in
# practice halve within a few units of r (DPO: log 3; TRL's IPO at beta = 0.1: 1/2).
SEARCH_LIMIT = 1000
SEARCH_POINTS = 4000
NUMERIC_DPS = 30

_KINKS = (sp.Heaviside, sp.sign, sp.Abs, sp.Max, sp.Min, sp.Piecewise)


@dataclass(frozen=True)
class ChainStep:
    """One step of the proof for this w: what it gives, and whether the proof goes on from it."""

    name: str
    results: dict[str, sp.Expr]
    goes_through: bool
    note: str

    def lines(self) -> list[str]:
        mark = "" if self.goes_through else "   <- the chain stops here"
        out = [f"{self.name}{mark}"]
        out += [f"    {key} = {compact(value) if isinstance(value, sp.Basic) else value}" for key, value in self.results.items()]
        if self.note:
            out.append(f"    {self.note}")
        return out

    def latex(self) -> list[str]:
        return [rf"{_latex_key(key)} &= {sp.latex(value) if isinstance(value, sp.Basic) else value}"
                for key, value in self.results.items()]


def _latex_key(key: str) -> str:
    return r"\text{" + key.replace("_", r"\_") + "}"


# --- step 1: the sandwich ----------------------------------------------------------------------------------
def _numeric(weight: sp.Expr):
    return sp.lambdify(r, weight, "mpmath")


def kinks(weight: sp.Expr) -> list[sp.Expr]:
    """The r > 0 where w has a kink or a jump: zeros of the arguments of Heaviside, sign, Abs, and the
    switching points of Max, Min and Piecewise conditions, sorted."""
    points = set()
    for node in weight.atoms(*_KINKS) | set(weight.find(lambda e: isinstance(e, _KINKS))):
        if isinstance(node, (sp.Max, sp.Min)):
            args = node.args
            equations = [args[i] - args[j] for i in range(len(args)) for j in range(i + 1, len(args))]
        elif isinstance(node, sp.Piecewise):
            equations = [c.lhs - c.rhs for _, c in node.args if isinstance(c, sp.core.relational.Relational)]
        else:
            equations = [node.args[0]]
        for equation in equations:
            try:
                roots = sp.solveset(equation, r, sp.Interval.open(0, sp.oo))
            except SYMPY_GAVE_UP:
                continue
            if isinstance(roots, sp.FiniteSet):
                points |= {p for p in roots if p.is_real}
    return sorted(points, key=lambda p: float(p))


def _first_crossing(weight: sp.Expr, level: sp.Expr) -> tuple[sp.Expr | None, str]:
    """The smallest r > 0 with w(r) = level: exactly where sympy solves it, else by a sign change on a grid
    up to SEARCH_LIMIT refined by bisection. Returns (None, why) where there is none."""
    try:
        roots = sp.solveset(sp.Eq(weight, level), r, sp.Interval.open(0, sp.oo))
    except SYMPY_GAVE_UP:
        roots = None
    if roots is sp.S.EmptySet:
        return None, "w(r) = w(0)/2 has no solution r > 0 (solved exactly)"
    if isinstance(roots, sp.FiniteSet) and all(p.is_real for p in roots):
        return min(roots, key=lambda p: float(p)), "solved exactly"
    w = _numeric(weight - level)
    with mpmath.workdps(NUMERIC_DPS):
        grid = [mpmath.mpf(SEARCH_LIMIT) * i / SEARCH_POINTS for i in range(1, SEARCH_POINTS + 1)]
        values = [w(x) for x in grid]
        previous_x, previous = mpmath.mpf(0), w(mpmath.mpf(0))
        for x, value in zip(grid, values):
            if value == 0:
                return sp.Float(x, NUMERIC_DPS), "found numerically"
            if (previous > 0) != (value > 0):
                root = mpmath.findroot(w, (previous_x, x), solver="bisect")
                return sp.Float(root, NUMERIC_DPS), f"found numerically (bisection to {NUMERIC_DPS} digits)"
            previous_x, previous = x, value
    return None, f"w(r) stays above w(0)/2 for 0 < r <= {SEARCH_LIMIT} (searched numerically)"


def weight_range(weight: sp.Expr, end: sp.Expr) -> tuple[sp.Expr, sp.Expr, str]:
    """min and max of w on [0, end]: at the ends and at the zeros of w' inside, exactly where sympy finds
    them, else from a grid refined at its extremes."""
    inside = sp.Interval.open(0, end)
    try:
        critical = sp.solveset(sp.diff(weight, r), r, inside)
    except SYMPY_GAVE_UP:
        critical = None
    if isinstance(critical, sp.FiniteSet) or critical is sp.S.EmptySet:
        candidates = [weight.subs(r, x) for x in (sp.Integer(0), end, *critical)]
        values = [c if c.is_Float else sp.simplify(c) for c in candidates]
        return min(values, key=float), max(values, key=float), "exact (ends and zeros of w')"
    w = _numeric(weight)
    with mpmath.workdps(NUMERIC_DPS):
        e = mpmath.mpf(sp.N(end, NUMERIC_DPS))
        values = [w(e * i / SEARCH_POINTS) for i in range(SEARCH_POINTS + 1)]
    return sp.Float(min(values), NUMERIC_DPS), sp.Float(max(values), NUMERIC_DPS), \
        f"numeric (w on {SEARCH_POINTS + 1} points of [0, r_end])"


# --- step 2: the slopes of the envelope ------------------------------------------------------------------
# The interference of Theorem 4.2's step 3: token sharing Z l_b^2 and the noise 2 (2Z+4) eps v.
INTERFERENCE = Z * l_b**2 + 4 * (Z + 2) * epsilon * v
PROOF_EPSILON = 1 / (8 * v * (Z + 2))  # the eps the proof of Theorem 4.3 uses (SPEC §3, Theorem 4.3 step 4)


def interference_bound(eps: sp.Expr) -> sp.Expr:
    """max of I under Z <= 1/(4 l_b^2) at the given eps: I increases in Z l_b^2 and in eps."""
    return sp.simplify(INTERFERENCE.subs(epsilon, eps).subs(Z, 1 / (4 * l_b**2)))


def paper_lower_slope(w_min: sp.Expr, w_max: sp.Expr) -> sp.Expr:
    """tau dr_L/dt of Theorem 4.2's step 3 with the weights kept: (beta^2/2K)(2 w_min - I w_max)."""
    return beta**2 / (2 * K) * (2 * w_min - interference_bound(REMARK_EPSILON) * w_max)


def paper_upper_slope(w_max: sp.Expr) -> sp.Expr:
    """Step 4's printed slope, linear in the weight bound: (tau dr_U/dt of Theorem 4.2) * w_max / max sigma."""
    printed = sp.diff(THEOREM_4_2.conclusions["r_U"], t) * tau
    return printed * w_max / DPO.weight.subs(r, 0)


def tight_slopes(w_min: sp.Expr, w_max: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """Lemma B.2's sandwich at its worst admissible corner (N = 2KQ, interference and d v^2 at their largest
    under Theorem 4.2's conditions; the upper one at Q = 1, where it is largest)."""
    A, B, D = sp.symbols("A B D", nonnegative=True)  # (2Z+4) eps v, l_b^2 Z, d v^2
    generic = lambda e: sp.simplify(e.subs(N, 2 * K * Q).subs({s_min: w_min, s_max: w_max})
                                    .subs(epsilon, A / ((2 * Z + 4) * v)).subs(l_b, sp.sqrt(B / Z)).subs(d, D / v**2))
    lower = generic(LEMMA_B2.conclusions["lower_rate"]).subs({A: sp.Rational(1, 8), B: sp.Rational(1, 4), D: 0})
    worst_D = sp.Integer(5) / 32**2  # d <= 5Q, v <= 1/(32 sqrt Q)
    upper = generic(LEMMA_B2.conclusions["upper_rate"]).subs({A: sp.Rational(1, 8), B: sp.Rational(1, 4), D: worst_D})
    return sp.simplify(lower), sp.simplify(upper.subs(Q, 1))


# --- step 4: the risk exponent ---------------------------------------------------------------------------
def risk_kappa(route: str) -> tuple[sp.Expr, str]:
    """kappa with risk <= 2 K Q^2 exp(-Q/kappa): the paper's route (D <= 5/2, (Z+2)^2 <= 36) or the exact
    minimum of Theorem B.4's exponent over the admissible corners."""
    derivation = refined_exponent_after_remark(32)
    if route == "tight":
        return derivation.numbers["Q / minimum exponent"], "exact minimum over the admissible (Z, l_b), d = 5Q"
    paper_D, largest_D = derivation.numbers["paper's bound on it"], derivation.numbers["max of 1 + l_b^2 + d v^2 + 2 eps v"]
    Z_max = sp.Integer(4)  # Z <= 1/(4 l_b^2) with l_b >= 1/4
    eps = REMARK_EPSILON.subs(v, 1 / (32 * sp.sqrt(Q))).subs(Z, Z_max)
    kappa = sp.simplify(Q / (eps**2 / (2 * paper_D)))
    return kappa, f"D = 1 + l_b^2 + d v^2 + 2 eps v <= {paper_D} (its exact maximum is {largest_D}), Z + 2 <= 6"


# --- the chain ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TheoremChain:
    """The proof of Theorems 4.2-4.3 redone for one weight w(r); `steps` end where the proof stops."""

    loss: PreferenceLoss
    route: str
    steps: tuple[ChainStep, ...]
    stopped_at: str | None
    values: dict[str, sp.Expr] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.stopped_at is None

    @cached_property
    def envelope_statement(self) -> Statement | None:
        """Theorem 4.2 for this loss: same assumptions and probability, this w's envelope and tau_1."""
        if "tau_1" not in self.values:
            return None
        return Statement(
            name=f"Theorem 4.2 [{self.loss.name}, {self.route}]",
            reference="theory/chain.py: Theorem 4.2's proof with sigma(-r) replaced by -f'(r)",
            assumptions=dict(THEOREM_4_2.assumptions),
            conclusions={"r_L": self.values["slope_L"] * t / tau, "r_U": self.values["slope_U"] * t / tau,
                         "tau_1": self.values["tau_1"],
                         "success_probability": THEOREM_4_2.conclusions["success_probability"]},
            notes=(f"r_end = {self.values['r_end']}: w(r_end) = w(0)/2.",),
        )

    @cached_property
    def risk_statement(self) -> Statement | None:
        """Theorem 4.3 for this loss (the risk bound, where the test-margin step goes through)."""
        if "kappa" not in self.values:
            return None
        return Statement(
            name=f"Theorem 4.3 [{self.loss.name}, {self.route}]",
            reference="theory/chain.py: Theorem 4.3's proof with sigma(-r) replaced by -f'(r)",
            assumptions=dict(THEOREM_4_3.assumptions),
            conclusions={"risk_bound": 2 * K * Q**2 * sp.exp(-Q / self.values["kappa"]),
                         "success_probability": THEOREM_4_3.conclusions["success_probability"]},
        )

    def samples_per_value(self, K_value, delta_value=sp.Rational(1, 20)):
        """Q_min(K) at target risk delta by the Lambert W route of `theory.scaling_law`."""
        if self.risk_statement is None:
            return None
        shape = BoundShape(self.risk_statement.name, self.risk_statement.conclusions["risk_bound"], sp.Integer(1),
                           self.values["kappa"])
        return samples_per_value(K_value, delta_value, shape)

    def report_lines(self, K_values=(10,), delta_value=sp.Rational(1, 20)) -> list[str]:
        lines = [f"theorem chain ({self.route} route): Theorem 4.2 -> 4.3 with sigma(-r) replaced by w(r)"]
        for step in self.steps:
            lines += ["  " + line for line in step.lines()]
        if self.complete:
            for k in K_values:
                result = self.samples_per_value(k, delta_value)
                lines.append(f"  Q_min(K = {k}, delta = {delta_value}) = {result.Q_min}   "
                             f"(root {mpmath.nstr(result.root_value, 10)}, Q >= {MINIMUM_Q})")
        else:
            lines.append(f"  stopped at: {self.stopped_at}")
        return lines

    def latex(self) -> str:
        rows = [row for step in self.steps for row in step.latex()]
        return "\\begin{align*}\n" + " \\\\\n".join(rows) + "\n\\end{align*}"


@dataclass(frozen=True)
class DataVariant:
    """How the data departs from the paper's: shares p_k of the N samples per value, a fraction eta of swapped
    pairs, and per-pair loss weights in [weight_min, weight_max] (TRL's sample weights)."""

    shares: tuple[sp.Rational, ...] | None = None
    flip_rate: sp.Rational = sp.Integer(0)
    pair_weights: tuple[sp.Rational, ...] | None = None  # the loss weights that occur; their range counts

    @property
    def weight_min(self) -> sp.Rational:
        return sp.Integer(1) if self.pair_weights is None else min(self.pair_weights)

    @property
    def weight_max(self) -> sp.Rational:
        return sp.Integer(1) if self.pair_weights is None else max(self.pair_weights)

    @property
    def is_paper(self) -> bool:
        return self.shares is None and self.flip_rate == 0 and self.pair_weights is None

    def effective_weight(self, weight: sp.Expr) -> sp.Expr:
        """The expected drive of a pair under flips, (1 - eta) w(r) - eta w(-r): derived by the chain rule on a
        clean pair and its swapped copy (`theory.data_variants.flipped_pair_weight`)."""
        if self.flip_rate == 0:
            return weight
        return sum(c * part for c, part in _flip_terms(weight, self.flip_rate))

    def interference_weight(self, weight: sp.Expr) -> sp.Expr:
        """A bound on the |drive| of a pair, which the interference terms sum: the same terms with their
        coefficients taken in absolute value, (1 - eta) w(r) + eta w(-r) for w >= 0."""
        if self.flip_rate == 0:
            return weight
        return sum(abs(c) * part for c, part in _flip_terms(weight, self.flip_rate))

    def describe(self) -> str:
        parts = []
        if self.shares is not None:
            parts.append("shares " + ", ".join(str(p) for p in self.shares))
        if self.flip_rate:
            parts.append(f"flip rate {self.flip_rate}")
        if self.pair_weights is not None:
            parts.append(f"pair weights in [{self.weight_min}, {self.weight_max}]")
        return "; ".join(parts) or "the paper's data"


PAPER_DATA = DataVariant()


@lru_cache(maxsize=None)
def _flipped_pair_weight() -> sp.Expr:
    from theory.data_variants import flipped_pair_weight

    return flipped_pair_weight()


def _flip_terms(weight: sp.Expr, eta: sp.Expr) -> list[tuple[sp.Expr, sp.Expr]]:
    """(coefficient at eta, w(+-r)) for each term of the derived expected weight."""
    from theory.data_variants import flip_rate, generic_weight

    expected = sp.expand(_flipped_pair_weight())
    terms = []
    for sign in (1, -1):
        coefficient = expected.coeff(generic_weight(sign * r)).subs(flip_rate, eta)
        terms.append((coefficient, weight.subs(r, sign * r)))
    return terms


def variant_step(weight: sp.Expr, data: DataVariant) -> ChainStep:
    """Lemma 4.1 in the idealised model under the variant (`theory.data_variants`, derived from the group sum)."""
    from theory.data_variants import (derive_label_noise, derive_pair_weights, derive_unequal_shares, flip_rate,
                                      share)

    results: dict[str, sp.Expr] = {}
    checked = []
    if data.shares is not None:
        shares = derive_unequal_shares(weight)
        results["tau dr_k/dt (value k, share p_k)"] = shares.rate
        results["slowest value's time to a margin / fastest's"] = sp.simplify(
            shares.time_ratio.subs(share, max(data.shares)) / shares.time_ratio.subs(share, min(data.shares)))
        checked.append(shares.holds)
    if data.flip_rate:
        noise = derive_label_noise(weight)
        results["expected weight (1 - eta) w(r) - eta w(-r)"] = noise.expected_weight.subs(flip_rate, data.flip_rate)
        fixed = [sp.simplify(p.subs(flip_rate, data.flip_rate)) for p in noise.fixed_points]
        results["fixed point r* (the margin saturates)"] = fixed[0] if len(fixed) == 1 else sp.FiniteSet(*fixed)
        checked.append(noise.holds if hasattr(noise, "holds") else all(x == 0 for x in noise.residuals.values()))
    if data.pair_weights is not None:
        weights = derive_pair_weights(weight)
        results["tau dr_k/dt (mean pair weight wbar_k)"] = weights.rate
        checked.append(weights.holds)
    return ChainStep(f"data variant (Lemma 4.1, idealised model): {data.describe()}", results, all(checked),
                     "derived from Eq. (3)'s sum over groups of samples" if all(checked)
                     else "a derivation of theory/data_variants.py has a nonzero residual")


def margin_chain(loss: PreferenceLoss, route: str = "paper", data: DataVariant = PAPER_DATA) -> TheoremChain:
    """Redo the proof of Theorems 4.2 and 4.3 for `loss` on the paper's data or a `DataVariant`.

    Variants enter the proof at two places. The same-cluster term of value k scales with its share (K p_k
    relative to 1/K) and with the smallest pair weight; the interference and the upper slope scale with the
    largest share and the largest pair weight. Under flips the drive is the expected weight
    (1 - eta) w(r) - eta w(-r), and the interference sums (1 - eta) w(r) + eta w(-r).
    """
    if route not in ROUTES:
        raise ValueError(f"route must be one of {', '.join(ROUTES)}, got {route!r}")
    w = data.effective_weight(loss.weight)
    steps: list[ChainStep] = []
    values: dict[str, sp.Expr] = {}
    if not data.is_paper:
        steps.append(variant_step(loss.weight, data))

    def stop(name, results, note):
        steps.append(ChainStep(name, results, False, note))
        return TheoremChain(loss, route, tuple(steps), f"{name}: {note}", values)

    # -- the sandwich
    name = "sandwich (Lemma B.2): the range of w on the envelope"
    w0 = sp.simplify(w.subs(r, 0))
    if not (w0.is_real and w0.is_finite) or not bool(w0 > 0):
        return stop(name, {"w(0)": w0}, "w(0) <= 0: the loss does not push a margin up from 0, so no lower "
                                        "envelope r_L > 0 starts there")
    r_end, how = _first_crossing(w, w0 / 2)
    kink_points = kinks(w)
    ahead = [p for p in kink_points if r_end is None or bool(p <= r_end)]
    if ahead:
        p = ahead[0]
        left, right = (sp.limit(w, r, p, dir=side) for side in ("-", "+"))
        return stop(name, {"w(0)": w0, "kink at r": p, "w(r-)": left, "w(r+)": right},
                    f"w has a kink at r = {p} before it falls to w(0)/2: the sandwich would need a subgradient there "
                    f"(w jumps from {left} to {right})")
    if r_end is None:
        return stop(name, {"w(0)": w0}, how + ": the margins never leave the region where w >= w(0)/2, "
                                              "so there is no end of training tau_1 by the paper's rule")
    w_min, w_max, range_how = weight_range(w, r_end)
    results = {"w(0)": w0, "r_end (w(r_end) = w(0)/2)": r_end, "w_min": w_min, "w_max": w_max}
    if not data.is_paper:
        # the drive of the slowest value's own pairs, and the largest drive an interfering pair can have
        own, interfering = data.weight_min, data.weight_max
        if data.shares is not None:
            own, interfering = own * len(data.shares) * min(data.shares), interfering * len(data.shares) * max(data.shares)
        w_min = own * w_min
        w_max = interfering * weight_range(data.interference_weight(loss.weight), r_end)[1]
        results.update({"own drive >= (slowest value)": w_min, "interfering drive <=": w_max})
    values.update(r_end=r_end, w_min=w_min, w_max=w_max)
    results["w_max / w_min"] = sp.simplify(w_max / w_min) if bool(w_min > 0) else sp.oo
    if not bool(w_min > 0):
        return stop(name, results, "w has a zero inside [0, r_end]: a fixed point inside the envelope")
    steps.append(ChainStep(name, results, True, f"r_end {how}; range {range_how}"
                           + ("" if data.is_paper else f"; {data.describe()}")))

    # -- the envelope
    name = "envelope (Theorem 4.2, steps 3-4): r_L(t) <= r_j(t) <= r_U(t)"
    if route == "paper":
        slope_L, slope_U = sp.simplify(paper_lower_slope(w_min, w_max)), sp.simplify(paper_upper_slope(w_max))
        note = "paper's step 3 with I <= 1/2; step 4's 5 beta^2/K scaled by w_max / (1/2)"
    else:
        slope_L, slope_U = tight_slopes(w_min, w_max)
        note = "Lemma B.2 at its worst admissible corner"
    values.update(slope_L=slope_L, slope_U=slope_U)
    results = {"tau dr_L/dt": slope_L, "tau dr_U/dt": slope_U,
               "r_L(t)": slope_L * t / tau, "r_U(t)": slope_U * t / tau}
    if not bool(sp.simplify(slope_L / beta**2 * K) > 0):
        return stop(name, results, "the lower slope is not positive: the sandwich is too wide (w_max/w_min) "
                                   "for the same-cluster term to beat the interference")
    steps.append(ChainStep(name, results, True, note))

    # -- tau_1
    name = "end of training: r_U(tau_1) = r_end"
    (tau_1,) = sp.solve(sp.Eq(slope_U * t / tau, r_end), t)
    tau_1 = sp.expand_log(tau_1, force=True)  # solve folds K tau/beta^2 into a log's argument
    r_L_end = sp.simplify(slope_L * tau_1 / tau)
    values.update(tau_1=tau_1, r_L_at_tau_1=r_L_end, end_ratio=sp.simplify(slope_L / slope_U))
    steps.append(ChainStep(name, {"tau_1": values["tau_1"], "r_L(tau_1)": r_L_end, "r_U(tau_1)": r_end,
                                  "r_L(tau_1) / r_end": values["end_ratio"]}, True, ""))

    # -- the test margin
    name = "test margin (Theorem 4.3, step 4): tau d r~/dt > 0 on [0, tau_1]"
    drift = sp.simplify(2 * w_min - interference_bound(PROOF_EPSILON) * w_max)
    results = {"I_test (eps <= 1/(8 v (Z+2)))": interference_bound(PROOF_EPSILON),
               "2 w_min - I_test w_max": drift}
    if not bool(drift > 0):
        return stop(name, results, "the drift of a test margin can be negative: the sandwich is too wide")
    steps.append(ChainStep(name, results, True, "a test sample outside the Gaussian tail event is ranked correctly"))

    # -- the risk bound
    name = "risk bound (Theorem 4.3)"
    kappa, how = risk_kappa(route)
    values["kappa"] = kappa
    results = {"bound on R(P)": 2 * K * Q**2 * sp.exp(-Q / kappa), "kappa": kappa}
    note = how + "; the Gaussian tail event does not involve w"
    if data.shares is not None:
        note += ("; Q is each value's own count p_k N / 2, so the smallest share needs "
                 "N >= 2 Q_min(K) / p_min samples in all")
    steps.append(ChainStep(name, results, True, note))
    return TheoremChain(loss, route, tuple(steps), None, values)


def chain_latex(derivation, chain: TheoremChain, data: DataVariant = PAPER_DATA) -> str:
    """The derivation (`theory.objectives.ObjectiveDerivation`) and the chain as a LaTeX fragment to paste."""
    parts = [f"% {chain.loss.name}: Lemma 4.1 and the chain of Theorems 4.2-4.3 ({chain.route} route); "
             f"data: {data.describe()}",
             "\\begin{align*}"]
    rows = [rf"{_latex_key(name)} &: {latex}" for name, latex in derivation.latex().items()]
    rows += [row for step in chain.steps for row in step.latex()]
    parts.append(" \\\\\n".join(rows))
    parts.append("\\end{align*}")
    parts.append(f"% {'complete: the risk bound and Q_min(K) follow' if chain.complete else 'stops at ' + chain.stopped_at}")
    return "\n".join(parts) + "\n"
