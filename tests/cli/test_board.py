"""The commands that read and write the results store touch only its files: ``leaderboard``, ``compare``, ``runs``
and ``runs supersede`` on foreign files, missing ones, read-only media and a full disk."""

import contextlib
import os
import sqlite3
import subprocess
import sys

import pytest

from conftest import run_cli, run_main
from records_helpers import (
    FOREIGN,
    disk_full_at,
    first_edition_left_open,
    read_only_media,
    snapshot,
    write_first_edition,
)

READERS = (("leaderboard",), ("compare", "1", "2"), ("runs",))


def _one_error_line(done: subprocess.CompletedProcess | tuple[int, str, str], starts: str) -> None:
    code, out, err = (
        (done.returncode, done.stdout, done.stderr) if isinstance(done, subprocess.CompletedProcess) else done
    )
    assert code == 2 and out == "", (code, out, err)
    assert err.startswith(f"error: {starts}") and err.count("\n") == 1, err


@pytest.mark.parametrize("kind", ["fewshot's first tables among others", "a 0-byte file", "another program's database"])
def test_a_foreign_file_is_refused_in_one_line_and_left_as_it_was(capfd, tmp_path, kind):
    path = tmp_path / "results.sqlite"
    FOREIGN[kind](path)
    before = snapshot(tmp_path)
    for command in (*READERS, ("runs", "supersede", "1", "--why", "x")):
        _one_error_line(run_main(capfd, *command, "--results", str(path)), f"{path} is not a fewshot results file (")
        missing = tmp_path / "none.sqlite"  # readers, and writers that need runs, make no store where none is
        _one_error_line(run_main(capfd, *command, "--results", str(missing)), f"no results at {missing}")
    assert snapshot(tmp_path) == before


def test_the_first_edition_with_a_committed_wal_is_read_on_read_only_media(capfd, tmp_path):
    """The hardest file to read without writing: WAL mode, a change only in its -wal, no -shm beside it."""
    folder = tmp_path / "media"
    folder.mkdir()
    path = first_edition_left_open(folder / "results.sqlite")
    before = snapshot(folder)
    with read_only_media(folder):
        board = run_main(capfd, "leaderboard", "--results", str(path))
        listed = run_main(capfd, "runs", "--learner", "in the wal", "--results", str(path))
        compared = run_main(capfd, "compare", "1", "3", "--results", str(path))
        refused = run_main(capfd, "runs", "supersede", "1", "--why", "x", "--results", str(path))
    assert board[0] == 0 and "in the wal" in board[1], board
    assert listed[0] == 0 and listed[1].split()[0] == "1", listed
    assert compared[0] == 0 and "run 1 (in the wal) minus run 3" in compared[1], compared
    _one_error_line(refused, f"cannot write results to {path}: not a writable file")
    assert snapshot(folder) == before


def test_a_full_disk_while_superseding_is_one_line_and_exit_2(tmp_path):
    path = write_first_edition(tmp_path / "results.sqlite")
    size = path.stat().st_size
    before = snapshot(tmp_path)
    for limit in (0, size):
        done = subprocess.run(
            [sys.executable, "-m", "fewshot", "runs", "supersede", "1", "--why", "x" * 100000, "--results", str(path)],
            capture_output=True,
            text=True,
            preexec_fn=disk_full_at(limit),
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
            timeout=300,
        )
        _one_error_line(done, f"could not write results to {path}: the disk is full")
        assert sorted(snapshot(tmp_path)) == sorted(before), "no -journal, -wal or -shm left"
    listed = run_cli("runs", "--all", "--results", str(path))
    assert listed.returncode == 0 and "superseded" not in listed.stdout


