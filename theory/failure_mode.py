"""§7 failure mode: a preference the reference model ranks the wrong way by more than 3^{1/beta} stays wrong.

From Eq. (2), log pi(y_w)/pi(y_l) = r/beta + log pi_ref(y_w)/pi_ref(y_l). Theorem 4.2 caps r(tau_1) at
r_U(tau_1) = log 3, so the policy still prefers y_l at tau_1 when the reference odds
rho = pi_ref(y_l|x)/pi_ref(y_w|x) exceed exp(r_U(tau_1)/beta) = 3^{1/beta}.
"""
from __future__ import annotations

import sympy as sp

from theory.statements import DerivationResult, Statement
from theory.symbols import beta, r, t
from theory.training_guarantee import THEOREM_4_2

rho = sp.Symbol("rho", positive=True)  # reference odds pi_ref(y_l|x) / pi_ref(y_w|x)


def margin_cap() -> sp.Expr:
    """r_U(tau_1) from Theorem 4.2 (= log 3)."""
    return sp.simplify(THEOREM_4_2.conclusions["r_U"].subs(t, THEOREM_4_2.conclusions["tau_1"]))


def policy_log_odds() -> sp.Expr:
    """log pi_theta(y_w|x)/pi_theta(y_l|x) in terms of the margin r and the reference odds rho."""
    return r / beta - sp.log(rho)


FAILURE_MODE = Statement(
    name="§7 failure mode",
    reference="§7, 'rankings that do not flip'; SPEC §2.5",
    assumptions={
        "rho > 3^{1/beta}": sp.Gt(rho, sp.Integer(3) ** (1 / beta)),
        "r <= r_U(tau_1) = log 3 (Theorem 4.2)": sp.Le(r, margin_cap()),
    },
    conclusions={
        # powdenest gives 3^{1/beta} as simplify does, without simplify's import of sympy.physics (0.3 s at start-up)
        "threshold": sp.powdenest(sp.exp(margin_cap() / beta), force=True),
        "policy_log_odds": policy_log_odds(),
    },
    notes=("[V] threshold 3^{1/beta}; [R] proof via Eq. (2).",),
    extra_symbols={"rho": rho, "r": r},
)


def derive_failure_threshold() -> DerivationResult:
    """Derive log-odds identity from Eq. (2), the threshold exp(r_U(tau_1)/beta) = 3^{1/beta}, and its sign."""
    p_w, p_l, q_w, q_l = sp.symbols("p_w p_l q_w q_l", positive=True)  # pi_theta, pi_ref at y_w, y_l
    margin = beta * (sp.log(p_w / q_w) - sp.log(p_l / q_l))  # Eq. (2)
    identity = sp.simplify(sp.expand_log(sp.log(p_w / p_l) - policy_log_odds().subs({r: margin, rho: q_l / q_w}),
                                         force=True))
    (threshold,) = sp.solve(sp.Eq(policy_log_odds().subs(r, margin_cap()), 0), rho)
    matches = sp.simplify(threshold - sp.Integer(3) ** (1 / beta)) == 0
    # rho = 3^{1/beta} e^eta (eta > 0), r = log 3 - xi (xi >= 0): log-odds = -xi/beta - eta < 0
    eta, xi = sp.symbols("eta xi", positive=True)
    odds = sp.expand(sp.expand_log(policy_log_odds().subs({rho: threshold * sp.exp(eta), r: margin_cap() - xi}),
                                   force=True))
    ok = identity == 0 and matches and odds.is_negative
    return DerivationResult(
        "§7 threshold 3^{1/beta}", {"log-odds - (r/beta - log rho)": identity, "threshold": threshold,
                                    "log-odds beyond threshold": odds},
        {}, ok, "pi_theta(y_w) < pi_theta(y_l) at tau_1 whenever rho > 3^{1/beta}" if ok else "derivation failed",
    )
