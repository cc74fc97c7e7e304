import os
import pickle
import random
import zipfile

import pytest
import torch

from conftest import damage_member, run_main
from fewshot.core.errors import FewshotError
from fewshot.run import checkpoint, experiment
from fewshot.run.training import Budget

CPU = torch.device("cpu")


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


def _weights(path):
    checkpoint.save(
        path, {"learner": "protonet", "state": {"model": {"w": torch.ones(64, 64)}}, "complete": True, "step": 1}
    )


def test_a_damaged_byte_in_the_weights_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "a.pt"
    _weights(path)
    damage_member(path)
    loaded = torch.load(path, weights_only=True)  # torch alone reads damaged weights without a word
    assert not torch.equal(loaded["state"]["model"]["w"], torch.ones(64, 64))
    with pytest.raises(FewshotError) as raised:
        checkpoint.load(path)
    message = str(raised.value)
    assert str(path) in message and "fails its CRC-32 check" in message and "\n" not in message


def test_a_raw_pickle_is_refused_in_one_whole_line_without_torch_s_warnings(tmp_path, recwarn):
    path = tmp_path / "raw.pt"
    with open(path, "wb") as f:
        pickle.dump({"format": checkpoint.FORMAT, "state": {}}, f, protocol=4)
    with pytest.raises(FewshotError) as raised:
        checkpoint.load(path)
    message = str(raised.value)
    assert message.endswith("train a new one with `fewshot train`") and "\n" not in message
    assert message.count("`") % 2 == 0 and message.count("(") == message.count(")"), message
    assert not recwarn.list, [str(w.message) for w in recwarn.list]


def test_a_raw_pickle_checkpoint_on_the_command_line_is_one_line_exit_2(tmp_path, capfd, recwarn, glyphs):
    path = tmp_path / "raw.pt"
    with open(path, "wb") as f:
        pickle.dump({"format": checkpoint.FORMAT, "state": {}}, f, protocol=4)
    argv = "eval --learner protonet --ways 5 --shots 1 --episodes 2 --checkpoint".split()
    code, _, err = run_main(capfd, *argv, str(path))
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: checkpoint "), err
    assert err.rstrip().endswith("`fewshot train`") and "Warning" not in err
    assert err.count("`") % 2 == 0 and err.count("(") == err.count(")"), f"a message cut mid-sentence: {err}"
    assert not recwarn.list, [str(w.message) for w in recwarn.list]


def test_a_damaged_cached_checkpoint_is_trained_anew_saying_so(glyphs, capfd):
    cell = experiment.resolve_cell(glyphs, 5, 1, 5, 10, 0)
    setup = experiment.make_setup("protonet", {"train_ways": "4"}, glyphs, cell)
    first = experiment.ensure_trained(setup, Budget(steps=2), CPU, progress=False)
    damage_member(first.checkpoint)
    capfd.readouterr()
    again = experiment.ensure_trained(setup, Budget(steps=2), CPU, progress=False)
    err = capfd.readouterr().err
    assert f"the cached checkpoint {first.checkpoint} is corrupt" in err and "training it anew" in err, err
    assert again.outcome is not None, "trained, not restored from the damaged file"
    checkpoint.load(again.checkpoint)  # the entry is whole again
    for key, value in first.learner.state_dict().items():
        assert torch.equal(value, again.learner.state_dict()[key]), key


def test_a_damaged_out_checkpoint_is_refused(glyphs, tmp_path):
    cell = experiment.resolve_cell(glyphs, 5, 1, 5, 10, 0)
    setup = experiment.make_setup("protonet", {"train_ways": "4"}, glyphs, cell)
    out = tmp_path / "mine.pt"
    experiment.ensure_trained(setup, Budget(steps=1), CPU, out=out, progress=False)
    damage_member(out)
    with pytest.raises(FewshotError, match="fails its CRC-32 check"):
        experiment.ensure_trained(setup, Budget(steps=1), CPU, out=out, progress=False)


@pytest.mark.parametrize("field, value", [("step", "ten"), ("config", [1]), ("state", None), ("elapsed", "1s")])
def test_a_checkpoint_whose_fields_have_other_types_is_refused(tmp_path, field, value):
    path = tmp_path / "a.pt"
    checkpoint.save(path, {"learner": "protonet", "state": {}, "complete": True, "step": 1, field: value})
    with pytest.raises(FewshotError, match=f"is not a fewshot checkpoint \\(its {field} is a "):
        checkpoint.load(path, learner="protonet")


def test_compressed_members_are_refused_before_any_is_unpacked(tmp_path):
    path = tmp_path / "a.pt"
    _weights(path)
    packed = tmp_path / "packed.pt"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, source.read(info))
    with pytest.raises(FewshotError, match="is compressed"):
        checkpoint.load(packed)


def test_a_damaged_cached_partial_training_starts_over_saying_so(glyphs, capfd):
    cell = experiment.resolve_cell(glyphs, 5, 1, 5, 10, 0)
    setup = experiment.make_setup("protonet", {"train_ways": "3"}, glyphs, cell)
    first = experiment.ensure_trained(setup, Budget(steps=2), CPU, progress=False)
    partial = first.checkpoint.with_name(first.checkpoint.name + ".partial")
    first.checkpoint.rename(partial)  # as a killed training leaves it
    damage_member(partial)
    capfd.readouterr()
    again = experiment.ensure_trained(setup, Budget(steps=2), CPU, progress=False)
    err = capfd.readouterr().err
    assert f"the cached checkpoint {partial} is corrupt" in err and "training it anew" in err, err
    assert again.steps == 2 and not partial.exists()
    for key, value in first.learner.state_dict().items():
        assert torch.equal(value, again.learner.state_dict()[key]), key
