"""Hypothesis profiles: `ci` (the default: fast and derandomized, so CI runs are reproducible) and
`thorough` (HYPOTHESIS_PROFILE=thorough: many more examples, random, with the example database)."""
import os
import sys
from pathlib import Path

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


SNAPSHOTS = Path(__file__).parent / "snapshots"


@pytest.fixture
def snapshot():
    """Compare a report's text with tests/snapshots/NAME, so that a change to what a researcher reads is made on
    purpose: UPDATE_SNAPSHOTS=1 rewrites the file instead (then review its diff)."""
    def check(name: str, text: str) -> None:
        path = SNAPSHOTS / name
        if os.environ.get("UPDATE_SNAPSHOTS") == "1":
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
            return
        assert path.exists(), f"no snapshot {path}; write it with UPDATE_SNAPSHOTS=1"
        assert text == path.read_text(), f"{name} changed; if on purpose, rerun with UPDATE_SNAPSHOTS=1 and review the diff"
    return check


@pytest.fixture(scope="session")
def quick_verdict():
    """claim id -> its verdict at the quick defaults, run once per session (a claim's run is deterministic and
    the tests only read it). Tests that patch a claim's statement or module run it themselves."""
    from verify.claims import get_claim

    verdicts = {}

    def verdict(claim_id: str):
        if claim_id not in verdicts:
            verdicts[claim_id] = get_claim(claim_id).run(quick=True)
        return verdicts[claim_id]
    return verdict
