"""mutirao.client: Client, one libmutirao handle (mutirao_open).

Every method is one call of include/mutirao.h: arguments are packed into one
msgpack array with the msgpack package, results unpacked from the array the
library returns; errors become the exceptions of mutirao.errors with the
library's message. ctypes releases the GIL during each call, so other
Python threads run while one waits, and a client may be shared by threads.

Waits (await_result, pool_wait) are made of calls of at most _SLICE_MS
each, so that Ctrl-C (KeyboardInterrupt) reaches a waiting thread between
two of them, and so that close() never has to free the handle under a
call that is about to start (see close).
"""
from __future__ import annotations

import ctypes
import math
import os
import re
import threading
import time
import weakref
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import msgpack

from . import _config, _lib
from .errors import ClientClosedError, TaskError, TimeoutError, error_for_code

__all__ = ["Client", "library_version", "ConfigLike"]

ConfigLike = Union[str, "os.PathLike[str]", Mapping[str, Any], None]

_SLICE_MS = 500  # longest single wait inside await_result / pool_wait
_INT_MAX = 2**31 - 1
_STATS_FIELDS = ("workers", "queue", "active", "queued", "completed", "failed", "submitted",
                 "rejected")


def library_version() -> str:
    """The version of the libmutirao actually loaded, e.g. "0.1.0"."""
    return _lib.text(_lib.load().mutirao_version())


def _raise(lib: ctypes.CDLL, rc: int) -> None:
    """Raises the exception of code rc with the thread's last error message."""
    message = _lib.text(lib.mutirao_last_error()) or _lib.text(lib.mutirao_strerror(rc))
    raise error_for_code(rc, message, _lib.text(lib.mutirao_errname(rc)))


def _name(what: str, value: Any) -> bytes:
    """A pool name or task id as the C string the library takes."""
    if not isinstance(value, str):
        raise TypeError("%s must be a str, not %s" % (what, type(value).__name__))
    b = value.encode("utf-8")
    if b"\0" in b:
        raise ValueError("%s may not contain NUL: %r" % (what, value))
    return b


def _deadline(timeout: Optional[float]) -> Optional[float]:
    """The deadline (time.monotonic) of a timeout in seconds; None: none."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError("timeout must be a number of seconds or None, not %s"
                        % type(timeout).__name__)
    if math.isnan(timeout) or timeout < 0:
        raise ValueError("timeout must be >= 0 (None waits for ever), got %r" % timeout)
    return time.monotonic() + timeout


def _slice(deadline: Optional[float]) -> int:
    """Milliseconds the next single wait may take."""
    if deadline is None:
        return _SLICE_MS
    left = deadline - time.monotonic()
    return max(0, min(_SLICE_MS, int(math.ceil(left * 1000))))


def _pack_args(args: Tuple[Any, ...]) -> bytes:
    """The task's arguments as one msgpack array (str -> str, bytes -> bin)."""
    parts = [msgpack.Packer(use_bin_type=True).pack_array_header(len(args))]
    for i, a in enumerate(args, 1):
        try:
            parts.append(msgpack.packb(a, use_bin_type=True))
        except TypeError as e:
            raise TypeError("submit: argument #%d (%s) cannot be sent as msgpack: %s"
                            % (i, type(a).__name__, e)) from None
        except (OverflowError, ValueError) as e:
            raise OverflowError("submit: argument #%d cannot be sent as msgpack: %s"
                                % (i, e)) from None
    return b"".join(parts)


def _freeze(v: Any) -> Any:
    """A decoded map key made hashable (a Lua table used as a key)."""
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple((_freeze(k), _freeze(x)) for k, x in v.items())
    return v


def _pairs(pairs: List[Any]) -> Dict[Any, Any]:
    return {_freeze(k): v for k, v in pairs}


def _unpack(data: bytes) -> List[Any]:
    values: List[Any] = msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True,
                                        object_pairs_hook=_pairs)
    return values


def _close_handle(lib: ctypes.CDLL, handle: ctypes.c_void_p) -> None:
    lib.mutirao_close(handle)


