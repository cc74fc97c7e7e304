import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_cli
from fewshot.core import registry
from fewshot.core.errors import FewshotError

PLUGIN = Path(__file__).parent / "plugin"


def test_builtins_register_through_entry_points():
    assert {"protonet", "finetune"} <= set(registry.names("learner"))
    assert {"glyphs", "omniglot"} <= set(registry.names("dataset"))
    assert registry.learner("protonet").__name__ == "ProtoNet"


def test_unknown_names_list_the_known_ones():
    with pytest.raises(FewshotError, match="unknown learner 'nope': known learners are .*finetune.*protonet"):
        registry.learner("nope")
    with pytest.raises(FewshotError, match="unknown dataset 'nope': known datasets are .*glyphs"):
        registry.dataset("nope")


def test_a_third_party_learner_plugs_in_like_a_builtin(tmp_path):
    target = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                              "--target", str(target), str(PLUGIN)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")]))}
    listed = run_cli("learners", env=env)
    assert "pixelnn  [metric]" in listed.stdout
    done = run_cli("eval", "--learner", "pixelnn", "--ways", "5", "--shots", "1", "--episodes", "50", "--json",
                   "--quiet", "--results", str(tmp_path / "r.sqlite"), env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["mean"] > 40, "pixel matching beats 20% chance on glyphs"
    board = run_cli("leaderboard", "--results", str(tmp_path / "r.sqlite"), env=env)
    assert "pixelnn" in board.stdout
