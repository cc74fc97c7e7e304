"""Schema migrations: the first edition's committed results file migrates whole, and reading never writes it."""

import json
import sqlite3
from pathlib import Path

import pytest

from conftest import REPO, run_cli
from fewshot.records.migrations import SCHEMA_VERSION, V1_RUN_COLUMNS, V1_SCHEMA
from fewshot.records.store import ResultsStore
from records_helpers import snapshot, write_first_edition


@pytest.fixture
def v1_store(tmp_path) -> Path:
    """A copy of the first edition's committed results file, alone in a folder."""
    folder = tmp_path / "v1"
    folder.mkdir()
    return write_first_edition(folder / "results.sqlite")


def _contents(path: Path) -> dict:
    """What migrating must keep: every run's first-edition columns and every per-episode accuracy."""
    with sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True) as db:
        runs = db.execute("SELECT * FROM runs ORDER BY id").fetchall()
        columns = [d[0] for d in db.execute("SELECT * FROM runs LIMIT 0").description]
        old = [dict(zip(columns, row)) for row in runs]
        return {
            "runs": [{k: run[k] for k in columns if k in V1_RUN_COLUMNS} for run in old],
            "run_count": len(runs),
            "episode_rows": db.execute("SELECT count(*) FROM episode_results").fetchone()[0],
            "episodes": db.execute("SELECT run_id, episode, accuracy FROM episode_results ORDER BY 1, 2").fetchall(),
            "sum_of_means": db.execute("SELECT sum(mean) FROM runs").fetchone()[0],
        }


def test_the_first_edition_file_migrates_with_every_run_kept(v1_store):
    before = _contents(v1_store)
    assert (before["run_count"], before["episode_rows"]) == (198, 64352), "the file as committed at 19b080c"
    assert ResultsStore(v1_store).schema_version() == 1
    ResultsStore(v1_store).migrate()
    after = _contents(v1_store)
    assert after == before, "same runs, same columns, same episodes, same means"
    assert after["sum_of_means"] == pytest.approx(133.62605092337014, abs=0)
    with sqlite3.connect(v1_store) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert sorted(p.name for p in v1_store.parent.iterdir()) == ["results.sqlite"], "no -wal or -shm left"
    runs = ResultsStore(v1_store).runs()
    assert [r["id"] for r in runs] == [r["id"] for r in before["runs"]]
    assert {r["id"]: r["extra"] for r in runs} == {r["id"]: r["extra"] for r in before["runs"]}, "extra is kept as is"


def test_columns_are_filled_from_what_old_runs_recorded(v1_store):
    ResultsStore(v1_store).migrate()
    store = ResultsStore(v1_store)
    by_id = {r["id"]: r for r in store.runs()}
    extras = {i: json.loads(r["extra"]) for i, r in by_id.items()}

    images = next(i for i, e in extras.items() if e.get("mode") == "images" and e.get("adapt") == "ddc")
    run = by_id[images]
    assert (run["protocol_kind"], run["unit"], run["adaptation"]) == ("images", "image-batch", "ddc")
    assert (run["source"], run["target"]) == (extras[images]["source"], extras[images]["target"]) != ("", "")
    assert json.loads(run["adaptation_hparams"]) == extras[images]["adapt_hparams"]
    assert run["figures"] == {}, "an images run's scores are only its mean and interval, columns already"

    gzsl = by_id[45]  # ESZSL on glyphs gzsl: all-classes with a harmonic mean
    assert (gzsl["protocol_kind"], gzsl["unit"], gzsl["side"]) == ("gzsl", "class", "attributes")
    assert gzsl["figures"] == {k: v for k, v in extras[45]["scores"].items() if k not in ("mean", "ci95")}
    assert json.loads(gzsl["selection"]) == extras[45]["selection"]
    assert by_id[44]["protocol_kind"] == "all-classes" and by_id[44]["unit"] == "class"

    sequences = by_id[16]  # MANN, per-instance
    assert (sequences["protocol_kind"], sequences["unit"]) == ("per-instance", "sequence")
    assert [sequences["figures"][f"presentation_{k}"] for k in range(1, 11)] == extras[16]["presentation_accuracy"]
    assert [sequences["figures"][f"presentation_{k}_ci95"] for k in range(1, 11)] == extras[16]["presentation_ci95"]

    first = by_id[1]  # recorded before runs said their mode
    assert (first["protocol_kind"], first["adaptation"], first["threads"], first["embedding_cache"]) == (
        "episodic", "none", 1, "computed",
    )  # fmt: skip
    assert by_id[10]["report"] == "error"
    assert all(r["backbone"] is None and r["transductive"] is None and r["code_dirty"] is None for r in by_id.values())
    assert store.superseded_count() == 0


