"""Fuzzing every command's options: random values end in exit 0, or exit 2 with one line, never a traceback.

Each test builds argument lists from hostile values (huge, negative and zero whole numbers; nan, inf and 1e999;
unicode, control characters and empty text; paths that do not exist or are folders; unknown names) mixed with
valid ones, runs the command line in this process and checks the project's rule for bad input: exit status 2,
one line on stderr starting ``error:``, and nothing written (the results file and the test's folder as they were).
Valid combinations are kept cheap: training budgets of a few steps, a few test episodes, ``sweep --dry-run``.

The ``ci`` profile (the default) runs a bounded number of derandomized examples; by hand, many random ones:

    FEWSHOT_FUZZ=long OMP_NUM_THREADS=1 pytest tests/fuzz -q
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from hypothesis import assume, event, given
from hypothesis import strategies as st
from PIL import Image

from conftest import run_main
from fewshot.core.errors import FewshotError
from fewshot.core.protocol import MAX_EPISODES
from fewshot.run.training import Budget
from fuzz_helpers import (
    FLOAT_TEXT,
    HUGE_INTS,
    NASTY_TEXT,
    Option,
    arguments,
    check_one_line_or_success,
    examples,
    folder_of_things,
    int_option,
    path_option,
    relative_path,
    text_option,
)

CELL = ["--ways", "2", "--shots", "1", "--queries", "1", "--episodes", "2"]


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A results store of three runs (two of one cell, seeds 0 and 1; one at 2-way 2-shot) and a protonet checkpoint
    of the cell ``CELL`` names: what the reading commands and ``eval --checkpoint`` meet."""
    root = tmp_path_factory.mktemp("prepared")
    from fewshot.cli import main

    def run(*argv: str) -> None:
        with pytest.raises(SystemExit) as done:
            main(list(argv))
        assert done.value.code in (0, None), argv

    results = str(root / "results.sqlite")
    run("train", "--learner", "protonet", "--budget", "1steps", "--ways", "2", "--shots", "1", "--quiet",
        "--out", str(root / "ck.pt"))  # fmt: skip
    for seed, shots in (("0", "1"), ("1", "1"), ("0", "2")):
        run("eval", "--learner", "protonet", "--budget", "1steps", *CELL, "--shots", shots, "--seed", seed, "--quiet",
            "--results", results)  # fmt: skip
    (root / "imgs").mkdir()
    for c, colour in enumerate(("red", "green", "blue")):
        (root / "imgs" / f"class{c}").mkdir()
        for i in range(2):
            image = Image.new("RGB", (12 + i, 10), colour)
            buffer = io.BytesIO()
            image.save(buffer, "PNG")
            (root / "imgs" / f"class{c}" / f"{i}.png").write_bytes(buffer.getvalue())
    rows = [f"imgs/class{c}/{i}.png,{c}" for c in range(3) for i in range(2)]
    (root / "list.csv").write_text("\n".join(["path,label", *rows]) + "\n")
    return root


@pytest.fixture
def workspace(tmp_path, monkeypatch, prepared):
    """The test's working folder, holding copies of the prepared files, and the cache's import folders: what a
    command may write to. Fuzzed paths are relative to it; no dataset files are found (FEWSHOT_DATA is empty)."""
    import shutil

    work = tmp_path / "work"
    shutil.copytree(prepared, work)
    folder_of_things(work)
    monkeypatch.chdir(work)
    monkeypatch.setenv("FEWSHOT_RESULTS", str(work / "results.sqlite"))
    monkeypatch.setenv("FEWSHOT_DATA", str(tmp_path / "no-data"))
    return work


def run_and_check(capfd, work: Path, argv: list[str]) -> tuple[int, str, str]:
    from fewshot.core.paths import cache_dir

    watched = [work, cache_dir() / "imports", cache_dir() / "imported"]
    before = [tree(folder) if folder.exists() else {} for folder in watched]
    code, out, err = run_main(capfd, *argv)
    event(f"exit {code}")
    check_one_line_or_success(code, out, err, argv)
    if code == 2:
        after = [tree(folder) if folder.exists() else {} for folder in watched]
        assert after == before, ("written on exit 2", argv, err)
    return code, out, err


