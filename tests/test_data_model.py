"""The sampler for P (§1.5, Def. C.1) and the Lemma B.1 statistics (verify/data_model.py)."""
import math

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st
from scipy import stats

from verify.data_model import (
    DiverseValueDistribution,
    chain_tokens,
    concentration_events,
    disjoint_tokens,
    gram_statistics,
    grouped_tokens,
)


def small(**overrides):
    params = dict(K=3, d=6, v=0.2, l_b=0.3, tokens=chain_tokens(3))
    params.update(overrides)
    return DiverseValueDistribution(**params)


@pytest.mark.parametrize("params, name", [
    (dict(v=-0.1), "v"), (dict(K=0, d=6, tokens=None), "K"), (dict(d=3), "d"), (dict(delta=0.5), "delta"),
    (dict(delta=-0.1), "delta"), (dict(l_b=-1.0), "l_b"), (dict(v=float("nan")), "v"),
    (dict(tokens=((0, 1), (1, 0), (2, 3))), "tokens"), (dict(tokens=((0, 0), (1, 2), (3, 4))), "tokens"),
    (dict(tokens=((0, 1),)), "tokens"),
])
def test_bad_parameters_name_themselves(params, name):
    with pytest.raises(ValueError, match=name):
        small(**params)


def test_bad_sampling_arguments_name_themselves():
    dist = small()
    for call, name in [(lambda: dist.sample([0], Q=0), "Q"), (lambda: dist.test_set([0], size=0), "size"),
                       (lambda: dist.sample([-1], Q=2), "seeds"), (lambda: dist.sample([], Q=2), "seeds"),
                       (lambda: dist.test_set([0], 5, stream=-1), "stream"), (lambda: grouped_tokens(3, 0), "Z")]:
        with pytest.raises(ValueError, match=name):
            call()


def test_same_seed_same_draw_and_batch_equals_loop():
    dist = small(delta=0.3)
    batch = dist.sample([5, 7, 11], Q=4)
    for b, seed in enumerate([5, 7, 11]):
        alone = dist.sample(seed, Q=4)
        assert torch.equal(batch.features[b], alone.features[0])
        assert torch.equal(batch.means[b], alone.means[0])
        assert torch.equal(dist.test_set([5, 7, 11], 9).features[b], dist.test_set(seed, 9).features[0])
    assert torch.equal(dist.sample([5, 7, 11], Q=4).features, batch.features)
    assert not torch.equal(batch.features[0], batch.features[1])


def test_test_sets_are_fresh_draws():
    dist = small()
    train, test, other = dist.sample(3, Q=5), dist.test_set(3, 30), dist.test_set(3, 30, stream=1)
    assert not torch.isin(test.features, train.features).any()
    assert not torch.isin(test.features, other.features).any()
    assert test.size == 30 and set(test.cluster[0].tolist()) <= set(range(6))


def test_layout_tokens_and_means():
    dist = small(v=0.0)
    sample = dist.sample(0, Q=2)
    b = torch.zeros(dist.d, dtype=torch.float64)
    b[0] = dist.l_b
    for i, (u, u_) in enumerate(dist.tokens):
        c = torch.zeros(dist.d, dtype=torch.float64)
        c[i + 1] = 1
        plus, minus = slice(4 * i, 4 * i + 2), slice(4 * i + 2, 4 * i + 4)
        assert torch.equal(sample.features[0, plus], (b + c).expand(2, -1))  # v = 0: every sample is its mean
        assert torch.equal(sample.features[0, minus], (b - c).expand(2, -1))
        assert sample.chosen[0, plus].tolist() == [u, u] and sample.rejected[0, plus].tolist() == [u_, u_]
        assert sample.chosen[0, minus].tolist() == [u_, u_] and sample.rejected[0, minus].tolist() == [u, u]


@given(K=st.integers(1, 12), z=st.integers(1, 6))
@example(K=1, z=1).via("the minimum")
def test_Z_is_reported_for_pairs_and_clusters(K, z):
    assert DiverseValueDistribution(K, K + 1, 0.1, 0.3, tokens=disjoint_tokens(K)).Z_pairs == 1
    assert DiverseValueDistribution(K, K + 1, 0.1, 0.3, tokens=chain_tokens(K)).Z_pairs == min(2, K)
    grouped = DiverseValueDistribution(K, K + 1, 0.1, 0.3, tokens=grouped_tokens(K, z))
    assert grouped.Z_pairs == min(z, K)
    assert grouped.Z_clusters == 2 * grouped.Z_pairs


