"""The results store: one SQLite file, one row per finished trial.

Why these choices:
- WAL journal: readers (sweep-report) never block the writer, and several sweep processes can append to
  one file; a busy timeout serialises their short write transactions instead of failing.
- one transaction per trial, committed as soon as the trial ends: a crash (kill -9 included) loses at most
  the trials still running, which `--resume` runs again;
- UNIQUE(sweep, trial_key) with INSERT OR IGNORE: a trial stored twice (two processes resuming the same
  sweep, or a commit that did land before a crash) keeps one row, so resume never duplicates.
- synchronous = NORMAL: in WAL mode a committed transaction survives a process crash; only an OS crash can
  drop the last commits, and those trials are simply run again.
"""
from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from pathlib import Path

from theory.errors import UserInputError
from verify.sweep.config import SweepConfig, canonical_json

SCHEMA = """
CREATE TABLE IF NOT EXISTS sweeps (
    sweep TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    target TEXT NOT NULL,
    config TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS trials (
    id INTEGER PRIMARY KEY,
    sweep TEXT NOT NULL REFERENCES sweeps(sweep),
    trial_key TEXT NOT NULL,
    parameters TEXT NOT NULL,
    seed INTEGER NOT NULL,
    result TEXT,
    error TEXT,
    seconds REAL,
    executor TEXT,
    finished REAL NOT NULL,
    UNIQUE (sweep, trial_key)
);
"""


class StoreError(UserInputError):
    """A store that cannot take this sweep (a different config under the same name, or not a store)."""


class ResultStore:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.connection = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            self.connection.execute("PRAGMA busy_timeout = 60000")
            self.connection.execute("PRAGMA journal_mode = WAL")
            self.connection.execute("PRAGMA synchronous = NORMAL")
            with self._transaction():
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        self.connection.execute(statement)
        except sqlite3.DatabaseError as error:
            raise StoreError(f"store {self.path}: not a results store ({error})") from None

    @contextlib.contextmanager
    def _transaction(self):
        self.connection.execute("BEGIN IMMEDIATE")  # take the write lock up front: no upgrade deadlock
        try:
            yield
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        self.connection.execute("COMMIT")

    def close(self) -> None:
        self.connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- sweeps -------------------------------------------------------------------------------------
    def register(self, config: SweepConfig, resume: bool) -> int:
        """Record the sweep, or check that the stored one has the same config. Returns the trials stored."""
        with self._transaction():
            row = self.connection.execute("SELECT fingerprint FROM sweeps WHERE sweep = ?", (config.name,)).fetchone()
            if row is None:
                self.connection.execute("INSERT INTO sweeps VALUES (?, ?, ?, ?, ?)",
                                        (config.name, config.fingerprint, config.target, canonical_json(config.source), time.time()))
                return 0
            if row[0] != config.fingerprint:
                raise StoreError(f"store {self.path} holds sweep {config.name!r} from a different config "
                                 f"(fingerprint {row[0]}, this config {config.fingerprint}); rename the sweep or use another --store")
            stored = self.connection.execute("SELECT COUNT(*) FROM trials WHERE sweep = ?", (config.name,)).fetchone()[0]
        if stored and not resume:
            raise StoreError(f"store {self.path} already holds {stored} trials of sweep {config.name!r}; pass --resume to continue it")
        return stored

    def sweeps(self) -> list[dict]:
        rows = self.connection.execute("SELECT sweep, fingerprint, target, config, created FROM sweeps ORDER BY created").fetchall()
        return [dict(sweep=r[0], fingerprint=r[1], target=r[2], config=json.loads(r[3]), created=r[4]) for r in rows]

    # --- trials -------------------------------------------------------------------------------------
    def done_keys(self, sweep: str) -> set[str]:
        return {r[0] for r in self.connection.execute("SELECT trial_key FROM trials WHERE sweep = ?", (sweep,))}

    def add(self, sweep: str, key: str, parameters: dict, seed: int, result_json: str | None, error: str | None,
            seconds: float, executor: str) -> bool:
        """Append one finished trial in its own transaction; False if it was already stored."""
        with self._transaction():
            cursor = self.connection.execute(
                "INSERT OR IGNORE INTO trials (sweep, trial_key, parameters, seed, result, error, seconds, executor, finished) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (sweep, key, canonical_json(parameters), seed, result_json, error, seconds, executor, time.time()))
            return cursor.rowcount == 1

    def trials(self, sweep: str) -> list[dict]:
        rows = self.connection.execute(
            "SELECT trial_key, parameters, seed, result, error, seconds, executor FROM trials WHERE sweep = ? ORDER BY id",
            (sweep,)).fetchall()
        return [dict(key=r[0], parameters=json.loads(r[1]), seed=r[2], result=None if r[3] is None else json.loads(r[3]),
                     result_json=r[3], error=r[4], seconds=r[5], executor=r[6]) for r in rows]
