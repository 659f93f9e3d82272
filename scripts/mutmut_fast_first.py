"""pytest plugin for mutmut runs: run the selected tests fastest first, so that a killed mutant is killed by
its quickest failing test (mutmut passes -x). Durations come from mutmut's own stats run; a test without a
recorded duration runs last. Loaded only through [tool.mutmut] pytest_add_cli_args."""
import json
from pathlib import Path


def pytest_collection_modifyitems(items):
    stats = Path("mutmut-stats.json")  # mutmut runs pytest inside mutants/, where it keeps its stats
    if not stats.exists():
        return
    duration = json.loads(stats.read_text()).get("duration_by_test", {})
    items.sort(key=lambda item: duration.get(item.nodeid, float("inf")))
