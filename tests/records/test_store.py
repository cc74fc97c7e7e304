"""The results store: runs with real columns and provenance, append-only, with schema migrations."""

import json
import math
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from fewshot.core.errors import FewshotError
from fewshot.records.migrations import APPLICATION_ID, SCHEMA_VERSION, create_v1, v1_to_v2
from fewshot.records.provenance import provenance
from fewshot.records.store import REQUIRED_FIELDS, RUN_FIELDS, ResultsStore, check_writable
from records_helpers import (
    FOREIGN,
    contents,
    disk_full_at,
    first_edition_left_open,
    read_only_media,
    snapshot,
    write_first_edition,
)


def _run(**changes):
    run = {
        "created": "2026-01-01T00:00:00", "learner": "protonet", "hparams": {"lr": 0.001}, "dataset": "glyphs",
        "protocol": "scripts", "split": "test", "ways": 5, "shots": 1, "queries": 15, "episodes": 3, "seed": 0,
        "protocol_kind": "episodic", "mean": 0.5, "ci95": 0.1, "seconds": 1.0, "episodes_per_s": 3.0, "episodes_digest": "abc",
    }  # fmt: skip
    run.update(changes)
    return run


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file in ``folder`` with its bytes and modification time: what "nothing written" compares."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


@pytest.fixture
def store_with_runs(tmp_path) -> ResultsStore:
    folder = tmp_path / "store"
    folder.mkdir()
    store = ResultsStore(folder / "r.sqlite")
    store.record(_run(), [0.5, 1.0, 0.0])
    store.record(_run(learner="finetune", code_commit="0123456789ab", code_dirty=True), [1.0, 1.0, 1.0])
    store.record(
        _run(learner="eszsl", protocol="gzsl", protocol_kind="gzsl", unit="class", side="attributes"),
        [0.25, 0.75],
        figures={"seen": 0.6, "unseen": 0.4, "harmonic": 0.48},
    )
    return store


