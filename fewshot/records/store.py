"""The results store: one SQLite file, append-only, one transaction per write.

A run is recorded whole or not at all: its row, its figures and its per-episode
accuracies go in one transaction, so several processes may write at once (SQLite's
busy timeout queues them) and an interrupted process leaves nothing half-written.
Rows are only ever inserted; a wrong run is superseded, never deleted.

Only a store is touched: one carries fewshot's mark (migrations.APPLICATION_ID),
or, written before the mark, exactly a store's tables. Any other file is refused
before it is opened for writing, and left as it was; a store is made only by a
writer, where no file is, under another name and then linked in whole.

Reading never writes: readers open the file read-only, and a file of an older
schema is migrated in a copy in memory. On read-only media, where SQLite could
not make the -shm a WAL file needs, the file is read from a private copy.
Writers migrate an older file in place, inside the transaction of the write,
and leave it in the default rollback-journal mode, so nothing lingers beside the
file and a read-only copy stays readable. A full disk at any moment of a write is
one line, and the store is as it was.
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import math
import numbers
import os
import secrets
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import numpy as np

from fewshot.core.errors import FewshotError
from fewshot.records.migrations import SCHEMA_VERSION, check_store, create, migrate, not_a_store

T = TypeVar("T")

# What `record` needs in every run; each is a NOT NULL column with no default.
REQUIRED_FIELDS = (
    "learner", "hparams", "dataset", "protocol", "split", "ways", "shots", "queries", "episodes", "seed",
    "protocol_kind", "mean", "ci95", "seconds", "episodes_per_s", "episodes_digest",
)  # fmt: skip

# The rest, with the value a run that leaves one out (or gives None) gets.
OPTIONAL_FIELDS: dict[str, Any] = {
    "created": None,  # None: now, in UTC
    "train_budget": None,
    "train_steps": None,
    "train_seconds": None,
    "checkpoint": None,
    "fewshot_version": None,
    "code_commit": None,
    "torch_version": None,
    "device": None,
    "host": None,
    "extra": {},  # only for what no code reads
    "side": "",
    "source": "",
    "target": "",
    "adaptation": "none",
    "adaptation_hparams": {},
    "target_labels": 0,
    "selection": {},
    "backbone": None,
    "transductive": None,
    "protocol_note": "",
    "report": "accuracy",
    "threads": None,
    "embedding_cache": None,
    "unit": "episode",
    "code_dirty": None,
    "code_diff_hash": None,
    "code_source_hash": None,
    "python_version": None,
    "job_key": None,  # a sweep's job identity (its words and the code); None for a run recorded by hand
    "job_words": None,  # the key of the job's words alone
}

RUN_FIELDS = REQUIRED_FIELDS + tuple(OPTIONAL_FIELDS)

_INTEGER_FIELDS = {"ways", "shots", "queries", "episodes", "seed", "train_steps", "target_labels", "threads"}
_FLAG_FIELDS = {"transductive", "code_dirty"}
_REAL_FIELDS = {"mean", "ci95", "seconds", "episodes_per_s", "train_seconds"}
_JSON_FIELDS = {"hparams", "adaptation_hparams", "selection", "extra"}


def check_writable(path: Path) -> None:
    """Fail early, before any work is done, if results could not be recorded at ``path``; changes nothing."""
    path = Path(path)
    if path.exists():
        if path.is_dir() or not os.access(path, os.W_OK):
            raise FewshotError(f"cannot write results to {path}: not a writable file; choose another with --results")
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise FewshotError(
                f"cannot write results to {path}: its folder is not writable, and a write keeps its journal beside "
                "the file; choose another with --results"
            )
        _recognise(path)
        return
    parent = next((p for p in path.parents if p.exists()), None)
    if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise FewshotError(
            f"cannot write results to {path}: {parent} is not a writable folder; choose another with --results"
        )


def _recognise(path: Path) -> int:
    """The schema version of the store at ``path``, read without writing; FewshotError if it is no store of ours."""
    with closing(_connect_read_only(path)) as db:
        return _checked(path, lambda: check_store(db, str(path)))


def _error_name(err: BaseException) -> str:
    """SQLite's name for the error (SQLITE_FULL, SQLITE_IOERR_WRITE, ...), from its message where Python < 3.11."""
    name = getattr(err, "sqlite_errorname", None)
    if name:
        return str(name)
    text = str(err)
    by_message = {
        "database or disk is full": "SQLITE_FULL",
        "disk I/O error": "SQLITE_IOERR",
        "file is not a database": "SQLITE_NOTADB",
        "database disk image is malformed": "SQLITE_CORRUPT",
        "database is locked": "SQLITE_BUSY",
        "unable to open database file": "SQLITE_CANTOPEN",
        "attempt to write a readonly database": "SQLITE_READONLY",
    }
    return by_message.get(text, "")


