"""The theorem chain for any margin loss (theory/chain.py) and its numeric check (verify/chain.py)."""
import dataclasses

import pytest
import sympy as sp

from theory.chain import PAPER_DATA, DataVariant, margin_chain
from theory.losses import DPO, IPO, SLIC, PreferenceLoss, parse_loss_expression
from theory.objectives import fixed_points
from theory.symbols import K, Q, beta, r, t, tau
from theory.training_guarantee import LOG3, THEOREM_4_2

R = sp.Rational


def test_dpo_chain_reproduces_the_papers_constants_from_the_derivation():
    chain = margin_chain(DPO, "paper")
    assert chain.complete
    values = chain.values
    assert values["r_end"] == LOG3
    assert (values["w_min"], values["w_max"]) == (R(1, 4), R(1, 2))
    assert sp.simplify(values["slope_L"] * t / tau - THEOREM_4_2.conclusions["r_L"]) == 0
    assert sp.simplify(values["slope_U"] * t / tau - THEOREM_4_2.conclusions["r_U"]) == 0
    assert sp.simplify(values["tau_1"] - THEOREM_4_2.conclusions["tau_1"]) == 0
    assert sp.simplify(values["r_L_at_tau_1"] - LOG3 / 40) == 0
    assert values["kappa"] == 45
    assert chain.samples_per_value(10).Q_min == 880


def test_tight_route_is_inside_the_papers_constants():
    paper, tight = margin_chain(DPO, "paper"), margin_chain(DPO, "tight")
    assert bool(tight.values["slope_L"] / paper.values["slope_L"] >= 1)
    assert bool(tight.values["slope_U"] / paper.values["slope_U"] <= 1)
    assert bool(tight.values["kappa"] < paper.values["kappa"])
    assert tight.samples_per_value(10).Q_min < 880


def test_ipo_chain_halves_at_one_half():
    chain = margin_chain(IPO, "paper")
    assert chain.complete and chain.values["r_end"] == R(1, 2)
    assert chain.values["end_ratio"] == R(1, 40)


def test_slic_stops_at_its_kink():
    chain = margin_chain(SLIC, "paper")
    assert not chain.complete and "kink at r = 1" in chain.stopped_at


def test_a_weight_negative_at_zero_stops_at_the_sandwich():
    chain = margin_chain(parse_loss_expression("r"), "paper")  # w = -1
    assert not chain.complete and "w(0) <= 0" in chain.stopped_at


def test_a_weight_that_never_halves_has_no_end_of_training():
    chain = margin_chain(parse_loss_expression("-r"), "paper")  # w = 1
    assert not chain.complete and "no end of training" in chain.stopped_at


def test_equal_shares_are_the_papers_data():
    half = margin_chain(DPO, "paper", DataVariant(shares=(R(1, 2), R(1, 2))))
    paper = margin_chain(DPO, "paper", PAPER_DATA)
    assert half.values["slope_L"] == paper.values["slope_L"] and half.values["kappa"] == paper.values["kappa"]


@pytest.mark.parametrize("minority, stops_at", [(R(1, 10), "envelope"), (R(2, 5), "test margin")])
def test_unequal_shares_stop_where_the_majority_outweighs_the_minority(minority, stops_at):
    chain = margin_chain(DPO, "paper", DataVariant(shares=(1 - minority, minority)))
    assert not chain.complete and chain.stopped_at.startswith(stops_at)


def test_label_noise_fixed_point_is_the_cdpo_one():
    eta = R(1, 5)
    weight = DataVariant(flip_rate=eta).effective_weight(DPO.weight)
    assert fixed_points(weight) == sp.FiniteSet(sp.log((1 - eta) / eta))


def test_latex_fragment_names_the_steps():
    from theory.chain import chain_latex
    from theory.objectives import derive_objective

    text = chain_latex(derive_objective(DPO), margin_chain(DPO))
    assert "\\begin{align*}" in text and r"r\_end" in text and "complete" in text


# --- the numeric check can fail ------------------------------------------------------------------------
def test_the_chain_check_passes_on_dpo_and_catches_a_falsified_envelope():
    from verify.chain import check_chain
    from verify.verdicts import Status

    chain = margin_chain(DPO, "paper")
    verdicts = check_chain(chain, 0.01)
    assert [v.status for v in verdicts] != [] and all(v.status is not Status.VIOLATED for v in verdicts)
    assert all(v.proof_step.counterexamples == 0 for v in verdicts)
    # a lower envelope 100 times steeper than the sandwich gives: every margin falls below it
    steep = dict(chain.values, slope_L=100 * chain.values["slope_L"])
    falsified = dataclasses.replace(chain, values=steep)
    (envelope, _) = check_chain(falsified, 0.01)
    assert envelope.status is Status.VIOLATED


def test_derive_help_names_every_accepted_loss_type():
    from theory.losses import LOSS_TYPES
    from verify.cli import _parser

    derive = _parser()._subparsers._group_actions[0].choices["derive"]
    text = " ".join(derive.format_help().split())
    assert all(name in text for name in LOSS_TYPES)


def test_derive_with_a_data_variant_runs_the_variant_checks(capsys):
    from verify.cli import main

    status = main(["derive", "--loss", "log(1+exp(-r))", "--flip-rate", "0.2", "--shares", "0.5,0.5"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "stopped at: test margin" in out
    numeric = [line for line in out.splitlines() if line.startswith("numeric           PASS")]
    assert any("unequal shares" in line for line in numeric) and any("saturate at r*" in line for line in numeric)


def test_dpo_derivation_and_chain_report_as_recorded(snapshot):
    """What `dpo-verify derive` prints for DPO before its numeric checks: Lemma 4.1's objects, then the chain on
    both routes with their LaTeX."""
    from theory.objectives import derive_objective

    derivation = derive_objective(DPO)
    lines = derivation.report_lines() + [f"{key}: {value}" for key, value in derivation.latex().items()]
    for route in ("paper", "tight"):
        chain = margin_chain(DPO, route=route)
        lines += chain.report_lines() + [chain.latex()]
    snapshot("derive_dpo.txt", "\n".join(lines) + "\n")
