"""Where dpo-verify writes: report folders, figure files and the sweep store.

The rule: never delete or overwrite a path this tool did not write, and never leave anything half-written.
- A report folder carries a marker file listing each file the tool wrote there with its sha256. An existing
  folder is replaced only if it has the marker and holds exactly those files, unchanged. A report is built in
  a hidden sibling folder and swapped in by renames, so the path holds either the old report or the new one.
- A PNG figure carries a tEXt chunk "Software: dpo-verify ..."; an existing file is replaced only if it has
  it. A figure is written to a hidden sibling file and renamed over the path.
- A sweep store is an SQLite file with the tables `sweeps` and `trials`; any other existing file is refused.
The checks touch nothing and are meant to run before the expensive work. They raise OutputError, a
ValueError, whose one-line message names the option, the path and the reason (the CLI prints it, exit 2).
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import struct
import tempfile
import time
import zlib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable, TypeVar

from theory.errors import UserInputError

TOOL = "dpo-verify"
MARKER = ".dpo-verify-report"
MARKER_HEADER = f"# {TOOL} report"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_KEYWORD = b"Software"
SQLITE_HEADER = b"SQLite format 3\x00"
STORE_TABLES = frozenset({"sweeps", "trials"})
STORE_CREATION_WAIT_SECONDS = 2.0  # a concurrent sweep creates the store's tables within milliseconds
FILE_NAME_LIMIT = 120  # characters of a sanitised name; file systems allow 255 bytes

T = TypeVar("T")


class OutputError(UserInputError):
    """An output path this tool must not write to."""


def _refuse(option: str, path, why: str):
    raise OutputError(f"{option} {path}: {why}")


def _tool_version() -> str:
    try:
        return version(TOOL)
    except PackageNotFoundError:
        return "unknown"


def _writable(folder: Path) -> bool:
    """Whether a file can be created in `folder`: by trying (os.access says yes to root even on /proc)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        probe = tempfile.mkdtemp(prefix=f".{TOOL}-probe-", dir=folder)
    except OSError:
        return False
    os.rmdir(probe)
    return True


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _check_creatable(path: Path, option: str, shown) -> None:
    """`path` does not exist: its nearest existing ancestor must be a writable folder."""
    ancestor = _nearest_existing(path.parent)
    if not ancestor.is_dir():
        _refuse(option, shown, f"cannot create it: {ancestor} is not a folder")
    if not _writable(ancestor):
        _refuse(option, shown, f"cannot create it: {ancestor} is not writable")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- report folders -----------------------------------------------------------------------------------------
def _write_marker(folder: Path, kind: str) -> None:
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    lines = [f"{MARKER_HEADER} ({kind}), version {_tool_version()}.",
             f"# {TOOL} replaces this folder on a later run into it only while the folder holds exactly the files",
             "# listed below, unchanged (sha256 and path); anything else there makes it refuse.",
             *(f"{_sha256(folder / name)}  {name}" for name in files)]
    (folder / MARKER).write_text("\n".join(lines) + "\n")


def _marker_entries(marker: Path) -> dict[str, str] | None:
    """{path: sha256} from a marker this tool wrote; None for anything else."""
    try:
        if marker.is_symlink() or not marker.is_file() or marker.stat().st_size > 1 << 20:
            return None
        lines = marker.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    if not lines or not lines[0].startswith(MARKER_HEADER):
        return None
    entries = {}
    for line in lines[1:]:
        if line.startswith("#") or not line:
            continue
        digest, sep, name = line.partition("  ")
        if not sep or not re.fullmatch(r"[0-9a-f]{64}", digest):
            return None
        entries[name] = digest
    return entries


def _first_foreign_entry(folder: Path, written: dict[str, str]) -> tuple[str, str] | None:
    """The first entry of `folder` this tool did not write, or wrote but that has changed since: (path, why)."""
    folders = {parent.as_posix() for name in written for parent in Path(name).parents if parent != Path(".")}
    pending = [(folder, "")]
    while pending:
        here, prefix = pending.pop()
        with os.scandir(here) as entries:
            for entry in entries:
                name = prefix + entry.name
                if name == MARKER:
                    continue
                if entry.is_dir(follow_symlinks=False) and name in folders:
                    pending.append((Path(entry.path), name + "/"))
                elif not entry.is_file(follow_symlinks=False) or name not in written:
                    return name, "which dpo-verify did not write"
                elif _sha256(Path(entry.path)) != written[name]:
                    return name, "which was changed after dpo-verify wrote it"
    return None


