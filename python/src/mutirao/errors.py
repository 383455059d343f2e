"""mutirao.errors: the exceptions of the Python producer.

libmutirao's functions return 0 or a negative MUTIRAO_E* code
(include/mutirao.h) and describe the failure in words through
mutirao_last_error(). Each code raises the class of its family below, with
that message as the exception's text; ``code`` and ``errname`` keep the
number and its name ("ENOPOOL"). A task that ran and failed is not a code:
it raises TaskError, with the task's error message and Lua traceback.
"""
from __future__ import annotations

import builtins
from typing import Any, Dict, Optional, Type

__all__ = [
    "MutiraoError",
    "LibraryNotFoundError",
    "InvalidArgumentError",
    "ConfigError",
    "ClientClosedError",
    "PoolError",
    "PoolNotFoundError",
    "PoolExistsError",
    "PoolClosedError",
    "QueueFullError",
    "LuaSyntaxError",
    "TaskNotFoundError",
    "TimeoutError",
    "InternalError",
    "TaskError",
    "error_for_code",
]


class MutiraoError(Exception):
    """Any failure of libmutirao. ``str(e)`` is the C library's message."""

    def __init__(self, message: str, code: Optional[int] = None, errname: Optional[str] = None):
        super().__init__(message)
        self.message = message
        #: the negative MUTIRAO_E* value (None for errors not from a C code)
        self.code = code
        #: the code's name, e.g. "ENOPOOL"
        self.errname = errname

    def __repr__(self) -> str:
        if self.errname:
            return "%s(%r, %s)" % (type(self).__name__, self.message, self.errname)
        return "%s(%r)" % (type(self).__name__, self.message)


class LibraryNotFoundError(MutiraoError, OSError):
    """libmutirao.so could not be found or loaded (see MUTIRAO_LIB)."""


class InvalidArgumentError(MutiraoError, ValueError):
    """EINVAL, EARGS, ETOOBIG: a bad name, argument or size."""


class ConfigError(MutiraoError):
    """ECONFIG, ENOTSUP: the configuration cannot be used."""


class ClientClosedError(MutiraoError):
    """ECLOSED: the client is closed (or was closed while the call waited)."""


class PoolError(MutiraoError):
    """The pool family: ENOPOOL, EEXIST, EPOOLCLOSED, EQUEUEFULL."""


class PoolNotFoundError(PoolError, LookupError):
    """ENOPOOL: no pool of that name."""


class PoolExistsError(PoolError):
    """EEXIST: an open pool already has that name."""


class PoolClosedError(PoolError):
    """EPOOLCLOSED: the pool accepts no more tasks."""


class QueueFullError(PoolError):
    """EQUEUEFULL: the queue of a no-block pool is full."""


class LuaSyntaxError(MutiraoError):
    """ESYNTAX: the task's Lua source does not compile (or is bytecode)."""


class TaskNotFoundError(MutiraoError, LookupError):
    """ENOTASK: an unknown task id (another client's, or forgotten)."""


class TimeoutError(MutiraoError, builtins.TimeoutError):  # noqa: A001 (like asyncio's)
    """ETIMEDOUT: the wait ran out (also a builtins.TimeoutError)."""


class InternalError(MutiraoError):
    """ENOMEM, ETHREAD, EINTERNAL and unknown codes: the library failed
    (an unreachable Kafka or Redis on the fleet is reported so)."""


class TaskError(MutiraoError):
    """The task ran and failed: raised by await_result.

    ``error`` is the task's error value as it came back (usually a string:
    the message, then "stack traceback:" and the Lua traceback),
    ``lua_message`` its first part and ``traceback`` the Lua traceback
    (None when there is none, e.g. for a table raised with error())."""

    def __init__(self, task_id: str, error: Any):
        self.task_id = task_id
        self.error = error
        text = error if isinstance(error, str) else repr(error)
        head, sep, tail = text.partition("\nstack traceback:\n")
        self.lua_message = head
        self.traceback: Optional[str] = "stack traceback:\n" + tail if sep else None
        super().__init__(text)


# code -> (name, class): the table of include/mutirao.h (MUTIRAO_ERRNO_MAP)
_CODES: Dict[int, Type[MutiraoError]] = {
    -1: InvalidArgumentError,  # EINVAL
    -2: InternalError,  # ENOMEM
    -3: ConfigError,  # ECONFIG
    -4: ConfigError,  # ENOTSUP
    -5: ClientClosedError,  # ECLOSED
    -6: PoolNotFoundError,  # ENOPOOL
    -7: PoolExistsError,  # EEXIST
    -8: PoolClosedError,  # EPOOLCLOSED
    -9: QueueFullError,  # EQUEUEFULL
    -10: LuaSyntaxError,  # ESYNTAX
    -11: InvalidArgumentError,  # EARGS
    -12: TaskNotFoundError,  # ENOTASK
    -13: TimeoutError,  # ETIMEDOUT
    -14: InvalidArgumentError,  # ETOOBIG
    -15: InternalError,  # ETHREAD
    -16: InternalError,  # EINTERNAL
}


def error_for_code(code: int, message: str, errname: Optional[str] = None) -> MutiraoError:
    """The exception for a MUTIRAO_E* code, carrying the C message."""
    cls = _CODES.get(code, InternalError)
    return cls(message, code, errname)
