"""Schema versions of the results store and the migrations between them.

A store is marked: ``PRAGMA application_id`` is APPLICATION_ID and its
version is in ``PRAGMA user_version``. Files written before the mark are told by
their exact tables: version 1, the first edition's, never set user_version (0);
version 2 set it. Anything else is not a store and is never changed.
``MIGRATIONS[n]`` takes a database from version n to n + 1, so a new file is
built by exactly the steps an old one is migrated by, and both end with the
same schema.

Migrations are the one place rows are changed rather than inserted: they fill
new columns from what old runs already recorded, and never drop a run.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable
from typing import Any

from fewshot.core.errors import FewshotError

V1_SCHEMA = """
CREATE TABLE runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created TEXT NOT NULL,
    learner TEXT NOT NULL,
    hparams TEXT NOT NULL,
    dataset TEXT NOT NULL,
    protocol TEXT NOT NULL,
    split TEXT NOT NULL,
    ways INTEGER NOT NULL,
    shots INTEGER NOT NULL,
    queries INTEGER NOT NULL,
    episodes INTEGER NOT NULL,
    seed INTEGER NOT NULL,
    mean REAL NOT NULL,
    ci95 REAL NOT NULL,
    seconds REAL NOT NULL,
    episodes_per_s REAL NOT NULL,
    episodes_digest TEXT NOT NULL,
    train_budget TEXT,
    train_steps INTEGER,
    train_seconds REAL,
    checkpoint TEXT,
    fewshot_version TEXT,
    code_commit TEXT,
    torch_version TEXT,
    device TEXT,
    host TEXT,
    extra TEXT
);
CREATE TABLE episode_results (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    episode INTEGER NOT NULL,
    accuracy REAL NOT NULL,
    PRIMARY KEY (run_id, episode)
);
CREATE INDEX runs_cell ON runs (dataset, protocol, ways, shots, learner);
"""

V1_RUN_COLUMNS = (
    "id", "created", "learner", "hparams", "dataset", "protocol", "split", "ways", "shots", "queries", "episodes",
    "seed", "mean", "ci95", "seconds", "episodes_per_s", "episodes_digest", "train_budget", "train_steps",
    "train_seconds", "checkpoint", "fewshot_version", "code_commit", "torch_version", "device", "host", "extra",
)  # fmt: skip

# Column name -> its declaration, in the order ALTER TABLE adds them.
V2_RUN_COLUMNS = {
    "protocol_kind": "TEXT NOT NULL DEFAULT 'episodic'",  # episodic | per-instance | all-classes | gzsl | images
    "side": "TEXT NOT NULL DEFAULT ''",  # class descriptions of zero-shot cells: attributes, text
    "source": "TEXT NOT NULL DEFAULT ''",
    "target": "TEXT NOT NULL DEFAULT ''",
    "adaptation": "TEXT NOT NULL DEFAULT 'none'",
    "adaptation_hparams": "TEXT NOT NULL DEFAULT '{}'",
    "target_labels": "INTEGER NOT NULL DEFAULT 0",
    "selection": "TEXT NOT NULL DEFAULT '{}'",  # hyperparameters chosen on validation: {"chosen": ..., "val_mean": ...}
    "backbone": "TEXT",  # NULL: unknown
    "transductive": "INTEGER",  # 0/1, NULL: unknown
    "protocol_note": "TEXT NOT NULL DEFAULT ''",
    "report": "TEXT NOT NULL DEFAULT 'accuracy'",  # accuracy | error: how the leaderboard shows `mean`
    "threads": "INTEGER",
    "embedding_cache": "TEXT",
    "unit": "TEXT NOT NULL DEFAULT 'episode'",  # one row of episode_results: episode | image | class | image-batch
    "code_dirty": "INTEGER",  # 0/1, NULL: unknown
    "code_diff_hash": "TEXT",
    "code_source_hash": "TEXT",
    "python_version": "TEXT",
}

V2_TABLES = """
CREATE TABLE run_figures (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    name TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (run_id, name)
);
CREATE TABLE supersessions (
    run_id INTEGER PRIMARY KEY REFERENCES runs(id),
    why TEXT NOT NULL,
    created TEXT NOT NULL,
    superseded_by INTEGER REFERENCES runs(id)
);
"""


def create_v1(db: sqlite3.Connection) -> None:
    """Version 0 -> 1: an empty file gets the first edition's tables."""
    for statement in V1_SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)


