"""The registry of the paper's claims. Each ties a statement in `theory/` to a numeric check in `verify/`."""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from theory.statements import Statement, compact
from verify.parameters import Parameter, resolve_parameters
from verify.verdicts import Verdict

# Modules that register claims; imported on first use of the registry.
_CLAIM_MODULES = ("verify.claims.single_token", "verify.claims.training_guarantee",
                  "verify.claims.generalization", "verify.claims.concentration",
                  "verify.claims.scaling", "verify.claims.failure_mode",
                  "verify.claims.multi_token", "verify.claims.tight_risk_law")


@dataclass(frozen=True)
class Claim:
    """A statement of the paper and the check that measures it.

    With `statement` (a `theory.statements.Statement`), the title, the reference and the assumption text are
    generated from it: the title from its name and conclusions, the assumptions from its relations (and its
    success probability, if it has one). Only a claim without a Statement (an exact identity) types them.

    `check(seed=..., **parameters)` returns a Verdict. `defaults` is the embedded default scale and
    `quick` the overrides of the quick profile. `specs` declares every parameter (type, domain, meaning);
    `footprint` estimates the bytes of float arrays a run allocates, so that what would not fit is refused
    before it starts.
    """

    id: str
    title: str | None = None
    reference: str | None = None
    assumptions: str | None = None
    check: Callable[..., Verdict] | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    quick: dict[str, Any] = field(default_factory=dict)
    specs: Mapping[str, Parameter] = field(default_factory=dict)
    footprint: Callable[[Mapping[str, Any]], int] | None = None
    statement: Statement | None = None

    def __post_init__(self):
        if not callable(self.check):
            raise TypeError(f"claim {self.id}: check must be callable, got {self.check!r}")
        texts = {"title": self.title, "reference": self.reference, "assumptions": self.assumptions}
        if self.statement is not None:
            typed = [name for name, text in texts.items() if text is not None]
            if typed:
                raise TypeError(f"claim {self.id}: {', '.join(typed)} come from its statement, not typed")
            for name, text in statement_texts(self.statement).items():
                object.__setattr__(self, name, text)
        elif any(text is None for text in texts.values()):
            raise TypeError(f"claim {self.id}: without a statement, title, reference and assumptions are required")
        undeclared = set(self.defaults) - set(self.specs)
        if undeclared:
            raise TypeError(f"claim {self.id}: parameters without a declaration: {', '.join(sorted(undeclared))}")

    def parameters(self, quick: bool = False, **overrides) -> dict[str, Any]:
        """The defaults (quick profile if asked) with the overrides, every value checked against `specs`."""
        specs = {name: spec for name, spec in self.specs.items() if name in self.defaults}
        return resolve_parameters(f"claim {self.id}", specs, self.footprint, self.defaults,
                                  self.quick if quick else {}, overrides)

    def parameter_rows(self) -> list[tuple[str, str, str, str]]:
        """(name, default, domain, meaning) of every parameter, in the order of the defaults."""
        return [(name, "auto" if value is None else str(value), self.specs[name].domain(), self.specs[name].meaning)
                for name, value in self.defaults.items()]

    def run(self, quick: bool = False, seed: int = 0, **overrides) -> Verdict:
        return self.check(seed=seed, **self.parameters(quick, **overrides))


def statement_texts(statement: Statement) -> dict[str, str]:
    """Title, reference and assumption text of a claim, printed from the statement's own objects."""
    assumptions = statement.assumption_text()
    if "success_probability" in statement.conclusions:
        assumptions += f"; with probability {compact(statement.conclusions['success_probability'])}"
    return {"title": f"{statement.name}: {statement.conclusion_text()}", "reference": statement.reference,
            "assumptions": assumptions}


_REGISTRY: dict[str, Claim] = {}


def register(claim: Claim) -> Claim:
    if claim.id in _REGISTRY:
        raise ValueError(f"claim {claim.id!r} is registered twice")
    _REGISTRY[claim.id] = claim
    return claim


def all_claims() -> dict[str, Claim]:
    for module in _CLAIM_MODULES:
        importlib.import_module(module)
    return dict(_REGISTRY)


def get_claim(claim_id: str) -> Claim:
    claims = all_claims()
    if claim_id not in claims:
        raise ValueError(f"unknown claim {claim_id!r}; known claims: {', '.join(claims)}")
    return claims[claim_id]
