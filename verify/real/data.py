"""Anthropic persona statements (Perez et al. 2022, CC-BY 4.0) as the paper's value clusters (SPEC §1.5, §4).

Each persona i gives two clusters: C_{i,+}, the statements whose matching answer is " Yes", and C_{i,-},
those whose matching answer is " No". The prompt is the dataset's `question` field
('Is the following statement something you would say?\\n"<statement>"'); the chosen response is the
matching answer and the rejected one is the other of " Yes" / " No" (single tokens, as in the paper's code).

The package ships, under `verify/real/data/`, only the 28 personas of the paper's value sets
(K = 1, 2, 4, 8, 16) with three fields each (statement, question, answer_matching_behavior), gzip-compressed,
with the licence and attribution beside them. A full copy of the dataset can be used instead (`data_dir`).
"""
from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from theory.errors import UserInputError

PROMPT_TEMPLATE = 'Is the following statement something you would say?\n"{}"'
ANSWERS = (" Yes", " No")
TRIMMED_FIELDS = ("statement", "question", "answer_matching_behavior")
SHIPPED_DATA = "personas.jsonl.gz"
SHIPPED_SETS = "persona_sets_from_paper.json"
PAPER_K = (1, 2, 4, 8, 16)


@dataclass(frozen=True)
class PersonaStatements:
    """One persona's statements, split into the two clusters of §1.5."""

    name: str
    statements: tuple[str, ...]
    prompts: tuple[str, ...]
    matching_yes: tuple[bool, ...]  # True: C_{i,+} (chosen " Yes"); False: C_{i,-} (chosen " No")

    def __post_init__(self):
        if not (len(self.statements) == len(self.prompts) == len(self.matching_yes)):
            raise ValueError(f"persona {self.name!r}: statements, prompts and labels differ in length")

    def __len__(self) -> int:
        return len(self.statements)

    def cluster(self, positive: bool) -> list[int]:
        """Row indices of C_{i,+} (positive=True) or C_{i,-}."""
        return [k for k, yes in enumerate(self.matching_yes) if yes == positive]

    def subsample(self, per_cluster: int | None, seed: int) -> "PersonaStatements":
        """At most `per_cluster` statements from each cluster, drawn without replacement.

        The draw depends only on (seed, persona name), so a persona shared by several value sets gets the
        same statements in each (the encoder then runs once per persona).
        """
        if per_cluster is None:
            return self
        if per_cluster < 1:
            raise ValueError(f"per_cluster must be >= 1, got {per_cluster}")
        rng = np.random.default_rng([seed, zlib.crc32(self.name.encode())])
        keep = []
        for positive in (True, False):
            rows = np.asarray(self.cluster(positive))
            keep += sorted(rng.permutation(rows)[:per_cluster].tolist()) if len(rows) else []
        keep.sort()
        return PersonaStatements(
            self.name,
            tuple(self.statements[k] for k in keep),
            tuple(self.prompts[k] for k in keep),
            tuple(self.matching_yes[k] for k in keep),
        )


def _record_to_row(name: str, record: Mapping, where: str) -> tuple[str, str, bool]:
    missing = [f for f in TRIMMED_FIELDS if f not in record]
    if missing:
        raise UserInputError(f"{where}: persona {name!r} has a record without {', '.join(missing)}")
    answer = record["answer_matching_behavior"]
    if answer not in ANSWERS:
        raise UserInputError(f"{where}: persona {name!r} has answer_matching_behavior {answer!r}, expected ' Yes' or ' No'")
    other = record.get("answer_not_matching_behavior")
    if other is not None and {answer, other} != set(ANSWERS):
        raise UserInputError(f"{where}: persona {name!r} has matching {answer!r} and non-matching {other!r}")
    return record["statement"], record["question"], answer == " Yes"


def _persona(name: str, rows: Iterable[tuple[str, str, bool]]) -> PersonaStatements:
    rows = list(rows)
    if not rows:
        raise UserInputError(f"persona {name!r} has no statements")
    s, q, y = zip(*rows)
    return PersonaStatements(name, tuple(s), tuple(q), tuple(y))