def cheap(argv: list[str]) -> bool:
    """Whether a command line that passes validation stays small: a training budget of at most 3 steps or about a
    second, and at most a few dozen test episodes. Values past the largest allowed are refused, so they stay."""

    def value(option: str) -> str | None:
        return argv[argv.index(option) + 1] if option in argv else None

    try:
        budget = Budget.parse(value("--budget") or "")
    except FewshotError:
        pass
    else:
        # up to 10,000,000 steps is a valid budget that trains for hours: kept out, as are long test runs below
        if (budget.steps or 0) > 3 or (budget.minutes or 0) > 0.02:
            return False
    for option in ("--episodes", "--instances"):
        text = value(option)
        try:
            number = int(text) if text is not None else 0
        except ValueError:
            continue
        if 30 < number <= MAX_EPISODES:
            return False
    return True


# Budgets: a few steps, or refused; never the learner's default (hundreds of steps).
BUDGET = (
    st.sampled_from(["1steps", "2steps", "0steps", "1step", "0.001min", " 1 steps "]),
    st.one_of(
        st.sampled_from(["-1steps", "1.5steps", "0min", "1e999steps", "nansteps", "infmin", "steps", "10", "1 stepsx"]),
        NASTY_TEXT,
        HUGE_INTS.map(lambda n: f"{n}steps"),
    ),
)
CELL_OPTIONS: dict[str, Option] = {
    "--learner": text_option("protonet", names=("mann", "eszsl", "maml", "PROTONET", "nope")),
    "--budget": BUDGET,
    "--hp": (
        st.sampled_from(["lr=0.01", "train_ways=3", "train_ways=2"]),
        st.one_of(
            st.sampled_from(
                ["lr=nan", "lr=1e999", "lr=-1", "lr=inf", "train_ways=0", "train_ways=-3", "train_ways=2.5"]
            ),
            st.sampled_from(["train_ways=1000000", "nope=1", "lr", "=", "lr=", "lr=1=2", "mann.lr=1", "dann.lr=1"]),
            NASTY_TEXT,
        ),
    ),
    "--ways": (st.sampled_from(["2", "3"]), st.one_of(int_option(st.integers())[1], st.just("all"))),
    "--shots": int_option(st.integers(1, 2)),
    "--queries": int_option(st.integers(1, 2)),
    "--side": text_option(names=("attributes", "text")),
    "--dataset": text_option("glyphs", names=("omniglot", "digits", "xlsa17", "xlsa17:NOPE", "imgs", "GLYPHS")),
    "--protocol": text_option("scripts", names=("zsl", "gzsl", "lake", "classes", "vinyals")),
    "--seed": int_option(st.integers(0, 2)),
    # devices torch names but this suite does not run on (meta, xla, mps) once ended in a traceback mid-training
    "--device": text_option(
        "auto", "cpu", names=("cuda", "cuda:7", "cpu:0", "CPU", "gpu", "meta", "xla", "mps", "hpu", "lazy", "cuda:x")
    ),
    "--data-root": path_option("folder", "missing"),
    "--adapt": text_option("none", names=("dann", "adabn", "coral", "NONE")),
    "--source": text_option(names=("sans", "serif", "mono", "mnist")),
    "--target": text_option(names=("sans", "serif", "mono", "usps")),
    "--target-labels": (None, int_option(st.integers(0, 3))[1]),
    "--instances": (None, int_option(st.integers(1, 3))[1]),
}
REQUIRED = ("--learner", "--budget", "--ways", "--shots", "--queries")


@examples(40)
@given(
    argv=arguments(
        {
            **CELL_OPTIONS,
            "--episodes": int_option(st.integers(1, 3)),
            "--checkpoint": path_option("ck.pt"),
            "--results": path_option("results.sqlite", "new.sqlite"),
        },
        "--json",
        "--no-embedding-cache",
        "--quiet",
        required=(*REQUIRED, "--episodes"),
    ),
    per_instance=st.integers(0, 5),
)
def test_eval(workspace, capfd, argv, per_instance):
    argv = ["eval", *argv, *(["--per-instance"] if per_instance == 0 else [])]
    assume(cheap(argv))
    run_and_check(capfd, workspace, argv)


