import os
import pickle
import random

import pytest
import torch

from fewshot.core.errors import FewshotError
from fewshot.run import checkpoint


def _good(path):
    checkpoint.save(
        path, {"learner": "protonet", "state": {"model": {"w": torch.ones(3)}}, "complete": True, "step": 1}
    )


def test_round_trip(tmp_path):
    _good(tmp_path / "a.pt")
    payload = checkpoint.load(tmp_path / "a.pt", learner="protonet")
    assert torch.equal(payload["state"]["model"]["w"], torch.ones(3)) and payload["format"] == checkpoint.FORMAT


def test_another_learners_checkpoint_is_refused(tmp_path):
    _good(tmp_path / "a.pt")
    with pytest.raises(FewshotError, match="trained by 'protonet', not 'finetune'"):
        checkpoint.load(tmp_path / "a.pt", learner="finetune")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_checkpoints_are_refused(tmp_path, damage):
    path = tmp_path / "a.pt"
    _good(path)
    raw = path.read_bytes()
    path.write_bytes({"truncate": raw[: len(raw) // 2], "garbage": os.urandom(4096), "empty": b""}[damage])
    with pytest.raises(FewshotError, match="corrupt or not a fewshot checkpoint"):
        checkpoint.load(path)


def test_any_random_bytes_are_refused_as_corrupt(tmp_path):
    path = tmp_path / "random.pt"
    rng = random.Random(0)
    for _ in range(300):  # random bytes break the unpickler in many ways (IndexError, TypeError, ...)
        path.write_bytes(bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 3000))))
        with pytest.raises(FewshotError, match=r"corrupt or not a fewshot checkpoint|not a fewshot checkpoint"):
            checkpoint.load(path)


def test_code_in_a_checkpoint_is_never_run(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"format": checkpoint.FORMAT, "x": Evil()}, f)
    torch.save({"format": checkpoint.FORMAT, "x": Evil()}, tmp_path / "evil2.pt")
    for candidate in (path, tmp_path / "evil2.pt"):
        with pytest.raises(FewshotError):
            checkpoint.load(candidate)
    assert not (tmp_path / "pwned").exists()


def test_other_files_are_refused(tmp_path):
    torch.save({"weights": torch.ones(2)}, tmp_path / "plain.pt")
    with pytest.raises(FewshotError, match="not a fewshot checkpoint"):
        checkpoint.load(tmp_path / "plain.pt")
    with pytest.raises(FewshotError, match="no checkpoint at"):
        checkpoint.load(tmp_path / "missing.pt")
