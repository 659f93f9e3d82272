"""verify.fits and verify.paper_data: the R^2 of Tables 1-2 as SPEC §4 recomputes it, and the fit on known lines."""
import math

import numpy as np
import pytest

from verify.fits import linear_fit
from verify.paper_data import PAPER_TABLES, SPEC_RECOMPUTED_R_SQUARED

SPEC_PRINTED_R_SQUARED = {"Mistral-7B-v0.3": 0.946, "Qwen3-8B-Base": 0.986}  # SPEC §4, three decimals


@pytest.mark.parametrize("table", PAPER_TABLES, ids=lambda t: t.model)
def test_tables_r_squared_as_spec_recomputes_and_paper_rounds(table):
    fit = linear_fit(table.K, table.test_error)
    assert table.error_fit() == fit and table.r_squared == fit.r_squared
    assert round(fit.r_squared, 3) == SPEC_PRINTED_R_SQUARED[table.model] == SPEC_RECOMPUTED_R_SQUARED[table.model]
    assert round(fit.r_squared, 2) == table.reported_r_squared  # the paper prints two decimals


def test_recomputed_r_squared_follows_the_table():
    """The constant is computed from the table, so a changed entry changes it."""
    import dataclasses

    table = PAPER_TABLES[0]
    changed = dataclasses.replace(table, test_error=(0.0, 0.02, 0.036, 0.056))
    assert changed.r_squared != pytest.approx(table.r_squared, abs=1e-3)


def test_exact_line():
    fit = linear_fit([1, 2, 4, 8], [0.5 + 0.25 * k for k in (1, 2, 4, 8)])
    assert fit.slope == pytest.approx(0.25) and fit.intercept == pytest.approx(0.5) and fit.r_squared == pytest.approx(1.0)
    assert np.allclose(fit([0, 16]), [0.5, 4.5])
    assert fit.n == 4


@pytest.mark.parametrize("value", [0.2, 0.0, -3.5])
def test_flat_data_fits_a_flat_line_with_undefined_r_squared(value):
    """y constant: SS_tot = 0, so R^2 = 1 - SS_res/SS_tot is 0/0 and reported as nan; the line itself is exact."""
    fit = linear_fit([1, 2, 4, 8], [value] * 4)
    assert fit.slope == 0.0 and fit.intercept == value and fit.n == 4
    assert math.isnan(fit.r_squared)
    assert np.array_equal(fit([1, 2, 4, 8]), np.full(4, value))


def test_nearly_flat_data_is_an_ordinary_fit():
    y = np.array([0.2, 0.2, 0.2, 0.2]) + np.array([0, 1, 0, 1]) * 1e-9
    assert 0 <= linear_fit([1, 2, 3, 4], y).r_squared <= 1


@pytest.mark.parametrize("x, y", [([1, 2], [0, 1]), ([1, 1, 1], [0, 1, 2]), ([1, 2, 3], [0, 1]),
                                  ([1, 2, 3], [0, float("nan"), 1]), ([1, 2, float("inf")], [0, 1, 2])])
def test_bad_input(x, y):
    with pytest.raises(ValueError):
        linear_fit(x, y)
