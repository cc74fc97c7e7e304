"""Every published figure is a stored run (issue 21, item 7).

The README, the leaderboard's Markdown and the docstrings and comments of the package's code are scanned
for result figures: ``97.39 ± 0.31`` (a mean and its 95% interval), ``86.3%``, and a figure tagged with a
run (``55.32 (runs 111, 112, 110)``). Each must be one of:

* **a run**: the text around it (its sentence, or its table row) names the run or runs it comes from
  (``run 207``, ``runs 185, 184, 182``, or the table's ``run``/``runs`` column), and the figure is, to the
  precision printed, one of those runs' mean (± ci95), an error rate (100 - mean), one of its stored figures
  (S, U, accuracy at the k-th presentation), the mean over the seeds of one group of runs named together
  (± Student's t, as the leaderboard shows it), or, for a signed figure (``+4.70 ± 0.37``), the paired
  difference of two runs named there (as ``fewshot compare`` prints it). Where a prose figure's run is scored
  per image, its paragraph must say the interval is Wilson's; where it is a mean over seeds, that it is over
  seeds (or Student's t). A superseded run backs no figure.
* **a paper's figure**: one of the values in ``leaderboard/papers.py`` (or in ``PAPERS_ELSEWHERE`` below),
  with its citation in the same sentence or row (``Tzeng et al. 2017``, ``(paper)``, the ``published``
  column).
* **a study's figure**: the paragraph names the study's CSV in ``leaderboard/`` (``leaderboard/
  freeze-mnist-usps.csv``) and the figure is one of its accuracies.
* **allowed**: a short list of figures that are not results (speed overheads, chance levels), each with why.

A figure that is none of these (typed by hand, drifted from its run, or naming no run) fails the test.
Reading SQLite only: no training, no evaluation.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import sqlite3
import tokenize
from dataclasses import dataclass, field
from itertools import permutations
from pathlib import Path

import numpy as np
import pytest

from fewshot.core.stats import mean_interval, seed_interval
from fewshot.leaderboard import papers

REPO = Path(__file__).resolve().parent.parent
STORE = REPO / "leaderboard" / "results.sqlite"
MARKDOWN = ("README.md", "leaderboard/LEADERBOARD.md")
CODE_FOLDERS = ("fewshot", "baselines", "tasks", "leaderboard", "benchmarks")

# Papers' figures quoted where leaderboard/papers.py has no entry for them (other datasets than ours).
PAPERS_ELSEWHERE = {
    43.44: "Ravi and Larochelle 2017, Table 1: miniImageNet 5-way 1-shot",
    60.60: "Ravi and Larochelle 2017, Table 1: miniImageNet 5-way 5-shot",
}

# Figures that are not results, as (file, the exact text that holds them, why). Every figure inside the text is
# exempt; an entry whose text is gone fails the test, so the list cannot go stale.
ALLOWED = (
    (
        "README.md",
        "dann +2.8%, ddc +0.3%,\ndan +5.1%, jan +4.4%, coral +1.8%, confusion +1.5%",
        "training-step overheads measured by benchmarks/adapt_overhead.py (speed, not accuracy; no output stored)",
    ),
    (
        "README.md",
        "layers cost 4.4% more than the batch norm they replace, and 21.5% inserted into\nthe LeNet without batch "
        "norm (plain batch norm costs that network 15.4%)",
        "the same benchmark's overheads for AutoDIAL and batch norm",
    ),
    ("README.md", "0.25% among 400 classes", "chance level, 1/400"),
)

# A decimal figure, signed or not, with its interval and a per cent sign when it has them.
FIGURE = re.compile(r"(?<![\w.+-])([+-]?)(\d+\.\d+)(?:\s*±\s*(\d+\.\d+))?(\s*%)?(?![\d.]*\d)")
# In a table's papers' column, a whole number before its citation is a figure too ("96 (Snell et al. 2017)").
CITED_WHOLE_NUMBER = re.compile(r"\A\s*()(\d+)()()(?=\s+\()")
RUN_TAG = re.compile(r"\A,?\s*\(?runs?\s+\d")
RUN_REFERENCE = re.compile(r"\bruns?\s+(\d+(?:(?:\s*,\s*|\s+and\s+)\d+(?!\s*(?:steps|episodes|seeds|%)))*)")
RUN_RANGE = re.compile(r"\bruns\s+(\d+)-(\d+)\b")
CITATION = re.compile(
    r"\bpapers?\b|\bpaper's|\bpublished\b|\bet al\.|\b[A-Z][a-z]+ (?:and|&) [A-Z][a-z]+,? (?:19|20)\d\d|\(paper\)"
)
# A sentence ends at a full stop followed by a capital, but not at "et al." or "e.g.".
SENTENCE_END = re.compile(r"(?<!\bal)(?<!e\.g)(?<!i\.e)(?<!\bcf)\.\s+(?=[A-Z`(*])")
STUDY_CSV = re.compile(r"leaderboard/([\w-]+\.csv)")


@dataclass
class Figure:
    where: str  # file:line
    text: str  # as printed
    sign: str
    value: float
    decimals: int
    ci: float | None
    ci_decimals: int
    context: str  # its sentence, or its table row
    paragraph: str
    runs: list[list[int]] = field(default_factory=list)  # the groups of runs its context names
    paper: bool = False  # its context cites a paper, or it stands in a "published" or "paper" column
    prose: bool = True


# ----------------------------------------------------------------------------------------------------------
# Reading the texts


def _blocks_of_markdown(text: str) -> list[tuple[int, str, bool]]:
    """(first line number, text, is a table row) for each paragraph outside code fences and each table row."""
    blocks: list[tuple[int, str, bool]] = []
    lines = text.split("\n")
    fence = False
    paragraph: list[str] = []
    start = 0
    for number, line in enumerate(lines, start=1):
        if line.lstrip().startswith("```"):
            fence = not fence
        if fence or line.lstrip().startswith("```") or not line.strip() or line.lstrip().startswith("|"):
            if paragraph:
                blocks.append((start, "\n".join(paragraph), False))
                paragraph = []
            if not fence and line.lstrip().startswith("|"):
                blocks.append((number, line, True))
            continue
        if not paragraph:
            start = number
        paragraph.append(line)
    if paragraph:
        blocks.append((start, "\n".join(paragraph), False))
    return blocks


def _blocks_of_python(source: str) -> list[tuple[int, str, bool]]:
    """(line number, text, False) for each paragraph of the strings and comment runs of a module."""
    blocks: list[tuple[int, str, bool]] = []
    comment: list[str] = []
    comment_start = 0
    last_comment_line = -1
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            line = token.start[0]
            if comment and line != last_comment_line + 1:
                blocks.append((comment_start, "\n".join(comment), False))
                comment = []
            if not comment:
                comment_start = line
            comment.append(token.string.lstrip("#").strip())
            last_comment_line = line
        elif token.type == tokenize.STRING:
            line = token.start[0]
            for piece in re.split(r"\n\s*\n", token.string):
                blocks.append((line, piece, False))
                line += piece.count("\n") + 2
    if comment:
        blocks.append((comment_start, "\n".join(comment), False))
    return blocks


def _table_header(lines: list[str], number: int) -> list[str] | None:
    """The header cells of the Markdown table whose row is line ``number`` (1-based)."""
    first = number - 1
    while first > 0 and lines[first - 1].lstrip().startswith("|"):
        first -= 1
    return [cell.strip().lower() for cell in lines[first].strip().strip("|").split("|")]


def _run_groups(text: str) -> list[list[int]]:
    groups = [[int(n) for n in re.findall(r"\d+", match)] for match in RUN_REFERENCE.findall(text)]
    groups += [list(range(int(a), int(b) + 1)) for a, b in RUN_RANGE.findall(text)]
    return [g for g in groups if g]


def _figures_in(text: str, where_file: str, first_line: int, table_header: list[str] | None) -> list[Figure]:
    paragraph = " ".join(text.split())
    found: list[Figure] = []
    if table_header is not None:
        cells = text.strip().strip("|").split("|")
        if set("".join(cells).strip()) <= set("-: "):
            return []
        runs: list[list[int]] = []
        for name, cell in zip(table_header, cells):
            if name in ("run", "runs") and re.fullmatch(r"[\d,\s]+", cell.strip()):
                runs.append([int(n) for n in re.findall(r"\d+", cell)])
        runs += _run_groups(text)
        paper_row = "(paper)" in text
        for name, cell in zip(table_header, cells):
            # In a papers' column, a row of a paper's figures, or the seeds' column, a bare number is a figure too.
            bare = name in ("published", "paper", "seeds") or paper_row
            for figure in _parse(cell, where_file, first_line, text, paragraph, bare=bare):
                figure.runs, figure.prose = runs, False
                figure.paper = name in ("published", "paper") or bool(CITATION.search(text))
                found.append(figure)
        return found
    offset = 0
    for sentence in SENTENCE_END.split(text):
        line = first_line + text[:offset].count("\n")
        offset += len(sentence) + 1
        for figure in _parse(sentence, where_file, line, sentence, paragraph):
            figure.runs = _run_groups(" ".join(sentence.split()))
            figure.paper = bool(CITATION.search(" ".join(sentence.split())))
            found.append(figure)
    return found


def _parse(text: str, where_file: str, line: int, context: str, paragraph: str, bare: bool = False) -> list[Figure]:
    figures = []
    matches = list(FIGURE.finditer(text))
    if bare:
        matches += list(CITED_WHOLE_NUMBER.finditer(text))
    for match in matches:
        sign, value, ci, percent = match.groups()
        after = text[match.end() : match.end() + 12]
        if ci is None and percent is None and not bare and not RUN_TAG.match(after):
            continue  # a bare decimal: a hyperparameter, a version, a time
        figures.append(
            Figure(
                where=f"{where_file}:{line + text[: match.start()].count(chr(10))}",
                text=" ".join(match.group(0).split()),
                sign=sign,
                value=float(value),
                decimals=len(value.split(".")[1]) if "." in value else 0,
                ci=float(ci) if ci else None,
                ci_decimals=len(ci.split(".")[1]) if ci else 0,
                context=" ".join(context.split()),
                paragraph=paragraph,
            )
        )
    return figures


def figures_of_markdown(name: str, text: str) -> list[Figure]:
    lines = text.split("\n")
    found = []
    for number, block, is_row in _blocks_of_markdown(text):
        found += _figures_in(block, name, number, _table_header(lines, number) if is_row else None)
    return found


def figures_of_python(name: str, source: str) -> list[Figure]:
    found = []
    for number, block, _ in _blocks_of_python(source):
        found += _figures_in(block, name, number, None)
    return found


def published_figures() -> list[Figure]:
    found = []
    for name in MARKDOWN:
        found += figures_of_markdown(name, (REPO / name).read_text())
    for folder in CODE_FOLDERS:
        for path in sorted((REPO / folder).rglob("*.py")):
            found += figures_of_python(str(path.relative_to(REPO)), path.read_text())
    return found


# ----------------------------------------------------------------------------------------------------------
# The records


class Records:
    """The committed store, read-only: each run's mean, interval, unit and figures, in percent.

    A superseded run was wrong: it is kept in the store but can back no published figure."""

    def __init__(self, path: Path):
        self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        self.runs = {
            r[0]: {"mean": 100 * r[1], "ci95": 100 * r[2], "unit": r[3], "report": r[4]}
            for r in self.db.execute("SELECT id, mean, ci95, unit, report FROM runs")
        }
        self.superseded = {r[0] for r in self.db.execute("SELECT run_id FROM supersessions")}
        self.figures: dict[int, dict[str, float]] = {}
        for run_id, name, value in self.db.execute("SELECT run_id, name, value FROM run_figures"):
            self.figures.setdefault(run_id, {})[name] = 100 * value
        self._scores: dict[int, np.ndarray] = {}

    def scores(self, run_id: int) -> np.ndarray:
        if run_id not in self._scores:
            rows = self.db.execute(
                "SELECT accuracy FROM episode_results WHERE run_id = ? ORDER BY episode", (run_id,)
            ).fetchall()
            self._scores[run_id] = np.array([r[0] for r in rows], dtype=float)
        return self._scores[run_id]

    def candidates(self, figure: Figure) -> list[tuple[float, float | None, str]]:
        """(value, interval, kind) the runs the figure's context names could print."""
        out: list[tuple[float, float | None, str]] = []
        named = [r for group in figure.runs for r in group if r in self.runs and r not in self.superseded]
        for run_id in named:
            run = self.runs[run_id]
            unit = "image" if run["unit"].startswith("image") else "unit"
            out.append((run["mean"], run["ci95"], unit))
            out.append((100 - run["mean"], run["ci95"], unit))
            figures = self.figures.get(run_id, {})
            for name, value in figures.items():
                if not name.endswith("_ci95"):
                    out.append((value, figures.get(f"{name}_ci95"), "unit"))
        for group in figure.runs:
            means = [self.runs[r]["mean"] for r in group if r in self.runs and r not in self.superseded]
            if len(means) > 1:
                out.append((float(np.mean(means)), seed_interval(means), "seeds"))
        if figure.sign:
            for a, b in permutations(dict.fromkeys(named), 2):
                sa, sb = self.scores(a), self.scores(b)
                if len(sa) == len(sb) > 1:
                    out.append((100 * float(np.mean(sa - sb)), 100 * mean_interval(sa - sb), "difference"))
        return out


