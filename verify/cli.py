"""The `dpo-verify` command line: the edge of the project, calling into `verify/` and `theory/`."""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path

from theory.errors import UserInputError

DESCRIPTION = """\
Check the theory of Im & Li, "Can DPO Learn Diverse Human Values? A Theoretical Scaling Law"
(NeurIPS 2025), symbolically and numerically.

Each claim of the paper is checked at a parameter set and gets one verdict:
  holds              established: an exact check passed in every instance, or the 95% upper bound on
                     the failure rate is within the rate the statement allows (and the slack)
  consistent         no counterexample, but too few trials to establish it (how many would, if any)
  violated           a counterexample inside the assumptions, or to a step of the proof (parameters
                     and seed reproduce it)
  vacuous            the bound is >= 1 or the stated probability <= 0 here (still measured, with the
                     proof-step tally)
  assumptions-unmet  the parameters break an assumption (which one, and by how much)
  discrepancy        a re-derivation disagrees with the printed statement

Examples:
  dpo-verify                          check every claim, write dpo-verify-report/
  dpo-verify check theorem-4.3 --set K=8 --set Q=64
  dpo-verify derive --loss "(r-1)**2"
  dpo-verify derive --loss-type hinge --beta 0.1
  dpo-verify scaling --delta 0.05 --K 1,10,100
  dpo-verify audit"""


