"""The commands that need only sympy start without torch: `list`, `audit`, `scaling`, `derive --no-numeric`.

Each runs in a fresh interpreter (torch, once imported, stays in `sys.modules`), which then checks that
torch was never imported. The time these commands take is measured by benchmarks/bench_cli.py, not here.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

COMMANDS = {
    "list": ["list"],
    "list --parameters": ["list", "--parameters"],
    "audit": ["audit", "--item", "spec-5.2"],
    "scaling": ["scaling", "--K", "1", "--plot", "{tmp}/p.png"],
    "derive --no-numeric": ["derive", "--loss", "(r-1)**2", "--no-numeric"],
}

PROBE = """
import sys
from verify.cli import main
status = main({argv!r})
assert status == 0, status
sys.exit(3 if "torch" in sys.modules else 0)
"""


@pytest.mark.parametrize("name", COMMANDS)
def test_command_never_imports_torch(name, tmp_path):
    argv = [part.replace("{tmp}", str(tmp_path)) for part in COMMANDS[name]]
    result = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True,
                            timeout=300, cwd=tmp_path)
    assert result.returncode != 3, f"{name} imported torch"
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert result.stdout.strip(), "the command printed nothing"


@pytest.mark.slow
def test_the_probe_sees_torch_when_a_command_imports_it(tmp_path):
    """The check above can fail: a command that needs torch (Lemma 4.1's autograd check) is seen importing it."""
    argv = ["check", "lemma-4.1", "--quick"]
    result = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True,
                            timeout=300, cwd=tmp_path)
    assert result.returncode == 3, result.stdout[-2000:] + result.stderr[-2000:]