def _first_word(citation: str) -> str:
    return citation.replace("(", " ").split()[0]


def paper_values() -> list[tuple[float, set[str]]]:
    """Each paper's figure with the words that tie a quotation to it: its first author, its learner or system."""
    values: list[tuple[float, set[str]]] = [(v, {_first_word(c)}) for v, c in PAPERS_ELSEWHERE.items()]
    for (learner, *_), (value, citation) in [*papers.PAPER_ACCURACY.items(), *papers.OTHER_METHODS.items()]:
        values.append((value, {learner, _first_word(citation)}))
    for errors in papers.REFERENCE_ERRORS.values():
        values += [(value, {_first_word(system), "Lake"}) for system, value in errors]
    for presentations in papers.PRESENTATION_ACCURACY.values():
        values += [(v, {_first_word(system), "Santoro"}) for system, by_k in presentations for v in by_k.values()]
    for (learner, _), by_protocol in papers.ZERO_SHOT_ACCURACY.items():
        values += [(v, {learner, "Xian"}) for figures in by_protocol.values() for v in figures.values()]
    for by_method in [*papers.ADAPTATION_ACCURACY.values(), *papers.SECOND_ADAPTATION_ACCURACY.values()]:
        values += [(value, {method, _first_word(citation)}) for method, (value, citation) in by_method.items()]
    return values


