"""Random preference instances for identity checks: shared tokens and swapped pairs on purpose."""
from __future__ import annotations

import torch

from verify.model import PreferenceData


def random_instance(seed: int, vocabulary_size: int = 6, dimension: int = 4, samples: int = 12, dtype=torch.float64):
    """Features, tokens and a reference W0; every token is shared and the first two pairs are swapped."""
    if vocabulary_size < 3 or samples < 2 or dimension < 1:
        raise ValueError(f"need vocabulary_size >= 3, samples >= 2, dimension >= 1; got {vocabulary_size}, {samples}, {dimension}")
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(samples, dimension, generator=generator, dtype=dtype)
    chosen = torch.randint(0, vocabulary_size, (samples,), generator=generator)
    rejected = (chosen + torch.randint(1, vocabulary_size, (samples,), generator=generator)) % vocabulary_size
    chosen[1], rejected[1] = rejected[0], chosen[0]  # opposite preferences, as C_{i,+} vs C_{i,-}
    W0 = torch.randn(vocabulary_size, dimension, generator=generator, dtype=dtype)
    return W0, PreferenceData(features, chosen, rejected)
