"""A sweep's TOML config: what to run (a claim or an experiment), over which parameters and seeds.

    [sweep]
    name = "empirical-scaling"            # the sweep's id in the store
    target = "experiment:empirical-scaling"   # or "claim:theorem-4.3"
    seeds = 4                             # 0..3, or an explicit list [0, 5, 9]
    mode = "grid"                         # or "random": `samples` draws from the [parameters] tables
    samples = 10                          # random mode
    random_seed = 0                       # random mode: the draws are a function of it
    quick = false                         # claims: start from the quick profile

    [parameters]
    K = [1, 2, 4]                         # a list is a grid axis
    v = 0.5                               # a scalar is fixed
    # random mode only: a table is a distribution
    # l_b = {low = 0.25, high = 0.5}      # uniform; log = true for log-uniform, integer = true to round
    # tokens = {choices = ["disjoint", "chain"]}

    [search]                              # optional: per grid point, the smallest value of one
    parameter = "Q"                       # parameter whose trials pass the experiment's criterion,
    start = 1                             # by doubling from `start`, then bisection to an integer
    maximum = 4096

The fingerprint hashes everything that changes which trials run or what they return, so a store can
refuse to mix two different configs under one sweep name.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import tomllib
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np

from theory.errors import UserInputError
from verify.parameters import SEED
from verify.sweep.experiments import EXPERIMENTS, check_point, resolve_target


class ConfigError(UserInputError):
    """A config that cannot be run; reported in one line."""


_SWEEP_KEYS = {"name", "target", "seeds", "mode", "samples", "random_seed", "quick"}
_SEARCH_KEYS = {"parameter", "start", "maximum"}
_DISTRIBUTION_KEYS = {"low", "high", "log", "integer", "choices"}
# Trials one sweep may hold: its keys are listed in memory, and a store of this size is already ~1 GB.
MAX_TRIALS = 10**6


@dataclass(frozen=True)
class SearchSpec:
    parameter: str
    start: int
    maximum: int


@dataclass(frozen=True)
class SweepConfig:
    name: str
    target: str
    seeds: tuple[int, ...]
    mode: str
    points: tuple[dict, ...]  # parameter sets (without the search parameter), in a fixed order
    quick: bool = False
    search: SearchSpec | None = None
    source: dict = field(default_factory=dict, compare=False)

    @property
    def fingerprint(self) -> str:
        spec = {"target": self.target, "seeds": self.seeds, "points": self.points, "quick": self.quick,
                "search": None if self.search is None else vars(self.search)}
        return hashlib.sha256(canonical_json(spec).encode()).hexdigest()[:16]

    def trials(self, point: dict | None = None) -> list[tuple[dict, int]]:
        """(parameters, seed) of every trial of a grid/random sweep, or of one search point."""
        points = self.points if point is None else (point,)
        return [(dict(p), s) for p in points for s in self.seeds]


def canonical_json(value) -> str:
    return json.dumps(plain(value), sort_keys=True, separators=(",", ":"))


def plain(value):
    """JSON-ready copy: tuples to lists, numpy scalars to Python, dict keys to str, enums to their value."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Enum):
        return plain(value.value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def trial_key(parameters: dict, seed: int) -> str:
    """The store's key of a trial: its canonical parameters and seed (readable, and unique by construction)."""
    return canonical_json({"parameters": parameters, "seed": seed})


def load_config(path: Path | str) -> SweepConfig:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config {path}: no such file") from None
    except OSError as error:  # a folder, no permission: the user's path, not a bug
        raise ConfigError(f"config {path}: cannot be read ({error.strerror or error})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"config {path}: not valid TOML: {error}") from None
    try:
        return parse_config(raw)
    except ConfigError as error:
        raise ConfigError(f"config {path}: {error}") from None


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _scalar(value) -> bool:
    return isinstance(value, (bool, int, float, str))


def parse_config(raw: dict) -> SweepConfig:
    unknown = set(raw) - {"sweep", "parameters", "search"}
    if unknown:
        raise ConfigError(f"unknown table [{sorted(unknown)[0]}]; expected [sweep], [parameters], [search]")
    sweep = raw.get("sweep")
    _require(isinstance(sweep, dict), "missing [sweep] table")
    unknown = set(sweep) - _SWEEP_KEYS
    if unknown:
        raise ConfigError(f"[sweep] has no key {sorted(unknown)[0]!r}; valid: {', '.join(sorted(_SWEEP_KEYS))}")
    name, target = sweep.get("name"), sweep.get("target")
    _require(isinstance(name, str) and name.strip() != "", "[sweep] name must be a non-empty string")
    _require(isinstance(target, str), "[sweep] target must be a string like 'experiment:empirical-scaling' or 'claim:theorem-4.3'")
    try:
        kind, target_id, defaults = resolve_target(target)
    except ValueError as error:
        raise ConfigError(f"[sweep] {error}") from None

    seeds = sweep.get("seeds", 1)
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        _require(1 <= seeds <= MAX_TRIALS, f"[sweep] seeds = {seeds}: a count must be in [1, {MAX_TRIALS}]")
        seeds = tuple(range(seeds))
    else:
        _require(isinstance(seeds, list) and seeds != [] and len(seeds) <= MAX_TRIALS
                 and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds),
                 f"[sweep] seeds must be a count or a non-empty list of at most {MAX_TRIALS} integers, got {_short(seeds)}")
        for s in seeds:
            _checked(SEED, "seed", s)
        _require(len(set(seeds)) == len(seeds), f"[sweep] seeds has duplicates: {_short(seeds)}")
        seeds = tuple(seeds)
    mode = sweep.get("mode", "grid")
    _require(mode in ("grid", "random"), f"[sweep] mode must be 'grid' or 'random', got {mode!r}")
    quick = sweep.get("quick", False)
    _require(isinstance(quick, bool), f"[sweep] quick must be true or false, got {quick!r}")
    _require(not quick or kind == "claim", "[sweep] quick applies to claims only")

    parameters = raw.get("parameters", {})
    _require(isinstance(parameters, dict), "[parameters] must be a table")
    for key in parameters:
        _require(key in defaults, f"[parameters] {target} has no parameter {key!r}; valid: {', '.join(sorted(defaults))}")

    search = None
    if "search" in raw:
        table = raw["search"]
        _require(isinstance(table, dict), "[search] must be a table")
        unknown = set(table) - _SEARCH_KEYS
        if unknown:
            raise ConfigError(f"[search] has no key {sorted(unknown)[0]!r}; valid: {', '.join(sorted(_SEARCH_KEYS))}")
        _require(kind == "experiment" and EXPERIMENTS[target_id].passes is not None,
                 f"[search] needs an experiment with a pass criterion; {target} has none")
        parameter = table.get("parameter")
        _require(parameter in defaults, f"[search] parameter must be one of {', '.join(sorted(defaults))}, got {parameter!r}")
        _require(parameter not in parameters, f"[search] parameter {parameter!r} must not also be in [parameters]")
        start, maximum = table.get("start", 1), table.get("maximum", 4096)
        _require(all(isinstance(x, int) and not isinstance(x, bool) for x in (start, maximum)) and 1 <= start <= maximum,
                 f"[search] needs integers 1 <= start <= maximum, got start = {start!r}, maximum = {maximum!r}")
        for value in (start, maximum):
            try:
                check_point(target, {parameter: value}, quick)
            except ValueError as error:
                raise ConfigError(f"[search] {error}") from None
        search = SearchSpec(parameter, start, maximum)

    if mode == "grid":
        for key, value in parameters.items():
            ok = _scalar(value) or (isinstance(value, list) and value != [] and all(_scalar(x) for x in value))
            _require(ok, f"[parameters] {key} must be a value or a non-empty list of values in grid mode, got {value!r}")
        axes = {k: (v if isinstance(v, list) else [v]) for k, v in parameters.items()}
        _require(math.prod(map(len, axes.values())) <= MAX_TRIALS,
                 f"[parameters] the grid has {math.prod(map(len, axes.values()))} points; at most {MAX_TRIALS} per sweep")
        points = tuple(dict(zip(axes, combo)) for combo in itertools.product(*axes.values()))
    else:
        _require(search is None, "[search] works with mode = 'grid' only")
        samples, random_seed = sweep.get("samples"), sweep.get("random_seed", 0)
        _require(isinstance(samples, int) and not isinstance(samples, bool) and samples >= 1,
                 f"[sweep] random mode needs samples >= 1, got {samples!r}")
        _require(isinstance(random_seed, int) and not isinstance(random_seed, bool) and random_seed >= 0,
                 f"[sweep] random_seed must be an integer >= 0, got {random_seed!r}")
        points = _random_points(parameters, samples, random_seed)
    total = len(points) * len(seeds) * (1 if search is None else math.ceil(math.log2(search.maximum)) + 2)
    _require(total <= MAX_TRIALS, f"[sweep] {len(points)} parameter sets x {len(seeds)} seeds is {total} trials; "
                                  f"at most {MAX_TRIALS} per sweep")
    checked = []
    for point in points:  # the declared parameters of the target: the same validator as `check --set`
        try:
            checked.append({**point, **check_point(target, point, quick)})
        except ValueError as error:
            raise ConfigError(f"[parameters] {error}") from None
    return SweepConfig(name.strip(), target, seeds, mode, tuple(checked), quick, search, raw)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _checked(spec, name: str, value) -> None:
    try:
        spec.validate(name, value)
    except ValueError as error:
        raise ConfigError(f"[sweep] {error}") from None


def _random_points(parameters: dict, samples: int, random_seed: int) -> tuple[dict, ...]:
    rng = np.random.default_rng(random_seed)  # draws are a function of random_seed and the table order only
    draws = {}
    for key, spec in parameters.items():
        if _scalar(spec):
            draws[key] = [spec] * samples
            continue
        _require(isinstance(spec, dict) and set(spec) <= _DISTRIBUTION_KEYS,
                 f"[parameters] {key}: random mode needs a value, {{low, high[, log][, integer]}} or {{choices}}, got {spec!r}")
        if "choices" in spec:
            choices = spec["choices"]
            _require(isinstance(choices, list) and choices != [] and set(spec) == {"choices"},
                     f"[parameters] {key}: choices must be a non-empty list, alone")
            draws[key] = [choices[i] for i in rng.integers(len(choices), size=samples)]
            continue
        low, high = spec.get("low"), spec.get("high")
        log, integer = spec.get("log", False), spec.get("integer", False)
        _require(all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in (low, high)) and low <= high,
                 f"[parameters] {key}: needs numbers low <= high, got low = {low!r}, high = {high!r}")
        _require(not log or low > 0, f"[parameters] {key}: log = true needs low > 0")
        u = rng.random(samples)
        values = np.exp(np.log(low) + u * (np.log(high) - np.log(low))) if log else low + u * (high - low)
        draws[key] = [int(round(x)) for x in values] if integer else [float(x) for x in values]
    return tuple({k: draws[k][i] for k in parameters} for i in range(samples))
