"""The trainers (verify.training): reduced vs full-vocabulary forms, GD -> flow, batching, outputs, one API, bad input.

Agreement tolerance 1e-8: GD and Adam are the same arithmetic up to float64 rounding
(~1e-15 here); gradient flow solves two differently sized ODE systems with rtol = 1e-10, so the two
solutions differ by at most a few solver tolerances times the O(1) margins.
"""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from theory.losses import DPO, IPO, SLIC, parse_loss_expression
from verify.data_model import DiverseValueDistribution, chain_tokens
from torchdiffeq import odeint

from verify.instances import random_instance
from verify.model import interaction_matrix, margin_velocity
from verify.symbolic import weight_function
from verify.training import (
    adam,
    gradient_descent,
    gradient_flow,
    margins_at_tau_1,
    non_occurring_rows,
    tau_1,
    training_set,
    zero_one_risk,
)
from verify.verdicts import clopper_pearson

AGREEMENT = 1e-8
ROOT = Path(__file__).resolve().parents[1]


def setup(seeds=(0, 1), K=2, Q=3, d=5, V=12):
    dist = DiverseValueDistribution(K=K, d=d, v=0.3, l_b=0.3, tokens=chain_tokens(K))
    W0 = torch.randn(V, d, generator=torch.Generator().manual_seed(99), dtype=torch.float64)
    return dist.sample(list(seeds), Q=Q), dist.test_set(list(seeds), 7), W0


def assert_forms_agree(trainer, moved=0.05, **kwargs):
    sample, test, W0 = setup()
    reduced = trainer(sample, test=test, W0=W0, **kwargs)
    full = trainer(sample, test=test, W0=W0, form="full", **kwargs)
    assert (reduced.train_margins - full.train_margins).abs().max() <= AGREEMENT
    assert (reduced.test_margins - full.test_margins).abs().max() <= AGREEMENT
    assert (reduced.delta_rows - full.delta_rows).abs().max() <= AGREEMENT
    assert reduced.train_margins[:, -1].abs().max() > moved  # training moved the margins
    return reduced


@pytest.mark.parametrize("loss", [DPO, IPO, SLIC], ids=lambda l: l.name)
def test_gradient_descent_reduced_equals_full(loss):
    assert_forms_agree(gradient_descent, beta=0.5, eta=0.5, steps=25, loss=loss)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_adam_reduced_equals_full(weight_decay):
    assert_forms_agree(adam, beta=0.5, steps=25, lr=1e-2, weight_decay=weight_decay)


def test_adam_paper_settings_reduced_equals_full():
    assert_forms_agree(adam, moved=1e-3, beta=0.01, steps=100, lr=1e-3)  # beta = 0.01 keeps margins ~ 5e-3


def test_gradient_flow_reduced_equals_full():
    assert_forms_agree(gradient_flow, beta=0.5, tau=1.0, times=[0.0, 2.0, 10.0])


def test_user_loss_reduced_equals_full():
    assert_forms_agree(gradient_descent, beta=0.5, eta=0.5, steps=10, loss=parse_loss_expression("softplus(1 - 2*r)"))


def test_unsorted_preference_data_is_segmented_and_restored():
    W0, data = random_instance(3, vocabulary_size=6, dimension=4, samples=12)
    assert training_set(data).order is not None  # random tokens: pairs recur in several runs
    reduced = gradient_descent(data, beta=0.7, eta=0.3, steps=15, W0=W0)
    full = gradient_descent(data, beta=0.7, eta=0.3, steps=15, W0=W0, form="full")
    assert (reduced.train_margins - full.train_margins).abs().max() <= AGREEMENT


def test_gradient_descent_is_the_exact_margin_map():
    """§1.6: r(k+1) = r(k) + eta beta^2/N M w(r(k)), computed here with the N x N matrix M."""
    sample, _, _ = setup(seeds=(4,))
    beta, eta, steps = 0.8, 0.4, 20
    M = interaction_matrix(sample.trial(0))
    weight = weight_function(DPO)
    r = torch.zeros(sample.size, dtype=torch.float64)
    expected = [r]
    for _ in range(steps):
        r = r + eta * beta**2 / sample.size * (M @ weight(r))
        expected.append(r)
    got = gradient_descent(sample, beta=beta, eta=eta, steps=steps).train_margins[0]
    assert (got - torch.stack(expected)).abs().max() <= 1e-12


