"""A key for a compiled program that covers everything its trace can read.

XLA's compilation cache keys the *lowered* program, so a warm process still traces and
lowers the MCEM chunk (about 1 s on InstEval) before it finds the compiled one. Keeping the
lowered program itself (``jax.export``) skips both, but only a key that changes whenever
the trace could change makes that safe. The trace of a kernel's chunk is a function of

* the source of ``mixedtf`` and the versions of the array libraries (hashed here),
* the kernel object: every attribute reachable from it, arrays by content -- a numpy
  array the trace reads becomes a constant of the program, so its shape is not enough,
* the shapes and dtypes of the call's arguments (added by the backend at the first call).

:func:`program_key` walks the object graph; anything it cannot fingerprint (an object
without attributes whose ``repr`` names only its address) raises
:class:`UnkeyableError`, and the caller compiles without keeping the program.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
from functools import cache
from pathlib import Path
from types import BuiltinFunctionType, FunctionType, MethodType, ModuleType
from typing import Any

import numpy as np
import pandas as pd

SKIP = frozenset({"_data", "_step", "compile_cache"})  # the kernel's device copies and program


class UnkeyableError(TypeError):
    """An object in the kernel's graph that the key cannot cover."""


@cache
def source_digest() -> str:
    """Hash of every Python source file of the installed ``mixedtf``."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.blake2b(digest_size=16)
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def program_key(obj: Any, *extra: Any) -> str:
    """A hex key of ``obj`` (and ``extra``): equal keys mean equal traces (module docstring)."""
    h = hashlib.blake2b(digest_size=20)
    h.update(source_digest().encode())
    h.update(f"{sys.version_info[:3]} numpy {np.__version__}".encode())
    _feed(h, (obj, extra), set())
    return h.hexdigest()


def _filled(cell) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:  # an empty cell
        return False
    return True


def _feed(h, obj: Any, seen: set[int]) -> None:
    def tag(text: str) -> None:
        h.update(text.encode())
        h.update(b"\x00")

    if obj is None or isinstance(obj, bool | int | float | complex | str | bytes):
        tag(f"{type(obj).__name__}:{obj!r}")
        return
    if isinstance(obj, np.generic):
        tag(f"np:{obj.dtype}:{obj!r}")
        return
    if isinstance(obj, np.dtype):
        tag(f"dtype:{obj}")
        return
    if isinstance(obj, ModuleType):
        tag(f"module:{obj.__name__}")
        return
    if isinstance(obj, type | FunctionType | BuiltinFunctionType | MethodType):
        tag(f"callable:{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', obj)}")
        if isinstance(obj, MethodType):  # a bound method reads its object
            _feed(h, obj.__self__, seen)
        elif isinstance(obj, FunctionType):  # a closure reads its cells and defaults
            cells = [c.cell_contents for c in obj.__closure__ or () if _filled(c)]
            _feed(h, (cells, obj.__defaults__, obj.__kwdefaults__), seen)
        return
    if id(obj) in seen:
        tag("seen")
        return
    seen.add(id(obj))
    if isinstance(obj, np.ndarray) or (hasattr(obj, "__array__") and hasattr(obj, "shape")):
        arr = np.asarray(obj)
        tag(f"array:{arr.shape}:{arr.dtype}")
        if arr.dtype == object:  # level labels: pandas' hash (a fixed key, so stable)
            h.update(pd.util.hash_array(arr.ravel()).data)
        else:
            h.update(np.ascontiguousarray(arr).view(np.uint8).reshape(-1).data)
        return
    if isinstance(obj, pd.DataFrame | pd.Series | pd.Index):
        tag(f"pandas:{type(obj).__name__}:{obj.shape}")
        frame = obj.to_frame() if isinstance(obj, pd.Series | pd.Index) else obj
        tag(repr([str(c) for c in frame.columns]))
        tag(repr([str(t) for t in frame.dtypes]))
        h.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().data)
        return
    if isinstance(obj, dict):
        tag(f"dict:{len(obj)}")
        for key in sorted(obj, key=repr):
            tag(repr(key))
            _feed(h, obj[key], seen)
        return
    if isinstance(obj, list | tuple):
        tag(f"{type(obj).__name__}:{len(obj)}")
        for item in obj:
            _feed(h, item, seen)
        return
    if isinstance(obj, set | frozenset):
        tag(f"set:{sorted(map(repr, obj))}")
        return
    module = type(obj).__module__ or ""
    tag(f"object:{module}.{type(obj).__qualname__}")
    if module.split(".")[0] in ("formulaic", "interface_meta"):
        tag(str(obj))  # formulas and model specs: their text fixes the columns
        return
    if dataclasses.is_dataclass(obj):
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    elif hasattr(obj, "__dict__"):
        fields = vars(obj)
    else:
        text = repr(obj)
        if " at 0x" in text:
            raise UnkeyableError(f"cannot key a {type(obj).__qualname__} ({text[:80]})")
        tag(text)
        return
    for name in sorted(fields):
        if name in SKIP:
            continue
        tag(name)
        _feed(h, fields[name], seen)