def test_record_and_read_back(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    first = store.record(_run(), [0.5, 1.0, 0.0])
    second = store.record(_run(learner="finetune"), [1.0, 1.0, 1.0])
    assert second == first + 1
    assert [r["learner"] for r in store.runs()] == ["protonet", "finetune"]
    run = store.run(first)
    assert np.array_equal(run["accuracies"], [0.5, 1.0, 0.0]) and run["hparams"] == '{"lr": 0.001}'
    with sqlite3.connect(tmp_path / "r.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete", "nothing is left beside the file"
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == store.schema_version()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.sqlite"]
    with pytest.raises(FewshotError, match="no run 99"):
        store.run(99)


def test_a_run_leaving_out_optional_fields_gets_their_defaults(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    run = store.run(store.record(_run(transductive=True, selection={"chosen": {"lam": 1.0}, "val_mean": 0.4}), [1.0]))
    assert (run["protocol_kind"], run["adaptation"], run["unit"], run["report"], run["side"]) == (
        "episodic", "none", "episode", "accuracy", "",
    )  # fmt: skip
    assert run["backbone"] is None and run["code_dirty"] is None, "unknown stays unknown"
    assert run["transductive"] == 1 and json.loads(run["selection"]) == {"chosen": {"lam": 1.0}, "val_mean": 0.4}
    assert run["figures"] == {} and run["superseded"] is None and run["created"] == "2026-01-01T00:00:00"


def test_figures_are_recorded_with_the_run(store_with_runs):
    (gzsl,) = [r for r in store_with_runs.runs() if r["learner"] == "eszsl"]
    assert gzsl["figures"] == {"seen": 0.6, "unseen": 0.4, "harmonic": 0.48}
    assert (gzsl["protocol_kind"], gzsl["unit"], gzsl["side"]) == ("gzsl", "class", "attributes")
    assert store_with_runs.run(gzsl["id"])["figures"] == gzsl["figures"]


def test_record_rejects_unknown_fields_and_numbers_that_are_not_finite(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    with pytest.raises(ValueError, match="unknown run fields mode, scores"):
        store.record(_run(mode="episodic", scores={}), [1.0])
    with pytest.raises(ValueError, match="needs episodes_digest"):
        store.record({k: v for k, v in _run().items() if k != "episodes_digest"}, [1.0])
    for bad in (
        {"run": _run(mean=math.nan)},
        {"run": _run(ci95=math.inf)},
        {"run": _run(), "accuracies": [1.0, math.nan]},
        {"run": _run(), "figures": {"seen": math.nan}},
        {"run": _run(hparams={"lr": math.inf})},
    ):
        with pytest.raises(FewshotError, match="finite"):
            store.record(bad["run"], bad.get("accuracies", [1.0]), figures=bad.get("figures"))
    assert not store.path.exists(), "a rejected run writes nothing, not even an empty file"


def test_a_failed_run_leaves_nothing(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    store.record(_run(), [1.0])
    with pytest.raises(TypeError):
        store.record(_run(), [1.0, object()])
    assert len(store.runs()) == 1
    with sqlite3.connect(tmp_path / "r.sqlite") as db:
        assert db.execute("SELECT count(*) FROM episode_results").fetchone()[0] == 1


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    path = tmp_path / "shared.sqlite"
    code = (
        # this module imports conftest, which lives in tests/, one folder up
        f"import sys; sys.path[:0] = [{os.path.dirname(__file__)!r}, {str(Path(__file__).resolve().parents[1])!r}]\n"
        "from test_store import _run\n"
        "from fewshot.records.store import ResultsStore\n"
        f"s = ResultsStore({str(path)!r})\n"
        "for i in range(40): s.record(_run(learner=sys.argv[1], seed=i), [i / 40] * 50)\n"
    )
    writers = [subprocess.Popen([sys.executable, "-c", code, name]) for name in ("a", "b")]
    assert [w.wait(timeout=300) for w in writers] == [0, 0]
    runs = ResultsStore(path).runs()
    assert sorted((r["learner"], r["seed"]) for r in runs) == sorted((n, i) for n in "ab" for i in range(40))
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM episode_results").fetchone()[0] == 80 * 50


def test_reading_changes_nothing_on_disk_even_a_read_only_file(store_with_runs):
    folder = store_with_runs.path.parent
    store_with_runs.supersede(1, "wrong split")
    before = _snapshot(folder)
    os.chmod(store_with_runs.path, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)  # 0444
    try:
        reader = ResultsStore(store_with_runs.path)
        assert [r["id"] for r in reader.runs()] == [2, 3]
        assert reader.run(1)["superseded"]["why"] == "wrong split"
        assert (reader.superseded_count(), reader.schema_version()) == (1, SCHEMA_VERSION)
        check_writable(folder / "other.sqlite")
    finally:
        os.chmod(store_with_runs.path, stat.S_IRUSR | stat.S_IWUSR)
    assert _snapshot(folder) == before, "no -journal, -wal or -shm file, same bytes, same modification time"


def test_reading_a_missing_or_foreign_file_is_one_line_and_creates_nothing(tmp_path):
    with pytest.raises(FewshotError, match="no results at"):
        ResultsStore(tmp_path / "none.sqlite").runs()
    with sqlite3.connect(tmp_path / "other.sqlite") as db:
        db.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
    (tmp_path / "garbage.sqlite").write_bytes(b"this is not sqlite at all" * 100)
    (tmp_path / "empty.sqlite").write_bytes(b"")
    before = _snapshot(tmp_path)
    for name in ("other.sqlite", "garbage.sqlite", "empty.sqlite"):
        with pytest.raises(FewshotError, match="is not a fewshot results file") as error:
            ResultsStore(tmp_path / name).runs()
        assert "\n" not in str(error.value)
    with pytest.raises(FewshotError, match="is not a fewshot results file"):
        ResultsStore(tmp_path / "other.sqlite").record(_run(), [1.0])
    assert _snapshot(tmp_path) == before


def test_a_store_newer_than_the_code_is_refused_and_left_alone(store_with_runs):
    with sqlite3.connect(store_with_runs.path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    folder = store_with_runs.path.parent
    before = _snapshot(folder)
    message = (
        f"has schema version {SCHEMA_VERSION + 1}, newer than this fewshot \\({SCHEMA_VERSION}\\): upgrade fewshot"
    )
    for attempt in (
        store_with_runs.runs,
        lambda: store_with_runs.record(_run(), [1.0]),
        lambda: store_with_runs.supersede(1, "x"),
        lambda: check_writable(store_with_runs.path),
    ):
        with pytest.raises(FewshotError, match=message):
            attempt()
    assert _snapshot(folder) == before


def test_a_superseded_run_is_kept_but_hidden(store_with_runs):
    store_with_runs.supersede(1, "  trained on test classes ", by=2)
    assert [r["id"] for r in store_with_runs.runs()] == [2, 3]
    shown = store_with_runs.runs(include_superseded=True)
    assert [r["id"] for r in shown] == [1, 2, 3] and shown[1]["superseded"] is None
    assert shown[0]["superseded"]["why"] == "trained on test classes" and shown[0]["superseded"]["by"] == 2
    assert store_with_runs.superseded_count() == 1
    assert np.array_equal(store_with_runs.run(1)["accuracies"], [0.5, 1.0, 0.0]), "the run and its episodes stay"


@pytest.mark.parametrize(
    "run_id, why, by, message",
    [
        (99, "x", None, "no run 99"),
        (1, "  ", None, "say why"),
        (1, "x", 1, "cannot supersede itself"),
        (1, "x", 99, "no run 99"),
        (2, "again", None, "already superseded"),
    ],
)
def test_a_bad_supersession_writes_nothing(store_with_runs, run_id, why, by, message):
    store_with_runs.supersede(2, "first time")
    before = _snapshot(store_with_runs.path.parent)
    with pytest.raises(FewshotError, match=message):
        store_with_runs.supersede(run_id, why, by=by)
    assert _snapshot(store_with_runs.path.parent) == before


def test_superseding_an_unknown_run_on_the_command_line(store_with_runs):
    before = _snapshot(store_with_runs.path.parent)
    done = run_cli("runs", "supersede", "999", "--why", "x", "--results", str(store_with_runs.path))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"error: no run 999 in {store_with_runs.path}: `fewshot runs` lists the runs"
    ]
    assert _snapshot(store_with_runs.path.parent) == before


def test_runs_lists_and_supersede_hides(store_with_runs):
    results = ("--results", str(store_with_runs.path))
    listed = run_cli("runs", *results)
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 3
    assert "50.00% ± 10.00" in listed.stdout and "0123456789ab+dirty" in listed.stdout
    done = run_cli("runs", "supersede", "1", "--why", "wrong split", "--by", "2", *results)
    assert done.returncode == 0 and "run 1 superseded by run 2: wrong split" in done.stdout
    before = _snapshot(store_with_runs.path.parent)
    lines = run_cli("runs", *results).stdout.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == ["2", "3"]
    assert lines[-1] == "1 superseded run hidden (--all shows them)"
    everything = run_cli("runs", "--all", *results).stdout.splitlines()
    assert len(everything) == 3 and everything[0].endswith("superseded: wrong split")
    only = run_cli("runs", "--learner", "eszsl", "--json", *results)
    found = json.loads(only.stdout)
    assert [r["id"] for r in found["runs"]] == [3] and found["runs"][0]["figures"]["harmonic"] == 0.48
    assert found["superseded_hidden"] == 0
    assert _snapshot(store_with_runs.path.parent) == before, "listing only reads"


def test_unwritable_results_are_reported_before_any_work(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(FewshotError, match="not a writable folder"):
        check_writable(tmp_path / "afile" / "r.sqlite")
    with pytest.raises(FewshotError, match="not a writable file"):
        check_writable(tmp_path)  # a folder, not a file
    (tmp_path / "bad.sqlite").write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(FewshotError, match="not a fewshot results file"):
        check_writable(tmp_path / "bad.sqlite")
    check_writable(tmp_path / "new" / "r.sqlite")
    assert not (tmp_path / "new").exists(), "checking writes nothing"


def test_every_column_can_be_recorded_and_the_required_fields_are_those_without_a_default(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    store.record(_run(), [1.0])
    with sqlite3.connect(store.path) as db:
        columns = {row[1]: (row[3], row[4]) for row in db.execute("PRAGMA table_info(runs)")}
    assert sorted(RUN_FIELDS) == sorted(set(columns) - {"id"})
    # protocol_kind's column default only serves the migration of first-edition rows: record requires it
    assert {name for name, (not_null, default) in columns.items() if not_null and default is None} == {
        *REQUIRED_FIELDS,
        "created",
    } - {"protocol_kind"}


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@example.org", "-c", "user.name=t", "-C", str(repo), *args],
        check=True,
        capture_output=True,
    )


def _repo(tmp_path: Path, name: str) -> Path:
    """A tiny git repository holding one package, committed."""
    repo = tmp_path / name
    package = repo / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("VALUE = 1\n")
    (repo / ".gitignore").write_text("*.log\n")
    (repo / "results.sqlite").write_bytes(b"runs")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "first")
    return package


def test_provenance_of_a_clean_and_of_a_changed_checkout(tmp_path):
    clean = _repo(tmp_path, "clean")
    (clean.parent / "notes.log").write_text("ignored files do not count")
    (clean.parent / "results.sqlite").write_bytes(b"more runs")  # recording a run is not a change of code
    found = provenance(clean)
    assert len(found["code_commit"]) == 12 and found["code_dirty"] is False
    assert found["code_diff_hash"] is None and found["code_source_hash"] is None
    assert set(found) == {"fewshot_version", "code_commit", "code_dirty", "code_diff_hash", "code_source_hash",
                          "torch_version", "python_version", "host"}  # fmt: skip

    edited, other_edit, untracked = (_repo(tmp_path, name) for name in ("edited", "other_edit", "untracked"))
    (edited / "__init__.py").write_text("VALUE = 2\n")
    (other_edit / "__init__.py").write_text("VALUE = 3\n")
    (untracked / "extra.py").write_text("NEW = 1\n")
    hashes = []
    for package in (edited, other_edit, untracked):
        found = provenance(package)
        assert found["code_dirty"] is True and len(found["code_diff_hash"]) == 16
        hashes.append(found["code_diff_hash"])
    assert len(set(hashes)) == 3, "different changes, different hashes"


def test_provenance_is_computed_once_per_process(tmp_path):
    package = _repo(tmp_path, "repo")
    first = provenance(package)
    (package / "__init__.py").write_text("VALUE = 2\n")
    assert provenance(package) == first


def test_provenance_of_sources_outside_git_hashes_them(tmp_path):
    installed = tmp_path / "site-packages" / "pkg"
    (installed / "sub").mkdir(parents=True)
    (installed / "__init__.py").write_text("VALUE = 1\n")
    (installed / "sub" / "mod.py").write_text("X = 1\n")
    found = provenance(installed)
    assert found["code_commit"] is None and found["code_dirty"] is None and found["code_diff_hash"] is None
    copy = tmp_path / "copy" / "pkg"
    (copy / "sub").mkdir(parents=True)
    (copy / "__init__.py").write_text("VALUE = 1\n")
    (copy / "sub" / "mod.py").write_text("X = 2\n")
    assert len(found["code_source_hash"]) == 16 and provenance(copy)["code_source_hash"] != found["code_source_hash"]


@pytest.mark.parametrize("kind", sorted(FOREIGN))
def test_a_file_that_is_not_a_store_is_refused_by_readers_and_writers_and_left_as_it_was(tmp_path, kind):
    path = tmp_path / "results.sqlite"
    FOREIGN[kind](path)
    before = snapshot(tmp_path)
    store = ResultsStore(path)
    for attempt in (
        store.runs,
        store.schema_version,
        lambda: check_writable(path),
        lambda: store.record(_run(), [1.0]),
        lambda: store.supersede(1, "x"),
        store.migrate,
    ):
        with pytest.raises(FewshotError) as error:
            attempt()
        assert str(error.value).startswith(f"{path} is not a fewshot results file (") and "\n" not in str(error.value)
    assert snapshot(tmp_path) == before, "the same bytes, the same time, and nothing beside it"


def test_a_store_is_marked_and_an_unmarked_one_is_marked_by_its_next_write(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    store.record(_run(), [1.0])
    assert [p.name for p in tmp_path.iterdir()] == ["r.sqlite"], "made under another name: nothing else left"
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o666 & ~_umask(), "the mode any new file gets"
    with sqlite3.connect(store.path) as db:
        marks = [db.execute(f"PRAGMA {name}").fetchone()[0] for name in ("application_id", "user_version")]
        assert marks == [APPLICATION_ID, SCHEMA_VERSION] and APPLICATION_ID.to_bytes(4, "big") == b"FSHT"
    old = ResultsStore(tmp_path / "old" / "r.sqlite")
    old.path.parent.mkdir()
    with sqlite3.connect(old.path) as db:  # a version 2 store, as written before stores were marked
        create_v1(db)
        v1_to_v2(db)
        db.execute("PRAGMA user_version = 2")
    before = snapshot(old.path.parent)
    assert old.runs() == [] and old.schema_version() == 2
    assert snapshot(old.path.parent) == before, "reading an unmarked store does not mark it"
    old.record(_run(), [1.0])
    with sqlite3.connect(old.path) as db:
        assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# A writer in another process whose files cannot grow past a limit, as on a full disk; it prints what it raised.
_LIMITED_WRITER = """
import sys
from test_store import _run
from fewshot.core.errors import FewshotError
from fewshot.records.store import ResultsStore
store = ResultsStore(sys.argv[1])
try:
    store.record(_run(), [0.5] * 20000) if sys.argv[2] == "record" else store.supersede(1, "x" * 200000)
except FewshotError as error:
    print(error)
    sys.exit(2)
"""


def _write_on_a_full_disk(path: Path, action: str, limit: int) -> subprocess.CompletedProcess:
    here = os.path.dirname(__file__)
    code = f"import sys; sys.path[:0] = [{here!r}, {str(Path(here).parent)!r}]\n{_LIMITED_WRITER}"
    return subprocess.run(
        [sys.executable, "-c", code, str(path), action],
        capture_output=True,  # pipes: a full disk does not stop what the child prints
        text=True,
        preexec_fn=disk_full_at(limit),
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        timeout=300,
    )


@pytest.mark.parametrize(
    "kind, action",
    [("new", "record"), ("store", "record"), ("store", "supersede"), ("first edition", "record"),
     ("first edition", "supersede")],
)  # fmt: skip
def test_a_full_disk_at_any_moment_of_a_write_is_one_line_and_leaves_the_store_as_it_was(tmp_path, kind, action):
    """The file may not grow at all, or its journal may fill at any of several points; each time the store is as it
    was. (A limit below the file's own size would also stop SQLite overwriting pages in place, which no full disk
    does; SQLite then leaves its journal for the next opener to roll back.)
    """
    path = tmp_path / "r.sqlite"
    if kind == "store":
        ResultsStore(path).record(_run(), [1.0] * 3000)
    elif kind == "first edition":
        write_first_edition(path)
    size = path.stat().st_size if path.exists() else 0
    before, rows = snapshot(tmp_path), contents(path) if path.exists() else None
    for limit in sorted({0, 4096, size, size + 30000}):
        done = _write_on_a_full_disk(path, action, limit)
        assert done.returncode == 2, (limit, done.stdout, done.stderr)
        assert done.stdout.startswith(f"could not write results to {path}: the disk is full"), (limit, done.stdout)
        assert done.stdout.count("\n") == 1 and done.stderr == ""
        after = snapshot(tmp_path)
        assert sorted(after) == sorted(before), f"no -journal, -wal or -shm left (limit {limit})"
        if kind == "first edition":  # its header may have switched from WAL to the rollback journal, its rows not
            assert contents(path) == rows, f"the same rows (limit {limit})"
        else:
            # SQLite wrote pages and then put back the old ones from its journal: the same bytes, a new time
            assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}, f"limit {limit}"
    assert _write_on_a_full_disk(path, action, 2**40).returncode == 0, "with room to grow, the same write succeeds"


@pytest.mark.parametrize("kind", ["store", "first edition", "first edition with its -wal"])
def test_a_store_on_read_only_media_is_read_and_not_written(tmp_path, kind):
    folder = tmp_path / "media"
    folder.mkdir()
    path = folder / "r.sqlite"
    if kind == "store":
        store = ResultsStore(path)
        store.record(_run(), [0.5, 1.0, 0.0])
        store.record(_run(learner="in the wal"), [1.0])
        store.supersede(1, "wrong split")
    elif kind == "first edition":
        write_first_edition(path)
    else:
        first_edition_left_open(path)
    before = snapshot(folder)
    with read_only_media(folder):
        reader = ResultsStore(path)
        assert ("protonet" if kind == "first edition" else "in the wal") in {r["learner"] for r in reader.runs()}
        assert reader.run(1)["id"] == 1 and reader.superseded_count() == (kind == "store")
        assert reader.schema_version() == (SCHEMA_VERSION if kind == "store" else 1)
        for write in (lambda: reader.record(_run(), [1.0]), lambda: check_writable(path)):
            with pytest.raises(FewshotError, match=f"cannot write results to {path}"):
                write()
    assert snapshot(folder) == before, "nothing made beside it, nothing changed"