class UsageError(UserInputError):
    """A command line that does not parse or whose options contradict each other."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dpo-verify", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true",
                        help="on an internal error, print the traceback (give it before the command)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    run = commands.add_parser("run", help="check every claim, print the verdict table, write a report (default)",
                              description="Check every registered claim at the embedded default scale, print a "
                                          "verdict table and write report.md, figures and results.json. Exit status "
                                          "1 if any claim is violated.")
    run.add_argument("--quick", action="store_true", help="small parameter sets (seconds; what the tests use)")
    run.add_argument("--seed", type=_seed, default=0, help="seed of every random draw (default 0)")
    run.add_argument("--output", type=Path, default=Path("dpo-verify-report"), help="report folder (default %(default)s)")
    run.add_argument("--no-report", action="store_true", help="print the table only")

    listing = commands.add_parser("list", help="the claims, their paper references, assumptions and parameters")
    listing.add_argument("--parameters", action="store_true",
                         help="each parameter's default, meaning and allowed domain (what --set and sweeps accept)")

    check = commands.add_parser("check", help="one claim at given parameters",
                                description="Check one claim. Parameters not given keep the claim's defaults; "
                                            "'dpo-verify list' shows them.")
    check.add_argument("claim", help="claim id, e.g. theorem-4.2")
    check.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a parameter")
    check.add_argument("--seed", type=_seed, default=0, help="seed of every random draw (default 0)")
    check.add_argument("--quick", action="store_true", help="start from the quick profile's parameters")

    derive = commands.add_parser("derive", help="derive and check the dynamics of a new preference loss",
                                 description="Derive Lemma 4.1 for a preference loss f(r) (paper §7): the weight "
                                             "-f'(r), its fixed points and the idealised model's trajectory; then the "
                                             "whole theorem chain with sigma(-r) replaced by -f'(r): the sandwich, the "
                                             "envelope, tau_1, the test-margin step, the risk bound and Q_min(K), or "
                                             "the step where the proof stops and why. Data variants (--shares, "
                                             "--flip-rate, --weights) enter the chain. The numeric checks run the "
                                             "torch trainers and the claim machinery on the derived statements.")
    source = derive.add_mutually_exclusive_group(required=True)
    source.add_argument("--loss", metavar="EXPR", help="f(r) in r, e.g. '(r-1)**2', 'log(1+exp(-r))', 'Max(0, 1-r)'")
    source.add_argument("--loss-type", metavar="NAME",
                        help="TRL 1.16's loss_type: sigmoid, hinge, ipo, robust, exo_pair, discopop, sigmoid_norm, or "
                             "cdpo (conservative DPO); of (r_w, r_l): nca_pair, bco_pair, sppo_hard, apo_zero, apo_down")
    derive.add_argument("--beta", default="0.1", help="beta of the dynamics and of TRL's loss, taken exactly as typed (default 0.1)")
    derive.add_argument("--label-smoothing", help="TRL's label_smoothing, with --loss-type: read by robust, cdpo and "
                                                  "exo_pair only (default 0; exo_pair needs > 0)")
    derive.add_argument("--seed", type=_seed, default=0, help="seed of the numeric check (default 0)")
    derive.add_argument("--no-numeric", action="store_true", help="skip the numeric check")
    derive.add_argument("--sympy-time-limit", type=float, default=30.0, metavar="SECONDS",
                        help="wall-clock limit on the symbolic derivation (default 30)")
    derive.add_argument("--route", choices=("paper", "tight"), default="paper",
                        help="constants of the theorem chain: the paper's own proof (default) or Lemma B.2's exact "
                             "worst case; the other route is summarised in one line")
    derive.add_argument("--shares", metavar="P1,P2,...",
                        help="data variant: value k gets a share p_k of the samples (at least two, each > 0, sum 1)")
    derive.add_argument("--flip-rate", metavar="ETA", help="data variant: a fraction eta in [0, 1/2) of pairs swapped")
    derive.add_argument("--weights", metavar="W1,W2,...",
                        help="data variant: per-pair loss weights (TRL's sample weights), each > 0; the chain uses "
                             "their range, the numeric check gives value k's pairs the weight W_k")
    derive.add_argument("--latex", type=Path, metavar="FILE",
                        help="also write the derivation as a LaTeX fragment (a new file, or one this tool wrote)")

    scaling = commands.add_parser("scaling", help="samples per value Q_min(K) from Theorem 4.3, with a plot")
    scaling.add_argument("--delta", default="0.05", help="target risk in (0, 1) (default 0.05)")
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

    mutate = commands.add_parser("mutate", help="run each claim against falsified copies of its statement",
                                 description="Mutation testing: each mutant is a falsified copy of a statement, loss "
                                             "or theory function, run through the claim it is aimed at, at the "
                                             "parameters where the change is detectable. Prints each mutant's "
                                             "verdict and ends with 'killed M/N'. Equivalent mutants (true "
                                             "statements) are run and listed, not counted. Exit status 0 only if "
                                             "every falsified mutant is killed.")
    mutate.add_argument("--quick", action="store_true", help="start from the claims' quick profile (seconds)")
    mutate.add_argument("--seed", type=_seed, default=0, help="seed of every random draw (default 0)")
    mutate.add_argument("--only", metavar="IDS", help="comma-separated mutant ids or claim ids (default: all)")
    mutate.add_argument("--list", action="store_true", help="list the mutants and where each is detectable; run none")

    bridge = commands.add_parser(
        "bridge", help="TRL's DPOTrainer step by step against Lemma 4.1 (needs the [trl] extra)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train tiny Llama models (built from a config, random weights, nothing downloaded) with TRL's\n"
                    "DPOTrainer on the persona statements, and check every step against Lemma 4.1's discrete form\n"
                    "with the callback verify.integrations.trl.MarginDynamicsCallback.\n\n"
                    "  exact case        body frozen, only lm_head trained, full batch: the predicted margin change\n"
                    "                    equals TRL's float32 step within a derived round-off bound, for sigmoid,\n"
                    "                    ipo, hinge and bco_pair with SGD; with Adam and weight decay the lemma's\n"
                    "                    gradient step misses and the optimiser-aware prediction matches\n"
                    "  approximate case  body trained (full fine-tuning, SGD): the share of each step's margin change\n"
                    "                    the last-layer term explains (R² across the pairs, norm ratio), for\n"
                    "                    K = 1, 2, 4, 8 and two model sizes\n\n"
                    "Writes report.md, results.json and explained_fraction.png. The full run takes a few minutes\n"
                    "on 2 cores; --quick takes seconds. Exit status 1 if an exact-case step is outside its bound.")
    bridge.add_argument("--quick", action="store_true", help="fewer statements and steps (seconds; what the tests use)")
    bridge.add_argument("--output", type=Path, default=Path("dpo-verify-bridge"), help="report folder (default %(default)s)")
    bridge.add_argument("--seed", type=_seed, default=0, help="seed of the models, the data draw and TRL (default 0)")
    return parser


def _seed(text: str) -> int:
    from verify.parameters import SEED

    try:
        return SEED.validate("seed", text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _parse_sets(pairs: list[str]) -> dict[str, str]:
    """NAME=VALUE pairs as text: the claim's declared parameters parse and check each value."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise UsageError(f"--set expects NAME=VALUE, got {pair!r}")
        if name.strip() in out:
            raise UsageError(f"--set gives {name.strip()} twice")
        out[name.strip()] = value.strip()
    return out