def check_output_folder(path: Path | str, option: str = "--output") -> Path:
    """Check that a report may be written at `path`; return it resolved. Touches nothing.

    Accepted: a path that does not exist under a writable folder, or a folder this tool wrote (marker present)
    that holds nothing else. Refused (OutputError): any other existing folder, including `.`, `..` and
    home; a file; a symbolic link; a folder that contains the working folder; an unwritable parent.
    """
    given = Path(path)
    if given.is_symlink():
        _refuse(option, path, "is a symbolic link; give a new folder")
    target = given.resolve()
    if not target.exists():
        _check_creatable(target, option, path)
        return target
    if not target.is_dir():
        _refuse(option, path, "exists and is not a folder; choose a new folder")
    written = _marker_entries(target / MARKER)
    if written is None:
        _refuse(option, path, f"the folder exists and was not written by {TOOL} (no {MARKER} marker); choose a new folder")
    working = Path.cwd().resolve()
    if target == working or target in working.parents:
        _refuse(option, path, "is the working folder or contains it; choose another folder")
    try:
        foreign = _first_foreign_entry(target, written)
    except OSError as error:
        _refuse(option, path, f"cannot read the folder ({error.strerror}); choose a new folder")
    if foreign is not None:
        _refuse(option, path, f"the folder holds {foreign[0]}, {foreign[1]}; move it away or choose a new folder")
    if target == target.parent or not _writable(target.parent) or not _writable(target):
        _refuse(option, path, "cannot replace the folder: it or its parent is not writable")
    return target


