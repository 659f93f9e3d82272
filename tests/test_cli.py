"""The command line through its real entry point."""
import subprocess
import sys


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "verify", *args], capture_output=True, text=True, timeout=600)


def test_quick_run_prints_one_verdict_line_per_claim():
    from verify.claims import all_claims

    result = run_cli("run", "--quick")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    for claim_id in all_claims():
        assert any(line.startswith(claim_id + " ") for line in lines), claim_id
    assert "violated" not in result.stdout


def test_list_shows_paper_references():
    result = run_cli("list")
    assert result.returncode == 0 and "Lemma 4.1" in result.stdout


def test_unknown_argument_exits_2_without_traceback():
    result = run_cli("run", "--no-such-flag")
    assert result.returncode == 2 and "Traceback" not in result.stderr
