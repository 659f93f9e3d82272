"""The exact population risk R(P) of Def. 3.1 for a trained implicit reward model on the data model P (§1.5).

The single-token margin is linear in the feature (Eq. 2): for a test point of cluster k with responses
(y_w, y_l),  r(g) = beta a_k^T g  with  a_k = (W - W0)^T (y_w - y_l).  Under P the feature of cluster k is
g = mu_k + alpha with alpha ~ N(0, v^2 I_d), so r is Gaussian:

    E[r] = beta a_k^T mu_k,    Var[r] = beta^2 v^2 ||a_k||^2,

and the cluster's risk Pr[r <= 0] is Phi(-z_k) with the standardised margin  z_k = a_k^T mu_k / (v ||a_k||)
(beta > 0 cancels). The 2K clusters have weight 1/(2K) each (§1.5), so

    R(P) = (1/2K) sum_k Phi(-z_k).

Everything here is derived with sympy (`derive_population_risk` checks it against sympy.stats); the numeric
side lambdifies `STANDARDISED_MARGIN` and evaluates log Phi(-z) in log space.
"""
from __future__ import annotations

import sympy as sp
import sympy.stats as stats

from theory.statements import DerivationResult
from theory.symbols import K, beta, v

# a_k^T mu_k, ||a_k||^2 and a_k^T alpha for one cluster, as scalars: the derivation needs nothing else of them.
projected_mean = sp.Symbol("m_k", real=True)  # a_k^T mu_k
direction_norm_squared = sp.Symbol("n_k", positive=True)  # ||a_k||^2 (zero only for an untrained model)

MARGIN_MEAN = beta * projected_mean
MARGIN_VARIANCE = beta**2 * v**2 * direction_norm_squared
STANDARDISED_MARGIN = MARGIN_MEAN / sp.sqrt(MARGIN_VARIANCE)


def standard_normal_cdf(x: sp.Expr) -> sp.Expr:
    """Phi(x), the N(0, 1) distribution function."""
    return (1 + sp.erf(x / sp.sqrt(2))) / 2


def cluster_risk() -> sp.Expr:
    """Pr[r <= 0] for r ~ N(MARGIN_MEAN, MARGIN_VARIANCE), from sympy.stats (not typed as Phi(-z))."""
    margin = stats.Normal("r", MARGIN_MEAN, sp.sqrt(MARGIN_VARIANCE))
    return sp.simplify(stats.P(margin <= 0))


def population_risk(cluster_risks) -> sp.Expr:
    """Def. 3.1 on P: the 2K clusters are equally weighted."""
    risks = list(cluster_risks)
    return sp.Add(*risks) / (2 * K) if risks else sp.Integer(0)


def derive_population_risk() -> DerivationResult:
    """Check that sympy.stats' Pr[r <= 0] equals Phi(-z) with z = STANDARDISED_MARGIN (v > 0, beta > 0)."""
    positive_v = sp.Symbol("v_pos", positive=True)
    derived = cluster_risk().subs(v, positive_v)
    closed = standard_normal_cdf(-STANDARDISED_MARGIN).subs(v, positive_v)
    residual = sp.simplify((derived - closed).rewrite(sp.erfc))
    holds = residual == 0
    return DerivationResult(
        "exact population risk on P",
        {"cluster risk": derived, "standardised margin z_k": sp.simplify(STANDARDISED_MARGIN.subs(v, positive_v)),
         "residual vs Phi(-z_k)": residual},
        {}, holds,
        "R(P) = (1/2K) sum_k Phi(-a_k^T mu_k / (v ||a_k||)): the margin is linear in g and g is Gaussian"
        if holds else f"sympy.stats gives {derived}, not Phi(-z)")
