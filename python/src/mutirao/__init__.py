"""mutirao: submit Lua tasks to mutirao pools from Python.

A binding of libmutirao (include/mutirao.h) through ctypes: pools run on
threads of this process (the embedded backend) or on a fleet of
mutirao-worker processes (Kafka + Redis), as the configuration says.

    import mutirao
    with mutirao.Client() as c:
        c.pool_create("img", workers=8)
        tid = c.submit("img", "local a, b = ... return a + b", 20, 22)
        assert c.await_result(tid, timeout=5) == 42
"""
from .client import Client, ConfigLike, library_version
from .errors import (
    ClientClosedError,
    ConfigError,
    InternalError,
    InvalidArgumentError,
    LibraryNotFoundError,
    LuaSyntaxError,
    MutiraoError,
    PoolClosedError,
    PoolError,
    PoolExistsError,
    PoolNotFoundError,
    QueueFullError,
    TaskError,
    TaskNotFoundError,
    TimeoutError,
)

__version__ = "0.1.0"

__all__ = [
    "Client",
    "ConfigLike",
    "library_version",
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
]
