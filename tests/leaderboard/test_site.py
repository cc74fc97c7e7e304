"""The leaderboard as a static site: its pages from a small store, then the overview in a real browser.

The browser tests drive Debian's chromium through selenium (``.ci/run`` installs both); on a developer's
machine without them they skip, and with ``CI`` set they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest

from fewshot.leaderboard.matrix import matrices
from fewshot.leaderboard.site import pages, write_site
from fewshot.leaderboard.table import render
from fewshot.records.store import ResultsStore

HOSTILE = "<script>alert(1)</script>"


def _run(learner: str, **changes) -> dict:
    run = {
        "learner": learner,
        "hparams": json.dumps({}),
        "dataset": "omniglot",
        "protocol": "vinyals",
        "split": "test",
        "ways": 5,
        "shots": 1,
        "queries": 15,
        "episodes": 40,
        "seed": 0,
        "protocol_kind": "episodic",
        "seconds": 1.0,
        "episodes_per_s": 40.0,
        "episodes_digest": "vinyals-5-1-seed0",
        "train_budget": "100steps",
        "device": "cpu",
    }
    run.update(changes)
    return run


def _record(store: ResultsStore, run: dict, level: float, seed: int, figures: dict | None = None) -> int:
    """Record ``run`` with per-unit accuracies around ``level``, noise of its own."""
    noise = np.random.default_rng([seed, zlib.crc32(json.dumps(run, sort_keys=True).encode())]).uniform(
        -0.05, 0.05, run["episodes"]
    )
    accuracies = np.clip(level + noise, 0, 1)
    mean = float(accuracies.mean())
    ci95 = float(1.96 * accuracies.std(ddof=1) / np.sqrt(len(accuracies)))
    return store.record({**run, "mean": mean, "ci95": ci95}, accuracies, figures)


def build(path: Path) -> ResultsStore:
    store = ResultsStore(path)
    _record(store, _run("protonet"), 0.95, 0)
    _record(store, _run("matchingnet"), 0.90, 0)
    _record(store, _run("matchingnet", train_budget="50steps"), 0.949, 0)  # within noise of the best
    _record(store, _run(HOSTILE, protocol_note=f"{HOSTILE} note"), 0.60, 0)
    wrong = _record(store, _run("protonet", train_budget="10steps"), 0.20, 0)
    store.supersede(wrong, f"a bug in the sampler {HOSTILE}")
    _record(store, _run("protonet", shots=5, episodes_digest="vinyals-5-5-seed0"), 0.99, 0)
    for seed in range(3):
        shift = {
            "dataset": "digits",
            "protocol": "uda",
            "ways": 10,
            "shots": 0,
            "queries": 0,
            "episodes": 50,
            "seed": seed,
            "protocol_kind": "images",
            "unit": "image",
            "source": "mnist",
            "target": "usps",
            "episodes_digest": f"usps-{seed}",
            "train_budget": "3000steps",
        }
        _record(store, _run("finetune", **shift), 0.75 + 0.01 * seed, seed)
        _record(store, _run("finetune", adaptation="dann", **shift), 0.80 + 0.01 * seed, seed)
    generalized = {"seen": 0.8, "unseen": 0.2, "harmonic": 0.32, "seen_ci95": 0.01, "unseen_ci95": 0.02}
    zero_shot = {"dataset": "glyphs", "protocol": "gzsl", "ways": 40, "shots": 0, "queries": 0, "episodes": 40}
    zero_shot |= {"protocol_kind": "gzsl", "unit": "class", "side": "attributes", "episodes_digest": "gzsl"}
    _record(store, _run("eszsl", **zero_shot), 0.3, 0, generalized)
    # H is not the mean of the per-class accuracies the runs pair on: here they rank the other way
    store.record({**_run("devise", **zero_shot), "mean": 0.35, "ci95": 0.01}, np.full(40, 0.1), generalized)
    sequences = {"shots": 10, "queries": 0, "episodes": 20, "protocol_kind": "per-instance", "unit": "sequence"}
    figures = {f"presentation_{k}": 0.3 + 0.06 * k for k in range(1, 11)}
    figures |= {f"presentation_{k}_ci95": 0.01 for k in range(1, 11)}
    _record(store, _run("mann", episodes_digest="sequences", **sequences), 0.8, 0, figures)
    lake = {"protocol": "lake-runs", "ways": 20, "queries": 1, "episodes": 20, "episodes_digest": "lake"}
    _record(store, _run("protonet", report="error", **lake), 0.9, 0)
    return store


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ResultsStore:
    return build(tmp_path_factory.mktemp("site-store") / "results.sqlite")


@pytest.fixture(scope="module")
def site(store, tmp_path_factory) -> Path:
    return write_site(store, tmp_path_factory.mktemp("site")).parent


def _accuracies(store):
    return lambda run: store.run(run["id"])["accuracies"]


def _matrix(store, dataset, protocol):
    return next(m for m in matrices(store.runs(), _accuracies(store)) if m.key[1:] == (dataset, protocol))


def test_each_benchmark_is_a_matrix_of_learners_by_cells_coloured_against_the_column_s_best(store):
    m = _matrix(store, "omniglot", "vinyals")
    assert [c.title for c in m.columns] == ["5-way 1-shot", "5-way 5-shot"]
    status = {row.key: m.entry(row, m.columns[0]).status for row in m.rows}
    assert status[("protonet", "100steps")] == "best"
    assert status[("matchingnet", "100steps")] == "worse"  # 5 points below on the same episodes
    assert status[("matchingnet", "50steps")] == "tied"  # 0.1 point below: within the paired interval
    assert m.entry(m.rows[0], m.columns[1]) is not None and m.entry(m.rows[1], m.columns[1]) is None  # not run
    assert m.entry(m.rows[0], m.columns[0]).paper == (98.8, "Snell et al. 2017, Table 1")


def test_an_entry_whose_paired_units_rank_it_above_the_best_is_not_called_worse(store):
    m = _matrix(store, "glyphs", "gzsl")
    status = {row.learner: m.entry(row, m.columns[0]).status for row in m.rows}
    assert status == {"devise": "best", "eszsl": "unpaired"}


def test_two_protocols_scoring_the_same_numbers_are_two_benchmarks(store):
    sequences = next(r for r in store.runs() if r["protocol_kind"] == "per-instance")
    episodes = {**sequences, "id": 1000, "protocol_kind": "episodic"}
    found = {m.key: m.runs for m in matrices([sequences, episodes])}
    assert found == {
        ("per-instance", "omniglot", "vinyals"): [sequences],
        ("episodic", "omniglot", "vinyals"): [episodes],
    }


def test_several_seeds_give_a_t_interval_and_pair_seed_by_seed(store):
    m = _matrix(store, "digits", "uda")
    (column,) = m.columns
    dann = next(m.entry(r, column) for r in m.rows if r.learner == "finetune + dann")
    plain = next(m.entry(r, column) for r in m.rows if r.learner == "finetune")
    assert [s for s, _, _ in dann.seeds] == [0, 1, 2] and dann.status == "best"
    assert dann.value == pytest.approx(np.mean([100 * r["mean"] for r in dann.runs]))
    assert dann.half == pytest.approx(4.303 * np.std([100 * r["mean"] for r in dann.runs], ddof=1) / 3**0.5, 1e-3)
    assert plain.status == "worse" and plain.versus_best.pairs == 150  # 3 seeds x 50 images
    assert dann.paper == (77.1, "Tzeng et al. 2017, Table 2")


def test_the_site_has_an_overview_a_page_per_benchmark_and_per_cell(site):
    names = sorted(p.name for p in site.iterdir())
    assert {"index.html", "site.css", "site.js"} <= set(names)
    assert sum(n.startswith("bench-") for n in names) == 5
    assert sum(n.startswith("cell-") for n in names) == 6
    index = (site / "index.html").read_text()
    assert "not run" in index and "paper 98.8" in index and "http" not in index.replace("http://www.w3", "")
    (lake,) = site.glob("cell-episodic-omniglot-lake-runs-*.html")
    assert "error (run " in lake.read_text()  # an error-rate protocol's runs read as error rates on their page too
    for page in site.glob("*.html"):
        text = page.read_text()
        assert "<script>alert" not in text and "src='site.js'" in text  # escaped everywhere; no CDN


def test_every_protocol_s_own_table_is_on_its_benchmark_page(site):
    text = " ".join(p.read_text() for p in site.glob("bench-*.html"))
    for title in (
        "Few-shot episodes",
        "Generalized zero-shot",
        "Per-instance protocol",
        "Unsupervised domain adaptation",
    ):
        assert title in text
    assert "people 4.5% error" in text and "MANN (paper)" in text and "80.00 ± 1.00" in text  # Lake's, Santoro's, S


def test_a_cell_page_lists_every_run_the_superseded_apart_seeds_comparisons_and_plots(store):
    found = pages(store.runs(), store.runs(include_superseded=True), _accuracies(store), lambda run: None)
    cell = next(
        text
        for name, text in found.items()
        if name.startswith("cell-episodic-omniglot-vinyals") and "5-way 1-shot, " in text
    )
    runs, superseded = cell.split("Superseded runs")
    assert "10steps" not in runs and "a bug in the sampler &lt;script&gt;" in superseded
    assert "Figures by seed" in cell and "Paired comparisons" in cell
    assert "accuracy against shots</text>" in cell  # 1 and 5 shots: an inline SVG
    assert "No training history recorded" in cell
    history = [{"step": 50.0, "loss": 1.0, "val_acc": 0.5}, {"step": 100.0, "loss": 0.5, "val_acc": 0.8}]
    found = pages(store.runs(), store.runs(include_superseded=True), _accuracies(store), lambda run: history)
    assert "validation accuracy against training steps" in found[next(n for n in found if n.startswith("cell-"))]


def test_leaderboard_md_carries_the_same_matrices(store):
    text = render(store.runs(), "md", accuracies=_accuracies(store))
    assert "### omniglot/vinyals (episodic)" in text and "## Few-shot episodes" in text
    assert "| learner | backbone | budget | device | transductive | 5-way 1-shot | 5-way 5-shot |" in text
    assert " ▼ (run" in text and "not run" in text and "; paper 98.8 (" in text
    assert "; seeds " in text and "(runs " in text  # several seeds: each seed's figure and run


def test_the_command_writes_the_site_into_a_folder_and_markdown_to_stdout(store, tmp_path):
    from conftest import run_cli

    done = run_cli("leaderboard", "--results", str(store.path), "--format", "html", "--output", str(tmp_path / "s"))
    assert done.returncode == 0 and (tmp_path / "s" / "index.html").is_file(), done.stderr
    board = run_cli("leaderboard", "--results", str(store.path))
    assert board.returncode == 0 and "### digits/uda (images)" in board.stdout and "▼" in board.stdout


# -- in a real browser -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    """One headless chromium for the module's browser tests."""
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium")
    if missing:
        message = f"the site's browser tests need {', '.join(missing)}: apt-get install chromium chromium-driver"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(argument)
    options.binary_location = shutil.which("chromium")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    yield driver
    driver.quit()


