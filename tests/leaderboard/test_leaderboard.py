"""The leaderboard: each protocol's section from the runs' columns, and paired comparisons."""

import json

import numpy as np
import pytest

from fewshot.core.errors import FewshotError
from fewshot.leaderboard.papers import paper_accuracy, references_for
from fewshot.leaderboard.table import compare, render, sections
from records_helpers import stored_run as _run


def _section(runs, title_start):
    return next(s for s in sections(runs) if s.title.startswith(title_start)).table


def test_latest_run_per_cell_beside_the_paper():
    runs = [_run(1, mean=0.5), _run(2, mean=0.97), _run(3, learner="finetune", mean=0.9, hparams='{"head": "cosine"}')]
    table = _section(runs, "Few-shot")
    assert list(table["learner"]) == ["protonet", "finetune (head=cosine)"]
    assert table.loc[0, "accuracy % (± 95% interval)"] == "97.00 ± 0.40" and table.loc[0, "published"].startswith(
        "98.8"
    )
    assert "| omniglot | vinyals | 5 | 1 | protonet | 97.00 ± 0.40 | 98.8" in render([_run(2, mean=0.97)], "md")


def test_error_rate_protocols_quote_the_reference_systems():
    run = _run(1, protocol="lake-runs", ways=20, queries=1, episodes=20, mean=0.9, report="error")
    line = render([run], "md")
    assert "10.00 ± 0.40 error" in line and "people 4.5% error" in line
    assert dict(references_for("omniglot", "lake-runs"))["people"] == 4.5
    assert paper_accuracy("protonet", "omniglot", "vinyals", 20, 1)[0] == 96.0


def test_per_instance_runs_get_their_own_table_beside_santoro():
    accuracy = [0.3, 0.8, 0.9, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98]
    figures = {f"presentation_{k + 1}": v for k, v in enumerate(accuracy)}
    figures.update({f"presentation_{k + 1}_ci95": 0.01 for k in range(10)})
    run = _run(7, learner="mann", shots=10, queries=0, episodes=100, protocol_kind="per-instance", figures=figures)
    table = _section([run, _run(8)], "Per-instance")
    assert list(table["learner"]) == ["mann", "MANN (paper)", "people (paper)"]
    assert table.loc[0, "1st"] == "30.0 ± 1.0" and table.loc[0, "10th"] == "98.0 ± 1.0"
    assert table.loc[1, "2nd"] == "82.8" and table.loc[2, "2nd"] == "57.3"
    assert list(_section([run, _run(8)], "Few-shot")["run"]) == [8], "the episodic table leaves per-instance runs out"
    assert "## Per-instance protocol" in render([run], "md")


def test_a_learner_s_protocol_note_is_in_the_protocol_column():
    board = render(
        [_run(1, learner="mann", mean=0.8, protocol_note="support fed as a labelled sequence"), _run(2)], "md"
    )
    assert "| omniglot | vinyals (support fed as a labelled sequence) |" in board
    assert "| omniglot | vinyals | 5 | 1 | protonet |" in board


def test_paired_comparison_by_episode():
    a = {**_run(1), "accuracies": np.array([1.0, 0.8, 0.9, 1.0])}
    b = {**_run(2), "accuracies": np.array([0.8, 0.6, 0.7, 0.9])}
    outcome = compare(a, b)
    assert outcome["difference"] == pytest.approx(17.5) and "run 1 is better" in outcome["verdict"]
    assert (outcome["unit"], outcome["pairs"]) == ("episode", 4)
    with pytest.raises(FewshotError, match="shots 1 vs 5"):
        compare(a, {**b, "shots": 5})
    with pytest.raises(FewshotError, match="images differ"):
        compare(a, {**b, "episodes_digest": "other"})


def test_image_scored_runs_pair_image_by_image_and_refuse_old_batch_records():
    cell = {
        "dataset": "digits",
        "protocol": "uda",
        "ways": 10,
        "shots": 0,
        "queries": 0,
        "episodes": 5,
        "protocol_kind": "images",
        "unit": "image",
    }
    a = {**_run(1, **cell), "accuracies": np.array([1.0, 1.0, 1.0, 0.0, 1.0])}
    b = {**_run(2, **cell), "accuracies": np.array([1.0, 0.0, 1.0, 0.0, 0.0])}
    outcome = compare(a, b)
    assert (outcome["unit"], outcome["pairs"], outcome["difference"]) == ("image", 5, pytest.approx(40.0))
    with pytest.raises(FewshotError, match="different units"):
        compare(a, {**b, "unit": "image-batch"})


def test_empty_store_says_how_to_fill_it():
    assert "fewshot eval" in render([], "md")


def test_superseded_runs_are_counted_in_the_header():
    assert "3 superseded runs hidden" in render([_run(1)], "md", hidden=3)
    assert "superseded" not in render([_run(1)], "md")


def _zero_shot_run(id, learner="eszsl", dataset="glyphs", protocol="zsl", side="attributes", figures=None, **changes):
    return _run(
        id,
        learner=learner,
        dataset=dataset,
        protocol=protocol,
        ways=400,
        shots=0,
        queries=0,
        episodes=1,
        hparams=json.dumps({"gamma": 0.001, "lam": 1.0}),
        side=side,
        selection=json.dumps({"chosen": {"gamma": 0.001, "lam": 1.0}}),
        figures=figures or {},
        **{"mean": 0.4, "ci95": 0.02, "protocol_kind": "all-classes", **changes},
    )


