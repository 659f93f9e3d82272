"""Exit status 2 for bad input, 1 for an internal error: a bug is never reported as the user's mistake."""
from __future__ import annotations

import pytest

from theory.errors import UserInputError
from theory.numbers import NumberError
from verify import cli
from verify.outputs import OutputError
from verify.parameters import ParameterError
from verify.real.data import MissingData
from verify.sweep.config import ConfigError
from verify.sweep.store import StoreError


@pytest.mark.parametrize("error_type", [cli.UsageError, NumberError, ParameterError, OutputError, ConfigError,
                                        StoreError, MissingData])
def test_every_kind_of_bad_input_is_a_user_input_error(error_type):
    assert issubclass(error_type, UserInputError) and issubclass(error_type, ValueError)


def _failing_command(error: Exception):
    def command(args):
        raise error
    return command


@pytest.mark.parametrize("error", [ValueError("a bug that happens to be a ValueError"), KeyError("x"),
                                   RuntimeError("solver state\nover two lines")])
def test_an_internal_error_exits_1_with_one_line_and_a_hint(monkeypatch, capsys, error):
    monkeypatch.setitem(cli.COMMANDS, "list", _failing_command(error))
    assert cli.main(["list"]) == 1
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"dpo-verify: internal error: {type(error).__name__}: ")
    assert lines[0].endswith("(rerun with --debug for the traceback)")


def test_debug_prints_the_traceback_of_an_internal_error(monkeypatch, capsys):
    monkeypatch.setitem(cli.COMMANDS, "list", _failing_command(RuntimeError("boom")))
    assert cli.main(["--debug", "list"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "RuntimeError: boom" in err
    assert err.strip().splitlines()[-1] == "dpo-verify: internal error: RuntimeError: boom"


def test_user_input_error_exits_2_even_from_inside_a_command(monkeypatch, capsys):
    monkeypatch.setitem(cli.COMMANDS, "list", _failing_command(ParameterError("parameter K = 0 is below the domain")))
    assert cli.main(["--debug", "list"]) == 2  # --debug changes nothing for bad input: no traceback
    err = capsys.readouterr().err
    assert err == "dpo-verify: error: parameter K = 0 is below the domain\n"


def test_debug_before_the_command_keeps_run_the_default(monkeypatch):
    seen = []
    monkeypatch.setitem(cli.COMMANDS, "run", lambda args: seen.append((args.command, args.debug, args.quick)) or 0)
    assert cli.main(["--debug", "--quick"]) == 0 and cli.main(["--quick"]) == 0
    assert seen == [("run", True, True), ("run", False, True)]


def test_unknown_claim_is_bad_input(capsys):
    assert cli.main(["check", "no-such-claim"]) == 2
    assert "unknown claim 'no-such-claim'" in capsys.readouterr().err