@examples(25)
@given(
    argv=arguments(
        {**CELL_OPTIONS, "--out": path_option("out.pt"), "--checkpoint-every": int_option(st.integers(1, 2))},
        "--quiet",
        required=REQUIRED,
    ),
    per_instance=st.integers(0, 5),
)
def test_train(workspace, capfd, argv, per_instance):
    argv = ["train", *argv, *(["--per-instance"] if per_instance == 0 else [])]
    assume(cheap(argv))
    run_and_check(capfd, workspace, argv)


def toml_hostile() -> st.SearchStrategy[str]:
    """A TOML value of any type that a grid's key does not take."""
    return st.one_of(
        HUGE_INTS.map(str),
        st.sampled_from(["nan", "inf", "-inf", "1e999", "true", "[]", "{}", "[[]]", '""', "1979-05-27", "[1, 'a']"]),
        NASTY_TEXT.map(lambda t: json.dumps(t, ensure_ascii=True)),
        st.integers(-3, 10).map(str),
    )


# The glyph grid's keys with valid values (TOML text), and values of the right type that are wrong.
GRID_KEYS: list[tuple[str, str, tuple[str, ...]]] = [
    ("name", json.dumps("fuzz"), ()),
    ("seeds", "[0]", ("[]", "[-1]", "[0, 0]", "[2147483648]")),
    ("learners", json.dumps(["protonet"]), (json.dumps(["protonet", "nope"]), "[]", json.dumps(["mann", "mann"]))),
    ("[[cell]]", "", ()),
    ("dataset", json.dumps("glyphs"), (json.dumps("omniglot"), json.dumps(["glyphs", "glyphs"]))),
    ("ways", "[2, 3]", ("0", json.dumps("all"), "100000")),
    ("shots", "1", ("0", "[1, 100]", "-1")),
    ("episodes", "2", (json.dumps("all"), "0", "1000000")),
    ("[tier.smoke]", "", ()),
    ("budget", json.dumps("1steps"), (json.dumps("default"), json.dumps({"*": "nope"}), json.dumps("0min"))),
    ("episodes", "2", ("0", "-5")),
    ("threads", "1", ("0", "1000")),
]


@st.composite
def grids(draw) -> str:
    """A grid file: the glyph grid with up to two keys given hostile values, sometimes an unknown key, sometimes
    cut short."""
    bad = draw(st.sets(st.sampled_from([i for i, (_, _, _) in enumerate(GRID_KEYS) if GRID_KEYS[i][1]]), max_size=2))
    lines = []
    for i, (key, valid, wrong) in enumerate(GRID_KEYS):
        if not valid:
            lines.append(key)
        elif i in bad:
            lines.append(f"{key} = {draw(st.one_of(toml_hostile(), *([st.sampled_from(wrong)] if wrong else [])))}")
        else:
            lines.append(f"{key} = {valid}")
    if draw(st.integers(0, 4)) == 0:
        lines.insert(draw(st.integers(0, len(lines))), f"{draw(st.sampled_from(['extra', 'hp', 'device']))} = 1")
    text = "\n".join(lines) + "\n"
    if draw(st.integers(0, 6)) == 0:
        text = text[: draw(st.integers(0, len(text)))]
    return text


@examples(40)
@given(
    grid=grids(),
    rest=arguments(
        {
            "--tier": text_option("smoke", "cpu", "gpu"),
            "--backend": text_option("local", "ray"),
            "--workers": int_option(st.integers(1, 2)),
            "--address": text_option(names=("auto", "localhost:1")),
            "--results": path_option("results.sqlite"),
            "--max-hours": (st.sampled_from(["1", "0.5"]), st.one_of(FLOAT_TEXT, NASTY_TEXT)),
            "--data-root": path_option("folder"),
        },
        "--yes",
        "--any-code",
        "--keep-checkpoints",
        "--quiet",
    ),
    name=st.one_of(st.just("grid.toml"), st.just("grid.toml"), relative_path()),
)
def test_sweep_dry_run(workspace, capfd, grid, rest, name):
    """Always ``--dry-run``: a sweep that runs starts worker processes (tests/sweep runs those)."""
    if name == "grid.toml":
        (workspace / name).write_text(grid)
    run_and_check(capfd, workspace, ["sweep", name, "--dry-run", *rest])


