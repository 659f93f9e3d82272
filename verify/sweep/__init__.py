"""Sweeps over parameters and seeds for any claim or experiment, resumable, with results in SQLite.

`run_sweep` drives one config to completion against a store. Grid and random sweeps are a fixed list of
trials; a [search] sweep runs in rounds, and each round's next values are computed from the trials
already stored. That choice is a pure function of the stored results, which are pure functions of
(parameters, seed), so a resumed search walks the same path and skips what is done.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from verify.sweep.config import ConfigError, SweepConfig, load_config, trial_key
from verify.sweep.store import ResultStore, StoreError

__all__ = ["ConfigError", "StoreError", "SweepSummary", "load_config", "run_sweep", "next_search_value"]


@dataclass
class SweepSummary:
    sweep: str
    executor: str
    ran: int = 0
    skipped: int = 0  # already in the store
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    executor_start_seconds: float = 0.0

    @property
    def throughput(self) -> float:
        return self.ran / self.seconds if self.seconds > 0 else float("nan")


def next_search_value(history: dict[int, bool], start: int, maximum: int) -> int | None:
    """The next value to try, or None when settled: double from `start` until a value passes, then bisect
    between the largest failing value below it and the smallest passing one, down to adjacent integers."""
    passing = [q for q, ok in history.items() if ok]
    if not passing:
        q = start
        while q in history:
            if q >= maximum:
                return None  # nothing up to maximum passes
            q = min(2 * q, maximum)
        return q
    hi = min(passing)
    failing = [q for q, ok in history.items() if not ok and q < hi]
    lo = max(failing) if failing else None
    if lo is None:
        return None if hi == start else start
    if hi - lo <= 1:
        return None
    return (lo + hi) // 2


def search_result(history: dict[int, bool]) -> int | None:
    """The smallest passing value with its lower neighbour failing (what a settled search found)."""
    passing = [q for q, ok in history.items() if ok]
    return min(passing) if passing else None


def _tasks(config: SweepConfig, trials, done: set[str]):
    for parameters, seed in trials:
        if trial_key(parameters, seed) not in done:
            yield config.target, parameters, seed, config.quick


def _search_histories(config: SweepConfig, stored: list[dict]) -> dict[int, dict]:
    """For each grid point (by index): {value: passes} over values whose seeds are all stored without error."""
    from verify.sweep.experiments import EXPERIMENTS, resolve_target

    experiment = EXPERIMENTS[resolve_target(config.target)[1]]
    parameter = config.search.parameter
    by_key = {t["key"]: t for t in stored}
    histories = {}
    for index, point in enumerate(config.points):
        history = {}
        values = {t["parameters"][parameter] for t in stored
                  if {k: v for k, v in t["parameters"].items() if k != parameter} == point}
        for value in values:
            full = {**point, parameter: value}
            rows = [by_key.get(trial_key(full, s)) for s in config.seeds]
            if all(r is not None and r["error"] is None for r in rows):
                history[value] = experiment.passes([r["result"] for r in rows], experiment.parameters(**full))
        histories[index] = history
    return histories


def run_sweep(config: SweepConfig, store_path: Path | str, executor, resume: bool = False,
              progress: bool | None = None) -> SweepSummary:
    """Run every trial of `config` not yet in the store, appending each as it ends."""
    from tqdm import tqdm

    summary = SweepSummary(config.name, executor.name, executor_start_seconds=getattr(executor, "init_seconds", 0.0))
    with ResultStore(store_path) as store:
        store.register(config, resume)
        done = store.done_keys(config.name)
        bar = tqdm(total=0, desc=config.name, unit="trial", file=sys.stderr, dynamic_ncols=True,
                   disable=not sys.stderr.isatty() if progress is None else not progress)
        started = time.perf_counter()

        ran_keys = set()

        def run(tasks: list) -> None:
            bar.total += len(tasks)
            bar.refresh()
            for (target, parameters, seed, quick), (result, error, seconds) in executor.run(tasks):
                store.add(config.name, trial_key(parameters, seed), parameters, seed, result, error, seconds, executor.name)
                ran_keys.add(trial_key(parameters, seed))
                summary.ran += 1
                if error is not None:
                    summary.errors.append(f"{trial_key(parameters, seed)}: {error}")
                bar.update(1)

        try:
            if config.search is None:
                trials = config.trials()
                tasks = list(_tasks(config, trials, done))
                summary.skipped = len(trials) - len(tasks)
                run(tasks)
            else:
                spec = config.search
                used = set()  # keys of every trial the walk relied on, whoever ran it
                while True:
                    stored = store.trials(config.name)
                    stored_keys = {t["key"] for t in stored}
                    histories = _search_histories(config, stored)
                    tasks = []
                    for index, point in enumerate(config.points):
                        # values settled by stored trials never come back from next_search_value,
                        # so their trials are counted here, not below
                        for settled in histories[index]:
                            used |= {trial_key(p, s) for p, s in config.trials({**point, spec.parameter: settled})}
                        value = next_search_value(histories[index], spec.start, spec.maximum)
                        if value is None:
                            continue
                        trials = config.trials({**point, spec.parameter: value})
                        keys = {trial_key(p, s) for p, s in trials}
                        used |= keys & stored_keys
                        if keys <= stored_keys:
                            continue
                        tasks += list(_tasks(config, trials, stored_keys))
                    if not tasks:
                        break
                    run(tasks)
                summary.skipped = len(used - ran_keys)
        finally:
            bar.close()
            summary.seconds = time.perf_counter() - started
    return summary
