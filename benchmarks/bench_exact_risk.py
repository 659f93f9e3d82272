"""Cost of the exact population risk against Monte Carlo with 80,000 test draws, per trained model, in one run.

    python benchmarks/bench_exact_risk.py [--output BENCHMARKS.md] [--repeats 21]

For each setting one model is trained by gradient flow to tau_1 (not timed); then, alternating `--repeats`
times so that a change in the machine's load hits both:
- exact: `verify.exact_risk.exact_risk` on the trained rows (2K Gaussian tails in log space);
- Monte Carlo: 80,000 fresh test draws from P, their margins and the error count (what the generalization
  claims did per model before the exact risk).
The ratio is of the medians. Both give the risk of the same model; the exact log10 R and the Monte Carlo
count are printed next to the times.

The result replaces its own section of BENCHMARKS.md (between the markers below) and leaves the rest; the
file is written to a temporary file beside it and moved into place.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from verify.data_model import DiverseValueDistribution, token_layout  # noqa: E402
from verify.exact_risk import exact_risk  # noqa: E402
from verify.training import gradient_flow, sample_margins, tau_1  # noqa: E402

BEGIN, END = "<!-- bench_exact_risk: begin -->", "<!-- bench_exact_risk: end -->"
DRAWS = 80_000
BETA, TAU, SEED = 0.01, 1.0, 0


def settings() -> tuple[tuple[str, int, int, int, float, float], ...]:
    """(label, K, Q, d, v, l_b): the default points of theorem-b.4 and theorem-4.3 (v as those claims resolve it),
    and a noisy one whose risk Monte Carlo resolves."""
    from theory.generalization import THEOREM_4_3, THEOREM_B4
    from verify.claims.generalization import resolve_v

    b4, _ = resolve_v(THEOREM_B4, 4, 100, 8, None, 0.25, "chain", 1.0, None, "pairs")
    main, _ = resolve_v(THEOREM_4_3, 10, 880, 12, None, 0.25, "chain", 1.0, None, "pairs")
    return ((f"theorem-b.4 default (K = 4, Q = 100, d = 8, v = {b4:.4g})", 4, 100, 8, b4, 0.25),
            (f"theorem-4.3 default (K = 10, Q = 880, d = 12, v = {main:.4g})", 10, 880, 12, main, 0.25),
            ("outside the assumptions (K = 4, Q = 100, d = 8, v = 0.3)", 4, 100, 8, 0.3, 0.25))


def monte_carlo(dist, result, draws: int) -> int:
    test = dist.test_set([SEED], draws)
    margins = sample_margins(test.features, test.chosen, test.rejected, result.rows, result.delta_rows, BETA)
    return int((margins <= 0).sum())


def measure(K: int, Q: int, d: int, v: float, l_b: float, repeats: int) -> dict:
    dist = DiverseValueDistribution(K, d, v, l_b, tokens=token_layout("chain", K))
    result = gradient_flow(dist.sample([SEED], Q), BETA, TAU, [0.0, tau_1(K, BETA, TAU)])
    exact = exact_risk(dist, [SEED], result.rows, result.delta_rows, BETA)  # untimed warm-up of both
    errors = monte_carlo(dist, result, DRAWS)
    times = {"exact": [], "monte carlo": []}
    for _ in range(repeats):
        started = time.perf_counter()
        exact_risk(dist, [SEED], result.rows, result.delta_rows, BETA)
        times["exact"].append(time.perf_counter() - started)
        started = time.perf_counter()
        monte_carlo(dist, result, DRAWS)
        times["monte carlo"].append(time.perf_counter() - started)
    medians = {name: statistics.median(values) for name, values in times.items()}
    return dict(log10_risk=float(exact.log10_risk[0]), errors=errors, medians=medians,
                ranges={name: (min(values), max(values)) for name, values in times.items()},
                ratio=medians["monte carlo"] / medians["exact"])


def write_section(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else ""
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + section + text[text.index(END) + len(END) + 1:]
    else:
        text = text + ("\n" if text else "") + section
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    parser.add_argument("--repeats", type=int, default=21, help="timed runs of each method per setting (default 21)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    started = time.perf_counter()
    rows = []
    for label, K, Q, d, v, l_b in settings():
        m = measure(K, Q, d, v, l_b, args.repeats)
        (e_lo, e_hi), (m_lo, m_hi) = m["ranges"]["exact"], m["ranges"]["monte carlo"]
        rows.append(f"| {label} | {m['medians']['exact'] * 1e3:.3f} ({e_lo * 1e3:.3f}-{e_hi * 1e3:.3f}) | "
                    f"{m['medians']['monte carlo'] * 1e3:.1f} ({m_lo * 1e3:.1f}-{m_hi * 1e3:.1f}) | {m['ratio']:.0f} | "
                    f"{m['log10_risk']:.6g} | {DRAWS * 10 ** m['log10_risk']:.4g} | {m['errors']} |")
        print(rows[-1], flush=True)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    section = (f"{BEGIN}\n# Benchmarks: exact population risk against Monte Carlo\n\n"
               f"Written by `benchmarks/bench_exact_risk.py` in {time.perf_counter() - started:.0f} s.\n\n"
               f"- Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, torch threads "
               f"{torch.get_num_threads()}, torch {torch.__version__}, Python {platform.python_version()}; load average "
               f"at the end: {load}\n\n"
               f"One trained model per setting (gradient flow to tau_1, beta = {BETA}, chain tokens, l_b = 1/4, seed "
               f"{SEED}); {args.repeats} alternating timed runs of each method after one untimed run of each. Times in "
               f"milliseconds: median (min-max). Monte Carlo = {DRAWS:,} fresh test draws, their margins and the error "
               "count.\n\n"
               "| setting | exact risk (ms) | Monte Carlo, 80,000 draws (ms) | Monte Carlo / exact (medians) | "
               "exact log10 R | errors expected (80,000 R) | Monte Carlo errors |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows) + f"\n{END}\n")
    write_section(Path(args.output), section)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