def _progress(iterable=None, **kwargs):
    from tqdm import tqdm

    return tqdm(iterable, file=sys.stderr, leave=False, disable=not sys.stderr.isatty(), **kwargs)


_VERDICT_HEADER = f"{'claim':<24} {'verdict':<18} {'established':<19} summary"


def _verdict_line(verdict) -> str:
    from verify.verdicts import establishment

    established = establishment(verdict.status, verdict.exact, verdict.details) or "-"
    return f"{verdict.claim:<24} {verdict.status.value:<18} {established:<19} {verdict.summary}"


def command_run(args) -> int:
    from verify.outputs import check_output_folder

    if not args.no_report:
        check_output_folder(args.output, "--output")  # refuse before the claims run, not after
    from verify.claims import all_claims
    from verify.figures import FIGURES
    from verify.report import write_report
    from verify.verdicts import Status

    started = time.perf_counter()
    claims = all_claims()
    verdicts = []
    bar = _progress(claims.values(), desc="claims", unit="claim")
    print(_VERDICT_HEADER, flush=True)
    for claim in bar:
        bar.set_postfix_str(claim.id)
        verdicts.append(claim.run(quick=args.quick, seed=args.seed))
        print(_verdict_line(verdicts[-1]), flush=True)
    if not args.no_report:
        info = {"profile": "quick" if args.quick else "default", "seed": args.seed,
                "parameters": {c.id: c.parameters(args.quick) for c in claims.values()},
                "claims": {c.id: {"reference": c.reference, "title": c.title} for c in claims.values()}}
        figures = {} if args.quick else FIGURES
        bar = _progress(total=len(figures), desc="figures")
        path = write_report(args.output, verdicts, figures, info, progress=lambda name: bar.update(1), option="--output")
        bar.close()
        print(f"report: {path}/report.md ({time.perf_counter() - started:.1f} s)")
    return 1 if any(v.status is Status.VIOLATED for v in verdicts) else 0


def command_list(args) -> int:
    from verify.claims import all_claims

    for claim in all_claims().values():
        print(f"{claim.id:<24} {claim.reference:<32} {claim.title}\n{'':<24} assumes: {claim.assumptions}")
        if args.parameters:
            for name, default, domain, meaning in claim.parameter_rows():
                print(f"{'':<26}{name:<12} {default:<18} {meaning}; {domain}")
        else:
            print(f"{'':<24} defaults: " + ", ".join(f"{k}={'auto' if v is None else v}" for k, v in claim.defaults.items()))
    return 0


def command_check(args) -> int:
    from verify.claims import all_claims
    from verify.verdicts import Status

    claims = all_claims()
    if args.claim not in claims:
        raise UsageError(f"unknown claim {args.claim!r}; known claims: {', '.join(claims)}")
    claim = claims[args.claim]
    verdict = claim.run(quick=args.quick, seed=args.seed, **_parse_sets(args.set))
    print(_verdict_line(verdict))
    for key, value in verdict.details.items():
        print(f"  {key}: {value}")
    print(f"  reproduce: dpo-verify check {claim.id} --seed {args.seed} "
          + " ".join(f"--set {k}={v}" for k, v in verdict.parameters.items()))
    return 1 if verdict.status is Status.VIOLATED else 0


