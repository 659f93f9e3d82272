"""The tight risk law of the paper's own model: the population risk after gradient flow to tau_1, derived from the
training draw itself instead of bounded through Lemma B.1 (beyond the paper; SPEC §1.5, §2.1-2.3).

Derivation (each step is a `derive_*` function that sympy checks; `derive_tight_risk_law` runs them all):

1. Trained direction, exact (`derive_trained_direction`). Integrating Eq. (6), tau dW/dt = (beta/N) sum_n
   sigma(-r_n) D_n g_n^T with D_n = y_w,n - y_l,n (SPEC §1.6), from W(0) = W0 gives
       W(tau_1) - W0 = (beta/(N tau)) sum_n lambda_n D_n g_n^T,   lambda_n = int_0^tau_1 sigma(-r_n) dt.
   A test point g of cluster k has the margin r = beta a_k . g (Eq. 2), a_k = (W - W0)^T D_k
   = (beta/(N tau)) sum_n lambda_n (D_k . D_n) g_n; its time derivative is Lemma 4.1's test-sample equation.
   With s = beta^2 t / tau the margins solve one ODE for every (beta, tau), and tau_1 is s = K log 3 / 5: the
   risk at tau_1 does not depend on beta or tau (`derive_time_rescaling`).
2. The approximation (leading order): every lambda_n equal. It is exact at v = 0 with delta = 0, where every
   training point of every cluster follows the same margin trajectory. lambda then cancels from the risk, and
       a_k is proportional to sum_a W_ka S_a,   W_ka = D_k . D_a,   S_a = sum_{n in a} g_n = Q mu_a + A_a,
   with A_a ~ N(0, Q v^2 I_d): a_k = m_k + eta_k, eta_k an isotropic Gaussian vector.
3. Given the training set the test margin is Gaussian (`theory.population_risk`): mean beta a_k . mu_k, sd
   beta v |a_k|, so R(P) = (1/2K) sum_k Phi(-z_k), z_k = a_k . mu_k / (v |a_k|).
4. Over training sets (`derive_gaussian_chi_form`): split a_k along mu_k and across it. With s_k the sd of each
   coordinate of eta_k, X = a_k . mu_k / (|mu_k| s_k) ~ N(nu, 1) and Y = |a_k across mu_k| / s_k ~ chi'_{d-1}(omega),
   independent, and
       z_k = T X / sqrt(X^2 + Y^2),   T = |mu_k| / v:
   a Gaussian over a noncentral chi. Write m~_k = sum_i G_ji c_i (G = the pairs' preference Gram matrix),
   P = m~_k . mu_k, M2 = |m~_k|^2, U2 = |mu_k|^2 and g2 = sum_i G_ji^2. Then
       nu = sqrt(2Q) P / (v sqrt(g2 U2)),   omega^2 = 2Q (M2 - P^2/U2) / (v^2 g2).
   Disjoint tokens, delta = 0: P = 2, M2 = g2 = 4, U2 = 1 + l_b^2, so nu = sqrt(2Q)/(v sqrt(1 + l_b^2)) and
   omega^2 = 2Q l_b^2 / (v^2 (1 + l_b^2)).
5. Shared tokens (`derive_shared_tokens`): a pair sharing one token with n other pairs has G_ji = +-1 for them,
   so the neighbours' concepts and noise enter a_k (the cross-cluster terms): M2 = g2 = 4 + n, P = 2, and the
   direction's cosine to c_j is rho = 2/sqrt(4 + n) >= sqrt(2/(Z+1)), since n <= 2(Z - 1).
6. delta-approximately orthogonal concepts (Def. C.1, Lemma C.2; `derive_orthogonality_bounds`):
   |c_i . c_i'| <= delta and |c_i . e_1| <= sin xi <= delta/2 give P >= 2 - 2(Z-1) delta - l_b Z delta,
   M2 <= 2Z + 2 + 2 (Z-1)(2Z+1) delta and 1 + l_b^2 - l_b delta <= U2 <= 1 + l_b^2 + l_b delta.
   Pr[z_k < q] grows as T or nu falls and as omega grows, so these extremes bound it for every such geometry.
7. The law (`TIGHT_RISK_LAW`; `derive_quantile_event`): {z_k < q} = {X < kappa Y}, kappa = q / sqrt(T^2 - q^2), so
       Pr[z_k < q] = int_0^oo Phi(kappa y - nu) f_{chi'_{d-1}(omega)}(y) dy,
   one integral, evaluated with mpmath. A union bound over the 2K clusters: with probability >= 1 - delta' over
   the training set, R(P) <= B = Phi(-q*), where Pr[z < q*] = delta'/(2K) at the worst-case (T, nu, omega).
8. The mean over training sets (`derive_mean_law`): E[Phi(-z_k)] = Pr[a_k . g <= 0] with an independent test
   point g, a bilinear form in two Gaussian vectors: Pr[chi'^2_d(lambda_1) <= chi'^2_d(lambda_2)],
   lambda_{1,2} = ((nu +- T)^2 + omega^2)/2, one Gil-Pelaez integral.
9. Closed forms (`derive_leading_order`): X -> nu and Y^2 -> omega^2 + d - 1 give
       z = rho / (v sqrt(1 + (d - 1) v^2 / (2Q)))   (delta = 0),
   the risk Phi(-z), Q_min = (d - 1) v^4 z_delta^2 / (2 (rho^2 - v^2 z_delta^2)) and the noise floor
   v* = rho / z_delta, z_delta = Phi^{-1}(1 - delta): above v* no Q reaches the target. Inside Theorem 4.3's
   assumptions (v = 1/(32 sqrt Q)) this is -ln R ~ 512 rho^2 Q against the paper's Q/45.
10. First correction (`derive_weight_correction`): with margins growing linearly to r_n at tau_1,
    lambda_n / tau_1 = (log 2 - log(1 + e^{-r_n})) / r_n = 1/2 - r_n/8 + O(r_n^3). Its mean part changes a_k
    along a_k itself (E[(alpha . u) alpha] = v^2 u), which the risk does not see; what is left is a fluctuation,
    of relative size O(r v). `verify.tight_risk_law` measures both orders against the exact risk.

`tight_samples_per_value` gives Q_min(K, d, v, delta) from the bound, the mean law or the closed form.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import mpmath
import sympy as sp

from theory.statements import DerivationResult, Statement, exact_number
from theory.symbols import K, Q, Z, beta, d, delta, l_b, t, tau, v

# --- symbols ----------------------------------------------------------------------------------------------
delta_prime = sp.Symbol("delta_prime", positive=True)  # the law fails on at most this share of training sets
q = sp.Symbol("q", real=True)  # a threshold on the standardised margin z
projection = sp.Symbol("P", real=True)  # m~_k . mu_k
direction_norm_squared = sp.Symbol("M2", positive=True)  # |m~_k|^2
mean_norm_squared = sp.Symbol("U2", positive=True)  # |mu_k|^2
preference_weight = sp.Symbol("g2", positive=True)  # sum_i G_ji^2
X = sp.Symbol("X", real=True)  # the Gaussian coordinate of a_k along mu_k, in units of s_k
Y = sp.Symbol("Y", positive=True)  # the norm of a_k across mu_k, in units of s_k
scale, nu, omega = sp.symbols("T nu omega", positive=True)
rho = sp.Symbol("rho", positive=True)  # cosine between the leading direction and c_j
z_target = sp.Symbol("z_delta", positive=True)  # Phi^{-1}(1 - target risk)

EXTRA_SYMBOLS = {s.name: s for s in (delta_prime, q, projection, direction_norm_squared, mean_norm_squared,
                                     preference_weight)}

# --- step 4: the per-cluster law for any geometry ------------------------------------------------------------
MARGIN_SCALE = sp.sqrt(mean_norm_squared) / v
GAUSSIAN_MEAN = sp.sqrt(2 * Q) * projection / (v * sp.sqrt(preference_weight * mean_norm_squared))
CHI_NONCENTRALITY = 2 * Q * (direction_norm_squared - projection**2 / mean_norm_squared) / (v**2 * preference_weight)
CHI_DEGREES = d - 1
STANDARDISED_MARGIN = scale * X / sp.sqrt(X**2 + Y**2)

# --- steps 5-6: the worst geometry with Z pairs per token and delta-orthogonal concepts -------------------------
# With n = 2(Z - 1) sharing pairs (`derive_orthogonality_bounds` expands these from n):
# P >= 2 - n delta - l_b delta (2 + n)/2, M2 <= 4 + n + delta (n^2 + 3n), g2 = 4 + n.
WORST_PROJECTION = 2 - (2 * (Z - 1) + l_b * Z) * delta
WORST_DIRECTION_NORM = 2 * (Z + 1) + 2 * (Z - 1) * (2 * Z + 1) * delta
WORST_PREFERENCE_WEIGHT = 2 * (Z + 1)
MEAN_NORM_LOW = 1 + l_b**2 - l_b * delta
MEAN_NORM_HIGH = 1 + l_b**2 + l_b * delta

TIGHT_RISK_LAW = Statement(
    name="Tight risk law",
    reference="beyond the paper: P of SPEC §1.5, Eq. (6) and Lemma 4.1 (§2.1), Def. 3.1, tau_1 of Theorem 4.2 (§2.2)",
    assumptions={
        "d >= K + 1": sp.Ge(d, K + 1),
        "v > 0": sp.Gt(v, 0),
        "Z <= K": sp.Le(Z, K),
        "delta < 1/2 (Def. C.1)": sp.Lt(delta, sp.Rational(1, 2)),
        "concept projection > 0": sp.Gt(WORST_PROJECTION, 0),
        "delta' < 1": sp.Lt(delta_prime, 1),
    },
    conclusions={
        "margin_scale": MARGIN_SCALE,
        "gaussian_mean": GAUSSIAN_MEAN,
        "chi_noncentrality": CHI_NONCENTRALITY,
        "chi_degrees": CHI_DEGREES,
        "worst_projection": WORST_PROJECTION,
        "worst_direction_norm": WORST_DIRECTION_NORM,
        "worst_preference_weight": WORST_PREFERENCE_WEIGHT,
        "worst_mean_norm_low": MEAN_NORM_LOW,
        "worst_mean_norm_high": MEAN_NORM_HIGH,
        "union_level": delta_prime / (2 * K),
        "risk_bound": sp.erfc(q / sp.sqrt(2)) / 2,  # Phi(-q), written so that a tiny value keeps its digits
        "success_probability": 1 - delta_prime,
    },
    notes=(
        "Leading order in the time-integrated weights lambda_n = int sigma(-r_n) dt: all equal (exact at v = 0, "
        "delta = 0); the first correction is measured by verify.tight_risk_law.",
        "z_k = T X / sqrt(X^2 + Y^2), X ~ N(gaussian_mean, 1), Y ~ chi'(chi_degrees, sqrt(chi_noncentrality)), "
        "T = margin_scale; the geometry (P, M2, U2, g2) of a cluster, or its worst case over Z and delta.",
        "risk_bound = Phi(-q) at the q with Pr[z < q] = union_level, at the worst-case geometry (T at U2 low; "
        "nu and omega^2 at U2 high).",
        "delta is Def. C.1's; delta' the share of training sets on which the bound may fail.",
    ),
    extra_symbols=EXTRA_SYMBOLS,
)


# --- the two integrals of the law, as expressions (the numbers: `ClusterLaw`) -----------------------------------
y_var = sp.Symbol("y", positive=True)
t_var = sp.Symbol("t", positive=True)
chi_k = sp.Symbol("k", integer=True, positive=True)  # the chi's degrees, d - 1
KAPPA = q / sp.sqrt(scale**2 - q**2)
# the noncentral chi density with k degrees and noncentrality omega
CHI_DENSITY = y_var * sp.exp(-(y_var**2 + omega**2) / 2) * (y_var / omega) ** (chi_k / 2 - 1) * sp.besseli(
    chi_k / 2 - 1, omega * y_var)
# step 7: Pr[z < q]
FAILURE_PROBABILITY = sp.Integral((1 + sp.erf((KAPPA * y_var - nu) / sp.sqrt(2))) / 2 * CHI_DENSITY, (y_var, 0, sp.oo))
# step 8: E[Phi(-z)] = Pr[chi'^2_{k+1}(lambda_1) <= chi'^2_{k+1}(lambda_2)] by Gil-Pelaez
_LAMBDA_1, _LAMBDA_2 = ((nu + scale) ** 2 + omega**2) / 2, ((nu - scale) ** 2 + omega**2) / 2
_CHARACTERISTIC = (1 + 4 * t_var**2) ** (-(chi_k + 1) / 2) * sp.exp(
    sp.I * _LAMBDA_1 * t_var / (1 - 2 * sp.I * t_var) - sp.I * _LAMBDA_2 * t_var / (1 + 2 * sp.I * t_var))
MEAN_RISK = sp.Rational(1, 2) - sp.Integral(sp.im(_CHARACTERISTIC) / t_var, (t_var, 0, sp.oo)) / sp.pi
_ARGUMENTS = (scale, nu, omega, chi_k)


@functools.lru_cache(maxsize=None)
def _integrand(name: str):
    """The integrand of FAILURE_PROBABILITY (in y, q and the law's numbers) or MEAN_RISK (in t), for mpmath."""
    if name == "failure":
        return sp.lambdify((y_var, q, *_ARGUMENTS), FAILURE_PROBABILITY.function, "mpmath")
    (integral,) = MEAN_RISK.atoms(sp.Integral)
    return sp.lambdify((t_var, *_ARGUMENTS), integral.function, "mpmath")


def law_latex(statement: Statement | None = None) -> str:
    """The statement's LaTeX with the law's two integrals (T = margin_scale, nu = gaussian_mean,
    omega^2 = chi_noncentrality, k = chi_degrees)."""
    statement = TIGHT_RISK_LAW if statement is None else statement
    lines = [statement.latex(), r"\textit{where, with } T, \nu, \omega^2, k \textit{ as above:}", r"\begin{align*}",
             rf"&z_k = {sp.latex(STANDARDISED_MARGIN)},\quad X \sim \mathcal N(\nu, 1),\quad Y \sim \chi'_k(\omega)\\",
             rf"&\Pr[z_k < q] = {sp.latex(FAILURE_PROBABILITY)}\\",
             r"&\text{risk\_bound} = \Phi(-q^*),\quad \Pr[z_k < q^*] = \text{union\_level}\\",
             rf"&\mathbb E[\Phi(-z_k)] = {sp.latex(MEAN_RISK)}\\", r"\end{align*}"]
    return "\n".join(lines)


# --- the derivations ------------------------------------------------------------------------------------------
def _sigma(x):
    return 1 / (1 + sp.exp(-x))


def derive_trained_direction() -> DerivationResult:
    """Step 1, exact, on two training points and one test point in R^2 with symbolic weights lambda_n(t).

    d/dt of (beta/(N tau)) sum_n lambda_n D_n g_n^T, with d lambda_n/dt = sigma(-r_n), is Eq. (6)'s right side
    over tau; the test margin beta D~^T (W - W0) g~ then obeys Lemma 4.1's equation for a new sample. Then the
    disjoint pair with equal weights: a = 2 S_+ - 2 S_- = 4Q c + 2 (A_+ - A_-), whose noise per coordinate,
    (A_+ - A_-)/(2Q), has variance v^2/(2Q) (sympy.stats).
    """
    N_ = sp.Integer(2)
    lam = [sp.Function(f"lambda_{n}")(t) for n in range(2)]
    r_n = sp.symbols("r_0 r_1", real=True)
    g = [sp.Matrix(sp.symbols(f"g{n}_1 g{n}_2", real=True)) for n in range(2)]
    D = [sp.Matrix([1, -1, 0]), sp.Matrix([0, 1, -1])]  # two pairs sharing token 1
    D_test, g_test = sp.Matrix([1, -1, 0]), sp.Matrix(sp.symbols("h_1 h_2", real=True))
    delta_W = beta / (N_ * tau) * sum((lam[n] * D[n] * g[n].T for n in range(2)), sp.zeros(3, 2))
    rates = {sp.Derivative(lam[n], t): _sigma(-r_n[n]) for n in range(2)}
    flow = sp.diff(delta_W, t).subs(rates)
    eq6 = beta / (N_ * tau) * sum((_sigma(-r_n[n]) * D[n] * g[n].T for n in range(2)), sp.zeros(3, 2))
    flow_residual = sp.simplify(flow - eq6)
    test_margin = (beta * D_test.T * delta_W * g_test)[0, 0]
    lemma_rhs = beta**2 / N_ * sum(_sigma(-r_n[n]) * (D_test.T * D[n])[0, 0] * (g[n].T * g_test)[0, 0] for n in range(2))
    lemma_residual = sp.simplify(tau * sp.diff(test_margin, t).subs(rates) - lemma_rhs)

    import sympy.stats as stats  # here: importing it costs every command that lists the claims

    Qs = sp.Symbol("Q_s", positive=True)
    A_plus, A_minus = stats.Normal("A_plus", 0, sp.sqrt(Qs) * v), stats.Normal("A_minus", 0, sp.sqrt(Qs) * v)
    # independent draws: the variances add (sympy.stats integrates each alone; jointly it is slow)
    noise_variance = sp.simplify((stats.variance(A_plus) + stats.variance(A_minus)) / (2 * Qs) ** 2)
    c_vec, b_vec = sp.Matrix([1, 0]), sp.Matrix([0, l_b])
    S_plus, S_minus = Qs * (c_vec + b_vec), Qs * (-c_vec + b_vec)
    mean_direction = sp.simplify(2 * S_plus - 2 * S_minus)
    holds = (flow_residual == sp.zeros(3, 2) and lemma_residual == 0 and sp.simplify(noise_variance - v**2 / (2 * Qs)) == 0
             and mean_direction == 4 * Qs * c_vec)
    return DerivationResult(
        "trained direction after gradient flow (Eq. 6, Lemma 4.1)",
        {"d/dt dW - Eq. (6) / tau": flow_residual, "tau dr~/dt - Lemma 4.1": lemma_residual,
         "noise per coordinate of (A_+ - A_-)/(2Q)": noise_variance, "mean of 2 S_+ - 2 S_-": mean_direction},
        {}, holds,
        "W(tau_1) - W0 = (beta/(N tau)) sum lambda_n D_n g_n^T with lambda_n = int sigma(-r_n) dt; equal weights give "
        "a = 4Q (c + xi), xi ~ N(0, v^2/(2Q) I)" if holds else "the integrated flow does not match Eq. (6)")


def derive_time_rescaling() -> DerivationResult:
    """The risk at tau_1 does not depend on beta or tau: in s = beta^2 t / tau Lemma 4.1 reads dr/ds = (1/N) M sigma(-r)
    and tau_1 (Theorem 4.2) is s_1 = K log 3 / 5; the weights become lambda_n = (tau/beta^2) Lambda_n(s_1), so
    W - W0 = (1/(N beta)) sum Lambda_n D_n g_n^T: one direction for every (beta, tau), and z is scale-free."""
    from theory.training_guarantee import THEOREM_4_2

    s = sp.Symbol("s", nonnegative=True)
    horizon = sp.simplify((beta**2 * t / tau).subs(t, THEOREM_4_2.conclusions["tau_1"]))
    weight_scale = sp.simplify(sp.diff(t.subs(t, tau * s / beta**2), s))  # dt = (tau/beta^2) ds
    direction_factor = sp.simplify(beta / tau * weight_scale)
    holds = horizon == K * sp.log(3) / 5 and direction_factor == 1 / beta
    return DerivationResult(
        "the risk at tau_1 is the same for every (beta, tau)",
        {"s at tau_1": horizon, "dt/ds": weight_scale, "(beta/tau) dt/ds": direction_factor}, {}, holds,
        "s_1 = K log 3/5 and W - W0 = (1/(N beta)) sum Lambda_n D_n g_n^T: z_k does not depend on beta or tau"
        if holds else "the rescaled horizon depends on beta or tau")


def derive_gaussian_chi_form() -> DerivationResult:
    """Step 4: z = T X / sqrt(X^2 + Y^2), and nu, omega^2 of the disjoint pair from m = 4Q c, s^2 = 8 Q v^2,
    mu = c + b; the general (P, M2, U2, g2) form reduces to it at P = 2, M2 = g2 = 4, U2 = 1 + l_b^2."""
    s_k = sp.Symbol("s_k", positive=True)
    along, across = X * s_k, Y * s_k
    z_direct = sp.sqrt(mean_norm_squared) * along / (v * sp.sqrt(along**2 + across**2))
    residual_z = sp.simplify(z_direct - STANDARDISED_MARGIN.subs(scale, MARGIN_SCALE))
    m = 4 * Q * sp.Matrix([1, 0])
    mu = sp.Matrix([1, l_b])
    s_disjoint = sp.sqrt(8 * Q) * v
    nu_direct = sp.simplify((m.T * mu)[0, 0] / (mu.norm() * s_disjoint))
    omega2_direct = sp.simplify(((m.T * m)[0, 0] - (m.T * mu)[0, 0] ** 2 / (mu.T * mu)[0, 0]) / s_disjoint**2)
    disjoint = {projection: 2, direction_norm_squared: 4, preference_weight: 4, mean_norm_squared: 1 + l_b**2}
    residual_nu = sp.simplify(GAUSSIAN_MEAN.subs(disjoint) - nu_direct)
    residual_omega = sp.simplify(CHI_NONCENTRALITY.subs(disjoint) - omega2_direct)
    holds = residual_z == 0 and residual_nu == 0 and residual_omega == 0
    return DerivationResult(
        "a Gaussian over a noncentral chi (disjoint tokens, delta = 0)",
        {"nu": nu_direct, "omega^2": omega2_direct, "residual z": residual_z, "residual nu": residual_nu,
         "residual omega^2": residual_omega}, {}, holds,
        "z = T X/sqrt(X^2 + Y^2), X ~ N(sqrt(2Q)/(v sqrt(1+l_b^2)), 1), Y ~ chi'_{d-1}(sqrt(2Q) l_b/(v sqrt(1+l_b^2)))"
        if holds else "the general form does not reduce to the disjoint pair")


def _token_gram(pairs: list[tuple[int, int]]) -> sp.Matrix:
    vocabulary = 1 + max(max(p) for p in pairs)
    D = sp.zeros(len(pairs), vocabulary)
    for i, (chosen, rejected) in enumerate(pairs):
        D[i, chosen], D[i, rejected] = 1, -1
    return D * D.T


def derive_shared_tokens() -> DerivationResult:
    """Step 5 on explicit layouts (a chain of 4 pairs, Z = 2; a hub shared by 3 pairs, Z = 3): each pair's row of
    G = D D^T has 2 on the diagonal and +-1 for the n pairs sharing one token, n <= 2(Z - 1), so
    rho = G_jj / sqrt(g2) = 2/sqrt(4 + n) >= sqrt(2/(Z+1)), with equality inside the chain. At delta = 0,
    nu^2 + omega^2 = 2Q/v^2 whatever the layout: the layout only turns the direction."""
    layouts = {"chain, Z = 2": ([(0, 1), (1, 2), (2, 3), (3, 4)], 2), "hub, Z = 3": ([(1, 0), (2, 0), (3, 0)], 3)}
    rows = {}
    ok = True
    for name, (pairs, Z_value) in layouts.items():
        G = _token_gram(pairs)
        for j in range(len(pairs)):
            n = sum(1 for i in range(len(pairs)) if i != j and G[j, i] != 0)
            g2 = sum(G[j, i] ** 2 for i in range(len(pairs)))
            cosine = G[j, j] / sp.sqrt(g2)
            worst = sp.sqrt(sp.Rational(2, Z_value + 1))
            ok &= bool(G[j, j] == 2 and g2 == 4 + n and n <= 2 * (Z_value - 1) and cosine >= worst)
            rows[f"{name}, pair {j}: n, rho"] = (n, cosine)
    total = sp.simplify((GAUSSIAN_MEAN**2 + CHI_NONCENTRALITY).subs(
        {projection: 2, direction_norm_squared: preference_weight, mean_norm_squared: 1 + l_b**2}))
    ok &= sp.simplify(total - 2 * Q / v**2) == 0
    rho_worst = sp.simplify(2 / sp.sqrt(WORST_PREFERENCE_WEIGHT))
    ok &= sp.simplify(rho_worst - sp.sqrt(2 / (Z + 1))) == 0
    return DerivationResult(
        "shared tokens: the cross-cluster terms turn the direction by rho = 2/sqrt(4 + n)",
        {"rho at the worst layout": rho_worst, "nu^2 + omega^2 at delta = 0": total}, rows, ok,
        "rho >= sqrt(2/(Z+1)) (equality inside a chain); nu^2 + omega^2 = 2Q/v^2 for every layout" if ok
        else "a layout breaks the bound on rho")


def derive_orthogonality_bounds() -> DerivationResult:
    """Step 6: the worst-case geometry reduces to the orthogonal one at delta = 0, and moves the law the safe way:
    nu and T fall and omega^2 grows with delta (signs of the derivatives, for l_b, delta >= 0)."""
    n_worst = 2 * (Z - 1)
    from_sharing = (sp.expand(2 - n_worst * delta - l_b * delta * (2 + n_worst) / 2 - WORST_PROJECTION) == 0
                    and sp.expand(4 + n_worst + delta * (n_worst**2 + 3 * n_worst) - WORST_DIRECTION_NORM) == 0
                    and sp.expand(4 + n_worst - WORST_PREFERENCE_WEIGHT) == 0)
    at_zero = {delta: 0}
    reduces = from_sharing and (sp.simplify(WORST_PROJECTION.subs(at_zero) - 2) == 0
               and sp.simplify(WORST_DIRECTION_NORM.subs(at_zero) - WORST_PREFERENCE_WEIGHT) == 0
               and MEAN_NORM_LOW.subs(at_zero) == MEAN_NORM_HIGH.subs(at_zero) == 1 + l_b**2)
    worst = {projection: WORST_PROJECTION, direction_norm_squared: WORST_DIRECTION_NORM,
             preference_weight: WORST_PREFERENCE_WEIGHT, mean_norm_squared: MEAN_NORM_HIGH}
    nu_worst = GAUSSIAN_MEAN.subs(worst)
    omega2_worst = CHI_NONCENTRALITY.subs(worst)
    T_worst = MARGIN_SCALE.subs(mean_norm_squared, MEAN_NORM_LOW)
    # signs on a grid of the admissible region (delta < 1/2, projection > 0): sympy cannot decide them in general
    signs = []
    for Z_value in (1, 2, 3):
        for l_value in (sp.Rational(1, 4), sp.Rational(1, 2), 1):
            for delta_value in (sp.Rational(1, 100), sp.Rational(1, 10), sp.Rational(1, 5)):
                point = {Z: Z_value, l_b: l_value, delta: delta_value, Q: 10, v: sp.Rational(1, 2)}
                if not WORST_PROJECTION.subs(point) > 0:
                    continue
                signs.append((sp.diff(nu_worst, delta).subs(point) < 0, sp.diff(omega2_worst, delta).subs(point) > 0,
                              sp.diff(T_worst, delta).subs(point) < 0))
    monotone = all(all(bool(x) for x in row) for row in signs)
    holds = reduces and monotone
    return DerivationResult(
        "delta-orthogonal concepts: the worst geometry",
        {"P >=": WORST_PROJECTION, "M2 <=": WORST_DIRECTION_NORM, "U2 in": (MEAN_NORM_LOW, MEAN_NORM_HIGH),
         "nu (worst)": nu_worst, "omega^2 (worst)": omega2_worst}, {"grid points with the safe signs": len(signs)},
        holds, "the worst case is the orthogonal law at delta = 0 and loosens it monotonically in delta" if holds
        else "the worst-case geometry does not move the law the safe way")


def derive_quantile_event() -> DerivationResult:
    """Step 7: for 0 < |q| < T, {T X / sqrt(X^2 + Y^2) < q} = {X < kappa Y}, kappa = q/sqrt(T^2 - q^2): squaring
    gives (T X)^2 - q^2 (X^2 + Y^2) = (T^2 - q^2)(X - kappa Y)(X + kappa Y)."""
    kappa = q / sp.sqrt(scale**2 - q**2)
    identity = sp.simplify((scale * X) ** 2 - q**2 * (X**2 + Y**2) - (scale**2 - q**2) * (X - kappa * Y) * (X + kappa * Y))
    return DerivationResult(
        "the quantile event of z", {"kappa": kappa, "residual": identity}, {}, identity == 0,
        "Pr[z < q] = E[Phi(kappa Y - nu)], Y ~ chi'_{d-1}(omega): one integral" if identity == 0 else "not an identity")


def chi_log_density(y, k, noncentrality_squared):
    """log f of the noncentral chi with k degrees and noncentrality omega = sqrt(noncentrality_squared), in mpmath:
    f(y) = y exp(-(y^2 + omega^2)/2) (y/omega)^{k/2 - 1} I_{k/2-1}(omega y); the central chi at omega = 0."""
    y = mpmath.mpf(y)
    half = mpmath.mpf(k) / 2
    if noncentrality_squared == 0:
        return (k - 1) * mpmath.log(y) - y * y / 2 - (half - 1) * mpmath.log(2) - mpmath.loggamma(half)
    w = mpmath.sqrt(noncentrality_squared)
    return (mpmath.log(y) - (y * y + w * w) / 2 + (half - 1) * (mpmath.log(y) - mpmath.log(w))
            + mpmath.log(mpmath.besseli(half - 1, w * y)))


def derive_mean_law() -> DerivationResult:
    """Step 8: a . g with a = m + s h, g = mu + v zeta (h, zeta standard) equals s v (h + m/s) . (zeta + mu/v), and
    h' . zeta' = (|p|^2 - |q|^2)/2 with p, q = (h' +- zeta')/sqrt 2 independent: Pr[a . g <= 0] =
    Pr[|p|^2 <= |q|^2], noncentralities ((nu +- T)^2 + omega^2)/2 in d dimensions. Checked in two coordinates."""
    m, mu, h, zeta = (sp.Matrix(sp.symbols(f"{name}_1 {name}_2", real=True)) for name in ("m", "mu", "h", "zeta"))
    s_k = sp.Symbol("s_k", positive=True)
    a, g = m + s_k * h, mu + v * zeta
    h_shift, zeta_shift = h + m / s_k, zeta + mu / v
    bilinear = sp.expand((a.T * g)[0, 0] - s_k * v * (h_shift.T * zeta_shift)[0, 0])
    p_vec, q_vec = (h_shift + zeta_shift) / sp.sqrt(2), (h_shift - zeta_shift) / sp.sqrt(2)
    polarisation = sp.expand((h_shift.T * zeta_shift)[0, 0] - ((p_vec.T * p_vec)[0, 0] - (q_vec.T * q_vec)[0, 0]) / 2)
    along = {m[0]: s_k * nu, m[1]: s_k * omega, mu[0]: v * scale, mu[1]: 0}  # m/s = (nu, omega), mu/v = (T, 0)
    lam1 = sp.simplify(((p_vec.T * p_vec)[0, 0].subs(along).subs({h[0]: 0, h[1]: 0, zeta[0]: 0, zeta[1]: 0})))
    lam2 = sp.simplify(((q_vec.T * q_vec)[0, 0].subs(along).subs({h[0]: 0, h[1]: 0, zeta[0]: 0, zeta[1]: 0})))
    holds = (bilinear == 0 and polarisation == 0 and sp.simplify(lam1 - ((nu + scale) ** 2 + omega**2) / 2) == 0
             and sp.simplify(lam2 - ((nu - scale) ** 2 + omega**2) / 2) == 0)
    return DerivationResult(
        "the mean risk over training sets", {"lambda_1": lam1, "lambda_2": lam2, "a.g - s v h'.zeta'": bilinear,
                                             "polarisation residual": polarisation}, {}, holds,
        "E[R_k] = Pr[chi'^2_d(lambda_1) <= chi'^2_d(lambda_2)] = 1/2 - (1/pi) int_0^oo Im phi(t)/t dt"
        if holds else "the bilinear form does not factor")


def leading_margin_expression(geometry: dict | None = None) -> sp.Expr:
    """X -> nu, Y^2 -> omega^2 + d - 1 in z = T X/sqrt(X^2 + Y^2), at a geometry (default: the statement's worst)."""
    geometry = worst_geometry_expressions() if geometry is None else geometry
    T_value = MARGIN_SCALE.subs(mean_norm_squared, geometry["U2_low"])
    shared = {projection: geometry["P"], direction_norm_squared: geometry["M2"], preference_weight: geometry["g2"],
              mean_norm_squared: geometry["U2_high"]}
    nu_value, omega2_value = GAUSSIAN_MEAN.subs(shared), CHI_NONCENTRALITY.subs(shared)
    return T_value * nu_value / sp.sqrt(nu_value**2 + omega2_value + CHI_DEGREES)


def worst_geometry_expressions(statement: Statement = TIGHT_RISK_LAW) -> dict:
    c = statement.conclusions
    return {"P": c["worst_projection"], "M2": c["worst_direction_norm"], "g2": c["worst_preference_weight"],
            "U2_low": c["worst_mean_norm_low"], "U2_high": c["worst_mean_norm_high"]}


def derive_leading_order() -> DerivationResult:
    """Step 9: the closed forms at delta = 0: z = rho/(v sqrt(1 + (d-1) v^2/(2Q))) with rho = sqrt(2/(Z+1)), Q_min,
    the noise floor, and inside Theorem 4.3's assumptions -ln R ~ z^2/2 ~ 512 rho^2 Q (the paper: Q/45)."""
    z_leading = leading_margin_expression().subs(delta, 0)
    rho_Z = sp.sqrt(2 / (Z + 1))
    closed = rho_Z / (v * sp.sqrt(1 + (d - 1) * v**2 / (2 * Q)))
    residual = sp.simplify(sp.factor(sp.simplify(z_leading**2 - closed**2)))  # both are positive: compare squares
    Q_real = sp.Symbol("Q_real", positive=True)
    generic = sp.solve(sp.Eq((rho / (v * sp.sqrt(1 + (d - 1) * v**2 / (2 * Q_real)))) ** 2, z_target**2), Q_real)
    Q_min_closed = (d - 1) * v**4 * z_target**2 / (2 * (rho**2 - v**2 * z_target**2))
    solved = len(generic) == 1 and sp.simplify(generic[0] - Q_min_closed) == 0
    floor = sp.limit(closed.subs(Q, Q_real), Q_real, sp.oo)
    inside = closed.subs(v, 1 / (32 * sp.sqrt(Q))).subs(d, 5 * Q)
    rate = sp.limit(inside**2 / (2 * Q), Q, sp.oo)
    holds = (residual == 0 and solved and sp.simplify(floor**2 - rho_Z**2 / v**2) == 0
             and sp.simplify(rate - 512 * rho_Z**2) == 0)
    return DerivationResult(
        "closed forms to leading order",
        {"z (delta = 0)": closed, "Q_min": Q_min_closed, "z as Q -> oo (the floor)": floor,
         "-ln R / Q inside Theorem 4.3 (v = 1/(32 sqrt Q), d = 5Q, Q -> oo)": rate},
        {"paper's exponent per Q": sp.Rational(1, 45), "tight / paper at Z = 1": 512 * 45}, holds,
        "R ~ Phi(-rho/(v sqrt(1 + (d-1) v^2/(2Q)))); Q_min = (d-1) v^4 z^2/(2(rho^2 - v^2 z^2)); floor v* = rho/z; "
        "inside the assumptions ln R ~ -512 rho^2 Q, 23040 rho^2 x the paper's Q/45" if holds
        else "the closed forms do not follow from the law")


def derive_weight_correction() -> DerivationResult:
    """Step 10: the average of sigma(-r s) over s in [0, 1] (margins growing linearly to r at tau_1) and its series;
    E[(alpha . u) alpha] = v^2 u for alpha ~ N(0, v^2 I), checked in two coordinates with sympy.stats."""
    r_end = sp.Symbol("r", positive=True)
    average = (sp.log(2) - sp.log(1 + sp.exp(-r_end))) / r_end
    # r * average is the integral of sigma(-u) over [0, r]: it vanishes at r = 0 and its derivative is sigma(-r)
    antiderivative = r_end * average
    by_integral = sp.simplify(sp.diff(antiderivative, r_end) - _sigma(-r_end)) + sp.limit(antiderivative, r_end, 0)
    # its Taylor series term by term: sigma(-u) = sum c_k u^k, so the average over [0, r] is sum c_k r^k / (k + 1)
    u = sp.Symbol("u", real=True)
    weight = _sigma(-u)
    series = sum(sp.diff(weight, u, k).subs(u, 0) / sp.factorial(k) * r_end**k / (k + 1) for k in range(5))
    import sympy.stats as stats

    alpha = stats.Normal("alpha", 0, v)
    u_vec = sp.symbols("u_1 u_2", real=True)
    # E[(alpha . u) alpha_i] = sum_j u_j E[alpha_j alpha_i]: E[alpha^2] on the diagonal, E[alpha]^2 off it
    second, first = sp.simplify(stats.E(alpha**2)), sp.simplify(stats.E(alpha))
    mean = [u_vec[i] * second + u_vec[1 - i] * first**2 for i in range(2)]
    holds = (sp.simplify(by_integral) == 0 and sp.simplify(series - (sp.Rational(1, 2) - r_end / 8 + r_end**3 / 192)) == 0
             and all(sp.simplify(mean[i] - v**2 * u_vec[i]) == 0 for i in range(2)))
    return DerivationResult(
        "first correction: the weights", {"lambda_n / tau_1": average, "series": series,
                                          "E[(alpha . u) alpha]": mean}, {}, holds,
        "lambda_n/tau_1 = 1/2 - r_n/8 + r_n^3/192 + O(r^5); the mean correction is along a_k (invisible to z)"
        if holds else "the weight expansion fails")


def rederivation_residuals(statement: Statement = TIGHT_RISK_LAW) -> dict[str, sp.Expr]:
    """The statement's conclusions against what steps 3-5 derive from explicit vectors, as residuals (0: agrees).

    - risk_bound(q) against Phi(-q), the risk of a cluster whose standardised margin is q (step 3,
      `theory.population_risk`, derived there from sympy.stats);
    - margin_scale, gaussian_mean, chi_noncentrality and chi_degrees at the disjoint geometry against |mu|/v,
      a . mu^ / s, |a across mu|^2 / s^2 and the dimension across mu, for m = 4Q c, s^2 = 8 Q v^2, mu = c + b;
    - the worst geometry at Z = 2, delta = 0 against the middle pair of a chain of three (tokens (0,1), (1,2),
      (2,3)): its P = G_jj, M2 = g2 = sum_i G_ji^2.
    """
    from theory.population_risk import standard_normal_cdf

    c = statement.conclusions
    residuals = {"risk_bound - Phi(-q)": sp.simplify((c["risk_bound"] - standard_normal_cdf(-q)).rewrite(sp.erfc))}
    m, mu = 4 * Q * sp.Matrix([1, 0]), sp.Matrix([1, l_b])
    s_k = sp.sqrt(8 * Q) * v
    along = (m.T * mu)[0, 0] / mu.norm()
    disjoint = {projection: 2, direction_norm_squared: 4, preference_weight: 4, mean_norm_squared: (mu.T * mu)[0, 0]}
    residuals["margin_scale - |mu|/v"] = sp.simplify(c["margin_scale"].subs(disjoint) - mu.norm() / v)
    residuals["gaussian_mean - a.mu^/s"] = sp.simplify(c["gaussian_mean"].subs(disjoint) - along / s_k)
    residuals["chi_noncentrality - |m across mu|^2/s^2"] = sp.simplify(
        c["chi_noncentrality"].subs(disjoint) - ((m.T * m)[0, 0] - along**2) / s_k**2)
    residuals["chi_degrees - (d - rank mu)"] = sp.simplify(c["chi_degrees"] - (d - 1))
    G = _token_gram([(0, 1), (1, 2), (2, 3)])
    middle = {Z: 2, delta: 0}
    residuals["worst P - G_jj (chain, Z = 2)"] = sp.simplify(c["worst_projection"].subs(middle) - G[1, 1])
    g2_middle = sum(G[1, i] ** 2 for i in range(3))
    residuals["worst M2 - sum G_ji^2 (chain, Z = 2)"] = sp.simplify(c["worst_direction_norm"].subs(middle) - g2_middle)
    residuals["worst g2 - sum G_ji^2 (chain, Z = 2)"] = sp.simplify(c["worst_preference_weight"].subs(middle) - g2_middle)
    return residuals


def rederivation_discrepancies(statement: Statement = TIGHT_RISK_LAW) -> list[str]:
    """The residuals of `rederivation_residuals` that are not 0, as 'name = residual'."""
    return [f"{name} = {residual}" for name, residual in rederivation_residuals(statement).items() if residual != 0]


DERIVATIONS = (derive_trained_direction, derive_time_rescaling, derive_gaussian_chi_form, derive_shared_tokens,
               derive_orthogonality_bounds, derive_quantile_event, derive_mean_law, derive_leading_order,
               derive_weight_correction)


def derive_tight_risk_law() -> list[DerivationResult]:
    """Every step of the derivation, in order."""
    return [step() for step in DERIVATIONS]


# --- numbers: the law at a geometry, in mpmath ------------------------------------------------------------------
DEFAULT_DPS = 20
_GRID_WIDTHS = 14  # the cached grid spans Y's centre +- 14 widths, in panels of half a width
_GRID_FLOOR = mpmath.mpf(10) ** -10  # below this the grid may miss tail mass: the panels take over
_GRID_STEEPNESS = 4  # kappa x Y's width up to which Phi(kappa y - nu) is smooth on the grid's panels
_LOG_TAIL = 80  # the panels stop where the integrand is below e^-80 of its largest value
_MAX_PANELS = 400


@functools.lru_cache(maxsize=None)
def _legendre_nodes(dps: int) -> tuple[tuple[mpmath.mpf, mpmath.mpf], ...]:
    """The 6 Gauss-Legendre nodes and weights on [-1, 1] at `dps` digits."""
    from mpmath.calculus.quadrature import GaussLegendre

    with mpmath.workdps(dps):
        return tuple(GaussLegendre(mpmath.mp).calc_nodes(2, mpmath.mp.prec))


@dataclass(frozen=True)
class ClusterLaw:
    """z = T X / sqrt(X^2 + Y^2), X ~ N(nu, 1), Y ~ chi'_k(sqrt(omega2)), for one cluster (or its worst case)."""

    scale: mpmath.mpf
    gaussian_mean: mpmath.mpf
    chi_noncentrality: mpmath.mpf
    chi_degrees: int
    dps: int = DEFAULT_DPS

    @property
    def leading_margin(self) -> mpmath.mpf:
        """T nu / sqrt(nu^2 + omega^2 + k): z with X and Y^2 at their means."""
        nu_, w2 = self.gaussian_mean, self.chi_noncentrality
        return self.scale * nu_ / mpmath.sqrt(nu_**2 + w2 + self.chi_degrees)

    @property
    def limit_margin(self) -> mpmath.mpf:
        """z as Q -> oo at this geometry (nu and omega grow like sqrt Q): T nu / sqrt(nu^2 + omega^2)."""
        return self.scale * self.gaussian_mean / mpmath.sqrt(self.gaussian_mean**2 + self.chi_noncentrality)

    def _chi_window(self) -> tuple[mpmath.mpf, mpmath.mpf]:
        """Centre and width of Y's density: sqrt(E Y^2) and the sd of Y^2 (2(k + 2 omega^2))^(1/2) over 2 sqrt(E Y^2)."""
        second = self.chi_noncentrality + self.chi_degrees
        centre = mpmath.sqrt(second)
        width = mpmath.sqrt(2 * (self.chi_degrees + 2 * self.chi_noncentrality)) / (2 * centre)
        return centre, width

    def _log_integrand(self, y, kappa) -> mpmath.mpf:
        return mpmath.log(mpmath.ncdf(kappa * y - self.gaussian_mean)) + chi_log_density(
            y, self.chi_degrees, self.chi_noncentrality)

    @functools.cached_property
    def _grid(self) -> tuple[list, list]:
        """Gauss-Legendre nodes (6 per panel half a width of Y wide) on centre +- 14 widths, clipped at 0, with the
        weights times Y's density there: computed once per law, reused by every threshold."""
        with mpmath.workdps(self.dps):
            centre, width = self._chi_window()
            low = max(mpmath.mpf(0), centre - _GRID_WIDTHS * width)
            high = centre + _GRID_WIDTHS * width
            panels = int(mpmath.ceil(2 * (high - low) / width))
            step = (high - low) / panels
            ys, ws = [], []
            for p in range(panels):
                a = low + p * step
                for x, w in _legendre_nodes(self.dps):
                    y = a + (x + 1) * step / 2
                    ys.append(y)
                    ws.append(w * step / 2 * mpmath.exp(chi_log_density(y, self.chi_degrees, self.chi_noncentrality)))
            return ys, ws

    def failure_probability(self, threshold, floor_is_enough: bool = False) -> mpmath.mpf:
        """Pr[z < threshold] = int_0^oo Phi(kappa y - nu) f(y) dy, kappa = q / sqrt(T^2 - q^2) (step 7).

        On the cached grid when Phi(kappa y - nu) is smooth on the scale of Y's width (kappa width <= 4) and the
        result is above 1e-10: the integrand's mode then lies within 7 widths of Y's centre (it moves by at most
        half the Gaussian argument nu - kappa centre, which is below 7 sqrt(1 + kappa^2 width^2) for such a
        probability), so its mass lies inside the grid. Otherwise (a steep Phi, or a probability deep in the
        tail) on panels that follow the integrand itself (`_panel_probability`). With `floor_is_enough` a
        probability below 1e-10 comes back as the grid's value, a number below 1e-10 (enough to bracket a quantile
        at a larger level).
        """
        with mpmath.workdps(self.dps):
            threshold = mpmath.mpf(threshold)
            if threshold <= -self.scale:
                return mpmath.mpf(0)
            if threshold >= self.scale:
                return mpmath.mpf(1)
            kappa = threshold / mpmath.sqrt(self.scale**2 - threshold**2)
            _, width = self._chi_window()
            if kappa * width <= _GRID_STEEPNESS:
                ys, ws = self._grid
                nu_ = self.gaussian_mean
                value = mpmath.fsum(w * mpmath.ncdf(kappa * y - nu_) for y, w in zip(ys, ws))
                if value > _GRID_FLOOR or floor_is_enough:
                    return min(value, mpmath.mpf(1))
            return self._panel_probability(kappa)

    def _panel_probability(self, kappa) -> mpmath.mpf:
        """The integral on Gauss-Legendre panels (6 nodes) that start at the integrand's mode estimate y* with the
        width h of the product of the two Gaussian shapes, grow by 3/2 outwards (capped at Y's width) and stop where
        the integrand has fallen below e^-80 of its largest value. The integrand is log-concave (Phi and the
        noncentral chi density both are), so its mass sits around that one mode."""
        centre, width = self._chi_window()
        width = min(width, mpmath.mpf(1))
        curvature = 1 / width**2 + kappa**2
        mode = max((centre / width**2 + kappa * self.gaussian_mean) / curvature, width / 4)  # Phi's step at nu/kappa
        nodes = _legendre_nodes(self.dps)
        log_g = lambda y: self._log_integrand(y, kappa)
        peak = log_g(mode)
        total = mpmath.mpf(0)
        for direction in (1, -1):
            edge, step = mode, 1 / mpmath.sqrt(curvature)
            for _ in range(_MAX_PANELS):
                other = max(edge + direction * step, mpmath.mpf(0))
                a, b = (edge, other) if direction > 0 else (other, edge)
                half = (b - a) / 2
                values = [log_g(a + (x + 1) * half) for x, _ in nodes]
                peak = max(peak, *values)
                total += half * mpmath.fsum(w * mpmath.exp(value) for (_, w), value in zip(nodes, values))
                outer = values[-1] if direction > 0 else values[0]
                if other == 0 or outer < peak - _LOG_TAIL:
                    break
                edge, step = other, min(step * mpmath.mpf(1.5), width)
        return min(total, mpmath.mpf(1))

    def failure_probability_adaptive(self, threshold) -> mpmath.mpf:
        """FAILURE_PROBABILITY, the expression itself, by mpmath's adaptive tanh-sinh quadrature on [0, oo): slow,
        the cross-check of the grid and the panels."""
        with mpmath.workdps(self.dps):
            integrand = _integrand("failure")
            arguments = (mpmath.mpf(threshold), self.scale, self.gaussian_mean, mpmath.sqrt(self.chi_noncentrality),
                         self.chi_degrees)
            centre, width = self._chi_window()
            points = sorted({mpmath.mpf(0), *(centre + j * width for j in (-16, -4, 0, 4, 16) if centre + j * width > 0)})
            return mpmath.quad(lambda y: integrand(y, *arguments) if y > 0 else 0, [*points, mpmath.inf])

    def quantile(self, level) -> mpmath.mpf:
        """The q with Pr[z < q] = level (Pr[z < q] increases from 0 at q = -T to 1 at q = T)."""
        with mpmath.workdps(self.dps):
            level = mpmath.mpf(level)
            if not 0 < level < 1:
                raise ValueError(f"level must lie in (0, 1), got {level}")
            target = mpmath.log(level)
            edge = self.scale * (1 - mpmath.mpf(10) ** (-(self.dps // 2)))

            fast = level > _GRID_FLOOR * 1000  # then a probability under the grid's floor only needs to be small

            known = {}

            def f(x):
                if x not in known:
                    probability = self.failure_probability(x, floor_is_enough=fast)
                    known[x] = mpmath.log(probability) - target if probability > 0 else -mpmath.inf
                return known[x]

            spread = self._margin_spread()
            low = high = self.leading_margin
            f_low = f_high = f(low)
            step = spread
            while f_low > 0 and low > -edge:
                high, f_high = low, f_low
                low, step = max(low - step, -edge), step * 2
                f_low = f(low)
            step = spread
            while f_high < 0 and high < edge:
                low, f_low = high, f_high
                high, step = min(high + step, edge), step * 2
                f_high = f(high)
            # bisect to a bracket of a quarter of the spread, then the secant (Anderson-Bjorck) in log probability
            while high - low > spread / 4 and f_low < 0 < f_high:
                middle = (low + high) / 2
                f_middle = f(middle)
                if f_middle < 0:
                    low, f_low = middle, f_middle
                else:
                    high, f_high = middle, f_middle
            if not (f_low <= 0 <= f_high) or low == high:
                return low if abs(f_low) <= abs(f_high) else high
            return mpmath.findroot(f, (low, high), solver="anderson", tol=mpmath.mpf(10) ** (-self.dps + 8))

    def _margin_spread(self) -> mpmath.mpf:
        """A first-order sd of z (delta method in X and Y), to bracket the quantile."""
        nu_, y2 = self.gaussian_mean, self.chi_noncentrality + self.chi_degrees
        r3 = (nu_**2 + y2) ** mpmath.mpf(1.5)
        _, width = self._chi_window()
        spread = self.scale * mpmath.sqrt((y2 / r3) ** 2 + (nu_ * mpmath.sqrt(y2) * width / r3) ** 2)
        return max(spread, self.scale * mpmath.mpf(10) ** -12)

    def expected_risk(self, dps: int | None = None, max_dps: int = 400) -> mpmath.mpf | None:
        """E[Phi(-z)] over training sets (step 8), by Gil-Pelaez: 1/2 - (1/pi) int_0^oo Im phi(t)/t dt.

        The integral returns 1/2 minus a number close to 1/2, so it needs about -log10 E digits more than the
        answer: the precision follows Phi(-leading margin). None when that would exceed `max_dps` digits.
        """
        with mpmath.workdps(30):
            decades = -mpmath.log10(mpmath.ncdf(-self.leading_margin))
        need = int(dps if dps is not None else 25 + 1.2 * float(decades))
        if need > max_dps:
            return None
        with mpmath.workdps(need):
            integrand = _integrand("mean")
            arguments = (self.scale, self.gaussian_mean, mpmath.sqrt(self.chi_noncentrality), self.chi_degrees)
            width = 1 / mpmath.sqrt(self.scale**2 + self.gaussian_mean**2 + self.chi_noncentrality + self.chi_degrees + 1)
            integral = mpmath.quad(lambda tt: integrand(tt, *arguments) if tt > 0 else 0,
                                   [0, width, 4 * width, 16 * width, 64 * width, mpmath.inf])
            return mpmath.mpf(1) / 2 - integral / mpmath.pi


def _number(name: str, value) -> sp.Expr:
    return exact_number(name, value)


def cluster_law(statement: Statement, Q_value, d_value, v_value, P_value, M2_value, U2_low, U2_high, g2_value,
                dps: int = DEFAULT_DPS) -> ClusterLaw:
    """The statement's per-cluster law at a geometry: T at U2_low, nu and omega^2 at U2_high (equal for one cluster)."""
    c = statement.conclusions
    base = {Q: _number("Q", Q_value), d: _number("d", d_value), v: _number("v", v_value),
            projection: _number("P", P_value), direction_norm_squared: _number("M2", M2_value),
            preference_weight: _number("g2", g2_value)}
    value = lambda expr, U2: mpmath.mpf(sp.N(expr.subs({**base, mean_norm_squared: _number("U2", U2)}), dps + 5))
    with mpmath.workdps(dps):
        k = c["chi_degrees"].subs(base)
        if not (k.is_integer and k >= 1):
            raise ValueError(f"{statement.name}: chi_degrees = {k} must be an integer >= 1 (d >= 2)")
        return ClusterLaw(value(c["margin_scale"], U2_low), value(c["gaussian_mean"], U2_high),
                          max(value(c["chi_noncentrality"], U2_high), mpmath.mpf(0)), int(k), dps)


def worst_geometry(statement: Statement, Z_value, l_b_value, delta_value) -> dict[str, sp.Expr]:
    """P, M2, g2, U2_low, U2_high at the worst case over Z pairs per token and Def. C.1's delta, exactly."""
    values = {Z: _number("Z", Z_value), l_b: _number("l_b", l_b_value), delta: _number("delta", delta_value)}
    return {name: expr.subs(values) for name, expr in worst_geometry_expressions(statement).items()}


def worst_cluster_law(statement: Statement, Q_value, d_value, v_value, l_b_value, Z_value=1, delta_value=0,
                      dps: int = DEFAULT_DPS) -> ClusterLaw:
    g = worst_geometry(statement, Z_value, l_b_value, delta_value)
    return cluster_law(statement, Q_value, d_value, v_value, g["P"], g["M2"], g["U2_low"], g["U2_high"], g["g2"], dps)


@dataclass(frozen=True)
class RiskBound:
    """B = Phi(-q) with Pr[z < q] = level at the worst-case geometry; log_bound is ln B (a float, however small B)."""

    level: mpmath.mpf
    threshold: mpmath.mpf
    log_bound: float
    law: ClusterLaw

    @property
    def log10_bound(self) -> float:
        return self.log_bound / math.log(10)


def risk_bound(statement: Statement, K_value, Q_value, d_value, v_value, l_b_value, Z_value=1, delta_value=0,
               delta_prime_value=sp.Rational(1, 20), dps: int = DEFAULT_DPS) -> RiskBound:
    """With probability >= 1 - delta' over the training set, R(P) <= B (step 7), all read from `statement`."""
    law = worst_cluster_law(statement, Q_value, d_value, v_value, l_b_value, Z_value, delta_value, dps)
    level_expr = statement.conclusions["union_level"].subs(
        {K: _number("K", K_value), delta_prime: _number("delta_prime", delta_prime_value)})
    bound_expr = statement.conclusions["risk_bound"]
    with mpmath.workdps(dps):
        level = mpmath.mpf(sp.N(level_expr, dps + 5))
        threshold = law.quantile(level)
        bound = sp.lambdify(q, bound_expr, "mpmath")(threshold)
        log_bound = float(mpmath.log(bound)) if bound > 0 else -math.inf
    return RiskBound(level, threshold, log_bound, law)


def standard_normal_quantile(probability) -> mpmath.mpf:
    """Phi^{-1}(probability) in mpmath."""
    p = mpmath.mpf(probability)
    return -mpmath.sqrt(2) * mpmath.erfinv(1 - 2 * p)


# --- Q_min -------------------------------------------------------------------------------------------------------
CRITERIA = ("bound", "mean", "leading")
PAPER_V_RULE = "1/(32 sqrt Q)"  # Theorem 4.3's boundary, v as a function of Q


@dataclass(frozen=True)
class TightSamples:
    """Q_min for one criterion: the smallest integer Q at which it is <= the target risk (None: no Q up to Q_max,
    or the noise is at or above the floor), the value there and at Q_min - 1, and the floor v*."""

    criterion: str
    K: int
    d: int
    v: float | str
    target: float
    Q_min: int | None
    value_at: float | None
    value_before: float | None
    noise_floor: float
    reason: str


def noise_floor(statement: Statement, risk_target, l_b_value, Z_value=1, delta_value=0) -> float:
    """v* above which no Q brings the (leading) risk below the target: z -> C/v as Q -> oo, so v* = C / z_target."""
    law = worst_cluster_law(statement, 1, 2, 1, l_b_value, Z_value, delta_value)  # at v = 1: the limit margin is C
    return float(law.limit_margin / standard_normal_quantile(1 - mpmath.mpf(risk_target)))


def _criterion_value(statement, criterion, K_value, Q_value, d_value, v_value, l_b_value, Z_value, delta_value,
                     delta_prime_value) -> float:
    law = worst_cluster_law(statement, Q_value, d_value, v_value, l_b_value, Z_value, delta_value)
    if criterion == "leading":
        return float(mpmath.ncdf(-law.leading_margin))
    if criterion == "mean":
        value = law.expected_risk()
        return 0.0 if value is None else float(value)
    bound = risk_bound(statement, K_value, Q_value, d_value, v_value, l_b_value, Z_value, delta_value, delta_prime_value)
    return math.exp(bound.log_bound)


def tight_samples_per_value(K_value: int, d_value: int, v_value, risk_target=0.05, l_b_value=0.5, Z_value=1,
                            delta_value=0, criterion: str = "mean", delta_prime_value=0.05, Q_max: int = 10**6,
                            statement: Statement = TIGHT_RISK_LAW) -> TightSamples:
    """The tight Q_min(K, d, v, delta): the smallest integer Q whose risk measure is <= risk_target.

    criterion: 'bound' (the 1 - delta' bound B; K enters through delta'/(2K)), 'mean' (the mean risk over training
    sets; no K at fixed d) or 'leading' (the closed form Phi(-z)). v_value: a number, or PAPER_V_RULE for Theorem
    4.3's v = 1/(32 sqrt Q). d_value must be >= K + 1. The search doubles Q from 1, then bisects (each criterion
    falls with Q at fixed v); Q_min and Q_min - 1 are both evaluated.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    for name, value in (("K", K_value), ("d", d_value), ("Q_max", Q_max)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if d_value < max(2, K_value + 1):
        raise ValueError(f"d = {d_value} must be >= K + 1 = {K_value + 1} (and >= 2)")
    if not 0 < float(risk_target) < 1:
        raise ValueError(f"risk_target must lie in (0, 1), got {risk_target!r}")
    paper_v = isinstance(v_value, str)
    if paper_v and v_value != PAPER_V_RULE:
        raise ValueError(f"v must be a number > 0 or {PAPER_V_RULE!r}, got {v_value!r}")
    if not paper_v and not (math.isfinite(float(v_value)) and float(v_value) > 0):
        raise ValueError(f"v must be a finite number > 0, got {v_value!r}")
    v_of = (lambda Qv: sp.Rational(1, 32) / sp.sqrt(Qv)) if paper_v else (lambda Qv: v_value)
    floor = noise_floor(statement, risk_target, l_b_value, Z_value, delta_value)
    common = dict(criterion=criterion, K=K_value, d=d_value, v=v_value, target=float(risk_target), noise_floor=floor)
    if not paper_v and float(v_value) >= floor:
        return TightSamples(Q_min=None, value_at=None, value_before=None,
                            reason=f"v = {float(v_value):g} is at or above the noise floor v* = {floor:.6g}: no Q reaches "
                                   f"{float(risk_target):g}", **common)
    value = lambda Qv: _criterion_value(statement, criterion, K_value, Qv, d_value, v_of(Qv), l_b_value, Z_value,
                                        delta_value, delta_prime_value)
    high = 1
    while value(high) > float(risk_target):
        if high >= Q_max:
            return TightSamples(Q_min=None, value_at=None, value_before=None,
                                reason=f"no Q <= {Q_max} reaches {float(risk_target):g}", **common)
        high = min(2 * high, Q_max)
    low = high // 2  # value(low) > target (or low = 0)
    while high - low > 1:
        middle = (low + high) // 2
        if value(middle) <= float(risk_target):
            high = middle
        else:
            low = middle
    before = value(high - 1) if high > 1 else None
    return TightSamples(Q_min=high, value_at=value(high), value_before=before,
                        reason=f"smallest Q with the {criterion} risk <= {float(risk_target):g}", **common)


def leading_samples_per_value(d_value, v_value, risk_target=0.05, l_b_value=0.5, Z_value=1, delta_value=0,
                              statement: Statement = TIGHT_RISK_LAW) -> mpmath.mpf | None:
    """The closed-form Q (real, before rounding up) with Phi(-z_leading) = risk_target: with nu = a sqrt Q and
    omega^2 = b Q, z^2 = T^2 a^2 Q / ((a^2 + b) Q + d - 1), so Q = z_t^2 (d - 1) / (T^2 a^2 - z_t^2 (a^2 + b)).
    None at or above the noise floor. At delta = 0 this is (d - 1) v^4 z_t^2 / (2 (rho^2 - v^2 z_t^2))."""
    law = worst_cluster_law(statement, 1, d_value, v_value, l_b_value, Z_value, delta_value)
    a2, b_, T2 = law.gaussian_mean**2, law.chi_noncentrality, law.scale**2
    zt2 = standard_normal_quantile(1 - mpmath.mpf(risk_target)) ** 2
    denominator = T2 * a2 - zt2 * (a2 + b_)
    return None if denominator <= 0 else zt2 * law.chi_degrees / denominator
