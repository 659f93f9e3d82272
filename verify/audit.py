"""`dpo-verify audit`: every uncertain item of SPEC §5 and PREDECESSOR §6 that a derivation or computation decides."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import sympy as sp

from theory.derivations import risk_bound_vacuous_until
from theory.errors import UserInputError
from theory.generalization import refined_exponent_after_remark
from theory.readings import predecessor_exponents, predecessor_upper_envelope, role_of_Q_ge_40, z_condition_reading
from theory.scaling_law import PREDECESSOR_BOUND, paper_claim_K10, samples_per_value, samples_per_value_asymptotics
from theory.statements import DerivationResult
from theory.training_guarantee import (envelope_at_tau_1, envelope_slopes_from_lemma_b2, main_text_probability_from_b3,
                                       main_text_vacuous_until)


@dataclass(frozen=True)
class AuditItem:
    id: str
    source: str
    question: str
    derive: Callable[[], DerivationResult]

    @property
    def command(self) -> str:
        return f"dpo-verify audit --item {self.id}"


@dataclass(frozen=True)
class AuditFinding:
    item: AuditItem
    result: DerivationResult

    @property
    def verdict(self) -> str:
        return {True: "confirmed", False: "discrepancy", None: "computed"}[self.result.holds]


def _computed(derive: Callable[[], DerivationResult]) -> Callable[[], DerivationResult]:
    """For items that ask for a number, not a yes/no: the derivation's own flag is not a verdict."""
    return lambda: replace(derive(), holds=None)


def _ratio_of_Q_min() -> DerivationResult:
    q10, q100 = samples_per_value(10).Q_min, samples_per_value(100).Q_min
    ratio = sp.Rational(q100, q10)
    return DerivationResult("Q_min(100)/Q_min(10)", {}, {"Q_min(10)": q10, "Q_min(100)": q100, "ratio": sp.N(ratio, 4)},
                            bool(ratio < sp.Rational(3, 2)),
                            f"Q_min(100)/Q_min(10) = {q100}/{q10} = {sp.N(ratio, 4)}, not the 1.5x a summary claims")


def _eq_5_sign() -> DerivationResult:
    from theory.multi_token import derive_eq_5, multi_token_instance

    derivation = derive_eq_5(multi_token_instance(3, 2, [((0, 1), (0, 2)), ((1, 2), (2, 0))]))
    sum_is_exact = derivation.residuals["sum"] == 0
    return DerivationResult("sign of p in Eq. (5)", {"residual (sum)": derivation.residuals["sum"],
                            "difference reading off by": derivation.difference_gap}, {}, not sum_is_exact,
                            derivation.verdict)


def _statements_per_persona() -> DerivationResult:
    from verify.real.data import load_shipped_personas

    personas = load_shipped_personas()
    sizes = sorted(len(p.statements) for p in personas.values())
    return DerivationResult("statements per persona", {}, {"personas": len(sizes), "smallest": sizes[0],
                            "largest": sizes[-1]}, None,
                            f"{len(sizes)} personas of the paper's sets hold {sizes[0]}-{sizes[-1]} statements each "
                            f"(shipped CC-BY copy), i.e. about {sizes[len(sizes) // 2] // 2} per cluster")


def _predecessor_Q_min() -> DerivationResult:
    res = samples_per_value(10, sp.Rational(1, 20), PREDECESSOR_BOUND)
    return DerivationResult("predecessor bound, K = 10, delta = 0.05", {}, {"Q_min": res.Q_min}, None,
                            f"2KQ^2 e^(-Q^(1/4)/6) < 0.05 needs Q >= {res.Q_min:,} at K = 10 (vs 880 for e^(-Q/45))")


ITEMS = (
    AuditItem("spec-5.2", "SPEC §5.2", "Is the Z condition Z <= 1/(4 l_b^2) or Z <= l_b^2/4?", z_condition_reading),
    AuditItem("spec-5.3-follows", "SPEC §5.3", "Does the main-text probability follow from Theorem B.3?",
              main_text_probability_from_b3),
    AuditItem("spec-5.3-vacuous", "SPEC §5.3", "Up to which Q is the main-text probability <= 0 (K = 1, c = 1)?",
              _computed(lambda: main_text_vacuous_until(1, 1))),
    AuditItem("spec-5.3-vacuous-K100", "SPEC §5.3", "The same at K = 100.", _computed(lambda: main_text_vacuous_until(100, 1))),
    AuditItem("spec-5.4-main", "SPEC §5.4", "With v <= 1/(32 sqrt Q), does Theorem B.4 give e^(-Q/45)?",
              lambda: refined_exponent_after_remark(32)),
    AuditItem("spec-5.4-appendix", "SPEC §5.4", "With the appendix's v <= 1/(4 sqrt Q), does it?",
              lambda: refined_exponent_after_remark(4)),
    AuditItem("spec-5.5", "SPEC §5.5", "What does Q >= 40 do in Theorem 4.3?", _computed(role_of_Q_ge_40)),
    AuditItem("spec-5.6", "SPEC §5.6", "Do the Lemma B.2 constants give r_L and r_U = 5 beta^2 t/(K tau)?",
              lambda: envelope_slopes_from_lemma_b2(32)),
    AuditItem("spec-2.2-envelope", "SPEC §2.2", "Is r_U(tau_1) = log 3 and r_L(tau_1) = log 3/40?", envelope_at_tau_1),
    AuditItem("spec-4.3-875", "SPEC §2.3", "Does 'K = 10 needs more than 875 samples per value' come out?",
              paper_claim_K10),
    AuditItem("spec-4.3-vacuous", "SPEC §2.3", "Up to which Q is the risk bound >= 1 (K = 1)?",
              lambda: risk_bound_vacuous_until(1)),
    AuditItem("spec-5.10", "SPEC §5.10", "What does the bound's Q_min(K) grow like?", samples_per_value_asymptotics),
    AuditItem("spec-5.13", "SPEC §5.13", "What would the predecessor's bound require at K = 10?", _predecessor_Q_min),
    AuditItem("spec-5.8", "SPEC §5.8", "Is the probability factor p of Eq. (5) a difference, as printed?", _eq_5_sign),
    AuditItem("spec-5.12", "SPEC §5.12", "How many statements does each persona have?", _statements_per_persona),
    AuditItem("spec-7.5", "SPEC §7.5", "Is Q_min(100)/Q_min(10) well below the 1.5x that a summary claims?",
              _ratio_of_Q_min),
    AuditItem("pred-6.3", "PREDECESSOR §6.3", "Do Q^(3/4)/256 and e^(-Q^(1/4)/6) follow from the appendix?",
              predecessor_exponents),
    AuditItem("pred-6.4", "PREDECESSOR §6.4", "Is Theorem A.1's printed r^U = 2dv^2 beta^2 t/(N tau) right?",
              predecessor_upper_envelope),
)


def audit_items() -> dict[str, AuditItem]:
    return {item.id: item for item in ITEMS}


def run_audit(item_id: str | None = None) -> list[AuditFinding]:
    items = audit_items()
    if item_id is not None and item_id not in items:
        raise UserInputError(f"unknown audit item {item_id!r}; known: {', '.join(items)}")
    chosen = [items[item_id]] if item_id else list(items.values())
    return [AuditFinding(item, item.derive()) for item in chosen]
