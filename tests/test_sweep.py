"""Sweeps: resume after kill -9, one-line config errors, a shared store, local vs Ray.

Trials are tiny (the `sleep` test double, or the empirical-scaling experiment at K <= 2, 200 test points);
most of the time goes to starting worker processes.
"""
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from verify.cli import main
from verify.sweep import load_config, next_search_value, run_sweep
from verify.sweep.config import parse_config
from verify.sweep.executors import LocalExecutor
from verify.sweep.store import ResultStore

TINY = Path(__file__).resolve().parents[1] / "benchmarks" / "sweeps" / "tiny.toml"


def sweep_cli(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "verify", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def finish(process, timeout=120):
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def sleep_config(path: Path, name: str, seeds: int, seconds: float, values=(1.0, 2.0)) -> Path:
    path.write_text(f'[sweep]\nname = "{name}"\ntarget = "experiment:sleep"\nseeds = {seeds}\n\n'
                    f"[parameters]\nseconds = {seconds}\nvalue = {list(values)}\n")
    return path


def stored(store: Path, sweep: str) -> list[tuple[str, str]]:
    with sqlite3.connect(store) as connection:
        return connection.execute("SELECT trial_key, result FROM trials WHERE sweep = ? ORDER BY trial_key", (sweep,)).fetchall()


def count_rows(store: Path) -> int:
    try:
        with sqlite3.connect(store, timeout=5) as connection:
            return connection.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


@pytest.mark.slow
def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path):
    config = sleep_config(tmp_path / "sweep.toml", "killed", seeds=15, seconds=0.05)
    total = 30
    store = tmp_path / "store.sqlite"
    victim = sweep_cli("sweep", config, "--store", store, "--workers", "1", start_new_session=True)
    deadline = time.monotonic() + 60
    while count_rows(store) < 5 and time.monotonic() < deadline and victim.poll() is None:
        time.sleep(0.05)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    os.killpg(victim.pid, signal.SIGKILL)  # the orphaned pool workers of the killed sweep
    before = count_rows(store)
    assert 5 <= before < total, f"kill landed after {before} trials"

    code, out, err = finish(sweep_cli("sweep", config, "--store", store, "--workers", "1", "--resume"))
    assert code == 0, err
    assert f"{total - before} trials run, {before} already stored" in out
    executor = LocalExecutor(1)
    try:
        run_sweep(load_config(config), tmp_path / "reference.sqlite", executor)
    finally:
        executor.close()
    resumed, uninterrupted = stored(store, "killed"), stored(tmp_path / "reference.sqlite", "killed")
    assert len(resumed) == total and len({k for k, _ in resumed}) == total
    assert resumed == uninterrupted


@pytest.mark.parametrize("search_start", [1, 3])
def test_search_doubles_then_bisects(search_start):
    threshold = 11
    history, value = {}, next_search_value({}, search_start, 64)
    while value is not None:
        history[value] = value >= threshold
        value = next_search_value(history, search_start, 64)
    assert min(q for q, ok in history.items() if ok) == threshold
    assert threshold - 1 in history and not history[threshold - 1]
    assert next_search_value({q: False for q in (1, 2, 4, 8)}, 1, 8) is None  # nothing passes up to maximum


def test_search_sweep_resumes_from_a_partial_store(tmp_path):
    raw = {"sweep": {"name": "search", "target": "experiment:sleep", "seeds": 2},
           "parameters": {"threshold": [3, 6]}, "search": {"parameter": "Q", "start": 1, "maximum": 16}}
    config = parse_config(raw)
    executor = LocalExecutor(1)
    try:
        full = run_sweep(config, tmp_path / "full.sqlite", executor)
        # a partial store: the first 5 trials of the full run, as if killed there
        partial = tmp_path / "partial.sqlite"
        with ResultStore(partial) as store:
            store.register(config, resume=False)
            for trial in ResultStore(tmp_path / "full.sqlite").trials("search")[:5]:
                store.add("search", trial["key"], trial["parameters"], trial["seed"], trial["result_json"], None, 0.0, "local")
        resumed = run_sweep(config, partial, executor, resume=True)
    finally:
        executor.close()
    assert resumed.ran == full.ran - 5 and not full.errors
    assert stored(partial, "search") == stored(tmp_path / "full.sqlite", "search")
    from verify.sweep.report import search_table

    found = [row["found"] for row in search_table(config, ResultStore(partial).trials("search"))]
    assert found == [3, 6]


