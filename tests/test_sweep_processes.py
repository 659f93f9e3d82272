"""Sweep processes: no child of a killed sweep outlives it, and a resumed [search] counts what it reused.

Children are read from /proc (Linux); a process is identified by (pid, start time) so a reused pid is
never mistaken for a survivor.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from verify.sweep import run_sweep
from verify.sweep.config import parse_config
from verify.sweep.executors import LocalExecutor
from verify.sweep.store import ResultStore

PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state first), or None if there is no such process."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()


def children(parent: int) -> dict[int, str]:
    """{pid: start time} of the live children of `parent`."""
    found = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None and int(fields[1]) == parent and fields[0] != "Z":
                found[int(entry.name)] = fields[19]
    return found


def alive(pid: int, started: str) -> bool:
    """The same process (same start time) still runs; a zombie awaiting its reaper has ended."""
    fields = _stat_fields(pid)
    return fields is not None and fields[19] == started and fields[0] != "Z"


def command_line(pid: int) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.slow
@pytest.mark.skipif(not (PROC / "self" / "stat").exists(), reason="reads processes from /proc (Linux)")
def test_kill_9_of_a_sweep_leaves_no_worker_or_resource_tracker(tmp_path):
    config = tmp_path / "sweep.toml"
    config.write_text('[sweep]\nname = "orphans"\ntarget = "experiment:sleep"\nseeds = 20\n\n'
                      "[parameters]\nseconds = 5.0\nvalue = [1.0, 2.0]\n")  # trials outlast the test
    victim = subprocess.Popen([sys.executable, "-m", "verify", "sweep", str(config), "--store", str(tmp_path / "s.sqlite"),
                               "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        spawned = {}
        while time.monotonic() < deadline and victim.poll() is None:
            spawned = children(victim.pid)
            workers = [pid for pid in spawned if "spawn_main" in command_line(pid)]
            if len(workers) == 2 and any("resource_tracker" in command_line(pid) for pid in spawned):
                break
            time.sleep(0.1)
        assert victim.poll() is None, victim.stderr.read()
        assert len(spawned) == 3, f"expected 2 workers and the resource tracker, saw {spawned}"
        time.sleep(1.0)  # the workers are inside their first trials
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(alive(pid, started) for pid, started in spawned.items()):
            time.sleep(0.1)
        survivors = {pid: command_line(pid) for pid, started in spawned.items() if alive(pid, started)}
        assert not survivors, f"alive 10 s after kill -9 of their parent: {survivors}"
    finally:
        try:
            os.killpg(victim.pid, signal.SIGKILL)  # only if the test failed: whatever of its group remains
        except (ProcessLookupError, PermissionError):
            pass
        victim.wait()
        victim.stderr.close()


SEARCH = {"sweep": {"name": "search", "target": "experiment:sleep", "seeds": 2},
          "parameters": {"threshold": [3, 6]}, "search": {"parameter": "Q", "start": 1, "maximum": 16}}


@pytest.mark.parametrize("kept", [5, None], ids=["partial store, cut inside a value", "complete store"])
def test_resumed_search_counts_the_stored_trials_it_reused(tmp_path, kept):
    config = parse_config(SEARCH)
    executor = LocalExecutor(1)
    try:
        full = run_sweep(config, tmp_path / "full.sqlite", executor)
        trials = ResultStore(tmp_path / "full.sqlite").trials("search")[:kept]
        resumed_store = tmp_path / "resumed.sqlite"
        with ResultStore(resumed_store) as store:
            store.register(config, resume=False)
            for trial in trials:
                store.add("search", trial["key"], trial["parameters"], trial["seed"], trial["result_json"], None, 0.0, "local")
        resumed = run_sweep(config, resumed_store, executor, resume=True)
    finally:
        executor.close()
    assert full.skipped == 0 and not full.errors and not resumed.errors
    assert resumed.skipped == len(trials)
    assert resumed.ran == full.ran - len(trials)
    assert len(ResultStore(resumed_store).trials("search")) == full.ran


@pytest.mark.slow
def test_cli_resume_of_a_finished_search_prints_every_trial_as_already_stored(tmp_path):
    toml = tmp_path / "search.toml"
    toml.write_text('[sweep]\nname = "search"\ntarget = "experiment:sleep"\nseeds = 2\n\n'
                    '[parameters]\nthreshold = [3, 6]\n\n[search]\nparameter = "Q"\nstart = 1\nmaximum = 16\n')
    store = tmp_path / "s.sqlite"
    executor = LocalExecutor(1)
    try:
        full = run_sweep(parse_config(SEARCH), store, executor)
    finally:
        executor.close()
    result = subprocess.run([sys.executable, "-m", "verify", "sweep", str(toml), "--store", str(store), "--workers", "1",
                             "--resume"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert full.ran > 0 and f"0 trials run, {full.ran} already stored" in result.stdout