def test_gradient_flow_solves_the_lemma_4_1_ode():
    """Eq. (3) as printed, tau dr/dt = (beta^2/N) M w(r), integrated here in margins with the N x N matrix M."""
    sample, _, _ = setup(seeds=(5,))
    times = torch.tensor([0.0, 1.0, 4.0], dtype=torch.float64)
    got = gradient_flow(sample, beta=0.9, tau=1.3, times=times).train_margins[0]
    M = interaction_matrix(sample.trial(0))
    expected = odeint(lambda t, r: margin_velocity(r, M, 0.9, 1.3), torch.zeros(sample.size, dtype=torch.float64), times,
                      rtol=1e-12, atol=1e-14, method="dopri5")
    assert (got - expected).abs().max() <= AGREEMENT
    assert got[-1].abs().max() > 0.1  # the margins moved


def test_gradient_descent_converges_to_the_flow_linearly_in_eta():
    """Euler's global error is C eta + O(eta^2): halving eta halves the error once eta is small."""
    sample, _, _ = setup(seeds=(6,))
    beta, horizon = 1.0, 4.0
    flow = gradient_flow(sample, beta=beta, tau=1.0, times=[0.0, horizon]).train_margins[0, -1]
    errors = []
    for steps in (50, 100, 200, 400):
        eta = horizon / steps  # tau = 1/eta: `steps` unit steps span flow time `horizon` at tau = 1
        gd = gradient_descent(sample, beta=beta, eta=eta, steps=steps, record=[steps]).train_margins[0, -1]
        errors.append(float((gd - flow).abs().max()))
    ratios = [a / b for a, b in zip(errors, errors[1:])]
    # The next Euler term changes each ratio by O(eta) relative: within 10% of 2 at these step sizes.
    assert all(abs(q - 2) < 0.2 for q in ratios), (errors, ratios)


@pytest.mark.parametrize("trainer, kwargs", [
    (gradient_descent, dict(beta=0.5, eta=0.5, steps=20)),
    (adam, dict(beta=0.5, steps=20, lr=1e-2)),
])
def test_batched_trials_equal_one_trial_at_a_time(trainer, kwargs):
    sample, test, _ = setup(seeds=(0, 1, 2, 3))
    batch = trainer(sample, test=test, **kwargs)
    for b, seed in enumerate((0, 1, 2, 3)):
        one, one_test, _ = setup(seeds=(seed,))
        alone = trainer(one, test=one_test, **kwargs)
        # Same arithmetic on the same numbers; only the kernel's batching may reorder a sum.
        assert (batch.train_margins[b] - alone.train_margins[0]).abs().max() <= 1e-13
        assert (batch.test_margins[b] - alone.test_margins[0]).abs().max() <= 1e-13


def test_batched_flow_equals_one_trial_at_a_time_to_solver_tolerance():
    sample, _, _ = setup(seeds=(0, 1, 2))
    times = [0.0, 3.0]
    batch = gradient_flow(sample, beta=0.5, tau=1.0, times=times)
    for b, seed in enumerate((0, 1, 2)):
        alone = gradient_flow(setup(seeds=(seed,))[0], beta=0.5, tau=1.0, times=times)
        assert (batch.train_margins[b] - alone.train_margins[0]).abs().max() <= AGREEMENT


def test_tau_1_and_the_margins_there():
    assert tau_1(4, 0.01, 2.0) == pytest.approx(4 * 2.0 * math.log(3) / (5 * 0.01**2), rel=1e-15)
    # Theorem 4.2's regime (d <= 5Q, v <= 1/(32 sqrt Q), l_b in [1/4, 1/2], Z = 2 <= 1/(4 l_b^2)).
    Q = 8
    dist = DiverseValueDistribution(K=2, d=5 * Q, v=1 / (32 * math.sqrt(Q)), l_b=0.3, tokens=chain_tokens(2))
    result = margins_at_tau_1(dist.sample([0, 1], Q=Q), beta=0.1, tau=1.0, test=dist.test_set([0, 1], 50))
    assert float(result.times[-1]) == pytest.approx(tau_1(2, 0.1, 1.0), rel=1e-15)
    final = result.train_margins[:, -1]
    assert (final >= math.log(3) / 40).all() and (final <= math.log(3)).all()
    assert zero_one_risk(result.test_margins[:, -1]).errors.tolist() == [0, 0]


