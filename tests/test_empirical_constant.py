"""The empirical constant of Theorem 4.3 (verify.empirical_constant, benchmarks/empirical_constant.py)."""
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from verify.empirical_constant import (QUICK, Layout, Settings, b4_constant, b4_worst_constant, dimension, fit_constant,
                                       log_risk_bound, measure, measurement_plan, noise_only_constant, samples_needed)
from verify.exact_risk import LOG10
from verify.outputs import is_marked_png

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "empirical_constant.py"


@pytest.fixture(scope="module")
def quick():
    return measure(QUICK)


def test_quick_measurement_gives_finite_log_risks_below_the_bound(quick):
    inside = [p for p in quick.points if p.inside]
    assert {(p.K, p.Q) for p in inside} == {(K, Q) for K in QUICK.Ks for Q in QUICK.Qs}
    for p in quick.points:
        assert p.log_risk.shape == (len(QUICK.seeds),) and np.all(np.isfinite(p.log_risk))
        assert np.all(p.log_risk < p.log_bound)
        assert p.d == 5 * p.Q and p.v <= 1 / (32 * math.sqrt(p.Q))
        # tau_1 ends Theorem 4.2's envelope: every training margin lies in [log 3/40, log 3].
        assert math.log(3) / 40 <= p.train_margin_range[0] <= p.train_margin_range[1] <= math.log(3)
    # Inside means every assumption holds; the probes below the floor fail Q >= 40 and nothing else.
    probes = [p for p in quick.points if not p.inside]
    assert probes and all(len(p.unmet) == 1 and p.unmet[0].startswith("Q >= 40") for p in probes)
    assert quick.dimensions == "d = 5Q at every point"


def test_quick_fit_per_layout(quick):
    keys = {(r.K, r.l_b, r.Z) for r in quick.layouts}
    # chain tokens need K >= 2 for Z = 2; l_b = 1/2 admits only Z = 1.
    assert keys == {(1, 0.25, 1), (1, 0.5, 1), (4, 0.25, 1), (4, 0.25, 2), (4, 0.5, 1)}
    for r in quick.layouts:
        assert 0 < r.fit.c < 1 and r.fit.r_squared > 0.999
        assert r.paper_ratio == pytest.approx(45 / r.fit.c)
        low, high = r.decades_below_bound
        assert 0 < low < high
    # The Z = 2 layout keeps more of each test point's noise in the margin: its risk falls more slowly.
    chain = next(r for r in quick.layouts if r.Z == 2)
    assert all(chain.fit.c > r.fit.c for r in quick.layouts if r.Z == 1)


def test_quick_samples_needed(quick):
    assert [s.K for s in quick.samples] == list(QUICK.Ks)
    for s in quick.samples:
        assert s.theory == {1: 764, 4: 834}[s.K]
        assert s.empirical == 40 and s.at_floor
        assert s.largest_log10_risk_at_floor < math.log10(0.05)
        assert s.probe_Q is not None and s.probe_Q < 40 and s.probe_log10_risk < math.log10(0.05)


def test_fit_recovers_c_on_synthetic_data():
    rng = np.random.default_rng(5)
    Qs = np.repeat([40, 60, 80, 120, 160], 3)
    for c in (45.0, 19.59, 0.002):
        exact = fit_constant(Qs, 3.0 - Qs / c)
        assert exact.c == pytest.approx(c, rel=1e-12) and exact.intercept == pytest.approx(3.0, abs=1e-9 * (1 + 160 / c))
        # With noise of standard deviation s on ln R, the slope's standard error is s / sqrt(sum (Q - mean)^2).
        s = 0.5
        noisy = fit_constant(Qs, 3.0 - Qs / c + rng.normal(0, s, Qs.shape))
        slope_error = s / math.sqrt(((Qs - Qs.mean()) ** 2).sum())
        assert abs(-1 / noisy.c + 1 / c) < 5 * slope_error
    assert fit_constant([40, 60, 80], [0.0, 1.0, 2.0]).c == math.inf  # a rising risk has no decay constant


