"""The restricted unpickler: arrays and plain containers load; a pickle naming anything else runs nothing."""

import os
import pickle
import subprocess

import numpy as np
import pytest

from fewshot.core import safe_pickle
from fewshot.core.errors import FewshotError


class Payload:
    """Runs a command when unpickled, as a hostile pickle would."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class SubprocessPayload(Payload):
    def __reduce__(self):
        return subprocess.call, (["sh", "-c", self.command],)


class Plain:
    """A harmless class of its own: still refused, since loading it would import this module."""

    def __init__(self):
        self.x = 1


ARRAYS = {
    "uint8": np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3),
    "float32": np.linspace(-1, 1, 7, dtype=np.float32),
    "float64 fortran": np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)),
    "int64": np.array([-(2**40), 3], dtype=np.int64),
    "bool": np.array([True, False]),
    "strings": np.array(["n01532829", "n01558993"]),
    "empty": np.zeros((0, 84, 84, 3), dtype=np.uint8),
}


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_arrays_and_plain_containers_round_trip_at_every_protocol(tmp_path, protocol):
    value = {
        "image_data": ARRAYS["uint8"],
        "class_dict": {"n01532829": [0, 1], "n01558993": list(range(2, 4))},
        "arrays": ARRAYS,
        "scalars": (np.int64(7), np.float32(0.5), 3, 2.5, 1 + 2j, None, True),
        "texts": ["a", b"bytes", bytearray(b"ba")],
        "sets": ({1, 2}, frozenset({"x"})),
    }
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps(value, protocol=protocol))
    loaded = safe_pickle.load(path)
    assert loaded["class_dict"] == value["class_dict"] and loaded["texts"] == value["texts"]
    assert loaded["scalars"] == value["scalars"] and loaded["sets"] == value["sets"]
    for key, array in ARRAYS.items():
        assert loaded["arrays"][key].dtype == array.dtype and np.array_equal(loaded["arrays"][key], array), key
    assert np.array_equal(loaded["image_data"], ARRAYS["uint8"])


def test_a_python_2_pickle_of_arrays_loads_as_latin_1(tmp_path):
    # What python 2's cPickle wrote for np.arange(3, dtype=uint8) at protocol 2: numpy.core names, a str buffer.
    raw = (
        b"\x80\x02cnumpy.core.multiarray\n_reconstruct\nq\x01cnumpy\nndarray\nq\x02K\x00\x85U\x01b\x87Rq\x03"
        b"(K\x01K\x03\x85cnumpy\ndtype\nq\x04U\x02u1K\x00K\x01\x87Rq\x05(K\x03U\x01|NNNJ\xff\xff\xff\xffJ"
        b"\xff\xff\xff\xffK\x00tb\x89U\x03\x00\x01\x02tb."
    )
    path = tmp_path / "py2.pkl"
    path.write_bytes(raw)
    assert np.array_equal(safe_pickle.load(path, encoding="latin1"), np.arange(3, dtype=np.uint8))


@pytest.mark.parametrize(
    "payload, named",
    [
        (Payload, ("posix.system",)),
        (SubprocessPayload, ("subprocess.call", "commands.call")),  # protocol 2 writes python 2's name
    ],
)
@pytest.mark.parametrize("protocol", [2, 5])
def test_a_pickle_that_would_run_a_command_is_refused_and_runs_nothing(tmp_path, payload, named, protocol):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"image_data": payload(f"touch {marker}")}, protocol=protocol))
    with pytest.raises(FewshotError) as refused:
        safe_pickle.load(path)
    message = str(refused.value)
    assert any(f"{path}: the pickle names the global {name};" in message for name in named), message
    assert "\n" not in message
    assert "reads only arrays and plain containers" in message
    assert not marker.exists(), "the payload ran"


def test_a_pickle_of_a_class_of_its_own_is_refused(tmp_path):
    path = tmp_path / "class.pkl"
    path.write_bytes(pickle.dumps([Plain()]))
    with pytest.raises(FewshotError, match=r"names the global test_safe_pickle\.Plain"):
        safe_pickle.load(path)
    path.write_bytes(pickle.dumps(Plain))  # the class itself
    with pytest.raises(FewshotError, match=r"names the global test_safe_pickle\.Plain"):
        safe_pickle.load(path)


def test_an_admitted_codec_name_is_not_an_open_door(tmp_path):
    # protocol 2 builds bytes with _codecs.encode(text, "latin1"); any other codec is refused
    path = tmp_path / "codec.pkl"
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x04\x00\x00\x00zlib\x86R.")
    with pytest.raises(FewshotError, match="is not a whole pickle of arrays"):
        safe_pickle.load(path)


@pytest.mark.parametrize("keep", [0, 1, 20, -1])
def test_a_truncated_or_missing_pickle_is_one_line(tmp_path, keep):
    whole = pickle.dumps({"image_data": ARRAYS["uint8"], "class_dict": {"a": [0]}}, protocol=4)
    path = tmp_path / "cut.pkl"
    path.write_bytes(whole[:keep])
    with pytest.raises(FewshotError) as failed:
        safe_pickle.load(path)
    assert str(failed.value).startswith(f"{path} is not a whole pickle of arrays") and "\n" not in str(failed.value)
    with pytest.raises(FewshotError, match=r"cannot read .*nowhere\.pkl"):
        safe_pickle.load(tmp_path / "nowhere.pkl")