class Client:
    """A producer: creates pools, submits Lua tasks, awaits their results.

    config chooses the configuration, as mutirao_open does:
      - None: $MUTIRAO_CONFIG, else ./config/mutirao.conf, else
        /etc/mutirao/mutirao.conf, else the defaults (the embedded backend);
      - a path (str or os.PathLike): that file (config/mutirao.conf shows
        every key);
      - a dict of keys to values, e.g. {"fleet": True, "kafka.brokers":
        "127.0.0.1:9092", "redis.url": "redis://127.0.0.1:6379",
        "auth.signing_key": "keys/prod.key"}.
    MUTIRAO_* environment variables override the file or dict, as in C.
    With fleet on, pools are Kafka topics run by mutirao-worker processes
    and results come from Redis; otherwise pools run on threads of this
    process. With auth.signing_key set the client signs every task it
    submits (docs/security.md).

    Use it as a context manager, or call close().
    """

    def __init__(self, config: ConfigLike = None):
        lib = _lib.load()
        self._lib = lib
        self._cv = threading.Condition()
        self._calls = 0
        self._closing = False
        handle = ctypes.c_void_p()
        err = ctypes.create_string_buffer(1024)
        if config is None:
            rc = lib.mutirao_open(None, ctypes.byref(handle), err, len(err))
            message = _lib.text(err.value)
        elif isinstance(config, (str, os.PathLike)):
            path = os.fsencode(config)
            if b"\0" in path:
                raise ValueError("config path may not contain NUL")
            rc = lib.mutirao_open(path, ctypes.byref(handle), err, len(err))
            message = _lib.text(err.value)
        elif isinstance(config, Mapping):
            tmp, _ = _config.write_temp(config)
            try:
                rc = lib.mutirao_open(os.fsencode(tmp), ctypes.byref(handle), err, len(err))
            finally:
                os.unlink(tmp)
            # errors name the file and line: name the dict instead
            message = re.sub(re.escape(tmp) + r"(:\d+)?", "config dict", _lib.text(err.value))
        else:
            raise TypeError("config must be None, a path or a dict, not %s"
                            % type(config).__name__)
        if rc != 0:
            raise error_for_code(rc, message or _lib.text(lib.mutirao_strerror(rc)),
                                 _lib.text(lib.mutirao_errname(rc)))
        self._handle = handle
        self._finalizer = weakref.finalize(self, _close_handle, lib, handle)

    # ---- entering and leaving calls ----

    def _enter(self) -> ctypes.c_void_p:
        with self._cv:
            if self._closing:
                raise ClientClosedError("the client is closed", -5, "ECLOSED")
            self._calls += 1
            return self._handle

    def _leave(self) -> None:
        with self._cv:
            self._calls -= 1
            if self._calls == 0:
                self._cv.notify_all()

    def _call(self, fname: str, *args: Any) -> None:
        h = self._enter()
        try:
            rc = getattr(self._lib, fname)(h, *args)
            if rc != 0:
                _raise(self._lib, rc)
        finally:
            self._leave()

    # ---- the API ----

    @property
    def closed(self) -> bool:
        """True once close() has begun."""
        return self._closing

    def pool_create(self, pool: str, workers: Optional[int] = None, queue: Optional[int] = None,
                    *, noblock: bool = False) -> str:
        """Creates a pool and returns its name. workers: tasks running at
        once (None: 4); queue: waiting tasks (None: 2 x workers); noblock:
        a submit to a full queue raises QueueFullError instead of blocking.
        The name is 1-200 of A-Z a-z 0-9 . _ -. PoolExistsError when an
        open pool has that name."""
        name = _name("pool", pool)
        w = 0 if workers is None else workers
        q = -1 if queue is None else queue
        for what, v in (("workers", w), ("queue", q)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError("%s must be an int or None, not %s" % (what, type(v).__name__))
        if (workers is not None and w < 1) or w > _INT_MAX or q < -1 or q > _INT_MAX:
            raise ValueError("workers must be 1 to %d and queue 0 to %d" % (_INT_MAX, _INT_MAX))
        self._call("mutirao_pool_create", name, w, q, _lib.POOL_NOBLOCK if noblock else 0)
        return pool

    def submit(self, pool: str, lua_source: Union[str, bytes], *args: Any) -> str:
        """Submits a task and returns its id. lua_source is a Lua chunk
        (text: bytecode is refused) called with args as `...`; what it
        returns is the task's result. args travel as msgpack: None, bool,
        int (64-bit), float, str, bytes, list/tuple, dict. Blocks while the
        pool's queue is full (QueueFullError for a noblock pool)."""
        name = _name("pool", pool)
        if isinstance(lua_source, str):
            src = lua_source.encode("utf-8")
        elif isinstance(lua_source, (bytes, bytearray, memoryview)):
            src = bytes(lua_source)
        else:
            raise TypeError("lua_source must be a str or bytes, not %s"
                            % type(lua_source).__name__)
        packed = _pack_args(args)
        tid = ctypes.create_string_buffer(_lib.TASK_ID_MAX)
        self._call("mutirao_submit", name, src, len(src), packed, len(packed), tid)
        return _lib.text(tid.value)

    def await_values(self, task_id: str, timeout: Optional[float] = None) -> List[Any]:
        """Like await_result, but always the list of every value the task
        returned (empty when it returned nothing)."""
        tid = _name("task_id", task_id)
        deadline = _deadline(timeout)
        lib = self._lib
        ok = ctypes.c_int()
        res = ctypes.c_void_p()
        n = ctypes.c_size_t()
        while True:
            h = self._enter()
            try:
                rc = lib.mutirao_await(h, tid, _slice(deadline), ctypes.byref(ok),
                                       ctypes.byref(res), ctypes.byref(n))
                if rc == -13 and (deadline is None or time.monotonic() < deadline):
                    continue  # a slice ran out, the wait did not
                if rc == -13:
                    raise TimeoutError("await_result(%r): timeout after %g s" % (task_id, timeout or 0),
                                       rc, "ETIMEDOUT")
                if rc != 0:
                    _raise(lib, rc)
                try:
                    data = ctypes.string_at(res, n.value)
                finally:
                    lib.mutirao_free(res)
            finally:
                self._leave()
            values = _unpack(data)
            if not ok.value:
                raise TaskError(task_id, values[0] if values else "task failed")
            return values

    def await_result(self, task_id: str, timeout: Optional[float] = None) -> Any:
        """Waits for a task of this client (on the fleet: of any producer)
        and returns what it returned: None for no value, the value for one,
        a tuple for several. timeout in seconds (None: for ever) raises
        mutirao.TimeoutError when it runs out. A task that failed raises
        TaskError (its message and Lua traceback). A result can be awaited
        again."""
        values = self.await_values(task_id, timeout)
        if not values:
            return None
        if len(values) == 1:
            return values[0]
        return tuple(values)

    def pool_stats(self, pool: str) -> Dict[str, int]:
        """The pool's counters: workers, queue, active, queued, completed,
        failed, submitted, rejected. PoolNotFoundError."""
        name = _name("pool", pool)
        st = _lib.Stats()
        self._call("mutirao_pool_stats", name, ctypes.byref(st))
        return {f: int(getattr(st, f)) for f in _STATS_FIELDS}

    def pool_wait(self, pool: str, timeout: Optional[float] = None) -> None:
        """Waits until the pool has no task queued or running (whoever
        submitted them); timeout in seconds (None: for ever) raises
        mutirao.TimeoutError. The pool stays usable."""
        name = _name("pool", pool)
        deadline = _deadline(timeout)
        while True:
            h = self._enter()
            try:
                rc = self._lib.mutirao_pool_wait(h, name, _slice(deadline))
                if rc == -13 and (deadline is None or time.monotonic() < deadline):
                    continue
                if rc == -13:
                    raise TimeoutError("pool_wait(%r): timeout after %g s" % (pool, timeout or 0), rc,
                                       "ETIMEDOUT")
                if rc != 0:
                    _raise(self._lib, rc)
                return
            finally:
                self._leave()

    def pool_close(self, pool: str) -> None:
        """Stops the pool accepting tasks; queued and running ones finish."""
        self._call("mutirao_pool_close", _name("pool", pool))

    def close(self) -> None:
        """Closes the client: its pools stop accepting tasks (their tasks
        still finish, in the background), unawaited results are dropped,
        and calls waiting in other threads raise ClientClosedError. Safe
        to call twice.

        mutirao_close frees the handle, and no call may start on it once
        it has begun: so new calls are refused first, and the handle is
        closed when the calls already made have returned (each wait lasts
        at most a slice), or after a grace period in which a call blocked
        in the library itself (a submit to a full queue) gets
        ClientClosedError from mutirao_close."""
        with self._cv:
            if self._closing:
                return
            self._closing = True
            self._cv.wait_for(lambda: self._calls == 0, timeout=(_SLICE_MS + 1500) / 1000)
        self._finalizer()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return "<mutirao.Client %s>" % ("closed" if self._closing else "open")