def _make_folders(folder: Path, created: list[Path]) -> None:
    """mkdir -p, appending each folder it creates to `created` (outermost first), also when it fails midway."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        created.append(folder)


def _remove_empty(folders: list[Path]) -> None:
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            return


def _swap_in(staging: Path, target: Path) -> None:
    if not target.exists():
        target.mkdir()  # exclusive: fails if anything appeared at the path meanwhile
        try:
            os.rename(staging, target)  # replaces the empty folder made just above
        except BaseException:
            target.rmdir()
            raise
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=target.parent))
    os.rename(target, aside)  # replaces the empty folder `aside`
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(aside, target)
        raise
    shutil.rmtree(aside, ignore_errors=True)  # the old report, checked against its marker


def write_folder_atomically(path: Path | str, build: Callable[[Path], T], kind: str, option: str = "--output") -> T:
    """Run build(staging) on an empty hidden sibling folder, add the marker, then swap it in at `path`.

    `path` is checked first (check_output_folder) and again just before the swap. If anything raises, the
    staging folder and any parent folders this call created are removed and the exception propagates:
    `path` then still holds what it held before. Returns what build returned.
    """
    target = check_output_folder(path, option)
    created, staging = [], None
    try:
        try:
            _make_folders(target.parent, created)
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-staging-", dir=target.parent))
            staging.chmod(0o777 & ~_umask())  # mkdtemp makes it private; a report folder gets the usual mode
        except OSError as error:
            _refuse(option, path, f"cannot create the report folder ({error.strerror or error})")
        result = build(staging)
        _write_marker(staging, kind)
        check_output_folder(path, option)
        try:
            _swap_in(staging, target)
        except OSError as error:
            _refuse(option, path, f"cannot move the report into place ({error.strerror or error})")
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        _remove_empty(created)
        raise
    return result


# --- single figure files ------------------------------------------------------------------------------------
def _png_chunks(data: bytes):
    """(type, body, start, end) of each chunk; stops at IEND or at the first malformed chunk."""
    offset = len(PNG_SIGNATURE)
    while offset + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        end = offset + 12 + length
        if end > len(data):
            return
        body = data[offset + 8:offset + 8 + length]
        if struct.unpack(">I", data[end - 4:end])[0] != zlib.crc32(kind + body):
            return
        yield kind, body, offset, end
        if kind == b"IEND":
            return
        offset = end


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def mark_png(path: Path) -> None:
    """Set the PNG's tEXt "Software" to this tool (replacing matplotlib's), so that a later run recognises it."""
    data = Path(path).read_bytes()
    chunks = list(_png_chunks(data)) if data.startswith(PNG_SIGNATURE) else []
    if not chunks or chunks[0][0] != b"IHDR" or chunks[-1][0] != b"IEND":
        raise ValueError(f"{path}: not a complete PNG file")
    ours = _png_chunk(b"tEXt", PNG_KEYWORD + b"\0" + f"{TOOL} {_tool_version()}".encode("latin-1"))
    kept = [data[start:end] for kind, body, start, end in chunks[1:]
            if not (kind == b"tEXt" and body.split(b"\0", 1)[0] == PNG_KEYWORD)]
    _, _, start, end = chunks[0]
    Path(path).write_bytes(PNG_SIGNATURE + data[start:end] + ours + b"".join(kept))


def is_marked_png(path: Path) -> bool:
    """Whether `path` is a PNG whose tEXt "Software" names this tool (mark_png puts it right after IHDR)."""
    try:
        with open(path, "rb") as file:
            head = file.read(1 << 16)
    except OSError:
        return False
    if not head.startswith(PNG_SIGNATURE):
        return False
    for kind, body, _, _ in _png_chunks(head):
        if kind == b"IDAT":
            return False
        if kind == b"tEXt":
            keyword, _, text = body.partition(b"\0")
            if keyword == PNG_KEYWORD and text.startswith(f"{TOOL} ".encode()):
                return True
    return False


def _image_formats() -> set[str]:
    from matplotlib.backend_bases import FigureCanvasBase

    return set(FigureCanvasBase.get_supported_filetypes())


def _check_new_file_place(path, target: Path, option: str) -> None:
    """Refuse a target that is a link or a folder, or whose folder is missing or not writable."""
    if target.is_symlink():
        _refuse(option, target, "is a symbolic link; give a new file name")
    parent = target.resolve().parent
    if not parent.is_dir():
        _refuse(option, path, f"the folder {target.parent} does not exist")
    if not _writable(parent):
        _refuse(option, path, f"the folder {target.parent} is not writable")
    if target.is_dir():
        _refuse(option, target, "is a folder; give a file name")


def check_output_file(path: Path | str, option: str = "--plot") -> Path:
    """Check that a figure may be written at `path`; return the path that will be written. Touches nothing.

    A name without a suffix gets ".png" (as matplotlib does). Refused (OutputError): a folder, a symbolic link,
    an unknown image format, a parent that is missing or not writable, and an existing file other than a PNG
    this tool wrote (only PNG figures carry a mark, so an existing file of another format is refused too).
    """
    given = Path(path)
    if given.is_dir():
        _refuse(option, path, "is a folder; give a file name, e.g. " + str(given / "figure.png"))
    target = given if given.suffix else given.with_name(given.name + ".png")
    if target.suffix.lower()[1:] not in _image_formats():
        _refuse(option, path, f"unknown image format {target.suffix!r}; use .png (or "
                              f"{', '.join('.' + f for f in sorted(_image_formats() - {'png'}))})")
    _check_new_file_place(path, target, option)
    if target.exists():
        if target.suffix.lower() != ".png":
            _refuse(option, target, f"the file exists and {TOOL} cannot tell whether it wrote it (only its PNG "
                                    "files carry a mark); choose a new name")
        if not is_marked_png(target):
            _refuse(option, target, f"the file exists and was not written by {TOOL}; choose a new name")
    return target


def write_file_atomically(path: Path | str, write: Callable[[Path], object], option: str = "--plot") -> Path:
    """write(temp) on a hidden file beside the target (same suffix), mark it if PNG, then rename it over the
    target. Returns the path written (check_output_file's). On any exception the temp file is removed."""
    target = check_output_file(path, option)
    descriptor, name = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=target.suffix, dir=target.parent)
    os.close(descriptor)
    temp = Path(name)
    try:
        write(temp)
        if target.suffix.lower() == ".png":
            mark_png(temp)
        temp.chmod(0o666 & ~_umask())  # mkstemp makes it private; a figure gets the usual mode
        check_output_file(path, option)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return target


# --- text files (LaTeX fragments) ------------------------------------------------------------------------
LATEX_MARK = f"% written by {TOOL}"


def check_text_file(path: Path | str, option: str, suffix: str = ".tex", mark: str = LATEX_MARK) -> Path:
    """Check that a text file may be written at `path` (a missing suffix gets `suffix`). Touches nothing.
    Refused: a folder, a symbolic link, a missing or unwritable parent, and an existing file whose first line
    is not `mark` (a file this tool did not write). The benchmarks' reports use it with their own marks."""
    given = Path(path)
    if given.is_dir():
        _refuse(option, path, "is a folder; give a file name, e.g. " + str(given / f"derivation{suffix}"))
    target = given if given.suffix else given.with_name(given.name + suffix)
    _check_new_file_place(path, target, option)
    if target.exists():
        try:
            with open(target, encoding="utf-8", errors="replace") as file:
                first = file.readline().rstrip("\n")
        except OSError as error:
            _refuse(option, target, f"the file exists and cannot be read ({error.strerror}); choose a new name")
        if first != mark:
            _refuse(option, target, f"the file exists and was not written by {TOOL}; choose a new name")
    return target


