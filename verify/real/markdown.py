"""report.md of the real-data report: the summary (`verify.real.pipeline.summarise`) as text and tables."""
from __future__ import annotations

import math

import numpy as np

from verify.real.statistics import PAPER_COVARIANCE_FROBENIUS, PAPER_MEAN_SQUARED_DISTANCE


def _cell(text: str) -> str:
    """Text for a markdown table cell: a literal '|' would end the cell."""
    return str(text).replace("|", "\\|")


def _f(x, digits=3) -> str:
    return "n/a" if x is None else f"{x:.{digits}g}"


def _share(x) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def render_markdown(s: dict) -> str:
    g, sp_, tr = s["geometry"], s["cluster_spread"], s["trend"]
    lines = [
        "# Real data: persona statements through a pretrained encoder",
        "",
        f"Mode: {s['mode']}; seed {s['seed']}; {s['statements_per_cluster'] or 'all'} statements per cluster; "
        f"data: {s['data']}.",
        f"Feature map: {s['source']['feature_map']} — {s['source']['feature']} (d = {s['dimension']}).",
        f"Reference: {s['source']['reference']}.",
        "",
        "Data: Anthropic persona evaluations (Perez et al. 2022, github.com/anthropics/evals, CC-BY 4.0). Each persona",
        "gives C_{i,+} (matching answer ' Yes') and C_{i,-} (' No'); the prompt is the dataset's `question` field.",
        "",
        "## Shared component and near-orthogonality (paper §5, Fig. 3)",
        "",
        f"- Mean cosine between ' Yes' statements of different personas (shared component): "
        f"**{g['shared_component_mean_cosine']:.3f}** (within a persona: {g['within_persona_mean_cosine']:.3f}).",
        f"- After subtracting the global mean: off-diagonal mean {g['centred_offdiagonal_mean_cosine']:+.3f}, "
        f"mean |.| {g['centred_offdiagonal_mean_abs_cosine']:.3f}, max |.| {g['centred_offdiagonal_max_abs_cosine']:.3f}; "
        f"within a persona {g['centred_within_persona_mean_cosine']:.3f}.",
        "",
        "![cosine matrices](cosine_matrices.png)",
        "",
        "## Cluster spread (App. E), embeddings scaled to unit norm on average",
        "",
        "| | ‖Cov‖_F | mean squared distance to the mean |",
        "|---|---|---|",
        f"| this encoder, C_(i,+) clusters (average over {len(g['personas'])} personas) | "
        f"{sp_['positive_clusters']['covariance_frobenius']:.3f} | {sp_['positive_clusters']['mean_squared_distance']:.3f} |",
        f"| this encoder, all clusters | {sp_['all_clusters']['covariance_frobenius']:.3f} | "
        f"{sp_['all_clusters']['mean_squared_distance']:.3f} |",
        f"| paper, Llama-3.1-8B | {PAPER_COVARIANCE_FROBENIUS} | {PAPER_MEAN_SQUARED_DISTANCE} |",
        "",
        f"Effective rank (tr Σ)²/‖Σ‖²_F of the noise: {sp_['positive_clusters']['effective_rank']:.1f} here, "
        f"{sp_['paper_llama_3_1_8b']['effective_rank_implied']:.1f} implied by the paper's averages "
        f"(isotropic noise v²I would give d = {s['dimension']}).",
        "",
        "![cluster spread](cluster_spread.png)",
        "",
        "## Fitted parameters of P and the theorems' assumptions",
        "",
        "Model units: c_i = (μ₊ − μ₋)/2 scaled to unit norm on average; b = mean of the pair midpoints; "
        "v² = mean tr(Cov)/d; δ from Def. C.1 (Löwdin frame); Z = K (pairs) or 2K (clusters): every persona uses "
        "the same two tokens, which P excludes (§1.5). ε = 1/(16 v (Z+2)).",
        "",
        "| K | Q | l_b | v | d·v² | v_top | δ | max cos(c_i,c_j) | ‖c_i‖ range | assumptions failing (Thm 4.2, Z = K) | risk bound 4.3 | risk bound B.4 | sup_c P(success) 4.2 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for K, f in s["fitted_parameters"].items():
        rows = {(c["statement"], c["Z_reading"]): c for c in s["theorem_checks"][K]}
        main, b4 = rows[("Theorem 4.2", "pairs")], rows[("Theorem B.4", "pairs")]
        failing = _cell(", ".join(x["assumption"] for x in main["failed_assumptions"]) or "none")
        lines.append(
            f"| {K} | {f['Q']} | {f['l_b']:.3g} | {f['v']:.3g} | {f['d'] * f['v'] ** 2:.3g} | {f['v_top']:.3g} | {f['delta']:.3g} | "
            f"{f['max_concept_cosine']:.3g} | {f['concept_norm_range'][0]:.2f}–{f['concept_norm_range'][1]:.2f} | {failing} | "
            f"{_f(rows[('Theorem 4.3', 'pairs')]['risk_bound'])} | {_f(b4['risk_bound'])} | "
            f"{_f(main['success_probability_sup_over_c'])} |")
    lines += [
        "",
        "Every statement (4.2, B.3, C.5, 4.3, B.4, C.6) under both Z readings, with the amount by which each assumption",
        "fails, is in results.json (`theorem_checks`). A risk bound ≥ 1 or a success probability ≤ 0 says nothing.",
        "",
        "## Last-layer DPO across K (App. F setup; Fig. 5 a, b)",
        "",
        f"β = {s['setup']['beta']}, {s['setup']['optimizer']}, lr {s['setup']['lr']}, {s['setup']['steps']} steps, "
        f"{s['setup']['split']}, tokens Yes/No.",
        "",
        "| K | train n | test n | final train margin | final test margin | train error | test error (95% CP) |",
        "|---|---|---|---|---|---|---|",
    ]
    for K, r in s["last_layer"].items():
        lo, hi = r["test_error_interval"]
        lines.append(f"| {K} | {r['n_train']} | {r['n_test']} | {r['train_margin'][-1]:.4g} | {r['test_margin'][-1]:.4g} | "
                     f"{r['train_error']:.3f} | {r['test_error']:.3f} [{lo:.3f}, {hi:.3f}] |")
    fit = tr["test_error_linear_fit"]
    lines += [
        "",
        f"Linear fit of test error on K: slope {_f(fit['slope'])}, intercept {_f(fit['intercept'])}, "
        f"**R² = {_f(fit['r_squared'])}** (the paper fits test error against K only after full fine-tuning, a "
        "different regime: see the comparison below).",
        f"Margin rate (final margin / steps) vs K: log-log slope {_f(tr['train_margin_log_log_slope_in_K'])} (train), "
        f"{_f(tr['test_margin_log_log_slope_in_K'])} (test); gradient flow on P predicts −1, the 1/K rate of Theorem 4.2.",
        "",
        "![margins](last_layer_margins.png)",
        "",
        "### The theory's dynamics on the same features: full-batch gradient descent",
        "",
        f"Gradient descent is gradient flow with τ = 1/η (§1.6). η = {s['gradient_descent']['eta']:.4g} for every K: "
        "100 steps reach Theorem 4.2's τ₁ for K = 1, so at equal time the theory predicts margins ∝ 1/K.",
        "",
        "| K | final train margin | final test margin | train error | test error (95% CP) |",
        "|---|---|---|---|---|",
    ]
    for K, r in s["gradient_descent"]["runs"].items():
        lo, hi = r["test_error_interval"]
        lines.append(f"| {K} | {r['train_margin'][-1]:.4g} | {r['test_margin'][-1]:.4g} | {r['train_error']:.3f} | "
                     f"{r['test_error']:.3f} [{lo:.3f}, {hi:.3f}] |")
    gd = s["gradient_descent"]["trend"]
    lines += [
        "",
        f"Final train margin vs K: log-log slope {_f(gd['train_margin_log_log_slope_in_K'])}; linear fit of test error on K: "
        f"R² = {_f(gd['test_error_linear_fit']['r_squared'])}.",
        "",
        "![gradient descent](gradient_descent_margins.png)",
        "",
        "## Comparison with the paper",
        "",
    ]
    lines += comparison_lines(s)
    lines += ["", f"Runtime: {s['seconds']['total']:.1f} s (features {s['seconds']['features']:.1f} s).", ""]
    return "\n".join(lines)


def comparison_lines(s: dict) -> list[str]:
    """Plain statements of agreement and difference with the paper's Llama results, from the numbers."""
    g, sp_, tr = s["geometry"], s["cluster_spread"]["positive_clusters"], s["trend"]
    out = []
    shared = g["shared_component_mean_cosine"]
    out.append(f"- Shared component: {'agrees' if shared > 0.2 else 'differs'} — cross-persona mean cosine {shared:.3f} "
               "(the paper reports a high average cosine on Llama-3.1-8B, Fig. 3a).")
    ortho = g["centred_offdiagonal_mean_abs_cosine"]
    within = g["centred_within_persona_mean_cosine"]
    out.append(f"- Near-orthogonality after mean removal: {'agrees' if ortho < 0.1 else 'differs'} — off-diagonal mean |cos| "
               f"{ortho:.3f} against {within:.3f} within a persona (paper: ≈ 0 off the diagonal, Fig. 3b).")
    ratio_f = sp_["covariance_frobenius"] / PAPER_COVARIANCE_FROBENIUS
    ratio_m = sp_["mean_squared_distance"] / PAPER_MEAN_SQUARED_DISTANCE
    out.append(f"- Cluster spread: ‖Cov‖_F {sp_['covariance_frobenius']:.3f} ({ratio_f:.2f}× the paper's 0.058), mean squared "
               f"distance {sp_['mean_squared_distance']:.3f} ({ratio_m:.2f}× the paper's 0.227). "
               + ("Comparable in size." if 0.5 < ratio_m < 2 else "Not the same size; the paper's reading (small spread) "
                  + ("holds here too." if sp_["mean_squared_distance"] < 0.5 else "does not carry over.")))
    comparison = s["paper_comparison"]
    margins, errors = comparison["last_layer_margins"], comparison["test_error_fit"]
    dec_train, dec_test = tr["train_margin_decreases_with_K"], tr["test_margin_decreases_with_K"]
    gd = s["gradient_descent"]["trend"]
    out.append(f"- **Last-layer margins vs K, like for like** (paper: {margins['paper']}): "
               f"{'agrees' if dec_train and dec_test else 'partly differs' if dec_train or dec_test else 'differs'} — "
               f"final train margins {', '.join(f'{m:.3g}' for m in tr['final_train_margin'])} and test margins "
               f"{', '.join(f'{m:.3g}' for m in tr['final_test_margin'])} for K = {', '.join(map(str, tr['K']))}; "
               f"ordered by K (smaller K, larger margin) at {_share(tr['train_margin_ordered_by_K_share_of_steps'])} of "
               f"the steps (train) and {_share(tr['test_margin_ordered_by_K_share_of_steps'])} (test). Margin rate ~ K^a "
               f"with a = {_f(tr['train_margin_log_log_slope_in_K'])} (train), {_f(tr['test_margin_log_log_slope_in_K'])} "
               f"(test) under Adam; {_f(gd['train_margin_log_log_slope_in_K'])}, {_f(gd['test_margin_log_log_slope_in_K'])} "
               "under gradient descent; the theory's a = −1 is for gradient flow. Adam normalises each coordinate's "
               "step, so the 1/K rate is not expected to carry over exactly; the paper shows the ordering, not a rate.")
    r2 = tr["test_error_linear_fit"]["r_squared"]
    slope = tr["test_error_linear_fit"]["slope"]
    linear = r2 is not None and r2 >= 0.9 and slope > 0
    paper_r2 = ", ".join(f"{v:g} {k}" for k, v in errors["paper_full_fine_tuning_r_squared"].items())
    recomputed = ", ".join(f"{v:.3f} {k}" for k, v in errors["paper_r_squared_recomputed_from_tables"].items())
    out.append(f"- Test error vs K, against full fine-tuning (**a different regime**: {errors['regime']}): "
               f"{'linear in K here too' if linear else 'not linear in K here'} — last-layer errors "
               f"{', '.join(f'{e:.3f}' for e in tr['test_error'])}, slope {_f(slope)}, R² {_f(r2)} (Adam), "
               f"R² {_f(errors['last_layer_gradient_descent_r_squared'])} (gradient descent); paper, full fine-tuning: "
               f"R² {paper_r2} (recomputed from Tables 1–2: {recomputed}). The paper reports no test-error fit for "
               "its last-layer runs, so this line tests no last-layer claim of the paper.")
    runs = list(s["last_layer"].values()) + list(s["gradient_descent"]["runs"].values())
    largest = max(abs(m) for r in runs for m in r["train_margin"])
    adam_err, gd_err = float(np.mean(tr["train_error"])), float(np.mean(gd["train_error"]))
    out.append(f"- Training is far from fitting: mean train error {adam_err:.3f} (Adam) and {gd_err:.3f} (gradient descent). "
               f"No margin exceeds {largest:.3g} in magnitude, so every DPO weight sigma(-r) stays within "
               f"{abs(0.5 - 1 / (1 + math.exp(largest))):.2g} of 1/2 and both optimizers follow the first-order direction, which "
               "separates this encoder's clusters only partly (noise energy d·v² in the table above, against ‖c_i‖² = 1).")
    out.append("- Assumptions: the fitted l_b, v and Z lie outside Theorems 4.2/4.3's conditions (table above; Z ≥ K holds for "
               "any persona data, since every persona uses the tokens Yes/No); the bounds are evaluated there only to show "
               "what they say (a risk bound ≥ 1 or a probability ≤ 0 says nothing).")
    return out