def test_zero_one_risk_counts_nonpositive_margins():
    risk = zero_one_risk(torch.tensor([[0.0, -1.0, 2.0, 3.0], [1.0, 1.0, 1.0, 1.0]]))
    assert risk.errors.tolist() == [2, 0] and risk.n == 4
    assert risk.rate.tolist() == [0.5, 0.0]
    assert risk.lower[1] == 0.0 and 0 < risk.upper[1] < 1


@pytest.mark.parametrize("n", [1, 5, 20, 60])
def test_clopper_pearson_coverage_is_at_least_the_confidence(n):
    """Exact coverage: P_p[p in CI(K)] summed over the binomial pmf, on a grid of p (no sampling)."""
    k = np.arange(n + 1)
    lower, upper = clopper_pearson(k, n, 0.95)
    for p in np.linspace(0.001, 0.999, 199):
        coverage = stats.binom.pmf(k, n, p)[(lower <= p) & (p <= upper)].sum()
        assert coverage >= 0.95 - 1e-12, (n, p, coverage)
    assert lower[0] == 0.0 and upper[-1] == 1.0
    assert (lower <= k / n).all() and (k / n <= upper).all()
    assert (np.diff(lower) > 0).all() and (np.diff(upper) > 0).all()


@given(n=st.integers(1, 200), data=st.data())
def test_clopper_pearson_matches_its_beta_quantile_definition(n, data):
    k = data.draw(st.integers(1, n - 1)) if n > 1 else 0
    lower, upper = clopper_pearson(k, n, 0.9)
    if 0 < k < n:
        assert stats.binom.sf(k - 1, n, float(lower)) == pytest.approx(0.05, rel=1e-6)  # P[X >= k | lower] = a/2
        assert stats.binom.cdf(k, n, float(upper)) == pytest.approx(0.05, rel=1e-6)  # P[X <= k | upper] = a/2


def test_bad_input_names_the_parameter():
    sample, test, W0 = setup()
    cases = [
        (lambda: gradient_descent(sample, beta=0.0, eta=0.1, steps=1), "beta"),
        (lambda: gradient_descent(sample, beta=0.1, eta=-1.0, steps=1), "eta"),
        (lambda: gradient_descent(sample, beta=0.1, eta=0.1, steps=-1), "steps"),
        (lambda: gradient_descent(sample, beta=0.1, eta=0.1, steps=2, record=[3]), "record"),
        (lambda: gradient_descent(sample, beta=0.1, eta=0.1, steps=1, form="dense"), "form"),
        (lambda: gradient_descent(sample, beta=0.1, eta=0.1, steps=1, form="full", W0=W0[:2]), "W0"),
        (lambda: gradient_descent(sample, beta=0.1, eta=0.1, steps=1, form="full", vocabulary_size=2), "vocabulary_size"),
        (lambda: gradient_descent(sample, beta=0.1, eta=0.1, steps=1, test=setup(seeds=(0,))[1]), "test"),
        (lambda: gradient_descent(test, beta=0.1, eta=0.1, steps=1), "data"),
        (lambda: gradient_flow(sample, beta=0.1, tau=0.0, times=[0, 1]), "tau"),
        (lambda: gradient_flow(sample, beta=0.1, tau=1.0, times=[1, 2]), "times"),
        (lambda: gradient_flow(sample, beta=0.1, tau=1.0, times="0, 1"), "times"),
        (lambda: gradient_flow(sample, beta=0.1, tau=1.0, times=[[0, 1]]), "times"),
        (lambda: gradient_flow(sample, beta=0.1, tau=1.0, times=[0, 1], W0=W0[:2]), "W0"),
        (lambda: gradient_flow(sample, beta=0.1, tau=1.0, times=[0, 1], W0=W0[None].expand(3, -1, -1)), "W0"),
        (lambda: gradient_flow(sample, beta=0.1, tau=1.0, times=[0, 1], W0=W0 * float("nan")), "W0"),
        (lambda: gradient_descent(sample, beta=0.1, eta=0.1, steps=1, vocabulary_size=2), "vocabulary_size"),
        (lambda: gradient_descent(sample, beta=0.1, eta=0.1, steps=1, W0=W0, vocabulary_size=3), "vocabulary_size"),
        (lambda: gradient_descent(sample, beta=0.1, eta=0.1, steps=1, vocabulary_size=12.5), "vocabulary_size"),
        (lambda: adam(sample, steps=1, lr=0.0), "lr"),
        (lambda: adam(sample, steps=1, weight_decay=-1.0), "weight_decay"),
        (lambda: adam(sample, steps=1, betas=(0.9, 1.0)), "betas"),
        (lambda: tau_1(0, 0.1, 1.0), "K"),
        (lambda: clopper_pearson(3, 2), "errors"),
        (lambda: clopper_pearson(0, 0), "n"),
        (lambda: clopper_pearson(0, 5, 1.0), "confidence"),
    ]
    for call, name in cases:
        with pytest.raises(ValueError, match=name):
            call()


