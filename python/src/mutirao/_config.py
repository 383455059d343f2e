"""mutirao._config: a configuration given as a dict, written as the
"key = value" file mutirao_open reads (config/mutirao.conf has every key).

The C library reads its configuration from a file only, so a dict becomes a
private temporary file (mode 0600: it may hold passwords) that lives while
mutirao_open reads it. Values: str, int, bool (on/off), a list or tuple of
str (a comma list, e.g. auth.trusted_keys), None (the key is left out).
Keys are checked by the C library, which names the key in its error.
"""
from __future__ import annotations

import os
import re
import tempfile
from typing import Any, Mapping, Tuple

_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")


def _value(key: str, v: Any) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, os.PathLike):
        v = os.fspath(v)
    if isinstance(v, (list, tuple)):
        parts = [os.fspath(p) if isinstance(p, os.PathLike) else p for p in v]
        if not all(isinstance(p, str) for p in parts):
            raise TypeError("config[%r]: a list of str expected" % key)
        v = ",".join(parts)
    if not isinstance(v, str):
        raise TypeError("config[%r]: str, int, bool or a list of str expected, got %s"
                        % (key, type(v).__name__))
    if any(c in v for c in '"\n\r\0'):
        raise ValueError("config[%r]: a value may not hold '\"', a line break or NUL" % key)
    return v


def render(cfg: Mapping[str, Any]) -> str:
    """The file text of a dict configuration."""
    lines = []
    for key, v in cfg.items():
        if not isinstance(key, str) or not _KEY.match(key):
            raise ValueError("config: bad key %r (keys look like 'kafka.brokers')" % (key,))
        if v is None:
            continue
        # quoted: keeps spaces and '#' (the file format has no escapes)
        lines.append('%s = "%s"\n' % (key, _value(key, v)))
    return "".join(lines)


def write_temp(cfg: Mapping[str, Any]) -> Tuple[str, str]:
    """Writes cfg to a new 0600 file; returns (path, text). The caller
    removes the file."""
    text = render(cfg)
    fd, path = tempfile.mkstemp(prefix="mutirao-", suffix=".conf")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    except BaseException:
        os.unlink(path)
        raise
    return path, text
