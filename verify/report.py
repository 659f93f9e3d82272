"""The report folder of `dpo-verify run`: report.md, PNG figures and results.json, written all or nothing."""
from __future__ import annotations

import json
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable, Iterable

from verify.outputs import write_folder_atomically
from verify.verdicts import Verdict, establishment


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for package in ("dpo-verify", "torch", "sympy", "numpy", "scipy", "torchdiffeq", "matplotlib"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


def markdown_cell(text: str) -> str:
    """Text as one cell of a Markdown table: on one line, with `|` escaped as `\\|` so it is shown, not split on."""
    return " ".join(str(text).split()).replace("|", "\\|")


def verdict_table(verdicts: Iterable[Verdict]) -> str:
    """One row per verdict. `established` tells `holds` (established: how) from `consistent` (what would
    establish it); an exact check has no failure-rate cell, its trials being instances, not a sample."""
    rows = ["| claim | verdict | established | trials | 95% upper failure rate | measured | bound | summary |",
            "|---|---|---|---|---|---|---|---|"]
    number = lambda x: "" if x is None else f"{x:.4g}"
    for v in verdicts:
        upper = "" if v.failure_rate_upper is None else f"{v.failure_rate_upper:.3g}"
        rows.append(f"| `{markdown_cell(v.claim)}` | {v.status.value} | {establishment(v.status, v.exact, v.details)} | "
                    f"{v.trials or ''} | {upper} | {number(v.measured)} | {number(v.bound)} | {markdown_cell(v.summary)} |")
    return "\n".join(rows)


def write_report(output: Path, verdicts: list[Verdict], figures: dict[str, Callable[[Path], Any]],
                 run_info: dict[str, Any], progress: Callable[[str], None] = lambda name: None,
                 option: str = "output") -> Path:
    """Build the report in a hidden sibling folder and swap it in only when complete (verify.outputs): an
    existing `output` is replaced only if an earlier report of this tool wrote it and nothing else is there."""

    def build(staging: Path) -> None:
        for name, draw in figures.items():
            progress(name)
            draw(staging / name)
        (staging / "results.json").write_text(json.dumps(
            {"run": run_info, "versions": versions(), "verdicts": [v.to_dict() for v in verdicts]},
            indent=2, default=str))
        figure_lines = "\n\n".join(f"![{name}]({name})" for name in figures)
        (staging / "report.md").write_text(
            f"# dpo-verify report\n\nProfile: {run_info.get('profile')}; seed {run_info.get('seed')}.\n\n"
            f"## Verdicts\n\n{verdict_table(verdicts)}\n\n## Figures\n\n{figure_lines}\n")

    write_folder_atomically(output, build, kind="run", option=option)
    return Path(output)