@given(K=st.integers(1, 6), extra=st.integers(0, 4), delta=st.floats(0, 0.499), seed=st.integers(0, 2**31))
def test_approximate_orthogonality_def_C1_and_lemma_C2(K, extra, delta, seed):
    dist = DiverseValueDistribution(K, K + 1 + extra, 0.1, 0.3, delta=delta)
    c = dist.concept_vectors(seed)[0]
    ulp = 8 * torch.finfo(torch.float64).eps
    assert torch.allclose(c.norm(dim=1), torch.ones(K, dtype=torch.float64), atol=ulp, rtol=0)
    assert (c[torch.arange(K), torch.arange(1, K + 1)].abs() >= 1 - delta**2 / 8 - ulp).all()
    off = (c @ c.T - torch.eye(K, dtype=torch.float64)).abs()
    assert (off <= delta + ulp).all()


def test_cluster_means_and_spread_match_the_model():
    dist = small(v=0.5, delta=0.2)
    n_seeds, Q = 20, 50
    sample = dist.sample(list(range(n_seeds)), Q=Q)
    x = sample.features.view(n_seeds, 6, Q, dist.d)
    centred = x - sample.means[:, :, None, :]
    count = centred.numel()
    # Bonferroni over every coordinate of every cluster mean: failure probability <= 1e-6.
    z = stats.norm.ppf(1 - 1e-6 / (2 * 6 * dist.d))
    assert centred.mean(dim=(0, 2)).abs().max() <= z * dist.v / math.sqrt(n_seeds * Q)
    chi = stats.chi2(count)  # sum of squares / v^2 is chi^2 with `count` degrees of freedom
    assert chi.ppf(1e-6) <= float((centred**2).sum()) / dist.v**2 <= chi.ppf(1 - 1e-6)


def brute_force_gram_statistics(sample):
    dist = sample.distribution
    out = {k: [] for k in ("eq9_same_cluster", "eq10_norms", "eq11_opposite_cluster", "eq12_sharing_same_sign", "eq13_sharing_opposite_sign")}
    for b in range(sample.batch_size):
        G = sample.features[b]
        expected = sample.means[b][sample.cluster[b]] @ sample.means[b][sample.cluster[b]].T
        expected += torch.eye(len(G), dtype=G.dtype) * dist.d * dist.v**2
        dev = (G @ G.T - expected).abs()
        best = dict.fromkeys(out, 0.0)
        for j in range(len(G)):
            for k in range(len(G)):
                a, a2 = int(sample.cluster[b, j]), int(sample.cluster[b, k])
                if j == k:
                    key = "eq10_norms"
                elif a == a2:
                    key = "eq9_same_cluster"
                elif a // 2 == a2 // 2:
                    key = "eq11_opposite_cluster"
                elif dist.shares_token(a // 2, a2 // 2):
                    key = "eq12_sharing_same_sign" if a % 2 == a2 % 2 else "eq13_sharing_opposite_sign"
                else:
                    continue
                best[key] = max(best[key], float(dev[j, k]))
        for key in out:
            out[key].append(best[key])
    return out


@pytest.mark.parametrize("tokens", [disjoint_tokens(3), chain_tokens(3)])
def test_gram_statistics_match_a_brute_force_count(tokens):
    sample = small(tokens=tokens, delta=0.3).sample([1, 2], Q=3)
    got = gram_statistics(sample)
    for key, values in brute_force_gram_statistics(sample).items():
        assert torch.allclose(got[key], torch.tensor(values, dtype=torch.float64), rtol=0, atol=1e-12), key


def test_concentration_events_are_thresholded_gram_statistics():
    sample = small(v=0.1).sample(list(range(4)), Q=4)
    stats_ = gram_statistics(sample)
    assert all(concentration_events(sample, epsilon=1e6)["all"])
    width = float(stats_["eq9_same_cluster"][0])
    events = concentration_events(sample, epsilon=1.0, half_width=width)
    assert bool(events["eq9_same_cluster"][0])
    assert torch.equal(events["eq10_norms"], stats_["eq10_norms"] <= width)
    assert torch.equal(events["all"], torch.stack([events[k] for k in stats_]).all(0))
    with pytest.raises(ValueError, match="epsilon"):
        concentration_events(sample, epsilon=0.0)


def test_float32_is_allowed():
    sample = small().sample([0, 1], Q=2, dtype=torch.float32)
    assert sample.features.dtype == torch.float32 and sample.means.dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_sampling_on_cuda_is_reproducible():
    dist = small(delta=0.2)
    a, b = dist.sample([0, 1], Q=3, device="cuda"), dist.sample([1], Q=3, device="cuda")
    assert a.features.device.type == "cuda"
    assert torch.equal(a.features[1], b.features[0])
