"""python/tests/test_library.py: how the package finds libmutirao
(MUTIRAO_LIB, the dynamic linker's paths, build/lib under the current
directory) and what it says when it cannot. Each case runs in a fresh
interpreter: a process loads the library once."""
import os
import subprocess
import sys

import pytest

import mutirao

PROBE = "import mutirao; print(mutirao.library_version())"


def lib_path():
    path = os.environ.get("MUTIRAO_LIB")
    if not path:
        pytest.skip("MUTIRAO_LIB not set (tests/python/run_pytest.py sets it)")
    return os.path.realpath(path)


def run(code, env, cwd):
    e = {k: v for k, v in os.environ.items() if k not in ("MUTIRAO_LIB", "LD_LIBRARY_PATH")}
    e.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e,
                          cwd=cwd, timeout=60)


def test_import_needs_no_library(tmp_path):
    p = run("import mutirao; print(mutirao.Client.__name__)", {"MUTIRAO_LIB": "/nonexistent"},
            tmp_path)
    assert p.returncode == 0 and p.stdout == "Client\n", p.stderr


def test_mutirao_lib(tmp_path):
    p = run(PROBE, {"MUTIRAO_LIB": lib_path()}, tmp_path)
    assert p.returncode == 0 and p.stdout == "0.1.0\n", p.stderr


def test_mutirao_lib_missing(tmp_path):
    code = ("import mutirao\ntry:\n    mutirao.Client()\nexcept mutirao.LibraryNotFoundError as e:\n"
            "    print(isinstance(e, OSError), e)")
    p = run(code, {"MUTIRAO_LIB": str(tmp_path / "nope.so")}, tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("True cannot load libmutirao from MUTIRAO_LIB: %s" % (tmp_path / "nope.so"))
    # a library that is not libmutirao
    libc = "libc.so.6"
    p = run(code, {"MUTIRAO_LIB": libc}, tmp_path)
    assert p.returncode == 0 and "not libmutirao" in p.stdout, p.stdout + p.stderr


def test_not_found_anywhere(tmp_path):
    # (unless one is installed system-wide: then it is found, as it should be)
    code = ("import mutirao\ntry:\n    print('found', mutirao.library_version())\n"
            "except mutirao.LibraryNotFoundError as e:\n    print(e)")
    p = run(code, {}, tmp_path)
    assert p.returncode == 0, p.stderr
    if not p.stdout.startswith("found"):
        assert p.stdout.startswith("libmutirao not found: build it") and "MUTIRAO_LIB" in p.stdout
        assert os.path.join(str(tmp_path), "build", "lib", "libmutirao.so") in p.stdout


def test_dynamic_linker_path(tmp_path):
    # find_library("mutirao") looks in LD_LIBRARY_PATH
    p = run(PROBE, {"LD_LIBRARY_PATH": os.path.dirname(lib_path())}, tmp_path)
    assert p.returncode == 0 and p.stdout == "0.1.0\n", p.stderr


def test_build_tree_of_current_directory(tmp_path):
    (tmp_path / "build").mkdir()
    os.symlink(os.path.dirname(lib_path()), tmp_path / "build" / "lib")
    p = run(PROBE, {}, tmp_path)
    assert p.returncode == 0 and p.stdout == "0.1.0\n", p.stderr


def test_package_is_typed():
    here = os.path.dirname(mutirao.__file__)
    assert os.path.isfile(os.path.join(here, "py.typed"))