def v1_to_v2(db: sqlite3.Connection) -> None:
    """Version 1 -> 2: real columns and the figures and supersessions tables, filled from each run's ``extra``."""
    for name, declaration in V2_RUN_COLUMNS.items():
        db.execute(f"ALTER TABLE runs ADD COLUMN {name} {declaration}")
    for statement in V2_TABLES.split(";"):
        if statement.strip():
            db.execute(statement)
    for run_id, learner, extra_text in db.execute("SELECT id, learner, extra FROM runs ORDER BY id").fetchall():
        extra = _parse_extra(extra_text)
        columns = v2_columns_from_extra(extra, learner)
        db.execute(
            f"UPDATE runs SET {', '.join(f'{name} = ?' for name in columns)} WHERE id = ?", [*columns.values(), run_id]
        )
        db.executemany(
            "INSERT INTO run_figures (run_id, name, value) VALUES (?, ?, ?)",
            [(run_id, name, value) for name, value in v2_figures_from_extra(extra).items()],
        )


V3_STATEMENTS = """
ALTER TABLE runs ADD COLUMN job_key TEXT;
ALTER TABLE runs ADD COLUMN job_words TEXT;
CREATE UNIQUE INDEX runs_job_key ON runs (job_key) WHERE job_key IS NOT NULL;
CREATE INDEX runs_job_words ON runs (job_words) WHERE job_words IS NOT NULL;
CREATE TABLE job_failures (
    id INTEGER PRIMARY KEY,
    job_key TEXT NOT NULL,
    job TEXT NOT NULL,
    error TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE INDEX job_failures_key ON job_failures (job_key);
"""


def v2_to_v3(db: sqlite3.Connection) -> None:
    """Version 2 -> 3: a sweep's job key on each run it recorded (its words and code; unique: a job is recorded
    once), the key of its words alone (to find the job's runs by any code), and the jobs that failed, with their
    one-line errors. Runs recorded by hand have neither key."""
    for statement in V3_STATEMENTS.split(";"):
        if statement.strip():
            db.execute(statement)


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [create_v1, v1_to_v2, v2_to_v3]
SCHEMA_VERSION = len(MIGRATIONS)

# PRAGMA application_id of every store this code writes: "FSHT" in ASCII. A file without it is a store only if it has
# exactly the tables of a store written before the mark.
APPLICATION_ID = int.from_bytes(b"FSHT", "big")

# What a store of each version must hold, for telling a fewshot store from an unrelated SQLite file.
_REQUIRED_TABLES = {
    1: {"runs": set(V1_RUN_COLUMNS), "episode_results": {"run_id", "episode", "accuracy"}},
    2: {"run_figures": {"run_id", "name", "value"}, "supersessions": {"run_id", "why", "created", "superseded_by"}},
    3: {"runs": {"job_key", "job_words"}, "job_failures": {"job_key", "job", "error", "created"}},
}


def _parse_extra(text: Any) -> dict[str, Any]:
    """An old run's ``extra`` blob; bad or missing JSON gives {} so the run migrates with defaults."""
    try:
        extra = json.loads(text) if isinstance(text, (str, bytes)) else {}
    except ValueError:
        return {}
    return extra if isinstance(extra, dict) else {}


def _text(value: Any, default: str) -> str:
    return value if isinstance(value, str) else default


