import json

import numpy as np
import pytest

from fewshot.core.errors import FewshotError
from fewshot.leaderboard.papers import paper_accuracy, references_for
from fewshot.leaderboard.table import compare, presentation_rows, render, rows


def _run(id, learner="protonet", mean=0.9, **changes):
    run = dict(id=id, learner=learner, hparams=json.dumps({}), dataset="omniglot", protocol="vinyals", split="test",
               ways=5, shots=1, queries=15, episodes=600, seed=0, mean=mean, ci95=0.004, train_budget="100steps",
               device="cpu", episodes_digest="d", extra=json.dumps({"report": "accuracy"}))
    run.update(changes)
    return run


def test_latest_run_per_cell_beside_the_paper():
    table = rows([_run(1, mean=0.5), _run(2, mean=0.97), _run(3, learner="finetune", mean=0.9, hparams='{"head": "cosine"}')])
    assert list(table["learner"]) == ["protonet", "finetune (head=cosine)"]
    assert table.loc[0, "result"] == "97.00 ± 0.40" and table.loc[0, "paper"].startswith("98.8")
    assert "| omniglot | vinyals | 5 | 1 | protonet | 97.00 ± 0.40 | 98.8" in render([_run(2, mean=0.97)], "md")


def test_error_rate_protocols_quote_the_reference_systems():
    run = _run(1, protocol="lake-runs", ways=20, queries=1, episodes=20, mean=0.9, extra=json.dumps({"report": "error"}))
    line = render([run], "md")
    assert "10.00 ± 0.40 error" in line and "people 4.5% error" in line
    assert dict(references_for("omniglot", "lake-runs"))["people"] == 4.5
    assert paper_accuracy("protonet", "omniglot", "vinyals", 20, 1)[0] == 96.0


def test_per_instance_runs_get_their_own_table_beside_santoro():
    figures = [0.3, 0.8, 0.9, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98]
    extra = json.dumps({"mode": "per-instance", "presentation_accuracy": figures, "presentation_ci95": [0.01] * 10})
    run = _run(7, learner="mann", shots=10, queries=0, episodes=100, extra=extra)
    table = presentation_rows([run, _run(8)])
    assert list(table["learner"]) == ["mann", "MANN (paper)", "people (paper)"]
    assert table.loc[0, "1st"] == "30.0 ± 1.0" and table.loc[0, "10th"] == "98.0 ± 1.0"
    assert table.loc[1, "2nd"] == "82.8" and table.loc[2, "2nd"] == "57.3"
    assert list(rows([run, _run(8)])["run"]) == [8], "the episodic table leaves per-instance runs out"
    assert "## Per-instance protocol" in render([run], "md")


def test_a_learner_s_protocol_note_is_in_the_protocol_column():
    board = render([_run(1, learner="mann", mean=0.8), _run(2)], "md")
    assert "| omniglot | vinyals (support fed as a labelled sequence;" in board
    assert "| omniglot | vinyals | 5 | 1 | protonet |" in board


def test_paired_comparison():
    a = {**_run(1), "accuracies": np.array([1.0, 0.8, 0.9, 1.0])}
    b = {**_run(2), "accuracies": np.array([0.8, 0.6, 0.7, 0.9])}
    outcome = compare(a, b)
    assert outcome["difference"] == pytest.approx(17.5) and "run 1 is better" in outcome["verdict"]
    with pytest.raises(FewshotError, match="shots 1 vs 5"):
        compare(a, {**b, "shots": 5})
    with pytest.raises(FewshotError, match="images differ"):
        compare(a, {**b, "episodes_digest": "other"})


def test_empty_store_says_how_to_fill_it():
    assert "fewshot eval" in render([], "md")


def _zero_shot_run(id, learner="eszsl", dataset="glyphs", protocol="zsl", side="attributes", scores=None, **changes):
    scores = scores or {"mean": 0.4, "ci95": 0.02}
    extra = {"mode": "all-classes", "side": side, "scores": scores,
             "selection": {"chosen": {"gamma": 0.001, "lam": 1.0}}}
    return _run(id, learner=learner, dataset=dataset, protocol=protocol, ways=400, shots=0, queries=0, episodes=1,
                mean=scores["mean"], ci95=scores["ci95"], hparams=json.dumps({"gamma": 0.001, "lam": 1.0}),
                extra=json.dumps(extra), **changes)


def test_zero_shot_cells_name_their_side_and_show_seen_unseen_and_harmonic():
    generalized = {"seen": 0.8, "unseen": 0.2, "harmonic": 0.32, "mean": 0.32, "seen_ci95": 0.01,
                   "unseen_ci95": 0.02, "ci95": 0.015}
    runs = [_zero_shot_run(1), _zero_shot_run(2, side="text", scores={"mean": 0.3, "ci95": 0.02}),
            _zero_shot_run(3, dataset="xlsa17:AWA2", protocol="gzsl", scores=generalized),
            _run(4, learner="eszsl", protocol="zsl", dataset="glyphs", shots=0,
                 extra=json.dumps({"side": "text", "mode": "episodic"}))]
    text = render(runs, "md")
    assert "| glyphs | zsl | attributes | 400 | 0 | eszsl (gamma=0.001, lam=1 chosen on val) | 40.00 ± 2.00 |" in text
    assert "| glyphs | zsl | text | 400 | 0 |" in text  # a second side is a second cell, not a rerun
    assert "| 80.00 ± 1.00 | 20.00 ± 2.00 | 32.00 ± 1.50 | S 77.8, U 5.9, H 11 (Xian et al. 2018) |" in text
    assert "| glyphs | zsl, described by text | 5 | 0 | eszsl |" in text  # 5-way zero-shot episodes


def test_domain_adaptation_runs_are_summarised_over_seeds_beside_the_papers_figures():
    from fewshot.leaderboard.table import adaptation_rows

    def run(i, seed, mean, adapt=None, protocol="uda", network="auto"):
        extra = {"mode": "images", "source": "mnist", "target": "mnist-m", **({"adapt": adapt} if adapt else {})}
        return {"id": i, "learner": "finetune", "hparams": json.dumps({"network": network}), "dataset": "digits",
                "protocol": protocol, "split": "test", "ways": 10, "shots": 0, "queries": 0, "episodes": 91,
                "seed": seed, "mean": mean, "ci95": 0.01, "train_budget": "3000steps", "extra": json.dumps(extra),
                "device": "cpu" if seed else "NVIDIA H100"}

    runs = [run(1, 0, 0.50), run(2, 1, 0.54), run(3, 2, 0.52), run(4, 0, 0.60, "dann"),
            run(5, 0, 0.92, protocol="target-only"), run(6, 0, 0.20, network="lenet-bn")]
    frame = adaptation_rows(runs)
    source_only = frame[frame["runs"] == "1, 2, 3"].iloc[0]
    assert source_only["accuracy % (mean over seeds ± 95%)"] == f"52.00 ± {4.303 * 2.0 / 3 ** 0.5:.2f}"  # t(2) x sd / sqrt(3)
    assert source_only["seeds"] == "50.00, 54.00, 52.00" and source_only["published"].startswith("52.25")
    assert frame[frame["method"] == "dann"].iloc[0]["published"].startswith("76.66")
    assert frame[frame["method"] == "target-only (ceiling)"].iloc[0]["published"].startswith("95.96")
    assert frame[frame["runs"] == "6"].iloc[0]["published"] == ""  # not the paper's network
    assert source_only["device"] == "NVIDIA H100, cpu"  # a seed's figure depends on the device: both are shown
