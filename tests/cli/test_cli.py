import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from conftest import run_cli, run_main
from fewshot.records.store import ResultsStore
from fewshot.run import checkpoint

QUICK = ("--budget", "10steps", "--hp", "train_ways=10", "--hp", "train_queries=2", "--episodes", "20", "--quiet")


@pytest.fixture
def bad_inputs(tmp_path, data_root):
    other = tmp_path / "other.pt"
    checkpoint.save(other, {"learner": "finetune", "state": {}, "complete": True, "step": 1, "elapsed": 0.0})
    (tmp_path / "garbage.pt").write_bytes(os.urandom(2000))
    (tmp_path / "afile").write_text("not a folder")
    broken = tmp_path / "broken" / "omniglot"
    broken.mkdir(parents=True)
    for name in ("images_background.npz", "images_evaluation.npz", "omniglot_characters.csv"):
        raw = (data_root / "omniglot" / name).read_bytes()
        (broken / name).write_bytes(raw[: len(raw) // 3] if name.endswith("evaluation.npz") else raw)
    omniglot = ("--dataset", "omniglot", "--protocol", "lake")
    digits = ("--learner", "finetune", "--dataset", "digits")
    fonts = ("--source", "sans", "--target", "serif")
    return [
        (("--learner", "protonet", "--ways", "5", "--shots", "1", "--hp", "lr=1e999"), "expected a finite number"),
        (("--learner", "protonet", "--ways", "5", "--shots", "1", "--budget", "0steps"), "train for at least 1 step"),
        (
            ("--learner", "protonet", "--ways", "5", "--shots", "1", "--seed", "1180591620717411303424"),
            "--seed must be between 0 and 9223372036854775807 (2**63-1)",
        ),
        (
            ("--learner", "protonet", "--ways", "5", "--shots", "1", "--episodes", "1000000000"),
            "--episodes must be at most 100,000",
        ),
        # values checked where they enter (issue 21, item 3)
        (("--learner", "protonet", "--ways", "5", "--shots", "1", "--hp", "lr=0"), "protonet's lr must be in (0, 10]"),
        (
            ("--learner", "protonet", "--ways", "5", "--shots", "1", "--hp", f"hidden={10**30}"),
            f"--hp hidden={10**30}: protonet's hidden must be in [1, 4096], got {10**30}",
        ),
        (
            ("--learner", "protonet", "--ways", "5", "--shots", "1", "--hp", "train_ways=1"),
            "--hp train_ways=1: protonet's training episodes need 2 classes at least (0: the paper's)",
        ),
        (
            ("--learner", "protonet", "--ways", "5", "--shots", "1", "--budget", f"{10**30}steps"),
            "at most 10,000,000 steps",
        ),
        (("--learner", "protonet", "--ways", "5", "--shots", "1", "--budget", "20000min"), "at most 10,080 minutes"),
        (
            ("--learner", "protonet", "--ways", "5", "--shots", "1", "--budget", "0steps", "--checkpoint", str(other)),
            "or add --allow-untrained to score the untrained network",
        ),
        (
            ("--learner", "protonet", "--ways", "5", "--shots", "1", "--allow-untrained"),
            "--allow-untrained goes with --budget 0steps",
        ),
        (
            ("--learner", "protonet", "--ways", "5", "--shots", "1", "--budget", "5steps", "--allow-untrained"),
            "--allow-untrained goes with --budget 0steps",
        ),
        (
            ("--learner", "protonet", "--ways", "5", "--shots", "1", "--seed", str(2**63)),
            f"--seed must be between 0 and 9223372036854775807 (2**63-1), got {2**63}",
        ),
        (("--learner", "protonet", "--ways", "nan", "--shots", "1"), "'nan' is neither a whole number nor 'all'"),
        (("--learner", "protonet", "--ways", "5", "--shots", "1", "--queries", "abc"), "'abc' is not a valid integer"),
        (
            ("--learner", "mann", "--per-instance", "--instances", str(10**30)),
            "has at most 20 images in its 5 fullest classes",
        ),
        (
            ("--learner", "finetune", "--dataset", "digits", "--adapt", "dann", "--hp", "dann.weight=-1"),
            "--hp dann.weight=-1: dann's weight must be in [0, 1000], got -1.0",
        ),
        (("--learner", "nope", "--ways", "5", "--shots", "1"), "unknown learner 'nope': known learners are"),
        (("--learner", "protonet", "--ways", "5", "--shots", "1", "--dataset", "nope"), "unknown dataset 'nope'"),
        (("--learner", "protonet", "--ways", "5", "--shots", "1", "--hp", "nope=1"), "unknown hyperparameter 'nope'"),
        (("--learner", "protonet", "--ways", "5", "--shots", "1", "--hp", "lr=fast"), "expected a finite number"),
        (("--learner", "protonet", "--ways", "5000", "--shots", "1", *omniglot), "fewer than --ways 5000"),
        (("--learner", "protonet", "--ways", "5", "--shots", "10", "--queries", "15", *omniglot), "is too many"),
        (("--learner", "protonet", "--ways", "0", "--shots", "1"), "--ways must be at least 1"),
        (("--learner", "protonet", "--ways", "5", "--shots", "-1"), "--shots must be at least 0"),
        (("--learner", "protonet", "--ways", "5", "--shots", "1", "--queries", "0"), "--queries must be at least 1"),
        (("--learner", "protonet", "--ways", "5", "--shots", "1", "--episodes", "0"), "--episodes must be at least 1"),
        (
            ("--learner", "protonet", "--ways", "5", "--shots", "1", "--seed", "-2"),
            "--seed must be between 0 and 9223372036854775807 (2**63-1)",
        ),
        (("--learner", "protonet", "--ways", "5", "--shots", "0"), "cannot run with --shots 0"),
        (("--learner", "protonet", "--ways", "5", "--shots", "1", "--budget", "fast"), "--budget 'fast'"),
        (("--learner", "protonet", "--ways", "5", "--shots", "1", "--protocol", "nope"), "unknown glyphs protocol"),
        (
            (
                "--learner",
                "protonet",
                "--ways",
                "5",
                "--shots",
                "1",
                "--dataset",
                "omniglot",
                "--protocol",
                "lake-runs",
            ),
            "fixes --ways 20",
        ),
        (
            ("--learner", "protonet", "--ways", "5", "--shots", "1", *omniglot, "--data-root", str(tmp_path / "none")),
            "fewshot data fetch omniglot",
        ),
        (
            (
                "--learner",
                "protonet",
                "--ways",
                "5",
                "--shots",
                "1",
                *omniglot,
                "--data-root",
                str(tmp_path / "broken"),
            ),
            "images_evaluation.npz is corrupt or truncated",
        ),
        (("--learner", "protonet", "--ways", "5", "--shots", "1", "--checkpoint", str(other)), "trained by 'finetune'"),
        (
            ("--learner", "protonet", "--ways", "5", "--shots", "1", "--checkpoint", str(tmp_path / "garbage.pt")),
            "corrupt or not a fewshot checkpoint",
        ),
        (
            ("--learner", "protonet", "--ways", "5", "--shots", "1", "--checkpoint", str(tmp_path / "missing.pt")),
            "no checkpoint at",
        ),
        (
            ("--learner", "protonet", "--ways", "5", "--shots", "1", "--results", str(tmp_path / "afile" / "r.sqlite")),
            "cannot write results",
        ),
        (("--learner", "protonet", "--ways", "five", "--shots", "1"), "'five' is neither a whole number nor 'all'"),
        (("--learner", "eszsl", "--protocol", "zsl", "--shots", "1"), "pass --shots 0"),
        (("--learner", "eszsl", "--protocol", "gzsl", "--ways", "5"), "pass --ways all"),
        (("--learner", "eszsl", "--ways", "all", "--shots", "1"), "--ways all scores every test image"),
        (("--learner", "eszsl", "--protocol", "zsl", "--queries", "5"), "leave out --queries"),
        (("--learner", "dap", "--protocol", "zsl", "--side", "text"), "dap reads only attributes descriptions"),
        (("--learner", "eszsl", "--protocol", "zsl", "--side", "colour"), "--side colour: glyphs describes"),
        (("--learner", "eszsl", "--ways", "5", "--shots", "0", *omniglot), "omniglot has no class descriptions"),
        (
            ("--learner", "protonet", "--ways", "5", "--shots", "1", "--side", "text"),
            "does not read class descriptions",
        ),
        (("--learner", "eszsl", "--dataset", "xlsa17"), "name the imported dataset: --dataset xlsa17:NAME"),
        (("--learner", "eszsl", "--dataset", "xlsa17:NOPE"), "xlsa17:NOPE is not imported"),
        (("--learner", "eszsl", "--dataset", "glyphs:X", "--ways", "5", "--shots", "0"), "has no variants"),
        (("--ways", "5", "--shots", "1"), "Missing option '--learner'"),
        (("--learner", "protonet", "--per-instance"), "cannot run --per-instance"),
        (("--learner", "mann", "--per-instance", "--shots", "1"), "leave out --shots"),
        (("--learner", "mann", "--ways", "5", "--shots", "1", "--instances", "10"), "add --per-instance"),
        (("--learner", "mann", "--per-instance", "--instances", "0"), "--instances must be at least 1"),
        (("--learner", "mann", "--per-instance", "--instances", "30", *omniglot), "is too many"),
        (
            ("--learner", "mann", "--per-instance", "--dataset", "omniglot", "--protocol", "lake-runs"),
            "needs a protocol with a class split",
        ),
        # domain adaptation
        ((*digits, "--adapt", "nope"), "unknown adaptation 'nope': known adaptations are adabn, autodial"),
        ((*digits, "--source", "svhn"), "--source svhn: digits has the domains mnist, usps, mnist-m"),
        ((*digits, "--target", "mnist"), "--source and --target are both mnist"),
        (("--learner", "maml", "--dataset", "digits", "--adapt", "dann"), "maml has no classifier over the training"),
        (("--learner", "maml", "--ways", "5", "--shots", "1", "--adapt", "dann"), "--adapt dann needs a domain shift"),
        (
            ("--learner", "maml", "--ways", "5", "--shots", "1", "--adapt", "dann", *fonts),
            "maml has no backbone module for --adapt dann to adapt",
        ),
        (
            ("--learner", "protonet", "--ways", "5", "--shots", "1", "--adapt", "jan", *fonts),
            "jan reads the classifier's outputs, and protonet has no classifier",
        ),
        (
            ("--learner", "protonet", "--ways", "5", "--shots", "1", "--source", "sans", "--target", "sans"),
            "--source and --target are both sans",
        ),
        (
            ("--learner", "protonet", "--ways", "5", "--shots", "1", "--source", "sans"),
            "needs both --source and --target",
        ),
        (
            ("--learner", "protonet", "--ways", "5", "--shots", "1", "--source", "bold", "--target", "serif"),
            "--source bold: glyphs has the font families sans, serif, mono",
        ),
        (
            ("--learner", "protonet", "--ways", "5", "--shots", "1", *omniglot, "--target", "usps"),
            "omniglot's shift is --source omniglot --target mnist",
        ),
        (
            ("--learner", "protonet", "--ways", "5", "--shots", "1", "--dataset", "xlsa17:X", "--source", "a"),
            "has no domains, so --source/--target mean nothing",
        ),
        ((*digits, "--adapt", "dann", "--target-labels", "10"), "dann does not use labelled target images"),
        ((*digits, "--target-labels", "10"), "--target-labels gives labelled target images to an adaptation method"),
        ((*digits, "--target-labels", "-1"), "--target-labels must be zero or positive"),
        ((*digits, "--adapt", "dann", "--budget", "2min"), "give --budget in steps"),
        ((*digits, "--adapt", "dann", "--hp", "dann.weight=x"), "--hp dann.weight=x: expected a finite number"),
        ((*digits, "--adapt", "dann", "--hp", "coral.weight=1"), "'coral' is not the adaptation of this run"),
        ((*digits, "--adapt", "dann", "--hp", "dann.nope=1"), "unknown hyperparameter 'nope' for dann"),
        ((*digits, "--ways", "5"), "leave out --ways"),
        ((*digits, "--protocol", "target-only", "--adapt", "dann"), "no unlabelled target images to adapt to"),
        (("--learner", "protonet", "--dataset", "digits"), "protonet has no classifier over the training classes"),
    ]


def test_every_bad_input_gets_one_line_and_exit_2(capfd, tmp_path, bad_inputs):
    results = tmp_path / "results.sqlite"
    checkpoints = os.path.join(os.environ["FEWSHOT_CACHE"], "checkpoints")
    before = set(os.listdir(checkpoints)) if os.path.isdir(checkpoints) else set()
    for args, message in bad_inputs:
        argv = ["eval", *args] if "--results" in args else ["eval", *args, "--results", str(results)]
        code, out, err = run_main(capfd, *argv)
        assert code == 2, (args, out, err)
        assert err.startswith("error: ") and err.count("\n") == 1, (args, err)
        assert message in err, (args, err)
        assert "Traceback" not in err + out
    assert not results.exists(), "nothing recorded for bad input"
    after = set(os.listdir(checkpoints)) if os.path.isdir(checkpoints) else set()
    assert after == before, "no checkpoint written for bad input"


def test_bad_input_in_a_real_process_has_no_traceback():
    done = run_cli("eval", "--learner", "nope", "--ways", "5", "--shots", "1")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    done = run_cli("compare", "1", "2", "--results", "/nonexistent/r.sqlite")
    assert done.returncode == 2 and "no results at" in done.stderr


def test_a_newline_or_nul_in_a_value_keeps_the_error_one_line(capfd, tmp_path):
    """Found by tests/fuzz: a value quoted in an error broke it over lines, and a NUL was a traceback."""
    code, _, err = run_main(capfd, "compare", "1", "2", "--results", str(tmp_path / "a\nb\u2028c"))
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: no results at ") and "a\\nb\\u2028c" in err
    code, _, err = run_main(capfd, "leaderboard", "--output", "a\x00b")
    assert code == 2 and err == "error: argument 'a\\x00b' holds a NUL character: remove it\n", err


def _eval_json(*args, env=None):
    done = run_cli(
        "eval",
        "--learner",
        "protonet",
        "--dataset",
        "omniglot",
        "--protocol",
        "lake",
        "--ways",
        "5",
        "--shots",
        "1",
        *QUICK,
        "--json",
        *args,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_same_seed_same_numbers_in_two_processes_and_compare(tmp_path, data_root):
    results = str(tmp_path / "r.sqlite")
    first = _eval_json("--results", results, env={"FEWSHOT_CACHE": str(tmp_path / "c1")})
    second = _eval_json("--results", results, env={"FEWSHOT_CACHE": str(tmp_path / "c2")})  # trains anew
    other_seed = _eval_json("--results", results, "--seed", "1", env={"FEWSHOT_CACHE": str(tmp_path / "c1")})
    store = ResultsStore(tmp_path / "r.sqlite")
    a, b, c = (store.run(r["run_id"]) for r in (first, second, other_seed))
    assert np.array_equal(a["accuracies"], b["accuracies"]) and first["mean"] == second["mean"]
    assert a["episodes_digest"] == b["episodes_digest"] != c["episodes_digest"]
    assert set(first) >= {"mean", "ci95", "episodes", "seconds", "run_id"} and first["episodes"] == 20
    same = run_cli("compare", str(first["run_id"]), str(second["run_id"]), "--results", results, "--json")
    assert same.returncode == 0 and json.loads(same.stdout)["difference"] == 0.0
    refused = run_cli("compare", str(first["run_id"]), str(other_seed["run_id"]), "--results", results)
    assert refused.returncode == 2 and "not evaluated on identical episodes" in refused.stderr
    board = run_cli("leaderboard", "--results", results)
    assert (
        board.returncode == 0
        and "| omniglot | lake | 5 | 1 | protonet" in board.stdout
        and "# fewshot leaderboard" in board.stdout
    )
    csv = run_cli("leaderboard", "--results", results, "--format", "csv")
    assert csv.stdout.splitlines()[0].startswith("dataset,protocol,ways,shots")
    html = run_cli("leaderboard", "--results", results, "--format", "html", "--output", str(tmp_path / "site"))
    assert html.returncode == 0 and "protonet" in (tmp_path / "site" / "index.html").read_text()


def test_second_eval_reuses_the_cached_checkpoint(tmp_path, data_root):
    env = {"FEWSHOT_CACHE": str(tmp_path / "cache")}
    results = str(tmp_path / "r.sqlite")
    first = _eval_json("--results", results, env=env)
    files = sorted((tmp_path / "cache" / "checkpoints").iterdir())
    stamp = files[0].stat().st_mtime_ns
    twenty = run_cli(
        "eval",
        "--learner",
        "protonet",
        "--dataset",
        "omniglot",
        "--protocol",
        "lake",
        "--ways",
        "20",
        "--shots",
        "1",
        *QUICK,
        "--json",
        "--results",
        results,
        env=env,
    )
    assert twenty.returncode == 0, twenty.stderr
    assert sorted((tmp_path / "cache" / "checkpoints").iterdir()) == files, "protonet training ignores test ways"
    assert files[0].stat().st_mtime_ns == stamp
    again = _eval_json("--results", results, "--checkpoint", str(files[0]))
    assert again["mean"] == first["mean"]


def test_killed_training_resumes_to_the_same_weights(tmp_path, data_root):
    args = [
        "train",
        "--learner",
        "protonet",
        "--dataset",
        "omniglot",
        "--protocol",
        "lake",
        "--shots",
        "1",
        "--budget",
        "40steps",
        "--hp",
        "train_ways=10",
        "--hp",
        "train_queries=2",
        "--checkpoint-every",
        "5",
        "--quiet",
    ]
    whole = run_cli(*args, "--out", str(tmp_path / "whole.pt"))
    assert whole.returncode == 0, whole.stderr
    target, partial = tmp_path / "killed.pt", tmp_path / "killed.pt.partial"
    process = subprocess.Popen(
        [sys.executable, "-m", "fewshot", *args, "--out", str(target)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while not partial.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not target.exists(), "the run was killed before it finished"
    killed_at = torch.load(partial, weights_only=True)["step"]
    assert 0 < killed_at < 40
    resumed = run_cli(*args, "--out", str(target))
    assert resumed.returncode == 0, resumed.stderr
    a = torch.load(tmp_path / "whole.pt", weights_only=True)
    b = torch.load(target, weights_only=True)
    assert a["step"] == b["step"] == 40
    for name, tensor in a["state"]["model"].items():
        assert torch.equal(tensor, b["state"]["model"][name]), name


def test_learners_and_datasets_are_listed():
    learners = run_cli("learners")
    assert learners.returncode == 0
    assert "protonet  [metric]  Snell et al. 2017" in learners.stdout and "finetune" in learners.stdout
    assert "train_ways=0" in learners.stdout and "backbone=conv4" in learners.stdout
    assert "zero-shot: reads attributes; ignores support images" in learners.stdout  # dap
    assert "chosen on the val classes unless fixed: gamma, lam" in learners.stdout  # eszsl
    methods = learners.stdout.split("domain adaptation methods")[1]
    for name in ("dann", "ddc", "dan", "jan", "coral", "confusion", "adabn", "autodial"):
        assert f"\n{name}  " in methods, name
    assert (
        "weight=1.0 in [0, 1000]; gamma=10.0 in [0, 1000]" in methods
        and "no training change: the source-only checkpoint" in methods
    )
    datasets = run_cli("datasets")
    assert "glyphs" in datasets.stdout and "omniglot" in datasets.stdout and "lake-runs" in datasets.stdout
    assert "class descriptions (zero-shot): attributes: binary" in datasets.stdout
    assert "class descriptions (zero-shot): none" in datasets.stdout  # omniglot
    missing = run_cli("datasets", "--data-root", "/nonexistent")
    assert "absent: missing under /nonexistent/omniglot" in missing.stdout
    assert "absent: missing mnist10k.npz, usps.npz, mnist_m.npz" in missing.stdout


def test_generalized_zero_shot_reports_seen_unseen_and_their_harmonic_mean(tmp_path):
    done = run_cli(
        "eval",
        "--learner",
        "eszsl",
        "--protocol",
        "gzsl",
        "--budget",
        "20steps",
        "--hp",
        "gamma=1",
        "--hp",
        "lam=1",
        "--quiet",
        "--json",
        "--results",
        str(tmp_path / "r.sqlite"),
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert (result["protocol_kind"], result["shots"], result["side"]) == ("gzsl", 0, "attributes")
    s, u = result["seen"], result["unseen"]
    assert result["mean"] == result["harmonic"] == pytest.approx(2 * s * u / (s + u), abs=1e-3)
    assert "selected_on_val" not in result  # both hyperparameters were fixed
    run = ResultsStore(tmp_path / "r.sqlite").run(result["run_id"])
    assert run["figures"]["harmonic"] == pytest.approx(result["harmonic"] / 100, abs=1e-6)
    assert len(run["accuracies"]) == result["ways"]  # one accuracy per class


def test_ctrl_c_saves_progress_and_says_how_to_resume(tmp_path, data_root):
    target, partial = tmp_path / "t.pt", tmp_path / "t.pt.partial"
    args = [
        "train",
        "--learner",
        "protonet",
        "--dataset",
        "omniglot",
        "--protocol",
        "lake",
        "--shots",
        "1",
        "--budget",
        "100000steps",
        "--hp",
        "train_ways=10",
        "--hp",
        "train_queries=2",
        "--checkpoint-every",
        "5",
        "--quiet",
        "--out",
        str(target),
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "fewshot", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 300
    while not partial.exists() and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130 and "progress is saved: run the same command to resume" in err
    assert "Traceback" not in err and not target.exists()
    assert torch.load(partial, weights_only=True)["step"] >= 5


@pytest.mark.parametrize(
    "args, message",
    [
        (("--ways", str(10**30)), f"the glyphs/scripts test split has 542 classes, fewer than --ways {10**30}"),
        (("--shots", str(10**30)), "the glyphs/scripts test split has at most 20 images in its 5 fullest classes"),
        (("--queries", str(10**30)), "the glyphs/scripts test split has at most 20 images in its 5 fullest classes"),
        (("--checkpoint-every", str(10**30)), "is not in the range 1<=x<=10000000"),
        (("--checkpoint-every", "0"), "is not in the range 1<=x<=10000000"),
        (("--budget", "0steps"), "or add --allow-untrained to score the untrained network"),
        (("--budget", "10000001steps"), "at most 10,000,000 steps"),
        (("--hp", "hidden=0"), "protonet's hidden must be in [1, 4096], got 0"),
        (("--seed", str(2**63)), "--seed must be between 0 and 9223372036854775807 (2**63-1)"),
    ],
)
def test_fewshot_train_refuses_bad_values_before_any_work(capfd, tmp_path, args, message):
    out = tmp_path / "model.pt"
    base = {"--ways": "5", "--shots": "1"}
    base.update(dict(zip(args[::2], args[1::2])))
    argv = ["train", "--learner", "protonet", "--out", str(out), "--quiet", *(x for kv in base.items() for x in kv)]
    code, stdout, err = run_main(capfd, *argv)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, (args, stdout, err)
    assert message in err, err
    assert not out.exists() and not out.with_name(out.name + ".partial").exists()


def test_an_untrained_run_is_asked_for_and_marked(capfd, tmp_path):
    results = tmp_path / "results.sqlite"
    args = ("--learner", "protonet", "--ways", "5", "--shots", "1", "--episodes", "10", "--quiet")
    code, out, err = run_main(
        capfd, "eval", *args, "--budget", "0steps", "--allow-untrained", "--json", "--results", str(results)
    )
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["train_steps"] == 0
    run = ResultsStore(results).run(1)
    assert (run["train_budget"], run["train_steps"]) == ("0steps", 0)
    from fewshot.leaderboard.runs import label

    assert label(run) == "protonet (untrained)"
    code, out, err = run_main(capfd, "runs", "--results", str(results))
    assert code == 0 and out.rstrip().endswith("untrained"), out
