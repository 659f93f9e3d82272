"""Markdown tables: the README's claims table is the one generated from docs/results.json, and report.md
escapes `|` inside a cell instead of changing the text."""
from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest

from verify.report import markdown_cell, verdict_table
from verify.verdicts import Status, Verdict

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "readme_claims_table.py"


@pytest.fixture(scope="module")
def table_script():
    spec = importlib.util.spec_from_file_location("readme_claims_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def results():
    return json.loads((ROOT / "docs" / "results.json").read_text(encoding="utf-8"))


def test_readme_table_is_the_one_generated_from_the_committed_results(table_script, capsys):
    status = table_script.main(["--check"])
    assert status == 0, capsys.readouterr().err + " (run: python scripts/readme_claims_table.py)"


def test_the_check_fails_when_the_readme_and_the_results_differ(table_script, results, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text((ROOT / "README.md").read_text(encoding="utf-8"), encoding="utf-8")
    changed = copy.deepcopy(results)
    changed["verdicts"][0]["summary"] += " (changed)"
    (tmp_path / "results.json").write_text(json.dumps(changed), encoding="utf-8")
    args = ["--readme", str(readme), "--results", str(tmp_path / "results.json")]
    assert table_script.main([*args, "--check"]) == 1
    assert table_script.main(args) == 0 and "(changed)" in readme.read_text(encoding="utf-8")
    assert table_script.main([*args, "--check"]) == 0


def test_the_committed_results_cover_every_registered_claim(results):
    from verify.claims import all_claims

    assert [v["claim"] for v in results["verdicts"]] == list(all_claims())
    assert results["run"]["profile"] == "default" and results["run"]["seed"] == 0


def test_a_row_per_verdict_with_its_reference_and_status(table_script, results):
    rows = [line for line in table_script.claims_table(results).splitlines() if line.startswith("| `")]
    assert len(rows) == len(results["verdicts"])
    for row, verdict in zip(rows, results["verdicts"]):
        assert row.startswith(f"| `{verdict['claim']}` | {markdown_cell(results['run']['claims'][verdict['claim']]['reference'])} |")
        assert verdict["status"] in row


def test_a_cell_keeps_its_pipes_escaped_and_stays_on_one_line():
    assert markdown_cell("|grad a - grad b|/|grad b|") == r"\|grad a - grad b\|/\|grad b\|"
    assert markdown_cell("two\nlines") == "two lines"


def test_report_table_escapes_pipes_instead_of_replacing_them():
    summary = "|grad autograd - grad symbolic|/|grad| <= 3e-16"
    table = verdict_table([Verdict("lemma-4.1", Status.HOLDS, summary)])
    row = table.splitlines()[2]
    assert r"\|grad autograd - grad symbolic\|/\|grad\| <= 3e-16" in row
    # the row splits into exactly the header's 7 cells on the unescaped pipes
    cells = [c for c in row.replace(r"\|", "").split("|")][1:-1]
    assert len(cells) == table.splitlines()[0].count("|") - 1


def with_and_without_established(results):
    """The results in today's form (every verdict says whether it is established) and in the earlier form."""
    current, earlier = copy.deepcopy(results), copy.deepcopy(results)
    for verdict in current["verdicts"]:
        verdict.setdefault("established", verdict["status"] == "holds")
    for verdict in earlier["verdicts"]:
        verdict.pop("established", None)
    return current, earlier


def test_the_table_shows_which_verdicts_are_established(table_script, results):
    current, earlier = with_and_without_established(results)
    current["verdicts"][0].update(status="holds", exact=True)
    current["verdicts"][1].update(status="consistent", exact=False,
                                  details={**current["verdicts"][1]["details"], "trials_to_establish": 72})
    lines = table_script.claims_table(current).splitlines()
    header = next(line for line in lines if line.startswith("| claim"))
    assert header == "| claim | paper | verdict | established | measured vs bound |"
    rows = [line for line in lines if line.startswith("| `")]
    assert all(len(row.replace(r"\|", "").split("|")) == len(header.split("|")) for row in rows)
    assert rows[0].split(" | ")[3] == "yes (exact)" and rows[1].split(" | ")[3] == "no (n >= 72)"
    # a results.json from before `established` was recorded still gives its table, without the column
    header = next(line for line in table_script.claims_table(earlier).splitlines() if line.startswith("| claim"))
    assert header == "| claim | paper | verdict | measured vs bound |"