def test_zero_shot_cells_name_their_side_and_show_seen_unseen_and_harmonic():
    generalized = {"seen": 0.8, "unseen": 0.2, "harmonic": 0.32, "seen_ci95": 0.01, "unseen_ci95": 0.02}
    runs = [
        _zero_shot_run(1),
        _zero_shot_run(2, side="text", mean=0.3),
        _zero_shot_run(
            3, dataset="xlsa17:AWA2", protocol="gzsl", protocol_kind="gzsl", figures=generalized, mean=0.32, ci95=0.015
        ),
        _run(4, learner="eszsl", protocol="zsl", dataset="glyphs", shots=0, side="text"),
    ]
    text = render(runs, "md")
    assert "| glyphs | zsl | attributes | 400 | eszsl (gamma=0.001, lam=1 chosen on val) | 40.00 ± 2.00 |" in text
    assert "| glyphs | zsl | text | 400 |" in text  # a second side is a second cell, not a rerun
    assert "| 80.00 ± 1.00 | 20.00 ± 2.00 | 32.00 ± 1.50 | S 77.8, U 5.9, H 11 (Xian et al. 2018) |" in text
    assert "| glyphs | zsl, described by text | 5 | 0 | eszsl |" in text  # 5-way zero-shot episodes


def test_domain_adaptation_runs_are_summarised_over_seeds_beside_the_papers_figures():
    def run(i, seed, mean, adapt="none", protocol="uda", network="auto"):
        return _run(
            i,
            learner="finetune",
            hparams=json.dumps({"network": network}),
            dataset="digits",
            protocol=protocol,
            ways=10,
            shots=0,
            queries=0,
            episodes=9001,
            seed=seed,
            mean=mean,
            ci95=0.01,
            train_budget="3000steps",
            protocol_kind="images",
            source="mnist",
            target="mnist-m",
            adaptation=adapt,
            unit="image",
            device="cpu" if seed else "NVIDIA H100",
        )

    runs = [
        run(1, 0, 0.50),
        run(2, 1, 0.54),
        run(3, 2, 0.52),
        run(4, 0, 0.60, "dann"),
        run(5, 0, 0.92, protocol="target-only"),
        run(6, 0, 0.20, network="lenet-bn"),
    ]
    frame = _section(runs, "Unsupervised domain adaptation")
    source_only = frame[frame["runs"] == "1, 2, 3"].iloc[0]
    assert source_only["accuracy % (mean over seeds ± 95%)"] == f"52.00 ± {4.303 * 2.0 / 3**0.5:.2f}"  # t(2) sd/√3
    assert source_only["seeds"] == "50.00, 54.00, 52.00" and source_only["published"].startswith("52.25")
    assert frame[frame["method"] == "dann"].iloc[0]["published"].startswith("76.66")
    assert (
        "; 56.6 (Bousmalis et al. 2016, Table 1; chosen on 1,000 labelled MNIST-M images)" in source_only["published"]
    )
    assert frame[frame["protocol"] == "target-only"].iloc[0]["published"].startswith("95.96")
    assert frame[frame["runs"] == "6"].iloc[0]["published"] == ""  # not the paper's network
    assert source_only["device"] == "NVIDIA H100, cpu"  # a seed's figure depends on the device: both are shown
    assert frame[frame["runs"] == "4"].iloc[0]["accuracy % (mean over seeds ± 95%)"] == "60.00 ± 1.00"  # one seed


def test_every_section_is_in_both_formats():
    runs = [
        _run(1),
        _zero_shot_run(2),
        _run(
            3,
            dataset="digits",
            protocol="uda",
            protocol_kind="images",
            source="mnist",
            target="usps",
            learner="finetune",
            unit="image",
        ),
    ]
    for title in ("Few-shot episodes", "Zero-shot, every test class at once", "Unsupervised domain adaptation"):
        assert f"## {title}" in render(runs, "md")
    assert render(runs, "csv").count("learner") == 3


def test_validation_runs_are_kept_out_of_the_test_tables_and_listed_apart_best_first():
    def run(i, mean, adapt, seed=0, split="val"):
        return _run(
            i, learner="finetune", dataset="digits", protocol="uda", ways=10, shots=0, queries=0, episodes=1600,
            seed=seed, mean=mean, ci95=0.01, train_budget="3000steps", protocol_kind="images", source="mnist",
            target="mnist-m", adaptation=adapt, unit="image", split=split,
            selection=json.dumps({"regime": "training-domain"} if split == "val" else {}),
            adaptation_hparams=json.dumps({"weight": 0.3} if i == 3 else {}),
        )  # fmt: skip

    runs = [run(1, 0.90, "none"), run(2, 0.95, "dann"), run(3, 0.97, "dann"), run(4, 0.52, "dann", split="test")]
    text = render(runs, "md")
    matrices_and_tests, validation = text.split("## Model selection: validation runs")
    assert "95.00" not in matrices_and_tests and "97.00" not in matrices_and_tests and "52.00" in matrices_and_tests
    rows = [line for line in validation.splitlines() if line.startswith("| digits/uda")]
    assert [r.split(" | ")[4] for r in rows] == ["finetune + dann (dann.weight=0.3)", "finetune + dann", "finetune"]
    assert all(" | training-domain | 1600 images | 3000steps | " in r for r in rows)
    assert "from 4 recorded runs" in text
    frame = _section([runs[3], {**runs[3], "id": 5, "seed": 1, "selection": '{"defaults": {"dann.weight": "oracle: 2"}}'}],
                     "Unsupervised domain adaptation")  # fmt: skip
    assert frame.iloc[0]["defaults chosen on"] == "oracle"  # the test figure says which regime chose its settings
