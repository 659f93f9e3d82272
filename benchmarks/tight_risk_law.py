"""The tight risk law of the paper's model against the paper's bound, the exact risk and the flagship sweep;
writes tight_risk_law.md and tight_risk_law.png.

    python benchmarks/tight_risk_law.py [--quick] [--output-dir benchmarks]

The law (`theory.tight_risk_law`): after gradient flow to tau_1 each cluster's standardised test margin is
z = T X / sqrt(X^2 + Y^2), a Gaussian X over a noncentral chi Y (d - 1 degrees), to leading order in the
time-integrated weights. This script measures (`verify.tight_risk_law`):
- its approximation error against the exact risk of trained models at the claim's points;
- the tight Q_min(K, d, v, delta) by the law's mean risk and by its 95% bound, next to Theorem 4.3's Q_min and the
  sweep's measured Q_min (benchmarks/sweeps/empirical_scaling.md), with the law's resolution of the sweep's rule;
- the figure: the law, the paper's bound and the exact risk against Q; Q_min against K.
About 6 minutes of one core; --quick takes about one.

Both files go to --output-dir (an existing folder). An existing tight_risk_law.md is replaced only if this script
wrote it (its first line says so); the PNG only if it carries dpo-verify's mark (`verify.outputs`).
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from theory.errors import UserInputError  # noqa: E402
from theory.tight_risk_law import PAPER_V_RULE, noise_floor, TIGHT_RISK_LAW  # noqa: E402
from verify import plots  # noqa: E402
from verify.exact_risk import LOG10  # noqa: E402
from verify.outputs import check_report_pair, write_file_atomically, write_text_atomically  # noqa: E402
from verify.tight_risk_law import (POINTS, SweepRule, draw_figure, measure_point, risk_curve,  # noqa: E402
                                   samples_row)

MARKDOWN = "tight_risk_law.md"
FIGURE = "tight_risk_law.png"
FIRST_LINE = "<!-- written by benchmarks/tight_risk_law.py; rerun it to update this file -->"
COMMAND = "python benchmarks/tight_risk_law.py"

# Q_min measured by the flagship sweep (benchmarks/sweeps/empirical_scaling.md, v = 0.5, l_b = 0.5, disjoint tokens)
SWEEP_KS = (1, 2, 4, 8, 16, 32, 64)
SWEEP_2K_PLUS_2 = dict(zip(SWEEP_KS, (2, 2, 4, 5, 10, 18, 36)))
SWEEP_D_130 = dict(zip(SWEEP_KS, (37, 36, 35, 36, 36, 36, 36)))
SWEEP_V, SWEEP_L_B, TARGET, CONFIDENCE_SHARE = 0.5, 0.5, 0.05, 0.05


@dataclass(frozen=True)
class Settings:
    trials: int = 64  # per claim point, for the approximation error
    inside: tuple = ((1, 12), (10, 12))  # (K, d) with v = 1/(32 sqrt Q), l_b = 1/4
    inside_Qs: tuple = (40, 80, 160, 320, 880)
    fixed: tuple = ((1, 4), (8, 18), (64, 130))  # (K, d) at v = 0.5, l_b = 0.5
    fixed_Qs: tuple = (1, 2, 4, 8, 16, 32, 64)
    seeds: int = 3
    Ks: tuple = SWEEP_KS
    replicates: int = 2000  # law draws per Q for the sweep's pass probability


QUICK = Settings(trials=16, inside=((1, 12),), inside_Qs=(40, 160), fixed=((1, 4),), fixed_Qs=(1, 4, 16), seeds=2,
                 Ks=(1, 64), replicates=400)


# --- measuring --------------------------------------------------------------------------------------------------
def measure(settings: Settings, progress=lambda line: None) -> dict:
    started = time.perf_counter()
    seeds = list(range(settings.trials))
    points = []
    for name, point in POINTS.items():
        progress(f"approximation error at {name}")
        points.append(measure_point(point, seeds))
    curve_seeds = list(range(settings.seeds))
    inside = []
    for K, d in settings.inside:
        progress(f"inside curve K = {K}")
        inside.append(risk_curve(K, d, None, settings.inside_Qs, curve_seeds, l_b=0.25))
    fixed = []
    for K, d in settings.fixed:
        progress(f"fixed-noise curve K = {K}, d = {d}")
        fixed.append(risk_curve(K, d, SWEEP_V, settings.fixed_Qs, curve_seeds, l_b=SWEEP_L_B))
    rule = SweepRule(delta=TARGET)
    rows = []
    for setting, dimension, sweep in (("d = 2K+2", lambda K: 2 * K + 2, SWEEP_2K_PLUS_2), ("d = 130", lambda K: 130, SWEEP_D_130)):
        for K in settings.Ks:
            progress(f"Q_min at {setting}, K = {K}")
            rows.append(samples_row(setting, K, dimension(K), SWEEP_V, SWEEP_L_B, TARGET, CONFIDENCE_SHARE,
                                    sweep[K], rule, settings.replicates))
    progress("Q_min at the paper's point")
    paper_row = samples_row("paper's point", 10, 11, PAPER_V_RULE, 0.25, TARGET, CONFIDENCE_SHARE)
    return dict(points=points, inside=inside, fixed=fixed, rows=rows, paper_row=paper_row,
                seconds=time.perf_counter() - started)


# --- writing -----------------------------------------------------------------------------------------------------
def _q(value) -> str:
    return "–" if value is None else str(value)


def render(m: dict, command: str) -> str:
    floor1 = noise_floor(TIGHT_RISK_LAW, TARGET, SWEEP_L_B, 1)
    floor2 = noise_floor(TIGHT_RISK_LAW, TARGET, SWEEP_L_B, 2)
    rows, paper_row = m["rows"], m["paper_row"]
    within = [row.within_resolution for row in rows if row.within_resolution is not None]
    lines = ["# The paper's model, tightly", "",
             f"Reproduce: `{command}` ({m['seconds']:.0f} s on this machine); the claim: "
             "`dpo-verify check tight-risk-law`.", "",
             "## The law (`theory/tight_risk_law.py`)", "",
             "Gradient flow to τ₁ gives W − W₀ = (β/(Nτ)) Σₙ λₙ Dₙ gₙᵀ with λₙ = ∫σ(−rₙ)dt (Eq. 6, exact). "
             "To leading order all λₙ are equal (exact at v = 0, δ = 0); then cluster k's standardised test margin is",
             "", "    z_k = T X / sqrt(X² + Y²),   X ~ N(ν, 1),   Y ~ χ'_{d−1}(ω),   T = |μ_k|/v,", "",
             "with, for disjoint tokens and δ = 0, ν = √(2Q)/(v√(1+l_b²)) and ω² = 2Q l_b²/(v²(1+l_b²)); shared tokens "
             "turn the direction by ρ = 2/√(4+n) ≥ √(2/(Z+1)) (n pairs sharing a token), and Def. C.1's δ enters "
             "through worst-case bounds from Lemma C.2. R(P) = (1/2K) Σ_k Φ(−z_k). With probability ≥ 1 − δ′ over the "
             "training set, R(P) ≤ B = Φ(−q*), where Pr[z < q*] = δ′/(2K) = ∫₀^∞ Φ(κy − ν) f_χ′(y) dy, "
             "κ = q*/√(T² − q*²): one integral, in mpmath. The mean E[R] is Pr[χ′²_d(λ₁) ≤ χ′²_d(λ₂)], "
             "λ₁,₂ = ((ν ± T)² + ω²)/2 (Gil-Pelaez).", "",
             "Leading order in closed form (δ = 0): R ≈ Φ(−ρ/(v√(1 + (d−1)v²/(2Q)))), so",
             "", "    Q_min ≈ (d − 1) v⁴ z_δ² / (2(ρ² − v² z_δ²)),   z_δ = Φ⁻¹(1 − δ),", "",
             f"linear in d, free of K, and finite only below the noise floor v* = ρ/z_δ ({floor1:.4f} for Z = 1, "
             f"{floor2:.4f} for Z = 2 at δ = {TARGET:g}). K enters only the 1 − δ′ bound, through δ′/(2K). Inside "
             "Theorem 4.3's assumptions (v = 1/(32√Q)) −ln R ≈ 512ρ²Q: 23,040ρ² times the paper's Q/45, which "
             "benchmarks/empirical_constant.md measured (c = 1/512 for Z = 1, 1.5/512 for the chain).", "",
             "## Approximation error (exact risk of trained models against the law)", "",
             "| point | Theorem 4.3 | log10 R (range) | log10 B | R > B | error, leading (decades, max / median) "
             "| error, first correction (max / median) | KS p of z | mean R: measured / law |",
             "|---|---|---|---|---|---|---|---|---|"]
    for p in m["points"]:
        risks = p.log_risk / LOG10
        mean = f"{p.mean_risk:.4g} / {p.mean_law:.4g}" if p.mean_law is not None else "–"
        lines.append(f"| {p.point.name} | {'inside' if not p.unmet_paper else 'outside'} | {risks.min():,.4f} … "
                     f"{risks.max():,.4f} | {p.log_bound / LOG10:,.4f} | {sum(p.above_bound)}/{len(p.seeds)} | "
                     f"{p.leading_error.max():.3g} / {np.median(p.leading_error):.2g} | {p.corrected_error.max():.3g} / "
                     f"{np.median(p.corrected_error):.2g} | {p.calibration_p:.3g} | {mean} |")
    lines += ["", "The law's mean at the shared-token and δ points is taken at the worst geometry, so it lies above "
              "the measured mean there; for disjoint tokens with δ = 0 it is the mean itself.", "",
              "## Q_min: the law, the paper and the sweep", "",
              f"Target risk δ = {TARGET:g}; the 95% bound uses δ′ = {CONFIDENCE_SHARE:g}. The sweep's Q_min comes from "
              "benchmarks/sweeps/empirical_scaling.md (v = 0.5, l_b = 0.5, disjoint tokens; 8 seeds × 20,000 test draws, "
              "pass when the pooled 95% Clopper–Pearson upper bound < δ). Its resolution [Q_lo, Q_hi] is where the law "
              "gives that rule a pass probability between 2.5% and 97.5% (law draws, no training).", "",
              "| setting | K | d | v | paper's Q_min | law: mean ≤ δ | law: 95% bound ≤ δ | closed form | sweep | "
              "law's resolution of the sweep | within |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in [*rows, paper_row]:
        resolution = "–" if row.resolution is None else f"[{row.resolution[0]}, {row.resolution[1]}]"
        closed = "–" if row.closed_form is None else f"{row.closed_form:.2f}"
        flag = {True: "yes", False: "**no**", None: "–"}[row.within_resolution]
        lines.append(f"| {row.setting} | {row.K} | {row.d} | {row.v} | {row.paper} | {_q(row.mean)} | {_q(row.bound)} | "
                     f"{closed} | {_q(row.sweep)} | {resolution} | {flag} |")
    lines += ["", f"The sweep's value lies within the law's resolution in {sum(within)}/{len(within)} settings. At the "
              f"paper's point (K = 10, δ = 0.05, inside the assumptions with d = K + 1 = 11) the law needs Q = "
              f"{_q(paper_row.bound)} even for its 95% bound: Theorem 4.3's own floor Q ≥ 40 is what sets 40, against "
              f"the paper's {paper_row.paper} (benchmarks/empirical_constant.md measures 40, the floor, and 10^-221 at "
              "Q = 1).", "",
              "**Findings.** At fixed d the mean law does not depend on K, and neither does the sweep (35–37 at "
              "d = 130); with d = 2K + 2 the samples needed grow with d, linearly, as the closed form says. K enters "
              "only the high-probability bound, through the union bound's level δ′/(2K), and mildly. The quantity "
              "that sets Q_min is the noise dimension against the samples, (d − 1)v²/(2Q), set against the noise "
              "level v and the floor v*.", "", "![the law, the paper's bound and the exact risk](tight_risk_law.png)", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a small measurement (seconds to a minute)")
    parser.add_argument("--output-dir", default=str(Path(__file__).resolve().parent),
                        help="existing folder for tight_risk_law.md and .png (default: benchmarks/)")
    args = parser.parse_args(argv)
    try:
        markdown, figure_path = check_report_pair(args.output_dir, MARKDOWN, FIGURE, FIRST_LINE)
    except UserInputError as error:
        print(f"tight_risk_law: {error}", file=sys.stderr)
        return 2
    m = measure(QUICK if args.quick else Settings(), progress=lambda line: print(line, file=sys.stderr, flush=True))
    command = COMMAND + (" --quick" if args.quick else "")
    write_file_atomically(figure_path, lambda temp: plots.save(draw_figure(m["inside"], m["fixed"], m["rows"]), temp),
                          "--output-dir")
    write_text_atomically(markdown, render(m, command), "--output-dir", ".md", FIRST_LINE)
    print(f"wrote {markdown} and {figure_path} in {m['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