def command_derive(args) -> int:
    import math

    from theory.numbers import exact_rational
    from theory.objectives import SymbolicTimeLimit, SymbolicTimeout

    if not (math.isfinite(args.sympy_time_limit) and args.sympy_time_limit > 0):
        raise UsageError(f"--sympy-time-limit must be a finite number of seconds > 0, got {args.sympy_time_limit}")
    try:
        beta = exact_rational("--beta", args.beta)
    except UserInputError as error:
        raise UsageError(f"{error}; --beta must be a finite number > 0") from None
    if not beta > 0:
        raise UsageError(f"--beta must be > 0 and finite, got {args.beta}")
    if args.loss is not None and args.label_smoothing is not None:
        raise UsageError("--label-smoothing applies to --loss-type only; write the smoothing into --loss")
    data = _data_variant(args)
    if args.latex is not None:
        from verify.outputs import check_text_file

        check_text_file(args.latex, "--latex")  # before any work, so a bad path costs nothing
    if not args.no_numeric:  # refuse a beta the numeric check cannot use before any work is done
        from verify.derive import check_numeric_beta

        check_numeric_beta(float(beta))

    # sympy can run for minutes on an innocent-looking loss; the limit ends it with one line.
    limit = SymbolicTimeLimit(args.sympy_time_limit, "the loss and its derivative")
    try:
        with limit:
            derivation, chain, lines, latex = _derive_and_report(args, data, limit)
    except SymbolicTimeout as timeout:
        raise UsageError(str(timeout)) from None
    except RecursionError:
        raise UsageError(f"sympy ran out of Python's recursion depth: {limit.current_step}; "
                         f"the loss is nested too deeply") from None
    except MemoryError:
        raise UsageError(f"sympy ran out of memory: {limit.current_step}") from None
    finally:
        limit.cancel()
    print("\n".join(lines))
    if args.latex is not None:
        from verify.outputs import write_text_atomically

        print(f"LaTeX fragment written to {write_text_atomically(args.latex, latex, '--latex')}")
    if args.no_numeric:
        return 0
    if derivation is None:
        return _check_pair_loss_dynamics()
    from verify.derive import check_objective

    failed = False
    for check in check_objective(derivation, float(beta), args.seed):
        if check.not_run is not None:  # the solvers could not integrate this loss: no verdict either way
            print(f"numeric           {check.name}: not run ({check.not_run})")
            continue
        failed |= not check.passed
        print(f"numeric           {check.name}: max error {check.error:.2e} "
              f"(tolerance {check.tolerance:.0e}) {'ok' if check.passed else 'FAILED'}")
    if data.is_paper:  # the claim machinery samples the paper's data model
        from verify.chain import check_chain
        from verify.verdicts import Status

        for verdict in check_chain(chain, float(beta), args.seed):
            failed |= verdict.status is Status.VIOLATED
            print(f"numeric           {verdict.claim}: {verdict.status.value}; {verdict.summary}")
    else:  # the variant's sampler and trainer against the derived per-value rates and fixed points
        from verify.data_variants import run_variant_checks

        floats = lambda values: None if values is None else tuple(float(x) for x in values)
        for check in run_variant_checks(chain.loss, shares=floats(data.shares),
                                        flip_rate=float(data.flip_rate) or None, weights=floats(data.pair_weights),
                                        seeds=(args.seed,)):
            failed |= check.verdict == "FAIL"
            print(f"numeric           {check}")
    return 1 if failed else 0


_OTHER_ROUTE = {"paper": "tight", "tight": "paper"}


def _derive_and_report(args, data, limit):
    """(derivation, chain, lines, LaTeX) for a margin loss; (None, None, lines, LaTeX) for a loss of (r_w, r_l),
    whose chain stops at Lemma 4.1. `limit.step` names each stage for the time limit."""
    from theory.chain import chain_latex, margin_chain
    from theory.losses import PAIR_LOSS_TYPES, parse_loss_expression, trl_loss
    from theory.objectives import derive_objective
    from theory.pair_losses import trl_pair_loss

    smoothing = "0" if args.label_smoothing is None else args.label_smoothing
    if args.loss_type in PAIR_LOSS_TYPES:
        pair = trl_pair_loss(args.loss_type, args.beta, smoothing)
        limit.step("the individual-reward dynamics (§7)")
        return (None, None, *_pair_loss_report(pair, data))
    loss = parse_loss_expression(args.loss) if args.loss is not None else trl_loss(args.loss_type, args.beta, smoothing)
    derivation = derive_objective(loss, limit.step, trajectory_seconds=args.sympy_time_limit / 3)
    limit.step("the theorem chain")
    chain, other = (margin_chain(loss, route, data) for route in (args.route, _OTHER_ROUTE[args.route]))
    limit.step("writing the result")
    lines = derivation.report_lines() + chain.report_lines() + [_route_summary(other)]
    return derivation, chain, lines, chain_latex(derivation, chain, data)