def test_float32_runs_and_keeps_its_dtype():
    dist = DiverseValueDistribution(K=2, d=5, v=0.3, l_b=0.3)
    result = gradient_descent(dist.sample([0, 1], Q=3, dtype=torch.float32), beta=0.5, eta=0.5, steps=5)
    assert result.train_margins.dtype == torch.float32


# --- one API -------------------------------------------------------------------------------------------
def test_times_may_be_a_list_an_array_or_a_tensor():
    sample, _, _ = setup(seeds=(2,))
    runs = [gradient_flow(sample, 0.5, 1.0, times, form=form).train_margins
            for times in ([0.0, 1.0, 3.0], np.array([0, 1, 3]), torch.tensor([0.0, 1.0, 3.0])) for form in ("reduced", "full")]
    assert all(torch.equal(runs[0], run) for run in runs[::2]) and all(torch.equal(runs[1], run) for run in runs[1::2])
    assert float(runs[0][0, -1].abs().max()) > 0.1


def test_the_training_face_keeps_statistics_apart():
    import verify.training
    assert not hasattr(verify.training, "clopper_pearson")  # it lives in verify.verdicts
    assert verify.training.gradient_flow.__module__ == "verify.trainers"
    assert verify.training.training_set.__module__ == "verify.layout"
    assert verify.training.zero_one_risk.__module__ == "verify.risk"


def test_the_flow_is_one_function_with_one_argument_order_and_one_default_tolerance():
    """Both forms share (data, beta, tau, times, loss) and the solver defaults; the other trainers share the order."""
    import inspect
    flow = inspect.signature(gradient_flow).parameters
    assert list(flow)[:5] == ["data", "beta", "tau", "times", "loss"]
    assert (flow["rtol"].default, flow["atol"].default) == (1e-10, 1e-12)
    assert list(inspect.signature(gradient_descent).parameters)[:5] == ["data", "beta", "eta", "steps", "loss"]
    common = {"test", "form", "W0", "vocabulary_size"}
    for trainer in (gradient_flow, gradient_descent, adam):
        keywords = {name for name, p in inspect.signature(trainer).parameters.items() if p.kind is p.KEYWORD_ONLY}
        assert common <= keywords, trainer.__name__


