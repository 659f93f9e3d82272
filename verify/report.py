"""The report folder of `dpo-verify run`: report.md, PNG figures and results.json, written all or nothing."""
from __future__ import annotations

import json
import platform
import shutil
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable, Iterable

from verify.verdicts import Verdict


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for package in ("dpo-verify", "torch", "sympy", "numpy", "scipy", "torchdiffeq", "matplotlib"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    return out


def verdict_table(verdicts: Iterable[Verdict]) -> str:
    rows = ["| claim | verdict | trials | 95% upper failure rate | measured | bound | summary |", "|---|---|---|---|---|---|---|"]
    for v in verdicts:
        upper = "" if v.failure_rate_upper is None else f"{v.failure_rate_upper:.3g}"
        number = lambda x: "" if x is None else f"{x:.4g}"
        rows.append(f"| `{v.claim}` | {v.status.value} | {v.trials or ''} | {upper} | {number(v.measured)} | "
                    f"{number(v.bound)} | {v.summary.replace('|', '/')} |")
    return "\n".join(rows)


def write_report(output: Path, verdicts: list[Verdict], figures: dict[str, Callable[[Path], Any]],
                 run_info: dict[str, Any], progress: Callable[[str], None] = lambda name: None) -> Path:
    """Build the report in a temporary sibling folder and move it into place only when complete."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}-", dir=output.parent))
    try:
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
        if output.exists():
            shutil.rmtree(output)
        staging.rename(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return output
