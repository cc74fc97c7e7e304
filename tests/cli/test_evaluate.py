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