def _pair_loss_report(pair, data) -> tuple[list[str], str]:
    from theory.pair_losses import pair_reward_dynamics

    dynamics = pair_reward_dynamics(pair)
    stop = ("theorem chain: stops at Lemma 4.1: f depends on r_w and r_l separately, so the margins do not follow "
            "a closed ODE (it needs f(r_w - r_l)); the individual-reward dynamics of §7 above are the result")
    if not data.is_paper:
        stop += f" (the data variant, {data.describe()}, has no chain to enter)"
    latex = f"% {pair.name}: the individual-reward dynamics of §7\n" + dynamics.latex() + "\n% " + stop + "\n"
    return dynamics.report_lines() + [stop], latex


def _check_pair_loss_dynamics() -> int:
    """§7's sum form for a loss of (r_w, r_l) against the chain rule through the log-softmax, exactly, on a
    3-token instance where one token is chosen in one pair and rejected in the other."""
    from theory.model import symbolic_instance
    from theory.pair_losses import derive_pair_reward

    instance = symbolic_instance(3, 1, [(0, 1), (1, 2)])
    results = [derive_pair_reward(instance, j, side, "log_ratio").exact_holds for j in range(2) for side in ("w", "l")]
    print(f"exact             §7 sum form (log-ratio reading) vs the chain rule, 4 rewards: "
          f"{'exact' if all(results) else 'FAILED'}")
    return 0 if all(results) else 1


def _route_summary(chain) -> str:
    if not chain.complete:
        return f"  {chain.route} route: stops at {chain.stopped_at}"
    at_10 = chain.samples_per_value(10)
    return (f"  {chain.route} route: r_L(tau_1)/r_end = {chain.values['end_ratio']}, "
            f"kappa = {chain.values['kappa']}, Q_min(K = 10, delta = 1/20) = {at_10.Q_min}")


def _number_list(option: str, text: str, domain: str, accept) -> list:
    from theory.numbers import exact_rational

    values = []
    for item in text.split(","):
        try:
            value = exact_rational(option, item.strip())
        except UserInputError as error:
            raise UsageError(f"{error}; {option} takes {domain}") from None
        if not accept(value):
            raise UsageError(f"{option} {text}: {item.strip()} is outside the domain; {option} takes {domain}")
        values.append(value)
    return values


def _data_variant(args):
    """The --shares, --flip-rate and --weights options as a `theory.chain.DataVariant` (exact numbers)."""
    import sympy as sp

    from theory.chain import DataVariant

    shares = flip = weights = None
    if args.shares is not None:
        domain = "at least two numbers > 0 that sum to 1, e.g. 0.7,0.2,0.1"
        shares = _number_list("--shares", args.shares, domain, lambda p: 0 < p <= 1)
        if len(shares) < 2 or sum(shares) != 1:
            raise UsageError(f"--shares {args.shares}: {len(shares)} share(s) summing to {sum(shares)}; --shares takes {domain}")
    if args.flip_rate is not None:
        domain = "one number in [0, 1/2)"
        flips = _number_list("--flip-rate", args.flip_rate, domain, lambda x: 0 <= x < sp.Rational(1, 2))
        if len(flips) != 1:
            raise UsageError(f"--flip-rate {args.flip_rate}: {len(flips)} numbers; --flip-rate takes {domain}")
        flip = flips[0]
    if args.weights is not None:
        weights = _number_list("--weights", args.weights, "numbers > 0 and <= 1e12, e.g. 1,0.5,2",
                               lambda x: 0 < x <= 10**12)
    return DataVariant(shares=None if shares is None else tuple(shares), flip_rate=flip or sp.Integer(0),
                       pair_weights=None if weights is None else tuple(weights))