def test_reading_the_first_edition_file_migrates_a_copy_in_memory_and_writes_nothing(v1_store):
    before = snapshot(v1_store.parent)
    read = ResultsStore(v1_store).runs()
    one = ResultsStore(v1_store).run(45)
    assert snapshot(v1_store.parent) == before, "a WAL file read read-only: no -wal or -shm, same bytes and time"
    ResultsStore(v1_store).migrate()
    assert ResultsStore(v1_store).runs() == read
    assert one["figures"]["harmonic"] == pytest.approx(0.1606222561403412)


def test_leaderboard_and_compare_change_nothing_on_disk(v1_store):
    ResultsStore(v1_store).migrate()
    before = snapshot(v1_store.parent)
    board = run_cli("leaderboard", "--results", str(v1_store))
    assert board.returncode == 0 and "protonet" in board.stdout
    compared = run_cli("compare", "1", "3", "--results", str(v1_store))
    assert compared.returncode == 0 and "on 600 identical episodes" in compared.stdout
    assert snapshot(v1_store.parent) == before


def test_a_run_with_unreadable_extra_migrates_with_defaults(tmp_path):
    path = tmp_path / "r.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(V1_SCHEMA)
        for extra in ("{not json", None, "[1, 2]", '{"mode": "images", "threads": "many", "scores": {"x": "y"}}'):
            db.execute(
                "INSERT INTO runs (created, learner, hparams, dataset, protocol, split, ways, shots, queries, episodes,"
                " seed, mean, ci95, seconds, episodes_per_s, episodes_digest, extra)"
                " VALUES ('2026', 'protonet', '{}', 'glyphs', 'scripts', 'test', 5, 1, 15, 1, 0, 0.5, 0.1, 1, 1, 'd', ?)",
                (extra,),
            )
    ResultsStore(path).migrate()
    runs = ResultsStore(path).runs()
    assert [r["protocol_kind"] for r in runs] == ["episodic", "episodic", "episodic", "images"]
    assert [r["unit"] for r in runs] == ["episode", "episode", "episode", "image-batch"]
    assert all(r["threads"] is None and r["figures"] == {} for r in runs)


def test_a_new_file_and_a_migrated_one_have_the_same_schema(v1_store, tmp_path):
    ResultsStore(v1_store).migrate()
    ResultsStore(tmp_path / "new.sqlite").record(
        {"learner": "protonet", "hparams": {}, "dataset": "glyphs", "protocol": "scripts", "split": "test", "ways": 5,
         "shots": 1, "queries": 15, "episodes": 1, "seed": 0, "protocol_kind": "episodic", "mean": 0.5, "ci95": 0.1, "seconds": 1.0,
         "episodes_per_s": 1.0, "episodes_digest": "d"},
        [0.5],
    )  # fmt: skip

    def schema(path: Path) -> list:
        with sqlite3.connect(path) as db:
            return db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()

    assert schema(v1_store) == schema(tmp_path / "new.sqlite")


def test_the_committed_results_file_is_at_the_newest_schema():
    committed = REPO / "leaderboard" / "results.sqlite"
    assert ResultsStore(committed).schema_version() == SCHEMA_VERSION
    with open(committed, "rb") as f:
        header = f.read(20)
    assert (header[18], header[19]) == (1, 1), "rollback journal, not WAL: readers create nothing beside it"


def test_no_run_of_the_first_edition_is_gone_from_the_committed_file(v1_store):
    """Runs are never deleted: every first-edition run is still in the published store, with its figure."""
    old = {run["id"]: run["mean"] for run in ResultsStore(v1_store).runs(include_superseded=True)}
    now = {
        run["id"]: run["mean"]
        for run in ResultsStore(REPO / "leaderboard" / "results.sqlite").runs(include_superseded=True)
    }
    assert set(old) <= set(now), f"runs {sorted(set(old) - set(now))[:10]} are gone"
    assert all(now[i] == mean for i, mean in old.items())