RESULTS = path_option("results.sqlite")
RUN_ID = int_option(st.integers(1, 4))
READING = {
    "leaderboard": {
        "--format": text_option("md", "csv", "html"),
        "--results": RESULTS,
        "--output": path_option("board.md", "site"),
    },
    "compare": {"A": RUN_ID, "B": RUN_ID, "--results": RESULTS},
    "runs": {
        "--learner": text_option("protonet"),
        "--dataset": text_option("glyphs"),
        "--protocol": text_option("scripts"),
        "--results": RESULTS,
    },
    "supersede": {"ID": RUN_ID, "--why": text_option("wrong seed"), "--by": RUN_ID, "--results": RESULTS},
}
POSITIONAL = ("A", "B", "ID")  # drawn like options, given as arguments


FLAGS = {"compare": ["--json"], "runs": ["--json", "--all"], "leaderboard": [], "supersede": []}


@examples(40)
@given(command=st.sampled_from(sorted(READING)), data=st.data())
def test_reading_and_superseding(workspace, capfd, command, data):
    drawn = data.draw(arguments(READING[command], required=(*POSITIONAL, "--why")))
    pairs = dict(zip(drawn[::2], drawn[1::2]))
    argv = ["runs", "supersede"] if command == "supersede" else [command]
    argv += [pairs.pop(p) for p in POSITIONAL if p in pairs]
    argv += [w for option, value in pairs.items() for w in (option, value)]
    argv += [flag for flag in FLAGS[command] if data.draw(st.booleans())]
    run_and_check(capfd, workspace, argv)


@examples(30)
@given(
    format=st.one_of(st.sampled_from(["folder", "folder", "folder", "xlsa17"]), NASTY_TEXT),
    argv=arguments(
        {
            "PATH": path_option("imgs", "imgs", "folder"),
            "--name": (st.sampled_from(["pets", "fuzzed"]), st.one_of(NASTY_TEXT, st.sampled_from(["glyphs", "-x"]))),
            "--csv": (None, relative_path()),
            "--size": int_option(st.integers(8, 12)),
            "--channels": text_option("1", "3"),
        },
        required=("--name", "PATH"),
    ),
    force=st.booleans(),
    csv=st.booleans(),
)
def test_data_import(workspace, capfd, format, argv, force, csv):
    pairs = dict(zip(argv[::2], argv[1::2]))
    path = [pairs.pop("PATH")] if "PATH" in pairs else []
    if csv and path == ["imgs"]:  # the same images listed in a CSV
        path, pairs["--csv"] = [], "list.csv"
    rest = [w for option, value in pairs.items() for w in (option, value)] + (["--force"] if force else [])
    run_and_check(capfd, workspace, ["data", "import", format, *path, *rest])


@examples(20)
@given(
    dataset=st.one_of(st.sampled_from(["omniglot", "digits", "glyphs", "xlsa17"]), NASTY_TEXT),
    root=relative_path(),
    mirror=st.one_of(
        st.sampled_from(["file:///nonexistent", "mirror", "file:mirror", "ftp://", "http://", "http://[::1"]),
        NASTY_TEXT.filter(lambda t: "://" not in t),
    ),
)
def test_data_fetch(workspace, capfd, dataset, root, mirror):
    """Always with a --mirror that is no server: the official release is never downloaded here."""
    (workspace / "mirror").mkdir(exist_ok=True)
    run_and_check(capfd, workspace, ["data", "fetch", dataset, "--data-root", root, "--mirror", mirror])


@examples(20)
@given(
    command=st.sampled_from([["learners"], ["datasets"], ["protocols"], ["datasets", "--data-root"], ["data"], []]),
    extra=st.lists(
        st.one_of(st.sampled_from(["--help", "-h", "--version", "--data-root", "."]), NASTY_TEXT), max_size=3
    ),
)
def test_listings_and_stray_words(workspace, capfd, command, extra):
    run_and_check(capfd, workspace, [*command, *extra])


def test_the_suite_runs_in_its_own_folders(workspace):
    """Guards the fuzzing itself: relative paths land in the test's folder, and no dataset files are visible."""
    assert Path.cwd() == workspace and not Path(os.environ["FEWSHOT_DATA"]).exists()
