"""No string from outside reaches an evaluator: the code has no call that could take one, and the injection
payloads that used to run code (through --set, a sweep config and a stored sweep) now create nothing."""
from __future__ import annotations

import ast
import json
import sqlite3
from pathlib import Path

import pytest

from verify.cli import main

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("theory", "verify", "benchmarks")
# Python's evaluators (as built-in names) and sympy's (in any spelling: sympify and its family call eval on a str).
BUILTIN_EVALUATORS = {"eval", "exec", "compile", "__import__"}
SYMPY_EVALUATORS = {"sympify", "nsimplify", "parse_expr", "S"}


def evaluator_calls(source: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in BUILTIN_EVALUATORS | SYMPY_EVALUATORS:
            found.append((node.lineno, func.id))
        elif isinstance(func, ast.Attribute) and func.attr in SYMPY_EVALUATORS:
            owner = ast.unparse(func.value)
            found.append((node.lineno, f"{owner}.{func.attr}"))
    return found


def test_the_scan_finds_what_it_looks_for():
    source = ("import sympy as sp\nsp.sympify(x)\nsp.nsimplify(y)\neval(z)\nsp.S(w)\nparse_expr(t)\nmodel.eval()\n"
              "re.compile(p)\n")
    assert [name for _, name in evaluator_calls(source)] == ["sp.sympify", "sp.nsimplify", "eval", "sp.S", "parse_expr"]


def test_no_evaluator_call_in_the_code():
    offenders = [f"{path.relative_to(ROOT)}:{line}: {name}"
                 for folder in SCANNED for path in sorted((ROOT / folder).rglob("*.py"))
                 for line, name in evaluator_calls(path.read_text())]
    assert offenders == [], "calls that could evaluate a string from outside:\n" + "\n".join(offenders)


def _payload(marker: Path) -> str:
    return f"__import__('os').system('touch {marker}')"


@pytest.mark.parametrize("claim, name", [("scaling-law", "delta"), ("sec7-failure-mode", "beta"),
                                         ("lemma-c.2", "delta"), ("theorem-4.3", "v"), ("lemma-4.1", "loss"),
                                         ("theorem-4.2", "tokens"), ("scaling-law", "K_values")])
def test_injection_through_set_runs_nothing(tmp_path, capsys, claim, name):
    marker = tmp_path / "pwned"
    assert main(["check", claim, "--quick", "--set", f"{name}={_payload(marker)}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"parameter {name}" in err[0] and "allowed" in err[0]
    assert not marker.exists()


def _scaling_config(path: Path, extra: str = "") -> Path:
    path.write_text('[sweep]\nname = "s"\ntarget = "experiment:empirical-scaling"\nseeds = 1\n\n'
                    f'[parameters]\nK = 1\nQ = 2\nd = 4\ntest_size = 10\n{extra}')
    return path


def test_injection_through_a_sweep_config_runs_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned"
    config = _scaling_config(tmp_path / "c.toml", f"delta = {json.dumps(_payload(marker))}\n")  # a TOML string
    assert main(["sweep", str(config), "--store", str(tmp_path / "s.sqlite"), "--workers", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "parameter delta" in err[0]
    assert not marker.exists() and not (tmp_path / "s.sqlite").exists()


def test_injection_through_a_stored_sweep_runs_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "s.sqlite"
    assert main(["sweep", str(_scaling_config(tmp_path / "c.toml")), "--store", str(store), "--workers", "1"]) == 0
    marker = tmp_path / "pwned"
    with sqlite3.connect(store) as connection:  # a store edited by someone else
        (config,) = connection.execute("SELECT config FROM sweeps").fetchone()
        raw = json.loads(config)
        raw["parameters"]["delta"] = _payload(marker)
        connection.execute("UPDATE sweeps SET config = ?", (json.dumps(raw),))
        for key, parameters in connection.execute("SELECT trial_key, parameters FROM trials").fetchall():
            edited = {**json.loads(parameters), "delta": _payload(marker)}
            connection.execute("UPDATE trials SET parameters = ? WHERE trial_key = ?", (json.dumps(edited), key))
    capsys.readouterr()
    assert main(["sweep-report", str(store), "--output", str(tmp_path / "report")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "delta" in err[0]
    assert not marker.exists() and not (tmp_path / "report").exists()
