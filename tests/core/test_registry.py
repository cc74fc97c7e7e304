import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, run_cli
from fewshot.core import registry
from fewshot.core.dataset import Dataset, DownloadFile, Importer
from fewshot.core.errors import FewshotError

PLUGIN = REPO / "tests" / "plugin"


def _installed(package: Path, target: Path) -> dict[str, str]:
    """Install ``package`` (a plug-in's folder) into ``target``: the environment of a process that sees it."""
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(package),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert install.returncode == 0, install.stderr
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")]))}


def test_builtins_register_through_entry_points():
    assert {"protonet", "finetune"} <= set(registry.names("learner"))
    assert {"glyphs", "omniglot"} <= set(registry.names("dataset"))
    assert registry.learner("protonet").__name__ == "ProtoNet"


def test_unknown_names_list_the_known_ones():
    with pytest.raises(FewshotError, match=r"unknown learner 'nope': known learners are .*finetune.*protonet"):
        registry.learner("nope")
    with pytest.raises(FewshotError, match=r"unknown dataset 'nope': known datasets are .*glyphs"):
        registry.dataset("nope")


def test_a_third_party_learner_plugs_in_like_a_builtin(tmp_path):
    env = _installed(PLUGIN, tmp_path / "site")
    listed = run_cli("learners", env=env)
    assert "pixelnn  [metric]" in listed.stdout
    done = run_cli(
        "eval",
        "--learner",
        "pixelnn",
        "--ways",
        "5",
        "--shots",
        "1",
        "--episodes",
        "50",
        "--json",
        "--quiet",
        "--results",
        str(tmp_path / "r.sqlite"),
        env=env,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["mean"] > 40, "pixel matching beats 20% chance on glyphs"
    board = run_cli("leaderboard", "--results", str(tmp_path / "r.sqlite"), env=env)
    assert "pixelnn" in board.stdout


@pytest.mark.parametrize("name", registry.names("dataset"))
def test_every_registered_dataset_implements_the_dataset_interface(name):
    source = registry.dataset(name)
    assert isinstance(source, Dataset) and source.name == name
    assert source.summary and source.citation and "\n" not in source.citation
    assert source.protocols and source.default_protocol in source.protocols
    assert all(isinstance(f, DownloadFile) and len(f.md5) == 32 and int(f.md5, 16) >= 0 for f in source.manifest)
    assert source.default_shift is None or set(source.default_shift) <= set(source.domains)
    present, status = source.status(Path("/nonexistent"))
    assert isinstance(present, bool) and status and "\n" not in status


def test_a_dataset_plug_in_must_subclass_the_interface(monkeypatch):
    class Loose:  # has the attributes, but the engine reads datasets only through Dataset
        name, protocols, default_protocol = "loose", ("p",), "p"

    class Entry:
        value = "somewhere:Loose"

        def load(self):
            return Loose

    monkeypatch.setattr(registry, "_entries", lambda kind: {"loose": Entry()})
    with pytest.raises(FewshotError, match=r"'loose' .*Loose.* does not subclass fewshot.core.dataset.Dataset"):
        registry.dataset("loose")


def test_a_dataset_overrides_only_what_it_has(tmp_path):
    class Minimal(Dataset):
        name, summary, citation, protocols, default_protocol = "minimal", "s", "c", ("p",), "p"

    source = Minimal()
    assert (source.domains, source.default_shift, dict(source.descriptions), source.manifest, source.variants) == (
        (),
        None,
        {},
        (),
        False,
    )
    assert source.status(tmp_path) == (True, "reads no files of its own")


@pytest.mark.parametrize("name", registry.names("importer"))
def test_every_import_format_implements_the_importer_interface(name):
    reader = registry.importer(name)
    assert isinstance(reader, Importer) and reader.name == name and reader.summary
    assert set(reader.options) <= {"csv", "size", "channels", "force"}, "the command line's format options"


def test_a_third_party_dataset_plugs_in_like_a_builtin(tmp_path):
    """The README's worked example (tests/dataset_plugin), installed as a package, on doodles drawn here."""
    env = _installed(PLUGIN.parent / "dataset_plugin", tmp_path / "site")
    root = tmp_path / "data"
    (root / "quickdraw").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for category in range(20):  # a bright square at a place of its own, jittered by a pixel
        top, left = divmod(category, 5)
        bitmaps = np.zeros((100, 28, 28), dtype=np.uint8)
        for i, (dy, dx) in enumerate(rng.integers(0, 2, (100, 2))):
            bitmaps[i, 4 * top + dy : 4 * top + dy + 6, 4 * left + dx : 4 * left + dx + 6] = 255
        np.save(root / "quickdraw" / f"shape{category:02d}.npy", bitmaps.reshape(100, 784))
    listed = run_cli("datasets", "--data-root", str(root), env=env)
    assert "quickdraw  doodles of 345 categories" in listed.stdout and "present: 20 categories in" in listed.stdout
    done = run_cli(
        "eval",
        "--learner",
        "protonet",
        "--dataset",
        "quickdraw",
        "--data-root",
        str(root),
        "--ways",
        "2",
        "--shots",
        "1",
        "--queries",
        "2",
        "--episodes",
        "5",
        "--budget",
        "5steps",
        "--json",
        "--quiet",
        "--results",
        str(tmp_path / "r.sqlite"),
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["protocol"] == "categories"