def _problem(path: Path, err: sqlite3.Error | OSError, writing: bool) -> FewshotError:
    """The command line's one line for what went wrong with the file at ``path``."""
    if isinstance(err, OSError):
        name, text = ("SQLITE_FULL" if err.errno in _DISK_FULL else ""), err.strerror or str(err)
    else:
        name, text = _error_name(err), str(err)
    if name.startswith(("SQLITE_FULL", "SQLITE_IOERR")):
        if writing:
            return FewshotError(
                f"could not write results to {path}: the disk is full or the file cannot grow ({text}); nothing was "
                "written: free some space, or choose another file with --results"
            )
        return FewshotError(f"could not read results file {path} ({text}); check the disk, or copy the file elsewhere")
    if name == "SQLITE_NOTADB":
        return not_a_store(str(path), text)
    if name.startswith("SQLITE_CORRUPT"):
        return FewshotError(f"results file {path} is damaged ({text}); restore it from a copy, or choose another")
    if name.startswith("SQLITE_READONLY") and writing:
        return FewshotError(f"cannot write results to {path}: it is read-only ({text}); choose another with --results")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return FewshotError(f"results file {path} is locked by another process ({text}); try again when it is done")
    return FewshotError(f"cannot use results file {path} ({text}); choose another with --results")


_DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def _not_utf8(path: Path) -> FewshotError:
    """A damaged file's text (a row, or the schema SQLite quotes in its complaint) that is not UTF-8, which Python's
    sqlite3 cannot even decode: SQLite stores no checksums, so this is how some damage shows."""
    return FewshotError(
        f"results file {path} is damaged (text in it is not UTF-8); restore it from a copy, or choose another"
    )


# The Python values a column's declared type admits: SQLite checks no types, and a damaged page can read as a row
# whose NOT NULL number is NULL or text, which every reader of runs would trip over.
_KINDS: dict[str, tuple[type, ...]] = {"INTEGER": (int,), "REAL": (int, float), "TEXT": (str,)}


def _check_rows(path: Path, db: sqlite3.Connection, table: str, rows: list[sqlite3.Row]) -> None:
    """Refuse, in one line, rows of ``table`` whose values do not have the types (and NOT NULL) its schema declares."""
    declared = [
        (c[1], c[2].split()[0].upper() if c[2] else "", bool(c[3])) for c in db.execute(f"PRAGMA table_info({table})")
    ]
    for row in rows:
        for column, kind, not_null in declared:
            value = row[column]
            wrong = value is None if not_null else False
            if value is not None and kind in _KINDS:
                wrong = isinstance(value, bool) or not isinstance(value, _KINDS[kind])
            if wrong:
                raise _damaged_row(path, table, row["id"], column)


def _damaged_row(path: Path, table: str, run_id: Any, column: str) -> FewshotError:
    return FewshotError(
        f"results file {path} is damaged (run {run_id}'s {column} in {table} is not what the schema declares); "
        "restore it from a copy, or choose another"
    )


def _checked(path: Path, action: Callable[[], T], writing: bool = False) -> T:
    """``action()``, with SQLite's complaint about the file turned into the command line's one-line error."""
    try:
        return action()
    except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError):
        raise  # a bug in this code, not a problem with the file
    except sqlite3.DatabaseError as err:  # not SQLite at all, damaged, locked past the busy timeout, disk full
        raise _problem(path, err, writing) from None
    except UnicodeDecodeError:
        raise _not_utf8(path) from None


def _read_only_uri(path: Path) -> str:
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    # A WAL-mode file opened read-only still gets -wal and -shm files created beside it. When no writer has left a
    # -wal file, the database file alone holds every committed row and may be opened immutable, which touches nothing.
    if _in_wal_mode(path) and not Path(f"{path}-wal").exists():
        uri += "&immutable=1"
    return uri