def test_bad_configs_and_stores_give_one_line_and_exit_2(tmp_path, capsys):
    good = sleep_config(tmp_path / "good.toml", "taken", seeds=1, seconds=0.0)
    store = tmp_path / "store.sqlite"
    with ResultStore(store) as s:  # a store that holds sweep "taken" with one trial
        config = load_config(good)
        s.register(config, resume=False)
        s.add("taken", "k", {}, 0, "{}", None, 0.0, "local")
    mismatched = sleep_config(tmp_path / "mismatched.toml", "taken", seeds=3, seconds=0.0)
    (tmp_path / "corrupt.toml").write_text("[sweep\nname = ")
    (tmp_path / "unknown.toml").write_text('[sweep]\nname = "x"\ntarget = "experiment:empirical-scaling"\n[parameters]\nkappa = 3\n')
    (tmp_path / "target.toml").write_text('[sweep]\nname = "x"\ntarget = "claim:no-such-claim"\n')
    (tmp_path / "garbage.sqlite").write_bytes(b"not a database" * 100)
    cases = {
        "not valid TOML": ("sweep", tmp_path / "corrupt.toml", "--store", store),
        "no parameter 'kappa'": ("sweep", tmp_path / "unknown.toml", "--store", store),
        "unknown claim 'no-such-claim'": ("sweep", tmp_path / "target.toml", "--store", store),
        "from a different config": ("sweep", mismatched, "--store", store, "--resume"),
        "pass --resume": ("sweep", good, "--store", store),
        "not a results store": ("sweep", good, "--store", tmp_path / "garbage.sqlite"),
        "no such file": ("sweep", tmp_path / "missing.toml"),
        "--workers must be in [1, 1024]": ("sweep", good, "--store", tmp_path / "other.sqlite", "--workers", "0"),
    }
    through_subprocess = {"not valid TOML", "from a different config"}  # the console entry point itself
    processes = {fragment: sweep_cli(*args) for fragment, args in cases.items() if fragment in through_subprocess}
    for fragment, args in cases.items():
        if fragment in processes:
            code, _, err = finish(processes[fragment])
        else:
            capsys.readouterr()
            code, err = main(list(map(str, args))), capsys.readouterr().err
        lines = err.strip().splitlines()
        assert code == 2 and "Traceback" not in err and len(lines) == 1 and fragment in lines[0], (fragment, err)


@pytest.mark.slow
def test_concurrent_sweeps_share_one_store(tmp_path):
    store = tmp_path / "shared.sqlite"
    a = sleep_config(tmp_path / "a.toml", "a", seeds=15, seconds=0.01)
    b = sleep_config(tmp_path / "b.toml", "b", seeds=10, seconds=0.01, values=(3.0,))
    runs = [sweep_cli("sweep", a, "--store", store, "--workers", "1", "--resume"),
            sweep_cli("sweep", a, "--store", store, "--workers", "1", "--resume"),  # the same sweep twice at once
            sweep_cli("sweep", b, "--store", store, "--workers", "1")]
    # (3 processes and 3 workers on 2 cores: the writes interleave)
    for process in runs:
        code, _, err = finish(process)
        assert code == 0, err
    with sqlite3.connect(store) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        counts = dict(connection.execute("SELECT sweep, COUNT(*) FROM trials GROUP BY sweep").fetchall())
    assert counts == {"a": 30, "b": 10}
    code, out, err = finish(sweep_cli("sweep-report", store, "--output", tmp_path / "report"))
    assert code == 0, err
    report = (tmp_path / "report" / "report.md").read_text()
    assert "## a" in report and "## b" in report and "| parameters | seeds |" in report


@pytest.mark.slow
def test_local_and_ray_give_identical_results(tmp_path):
    pytest.importorskip("ray", reason="Ray is the optional [distributed] extra: pip install -e '.[distributed]'")
    from verify.sweep.executors import RayExecutor

    config = load_config(TINY)
    local = LocalExecutor(1)
    try:
        run_sweep(config, tmp_path / "local.sqlite", local)
    finally:
        local.close()
    ray_executor = RayExecutor("local", 2)  # a private instance on loopback, started and stopped here
    try:
        summary = run_sweep(config, tmp_path / "ray.sqlite", ray_executor)
    finally:
        ray_executor.close()
    assert summary.ran == len(config.trials()) and not summary.errors
    assert stored(tmp_path / "ray.sqlite", "tiny") == stored(tmp_path / "local.sqlite", "tiny")
