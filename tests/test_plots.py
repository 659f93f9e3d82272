"""Plotting has one style: matplotlib's object API through verify.plots (new_figure, save), with no pyplot and no
global backend switch, for the notebooks' figures and for the sweep report's."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from verify import plots
from verify.fits import linear_fit
from verify.outputs import PNG_SIGNATURE


def _is_png(path) -> bool:
    return path.read_bytes().startswith(PNG_SIGNATURE)


def test_shared_helpers_draw_what_they_are_given(tmp_path, object_api_only):
    fig, axes = plots.new_figure(1, 3, 9, 3)
    assert axes.shape == (1, 3)
    train, test, error = axes[0]
    times = np.arange(5)
    plots.margins_per_K(train, test, [(K, times, times / K, times / (2 * K)) for K in (1, 2)])
    assert [line.get_label() for line in train.lines] == ["K = 1", "K = 2"]
    assert np.allclose(test.lines[1].get_ydata(), times / 4)
    fit = linear_fit([1, 2, 4], [0.1, 0.2, 0.4])
    plots.fit_line(error, fit, 1, 4)
    x, y = error.lines[0].get_data()
    assert x[0] == 1 and x[-1] == 4 and np.allclose(y, fit(x))
    assert plots.save(fig, tmp_path / "helpers.png") == tmp_path / "helpers.png" and _is_png(tmp_path / "helpers.png")


def test_sweep_report_plots_use_the_shared_style(tmp_path, object_api_only):
    from verify.sweep.report import _empirical_scaling_section, _generic_plot

    trials = [{"parameters": {"Q": Q, "K": K}, "result": {"risk": 1 / (Q * K)}} for Q in (8, 16, 32) for K in (1, 2)]
    path = _generic_plot(trials, ["risk"], tmp_path, "demo")
    assert path.parent == tmp_path and path.name == "demo_risk_against_K.png" and _is_png(path)

    def row(regime, K, found):
        return {"parameters": {"regime": regime, "v": 0.5, "d": 8, "K": K, "delta": 0.05}, "found": found,
                "tried": {found: {"passes": True, "errors": 0, "n": 100}, found // 2: {"passes": False, "errors": 9, "n": 100}}}
    config = SimpleNamespace(seeds=(0, 1), search=SimpleNamespace(start=8))
    lines = _empirical_scaling_section(config, [row("inside", 1, 400), row("inside", 2, 440), row("fixed", 1, 16),
                                                row("fixed", 2, 32)], tmp_path, "scaling")
    assert "![empirical scaling law](scaling_scaling.png)" in lines and _is_png(tmp_path / "scaling_scaling.png")
