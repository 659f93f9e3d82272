"""The bad-input corpus: every subcommand, the sweep TOML and the Python API.

Each case must give exit status 2, exactly one line on stderr that names what was wrong, no traceback, and
leave the working folder byte-identical (nothing created, changed or deleted). `check` cases are generated
from the claims' own parameter declarations, so a new parameter is covered as soon as it is declared.
The valid controls at the end show that the same paths still work.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

from verify.claims import all_claims, get_claim
from verify.cli import main
from verify.parameters import Parameter
from verify.sweep.config import ConfigError, parse_config
from verify.sweep.experiments import EXPERIMENTS

INJECTION = "__import__('os').system('touch pwned')"


def bad_values(spec: Parameter) -> list[str]:
    """Values outside a declared domain, by kind: wrong type, non-finite, just outside each bound."""
    if spec.kind in ("int", "real", "dimension"):
        out = ["abc", "nan", INJECTION, "1/0"]
        out += ["1.5"] if spec.kind != "real" else ["inf", "1e400"]
        if spec.low is not None:
            out.append(repr(spec.low) if spec.low_open else (str(spec.low - 1) if spec.kind != "real" else repr(spec.low - 1.0)))
        if spec.high is not None:
            out.append(str(int(spec.high) + 1) if spec.kind != "real" else repr(spec.high * 10 if spec.high > 0 else 1.0))
        return out
    if spec.kind == "int-list":
        return ["1,,2", "x", ",", f"1,{int(spec.low) - 1}"]
    if spec.kind == "choice-list":
        return ["foo", f"{spec.choices[0]},,{spec.choices[0]}"]
    if spec.kind == "choice":
        return ["foo", ""]
    if spec.kind == "tokens":
        return ["grouped:0", "bad", "grouped:x"]
    raise AssertionError(spec.kind)


def check_cases() -> list[tuple[str, list[str], str]]:
    cases = []
    for claim in all_claims().values():
        for name in claim.defaults:
            for value in bad_values(claim.specs[name]):
                if value == "":
                    continue  # an empty value is a malformed --set, covered below
                cases.append(("check", ["check", claim.id, "--quick", "--set", f"{name}={value}"], f"parameter {name}"))
    return cases


# Files the cases refer to, laid out in the working folder before each case.
USER_FILES = {"mydata/thesis.tex": b"\\documentclass{article}", "user.txt": b"notes", "notastore.txt": b"hello",
              "empty.sqlite": b"", "foreign.png": b"\x89PNG not ours", "adir/keep": b"x"}


def sweep_toml(parameters: str = "", sweep: str = "", search: str = "", target: str = "experiment:sleep") -> str:
    return (f'[sweep]\nname = "corpus"\ntarget = "{target}"\nseeds = 1\n{sweep}\n[parameters]\n{parameters}\n'
            + (f"[search]\n{search}\n" if search else ""))


CONFIGS = {
    "k_negative.toml": sweep_toml("K = -1\nQ = 2\nd = 4", target="experiment:empirical-scaling"),
    "k_nan.toml": sweep_toml("K = nan", target="experiment:empirical-scaling"),
    "k_float.toml": sweep_toml("K = 1.5", target="experiment:empirical-scaling"),
    "v_inf.toml": sweep_toml("v = inf", target="experiment:empirical-scaling"),
    "delta_code.toml": sweep_toml(f"delta = {json.dumps(INJECTION)}", target="experiment:empirical-scaling"),
    "delta_one.toml": sweep_toml("delta = 1", target="experiment:empirical-scaling"),
    "d_rule.toml": sweep_toml('d = "3K+1"', target="experiment:empirical-scaling"),
    "tokens_bad.toml": sweep_toml('tokens = "grouped:0"', target="experiment:empirical-scaling"),
    "regime_bad.toml": sweep_toml('regime = "outside"', target="experiment:empirical-scaling"),
    "q_huge.toml": sweep_toml("Q = 100000000", target="experiment:empirical-scaling"),
    "claim_beta.toml": sweep_toml("beta = 0", target="claim:sec7-failure-mode"),
    "claim_losses.toml": sweep_toml('losses = "foo"', target="claim:sec7-gpo"),
    "claim_k_table.toml": sweep_toml('K_table = "1,,2"', target="claim:scaling-law"),
    "claim_z.toml": sweep_toml('Z_reading = "foo"', target="claim:theorem-4.2"),
    "claim_unknown.toml": sweep_toml("zzz = 1", target="claim:eq-2"),
    "claim_nope.toml": sweep_toml(target="claim:no-such-claim"),
    "target_bad.toml": sweep_toml(target="nothing"),
    "seeds_huge.toml": sweep_toml(sweep="seeds = 1000000000").replace("seeds = 1\n", "", 1),
    "seeds_negative.toml": sweep_toml(sweep="seeds = [-1]").replace("seeds = 1\n", "", 1),
    "seeds_duplicate.toml": sweep_toml(sweep="seeds = [1, 1]").replace("seeds = 1\n", "", 1),
    "seeds_huge_value.toml": sweep_toml(sweep="seeds = [99999999999999999999]").replace("seeds = 1\n", "", 1),
    "mode_bad.toml": sweep_toml(sweep='mode = "sometimes"'),
    "random_no_samples.toml": sweep_toml(sweep='mode = "random"'),
    "random_bad_range.toml": sweep_toml("seconds = {low = 1, high = 0}", sweep='mode = "random"\nsamples = 2'),
    "search_start.toml": sweep_toml(search='parameter = "Q"\nstart = 0'),
    "search_maximum.toml": sweep_toml(search='parameter = "Q"\nmaximum = 100000000000'),
    "search_unknown.toml": sweep_toml(search='parameter = "zzz"'),
    "grid_huge.toml": sweep_toml("Q = [" + ", ".join(str(q) for q in range(1, 1101)) + "]\nvalue = ["
                                 + ", ".join(f"{x}.0" for x in range(1, 1001)) + "]"),
    "unknown_table.toml": sweep_toml() + "[extra]\nx = 1\n",
    "not_toml.toml": "this is = not [ toml",
    "no_sweep.toml": "[parameters]\nQ = 1\n",
}

CASES: list[tuple[str, list[str], str]] = [
    # run
    ("run", ["run", "--seed", "abc"], "seed"),
    ("run", ["run", "--seed", "-1"], "seed"),
    ("run", ["run", "--seed", "1.5"], "seed"),
    ("run", ["run", "--seed", "99999999999999999999999"], "seed"),
    ("run", ["run", "--output", "."], "--output ."),
    ("run", ["run", "--output", ".."], "--output .."),
    ("run", ["run", "--output", "mydata"], "--output mydata"),
    ("run", ["run", "--output", "user.txt"], "--output user.txt"),
    ("run", ["run", "--output", "adir"], "--output adir"),
    ("run", ["run", "--bogus"], "--bogus"),
    ("run", ["--quick", "--output", "mydata"], "--output mydata"),
    # list
    ("list", ["list", "--bogus"], "--bogus"),
    ("list", ["list", "extra"], "extra"),
    # check: malformed --set and claims
    ("check", ["check", "no-such-claim"], "unknown claim"),
    ("check", ["check", "eq-2", "--set", "V"], "NAME=VALUE"),
    ("check", ["check", "eq-2", "--set", "=3"], "NAME=VALUE"),
    ("check", ["check", "eq-2", "--set", "V="], "NAME=VALUE"),
    ("check", ["check", "eq-2", "--set", "V=3", "--set", "V=4"], "twice"),
    ("check", ["check", "eq-2", "--set", "zzz=1"], "zzz"),
    ("check", ["check", "eq-2", "--seed", "x"], "seed"),
    ("check", ["check", "theorem-4.2", "--set", "Q=10000000"], "GiB"),
    ("check", ["check", "theorem-4.3", "--set", "test_size=10000000", "--set", "trials=100000"], "GiB"),
    # derive
    ("derive", ["derive"], "--loss"),
    ("derive", ["derive", "--loss", "r", "--loss-type", "ipo"], "not allowed with"),
    ("derive", ["derive", "--loss", ""], "empty"),
    ("derive", ["derive", "--loss", "(r-1"], "does not parse"),
    ("derive", ["derive", "--loss", INJECTION], "syntax"),
    ("derive", ["derive", "--loss", "exp(1,2)"], "exp"),
    ("derive", ["derive", "--loss", "foo(r)"], "foo"),
    ("derive", ["derive", "--loss", "r**10**10"], "exponent"),
    ("derive", ["derive", "--loss", "10**10**10*r"], "exponent"),
    ("derive", ["derive", "--loss", "(r+1)**100000"], "exponent"),
    ("derive", ["derive", "--loss", "+".join(["r"] * 999)], "loss"),
    ("derive", ["derive", "--loss", "-" * 1999 + "r"], "loss"),
    ("derive", ["derive", "--loss", "r" * 2001], "2000"),
    ("derive", ["derive", "--loss", "sqrt(r)"], "r = 0"),
    ("derive", ["derive", "--loss", "1"], "does not depend on r"),
    ("derive", ["derive", "--loss", "r", "--beta", "0"], "beta"),
    ("derive", ["derive", "--loss", "r", "--beta", "-1"], "beta"),
    ("derive", ["derive", "--loss", "r", "--beta", "nan"], "beta"),
    ("derive", ["derive", "--loss", "r", "--beta", "abc"], "beta"),
    ("derive", ["derive", "--loss-type", "ipo", "--beta", "inf"], "beta"),
    ("derive", ["derive", "--loss-type", "sigmoid", "--label-smoothing", "nan"], "label"),
    ("derive", ["derive", "--loss-type", "sigmoid", "--label-smoothing", "0.6"], "label"),
    ("derive", ["derive", "--loss-type", "sigmoid", "--label-smoothing", "-0.1"], "label"),
    ("derive", ["derive", "--loss-type", "nope"], "nope"),
    ("derive", ["derive", "--loss-type", "aot"], "aot"),
    ("derive", ["derive", "--loss-type", "sigmoid", "--label-smoothing", "0.1"], "label_smoothing"),
    ("derive", ["derive", "--loss-type", "exo_pair"], "label_smoothing"),
    ("derive", ["derive", "--loss", "r", "--shares", "0.5"], "--shares"),
    ("derive", ["derive", "--loss", "r", "--shares", "0.5,0.6"], "--shares"),
    ("derive", ["derive", "--loss", "r", "--shares", "1,0"], "--shares"),
    ("derive", ["derive", "--loss", "r", "--shares", "nan,1"], "--shares"),
    ("derive", ["derive", "--loss", "r", "--shares", INJECTION], "--shares"),
    ("derive", ["derive", "--loss", "r", "--flip-rate", "0.5"], "--flip-rate"),
    ("derive", ["derive", "--loss", "r", "--flip-rate", "-0.1"], "--flip-rate"),
    ("derive", ["derive", "--loss", "r", "--flip-rate", "0.1,0.2"], "--flip-rate"),
    ("derive", ["derive", "--loss", "r", "--weights", "1,0"], "--weights"),
    ("derive", ["derive", "--loss", "r", "--weights", "1,inf"], "--weights"),
    ("derive", ["derive", "--loss", "r", "--weights", ""], "--weights"),
    ("derive", ["derive", "--loss", "r", "--latex", "/nonexistent-folder/x.tex"], "--latex"),
    ("derive", ["derive", "--loss", "r", "--latex", "."], "--latex"),
    ("derive", ["derive", "--loss-type", ""], "loss"),
    ("derive", ["derive", "--loss", "r", "--seed", "-5"], "seed"),
    # scaling
    ("scaling", ["scaling", "--delta", "0"], "delta"),
    ("scaling", ["scaling", "--delta", "1"], "delta"),
    ("scaling", ["scaling", "--delta", "1.5"], "delta"),
    ("scaling", ["scaling", "--delta", "nan"], "delta"),
    ("scaling", ["scaling", "--delta", "abc"], "delta"),
    ("scaling", ["scaling", "--delta", "1e-308"], "delta"),
    ("scaling", ["scaling", "--delta", INJECTION], "delta"),
    ("scaling", ["scaling", "--K", "0"], "K"),
    ("scaling", ["scaling", "--K", "-1"], "K"),
    ("scaling", ["scaling", "--K", "1,x"], "K"),
    ("scaling", ["scaling", "--K", "1,,2"], "K"),
    ("scaling", ["scaling", "--K", ""], "K"),
    ("scaling", ["scaling", "--plot", "adir"], "--plot"),
    ("scaling", ["scaling", "--plot", "user.txt"], "--plot"),
    ("scaling", ["scaling", "--plot", "foreign.png"], "--plot"),
    ("scaling", ["scaling", "--plot", "missing/dir/q.png"], "--plot"),
    # audit
    ("audit", ["audit", "--item", "nope"], "unknown audit item"),
    ("audit", ["audit", "--item", ""], "unknown audit item"),
    ("audit", ["audit", "extra"], "extra"),
    # real
    ("real", ["real", "--data-dir", "/nonexistent"], "--data-dir"),
    ("real", ["real", "--data-dir", "adir"], "--data-dir"),
    ("real", ["real", "--output", "mydata"], "--output mydata"),
    ("real", ["real", "--output", "user.txt"], "--output user.txt"),
    ("real", ["real", "--output", "."], "--output ."),
    # sweep: configs and options
    *[("sweep", ["sweep", name, "--store", "s.sqlite"], "") for name in CONFIGS],
    ("sweep", ["sweep", "missing.toml"], "missing.toml"),
    ("sweep", ["sweep", "k_negative.toml", "--store", "user.txt"], "--store"),
    ("sweep", ["sweep", "k_negative.toml", "--store", "adir"], "--store"),
    ("sweep", ["sweep", "ok.toml", "--store", "user.txt"], "--store"),
    ("sweep", ["sweep", "ok.toml", "--store", "notastore.txt"], "--store"),
    ("sweep", ["sweep", "ok.toml", "--workers", "0"], "--workers"),
    ("sweep", ["sweep", "ok.toml", "--workers", "abc"], "--workers"),
    ("sweep", ["sweep", "ok.toml", "--executor", "foo"], "--executor"),
    ("sweep", ["sweep", "ok.toml", "--address", "x"], "--address"),
    ("sweep", ["sweep", "ok.toml", "--executor", "ray", "--address", "foo"], "--address"),
    # mutate
    ("mutate", ["mutate", "--only", "no-such-mutant"], "no-such-mutant"),
    ("mutate", ["mutate", "--seed", "-1"], "seed"),
    ("mutate", ["mutate", "--bogus"], "--bogus"),
    # bridge (refused before TRL is imported)
    ("bridge", ["bridge", "--output", "mydata"], "--output mydata"),
    ("bridge", ["bridge", "--output", "user.txt"], "--output user.txt"),
    ("bridge", ["bridge", "--output", "."], "--output ."),
    ("bridge", ["bridge", "--seed", "-1"], "seed"),
    ("bridge", ["bridge", "--seed", INJECTION], "seed"),
    ("bridge", ["bridge", "--steps", "3"], "--steps"),
    # sweep-report
    ("sweep-report", ["sweep-report", "missing.sqlite"], "missing.sqlite"),
    ("sweep-report", ["sweep-report", "notastore.txt"], "notastore.txt"),
    ("sweep-report", ["sweep-report", "empty.sqlite"], "empty.sqlite"),
    ("sweep-report", ["sweep-report", "adir"], "adir"),
    ("sweep-report", ["sweep-report", "notastore.txt", "--output", "mydata"], ""),
] + check_cases()


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): (hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir")
            for p in sorted(folder.rglob("*"))}


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    for name, content in USER_FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    for name, text in {**CONFIGS, "ok.toml": sweep_toml()}.items():
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_corpus_is_large_and_covers_every_subcommand():
    per_command = Counter(command for command, _, _ in CASES)
    assert sum(per_command.values()) >= 150
    assert set(per_command) == {"run", "list", "check", "derive", "scaling", "audit", "real", "sweep", "sweep-report",
                                "mutate", "bridge"}


@pytest.mark.parametrize("command, argv, fragment", CASES, ids=[" ".join(a)[:80] for _, a, _ in CASES])
def test_bad_input_gets_one_line_exit_2_and_touches_nothing(workspace, capsys, command, argv, fragment):
    before = snapshot(workspace)
    status = main(list(argv))
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert status == 2, (out, err)
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("dpo-verify: error: ") and fragment in lines[0], lines[0]
    assert snapshot(workspace) == before
    assert not (workspace / "pwned").exists()


# --- the Python API: the same validator, the same one-line messages ---------------------------------------
API_CASES = [("theorem-4.3", {"Q": 0}), ("theorem-4.2", {"beta": 0.0}), ("lemma-c.2", {"delta": float("nan")}),
             ("sec7-failure-mode", {"beta": 1e308}), ("sec7-gpo", {"losses": "foo"}), ("scaling-law", {"delta": "1/0"}),
             ("sec7-individual-rewards", {"N": 0}), ("theorem-b.3", {"Z_reading": "foo"}), ("lemma-4.1", {"loss": INJECTION}),
             ("scaling-law", {"K_table": "1,,2"}), ("theorem-4.3", {"v": float("inf")}), ("eq-5", {"V": True})]


@pytest.mark.parametrize("claim, overrides", API_CASES)
def test_the_python_api_refuses_with_the_same_message(claim, overrides):
    (name,) = overrides
    with pytest.raises(ValueError) as error:
        get_claim(claim).run(quick=True, **overrides)
    message = str(error.value)
    assert "\n" not in message and f"parameter {name}" in message and "allowed" in message


def test_the_python_api_of_experiments_and_configs_refuses_too():
    with pytest.raises(ValueError, match="parameter K = -1 is below the domain"):
        EXPERIMENTS["empirical-scaling"].parameters(K=-1)
    with pytest.raises(ConfigError, match="parameter Q"):
        parse_config({"sweep": {"name": "x", "target": "experiment:sleep"}, "parameters": {"Q": 0}})


# --- valid controls -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ["check", "lemma-c.2", "--quick", "--set", "delta=1/3"],
    ["check", "lemma-c.2", "--quick", "--set", "delta=1e-5"],
    ["check", "eq-2", "--set", "V=5"],
    ["check", "theorem-4.2", "--quick", "--set", "v=auto"],
    ["scaling", "--delta", "0.05", "--K", "1,10", "--plot", "new.png"],
    ["list", "--parameters"],
    ["audit", "--item", "spec-5.2"],
])
def test_valid_controls_still_work(workspace, capsys, argv):
    assert main(argv) == 0, capsys.readouterr().err


def test_every_declared_parameter_accepts_its_default_and_names_its_domain():
    for claim in all_claims().values():
        assert claim.parameters() and claim.parameters(quick=True)
        for name, _, domain, meaning in claim.parameter_rows():
            assert domain and meaning, (claim.id, name)
