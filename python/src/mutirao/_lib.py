"""mutirao._lib: finds and loads libmutirao with ctypes and declares the
functions of include/mutirao.h. Nothing of the C logic is repeated here.

Where the library is looked for, first found wins:
  1. $MUTIRAO_LIB (a path to the .so; nothing else is tried when it is set);
  2. ctypes.util.find_library("mutirao"), then the dynamic linker's own
     search for libmutirao.so.0 (LD_LIBRARY_PATH, ldconfig's cache);
  3. common places: /usr/local/lib, /usr/lib and their multiarch folders,
     /opt/mutirao/lib, and build/lib under the current directory (a build
     tree of the repository).
The library is loaded on first use, so `import mutirao` works without it.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import sysconfig
import threading
from typing import List, Optional

from .errors import LibraryNotFoundError

TASK_ID_MAX = 128  # MUTIRAO_TASK_ID_MAX
POOL_NOBLOCK = 1  # MUTIRAO_POOL_NOBLOCK


class Stats(ctypes.Structure):
    """struct mutirao_stats."""

    _fields_ = [
        (name, ctypes.c_int64)
        for name in ("workers", "queue", "active", "queued", "completed", "failed", "submitted",
                     "rejected")
    ]


_lock = threading.Lock()
_lib: Optional[ctypes.CDLL] = None


def _soname() -> str:
    return "libmutirao.dylib" if sys.platform == "darwin" else "libmutirao.so"


def _bare_names() -> List[str]:
    if sys.platform == "darwin":
        return ["libmutirao.0.dylib", "libmutirao.dylib"]
    return ["libmutirao.so.0", "libmutirao.so"]


def candidates() -> List[str]:
    """The places tried after find_library, in order."""
    name = _soname()
    dirs = ["/usr/local/lib", "/usr/local/lib64"]
    multiarch = sysconfig.get_config_var("MULTIARCH")
    if multiarch:
        dirs += ["/usr/local/lib/" + multiarch, "/usr/lib/" + multiarch]
    dirs += ["/usr/lib64", "/usr/lib", "/opt/mutirao/lib", os.path.join(sys.prefix, "lib"),
             os.path.join(os.getcwd(), "build", "lib")]
    return [os.path.join(d, name) for d in dirs]


def _declare(lib: ctypes.CDLL) -> None:
    c_int, c_char_p, c_void_p, c_size_t = ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t
    P = ctypes.POINTER
    sigs = {
        "mutirao_version": (c_char_p, []),
        "mutirao_strerror": (c_char_p, [c_int]),
        "mutirao_errname": (c_char_p, [c_int]),
        "mutirao_last_error": (c_char_p, []),
        "mutirao_open": (c_int, [c_char_p, P(c_void_p), c_char_p, c_size_t]),
        "mutirao_close": (None, [c_void_p]),
        "mutirao_pool_create": (c_int, [c_void_p, c_char_p, c_int, c_int, c_int]),
        "mutirao_pool_close": (c_int, [c_void_p, c_char_p]),
        "mutirao_submit": (c_int, [c_void_p, c_char_p, c_char_p, c_size_t, c_char_p, c_size_t,
                                   c_char_p]),
        "mutirao_await": (c_int, [c_void_p, c_char_p, c_int, P(c_int), P(c_void_p), P(c_size_t)]),
        "mutirao_free": (None, [c_void_p]),
        "mutirao_pool_stats": (c_int, [c_void_p, c_char_p, P(Stats)]),
        "mutirao_pool_wait": (c_int, [c_void_p, c_char_p, c_int]),
    }
    for fname, (restype, argtypes) in sigs.items():
        fn = getattr(lib, fname)  # AttributeError: not a libmutirao
        fn.restype = restype
        fn.argtypes = argtypes


def _try(path: str, tried: List[str]) -> Optional[ctypes.CDLL]:
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        tried.append("%s (%s)" % (path, e))
        return None
    try:
        _declare(lib)
    except AttributeError as e:
        tried.append("%s (not libmutirao: %s)" % (path, e))
        return None
    return lib


def load() -> ctypes.CDLL:
    """The loaded library (loaded once); LibraryNotFoundError if none."""
    global _lib
    with _lock:
        if _lib is not None:
            return _lib
        tried: List[str] = []
        env = os.environ.get("MUTIRAO_LIB")
        if env:
            lib = _try(env, tried)
            if lib is None:
                raise LibraryNotFoundError("cannot load libmutirao from MUTIRAO_LIB: " + tried[0])
        else:
            lib = None
            found = ctypes.util.find_library("mutirao")
            if found:
                lib = _try(found, tried)
            # the dynamic linker's own search (LD_LIBRARY_PATH, its cache)
            for name in _bare_names():
                if lib is None:
                    lib = _try(name, tried)
            for path in candidates():
                if lib is not None:
                    break
                if os.path.exists(path):
                    lib = _try(path, tried)
                else:
                    tried.append(path)
            if lib is None:
                raise LibraryNotFoundError(
                    "libmutirao not found: build it (cmake -S . -B build && cmake --build build) "
                    "and set MUTIRAO_LIB to the path of libmutirao.so, or install it where the "
                    "dynamic linker finds it; tried: find_library('mutirao')%s, %s"
                    % (" -> " + found if found else " (nothing)", ", ".join(tried)))
        _lib = lib
        return lib


def text(b: Optional[bytes]) -> str:
    """A C string from the library as str (its messages may quote any bytes)."""
    return b.decode("utf-8", "replace") if b else ""
