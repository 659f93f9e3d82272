"""The `dpo-verify` command line: the edge of the project, calling into `verify/` and `theory/`."""
from __future__ import annotations

import argparse
import sys

from verify.claims import all_claims, get_claim
from verify.verdicts import Status

DESCRIPTION = """\
Check the theory of Im & Li, "Can DPO Learn Diverse Human Values? A Theoretical Scaling Law"
(NeurIPS 2025), symbolically and numerically. Each claim of the paper is checked at a parameter set and
gets one verdict: holds, violated, vacuous, assumptions-unmet or discrepancy."""


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit status 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dpo-verify", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = commands.add_parser("run", help="check every registered claim and print a verdict table (default)")
    run.add_argument("--quick", action="store_true", help="small parameter sets (seconds, used by the tests)")
    run.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    commands.add_parser("list", help="list the claims with their paper references and assumptions")
    return parser


def _verdict_line(claim_id: str, verdict) -> str:
    return f"{claim_id:<20} {verdict.status.value:<18} {verdict.summary}"


def command_run(args) -> int:
    violated = False
    for claim_id, claim in all_claims().items():
        verdict = claim.run(quick=args.quick, seed=args.seed)
        violated |= verdict.status is Status.VIOLATED
        print(_verdict_line(claim_id, verdict), flush=True)
    return 1 if violated else 0


def command_list(args) -> int:
    for claim in all_claims().values():
        print(f"{claim.id:<20} {claim.reference:<28} {claim.title}\n{'':<20} assumes: {claim.assumptions}")
    return 0


COMMANDS = {"run": command_run, "list": command_list}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv = ["run", *argv]  # `run` is the default command
    args = parser.parse_args(argv)
    handler = COMMANDS[args.command]
    try:
        return handler(args)
    except (UsageError, ValueError) as error:
        print(f"dpo-verify: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
