import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from fewshot.core.errors import FewshotError
from fewshot.records.store import RUN_FIELDS, ResultsStore, check_writable


def _run(**changes):
    run = {k: None for k in RUN_FIELDS}
    run.update(created="2026-01-01T00:00:00", learner="protonet", hparams={"lr": 0.001}, dataset="glyphs",
               protocol="scripts", split="test", ways=5, shots=1, queries=15, episodes=3, seed=0, mean=0.5, ci95=0.1,
               seconds=1.0, episodes_per_s=3.0, episodes_digest="abc", extra={})
    run.update(changes)
    return run


def test_record_and_read_back(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    first = store.record(_run(), [0.5, 1.0, 0.0])
    second = store.record(_run(learner="finetune"), [1.0, 1.0, 1.0])
    assert second == first + 1
    assert [r["learner"] for r in store.runs()] == ["protonet", "finetune"]
    run = store.run(first)
    assert np.array_equal(run["accuracies"], [0.5, 1.0, 0.0]) and run["hparams"] == '{"lr": 0.001}'
    with sqlite3.connect(tmp_path / "r.sqlite") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(FewshotError, match="no run 99"):
        store.run(99)


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
        "import sys; sys.path.insert(0, {tests!r}); from test_store import _run; from fewshot.records.store import ResultsStore\n"
        "s = ResultsStore({path!r})\n"
        "for i in range(40): s.record(_run(learner=sys.argv[1], seed=i), [i / 40] * 50)\n"
    ).format(tests=os.path.dirname(__file__), path=str(path))
    writers = [subprocess.Popen([sys.executable, "-c", code, name]) for name in ("a", "b")]
    assert [w.wait(timeout=300) for w in writers] == [0, 0]
    runs = ResultsStore(path).runs()
    assert sorted((r["learner"], r["seed"]) for r in runs) == sorted((n, i) for n in "ab" for i in range(40))
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM episode_results").fetchone()[0] == 80 * 50


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