def _shipped_file(filename: str):
    return resources.files("verify.real").joinpath("data", filename)


def persona_sets(data_dir: Path | None = None) -> dict[int, tuple[str, ...]]:
    """The paper's value sets {K: personas} (SPEC §4); from `data_dir` if it has its own copy, else shipped."""
    if data_dir is not None:
        for candidate in (Path(data_dir) / SHIPPED_SETS, Path(data_dir).parent / SHIPPED_SETS):
            if candidate.is_file():
                return {int(k): tuple(v) for k, v in json.loads(candidate.read_text()).items()}
    return {int(k): tuple(v) for k, v in json.loads(_shipped_file(SHIPPED_SETS).read_text()).items()}


def load_shipped_personas(names: Sequence[str] | None = None) -> dict[str, PersonaStatements]:
    """The trimmed, compressed copy shipped with the package."""
    rows: dict[str, list] = {}
    with _shipped_file(SHIPPED_DATA).open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            record = json.loads(line)
            rows.setdefault(record["persona"], []).append(_record_to_row(record["persona"], record, f"{SHIPPED_DATA}:{number}"))
    wanted = list(rows) if names is None else list(names)
    unknown = [n for n in wanted if n not in rows]
    if unknown:
        raise ValueError(f"personas not in the shipped data: {', '.join(unknown)}; point data_dir at a full copy")
    return {n: _persona(n, rows[n]) for n in wanted}


class MissingData(FileNotFoundError, UserInputError):
    """A data folder without the files asked for: bad input, reported in one line by the command line."""


def _persona_file(data_dir: Path, name: str) -> Path:
    # Accept the persona folder itself or a checkout of the evals repository (which has persona/ inside).
    for candidate in (data_dir / f"{name}.jsonl", data_dir / "persona" / f"{name}.jsonl"):
        if candidate.is_file():
            return candidate
    raise MissingData(f"--data-dir {data_dir}: no {name}.jsonl in it or in {data_dir / 'persona'}")


def load_persona_directory(data_dir: Path, names: Sequence[str]) -> dict[str, PersonaStatements]:
    """Personas from a full copy of the dataset (one `<name>.jsonl` per persona)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise MissingData(f"--data-dir {data_dir}: not a folder")
    out = {}
    for name in names:
        path = _persona_file(data_dir, name)
        try:
            with path.open(encoding="utf-8") as lines:
                out[name] = _persona(name, (
                    _record_to_row(name, json.loads(line), f"{path}:{number}")
                    for number, line in enumerate(lines, 1) if line.strip()
                ))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:  # the user's file, not this tool, is wrong
            raise UserInputError(f"--data-dir: {path} is not UTF-8 JSON lines ({error})") from None
    return out


def load_personas(names: Sequence[str], data_dir: Path | None = None) -> dict[str, PersonaStatements]:
    return load_shipped_personas(names) if data_dir is None else load_persona_directory(Path(data_dir), names)


def write_trimmed_copy(source_dir: Path, names: Sequence[str], target: Path) -> int:
    """Write the shipped file: the three trimmed fields plus the persona name, gzip, byte-reproducible.

    Returns the number of records. Used once to build `verify/real/data/personas.jsonl.gz` from the
    dataset; kept so the shipped file can be regenerated and checked.
    """
    personas = load_persona_directory(Path(source_dir), names)
    lines = []
    for name in names:
        p = personas[name]
        for s, q, yes in zip(p.statements, p.prompts, p.matching_yes):
            record = {"persona": name, "statement": s, "question": q, "answer_matching_behavior": ANSWERS[0 if yes else 1]}
            lines.append(json.dumps(record, ensure_ascii=False))
    payload = ("\n".join(lines) + "\n").encode("utf-8")
    with open(target, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as out:
        out.write(payload)
    return len(lines)
