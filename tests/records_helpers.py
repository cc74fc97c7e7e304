"""Files a results store meets (foreign ones, read-only media, a full disk), shared by the store's tests and the
command line's; and runs as the store returns them, for the leaderboard's tests."""

from __future__ import annotations

import contextlib
import json
import lzma
import os
import resource
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import REPO
from fewshot.records.migrations import V1_SCHEMA

# The committed results file as it was at 19b080c, the last revision in the first edition's format (schema 1, WAL
# mode), compressed: `git show 19b080c:leaderboard/results.sqlite | xz -9`. A fixture rather than `git show`, so the
# test needs no history (a shallow clone has none).
V1_FIXTURE = REPO / "tests" / "data" / "results-v1.sqlite.xz"


def write_first_edition(path: Path) -> Path:
    path.write_bytes(lzma.decompress(V1_FIXTURE.read_bytes()))
    return path


def first_edition_left_open(path: Path) -> Path:
    """The first edition's WAL file with a committed change still in its -wal and no -shm: as a writer killed after
    its commit leaves it, copied somewhere without its -shm. Reading it needs the -wal, and SQLite makes a -shm."""
    write_first_edition(path)
    code = (
        "import os, sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1]); db.execute('PRAGMA wal_autocheckpoint = 0')\n"
        "db.execute(\"UPDATE runs SET learner = 'in the wal' WHERE id = 1\"); db.commit(); os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)
    Path(f"{path}-shm").unlink()
    assert Path(f"{path}-wal").stat().st_size > 0
    return path


def _sqlite(*statements: str, wal: bool = False) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        with contextlib.closing(sqlite3.connect(path)) as db:
            if wal:
                db.execute("PRAGMA journal_mode = WAL")
            for statement in statements:
                db.executescript(statement)
            db.commit()

    return make


# Files that are not fewshot stores, by what a user might point --results at.
FOREIGN: dict[str, Callable[[Path], object]] = {
    "an unrelated database": _sqlite("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)"),
    "an unrelated database in WAL mode": _sqlite("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)", wal=True),
    "a foreign runs table": _sqlite("CREATE TABLE runs (id INTEGER PRIMARY KEY, foo TEXT)"),
    "fewshot's first tables among others": _sqlite(V1_SCHEMA, "CREATE TABLE photos (id INTEGER PRIMARY KEY)"),
    "another program's database": _sqlite(V1_SCHEMA, "PRAGMA application_id = 1234"),
    "a database with no tables": _sqlite("PRAGMA user_version = 7"),
    "a 0-byte file": lambda path: path.write_bytes(b""),
    "a text file": lambda path: path.write_text("run,mean\n1,0.5\n" * 300),
}


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file in ``folder`` with its bytes and modification time: what "nothing written" compares."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


def contents(path: Path) -> list[str]:
    """A store's every table and row, whatever its journal mode: what "the store as it was" compares."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)) as db:
        return list(db.iterdump())


@contextlib.contextmanager
def read_only_media(folder: Path) -> Iterator[None]:
    """``folder`` and its files as on read-only media: nothing can be written or made there, not even by root.

    Mode 0444 files in a mode 0555 folder stop any other user; root ignores modes, so as root the folder and its
    files are also made immutable (chattr +i), which root respects. Skips where that is not possible.
    """
    files = [p for p in folder.iterdir() if p.is_file()]
    for path in files:
        path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    immutable = [*files, folder] if os.geteuid() == 0 else []
    try:
        if immutable:
            chattr = shutil.which("chattr")
            made = chattr and subprocess.run([chattr, "+i", *map(str, immutable)], capture_output=True).returncode
            if made != 0:
                pytest.skip("running as root where chattr +i is not possible: no read-only folder to test on")
        assert not os.access(folder, os.W_OK), "the folder is read-only"
        yield
    finally:
        if immutable and shutil.which("chattr"):
            subprocess.run(["chattr", "-i", *map(str, immutable)], capture_output=True)
        folder.chmod(stat.S_IRWXU)
        for path in files:
            path.chmod(stat.S_IRUSR | stat.S_IWUSR)


def disk_full_at(size: int) -> Callable[[], None]:
    """For subprocess's preexec_fn: no file of the process can be written past ``size`` bytes, as on a full disk.

    With SIGXFSZ ignored a write past the limit fails with EFBIG, the error SQLite meets when the disk fills.
    """

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


def stored_run(id, learner="protonet", mean=0.9, **changes):
    """A run as the store returns it, for the leaderboard's tests: an Omniglot 5-way 1-shot protonet run unless
    ``changes`` say otherwise."""
    run = {
        "id": id,
        "learner": learner,
        "hparams": json.dumps({}),
        "dataset": "omniglot",
        "protocol": "vinyals",
        "split": "test",
        "ways": 5,
        "shots": 1,
        "queries": 15,
        "episodes": 600,
        "seed": 0,
        "mean": mean,
        "ci95": 0.004,
        "train_budget": "100steps",
        "device": "cpu",
        "episodes_digest": "d",
        "protocol_kind": "episodic",
        "side": "",
        "source": "",
        "target": "",
        "adaptation": "none",
        "selection": "{}",
        "report": "accuracy",
        "protocol_note": "",
        "unit": "episode",
        "figures": {},
    }
    run.update(changes)
    return run
