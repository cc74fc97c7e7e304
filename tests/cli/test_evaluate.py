"""``fewshot eval --results``: a file that is not a results store is refused before any training or evaluation."""

import os

from conftest import run_main
from records_helpers import FOREIGN, snapshot

QUICK = ("--budget", "10steps", "--episodes", "20", "--quiet")


def test_eval_refuses_a_foreign_results_file_before_any_work_and_leaves_it_as_it_was(capfd, tmp_path):
    checkpoints = os.path.join(os.environ["FEWSHOT_CACHE"], "checkpoints")
    trained = set(os.listdir(checkpoints)) if os.path.isdir(checkpoints) else set()
    paths = {kind: tmp_path / f"{n}.sqlite" for n, kind in enumerate(("a foreign runs table", "a 0-byte file"))}
    for kind, path in paths.items():
        FOREIGN[kind](path)
    before = snapshot(tmp_path)
    for path in paths.values():
        code, out, err = run_main(capfd, "eval", "--learner", "protonet", "--ways", "5", "--shots", "1", *QUICK,
                                  "--results", str(path))  # fmt: skip
        assert code == 2 and out == "", (code, out, err)
        assert err.startswith(f"error: {path} is not a fewshot results file (") and err.count("\n") == 1, err
    assert snapshot(tmp_path) == before, "the same bytes, the same time, nothing beside them"
    assert (set(os.listdir(checkpoints)) if os.path.isdir(checkpoints) else set()) == trained, "nothing trained"


def test_eval_refuses_a_selection_it_cannot_make_in_one_line_and_records_nothing(capfd, tmp_path, data_root):
    results = tmp_path / "results.sqlite"
    refused = {
        ("--select", "oracle"): "error: --select oracle: glyphs/scripts has no target training images",
        ("--select", "best"): "error: --select 'best' is no selection regime: choose one of",
        ("--val-images", "100"): "error: --val-images 100 sizes the held-out images of --select",
        ("--dataset", "digits", "--protocol", "target-only", "--select", "oracle"): "offers --select training-domain",
        ("--dataset", "digits", "--select", "oracle", "--val-images", "10000"): "and 9999 of the 10000 images",
    }
    for words, message in refused.items():
        learner = "finetune" if "digits" in words else "protonet"
        code, out, err = run_main(capfd, "eval", "--learner", learner, *QUICK, "--results", str(results), *words)
        assert code == 2 and out == "" and err.count("\n") == 1 and message in err, (words, err)
    assert not results.exists()


def test_a_selection_run_is_recorded_as_a_validation_run_with_its_regime(capfd, tmp_path, data_root):
    from fewshot.leaderboard.runs import as_dict
    from fewshot.records.store import ResultsStore

    results = tmp_path / "results.sqlite"
    code, out, err = run_main(capfd, "eval", "--learner", "finetune", "--dataset", "digits", "--select", "oracle",
                              "--val-images", "500", "--budget", "5steps", "--quiet", "--results", str(results))  # fmt: skip
    assert code == 0, err
    assert "500 validation images (--select oracle)" in out and "published" not in out
    assert "a validation run, for making choices on, not a test figure" in out
    run = ResultsStore(results).runs()[0]
    assert run["split"] == "val" and run["episodes"] == 500
    assert as_dict(run["selection"])["regime"] == "oracle"
    code, out, err = run_main(capfd, "runs", "--results", str(results))
    assert code == 0 and out.rstrip().endswith("val split (--select oracle)"), out
