"""The full-vocabulary model and Lemma 4.1 numerically: (a) autograd vs the lambdified symbolic gradient,
(b) Eq. (3) vs the velocity of the full-vocabulary margins, (c) full-W flow vs the reduced flow and the margin ODE."""
import pytest
import torch
from hypothesis import given, strategies as st
from torchdiffeq import odeint

from theory.losses import DPO, IPO, SLIC
from verify.instances import random_instance
from verify.model import (FullVocabularyTrial, PreferenceData, autograd_gradient, directional_derivative,
                          interaction_matrix, margin_velocity, policy_log_odds, reward_margins, symbolic_gradient)
from verify.training import gradient_flow
from verify.claims.single_token import FLOW_TOLERANCE, GRADIENT_RELATIVE_TOLERANCE


@pytest.mark.slow
@given(seed=st.integers(0, 2**31 - 1), V=st.integers(5, 7), d=st.integers(4, 5), N=st.integers(10, 12),
       beta=st.floats(0.05, 2.0), loss=st.sampled_from([DPO, IPO, SLIC]))
def test_autograd_gradient_equals_symbolic_gradient(seed, V, d, N, beta, loss):
    W0, data = random_instance(seed, V, d, N)
    W = W0 + 0.5 * torch.randn(W0.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    a, s = autograd_gradient(W, W0, data, beta, loss), symbolic_gradient(W, W0, data, beta, loss)
    assert float((a - s).norm() / a.norm()) <= GRADIENT_RELATIVE_TOLERANCE


@given(seed=st.integers(0, 2**31 - 1), beta=st.floats(0.05, 2.0), tau=st.floats(0.1, 10.0),
       loss=st.sampled_from([DPO, IPO, SLIC]))
def test_eq_3_is_the_velocity_of_the_full_vocabulary_margins(seed, beta, tau, loss):
    """At a W away from W0: dr/dt = J_r(W) (-grad_W L / tau), by autograd, is (beta^2/(N tau)) M w(r)."""
    W0, data = random_instance(seed, 6, 4, 12)
    W = W0 + 0.5 * torch.randn(W0.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    velocity = directional_derivative(lambda X: reward_margins(X, W0, data, beta), W, -autograd_gradient(W, W0, data, beta, loss) / tau)
    printed = margin_velocity(reward_margins(W, W0, data, beta), interaction_matrix(data), beta, tau, loss)
    assert float((velocity - printed).norm()) <= GRADIENT_RELATIVE_TOLERANCE * float(printed.norm())


@pytest.mark.parametrize("loss", [DPO, IPO], ids=["dpo", "ipo"])
def test_weight_flow_and_margin_ode_agree(loss):
    W0, data = random_instance(3, 5, 4, 10)
    times = torch.linspace(0, 1.5, 4, dtype=torch.float64)
    flow = gradient_flow(data, 0.8, 1.0, times, loss, form="full", W0=W0).train_margins[0]
    reduced = gradient_flow(data, 0.8, 1.0, times, loss).train_margins[0]
    M = interaction_matrix(data)
    ode = odeint(lambda t, r: margin_velocity(r, M, 0.8, 1.0, loss), torch.zeros(data.size, dtype=torch.float64), times,
                 rtol=1e-12, atol=1e-14, method="dopri5")
    assert float((flow - reduced).abs().max()) <= FLOW_TOLERANCE
    assert float((flow - ode).abs().max()) <= FLOW_TOLERANCE
    assert float(ode[-1].abs().max()) > 0.1  # the margins really moved


def test_margins_are_linear_in_delta_W_numerically():
    W0, data = random_instance(1, 6, 4, 12)
    delta = torch.randn(W0.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    linear = 0.3 * torch.einsum("nd,nd->n", data.features, delta[data.chosen] - delta[data.rejected])
    assert torch.allclose(reward_margins(W0 + delta, W0, data, 0.3), linear, rtol=0, atol=1e-13)


def test_margins_are_the_change_of_the_policy_log_odds_and_batch():
    """r = beta (log pi_W(y_w)/pi_W(y_l) - log pi_W0(y_w)/pi_W0(y_l)); a leading batch of W gives each W's margins."""
    W0, data = random_instance(2, 6, 4, 12)
    W = W0 + torch.randn(W0.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    log_p = lambda V: torch.log_softmax(data.features @ V.T, dim=1)
    rows = torch.arange(data.size)
    odds = lambda V: log_p(V)[rows, data.chosen] - log_p(V)[rows, data.rejected]
    assert torch.allclose(policy_log_odds(W, data.features, data.chosen, data.rejected), odds(W), rtol=0, atol=1e-13)
    assert torch.allclose(reward_margins(W, W0, data, 0.7), 0.7 * (odds(W) - odds(W0)), rtol=0, atol=1e-13)
    batch = FullVocabularyTrial(data.features.expand(2, -1, -1), data.chosen, data.rejected, torch.stack([W0, W0]), 0.7)
    both = batch.margins(torch.stack([W, W0]))
    assert torch.allclose(both[0], reward_margins(W, W0, data, 0.7), rtol=0, atol=1e-14) and bool((both[1] == 0).all())


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
    with pytest.raises(ValueError, match="beta"):
        reward_margins(W0, W0, data, -1.0)
    with pytest.raises(ValueError, match="tau"):
        gradient_flow(data, 1.0, -1.0, torch.tensor([0.0, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="do not match"):
        reward_margins(W0, W0[:, :2], data, 1.0)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        reward_margins(W0[:2], W0[:2], data, 1.0)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        autograd_gradient(W0[:2], W0[:2], data, 1.0)
    with pytest.raises(ValueError, match="W0 must be"):
        gradient_flow(data, 1.0, 1.0, [0.0, 1.0], form="full", W0=W0[:2])
