"""Reading the pickles datasets are shared in, without running them.

A pickle is a program: each global it names is imported and called while it loads, so unpickling a file
from elsewhere runs whatever its author chose (``os.system``, any class's ``__reduce__``). The
few-shot benchmarks' pickles (mini-ImageNet's ``mini-imagenet-cache-*.pkl``, MetaOptNet's CIFAR-FS and
FC100 pickles) hold only numpy arrays inside plain containers, so :func:`load` admits exactly the globals
numpy's array pickles name (numpy 1.x's ``numpy.core`` and 2.x's ``numpy._core`` alike, protocols 2 to 5)
and the built-in containers; any other global is refused in one line naming the file and the global,
before anything is called. Strings, bytes, numbers, lists, tuples and dicts need no global at all.
"""

from __future__ import annotations

import codecs
import importlib
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

from fewshot.core.data import first_line
from fewshot.core.errors import FewshotError


def _numpy_function(module: str, name: str) -> Any:
    for package in ("numpy._core", "numpy.core"):  # numpy 2, then numpy 1
        try:
            return getattr(importlib.import_module(f"{package}.{module}"), name)
        except (ImportError, AttributeError):
            continue
    return None


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol 2 uses it for bytes (``encode(text, "latin1")``), and nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r}")
    return codecs.encode(text, "latin1")


def _admitted() -> dict[tuple[str, str], Any]:
    reconstruct, scalar = _numpy_function("multiarray", "_reconstruct"), _numpy_function("multiarray", "scalar")
    frombuffer = _numpy_function("numeric", "_frombuffer")  # protocol 5
    admitted: dict[tuple[str, str], Any] = {}
    for package in ("numpy._core", "numpy.core"):  # a pickle names the layout of the numpy that wrote it
        admitted[(f"{package}.multiarray", "_reconstruct")] = reconstruct
        admitted[(f"{package}.multiarray", "scalar")] = scalar
        admitted[(f"{package}.numeric", "_frombuffer")] = frombuffer
    admitted[("numpy", "ndarray")] = np.ndarray
    admitted[("numpy", "dtype")] = np.dtype
    admitted[("_codecs", "encode")] = _latin1_encode
    for builtins in ("builtins", "__builtin__"):  # python 3's and python 2's name
        for kind in (set, frozenset, bytes, bytearray, complex):
            admitted[(builtins, kind.__name__)] = kind
    return {key: value for key, value in admitted.items() if value is not None}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals of :func:`_admitted`; any other raises ``Refused``."""

    admitted: dict[tuple[str, str], Any] = {}

    class Refused(pickle.UnpicklingError):
        pass

    def find_class(self, module: str, name: str) -> Any:
        if not self.admitted:
            RestrictedUnpickler.admitted = _admitted()
        found = self.admitted.get((module, name))
        if found is None:
            raise RestrictedUnpickler.Refused(f"{module}.{name}")
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise RestrictedUnpickler.Refused(f"the persistent id {first_line(repr(pid), 60)}")


def load(path: Path, encoding: str = "ASCII") -> Any:
    """The object pickled in ``path``, read with only arrays and plain containers admitted; a pickle naming
    anything else, or a damaged one, raises a one-line :class:`FewshotError` naming ``path`` and nothing it
    names is called. ``encoding="latin1"`` reads python 2's pickles (MetaOptNet's), whose byte strings numpy's
    arrays are rebuilt from."""
    try:
        with open(path, "rb") as f:  # read as it loads: a large pickle is not held twice
            return RestrictedUnpickler(f, encoding=encoding).load()
    except OSError as err:
        raise FewshotError(f"cannot read {path}: {err.strerror or err}") from None
    except RestrictedUnpickler.Refused as err:
        raise FewshotError(
            f"{path}: the pickle names the global {err}; fewshot reads only arrays and plain containers "
            f"from a pickle, and ran nothing of it"
        ) from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        KeyError,
        IndexError,
        AttributeError,
        struct.error,
        UnicodeDecodeError,
        MemoryError,
        RecursionError,
    ) as err:
        raise FewshotError(
            f"{path} is not a whole pickle of arrays ({type(err).__name__}: {first_line(err)}): "
            f"is the file truncated? compare its md5 with the release's"
        ) from None