def study_values(paragraph: str) -> set[float]:
    values: set[float] = set()
    for name in STUDY_CSV.findall(paragraph):
        path = REPO / "leaderboard" / name
        if path.exists():
            with path.open() as f:
                values |= {100 * float(row["accuracy"]) for row in csv.DictReader(f)}
    return values


def _same(printed: float, decimals: int, stored: float) -> bool:
    """``printed`` is ``stored`` shown with ``decimals`` decimals (either way at an exact tie)."""
    return abs(printed - stored) <= 0.5 * 10**-decimals + 1e-9


def problem(figure: Figure, records: Records, paper: list[tuple[float, set[str]]]) -> str | None:
    """Why ``figure`` is not published properly, or None if it is a run's, a paper's or a study's."""
    value = -figure.value if figure.sign == "-" else figure.value
    for stored, ci, kind in records.candidates(figure):
        if kind == "difference" or not figure.sign:
            if not _same(value, figure.decimals, stored):
                continue
            if figure.ci is not None and (ci is None or not _same(figure.ci, figure.ci_decimals, ci)):
                continue
            if figure.prose and figure.ci is not None:
                if kind == "image" and "Wilson" not in figure.paragraph:
                    return "a per-image interval (Wilson's over images): its paragraph must say so"
                if kind == "seeds" and not re.search(r"seeds|Student", figure.paragraph):
                    return "an interval over seeds (Student's t): its paragraph must say so"
            return None
    if figure.paper and figure.ci is None and not figure.sign:
        # a paper's figure, quoted beside its author or its learner (the file's name counts: reptile.py)
        context = f"{figure.context} {Path(figure.where.rsplit(':', 1)[0]).stem}".lower()
        if any(
            _same(figure.value, figure.decimals, v) and any(w.lower() in context for w in words) for v, words in paper
        ):
            return None
    if figure.ci is None and any(_same(figure.value, figure.decimals, v) for v in study_values(figure.paragraph)):
        return None
    if not figure.runs:
        return "names no run (quote it as 'M ± C (run N)'), cites no paper that gives it, and is not allowed"
    superseded = sorted({r for group in figure.runs for r in group} & records.superseded)
    if superseded:
        return f"is none of the figures of the current runs it names; runs {superseded} are superseded"
    return f"is none of the figures of the runs it names ({', '.join(str(r) for g in figure.runs for r in g)})"


