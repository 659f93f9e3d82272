"""`dpo-verify real`: the real-data report (paper §5, App. E–F) in one folder: report.md, figures, results.json.

The work is split by job: `verify.real.pipeline` computes, `verify.real.figures` draws, `verify.real.markdown`
writes the text; this module checks the folder, runs them and writes the folder whole.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from verify.outputs import check_output_folder, write_folder_atomically
from verify.real.figures import write_figures
from verify.real.markdown import render_markdown
from verify.real.pipeline import DEFAULT_SEED, analyse, log, summarise


def run_real_report(output_dir: Path, data_dir: Path | None = None, quick: bool = False, progress: bool = True, *,
                    seed: int = DEFAULT_SEED, per_cluster: int | None = None, causal_lm: str | Path | None = None) -> dict:
    """Produce the real-data report in `output_dir` and return its summary (also written to results.json).

    The folder is written whole at the end (verify.outputs.write_folder_atomically); an existing one is
    replaced only if an earlier report of this tool wrote it.

    data_dir: a full copy of the persona dataset (default: the trimmed copy shipped with the package).
    quick: pipeline.QUICK_PER_CLUSTER statements per cluster instead of DEFAULT_PER_CLUSTER (for tests; seconds).
    per_cluster: override the statements drawn per cluster (None: the mode's default; 0 or less: all).
    causal_lm: a local Hugging Face causal-LM directory to use instead of the bundled sentence encoder.
    """
    started = time.perf_counter()
    check_output_folder(output_dir, "output_dir")  # before the work; nothing is created until it is done
    analysis = analyse(data_dir, quick, progress, seed=seed, per_cluster=per_cluster, causal_lm=causal_lm)

    def build(staging: Path) -> dict:
        figures = write_figures(staging, analysis)
        summary = summarise(analysis, figures, time.perf_counter() - started)
        (staging / "results.json").write_text(json.dumps(summary, indent=1))
        (staging / "report.md").write_text(render_markdown(summary))
        return summary

    summary = write_folder_atomically(output_dir, build, kind="real", option="output_dir")
    log(progress, f"report written to {output_dir} in {time.perf_counter() - started:.1f} s")
    return summary
