"""Lemma 4.1 numerically: (a) autograd vs the lambdified symbolic gradient, (b) full-W flow vs margin ODE."""
import pytest
import torch
from hypothesis import given, strategies as st

from theory.losses import DPO, IPO, SLIC
from verify.instances import random_instance
from verify.model import (PreferenceData, autograd_gradient, integrate_margin_ode, integrate_weight_flow,
                          interaction_matrix, reward_margins, symbolic_gradient)
from verify.claims.single_token import FLOW_TOLERANCE, GRADIENT_RELATIVE_TOLERANCE


@given(seed=st.integers(0, 2**31 - 1), V=st.integers(5, 7), d=st.integers(4, 5), N=st.integers(10, 12),
       beta=st.floats(0.05, 2.0), loss=st.sampled_from([DPO, IPO, SLIC]))
def test_autograd_gradient_equals_symbolic_gradient(seed, V, d, N, beta, loss):
    W0, data = random_instance(seed, V, d, N)
    W = W0 + 0.5 * torch.randn(W0.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    a, s = autograd_gradient(W, W0, data, beta, loss), symbolic_gradient(W, W0, data, beta, loss)
    assert float((a - s).norm() / a.norm()) <= GRADIENT_RELATIVE_TOLERANCE


@pytest.mark.parametrize("loss", [DPO, IPO], ids=["dpo", "ipo"])
def test_weight_flow_and_margin_ode_agree(loss):
    W0, data = random_instance(3, 5, 4, 10)
    times = torch.linspace(0, 1.5, 4, dtype=torch.float64)
    flow, ode = integrate_weight_flow(W0, data, 0.8, 1.0, times, loss), integrate_margin_ode(data, 0.8, 1.0, times, loss)
    assert float((flow - ode).abs().max()) <= FLOW_TOLERANCE
    assert float(ode[-1].abs().max()) > 0.1  # the margins really moved


def test_margins_are_linear_in_delta_W_numerically():
    W0, data = random_instance(1, 6, 4, 12)
    delta = torch.randn(W0.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    linear = 0.3 * torch.einsum("nd,nd->n", data.features, delta[data.chosen] - delta[data.rejected])
    assert torch.allclose(reward_margins(W0 + delta, W0, data, 0.3), linear, rtol=0, atol=1e-13)


def test_interaction_matrix_has_the_sharing_factors():
    features = torch.eye(4, dtype=torch.float64)[[0, 0, 0, 0]]
    data = PreferenceData(features, torch.tensor([0, 1, 0, 2]), torch.tensor([1, 0, 2, 3]))
    assert interaction_matrix(data)[0].tolist() == [2, -2, 1, 0]


@pytest.mark.parametrize("make, message", [
    (lambda: PreferenceData(torch.ones(3, 2), torch.tensor([0, 1, 2]), torch.tensor([1, 1, 0])), "y_w == y_l"),
    (lambda: PreferenceData(torch.ones(3, 2), torch.tensor([0, 1]), torch.tensor([1, 0])), "one token per sample"),
    (lambda: PreferenceData(torch.tensor([[1.0, float("nan")]]), torch.tensor([0]), torch.tensor([1])), "non-finite"),
    (lambda: PreferenceData(torch.ones(3), torch.tensor([0]), torch.tensor([1])), "N x d"),
])
def test_bad_data_is_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_bad_parameters_are_refused():
    W0, data = random_instance(0, 5, 4, 10)
    with pytest.raises(ValueError, match="beta"):
        autograd_gradient(W0, W0, data, 0.0)
    with pytest.raises(ValueError, match="tau"):
        integrate_margin_ode(data, 1.0, -1.0, torch.tensor([0.0, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="do not match"):
        reward_margins(W0, W0[:, :2], data, 1.0)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        integrate_weight_flow(W0[:2], data, 1.0, 1.0, torch.tensor([0.0, 1.0], dtype=torch.float64))