def command_scaling(args) -> int:
    from theory.numbers import exact_rational
    from theory.scaling_law import samples_per_value
    from verify.outputs import check_output_file, write_file_atomically
    from verify.parameters import Parameter

    check_output_file(args.plot, "--plot")  # before the table, so a bad path writes nothing
    Ks = [int(k) for k in Parameter("int-list", "values", 1, 10**12).validate("K", args.K).split(",")]
    args.delta = Parameter("real", "target risk", 0, 1, low_open=True, high_open=True).validate("delta", args.delta)
    delta = exact_rational("delta", args.delta)
    results = [samples_per_value(k, delta) for k in Ks]  # validates K and delta before anything is written
    print(f"{'K':>6} {'Q_min':>8} {'root':>14}   (smallest Q with 2KQ^2 e^(-Q/45) <= {args.delta}, Q >= 40)")
    for k, res in zip(Ks, results):
        print(f"{k:>6} {res.Q_min:>8} {float(res.root_value):>14.4f}")
    from verify.figures import samples_per_value_curve  # matplotlib: after the input is checked

    written = write_file_atomically(args.plot, lambda path: samples_per_value_curve(path, args.delta, max(1000, max(Ks))),
                                    "--plot")
    print(f"plot: {written}")
    return 0


def command_audit(args) -> int:
    from verify.audit import run_audit

    for finding in run_audit(args.item):
        print(f"{finding.item.id:<24} {finding.verdict:<12} {finding.item.question}")
        print(f"{'':<24} {finding.result.verdict}")
        print(f"{'':<24} reproduce: {finding.item.command}")
    return 0


def command_real(args) -> int:
    from verify.outputs import check_output_folder
    from verify.real import run_real_report
    from verify.real.features import MISSING_EXTRA, force_offline, real_extra_available

    # Every check before anything is created: a refused command leaves no folder behind.
    if args.data_dir is not None and not args.data_dir.is_dir():
        raise UsageError(f"--data-dir {args.data_dir}: no such folder (give a copy of Anthropic's persona folder)")
    check_output_folder(args.output, "--output")
    force_offline()  # the Hugging Face libraries read the switches when first imported
    if not real_extra_available():
        raise UsageError(MISSING_EXTRA)
    summary = run_real_report(args.output, data_dir=args.data_dir, quick=args.quick, progress=sys.stderr.isatty())
    print(f"report: {args.output}/report.md")
    return 0 if summary is not None else 1


def command_sweep(args) -> int:
    from verify.outputs import check_store
    from verify.sweep import load_config, run_sweep
    from verify.sweep.executors import make_executor

    new_store_folder = check_store(args.store, "--store")  # a file that is not a results store is refused
    config = load_config(args.config)  # a bad config fails before any worker starts
    executor = make_executor(args.executor, args.workers, args.address)
    try:
        if new_store_folder is not None:
            new_store_folder.mkdir(parents=True, exist_ok=True)
            print(f"dpo-verify: created folder {new_store_folder} for the store", file=sys.stderr)
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
    from verify.outputs import check_existing_store, check_output_folder
    from verify.sweep.report import write_sweep_report

    check_existing_store(args.store, "store")  # first: a bad store leaves nothing behind
    output = args.output or args.store.with_name(args.store.stem + "-report")
    option = "--output" if args.output else "--output (default)"
    check_output_folder(output, option)
    print(f"report: {write_sweep_report(args.store, output, option)}")
    return 0