def _whole(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _json_object(value: Any) -> str:
    return json.dumps(value if isinstance(value, dict) else {}, sort_keys=True)


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def v2_columns_from_extra(extra: dict[str, Any], learner: str = "") -> dict[str, Any]:
    """The version 2 columns a version 1 run's ``extra`` determines; what it does not say keeps its default.

    The first runs were recorded before runs kept the learner's protocol note (how it meets the episodes); the
    first edition's leaderboard showed the learner's note then, and so does the migrated run.
    """
    mode = _text(extra.get("mode"), "episodic")
    recorded = extra.get("scores")
    scores = recorded if isinstance(recorded, dict) else {}
    # The first edition recorded generalised zero-shot runs as mode all-classes with a harmonic mean among the scores.
    kind = "gzsl" if mode == "all-classes" and "harmonic" in scores else mode
    unit = {"images": "image-batch", "all-classes": "class", "gzsl": "class", "per-instance": "sequence"}.get(
        kind, "episode"
    )
    return {
        "protocol_kind": kind,
        "side": _text(extra.get("side"), ""),
        "source": _text(extra.get("source"), ""),
        "target": _text(extra.get("target"), ""),
        "adaptation": _text(extra.get("adapt"), "none"),
        "adaptation_hparams": _json_object(extra.get("adapt_hparams")),
        "target_labels": _whole(extra.get("target_labels")) or 0,
        "selection": _json_object(extra.get("selection")),
        "protocol_note": _text(extra.get("protocol_note"), _current_note(learner)),
        "report": _text(extra.get("report"), "accuracy"),
        "threads": _whole(extra.get("threads")),
        "embedding_cache": extra.get("embedding_cache") if isinstance(extra.get("embedding_cache"), str) else None,
        "unit": unit,
    }


def _current_note(learner: str) -> str:
    """The installed learner's protocol note, or nothing if it is not installed (or cannot be loaded)."""
    from fewshot.core import registry
    from fewshot.core.errors import FewshotError

    try:
        note = registry.learner(learner).protocol_note
    except FewshotError:
        return ""
    return note if isinstance(note, str) else ""


def v2_figures_from_extra(extra: dict[str, Any]) -> dict[str, float]:
    """A version 1 run's extra figures: its scores but mean and ci95 (columns already), and its presentations."""
    figures: dict[str, float] = {}
    recorded = extra.get("scores")
    scores = recorded if isinstance(recorded, dict) else {}
    for name, value in scores.items():
        finite = _finite(value)
        if name not in ("mean", "ci95") and finite is not None:
            figures[name] = finite
    for key, suffix in (("presentation_accuracy", ""), ("presentation_ci95", "_ci95")):
        listed = extra.get(key)
        values = listed if isinstance(listed, list) else []
        for k, value in enumerate(values, start=1):
            finite = _finite(value)
            if finite is not None:
                figures[f"presentation_{k}{suffix}"] = finite
    return figures


def _tables(db: sqlite3.Connection) -> dict[str, set[str]]:
    """Every table of ``db`` but SQLite's own, with its column names."""
    names = [
        row[0]
        for row in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
        )
    ]
    return {name: {row[1] for row in db.execute(f"PRAGMA table_info({_quoted(name)})")} for name in names}


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# The exact tables of the files fewshot wrote before it marked them: the first edition's (version 1, user_version
# never set) and version 2's before the mark. Only a file with exactly these tables is taken for an unmarked store.
_UNMARKED_LAYOUTS = {
    1: {"runs": set(V1_RUN_COLUMNS), "episode_results": {"run_id", "episode", "accuracy"}},
    2: {
        "runs": set(V1_RUN_COLUMNS) | set(V2_RUN_COLUMNS),
        "episode_results": {"run_id", "episode", "accuracy"},
        **_REQUIRED_TABLES[2],
    },
}


def stored_version(db: sqlite3.Connection, label: str) -> int:
    """The schema version of a fewshot store, told by its mark or, unmarked, by its exact tables; FewshotError else."""
    application_id = db.execute("PRAGMA application_id").fetchone()[0]
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if application_id == APPLICATION_ID:
        return version
    if application_id:
        raise not_a_store(label, f"it is another program's database, application_id {application_id:#x}")
    tables = _tables(db)
    if not tables:
        raise not_a_store(label, "it is empty")
    unmarked = 1 if version == 0 else version
    if _UNMARKED_LAYOUTS.get(unmarked) != tables:
        raise not_a_store(label, f"its tables ({', '.join(sorted(tables))}) are not a fewshot store's")
    return unmarked


def not_a_store(label: str, why: str) -> FewshotError:
    return FewshotError(f"{label} is not a fewshot results file ({why}); choose another with --results")


def check_store(db: sqlite3.Connection, label: str) -> int:
    """The schema version of ``db`` after checking it is a fewshot store this code can use; FewshotError otherwise."""
    version = stored_version(db, label)
    if version > SCHEMA_VERSION:
        raise FewshotError(
            f"results file {label} has schema version {version}, newer than this fewshot ({SCHEMA_VERSION}): "
            "upgrade fewshot"
        )
    missing = _missing_tables_or_columns(db, version) if version >= 1 else ["its schema version"]
    if missing:
        raise not_a_store(label, f"it is marked as one but lacks {', '.join(missing)}")
    return version


def _missing_tables_or_columns(db: sqlite3.Connection, version: int) -> list[str]:
    missing = []
    for v in range(1, version + 1):
        for table, columns in _REQUIRED_TABLES[v].items():
            present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            if not present:
                missing.append(f"table {table}")
            else:
                missing.extend(f"{table}.{c}" for c in sorted(columns - present))
    return missing


def create(db: sqlite3.Connection) -> None:
    """Make the empty ``db`` a marked store of the newest schema, by the steps an old file is migrated by."""
    for step in MIGRATIONS:
        step(db)
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def migrate(db: sqlite3.Connection, label: str) -> int:
    """Bring ``db`` to SCHEMA_VERSION, marked, inside the transaction the caller holds; returns the version it had.

    The caller opened the transaction (BEGIN IMMEDIATE), so a failure anywhere
    rolls back every step and the work it was migrating for, and two writers
    never migrate the same file at once.
    """
    version = check_store(db, label)
    for step in MIGRATIONS[version:]:
        step(db)
    if db.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    if version < SCHEMA_VERSION:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return version
