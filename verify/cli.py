"""The `dpo-verify` command line: the edge of the project, calling into `verify/` and `theory/`."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DESCRIPTION = """\
Check the theory of Im & Li, "Can DPO Learn Diverse Human Values? A Theoretical Scaling Law"
(NeurIPS 2025), symbolically and numerically.

Each claim of the paper is checked at a parameter set and gets one verdict:
  holds              no violation in n trials (failure rate with its 95% upper bound, and the slack)
  violated           a counterexample inside the assumptions (parameters and seed reproduce it)
  vacuous            the bound is >= 1 or the stated probability <= 0 here (still measured)
  assumptions-unmet  the parameters break an assumption (which one, and by how much)
  discrepancy        a re-derivation disagrees with the printed statement

Examples:
  dpo-verify                          check every claim, write dpo-verify-report/
  dpo-verify check theorem-4.3 --set K=8 --set Q=64
  dpo-verify derive --loss "(r-1)**2"
  dpo-verify derive --loss-type hinge --beta 0.1
  dpo-verify scaling --delta 0.05 --K 1,10,100
  dpo-verify audit"""


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dpo-verify", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = commands.add_parser("run", help="check every claim, print the verdict table, write a report (default)",
                              description="Check every registered claim at the embedded default scale, print a "
                                          "verdict table and write report.md, figures and results.json. Exit status "
                                          "1 if any claim is violated.")
    run.add_argument("--quick", action="store_true", help="small parameter sets (seconds; what the tests use)")
    run.add_argument("--seed", type=int, default=0, help="seed of every random draw (default 0)")
    run.add_argument("--output", type=Path, default=Path("dpo-verify-report"), help="report folder (default %(default)s)")
    run.add_argument("--no-report", action="store_true", help="print the table only")

    commands.add_parser("list", help="the claims, their paper references and assumptions")

    check = commands.add_parser("check", help="one claim at given parameters",
                                description="Check one claim. Parameters not given keep the claim's defaults; "
                                            "'dpo-verify list' shows them.")
    check.add_argument("claim", help="claim id, e.g. theorem-4.2")
    check.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a parameter")
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--quick", action="store_true", help="start from the quick profile's parameters")

    derive = commands.add_parser("derive", help="derive and check the dynamics of a new preference loss",
                                 description="Derive Lemma 4.1 for a preference loss f(r) (paper §7): the weight "
                                             "-f'(r), its fixed points and the idealised model's trajectory, in text "
                                             "and LaTeX; then check them against the torch trainers.")
    source = derive.add_mutually_exclusive_group(required=True)
    source.add_argument("--loss", metavar="EXPR", help="f(r) in r, e.g. '(r-1)**2', 'log(1+exp(-r))', 'Max(0, 1-r)'")
    source.add_argument("--loss-type", metavar="NAME", help="TRL's loss_type: sigmoid, robust, exo_pair, hinge, ipo")
    derive.add_argument("--beta", type=float, default=0.1, help="beta of the dynamics and of TRL's loss (default 0.1)")
    derive.add_argument("--label-smoothing", type=float, default=0.0, help="TRL's label_smoothing (default 0)")
    derive.add_argument("--seed", type=int, default=0)
    derive.add_argument("--no-numeric", action="store_true", help="skip the numeric check")

    scaling = commands.add_parser("scaling", help="samples per value Q_min(K) from Theorem 4.3, with a plot")
    scaling.add_argument("--delta", type=float, default=0.05, help="target risk (default 0.05)")
    scaling.add_argument("--K", default="1,2,4,8,10,16,32,64,100,1000", help="comma-separated K values")
    scaling.add_argument("--plot", type=Path, default=Path("samples_per_value.png"), help="plot file (default %(default)s)")

    audit = commands.add_parser("audit", help="settle the uncertain items of SPEC §5 and PREDECESSOR §6")
    audit.add_argument("--item", help="one item id (default: all)")

    real = commands.add_parser("real", help="persona statements through a real encoder (needs the [real] extra)")
    real.add_argument("--output", type=Path, default=Path("dpo-verify-real"), help="report folder (default %(default)s)")
    real.add_argument("--data-dir", type=Path, default=None, help="a full copy of Anthropic's persona folder")
    real.add_argument("--quick", action="store_true", help="fewer statements and steps")

    sweep = commands.add_parser("sweep", help="grid or random search over parameters and seeds, stored in SQLite",
                                description="Run a sweep config (TOML; see benchmarks/sweeps/) over a claim or an "
                                            "experiment. Each trial is appended to the store as it ends; --resume "
                                            "continues an interrupted sweep without repeating a stored trial.")
    sweep.add_argument("config", type=Path, help="sweep config, e.g. benchmarks/sweeps/empirical_scaling.toml")
    sweep.add_argument("--store", type=Path, default=Path("sweeps.sqlite"), help="results store (default %(default)s)")
    sweep.add_argument("--resume", action="store_true", help="continue a sweep already in the store")
    sweep.add_argument("--executor", choices=("local", "ray"), default="local",
                       help="local processes (default) or Ray (needs the [distributed] extra)")
    sweep.add_argument("--address", help="Ray: auto, HOST:PORT, or local (a private instance; the default)")
    sweep.add_argument("--workers", type=int, help="parallel trials (default: the CPU count)")

    sweep_report = commands.add_parser("sweep-report", help="summary tables and plots of a sweep store")
    sweep_report.add_argument("store", type=Path, help="results store written by 'dpo-verify sweep'")
    sweep_report.add_argument("--output", type=Path, help="report folder (default: STORE's name + '-report')")
    return parser


def _parse_value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _parse_sets(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name or not value:
            raise UsageError(f"--set expects NAME=VALUE, got {pair!r}")
        out[name.strip()] = _parse_value(value.strip())
    return out


def _progress(iterable=None, **kwargs):
    from tqdm import tqdm

    return tqdm(iterable, file=sys.stderr, leave=False, disable=not sys.stderr.isatty(), **kwargs)


def _verdict_line(verdict) -> str:
    return f"{verdict.claim:<24} {verdict.status.value:<18} {verdict.summary}"


def command_run(args) -> int:
    from verify.claims import all_claims
    from verify.figures import FIGURES
    from verify.report import write_report
    from verify.verdicts import Status

    started = time.perf_counter()
    claims = all_claims()
    verdicts = []
    bar = _progress(claims.values(), desc="claims", unit="claim")
    for claim in bar:
        bar.set_postfix_str(claim.id)
        verdicts.append(claim.run(quick=args.quick, seed=args.seed))
        print(_verdict_line(verdicts[-1]), flush=True)
    if not args.no_report:
        info = {"profile": "quick" if args.quick else "default", "seed": args.seed,
                "parameters": {c.id: c.parameters(args.quick) for c in claims.values()}}
        figures = {} if args.quick else FIGURES
        bar = _progress(total=len(figures), desc="figures")
        path = write_report(args.output, verdicts, figures, info, progress=lambda name: bar.update(1))
        bar.close()
        print(f"report: {path}/report.md ({time.perf_counter() - started:.1f} s)")
    return 1 if any(v.status is Status.VIOLATED for v in verdicts) else 0


def command_list(args) -> int:
    from verify.claims import all_claims

    for claim in all_claims().values():
        defaults = ", ".join(f"{k}={v}" for k, v in claim.defaults.items())
        print(f"{claim.id:<24} {claim.reference:<32} {claim.title}\n{'':<24} assumes: {claim.assumptions}\n"
              f"{'':<24} defaults: {defaults}")
    return 0


def command_check(args) -> int:
    from verify.claims import get_claim
    from verify.verdicts import Status

    claim = get_claim(args.claim)
    verdict = claim.run(quick=args.quick, seed=args.seed, **_parse_sets(args.set))
    print(_verdict_line(verdict))
    for key, value in verdict.details.items():
        print(f"  {key}: {value}")
    print(f"  reproduce: dpo-verify check {claim.id} --seed {args.seed} "
          + " ".join(f"--set {k}={v}" for k, v in verdict.parameters.items()))
    return 1 if verdict.status is Status.VIOLATED else 0


def command_derive(args) -> int:

    from theory.losses import parse_loss_expression, trl_loss
    from theory.objectives import derive_objective

    if not args.beta > 0:
        raise UsageError(f"--beta must be > 0, got {args.beta}")
    loss = parse_loss_expression(args.loss) if args.loss else trl_loss(args.loss_type, args.beta, args.label_smoothing)
    derivation = derive_objective(loss)
    print(f"loss              f(r) = {loss.f}")
    print(f"weight            -f'(r) = {derivation.weight}   (replaces sigma(-r) in Eq. (3))")
    print(f"margin dynamics   {derivation.margin_dynamics.lhs} = {derivation.margin_dynamics.rhs}")
    print(f"fixed points      w(r) = 0 at r in {derivation.fixed_points}")
    if derivation.trajectory is not None:
        print(f"idealised model   r(t) = {derivation.trajectory}   (tau r' = (2 beta^2/K) w(r), r(0) = 0; verified)")
    elif derivation.implicit_trajectory is not None:
        print(f"idealised model   implicit: {derivation.implicit_trajectory}")
    else:
        print("idealised model   sympy finds no closed form")
    print("LaTeX:")
    for name, latex in derivation.latex().items():
        print(f"  {name}: {latex}")
    if args.no_numeric:
        return 0
    from verify.derive import check_objective

    failed = False
    for check in check_objective(derivation, args.beta, args.seed):
        failed |= not check.passed
        print(f"numeric           {check.name}: max error {check.error:.2e} "
              f"(tolerance {check.tolerance:.0e}) {'ok' if check.passed else 'FAILED'}")
    return 1 if failed else 0


def command_scaling(args) -> int:
    import sympy as sp

    from theory.scaling_law import samples_per_value
    from verify.figures import samples_per_value_curve

    try:
        Ks = [int(k) for k in args.K.split(",")]
    except ValueError:
        raise UsageError(f"--K expects comma-separated integers, got {args.K!r}") from None
    delta = sp.nsimplify(args.delta)
    results = [samples_per_value(k, delta) for k in Ks]  # validates K and delta before anything is written
    print(f"{'K':>6} {'Q_min':>8} {'root':>14}   (smallest Q with 2KQ^2 e^(-Q/45) <= {args.delta}, Q >= 40)")
    for k, res in zip(Ks, results):
        print(f"{k:>6} {res.Q_min:>8} {float(res.root_value):>14.4f}")
    samples_per_value_curve(args.plot, args.delta, max(1000, max(Ks)))
    print(f"plot: {args.plot}")
    return 0


def command_audit(args) -> int:
    from verify.audit import run_audit

    for finding in run_audit(args.item):
        print(f"{finding.item.id:<24} {finding.verdict:<12} {finding.item.question}")
        print(f"{'':<24} {finding.result.verdict}")
        print(f"{'':<24} reproduce: {finding.item.command}")
    return 0


def command_real(args) -> int:
    try:
        from verify.real import run_real_report
    except ImportError as error:
        raise UsageError(f"the real-data report needs the [real] extra (pip install -e '.[real]'): {error}") from None
    summary = run_real_report(args.output, data_dir=args.data_dir, quick=args.quick, progress=sys.stderr.isatty())
    print(f"report: {args.output}/report.md")
    return 0 if summary is not None else 1


def command_sweep(args) -> int:
    from verify.sweep import load_config, run_sweep
    from verify.sweep.executors import make_executor

    config = load_config(args.config)  # a bad config fails before any worker starts
    executor = make_executor(args.executor, args.workers, args.address)
    try:
        summary = run_sweep(config, args.store, executor, resume=args.resume, progress=sys.stderr.isatty())
    finally:
        executor.close()
    print(f"sweep {summary.sweep}: {summary.ran} trials run, {summary.skipped} already stored, "
          f"{len(summary.errors)} failed; {summary.seconds:.1f} s ({summary.throughput:.2f} trials/s, "
          f"{summary.executor} executor, start {summary.executor_start_seconds:.1f} s); store: {args.store}")
    for error in summary.errors[:3]:
        print(f"  failed: {error}")
    return 1 if summary.errors else 0


def command_sweep_report(args) -> int:
    from verify.sweep.report import write_sweep_report

    output = args.output or args.store.with_name(args.store.stem + "-report")
    print(f"report: {write_sweep_report(args.store, output)}")
    return 0


COMMANDS = {"run": command_run, "list": command_list, "check": command_check, "derive": command_derive,
            "scaling": command_scaling, "audit": command_audit, "real": command_real,
            "sweep": command_sweep, "sweep-report": command_sweep_report}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv = ["run", *argv]  # `run` is the default command
    try:
        args = _parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except (UsageError, ValueError) as error:
        print(f"dpo-verify: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
