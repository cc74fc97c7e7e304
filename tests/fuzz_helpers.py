"""The fuzz suite's settings and strategies: hostile values for any option, and byte-level damage to any file.

Two Hypothesis profiles: ``ci`` (the default: few examples, derandomized, so CI is deterministic and fast) and
``long`` (``FEWSHOT_FUZZ=long``: many random examples, for a hand run). A test names its own example count for
``ci`` with :func:`examples`; ``long`` multiplies it.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

LONG_FACTOR = 20
# No deadline: an in-process command or a file read varies with the machine's load. No example database: nothing
# is written beside the tests. The fixtures a test takes (a folder, captured output) are reset by the test itself.
_common = settings(
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("ci", _common, max_examples=20, derandomize=True)
settings.register_profile("long", _common, max_examples=20 * LONG_FACTOR, derandomize=False)
PROFILE = os.environ.get("FEWSHOT_FUZZ", "ci")
settings.load_profile(PROFILE)


def examples(ci: int) -> settings:
    """Settings for a test that runs ``ci`` examples in the ``ci`` profile, ``LONG_FACTOR`` times more in ``long``."""
    return settings(max_examples=ci * LONG_FACTOR if PROFILE == "long" else ci)


# --- values for options ---------------------------------------------------------------------------------------------

HUGE_INTS = st.sampled_from([0, -1, -(2**31), 2**31, 2**63, 2**64 + 1, 10**30, -(10**30)])
FLOAT_TEXT = st.sampled_from(["nan", "NaN", "inf", "-inf", "1e999", "-1e999", "1e-999", "0", "-0.0", "0x10", "1_0"])
# Text with what breaks naive handling: unicode, control characters (NUL included), whitespace, quotes, newlines.
NASTY_TEXT = st.one_of(
    st.sampled_from(["", " ", "\n", "\x00", "a\nb", "é", "日本", "💥", "'", '"', "\\", "--", "-", "=", "a=b=c", "%s"]),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12),
)


# An option's values: (valid ones, hostile ones). Each generated command line gives at most two options a hostile
# value and the others valid ones (or leaves them out), so a hostile value reaches the code that reads it. Valid
# None: an option that is valid only with others (--source with --target), left out unless it is hostile.
Option = tuple[st.SearchStrategy[str] | None, st.SearchStrategy[str]]


def int_option(valid: st.SearchStrategy[int]) -> Option:
    """An integer option: ``valid`` whole numbers, or hostile numbers, floats and words."""
    return valid.map(str), st.one_of(HUGE_INTS.map(str), FLOAT_TEXT, NASTY_TEXT, st.integers(-5, 30).map(str))


def text_option(*valid: str, names: tuple[str, ...] = ()) -> Option:
    """A text option: one of ``valid`` (none: left out unless hostile), or hostile text, numbers and ``names``."""
    hostile = st.one_of(NASTY_TEXT, FLOAT_TEXT, HUGE_INTS.map(str), *([st.sampled_from(names)] if names else []))
    return (st.sampled_from(valid) if valid else None), hostile


def relative_path() -> st.SearchStrategy[str]:
    """A path relative to the test's folder (never absolute: a fuzzed path must not reach the user's files)."""
    return st.one_of(
        st.sampled_from(["missing", "missing/deeper/file", "folder", "folder/", "text.txt", "empty", ".", "..", ""]),
        NASTY_TEXT.map(lambda t: t.lstrip("/~") or "x"),
    )


def path_option(*valid: str) -> Option:
    return st.sampled_from(valid), relative_path()


def folder_of_things(root: Path) -> None:
    """What a fuzzed relative path may meet in ``root``: an empty folder, a text file and a 0-byte file."""
    (root / "folder").mkdir(exist_ok=True)
    (root / "text.txt").write_text("not a fewshot file\n" * 10)
    (root / "empty").write_bytes(b"")


def arguments(
    options: dict[str, Option], *flags: str, required: tuple[str, ...] = (), hostile: int = 2
) -> st.SearchStrategy[list[str]]:
    """Argument lists: up to ``hostile`` options with a hostile value, the others valid or left out (``required``
    ones always given); each flag given or not."""

    @st.composite
    def build(draw):
        bad = draw(st.sets(st.sampled_from(sorted(options)), max_size=hostile)) if options else set()
        argv: list[str] = []
        for option, (valid, hostile_values) in options.items():
            if option in bad:
                argv += [option, draw(hostile_values)]
            elif valid is not None and (option in required or draw(st.booleans())):
                argv += [option, draw(valid)]
        for flag in flags:
            if draw(st.booleans()):
                argv.append(flag)
        return argv

    return build()


def check_one_line_or_success(code: int, out: str, err: str, argv: list[str]) -> None:
    """The project's rule for bad input: exit 0, or exit 2 with one line on stderr saying what is wrong."""
    assert "Traceback" not in err and "Traceback" not in out, (argv, err)
    assert code in (0, 2), (argv, code, out, err)
    if code == 2:
        lines = [line for line in err.rstrip("\n").split("\n") if not line.startswith("warning: ")]
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, err)


# --- damage to files ------------------------------------------------------------------------------------------------


@st.composite
def damaged(draw, raw: bytes) -> bytes:
    """``raw`` with one to three kinds of damage: bytes flipped, cut short, bytes inserted or deleted, a run zeroed,
    the header overwritten. The strategy shrinks towards a single small change."""
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "zero", "header", "tail"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == "zero":
            length = draw(st.integers(1, 4096))
            data[at : at + length] = bytes(len(data[at : at + length]))
        elif kind == "header":
            data[:8] = draw(st.binary(min_size=8, max_size=8))
        elif kind == "tail" and data:  # a zip's central directory and a SQLite file's last pages are at the end
            back = draw(st.integers(1, min(len(data), 512)))
            data[-back] ^= draw(st.integers(1, 255))
    return bytes(data)
