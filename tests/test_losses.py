"""User loss expressions: a syntax-tree whitelist stands between the string and sympy."""
import pytest
import sympy as sp
from hypothesis import given, strategies as st

from theory.losses import DPO, parse_loss_expression
from theory.symbols import r


@pytest.mark.parametrize("text, weight", [
    ("(r-1)**2", 2 - 2 * r),
    ("log(1+exp(-r))", 1 / (sp.exp(r) + 1)),
    ("Max(0, 1-r)", sp.Heaviside(1 - r, 0)),
    ("-logsigmoid(r)", DPO.weight),
])
def test_user_losses_get_their_derived_weight(text, weight):
    assert sp.simplify(parse_loss_expression(text).weight - weight) == 0


@pytest.mark.parametrize("text, message", [
    ("__import__('os').system('true')", "unsupported syntax"),
    ("__import__('os')", "unknown function"),
    ("r.__class__", "unsupported syntax"),
    ("(lambda: 1)()", "unsupported syntax"),
    ("open('x')", "unknown function"),
    ("exp(r, base=2)", "unsupported syntax"),
    ("r +", "does not parse"),
    ("'r'", "unsupported syntax"),
    ("3", "does not depend on r"),
    ("x**2", "unknown name"),
])
def test_expressions_outside_the_whitelist_are_refused(text, message):
    with pytest.raises(ValueError, match=message):
        parse_loss_expression(text)


@given(st.text(max_size=30))
def test_no_string_escapes_the_whitelist(text):
    try:
        loss = parse_loss_expression(text)
    except ValueError:
        return
    assert loss.f.free_symbols <= {r}