def allowed(figure: Figure) -> bool:
    """Whether the figure stands inside one of the allowed texts (in its file and paragraph)."""
    file = figure.where.rsplit(":", 1)[0]
    for name, held, _ in ALLOWED:
        flat = " ".join(held.split())
        if name == file and flat in figure.paragraph and figure.text in flat:
            return True
    return False


# ----------------------------------------------------------------------------------------------------------
# The tests


@pytest.fixture(scope="module")
def records() -> Records:
    return Records(STORE)


def _problems(figures: list[Figure], records: Records) -> list[str]:
    paper = paper_values()
    out = []
    for figure in figures:
        if allowed(figure):
            continue
        why = problem(figure, records, paper)
        if why:
            out.append(f"{figure.where}: {figure.text} {why}\n    in: {figure.context[:200]}")
    return out


def test_every_published_figure_is_a_stored_run_a_papers_or_a_studys(records):
    figures = published_figures()
    assert len(figures) > 150, "the scan found too few figures: the patterns no longer match the texts"
    problems = _problems(figures, records)
    assert not problems, "figures with no stored run:\n" + "\n".join(problems)


def test_the_allow_list_is_short_and_current():
    assert len(ALLOWED) <= 5
    for name, held, why in ALLOWED:
        assert why and held in (REPO / name).read_text(), f"{name} no longer holds {held!r}: drop it from ALLOWED"


