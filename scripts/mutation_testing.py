"""Code mutation testing of theory/ and verify/claims/ with mutmut: on demand, never in CI (TESTING.md).

    python scripts/mutation_testing.py sample --per-folder 150 --seed 14   # a seeded random sample per folder
    python scripts/mutation_testing.py run [NAME_OR_GLOB ...]               # every mutant, or some by mutmut name
    python scripts/mutation_testing.py report [--sample [FILE]] [--markdown]  # killed/total per folder, survivors

The configuration (files mutated, tests run) is [tool.mutmut] in pyproject.toml. mutmut works in mutants/
(gitignored) and keeps its results there between runs; remove mutants/ when done. One worker unless --children.
"""
from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "mutants"
SAMPLE = MUTANTS / "sample.txt"
VERDICTS = ROOT / "scripts" / "mutmut_survivors.toml"  # kind and reason of each survivor, judged by hand
FOLDERS = ("theory", "verify/claims")
CONFIDENCE = 0.95

# mutmut's exit codes per mutant (mutmut.stats.status_by_exit_code, 3.x); a timeout counts as killed, as in mutmut.
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped",
          36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout", None: "not checked",
          37: "caught by type check", -11: "segfault", -9: "segfault", 2: "interrupted"}
KILLED = {"killed", "timeout"}


def folder_of(meta: Path) -> str:
    return "verify/claims" if meta.relative_to(MUTANTS).parts[:2] == ("verify", "claims") else "theory"


def meta_files() -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (MUTANTS / folder).glob("*.py.meta"))


def mutants_by_folder() -> dict[str, dict[str, tuple[Path, int | None]]]:
    """{folder: {mutant name: (meta file, exit code)}} from mutmut's per-file records."""
    out: dict[str, dict[str, tuple[Path, int | None]]] = {folder: {} for folder in FOLDERS}
    for meta in meta_files():
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            out[folder_of(meta)][name] = (meta, code)
    return out


def mutmut_run(names: list[str], children: int = 1) -> int:
    """`mutmut run --max-children CHILDREN NAMES` with the environment the recorded run used."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    # Every mutant's process imports the mutated modules afresh; without bytecode caching it would compile
    # them (ten times the source: every mutant is a copy of its function) each time, about 9 s. The cache
    # goes under mutants/ with everything else mutmut writes.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(MUTANTS / ".pycache")
    # Tests that start `dpo-verify` as a subprocess import the mutated copy (mutmut sets only its own sys.path).
    # mutants/ must exist before Python starts: a sys.path entry missing at startup is cached as missing.
    MUTANTS.mkdir(exist_ok=True)
    env["PYTHONPATH"] = os.pathsep.join([str(MUTANTS), *filter(None, [os.environ.get("PYTHONPATH")])])
    return subprocess.run(["mutmut", "run", "--max-children", str(children), *names], cwd=ROOT, env=env).returncode


def generate() -> None:
    """Make mutmut write its mutants and collect its per-test coverage, without testing any mutant yet.

    mutmut has no generate-only command: a run filtered on a name that matches nothing generates, collects
    the stats, then stops with 'nothing matches' (a non-zero exit that is expected here).
    """
    if not meta_files() or not (MUTANTS / "mutmut-stats.json").exists():
        mutmut_run(["no-mutant-has-this-name*"])
    if not meta_files() or not (MUTANTS / "mutmut-stats.json").exists():
        sys.exit("mutation_testing: mutmut did not generate mutants or stats; see its output above")


def cmd_sample(args) -> int:
    generate()
    chosen, pending = [], []
    for folder, mutants in mutants_by_folder().items():
        # A seeded shuffle, then its first n: a larger n extends the sample instead of drawing a new one.
        order = sorted(mutants)
        random.Random(f"{args.seed}/{folder}").shuffle(order)
        picked = sorted(order[:args.per_folder])
        print(f"{folder}: {len(order)} mutants, {len(picked)} sampled (seed {args.seed})")
        chosen += picked
        pending += [n for n in picked if args.rerun or mutants[n][1] is None]  # None: not tested yet
    SAMPLE.write_text("\n".join(chosen) + "\n")
    print(f"{len(pending)} of them to test")
    return mutmut_run(pending, args.children) if pending else 0


def cmd_run(args) -> int:
    return mutmut_run(list(args.names), args.children)


# --- the report ---------------------------------------------------------------------------------------------
def _functions(source_file: Path) -> dict[str, list[str]]:
    source = source_file.read_text()
    lines = source.splitlines()
    return {node.name: lines[node.lineno - 1:node.end_lineno] for node in ast.walk(ast.parse(source))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def mutation_of(name: str, meta: Path, cache: dict) -> tuple[str, str]:
    """(function, the changed source lines 'before -> after') of one mutant, read from mutmut's mutated file."""
    source_file = meta.with_suffix("")  # x.py.meta -> x.py
    if source_file not in cache:
        cache[source_file] = _functions(source_file)
    functions = cache[source_file]
    mangled = name.rpartition(".")[2]
    base = mangled.rpartition("__mutmut_")[0]
    original, mutant = functions.get(base + "__mutmut_orig"), functions.get(mangled)
    function = base.removeprefix("x_").removeprefix("xǁ").replace("ǁ", ".")  # x_f: f; xǁCǁm: C.m
    if original is None or mutant is None:
        return function, "(source not found)"
    # the def lines differ by the names mutmut gives the copies; compare them under the function's own name
    plain = base.rpartition("ǁ")[2].removeprefix("x_")
    original = [original[0].replace(base + "__mutmut_orig", plain), *original[1:]]
    mutant = [mutant[0].replace(mangled, plain), *mutant[1:]]
    removed, added = [], []
    for line in difflib.ndiff(original, mutant):
        if line.startswith("- "):
            removed.append(line[2:].strip())
        elif line.startswith("+ "):
            added.append(line[2:].strip())
    return function, f"{' / '.join(removed)} -> {' / '.join(added) or '(line removed)'}"


