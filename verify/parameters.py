"""Declared parameters: type, domain and meaning of every parameter a claim or an experiment takes.

One validator (`Parameter.validate`, through `validate_parameters`) checks values from the command line
(text), from sweep configs and stores (TOML/JSON values) and from the Python API before anything runs.
Its message names the parameter, the value and the allowed domain, in one line. Text is read by
`theory.numbers.parse_number` only: nothing reaches an evaluator.

The domains are those of the numerics (what the sampler and the trainers can take in float64), not the
statements' assumptions: a value outside an assumption is still run and reported as assumptions-unmet.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any, Callable, Mapping

from theory.errors import UserInputError
from theory.numbers import NumberError, parse_number

class ParameterError(UserInputError):
    """A parameter value outside its declared domain, an unknown name, or a job too large for memory."""


# The text values that mean "derive it from the statement" for an optional parameter.
AUTO = ("auto", "none")


@dataclass(frozen=True)
class Parameter:
    """kind: 'int', 'real', 'choice', 'int-list', 'choice-list', 'tokens' or 'dimension' (an int or a rule in K).

    For numbers, [low, high] bounds the value (open ends with low_open/high_open); `optional` allows None
    (text 'auto'), meaning the claim derives the value from its statement.
    """

    kind: str
    meaning: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    optional: bool = False

    def domain(self) -> str:
        if self.kind in ("choice", "choice-list"):
            listed = ", ".join(self.choices)
            text = f"one of {listed}" if self.kind == "choice" else f"comma-separated, each one of {listed}"
        elif self.kind == "tokens":
            text = "disjoint, chain, or grouped:Z with an integer Z >= 1"
        elif self.kind == "dimension":
            text = f"an integer in {self._interval()}, or a rule in K: {', '.join(self.choices)}"
        else:
            number = {"int": "an integer", "real": "a finite real", "int-list": "comma-separated integers, each"}[self.kind]
            text = f"{number} in {self._interval()}" if self.low is not None or self.high is not None else number
        return text + (", or auto (derived from the statement)" if self.optional else "")

    def _interval(self) -> str:
        low = "-inf" if self.low is None else _short(self.low)
        high = "inf" if self.high is None else _short(self.high)
        return f"{'(' if self.low_open or self.low is None else '['}{low}, {high}{')' if self.high_open or self.high is None else ']'}"

    def validate(self, name: str, value: Any) -> Any:
        """The value in its working type (int, float, str), or ValueError naming name, value and domain."""
        if self.optional and (value is None or (isinstance(value, str) and value.strip().lower() in AUTO)):
            return None
        try:
            return self._convert(name, value)
        except NumberError as error:
            reason = error.reason
        except ValueError as error:
            reason = str(error)
        raise ParameterError(f"parameter {name} = {_show(value)} {reason}; allowed: {self.domain()}")

    def _convert(self, name: str, value: Any) -> Any:
        if self.kind == "int":
            return self._bounded(_integer(name, value))
        if self.kind == "real":
            return self._bounded(_real(name, value))
        if self.kind == "choice":
            if not isinstance(value, str) or value.strip() not in self.choices:
                raise ValueError("is not an allowed choice")
            return value.strip()
        if self.kind == "int-list":
            items = _items(value)
            return ",".join(str(self._bounded(_integer(name, item))) for item in items)
        if self.kind == "choice-list":
            items = _items(value)
            unknown = [item for item in items if item not in self.choices]
            if unknown:
                raise ValueError(f"has {unknown[0]!r}, not an allowed choice")
            return ",".join(items)
        if self.kind == "tokens":
            if isinstance(value, str) and value.strip() in ("disjoint", "chain"):
                return value.strip()
            match = re.fullmatch(r"grouped:(\d{1,6})", value.strip()) if isinstance(value, str) else None
            if not match or int(match.group(1)) < 1:
                raise ValueError("is not a token layout")
            return f"grouped:{int(match.group(1))}"
        if self.kind == "dimension":
            if isinstance(value, str) and value.replace(" ", "") in self.choices:
                return value.replace(" ", "")
            return self._bounded(_integer(name, value))
        raise AssertionError(f"unknown parameter kind {self.kind!r}")

    def _bounded(self, x):
        if self.low is not None and (x < self.low or (self.low_open and x == self.low)):
            raise ValueError("is below the domain")
        if self.high is not None and (x > self.high or (self.high_open and x == self.high)):
            raise ValueError("is above the domain")
        return x


def _short(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        number = parse_number(name, value)
        if isinstance(number, int):
            return number
    raise ValueError("is not an integer")


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("is not a number")
    if isinstance(value, str):
        value = parse_number(name, value)
    if isinstance(value, (int, float, Fraction)):
        try:
            x = float(value)
        except OverflowError:
            raise ValueError("overflows float64") from None
        if not math.isfinite(x):
            raise ValueError("is not finite")
        if x != 0 and abs(x) < 2.2250738585072014e-308:
            raise ValueError("is below the smallest normal float64 (2.2e-308)")
        return x
    raise ValueError("is not a number")


def _items(value: Any) -> list[str]:
    if isinstance(value, (list, tuple)):
        items = [str(item).strip() for item in value]
    elif isinstance(value, str):
        items = [item.strip() for item in value.split(",")]
    elif isinstance(value, int) and not isinstance(value, bool):
        items = [str(value)]
    else:
        raise ValueError("is not a comma-separated list")
    if not items or any(item == "" for item in items):
        raise ValueError("has an empty entry")
    return items


# --- the shared vocabulary ----------------------------------------------------------------------------
# Sizes are capped where a single trial's arrays would no longer fit a workstation; the per-claim memory
# estimate (`Footprint`) refuses what would not fit this machine.
MAX_SIZE = 10**7

COMMON: dict[str, Parameter] = {
    "K": Parameter("int", "number of values (pairs of clusters)", 1, 10**5),
    "Q": Parameter("int", "training samples per cluster", 1, MAX_SIZE),
    "d": Parameter("int", "feature dimension", 1, 10**5),
    "v": Parameter("real", "noise level of the features", 0, 1e3),
    "l_b": Parameter("real", "norm of the shared bias b", 0, 1e3),
    "beta": Parameter("real", "DPO's beta", 0, 1e3, low_open=True),
    "tau": Parameter("real", "time scale of the gradient flow", 0, 1e6, low_open=True),
    "c": Parameter("real", "the unspecified Bernstein constant of Lemma B.1", 0, 1e6, low_open=True),
    "tokens": Parameter("tokens", "response-token layout of the value pairs"),
    "trials": Parameter("int", "independent training sets (seeds)", 1, 10**5),
    "test_size": Parameter("int", "Monte Carlo test draws per trial", 1, MAX_SIZE),
    "grid": Parameter("int", "time points on [0, tau_1] where the envelope is checked", 2, 10**4),
    "Z_reading": Parameter("choice", "how Z counts shared tokens", choices=("pairs", "clusters")),
    "epsilon": Parameter("real", "the epsilon of Lemma B.1", 0, 1e6, low_open=True),
    "delta": Parameter("real", "the delta of delta-approximate orthogonality (Def. C.1)", 0, 0.5, high_open=True),
    "v_outside": Parameter("real", "a noise level outside the assumptions, measured for contrast (0: skip)", 0, 1e3),
    "V": Parameter("int", "vocabulary size", 2, 10**5),
    "N": Parameter("int", "training samples", 1, MAX_SIZE),
}


# Seeds index torch and numpy generators (64-bit); a claim adds up to `trials` to its seed.
SEED = Parameter("int", "seed of every random draw", 0, 2**62)


def vocabulary(**overrides: Parameter | str) -> dict[str, Parameter]:
    """COMMON with overrides: a Parameter replaces an entry; a string is the name of a COMMON entry made optional."""
    out = dict(COMMON)
    for name, spec in overrides.items():
        out[name] = replace(COMMON[name], optional=True) if spec == "optional" else spec
    return out


# --- memory ---------------------------------------------------------------------------------------------
def available_memory() -> int:
    """Bytes this process may still allocate: MemAvailable from /proc/meminfo, or physical memory."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_footprint(owner: str, footprint: Callable[[Mapping[str, Any]], int] | None, values: Mapping[str, Any]) -> None:
    """Refuse, in one line, a job whose estimated float64 arrays would not fit in the memory available now."""
    if footprint is None:
        return
    need, have = footprint(values), available_memory()
    if need > have:
        raise ParameterError(f"{owner}: these parameters need about {need / 2**30:.3g} GiB of arrays, "
                         f"more than the {have / 2**30:.3g} GiB available; reduce the sizes")


def validate_parameters(owner: str, specs: Mapping[str, Parameter], values: Mapping[str, Any]) -> dict[str, Any]:
    """Every value checked against its declaration; unknown names refused with the list of valid ones."""
    out = {}
    for name, value in values.items():
        if name not in specs:
            raise ParameterError(f"{owner} has no parameter {name!r}; valid: {', '.join(sorted(specs))}")
        out[name] = specs[name].validate(name, value)
    return out


def resolve_parameters(owner: str, specs: Mapping[str, Parameter], footprint, defaults: Mapping[str, Any],
                       *overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The defaults with each layer of overrides, every value checked, and the memory estimate checked:
    what a claim and an experiment do before they run."""
    merged = dict(defaults)
    for layer in overrides:
        merged.update(layer)
    values = validate_parameters(owner, specs, merged)
    check_footprint(owner, footprint, values)
    return values