def test_a_typed_figure_is_caught(records):
    """A made-up figure, a drifted one, a wrong run id and an unmarked paper figure all fail; true ones pass."""
    readme = """## Results

The quick start reads 68.78 ± 1.05 (run 207). Protonet reads 98.88 ± 0.19 (run 3).

A typed figure: the quick start reads 71.23 ± 0.98 on two cores.

Drifted: the quick start reads 68.81 ± 1.06 (run 207).

A wrong run: metanet reads 97.04 ± 0.33 (run 17).

Unmarked: we read 98.8% there.

With its citation: Snell et al. 2017 give 98.8%.

| learner | accuracy % | run |
| --- | --- | --- |
| protonet | 98.88 ± 0.19 | 3 |
| protonet | 98.87 ± 0.19 | 3 |

| learner | accuracy % | seeds | published | runs |
| --- | --- | --- | --- | --- |
| finetune + dann | 55.32 ± 4.15 | 56.33, 53.39, 56.25 | 76.66 (Ganin et al. 2016) | 111, 112, 110 |
| finetune + dann | 55.32 ± 4.15 | 56.33, 53.93, 56.25 | 76.6 (Ganin et al. 2016) | 111, 112, 110 |
"""
    figures = figures_of_markdown("FAKE.md", readme)
    problems = _problems(figures, records)
    caught = {p.split(": ", 1)[1].split(" ")[0] for p in problems}
    assert caught == {"71.23", "68.81", "97.04", "98.8%", "98.87", "53.93", "76.6"}, problems
    assert len(problems) == 7, problems


def test_a_typed_figure_in_a_docstring_is_caught(records):
    source = '''"""A learner.

Measured: 5-way 1-shot accuracy read 95.83 ± 0.37 after 6,000 (run 21) and 96.2% after 9,000.
"""
# the paired difference +4.70 ± 0.37 (runs 29, 30) is fewshot compare's; +4.90 ± 0.37 (runs 29, 30) is not
'''
    problems = _problems(figures_of_python("fake.py", source), records)
    assert [p.split(": ", 1)[1].split(" ")[0] for p in problems] == ["96.2%", "+4.90"], problems


def test_a_per_image_figure_must_say_its_interval_is_wilsons(records):
    text = "Source only reads 51.52 ± 1.03 (run 202) over the test images.\n"
    problems = _problems(figures_of_markdown("FAKE.md", text), records)
    assert len(problems) == 1 and "Wilson" in problems[0]
    text = "Source only reads 51.52 ± 1.03 (run 202, Wilson's interval over the test images).\n"
    assert not _problems(figures_of_markdown("FAKE.md", text), records)


def test_a_superseded_run_backs_no_figure(tmp_path):
    copy = tmp_path / "results.sqlite"
    shutil.copyfile(STORE, copy)
    with sqlite3.connect(copy) as db:
        db.execute("INSERT INTO supersessions (run_id, why, created) VALUES (207, 'a test', '2026-01-01')")
    text = "The quick start reads 68.78 ± 1.05 (run 207).\n"
    assert not _problems(figures_of_markdown("FAKE.md", text), Records(STORE))
    problems = _problems(figures_of_markdown("FAKE.md", text), Records(copy))
    assert len(problems) == 1 and "superseded" in problems[0], problems


def test_an_allowed_figure_is_allowed_only_where_it_stands(records):
    text = (
        "Overheads: dann +2.8%, ddc +0.3%,\ndan +5.1%, jan +4.4%, coral +1.8%, confusion +1.5%.\n\n"
        "The learner reads 4.4% more.\n"
    )
    problems = _problems(figures_of_markdown("README.md", text), records)
    assert len(problems) == 1 and ": 4.4% names no run" in problems[0], problems
