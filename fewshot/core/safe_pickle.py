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
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from fewshot.core.data import HashedReader, first_line
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


class Refused(pickle.UnpicklingError):
    """A global (or persistent id) the pickle names that :func:`_admitted` does not hold."""


class _Restricted:
    """The resolution of globals both unpicklers share: only those of :func:`_admitted`; any other raises
    :class:`Refused`, before anything is called."""

    admitted: dict[tuple[str, str], Any] = {}

    def find_class(self, module: str, name: str) -> Any:
        if not _Restricted.admitted:
            _Restricted.admitted = _admitted()
        found = _Restricted.admitted.get((module, name))
        if found is None:
            raise Refused(f"{module}.{name}")
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise Refused(f"the persistent id {first_line(repr(pid), 60)}")


class RestrictedUnpickler(_Restricted, pickle.Unpickler):
    """An unpickler that resolves only the globals of :func:`_admitted`; any other raises ``Refused``."""

    Refused = Refused


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Any failure to read the pickle at ``path`` as one line naming it (see :func:`load`)."""
    try:
        yield
    except OSError as err:
        raise FewshotError(f"cannot read {path}: {err.strerror or err}") from None
    except Refused as err:
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


def load(path: Path, encoding: str = "ASCII") -> Any:
    """The object pickled in ``path``, read with only arrays and plain containers admitted; a pickle naming
    anything else, or a damaged one, raises a one-line :class:`FewshotError` naming ``path`` and nothing it
    names is called. ``encoding="latin1"`` reads python 2's pickles (MetaOptNet's), whose byte strings numpy's
    arrays are rebuilt from."""
    with _reading(path), open(path, "rb") as f:  # read as it loads: a large pickle is not held twice
        return RestrictedUnpickler(f, encoding=encoding).load()


_FORGOTTEN = object()


class _Forgetful(dict):
    """An unpickler's memo that holds no image: an array only weakly (one already given to the caller is
    gone), a long string or bytes not at all. A pickle that refers back to one fails (``UnpicklingError``):
    the few-shot releases' lists never do."""

    LONG = 256

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(value, np.ndarray):
            value = weakref.ref(value)
        elif self._heavy(value):  # a tuple of arguments (an array's state) holds what it names
            value = _FORGOTTEN
        super().__setitem__(key, value)

    @classmethod
    def _heavy(cls, value: Any) -> bool:
        if isinstance(value, (str, bytes, bytearray)):
            return len(value) > cls.LONG
        return isinstance(value, np.ndarray) or (isinstance(value, tuple) and any(map(cls._heavy, value)))

    def __getitem__(self, key: Any) -> Any:
        value = super().__getitem__(key)
        if isinstance(value, weakref.ref):
            value = value()
        if value is None or value is _FORGOTTEN:
            raise pickle.UnpicklingError(f"the pickle refers back to an item it already gave (memo {key})")
        return value


class _Sink(list):
    """The pickle's outermost list, which hands each item on as it is appended and keeps none."""

    def __init__(self, each: Callable[[int, Any], None]):
        super().__init__()
        self.each, self.given = each, 0

    def append(self, item: Any) -> None:
        self.each(self.given, item)
        self.given += 1

    def extend(self, items: Iterable[Any]) -> None:
        for item in items:
            self.append(item)


class _StreamingUnpickler(_Restricted, pickle._Unpickler):
    """Python's own unpickler (the pure-Python one, whose steps can be replaced), restricted as
    :class:`RestrictedUnpickler` is, that hands the outermost list's items on one by one."""

    dispatch: ClassVar[dict[int, Callable[[Any], None]]] = dict(pickle._Unpickler.dispatch)
    # The pure-Python unpickler's own state, which typeshed leaves out.
    stack: list[Any]
    metastack: list[list[Any]]
    append: Callable[[Any], None]
    pop_mark: Callable[[], list[Any]]

    def __init__(self, file: Any, each: Callable[[int, Any], None], encoding: str):
        super().__init__(file, encoding=encoding)
        self.memo = _Forgetful()
        self.sink = _Sink(each)

    def _outermost(self) -> bool:
        return not self.stack and not self.metastack

    def _empty_list(self) -> None:
        self.append(self.sink if self._outermost() else [])

    def _list(self) -> None:
        items = self.pop_mark()
        if self._outermost():
            self.sink.extend(items)
            items = self.sink
        self.append(items)

    dispatch[pickle.EMPTY_LIST[0]] = _empty_list
    dispatch[pickle.LIST[0]] = _list


def stream_list(path: Path, each: Callable[[int, Any], None], encoding: str = "ASCII") -> tuple[int, str]:
    """Read the list pickled in ``path`` item by item, calling ``each(index, item)`` as each item is read and
    keeping none of them, so a pickle of millions of images is never held whole; admitted and refused as by
    :func:`load`. Returns the number of items and the md5 of the file, read once. A pickle of anything but a
    list is refused; an error ``each`` raises is raised as it is (:class:`FewshotError`)."""
    with _reading(path), open(path, "rb") as f:
        hashed = HashedReader(f)
        unpickler = _StreamingUnpickler(hashed, each, encoding)
        content = unpickler.load()
        if content is not unpickler.sink:
            raise FewshotError(f"{path} holds a {type(content).__name__}, not a list")
        return unpickler.sink.given, hashed.rest()
