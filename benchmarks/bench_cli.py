"""Wall time of `dpo-verify run --quick` and of the default profile, measured in one run.

    python benchmarks/bench_cli.py [--output BENCHMARKS.md]

The result replaces its own section of BENCHMARKS.md (between the markers below) and leaves the rest.

Targets (issue 6): quick <= 15 s and default <= 120 s on 2 cores. Both are reported with their ratio to
the target, never asserted by a test.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- bench_cli: begin -->", "<!-- bench_cli: end -->"
PROFILES = {"quick": (["--quick"], 15.0), "default": ([], 120.0)}


def time_profile(flags: list[str]) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "verify", "run", *flags, "--output", f"{folder}/report"],
                                capture_output=True, text=True)
        return time.perf_counter() - started, result.returncode


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    args = parser.parse_args(argv)
    rows = []
    for name, (flags, target) in PROFILES.items():
        seconds, code = time_profile(flags)
        verdict = "met" if seconds <= target else "NOT met"
        rows.append(f"| {name} | {seconds:.1f} | {target:.0f} | {seconds / target:.2f} | {verdict} | {code} |")
        print(rows[-1], flush=True)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    section = (f"{BEGIN}\n# Benchmarks: `dpo-verify run` profiles (issue 6)\n\nWritten by `benchmarks/bench_cli.py`.\n\n"
            f"- Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, "
            f"Python {platform.python_version()}; load average at the end: {load}\n\n"
            f"| profile | wall time (s) | target (s) | time / target | verdict | exit status |\n|---|---|---|---|---|---|\n"
            + "\n".join(rows) + f"\n{END}\n")
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