@pytest.mark.parametrize("trainer, kwargs", [
    (gradient_flow, dict(beta=0.5, tau=1.0, times=[0.0, 3.0])),
    (gradient_descent, dict(beta=0.5, eta=0.5, steps=10)),
    (adam, dict(beta=0.5, steps=10, lr=1e-2, weight_decay=0.1)),
])
def test_w0_is_used_by_the_reduced_form_to_give_w(trainer, kwargs):
    """W0 and vocabulary_size are never ignored: the reduced form's W equals the full form's, rows that never
    occur included (AdamW's decay of those rows in closed form)."""
    sample, test, W0 = setup()
    reduced, full = trainer(sample, W0=W0, **kwargs), trainer(sample, W0=W0, form="full", **kwargs)
    assert (reduced.weights() - full.weights()).abs().max() <= AGREEMENT
    assert (full.weights() - W0).abs().max() > 1e-3  # W moved
    others = torch.ones(W0.shape[0], dtype=torch.bool)
    others[reduced.rows] = False
    assert bool(others.any())
    if trainer is adam:
        expected = non_occurring_rows(W0, 1e-2, 0.1, 10)
        assert (full.weights()[:, others] - expected[others]).abs().max() <= AGREEMENT
        assert (expected[others] - W0[others]).abs().max() > 1e-3  # the decay is visible
    else:
        assert torch.equal(full.weights()[:, others], W0[others].expand(2, -1, -1))
    # vocabulary_size without W0: W starts at zeros of that size
    sized = trainer(sample, vocabulary_size=W0.shape[0] + 3, **kwargs).weights()
    assert sized.shape == (2, W0.shape[0] + 3, W0.shape[1]) and bool((sized[:, -3:] == 0).all())


def test_a_w0_per_trial_gives_the_same_margins_in_both_forms():
    sample, test, W0 = setup()
    per_trial = torch.stack([W0, 2 * W0])
    reduced = adam(sample, beta=0.5, steps=10, lr=1e-2, weight_decay=0.1, W0=per_trial, test=test)
    full = adam(sample, beta=0.5, steps=10, lr=1e-2, weight_decay=0.1, W0=per_trial, test=test, form="full")
    assert (reduced.train_margins - full.train_margins).abs().max() <= AGREEMENT
    assert (reduced.test_margins - full.test_margins).abs().max() <= AGREEMENT
    assert (reduced.weights() - full.weights()).abs().max() <= AGREEMENT


MEMORY_CHILD = r"""
import json, resource, sys, torch
sys.path.insert(0, sys.argv[1])
from verify.data_model import DiverseValueDistribution
from verify.training import gradient_descent
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * resource.getpagesize()
torch.zeros(1) @ torch.zeros(1)  # load kernels before the baseline
before = rss()
# Reset the high-water mark, so peaks from imports before the baseline don't count (Linux: VmHWM).
with open('/proc/self/clear_refs', 'w') as f:
    f.write('5')
sample = DiverseValueDistribution(K=2, d=1024, v=0.05, l_b=0.3).sample([0], Q=6250, dtype=torch.float32)
gradient_descent(sample, beta=0.01, eta=1.0, steps=2)
peak = [int(line.split()[1]) * 1024 for line in open('/proc/self/status') if line.startswith('VmHWM')][0]
print(json.dumps(dict(features=sample.features.numel() * 4, before=before, peak=peak)))
"""


@pytest.mark.slow
def test_memory_of_a_reduced_step_is_at_most_twice_the_features():
    """At N d = 2.56e7 float32 (102 MB): peak RSS above the post-import baseline <= 2 x features."""
    out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(ROOT)], capture_output=True, text=True, check=True, timeout=120)
    m = json.loads(out.stdout.strip().splitlines()[-1])
    assert m["peak"] - m["before"] <= 2 * m["features"], m


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    sample, test, W0 = setup()
    cpu = gradient_descent(sample, beta=0.5, eta=0.5, steps=20, test=test)
    moved = type(sample)(**{**sample.__dict__, **{k: getattr(sample, k).cuda() for k in ("features", "cluster", "chosen", "rejected", "means")}})
    moved_test = type(test)(**{**test.__dict__, **{k: getattr(test, k).cuda() for k in ("features", "cluster", "chosen", "rejected", "means")}})
    for form in ("reduced", "full"):
        gpu = gradient_descent(moved, beta=0.5, eta=0.5, steps=20, test=moved_test, form=form, W0=W0.cuda() if form == "full" else None)
        assert gpu.train_margins.device.type == "cuda"
        assert (gpu.train_margins.cpu() - cpu.train_margins).abs().max() <= AGREEMENT
    flow = gradient_flow(moved, beta=0.5, tau=1.0, times=[0.0, 2.0])
    assert flow.train_margins.device.type == "cuda"
    ad = adam(moved, beta=0.5, steps=10, lr=1e-2)
    assert (ad.train_margins.cpu() - adam(sample, beta=0.5, steps=10, lr=1e-2).train_margins).abs().max() <= AGREEMENT