def _in_wal_mode(path: Path) -> bool:
    """Whether the file's header says WAL (its read and write format bytes, offsets 18 and 19, are 2)."""
    with open(path, "rb") as f:
        header = f.read(20)
    return len(header) == 20 and header[18] == 2 and header[19] == 2


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that reads ``path`` and writes nothing, not even beside it.

    On read-only media SQLite cannot make the -shm a WAL file's -wal needs, and a read-only connection cannot roll
    back a crashed writer's -journal; then the file and those beside it are copied to a private folder and read from
    there, into memory.
    """
    try:
        db = sqlite3.connect(_read_only_uri(path), uri=True, timeout=60, isolation_level=None)
    except sqlite3.Error as err:
        raise _problem(path, err, writing=False) from None
    except OSError as err:
        raise FewshotError(f"cannot read results file {path} ({err}); choose another with --results") from None
    try:
        db.execute("PRAGMA busy_timeout = 60000")
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opens the file now
        return db
    except sqlite3.DatabaseError as err:
        db.close()
        if not _error_name(err).startswith(("SQLITE_CANTOPEN", "SQLITE_READONLY")):
            raise _problem(path, err, writing=False) from None
    except UnicodeDecodeError:
        db.close()
        raise _not_utf8(path) from None
    except BaseException:
        db.close()
        raise
    return _checked(path, lambda: _read_a_copy(path))


def _read_a_copy(path: Path) -> sqlite3.Connection:
    """The store at ``path`` in memory, read from a copy of it (and its -wal or -journal) in a private folder."""
    memory = sqlite3.connect(":memory:", isolation_level=None)
    try:
        with tempfile.TemporaryDirectory(prefix="fewshot-read-") as folder:
            for suffix in ("", "-wal", "-journal"):
                if Path(f"{path}{suffix}").exists():
                    shutil.copyfile(f"{path}{suffix}", Path(folder, path.name + suffix))
            with closing(sqlite3.connect(Path(folder, path.name), isolation_level=None)) as copy:
                copy.backup(memory)
    except OSError as err:
        memory.close()
        raise FewshotError(f"cannot read results file {path} ({err}); choose another with --results") from None
    except BaseException:
        memory.close()
        raise
    return memory


def _link_new(temporary: Path, path: Path) -> None:
    """Give the finished file ``temporary`` the name ``path``, unless something has that name: FileExistsError."""
    try:
        os.link(temporary, path)
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK) or path.exists():
            raise
        os.replace(temporary, path)  # a file system without hard links: two writers could race in this moment


def _connect(path: Path) -> sqlite3.Connection:
    """A connection that may write the existing file ``path``, and never creates it."""
    db = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=rw", uri=True, timeout=60, isolation_level=None)
    db.execute("PRAGMA busy_timeout = 60000")
    db.execute("PRAGMA foreign_keys = ON")  # a figure or a supersession can only name a run that exists
    return db


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _finite(name: str, value: Any) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise FewshotError(f"cannot record {name} = {number}: results must be finite numbers")
    return number


def _json_text(name: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False)
    except ValueError:
        raise FewshotError(f"cannot record {name}: it holds a number that is not finite") from None


def run_row(run: dict[str, Any]) -> dict[str, Any]:
    """The ``runs`` row for ``run``: every field, with defaults filled in and values of the column's type."""
    unknown = sorted(set(run) - set(RUN_FIELDS))
    if unknown:
        raise ValueError(f"unknown run fields {', '.join(unknown)}; known: {', '.join(RUN_FIELDS)}")
    missing = [k for k in REQUIRED_FIELDS if run.get(k) is None]
    if missing:
        raise ValueError(f"a run needs {', '.join(missing)}")
    row = {k: run[k] if run.get(k) is not None else OPTIONAL_FIELDS.get(k) for k in RUN_FIELDS}
    row["created"] = row["created"] or _now()
    for name, value in row.items():
        if value is None:
            continue
        if name in _INTEGER_FIELDS:
            if not isinstance(value, numbers.Integral):
                raise ValueError(f"run field {name} must be a whole number, not {value!r}")
            row[name] = int(value)
        elif name in _FLAG_FIELDS:
            row[name] = int(bool(value))
        elif name in _REAL_FIELDS:
            row[name] = _finite(name, value)
        elif name in _JSON_FIELDS:
            row[name] = _json_text(name, value)
    return row