def test_theory_constants():
    assert noise_only_constant() == 1 / 512
    assert b4_worst_constant() == pytest.approx(10029 / 512)
    assert b4_constant(1, 0.25) == pytest.approx(10221 / 2048) and b4_constant(2, 0.25) == pytest.approx(1125 / 128)
    # ln(2 K Q^2 e^{-Q/45}) read from the statement.
    assert log_risk_bound(10, 880) == pytest.approx(math.log(2 * 10 * 880**2) - 880 / 45)
    assert log_risk_bound(10, 880) / LOG10 < math.log10(0.05) < log_risk_bound(10, 879) / LOG10


def test_plan_and_settings():
    plan = measurement_plan(Settings(Ks=(1, 64), Qs=(40, 60, 80), bound_Q_min_Ks=(1,)))
    K1 = [(Q, layout.tokens, layout.l_b) for K, Q, layout in plan if K == 1]
    assert (764, "disjoint", 0.25) in K1 and not any(tokens == "chain" for _, tokens, _ in K1)
    assert (64, 13, Layout("disjoint", 0.25)) in plan  # d = 5 * 13 = 65 = K + 1
    assert dimension(64, 240, 3, 8 * 2**30) == 1200
    assert dimension(64, 240, 3, 3 * 2 * 64 * 240 * 8 * 100) == 100  # memory-limited d, still >= K + 1
    with pytest.raises(ValueError, match="d >= K \\+ 1"):
        dimension(64, 240, 3, 3 * 2 * 64 * 240 * 8 * 10)
    for bad in (dict(Qs=(20, 40, 60)), dict(Qs=(40, 40, 60)), dict(Ks=(0,)), dict(beta=0.0), dict(delta=1),
                dict(layouts=(Layout("chain", 0.5),)), dict(seeds=())):
        with pytest.raises(ValueError):
            Settings(**bad)


def test_samples_needed_above_the_floor():
    """A risk above delta at the smallest Q moves Q_min up; one above delta at the largest Q leaves none."""
    from verify.empirical_constant import RiskPoint

    def point(Q, log_risk):
        return RiskPoint(1, Q, 5 * Q, 0.001, 0.25, "disjoint", 1, (0,), np.array([log_risk]), 0.0, (), (0.2, 0.2), 0.0)

    falling = [point(40, math.log(0.2)), point(60, math.log(0.01)), point(80, math.log(0.001))]
    needed = samples_needed(1, falling, 0.05)
    assert needed.empirical == 60 and not needed.at_floor and needed.probe_Q is None
    rising = [point(40, math.log(0.01)), point(60, math.log(0.01)), point(80, math.log(0.2))]
    assert samples_needed(1, rising, 0.05).empirical is None


def load_script():
    spec = importlib.util.spec_from_file_location("empirical_constant_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_script_writes_only_to_the_folder_given(tmp_path, capsys):
    script = load_script()
    before = {p.name: p.stat().st_mtime_ns for p in (ROOT / "benchmarks").iterdir()}
    out = tmp_path / "report"
    out.mkdir()
    assert script.main(["--quick", "--output-dir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["empirical_constant.md", "empirical_constant.png"]
    text = (out / "empirical_constant.md").read_text()
    assert "| K | l_b | Z (tokens) | c (fit)" in text and "python benchmarks/empirical_constant.py --quick" in text
    assert is_marked_png(out / "empirical_constant.png")
    assert {p.name: p.stat().st_mtime_ns for p in (ROOT / "benchmarks").iterdir()} == before
    # A second run replaces its own files; a file it did not write is refused with one line and exit 2.
    assert script.main(["--quick", "--output-dir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["empirical_constant.md", "empirical_constant.png"]
    capsys.readouterr()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "empirical_constant.md").write_text("notes of my own\n")
    assert script.main(["--quick", "--output-dir", str(foreign)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(foreign / "empirical_constant.md") in err
    assert (foreign / "empirical_constant.md").read_text() == "notes of my own\n"
    assert sorted(p.name for p in foreign.iterdir()) == ["empirical_constant.md"]
    assert script.main(["--quick", "--output-dir", str(tmp_path / "missing")]) == 2
    assert "--output-dir" in capsys.readouterr().err and not (tmp_path / "missing").exists()

