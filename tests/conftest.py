"""Hypothesis profiles: `ci` (the default: fast and derandomized, so CI runs are reproducible) and
`thorough` (HYPOTHESIS_PROFILE=thorough: many more examples, random, with the example database)."""
import os
import sys

import pytest

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=15, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def object_api_only(monkeypatch):
    """Drawing must neither switch matplotlib's global backend nor go through pyplot's global state."""
    import matplotlib

    def refuse(*args, **kwargs):
        raise AssertionError(f"matplotlib.use{args} switches the backend of the whole process")
    monkeypatch.setattr(matplotlib, "use", refuse)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # `import matplotlib.pyplot` now fails