def test_a_run_id_past_sqlites_integers_is_no_run_in_one_line(capfd, tmp_path):
    """Found by tests/fuzz: SQLite cannot even be asked about an id of 2**63, which was a traceback."""
    path = write_first_edition(tmp_path / "results.sqlite")
    before = snapshot(tmp_path)
    results = ("--results", str(path))
    for command in (
        ("compare", *results, "1", str(2**63)),
        ("runs", "supersede", *results, "--why", "x", "--", str(-(2**64))),
        ("runs", "supersede", *results, "1", "--why", "x", "--by", str(2**63)),
    ):
        code, _, err = run_main(capfd, *command)
        assert code == 2 and err.startswith("error: no run ") and err.count("\n") == 1, (command, err)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("output", [".", "folder", "file/below"])
def test_a_leaderboard_output_that_cannot_be_written_is_one_line(capfd, tmp_path, monkeypatch, output):
    """Found by tests/fuzz: --output naming a folder, or a path under a file, was a traceback."""
    path = write_first_edition(tmp_path / "results.sqlite")
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*")), path.read_bytes()
    code, _, err = run_main(capfd, "leaderboard", "--results", str(path), "--output", output)
    assert code == 2 and err.startswith(f"error: cannot write --output {output}: ") and err.count("\n") == 1, err
    assert (sorted(p.name for p in tmp_path.rglob("*")), path.read_bytes()) == before


def test_a_store_found_damaged_while_reading_is_one_line(capfd, tmp_path):
    """Found by tests/fuzz: a damaged page met after the file opened (here page 2, the first edition's runs table,
    read while migrating it in memory) was a DatabaseError traceback."""
    path = write_first_edition(tmp_path / "results.sqlite")
    raw = bytearray(path.read_bytes())
    raw[4096:8192] = bytes(4096)
    path.write_bytes(bytes(raw))
    before = snapshot(tmp_path)
    for command in READERS:
        _one_error_line(run_main(capfd, *command, "--results", str(path)), f"results file {path} is damaged (")
    assert snapshot(tmp_path) == before


def test_a_store_whose_damage_sqlite_quotes_in_bytes_that_are_not_utf8_is_one_line(capfd, tmp_path):
    """Found by tests/fuzz: SQLite's complaint about a damaged schema quotes the damage, and Python's sqlite3 cannot
    decode a complaint that is not UTF-8: that was a UnicodeDecodeError traceback."""
    path = write_first_edition(tmp_path / "results.sqlite")
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA writable_schema = ON")
        db.execute(
            "UPDATE sqlite_master SET sql = CAST(? AS TEXT) WHERE name = 'runs'", (b"CREATE TABLE runs (a) \xc5",)
        )
        db.commit()
    before = snapshot(tmp_path)
    for command in (*READERS, ("runs", "supersede", "1", "--why", "x")):
        expected = f"results file {path} is damaged (text in it is not UTF-8)"
        _one_error_line(run_main(capfd, *command, "--results", str(path)), expected)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("damage", ["mean = NULL", "created = NULL", "ways = 'five'", "mean = X'00'"])
def test_a_run_whose_values_break_the_schema_is_damaged_in_one_line(capfd, tmp_path, damage):
    """Found by tests/fuzz: SQLite checks no types, and a damaged page read as a run whose NOT NULL mean is NULL was
    a TypeError traceback in `fewshot runs` and the leaderboard."""
    path = write_first_edition(tmp_path / "results.sqlite")
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA ignore_check_constraints = ON")
        db.execute("PRAGMA writable_schema = ON")  # NOT NULL is enforced on write: this is how damage gets past it
        sql = db.execute("SELECT sql FROM sqlite_master WHERE name = 'runs'").fetchone()[0]
        db.execute("UPDATE sqlite_master SET sql = ? WHERE name = 'runs'", (sql.replace("NOT NULL", ""),))
        db.commit()
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(f"UPDATE runs SET {damage} WHERE id = 2")
        db.commit()
        db.execute("PRAGMA writable_schema = ON")
        db.execute("UPDATE sqlite_master SET sql = ? WHERE name = 'runs'", (sql,))
        db.commit()
    before = snapshot(tmp_path)
    for command in (*READERS[:1], ("runs",), ("compare", "2", "1")):
        _one_error_line(run_main(capfd, *command, "--results", str(path)), f"results file {path} is damaged (run 2's ")
    assert snapshot(tmp_path) == before
