"""Wall time of the command line, measured in one run: start-up of `dpo-verify list` against importing sympy,
and `dpo-verify run --quick` and the default profile.

    python benchmarks/bench_cli.py [--output BENCHMARKS.md] [--repeats 11] [--only startup|profiles]

The result replaces its own section of BENCHMARKS.md (between the markers below) and leaves the rest.

Targets, reported with their ratio and never asserted by a test (a timed test fails on a busy machine):
- start-up: `dpo-verify list` within 2x the time of `python -c "import sympy"`. The two commands alternate,
  `--repeats` times each, so that a change in the machine's load hits both; the ratio is of the medians.
- profiles: quick <= 15 s and default <= 120 s on 2 cores.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- bench_cli: begin -->", "<!-- bench_cli: end -->"
PROFILES = {"quick": (["--quick"], 15.0), "default": ([], 120.0)}
STARTUP_TARGET = 2.0  # list / import sympy


def list_command() -> list[str]:
    """The console script a user runs, from this interpreter's environment; `python -m verify` without one."""
    script = shutil.which("dpo-verify", path=str(Path(sys.executable).parent)) or shutil.which("dpo-verify")
    return [script, "list"] if script else [sys.executable, "-m", "verify", "list"]


def wall_time(command: list[str], cwd: str) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()[-500:]}")
    return seconds


def startup_rows(repeats: int) -> tuple[list[str], float]:
    commands = {"`dpo-verify list`": list_command(), '`python -c "import sympy"`': [sys.executable, "-c", "import sympy"]}
    times = {name: [] for name in commands}
    with tempfile.TemporaryDirectory() as folder:  # away from the checkout, as a user would run it
        for name, command in commands.items():  # one untimed run each: file-system caches warm for both
            wall_time(command, folder)
        for _ in range(repeats):
            for name, command in commands.items():
                times[name].append(wall_time(command, folder))
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["`dpo-verify list`"] / medians['`python -c "import sympy"`']
    rows = [f"| {name} | {medians[name]:.3f} | {min(values):.3f} | {max(values):.3f} |" for name, values in times.items()]
    return rows, ratio


def time_profile(flags: list[str]) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "verify", "run", *flags, "--output", f"{folder}/report"],
                                capture_output=True, text=True)
        return time.perf_counter() - started, result.returncode


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--repeats", type=int, default=11, help="timed runs of each start-up command (default 11)")
    parser.add_argument("--only", choices=("startup", "profiles"), help="measure one part (the section then holds only it)")
    args = parser.parse_args(argv)
    parts = []
    if args.only in (None, "startup"):
        rows, ratio = startup_rows(args.repeats)
        verdict = "met" if ratio <= STARTUP_TARGET else "NOT met"
        print("\n".join(rows) + f"\nratio {ratio:.2f} ({verdict})", flush=True)
        parts.append(f"## Start-up: `dpo-verify list` against `import sympy`\n\n"
                     f"{args.repeats} alternating runs of each, after one untimed run of each; wall time in seconds.\n\n"
                     f"| command | median | min | max |\n|---|---|---|---|\n" + "\n".join(rows) +
                     f"\n\nRatio of the medians: **{ratio:.2f}** (target <= {STARTUP_TARGET:.0f}: {verdict}).\n")
    if args.only in (None, "profiles"):
        rows = []
        for name, (flags, target) in PROFILES.items():
            seconds, code = time_profile(flags)
            verdict = "met" if seconds <= target else "NOT met"
            rows.append(f"| {name} | {seconds:.1f} | {target:.0f} | {seconds / target:.2f} | {verdict} | {code} |")
            print(rows[-1], flush=True)
        parts.append("## `dpo-verify run` profiles\n\n"
                     "| profile | wall time (s) | target (s) | time / target | verdict | exit status |\n"
                     "|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    section = (f"{BEGIN}\n# Benchmarks: the command line\n\nWritten by `benchmarks/bench_cli.py`.\n\n"
               f"- Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, "
               f"Python {platform.python_version()}; load average at the end: {load}\n\n"
               + "\n".join(parts) + f"{END}\n")
    path = Path(args.output)
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + section + text[text.index(END) + len(END) + 1:]
    else:
        text = text + ("\n" if text else "") + section
    path.write_text(text)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
