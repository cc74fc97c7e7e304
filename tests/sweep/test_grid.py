"""Reading grids: the standard grids load, lists expand, and every mistake names the file and its line."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from conftest import REPO
from fewshot.core.errors import FewshotError
from fewshot.core.registry import names
from fewshot.run.job import Job
from fewshot.sweep import grid as grids

GRIDS = sorted((REPO / "leaderboard" / "grids").glob("*.toml"))

SMALL = """\
name = "small"
seeds = [0, 1]
learners = ["protonet"]

[[learner]]
name = "maml"
variants = { plain = {}, quick = { inner_steps = 1 } }

[[cell]]
dataset = "glyphs"
ways = 5
shots = [1, 5]

[tier.smoke]
budget = { "*" = "3steps", gradient = "2steps" }
episodes = 10
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "grid.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", GRIDS, ids=lambda p: p.stem)
def test_every_standard_grid_reads_and_names_jobs_in_every_tier(path):
    grid = grids.load(path)
    assert grid.tiers, path
    for tier in grid.tiers:
        jobs = grid.jobs(tier)
        assert jobs and len(set(jobs)) == len(jobs), f"{path.stem}/{tier}: jobs missing or named twice"


def test_the_glyph_grid_holds_every_few_shot_learner_at_one_and_five_shots_over_three_seeds():
    jobs = grids.load(REPO / "leaderboard" / "grids" / "glyphs.toml").jobs("cpu")
    few_shot = {n for n in names("learner") if n not in ("devise", "conse", "dap", "eszsl")}
    assert {j.learner for j in jobs} == few_shot
    assert {(j.ways, j.shots, j.seed) for j in jobs} == {(5, s, seed) for s in (1, 5) for seed in (0, 1, 2)}
    assert len(jobs) == len(few_shot) * 2 * 3


def test_lists_expand_variants_carry_their_hyperparameters_and_budgets_go_by_learner_then_family(tmp_path):
    grid = grids.load(write(tmp_path, SMALL))
    jobs = grid.jobs("smoke")
    assert len(jobs) == 2 * 2 * 3  # seeds x shots x (protonet, maml plain, maml quick)
    assert [j.seed for j in jobs[:6]] == [0] * 6, "seeds outermost: a sweep cut short has covered every cell once"
    quick = [j for j in jobs if j.variant == "quick"]
    assert quick and all(j.hp == (("inner_steps", "1"),) for j in quick)
    assert {j.budget for j in jobs if j.learner == "maml"} == {"2steps"}
    assert {j.budget for j in jobs if j.learner == "protonet"} == {"3steps"}
    assert {j.episodes for j in jobs} == {10} and {j.threads for j in jobs} == {1}


def test_a_job_key_is_fixed_by_its_words_and_the_code_and_nothing_else(tmp_path):
    jobs = grids.load(write(tmp_path, SMALL)).jobs("smoke")
    again = grids.load(write(tmp_path, SMALL)).jobs("smoke")
    assert [j.key("abc") for j in jobs] == [j.key("abc") for j in again]
    assert jobs[0].key("abc") != jobs[0].key("abd"), "another code version is another job"
    assert len({j.key("abc") for j in jobs}) == len(jobs)


@pytest.mark.parametrize(
    ("change", "line", "message"),
    [
        (('learners = ["protonet"]', 'learners = ["protonett"]'), 3, "unknown learner 'protonett'"),
        (
            ("variants = { plain = {}, quick = { inner_steps = 1 } }", "variants = { quick = { inner_stepz = 1 } }"),
            7,
            "unknown hyperparameter 'inner_stepz' for maml",
        ),
        (
            ("variants = { plain = {}, quick = { inner_steps = 1 } }", "variants = { quick = { inner_steps = 0.5 } }"),
            7,
            "inner_steps=0.5",
        ),
        (('dataset = "glyphs"', 'dataset = "glyps"'), 10, "unknown dataset 'glyps'"),
        (("shots = [1, 5]", "shots = [1, -5]"), 12, "shots must be a whole number"),
        (("ways = 5", "wayz = 5"), 11, "unknown key 'wayz'"),
        (('budget = { "*" = "3steps", gradient = "2steps" }', 'budget = "3 weeks"'), 15, "'3 weeks'"),
        (('budget = { "*" = "3steps", gradient = "2steps" }', 'budget = { metrik = "3steps" }'), 15, "'metrik'"),
        (("[tier.smoke]", "[tier.laptop]"), 14, "unknown tier 'laptop'"),
        (("seeds = [0, 1]", "seeds = [0, -1]"), 2, "seed"),
    ],
)
def test_a_mistake_is_one_line_naming_the_grid_file_and_line(tmp_path, change, line, message):
    path = write(tmp_path, SMALL.replace(*change))
    with pytest.raises(FewshotError) as caught:
        grids.load(path)
    text = str(caught.value)
    assert text.startswith(f"{path}:{line}: "), text
    assert message in text and "\n" not in text


def test_a_file_that_is_not_toml_or_not_there_is_one_line(tmp_path):
    with pytest.raises(FewshotError, match="not valid TOML"):
        grids.load(write(tmp_path, "learners = [protonet"))
    with pytest.raises(FewshotError, match="cannot read grid"):
        grids.load(tmp_path / "missing.toml")
    with pytest.raises(FewshotError, match=r"no \[tier.gpu\]"):
        grids.load(write(tmp_path, SMALL)).jobs("gpu")


def test_a_standard_grid_is_found_by_its_name_and_an_unknown_name_lists_them():
    found = grids.load("glyphs").path  # in the installed package: the repository's file, copied
    assert (found.parent.name, found.name) == ("grids", "glyphs.toml")
    assert found.read_text() == (REPO / "leaderboard" / "grids" / "glyphs.toml").read_text()
    with pytest.raises(FewshotError, match="digits-select, digits-uda, glyphs, omniglot-select, omniglot, zero-shot"):
        grids.load("glyph")


def test_the_readmes_example_grid_reads():
    text = (REPO / "README.md").read_text()
    (example,) = [block.split("```", 1)[0] for block in text.split("```toml\n")[1:] if 'name = "mine"' in block]
    jobs = grids.load(write(Path(tempfile.mkdtemp()), example)).jobs("smoke")
    assert {(j.learner, j.variant) for j in jobs} == {
        ("protonet", ""),
        ("matchingnet", ""),
        ("maml", "paper"),
        ("maml", "one_step"),
    }
    assert {j.shots for j in jobs} == {1, 5} and {j.seed for j in jobs} == {0}


def test_a_cell_may_name_a_selection_regime_and_a_wrong_one_is_refused_at_its_line(tmp_path):
    path = tmp_path / "select.toml"
    path.write_text(
        'learners = ["finetune"]\n[[cell]]\ndataset = "digits"\nselect = ["training-domain", "oracle"]\n'
        'val_images = 500\n[tier.smoke]\nbudget = "5steps"\n'
    )
    jobs = grids.load(path).jobs("smoke")
    assert [(j.select, j.val_images) for j in jobs] == [("training-domain", 500), ("oracle", 500)]
    assert "--select oracle --val-images 500" in jobs[1].command()
    assert len({j.key(None) for j in jobs}) == 2 and jobs[0].key(None) != Job("finetune", "digits").key(None)
    path.write_text('learners = ["finetune"]\n[[cell]]\ndataset = "digits"\nselect = "test"\n')
    with pytest.raises(FewshotError, match=rf"^{path}:4: select 'test' is no selection regime"):
        grids.load(path)