def command_mutate(args) -> int:
    from verify.mutants import select

    falsified, equivalent = select(args.only)  # an unknown id is refused before any claim runs
    if args.list:
        for mutant in falsified + equivalent:
            kind = "equivalent" if mutant in equivalent else "falsified"
            point = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in mutant.overrides.items())
            print(f"{mutant.id:<48} {mutant.claim:<24} {kind:<10} {mutant.description}\n{'':<48} detectable: "
                  f"{mutant.detectable}" + (f" (at {point})" if point else ""))
        return 0
    from verify.mutants import run_mutant

    started = time.perf_counter()
    print(f"{'mutant':<48} {'claim':<24} {'result':<9} evidence", flush=True)
    killed = 0
    for mutant in falsified:
        result = run_mutant(mutant, quick=args.quick, seed=args.seed)
        killed += result.killed
        print(f"{mutant.id:<48} {mutant.claim:<24} {'killed' if result.killed else 'SURVIVED':<9} {result.evidence()}",
              flush=True)
    refuted = []
    if equivalent:
        print("equivalent mutants (true statements; run and listed, not counted):")
    for mutant in equivalent:
        result = run_mutant(mutant, quick=args.quick, seed=args.seed)
        if result.killed:  # a check that refutes a true statement is wrong
            refuted.append(mutant.id)
        print(f"{mutant.id:<48} {mutant.claim:<24} {'REFUTED' if result.killed else 'survived':<9} "
              f"{result.evidence(160)}; {mutant.detectable}", flush=True)
    if refuted:
        print(f"a check refuted {len(refuted)} true statement(s): {', '.join(refuted)}")
    print(f"{time.perf_counter() - started:.1f} s")
    print(f"killed {killed}/{len(falsified)}")
    return 0 if killed == len(falsified) and not refuted else 1


def command_bridge(args) -> int:
    from verify.outputs import check_output_folder

    check_output_folder(args.output, "--output")  # before TRL is imported: a bad path costs nothing
    from verify.bridge import MISSING_EXTRA, trl_available

    if not trl_available():
        raise UsageError(MISSING_EXTRA)
    from verify.bridge import run_bridge  # torch, transformers and TRL load here, not at start-up

    summary = run_bridge(args.output, quick=args.quick, seed=args.seed, progress=sys.stderr.isatty())
    print(f"{'exact case':<22} {'optimiser':<12} {'max |error|':>12} {'tolerance':>10} {'ratio':>9}  "
          "lemma's gradient step")
    for case in summary["exact"]:
        print(f"{case['label']:<22} {case['optimizer']:<12} {case['max_abs_error']:>12.2e} "
              f"{case['max_tolerance']:>10.2e} {case['max_error_over_tolerance']:>9.2e}  "
              f"max |error| {case['lemma_max_abs_error']:.2e}{'' if case['within_tolerance'] else '  OUTSIDE'}")
    shown = lambda x, width: f"{'-':>{width}}" if x is None else f"{x:>{width}.3f}"  # nan is None in the summary
    print(f"{'approximate case':<22} {'K':>3} {'R² first':>9} {'R² last':>9} {'norm ratio last':>16}")
    for run in summary["approximate"]:
        r2 = run["per_step"]["r_squared"]
        print(f"{run['model']:<22} {run['K']:>3} {shown(r2[0], 9)} {shown(r2[-1], 9)} {shown(run['final_norm_ratio'], 16)}")
    print(f"report: {args.output}/report.md ({summary['seconds']:.1f} s)")
    return 0 if summary["exact_all_within_tolerance"] else 1


COMMANDS = {"run": command_run, "list": command_list, "check": command_check, "derive": command_derive,
            "scaling": command_scaling, "audit": command_audit, "real": command_real,
            "sweep": command_sweep, "sweep-report": command_sweep_report, "mutate": command_mutate,
            "bridge": command_bridge}


def _one_line(text: str) -> str:
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    """Exit status 0 on success, 1 for a violated claim or an internal error, 2 for bad input."""
    argv = list(sys.argv[1:] if argv is None else argv)
    leading = 0  # top-level options before the command
    while leading < len(argv) and argv[leading] == "--debug":
        leading += 1
    debug = leading > 0
    rest = argv[leading:]
    if not rest or (rest[0] not in COMMANDS and rest[0] not in ("-h", "--help")):
        argv = [*argv[:leading], "run", *rest]  # `run` is the default command
    try:
        args = _parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except UserInputError as error:  # UsageError, parameter, number, loss, output, config, store and data errors
        print(f"dpo-verify: error: {_one_line(str(error))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader closed the pipe (`dpo-verify list | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:  # a bug in this tool, not in the input
        if debug:
            traceback.print_exc()
        print(f"dpo-verify: internal error: {type(error).__name__}: {_one_line(str(error))}"
              + ("" if debug else " (rerun with --debug for the traceback)"), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
