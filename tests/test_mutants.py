"""Mutation testing of the claims (`verify.mutants`, `dpo-verify mutate`): every falsified statement is killed by
the claim it is aimed at, every claim kills at least one, and the unmutated claims at the same points do not
give the killing verdict, so a kill is due to the mutation."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from theory.training_guarantee import THEOREM_4_2
from verify import mutants
from verify.claims import all_claims, get_claim
from verify.cli import main
from verify.mutants import EQUIVALENT, KILLING, MUTANTS, applied, run_control, run_mutant
from verify.verdicts import Status

BY_ID = {m.id: m for m in MUTANTS + EQUIVALENT}


def test_the_registry_holds_at_least_30_falsified_statements_with_distinct_ids():
    assert len(MUTANTS) >= 30
    assert len(BY_ID) == len(MUTANTS) + len(EQUIVALENT)
    claims = all_claims()
    for mutant in MUTANTS + EQUIVALENT:
        assert mutant.claim in claims and mutant.id.startswith(mutant.claim + "/")
        owner, attribute = mutants._resolve(mutant.target)
        original = getattr(owner, attribute)
        assert mutant.change(original) is not original  # a modified copy, never the object itself
        assert mutant.kills and mutant.kills <= KILLING
        get_claim(mutant.claim).parameters(True, **mutant.overrides)  # the point is a valid parameter set


def test_every_registered_claim_has_a_falsified_mutant():
    assert {m.claim for m in MUTANTS} == set(all_claims())


def test_a_statement_mutant_replaces_every_binding_and_is_undone():
    mutant = BY_ID["theorem-4.2/r_U-x0.5"]
    import theory.training_guarantee as theory_module
    import verify.claims.training_guarantee as claim_module

    original_r_U = THEOREM_4_2.conclusions["r_U"]
    with applied(mutant) as (original, mutated):
        assert original is THEOREM_4_2 and mutated is not THEOREM_4_2
        assert theory_module.THEOREM_4_2 is mutated and claim_module.THEOREM_4_2 is mutated
        assert mutated.conclusions["r_U"] == original_r_U / 2
        check = mutants._check_with(get_claim("theorem-4.2").check, original, mutated)
        assert check.args[0] is mutated
    assert theory_module.THEOREM_4_2 is THEOREM_4_2 and claim_module.THEOREM_4_2 is THEOREM_4_2
    assert THEOREM_4_2.conclusions["r_U"] == original_r_U
    assert get_claim("theorem-4.2").check.args[0] is THEOREM_4_2


def test_mutate_quick_kills_every_falsified_mutant(capsys):
    code = main(["mutate", "--quick"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == f"killed {len(MUTANTS)}/{len(MUTANTS)}", lines[-3:]
    assert code == 0
    rows = {line.split()[0]: line for line in lines[1:-2] if line.split() and line.split()[0] in BY_ID}
    assert set(rows) == set(BY_ID)
    for mutant in MUTANTS:
        words = rows[mutant.id].split()
        assert words[1:3] == [mutant.claim, "killed"], rows[mutant.id]
        assert words[3].rstrip(":") in {s.value for s in mutant.kills}  # the evidence starts with the verdict
    for mutant in EQUIVALENT:  # true statements: run, listed, never refuted
        assert rows[mutant.id].split()[2] == "survived", rows[mutant.id]


@pytest.mark.parametrize("mutant_id", [m.id for m in MUTANTS])
def test_the_unmutated_claim_at_the_same_point_is_not_killed(mutant_id):
    mutant = BY_ID[mutant_id]
    control = run_control(mutant)
    assert control.status not in mutant.kills, control.summary
    if mutant.claim == "eq-5":
        # the printed Eq. (5) is a discrepancy by design; its mutants must make it violated instead
        assert control.status is Status.DISCREPANCY and mutant.kills == {Status.VIOLATED}
    else:
        assert control.status not in KILLING, control.summary


def test_a_surviving_mutant_is_listed_and_fails_the_run(monkeypatch, capsys):
    true_statement = BY_ID["lemma-c.2/assumption-widened"]
    monkeypatch.setattr(mutants, "MUTANTS", (true_statement,))
    monkeypatch.setattr(mutants, "EQUIVALENT", ())
    assert main(["mutate", "--quick"]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == "killed 0/1"
    assert any(line.split()[:3] == [true_statement.id, "lemma-c.2", "SURVIVED"] for line in out)


def test_an_equivalent_mutant_that_a_check_refutes_fails_the_run(monkeypatch, capsys):
    false_statement = BY_ID["lemma-c.2/delta-halved"]
    monkeypatch.setattr(mutants, "MUTANTS", ())
    monkeypatch.setattr(mutants, "EQUIVALENT", (false_statement,))
    assert main(["mutate", "--quick"]) == 1
    out = capsys.readouterr().out
    assert "REFUTED" in out and out.strip().splitlines()[-1] == "killed 0/0"


def test_only_selects_by_mutant_or_claim_and_the_mutant_run_restores_the_statement():
    falsified, equivalent = mutants.select("eq-5,lemma-c.2/delta-halved")
    assert [m.id for m in falsified] == ["lemma-c.2/delta-halved", "eq-5/without-d_p", "eq-5/without-co-occurrence"]
    assert equivalent == []
    from theory.concentration import LEMMA_C2

    before = dict(LEMMA_C2.conclusions)
    result = run_mutant(BY_ID["lemma-c.2/delta-halved"])
    assert result.killed and result.verdict.status is Status.VIOLATED and result.verdict.bound == pytest.approx(0.15)
    assert LEMMA_C2.conclusions == before and get_claim("lemma-c.2").run(quick=True).status is Status.HOLDS


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_bad_input_is_one_line_exit_2_without_torch():
    code = ("import sys\nfrom verify.cli import main\nrc = main(['mutate', '--only', 'theorem-9.9,eq-2'])\n"
            "print(rc, 'torch' in sys.modules)")
    done = _run_python(code)
    assert done.stdout.split() == ["2", "False"], done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert re.match(r"dpo-verify: error: --only .*'theorem-9\.9'", done.stderr)
    listed = _run_python("import sys\nfrom verify.cli import main\nrc = main(['mutate', '--list'])\n"
                         "print(rc, 'torch' in sys.modules, file=sys.stderr)")
    assert listed.stderr.split() == ["0", "False"], listed.stderr
    assert all(m.id in listed.stdout for m in MUTANTS + EQUIVALENT)


def test_evidence_is_shortened_and_keeps_the_proof_step():
    result = run_mutant(BY_ID["theorem-4.2/r_L-x20"])
    evidence = result.evidence(120)
    assert len(evidence) <= 120 and evidence.startswith("violated: counterexample to the proof")
    tally = result.verdict.proof_step
    assert evidence.endswith(f"[proof step: {tally.counterexamples}/{tally.event_held} counterexamples]")
    assert tally.counterexamples == tally.event_held > 0