def _open(browser, site):
    browser.get((site / "index.html").as_uri())
    return browser


def _learners(table):
    return [row.find_element("css selector", "td").text for row in table.find_elements("css selector", "tbody tr")]


def _vinyals(browser):
    section = next(
        s for s in browser.find_elements("css selector", "section") if "omniglot/vinyals (episodic)" in s.text
    )
    return section.find_element("css selector", "table")


def test_the_overview_opens_from_a_file_with_no_console_error(browser, site):
    _open(browser, site)
    assert browser.title == "fewshot leaderboard"
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    header = browser.find_element("css selector", "table.sortable th")
    assert "sort" in header.get_attribute("title")  # site.js ran


def test_clicking_a_column_header_reorders_the_rows(browser, site):
    table = _vinyals(_open(browser, site))
    before = _learners(table)
    header = table.find_elements("css selector", "thead th")
    header[0].click()
    assert _learners(table) == sorted(before, key=str.lower)
    header[5].click()  # 5-way 1-shot, ascending: the worst first
    assert _learners(table)[0] == HOSTILE
    header[5].click()
    assert _learners(table)[0] == "protonet"


def test_the_filter_hides_rows(browser, site):
    _open(browser, site)
    browser.find_element("id", "filter").send_keys("matchingnet")
    rows = _vinyals(browser).find_elements("css selector", "tbody tr")
    shown = [row.text for row in rows if row.is_displayed()]
    assert len(shown) == 2 and all("matchingnet" in text for text in shown) and len(rows) == 4


def test_a_learner_named_like_a_script_is_text(browser, site):
    _open(browser, site)
    assert HOSTILE in _learners(_vinyals(browser))
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        _ = browser.switch_to.alert.text