class ResultsStore:
    """Runs in one SQLite file: ``record`` and ``supersede`` write, everything else only reads."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def _missing(self) -> FewshotError:
        return FewshotError(
            f"no results at {self.path}: run `fewshot eval` first, or point --results at a results file"
        )

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection (:meth:`_open_for_reading`), closed after; SQLite's complaint about a damaged file
        met while reading it (not only while opening it) is the command line's one line."""
        try:
            with closing(self._open_for_reading()) as db:
                yield db
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError):
            raise  # a bug in this code, not a problem with the file
        except sqlite3.DatabaseError as err:
            raise _problem(self.path, err, writing=False) from None
        except UnicodeDecodeError:
            raise _not_utf8(self.path) from None

    def _open_for_reading(self) -> sqlite3.Connection:
        """A read-only connection to the runs at the newest schema; an older file is migrated in a copy in memory."""
        if not self.path.exists():
            raise self._missing()
        source = _connect_read_only(self.path)
        try:
            version = _checked(self.path, lambda: check_store(source, str(self.path)))
            if version == SCHEMA_VERSION:
                db = source
            else:
                db = sqlite3.connect(":memory:", isolation_level=None)
                _checked(self.path, lambda: source.backup(db))
                source.close()
                db.execute("BEGIN IMMEDIATE")
                migrate(db, str(self.path))
                db.execute("COMMIT")
        except BaseException:
            source.close()
            raise
        db.row_factory = sqlite3.Row
        return db

    def _write(self, create: bool, action: Callable[[sqlite3.Connection], T]) -> T:
        """``action(db)`` in one transaction, after migrating an older file in that same transaction.

        Whatever fails, nothing is written: not the action's rows and not the migration. A file that is not a
        store is refused before it is opened for writing; a missing one is made, with the action done in it, whole
        or not at all.
        """
        if not create and not self.path.exists():
            raise self._missing()
        check_writable(self.path)  # a foreign or read-only file, or a folder where nothing can be made: refused now
        if not self.path.exists():
            made = self._create(action)
            if made is not None:
                return made[0]
        try:
            db = _connect(self.path)
        except sqlite3.Error as err:
            raise _problem(self.path, err, writing=True) from None
        try:
            with closing(db):
                _checked(self.path, lambda: self._leave_wal_mode(db, self.path), writing=True)
                _checked(self.path, lambda: db.execute("BEGIN IMMEDIATE"), writing=True)
                try:
                    _checked(self.path, lambda: migrate(db, str(self.path)), writing=True)
                    outcome = _checked(self.path, lambda: action(db), writing=True)
                    _checked(self.path, lambda: db.execute("COMMIT"), writing=True)
                except BaseException:
                    if db.in_transaction:
                        with suppress(sqlite3.Error):  # an I/O error: the journal rolls it back below
                            db.execute("ROLLBACK")
                    raise
        except BaseException:
            self._roll_back_interrupted_write()
            raise
        return outcome

    def _roll_back_interrupted_write(self) -> None:
        """After an I/O error SQLite leaves the rollback journal beside the file, half-written pages in it undone
        only when the file is next opened; open it now, so the file is as it was and the journal is gone.
        """
        if not Path(f"{self.path}-journal").exists():
            return
        with suppress(sqlite3.Error), closing(_connect(self.path)) as db:  # if this fails too, the next opener does it
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()

    def _create(self, action: Callable[[sqlite3.Connection], T]) -> tuple[T] | None:
        """``(action(db),)`` done in a new store at ``self.path``, built under another name and linked in whole.

        None if another writer made a store there first: then nothing was done, and the write goes into that store.
        """
        folder = self.path.parent
        temporary = folder / f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.new"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            with closing(sqlite3.connect(temporary, isolation_level=None)) as db:
                db.execute("PRAGMA foreign_keys = ON")
                db.execute("BEGIN IMMEDIATE")
                create(db)
                outcome = action(db)
                db.execute("COMMIT")
            _link_new(temporary, self.path)
        except FileExistsError:
            return None
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError):
            raise  # a bug in this code, not a problem with the file
        except (sqlite3.Error, OSError) as err:
            raise _problem(self.path, err, writing=True) from None
        finally:
            for leftover in (temporary, Path(f"{temporary}-journal")):
                leftover.unlink(missing_ok=True)
        return (outcome,)

    @staticmethod
    def _leave_wal_mode(db: sqlite3.Connection, path: Path) -> None:
        """Switch a first-edition WAL file to the rollback journal before writing, so nothing lingers beside it.

        In exclusive locking mode SQLite keeps the WAL index in memory, so even a full disk leaves no -shm file.
        """
        if not _in_wal_mode(path):
            return
        db.execute("PRAGMA locking_mode = EXCLUSIVE")  # before the file is read: no -shm file is made
        try:
            db.execute("PRAGMA journal_mode = DELETE")
        except sqlite3.OperationalError as err:
            if not _error_name(err).startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
                raise
            # Another process holds the file open in WAL mode: write in WAL mode; a later writer switches it.
        db.execute("PRAGMA locking_mode = NORMAL")

    def record(self, run: dict[str, Any], accuracies: Iterable[float], figures: dict[str, float] | None = None) -> int:
        """Insert a run, its per-unit accuracies and its extra figures in one transaction; returns the run id.

        ``run`` holds the REQUIRED_FIELDS and any of the OPTIONAL_FIELDS (a missing or None one gets its default);
        hparams, adaptation_hparams, selection and extra may be dicts (stored as JSON). ``figures`` are a protocol's
        extra numbers by name (gzsl: seen, unseen, harmonic, ...). An unknown field is a ValueError; a number that is
        not finite is a FewshotError, and nothing is written.
        """
        return self._record(run, accuracies, figures)[0]

    def record_job(
        self,
        job_key: str,
        job_words: str,
        run: dict[str, Any],
        accuracies: Iterable[float],
        figures: dict[str, float] | None = None,
    ) -> tuple[int, bool]:
        """Record a sweep job's run unless a run with ``job_key`` is already stored (another sweep on the same
        store may have recorded it first): (the run's id, whether this call recorded it)."""
        return self._record({**run, "job_key": job_key, "job_words": job_words}, accuracies, figures)

    def _record(
        self, run: dict[str, Any], accuracies: Iterable[float], figures: dict[str, float] | None
    ) -> tuple[int, bool]:
        row = run_row(run)
        scores = [_finite(f"accuracy of episode {i}", a) for i, a in enumerate(accuracies)]
        named = {str(name): _finite(f"figure {name}", value) for name, value in (figures or {}).items()}

        def insert(db: sqlite3.Connection) -> tuple[int, bool]:
            if row["job_key"] is not None:
                earlier = db.execute("SELECT id FROM runs WHERE job_key = ?", (row["job_key"],)).fetchone()
                if earlier is not None:
                    return int(earlier[0]), False
            cursor = db.execute(
                f"INSERT INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values())
            )
            assert cursor.lastrowid is not None, "an INSERT sets the row id"
            run_id = int(cursor.lastrowid)
            db.executemany(
                "INSERT INTO episode_results (run_id, episode, accuracy) VALUES (?, ?, ?)",
                [(run_id, i, a) for i, a in enumerate(scores)],
            )
            db.executemany(
                "INSERT INTO run_figures (run_id, name, value) VALUES (?, ?, ?)",
                [(run_id, name, value) for name, value in named.items()],
            )
            return run_id, True

        return self._write(create=True, action=insert)

    def record_failure(self, job_key: str, job: dict[str, Any], error: str) -> None:
        """Note that a sweep job failed, with its one-line error; a later sweep tries the job again."""
        text = _json_text("job", job)

        def insert(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO job_failures (job_key, job, error, created) VALUES (?, ?, ?, ?)",
                (job_key, text, error, _now()),
            )

        self._write(create=True, action=insert)

    def job_keys(self, column: str = "job_key") -> set[str]:
        """The job keys (``job_key``) or words keys (``job_words``) of every stored run, superseded ones too:
        the same job on the same code is not run again."""
        if column not in ("job_key", "job_words"):
            raise ValueError(f"no job key column {column!r}")
        if not self.path.exists():
            return set()
        with self._reading() as db:
            return {row[0] for row in db.execute(f"SELECT {column} FROM runs WHERE {column} IS NOT NULL")}

    def failures(self) -> list[dict[str, Any]]:
        """Every failed sweep job, oldest first: job_key, job (its words), error, created."""
        if not self.path.exists():
            return []
        with self._reading() as db:
            rows = db.execute("SELECT job_key, job, error, created FROM job_failures ORDER BY id").fetchall()
        return [{**dict(row), "job": json.loads(row["job"])} for row in rows]

    def supersede(self, run_id: int, why: str, by: int | None = None) -> None:
        """Mark run ``run_id`` superseded, because ``why``, optionally by run ``by``; the run itself stays."""
        for needed in (run_id, by):
            if needed is not None:
                self._check_id(needed)
        why = why.strip()
        if not why:
            raise FewshotError("say why the run is superseded: --why TEXT")
        if by is not None and by == run_id:
            raise FewshotError(f"run {run_id} cannot supersede itself: --by names the run that replaces it")

        def insert(db: sqlite3.Connection) -> None:
            for needed in (run_id, by):
                if needed is not None and not db.execute("SELECT 1 FROM runs WHERE id = ?", (needed,)).fetchone():
                    raise FewshotError(f"no run {needed} in {self.path}: `fewshot runs` lists the runs")
            earlier = db.execute("SELECT why FROM supersessions WHERE run_id = ?", (run_id,)).fetchone()
            if earlier is not None:
                raise FewshotError(f"run {run_id} is already superseded ({earlier[0]}); `fewshot runs --all` shows it")
            db.execute(
                "INSERT INTO supersessions (run_id, why, created, superseded_by) VALUES (?, ?, ?, ?)",
                (run_id, why, _now(), by),
            )

        self._write(create=False, action=insert)

    def migrate(self) -> None:
        """Bring the file on disk to the newest schema now (every write does this first anyway)."""
        self._write(create=False, action=lambda db: None)

    def schema_version(self) -> int:
        """The schema version of the file as it is on disk (reading never migrates it)."""
        if not self.path.exists():
            raise self._missing()
        return _recognise(self.path)

    def runs(self, include_superseded: bool = False) -> list[dict[str, Any]]:
        """Every run's row, oldest first, with its ``figures`` and ``superseded`` (None, or why, when and by)."""
        with self._reading() as db:
            return self._runs(db, "" if include_superseded else "WHERE s.run_id IS NULL", ())

    def run(self, run_id: int) -> dict[str, Any]:
        """One run (superseded or not), with its ``figures``, ``superseded`` and per-unit ``accuracies``."""
        self._check_id(run_id)
        with self._reading() as db:
            found = self._runs(db, "WHERE runs.id = ?", (run_id,))
            if not found:
                raise FewshotError(f"no run {run_id} in {self.path}: `fewshot runs` lists the runs")
            accuracies = [
                r[0]
                for r in db.execute("SELECT accuracy FROM episode_results WHERE run_id = ? ORDER BY episode", (run_id,))
            ]
        if not all(isinstance(a, (int, float)) for a in accuracies):
            raise _damaged_row(self.path, "episode_results", run_id, "accuracy")
        return {**found[0], "accuracies": np.array(accuracies, dtype=np.float64)}

    def _check_id(self, run_id: int) -> None:
        """Run ids are SQLite integers (64 bits): a larger one names no run, and SQLite cannot even be asked."""
        if not -(2**63) <= run_id < 2**63:
            raise FewshotError(f"no run {run_id} in {self.path}: `fewshot runs` lists the runs")

    def superseded_count(self) -> int:
        """How many runs are superseded (and so hidden from ``runs()``)."""
        with self._reading() as db:
            return int(db.execute("SELECT count(*) FROM supersessions").fetchone()[0])

    def _runs(self, db: sqlite3.Connection, where: str, parameters: tuple[Any, ...]) -> list[dict[str, Any]]:
        rows = db.execute(
            "SELECT runs.*, s.why AS _why, s.created AS _superseded_on, s.superseded_by AS _by "
            f"FROM runs LEFT JOIN supersessions s ON s.run_id = runs.id {where} ORDER BY runs.id",
            parameters,
        ).fetchall()
        _check_rows(self.path, db, "runs", rows)
        figures: dict[int, dict[str, float]] = {}
        for run_id, name, value in db.execute("SELECT run_id, name, value FROM run_figures ORDER BY run_id, rowid"):
            figures.setdefault(run_id, {})[name] = value
        found = []
        for row in rows:
            run = dict(row)
            why, on, by = run.pop("_why"), run.pop("_superseded_on"), run.pop("_by")
            run["figures"] = figures.get(run["id"], {})
            run["superseded"] = None if why is None else {"why": why, "created": on, "by": by}
            found.append(run)
        return found
