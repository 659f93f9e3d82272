"""The registry of the paper's claims. Each ties a statement in `theory/` to a numeric check in `verify/`."""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from verify.parameters import Parameter, check_footprint, validate_parameters
from verify.verdicts import Verdict

# Modules that register claims; imported on first use of the registry.
_CLAIM_MODULES = ("verify.claims.single_token", "verify.claims.training_guarantee",
                  "verify.claims.generalization", "verify.claims.concentration",
                  "verify.claims.scaling", "verify.claims.failure_mode",
                  "verify.claims.multi_token")


@dataclass(frozen=True)
class Claim:
    """A statement of the paper and the check that measures it.

    `check(seed=..., **parameters)` returns a Verdict. `defaults` is the embedded default scale and
    `quick` the overrides of the quick profile. `specs` declares every parameter (type, domain, meaning);
    `footprint` estimates the bytes of float arrays a run allocates, so that what would not fit is refused
    before it starts.
    """

    id: str
    title: str
    reference: str
    assumptions: str
    check: Callable[..., Verdict]
    defaults: dict[str, Any] = field(default_factory=dict)
    quick: dict[str, Any] = field(default_factory=dict)
    specs: Mapping[str, Parameter] = field(default_factory=dict)
    footprint: Callable[[Mapping[str, Any]], int] | None = None

    def __post_init__(self):
        undeclared = set(self.defaults) - set(self.specs)
        if undeclared:
            raise TypeError(f"claim {self.id}: parameters without a declaration: {', '.join(sorted(undeclared))}")

    def parameters(self, quick: bool = False, **overrides) -> dict[str, Any]:
        """The defaults (quick profile if asked) with the overrides, every value checked against `specs`."""
        specs = {name: spec for name, spec in self.specs.items() if name in self.defaults}
        values = validate_parameters(f"claim {self.id}", specs,
                                     {**self.defaults, **(self.quick if quick else {}), **overrides})
        check_footprint(f"claim {self.id}", self.footprint, values)
        return values

    def parameter_rows(self) -> list[tuple[str, str, str, str]]:
        """(name, default, domain, meaning) of every parameter, in the order of the defaults."""
        return [(name, "auto" if value is None else str(value), self.specs[name].domain(), self.specs[name].meaning)
                for name, value in self.defaults.items()]

    def run(self, quick: bool = False, seed: int = 0, **overrides) -> Verdict:
        return self.check(seed=seed, **self.parameters(quick, **overrides))


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
