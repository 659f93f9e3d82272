"""§1.3 and Lemma 4.1 in sympy: the residuals are exactly 0, for DPO, IPO, SLiC, a user loss and a generic f."""
import pytest
import sympy as sp
from hypothesis import given, strategies as st

from theory.lemma_4_1 import derive_lemma_4_1, lemma_4_1_residuals, margin_dynamics_equation
from theory.losses import DPO, IPO, PAPER_LOSSES, PRINTED_WEIGHTS, SLIC, parse_loss_expression
from theory.model import linear_reward_margin, log_softmax, reward_margin, single_token_margin_residual, symbolic_instance
from theory.symbols import K, Q, beta, r, tau


def test_symbols_carry_the_papers_assumptions():
    assert beta.is_positive and tau.is_positive
    assert K.is_integer and K.is_positive and Q.is_integer and Q.is_positive


@given(st.integers(2, 6), st.integers(1, 4), st.data())
def test_single_token_margin_is_linear_in_delta_W(V, d, data):
    y_w = data.draw(st.integers(0, V - 1))
    y_l = data.draw(st.integers(0, V - 1).filter(lambda y: y != y_w))
    assert single_token_margin_residual(V, d, y_w, y_l) == 0


def test_the_log_softmax_normaliser_cancels_in_the_margin():
    instance = symbolic_instance(3, 2, [(0, 1)])
    log_probabilities = log_softmax(instance.W * instance.features[0])
    assert all(entry.has(sp.log) for entry in log_probabilities)  # each log-probability has the normaliser
    margin = reward_margin(instance.W, instance.W0, instance.features[0], 0, 1)
    assert not margin.has(sp.log)  # the margin has lost it
    assert sp.expand(margin - linear_reward_margin(instance.W, instance.W0, instance.features[0], 0, 1)) == 0


PAIRS = [(0, 1), (1, 0), (0, 2), (2, 3), (0, 1)]  # same, swapped, one shared token, none shared


@pytest.mark.parametrize("loss", [None, DPO, IPO, SLIC], ids=["generic-f", "dpo", "ipo", "slic"])
def test_lemma_4_1_derived_by_chain_rule_equals_printed_form(loss):
    assert lemma_4_1_residuals(4, 2, PAIRS, loss) == [0] * len(PAIRS)


def test_lemma_4_1_holds_for_a_user_loss():
    assert lemma_4_1_residuals(3, 2, [(0, 1), (1, 2), (1, 0)], parse_loss_expression("relu(2 - r)**2")) == [0, 0, 0]


def test_lemma_4_1_derivation_detects_a_wrong_printed_form():
    derivation = derive_lemma_4_1(symbolic_instance(3, 2, [(0, 1), (1, 2)]))
    wrong = [2 * p for p in derivation.printed]
    assert any(sp.simplify(sp.expand(a - b)) != 0 for a, b in zip(derivation.derived, wrong))


@pytest.mark.parametrize("name", sorted(PAPER_LOSSES))
def test_gpo_weights_match_section_7(name):
    assert sp.simplify(PAPER_LOSSES[name].weight - PRINTED_WEIGHTS[name]) == 0


def test_slic_subgradient_convention_at_the_kink():
    assert SLIC.weight.subs(r, 1) == 0 and SLIC.weight.subs(r, sp.Rational(1, 2)) == 1


def test_lemma_4_1_latex_mentions_the_weight():
    latex = sp.latex(margin_dynamics_equation(DPO))
    assert r"\beta^{2}" in latex and "C" in latex


def test_symbolic_instance_rejects_equal_responses():
    with pytest.raises(ValueError, match="y_w == y_l"):
        symbolic_instance(3, 2, [(1, 1)])
