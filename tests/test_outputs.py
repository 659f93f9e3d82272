"""Output paths: no user file is ever deleted or overwritten, nothing is left half-written, and a refused
command leaves nothing behind (verify.outputs, used by run, real, sweep-report, scaling --plot, sweep --store)."""
import hashlib
import os
import sqlite3
import sys
import threading
from pathlib import Path

import pytest

from verify.cli import main
from verify.outputs import (MARKER, OutputError, check_output_file, check_output_folder, check_store,
                            check_store_file, is_marked_png, mark_png, path_inside, safe_file_name,
                            write_file_atomically, write_folder_atomically)
from verify.report import write_report
from verify.sweep.config import parse_config
from verify.sweep.store import ResultStore


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under `folder` with the sha256 of each file's bytes ('dir' for folders)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        key = path.relative_to(folder).as_posix()
        out[key] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def user_files(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "thesis.tex").write_text("\\documentclass{article} ...")
    (folder / "data").mkdir(exist_ok=True)
    (folder / "data" / "results.csv").write_bytes(bytes(range(256)))
    return folder


def refused(capsys, argv, fragment) -> str:
    code = main(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in captured.err, captured.err
    return captured.out


def tiny_figure(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    fig.subplots().plot([0, 1], [1, 0])
    fig.savefig(path, dpi=20)


# --- run --output -------------------------------------------------------------------------------------------
def test_run_into_the_working_folder_refuses_before_computing_and_changes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(user_files(tmp_path))
    before = snapshot(tmp_path)
    out = refused(capsys, ["run", "--quick", "--output", "."], "--output .: the folder exists and was not written by dpo-verify")
    assert out == ""  # no claim ran: the refusal came first
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("target, fragment", [
    ("mydata", "no .dpo-verify-report marker"),
    ("..", "not written by dpo-verify"),
    ("mydata/thesis.tex", "exists and is not a folder"),
])
def test_run_into_a_user_folder_or_file_refuses_and_changes_nothing(tmp_path, monkeypatch, capsys, target, fragment):
    user_files(tmp_path)
    user_files(tmp_path / "mydata")
    monkeypatch.chdir(tmp_path / "data" if target == ".." else tmp_path)
    before = snapshot(tmp_path)
    assert refused(capsys, ["run", "--quick", "--output", target], fragment) == ""
    assert snapshot(tmp_path) == before


def test_run_into_the_home_folder_refuses(tmp_path, monkeypatch, capsys):
    home = user_files(tmp_path / "home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    assert refused(capsys, ["run", "--quick", "--output", str(Path.home())], "not written by dpo-verify") == ""
    assert snapshot(tmp_path) == before


def test_unwritable_parent_is_refused_before_work(tmp_path, monkeypatch, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as root: chmod does not make a folder unwritable")
        monkeypatch.chdir(tmp_path)
        assert refused(capsys, ["run", "--quick", "--output", "locked/report"], "locked is not writable") == ""
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def test_unwritable_parent_is_refused_whoever_runs(tmp_path, monkeypatch, capsys):
    import verify.outputs

    locked = (tmp_path / "locked").resolve()
    locked.mkdir()
    real = verify.outputs._writable
    monkeypatch.setattr(verify.outputs, "_writable", lambda folder: folder != locked and real(folder))
    monkeypatch.chdir(tmp_path)
    assert refused(capsys, ["run", "--quick", "--output", "locked/a/report"], "locked is not writable") == ""
    assert list(locked.iterdir()) == []


def test_a_report_folder_is_replaced_on_rerun_and_nothing_else_is_left(tmp_path):
    report = tmp_path / "report"
    for profile in ("first", "second"):
        write_report(report, [], {"a.png": tiny_figure}, {"profile": profile, "seed": 0})
        assert f"Profile: {profile}" in (report / "report.md").read_text()
    assert {p.name for p in report.iterdir()} == {"a.png", "results.json", "report.md", MARKER}
    assert [p.name for p in tmp_path.iterdir()] == ["report"]  # no staging or old copy beside it
    marker = (report / MARKER).read_text()
    assert marker.startswith("# dpo-verify report (run)")
    assert hashlib.sha256((report / "report.md").read_bytes()).hexdigest() + "  report.md" in marker


@pytest.mark.parametrize("change, fragment", [
    (lambda report: (report / "notes.md").write_text("mine"), "holds notes.md, which dpo-verify did not write"),
    (lambda report: (report / "report.md").write_text("edited"), "report.md, which was changed after"),
    (lambda report: (report / "sub").mkdir(), "holds sub"),
    (lambda report: (report / MARKER).write_text("anything"), "no .dpo-verify-report marker"),
])
def test_a_report_folder_with_user_changes_is_not_replaced(tmp_path, change, fragment):
    report = tmp_path / "report"
    write_report(report, [], {}, {"profile": "quick", "seed": 0})
    change(report)
    before = snapshot(tmp_path)
    with pytest.raises(OutputError, match=fragment):
        write_report(report, [], {}, {"profile": "quick", "seed": 1})
    assert snapshot(tmp_path) == before


def test_a_failing_build_leaves_neither_output_nor_staging(tmp_path):
    def broken(staging):
        (staging / "half.png").write_text("half")
        raise RuntimeError("figure failed")

    with pytest.raises(RuntimeError, match="figure failed"):
        write_folder_atomically(tmp_path / "a" / "b" / "report", broken, kind="test")
    assert list(tmp_path.iterdir()) == []  # the parents it created are gone too
    write_folder_atomically(tmp_path / "report", lambda staging: (staging / "x.txt").write_text("old"), kind="test")
    before = snapshot(tmp_path)
    with pytest.raises(RuntimeError):
        write_folder_atomically(tmp_path / "report", broken, kind="test")
    assert snapshot(tmp_path) == before  # the earlier report is intact, and nothing is beside it


def test_a_report_folder_keeps_the_usual_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        write_folder_atomically(tmp_path / "report", lambda staging: (staging / "x.txt").write_text("x"), kind="test")
    finally:
        os.umask(mask)
    assert (tmp_path / "report").stat().st_mode & 0o777 == 0o755


@pytest.mark.slow
def test_run_quick_twice_into_the_same_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        assert main(["run", "--quick", "--output", "report"]) in (0, 1)
        assert "report: report/report.md" in capsys.readouterr().out
    assert (tmp_path / "report" / MARKER).is_file() and [p.name for p in tmp_path.iterdir()] == ["report"]


# --- real --output ------------------------------------------------------------------------------------------
def test_real_without_the_extra_leaves_no_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # `import sentence_transformers` fails
    monkeypatch.chdir(tmp_path)
    refused(capsys, ["real", "--quick"], "needs the [real] extra")
    refused(capsys, ["real", "--quick", "--output", "elsewhere/real"], "needs the [real] extra")
    assert list(tmp_path.iterdir()) == []


def test_real_with_a_missing_data_dir_leaves_no_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    refused(capsys, ["real", "--quick", "--data-dir", str(tmp_path / "nonexistent")], "--data-dir")
    assert list(tmp_path.iterdir()) == []


def test_real_into_a_user_folder_refuses(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(user_files(tmp_path))
    before = snapshot(tmp_path)
    refused(capsys, ["real", "--quick", "--output", "data"], "--output data: the folder exists and was not written")
    assert snapshot(tmp_path) == before


# --- sweep-report and sweep --store -------------------------------------------------------------------------
def sleep_store(path: Path, name: str, values=(1.0, 2.0)) -> Path:
    config = parse_config({"sweep": {"name": name, "target": "experiment:sleep", "seeds": 1},
                           "parameters": {"seconds": 0.0, "value": list(values)}})
    with ResultStore(path) as store:
        store.register(config, resume=False)
        for value in values:
            store.add(name, f"k{value}", {"seconds": 0.0, "value": value}, 0, f'{{"value": {value}}}', None, 0.0, "local")
    return path


@pytest.mark.parametrize("content, fragment", [
    (b"hello, not a database", "not a results store (not an SQLite file)"),
    (b"", "not a results store (an empty file)"),
    (None, "no such file"),
])
def test_sweep_report_of_a_bad_store_leaves_nothing(tmp_path, monkeypatch, capsys, content, fragment):
    monkeypatch.chdir(tmp_path)
    if content is not None:
        Path("store.sqlite").write_bytes(content)
    before = snapshot(tmp_path)
    refused(capsys, ["sweep-report", "store.sqlite"], f"store store.sqlite: {fragment}")
    assert snapshot(tmp_path) == before


def test_sweep_report_of_a_foreign_database_or_an_empty_store_leaves_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with sqlite3.connect("user.sqlite") as connection:
        connection.execute("CREATE TABLE grades (student TEXT, grade REAL)")
    with ResultStore("empty.sqlite"):
        pass
    before = snapshot(tmp_path)
    refused(capsys, ["sweep-report", "user.sqlite"], "without dpo-verify's tables sweeps and trials")
    refused(capsys, ["sweep-report", "empty.sqlite"], "holds no sweep")
    assert snapshot(tmp_path) == before


def test_sweep_report_into_a_user_folder_refuses(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    sleep_store(tmp_path / "s.sqlite", "plain")
    user_files(tmp_path / "s-report")
    before = snapshot(tmp_path)
    refused(capsys, ["sweep-report", "s.sqlite"], "s-report: the folder exists and was not written")
    refused(capsys, ["sweep-report", "s.sqlite", "--output", "."], "--output .: the folder exists")
    assert snapshot(tmp_path) == before


def test_sweep_names_cannot_write_outside_the_report(tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    sleep_store(work / "s.sqlite", "../escaped")
    sleep_store(work / "s.sqlite", "..")
    sleep_store(work / "s.sqlite", "/tmp/abs")
    assert main(["sweep-report", "s.sqlite"]) == 0, capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["work"]
    assert sorted(p.name for p in work.iterdir()) == ["s-report", "s.sqlite"]
    names = sorted(p.name for p in (work / "s-report").iterdir())
    figures = [n for n in names if n.endswith(".png")]
    assert len(figures) == 3 and all(not n.startswith(".") and n == safe_file_name(n) for n in figures)
    report = (work / "s-report" / "report.md").read_text()
    assert all(f"]({n})" in report for n in figures)


@pytest.mark.parametrize("name, expected", [
    ("../escaped", "_escaped"), ("..", "unnamed"), ("", "unnamed"), ("a/b\\c", "a_b_c"), (".hidden", "hidden"),
    ("ok-name_1.2", "ok-name_1.2"), ("x\x00y\nz", "x_y_z"), ("é" * 3, "_"),
])
def test_safe_file_name(name, expected):
    assert safe_file_name(name) == expected


def test_path_inside_stays_inside(tmp_path):
    for name in ("../x", "..", "/etc/passwd", "a/../../b", "." * 300, "n" * 1000):
        path = path_inside(tmp_path, name, ".png")
        assert path.parent == tmp_path and path.suffix == ".png" and len(path.name) <= 124


def test_sweep_store_that_is_not_a_store_is_refused_before_anything_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("notes.txt").write_text("my notes")
    with sqlite3.connect("user.sqlite") as connection:
        connection.execute("CREATE TABLE grades (student TEXT, grade REAL)")
    before = snapshot(tmp_path)
    # the config does not even exist: the store is checked first
    refused(capsys, ["sweep", "missing.toml", "--store", "notes.txt"], "--store notes.txt: not a results store")
    refused(capsys, ["sweep", "missing.toml", "--store", "user.sqlite"], "--store user.sqlite: not a results store")
    refused(capsys, ["sweep", "missing.toml", "--store", "."], "--store .: is a folder")
    assert snapshot(tmp_path) == before


def test_a_store_being_created_by_a_concurrent_sweep_is_accepted(tmp_path):
    store = tmp_path / "s.sqlite"
    store.touch()  # what sqlite3.connect leaves for a moment before the schema is committed
    threading.Timer(0.2, lambda: ResultStore(store).close()).start()
    check_store_file(store, wait=5.0)
    with pytest.raises(OutputError, match="an empty file"):
        (tmp_path / "other.sqlite").touch()
        check_store_file(tmp_path / "other.sqlite", wait=0.1)


def test_check_store_reports_the_folder_it_will_create_and_creates_nothing(tmp_path):
    assert check_store(tmp_path / "new" / "dir" / "s.sqlite") == tmp_path / "new" / "dir"
    assert check_store(tmp_path / "s.sqlite") is None
    assert list(tmp_path.iterdir()) == []
    sleep_store(tmp_path / "s.sqlite", "plain")
    assert check_store(tmp_path / "s.sqlite") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.sqlite"]  # the read-only check left no -wal/-shm
    (tmp_path / "empty.sqlite").touch()  # SQLite's empty database: a sweep may fill it
    assert check_store(tmp_path / "empty.sqlite") is None


@pytest.mark.slow
def test_a_store_in_a_new_folder_is_created_and_said_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("c.toml").write_text('[sweep]\nname = "c"\ntarget = "experiment:sleep"\nseeds = 1\n\n'
                              "[parameters]\nseconds = 0.0\nvalue = 1.0\n")
    assert main(["sweep", "c.toml", "--store", "new/dir/s.sqlite", "--workers", "1"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["dpo-verify: created folder new/dir for the store"]
    assert (tmp_path / "new" / "dir" / "s.sqlite").is_file()


# --- scaling --plot -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("target, fragment", [
    ("data", "--plot data: is a folder"),
    ("thesis.tex", "unknown image format '.tex'"),
    ("user.png", "--plot user.png: the file exists and was not written by dpo-verify"),
    ("user.pdf", "cannot tell whether it wrote it"),
    ("missing/q.png", "the folder missing does not exist"),
])
def test_scaling_plot_refuses_before_the_table(tmp_path, monkeypatch, capsys, target, fragment):
    monkeypatch.chdir(user_files(tmp_path))
    tiny_figure(tmp_path / "user.png")
    (tmp_path / "user.pdf").write_bytes(b"%PDF-1.4 mine")
    before = snapshot(tmp_path)
    assert refused(capsys, ["scaling", "--K", "1,2", "--plot", target], fragment) == ""
    assert snapshot(tmp_path) == before


def test_our_png_is_marked_and_replaced_atomically(tmp_path):
    from PIL import Image

    path = write_file_atomically(tmp_path / "q", tiny_figure)
    assert path == tmp_path / "q.png" and is_marked_png(path)
    with Image.open(path) as image:
        image.load()  # still a valid PNG
        assert image.info["Software"].startswith("dpo-verify ")
    assert check_output_file(tmp_path / "q") == path
    write_file_atomically(tmp_path / "q.png", tiny_figure)  # ours: replaced
    assert [p.name for p in tmp_path.iterdir()] == ["q.png"]

    def broken(temp):
        temp.write_bytes(b"half")
        raise RuntimeError("plot failed")

    before = snapshot(tmp_path)
    with pytest.raises(RuntimeError):
        write_file_atomically(tmp_path / "q.png", broken)
    assert snapshot(tmp_path) == before


def test_png_mark_is_checked_by_content_not_by_name(tmp_path):
    tiny_figure(tmp_path / "plain.png")
    assert not is_marked_png(tmp_path / "plain.png")  # matplotlib's own Software chunk is not ours
    (tmp_path / "fake.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"tEXtSoftware\0dpo-verify 1" * 4)
    assert not is_marked_png(tmp_path / "fake.png")  # not a chunk with a valid CRC
    mark_png(tmp_path / "plain.png")
    assert is_marked_png(tmp_path / "plain.png")
    with pytest.raises(ValueError, match="not a complete PNG"):
        mark_png(tmp_path / "fake.png")


@pytest.mark.slow
def test_scaling_plot_without_suffix_prints_the_path_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):  # the second run replaces its own plot
        assert main(["scaling", "--K", "1,2", "--plot", "curve"]) == 0
        assert "plot: curve.png" in capsys.readouterr().out.splitlines()
    assert [p.name for p in tmp_path.iterdir()] == ["curve.png"] and is_marked_png(tmp_path / "curve.png")


def test_check_output_folder_touches_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert check_output_folder("a/b/c") == (tmp_path / "a" / "b" / "c").resolve()
    (tmp_path / "link").symlink_to(tmp_path)
    with pytest.raises(OutputError, match="symbolic link"):
        check_output_folder("link")
    assert [p.name for p in tmp_path.iterdir()] == ["link"]