def write_text_atomically(path: Path | str, text: str, option: str, suffix: str = ".tex", mark: str = LATEX_MARK) -> Path:
    """`mark` + newline + text, written through a hidden sibling and renamed over the target."""
    target = check_text_file(path, option, suffix, mark)
    descriptor, name = tempfile.mkstemp(prefix=f".{target.stem}-", suffix=target.suffix, dir=target.parent)
    temp = Path(name)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(mark + "\n" + text)
        temp.chmod(0o666 & ~_umask())
        check_text_file(path, option, suffix, mark)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return target


def check_report_pair(folder: Path | str, markdown: str, figure: str, mark: str,
                      option: str = "--output-dir") -> tuple[Path, Path]:
    """A benchmark's markdown report and figure in an existing folder, both checked before any work: the markdown
    by its first line `mark`, the figure by its PNG mark."""
    folder = Path(folder)
    if not folder.is_dir():
        raise OutputError(f"{option} = {str(folder)!r} is not an existing folder")
    return check_text_file(folder / markdown, option, ".md", mark), check_output_file(folder / figure, option)


# --- sweep stores -------------------------------------------------------------------------------------------
def _store_problem(path: Path) -> tuple[str, bool] | None:
    """None for a results store; else (why not, whether it may be a store a concurrent sweep is creating)."""
    try:
        with open(path, "rb") as file:
            header = file.read(len(SQLITE_HEADER))
    except OSError as error:
        return f"cannot be read ({error.strerror})", False
    if not header:
        return "not a results store (an empty file)", True
    if header != SQLITE_HEADER:
        return "not a results store (not an SQLite file)", False
    # Read-only: immutable unless a writer's WAL exists (immutable would skip it; mode=ro would create one).
    wal = Path(f"{path}-wal").exists()
    uri = path.resolve().as_uri() + ("?mode=ro" if wal else "?immutable=1")
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=5)
        try:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            connection.close()
    except sqlite3.Error as error:
        return f"not a results store (a damaged SQLite file: {error})", False
    if not STORE_TABLES <= tables:
        return (f"not a results store (an SQLite file without {TOOL}'s tables sweeps and trials); "
                "choose another file"), not tables
    return None


def check_store_file(path: Path | str, option: str = "--store", wait: float = 0.0) -> None:
    """Refuse (OutputError) an existing `path` that is not a results store, reading it only.

    wait: seconds to wait for an empty file, or an SQLite file without tables, to become a store (what a
    sweep starting at the same moment on the same store looks like for a few milliseconds)."""
    deadline = time.monotonic() + wait
    while True:
        problem = _store_problem(Path(path))
        if problem is None:
            return
        why, may_be_starting = problem
        if not may_be_starting or time.monotonic() >= deadline:
            _refuse(option, path, why)
        time.sleep(0.05)


def check_store(path: Path | str, option: str = "--store") -> Path | None:
    """Check a store path before a sweep writes to it; touches nothing. Returns the folder that storing
    there will create (None when it exists). An existing file must be a results store."""
    given = Path(path)
    if given.is_dir():
        _refuse(option, path, f"is a folder; give the store's file name, e.g. {given / 'sweeps.sqlite'}")
    if given.exists():
        if given.is_file() and given.stat().st_size == 0:  # SQLite's own empty database: there is nothing to lose
            if not _writable(given.resolve().parent):
                _refuse(option, path, "its folder is not writable (SQLite writes a journal beside the store)")
            return None
        check_store_file(given, option, wait=STORE_CREATION_WAIT_SECONDS)
        if not _writable(given.resolve().parent):
            _refuse(option, path, "its folder is not writable (SQLite writes a journal beside the store)")
        return None
    _check_creatable(given.resolve(), option, path)
    return None if given.parent.exists() else given.parent


def check_existing_store(path: Path | str, option: str = "store") -> None:
    """A store to read (sweep-report): it must exist and be a results store."""
    given = Path(path)
    if not given.exists():
        _refuse(option, path, "no such file")
    if given.is_dir():
        _refuse(option, path, "is a folder, not a results store")
    check_store_file(given, option)


# --- file names from user input -----------------------------------------------------------------------------
def safe_file_name(text: str, suffix: str = "") -> str:
    """`text` as a file name: characters outside [A-Za-z0-9._-] become '_', no leading dot, bounded length."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", text).lstrip(".")[:FILE_NAME_LIMIT]
    return (stem or "unnamed") + suffix


def path_inside(folder: Path, stem: str, suffix: str = "") -> Path:
    """folder / safe_file_name(stem, suffix), checked to resolve to a direct child of `folder`."""
    path = Path(folder) / safe_file_name(stem, suffix)
    if path.resolve().parent != Path(folder).resolve():
        raise OutputError(f"file name {stem + suffix!r} would be written outside {folder}")
    return path