def load_verdicts() -> dict[tuple[str, str, str], tuple[str, str]]:
    """The hand verdicts on survivors (scripts/mutmut_survivors.toml): (module, function, mutation) -> (kind, why)."""
    import tomllib

    entries = tomllib.loads(VERDICTS.read_text())["survivor"] if VERDICTS.exists() else []
    return {(e["module"], e["function"], e["mutation"]): (e["kind"], e["why"]) for e in entries}


def cmd_report(args) -> int:
    if not meta_files():
        sys.exit("mutation_testing: no mutants/ records; run `sample` or `run` first")
    selected = set(Path(args.sample).read_text().split()) if args.sample else None
    verdicts = load_verdicts()
    cache: dict = {}
    rows = []
    for folder, mutants in mutants_by_folder().items():
        names = sorted(n for n in mutants if selected is None or n in selected)
        status = {n: STATUS.get(mutants[n][1], "suspicious") for n in names}
        tested = [n for n in names if status[n] != "not checked"]
        killed = sum(status[n] in KILLED for n in tested)
        timeouts = sum(status[n] == "timeout" for n in tested)
        survivors = []
        for n in tested:
            if status[n] not in KILLED:
                module = n.split(".x")[0]
                function, change = mutation_of(n, mutants[n][0], cache)
                survivors.append((folder, n, status[n], module, function, change,
                                  *verdicts.get((module, function, change), ("unjudged", ""))))
        equivalent = sum(row[6] == "equivalent" for row in survivors)
        line = f"{folder}: {killed}/{len(tested)} killed" if tested else f"{folder}: nothing tested"
        if tested:
            line += f" ({100 * killed / len(tested):.1f}%{_interval(killed, len(tested), selected)}; {timeouts} by timeout)"
            if equivalent:
                scored = len(tested) - equivalent
                line += (f"; without the {equivalent} equivalent: {killed}/{scored} ({100 * killed / scored:.1f}%"
                         f"{_interval(killed, scored, selected)})")
        untested = len(names) - len(tested)
        print(line + (f"; {untested} not run" if untested else ""))
        rows += survivors
    if rows:
        order = {"gap": 0, "text": 1, "arbitrary": 2, "equivalent": 3}
        rows.sort(key=lambda row: (order.get(row[6], -1), row[3], row[4], row[1]))
        print()
        if args.markdown:
            print("| module | function | mutation (before -> after) | kind | why |")
            print("|---|---|---|---|---|")
        for folder, name, state, module, function, change, kind, why in rows:
            if args.markdown:
                cells = [module, f"`{function}`", f"`{_short(change)}`", kind if state == "survived" else f"{kind} ({state})", why]
                print("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
            else:
                print(f"{state:10s} {kind:10s} {name}\n           {change}" + (f"\n           {why}" if why else ""))
    return 0


def _interval(k: int, n: int, selected) -> str:
    if selected is None:
        return ""
    from verify.verdicts import clopper_pearson

    low, high = clopper_pearson(k, n, CONFIDENCE)
    return f", 95% CP [{100 * low:.1f}%, {100 * high:.1f}%] for the whole folder"


def _short(change: str, limit: int = 160) -> str:
    return change if len(change) <= limit else change[:limit - 1] + "…"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mutation_testing", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sample = commands.add_parser("sample", help="test a seeded random sample of mutants per folder")
    sample.add_argument("--per-folder", type=int, default=150)
    sample.add_argument("--seed", type=int, default=14)
    sample.add_argument("--rerun", action="store_true", help="test again the sampled mutants already tested")
    run = commands.add_parser("run", help="test every mutant, or those named (mutmut names or globs)")
    run.add_argument("names", nargs="*")
    for command in (sample, run):
        command.add_argument("--children", type=int, default=1,
                             help="mutants tested at once (default 1; more than the free cores slows every test)")
    report = commands.add_parser("report", help="killed/total per folder and every mutant not killed")
    report.add_argument("--sample", nargs="?", const=str(SAMPLE), metavar="FILE",
                        help="only the mutants of the last `sample` (or of a saved sample list FILE)")
    report.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "sample" and args.per_folder < 1:
        parser.error(f"--per-folder must be >= 1, got {args.per_folder}")
    if args.command in ("sample", "run") and args.children < 1:
        parser.error(f"--children must be >= 1, got {args.children}")
    if args.command == "report" and args.sample and not Path(args.sample).is_file():
        parser.error(f"--sample: no sample list at {args.sample} (run `sample` first, or name a saved list)")
    return {"sample": cmd_sample, "run": cmd_run, "report": cmd_report}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
