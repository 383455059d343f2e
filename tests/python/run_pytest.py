#!/usr/bin/env python3
"""tests/python/run_pytest.py SOURCE_DIR BUILD_DIR install|embedded|fleet:
the Python producer (python/) as a user installs it, then its pytest tests.

  install   a venv in BUILD_DIR/python/venv (--system-site-packages, so the
            distribution's msgpack, pytest and setuptools serve, with no
            network), then `pip install --no-index --no-build-isolation` of
            a copy of python/ (pip and setuptools write into the tree they
            build: the copy keeps the checkout clean); checks that the
            installed package, not the source, is imported.
  embedded  pytest -m "not fleet" in that venv: the embedded backend and
            how the library is found.
  fleet     pytest -m fleet: real Kafka and Redis, whose addresses come from
            MUTIRAO_TEST_KAFKA_BROKERS / MUTIRAO_TEST_REDIS_URL (tests/
            services.sh); without them exit 77 (skipped), or 1 when CI is set.

The venv's interpreter is the first of $MUTIRAO_TEST_PYTHON, this one and
/usr/bin/python3 that has venv, msgpack, pytest and setuptools
(scripts/deps.sh installs Debian's python3-venv, python3-msgpack,
python3-pytest, python3-setuptools). The tests run with MUTIRAO_LIB set to
BUILD_DIR/lib/libmutirao.so, in a scratch folder under BUILD_DIR/python.
"""
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "helpers"))
import mutirao_test  # noqa: E402

SRC, BUILD, MODE = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2]), sys.argv[3]
HERE = os.path.join(BUILD, "python")
VENV = os.path.join(HERE, "venv")
COPY = os.path.join(HERE, "src")
VPY = os.path.join(VENV, "bin", "python")
NEEDS = "import venv, ensurepip, msgpack, pytest, setuptools"


def sh(args, **kw):
    print("+", " ".join(args), flush=True)
    return subprocess.run(args, stdin=subprocess.DEVNULL, **kw)


def base_python():
    seen = []
    for cand in (os.environ.get("MUTIRAO_TEST_PYTHON"), sys.executable, "/usr/bin/python3"):
        if not cand or cand in seen or not os.path.exists(cand):
            continue
        seen.append(cand)
        if subprocess.run([cand, "-c", NEEDS], capture_output=True).returncode == 0:
            return cand
    print("FAIL: no python3 with venv, ensurepip, msgpack, pytest and setuptools among %s: "
          "run scripts/deps.sh (python3-venv python3-msgpack python3-pytest python3-setuptools)"
          % seen)
    sys.exit(1)


def install():
    py = base_python()
    shutil.rmtree(HERE, ignore_errors=True)
    os.makedirs(HERE)
    if sh([py, "-m", "venv", "--system-site-packages", VENV]).returncode != 0:
        sys.exit("FAIL: python -m venv")
    shutil.copytree(os.path.join(SRC, "python"), COPY,
                    ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info", ".*"))
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_CACHE_DIR="1")
    if sh([VPY, "-m", "pip", "install", "--no-index", "--no-build-isolation", COPY], cwd=HERE,
          env=env).returncode != 0:
        sys.exit("FAIL: pip install ./python")
    # imported from the venv's site-packages, with its py.typed
    p = sh([VPY, "-c", "import mutirao, os; d = os.path.dirname(mutirao.__file__); "
            "print(d); assert os.path.isfile(os.path.join(d, 'py.typed'))"],
           cwd=HERE, capture_output=True, text=True)
    where = p.stdout.strip()
    if p.returncode != 0 or not where.startswith(VENV) or "site-packages" not in where:
        sys.exit("FAIL: the installed package is not what is imported: %s%s" % (p.stdout, p.stderr))
    print("installed:", where)
    p = sh([VPY, "-m", "pip", "show", "mutirao"], capture_output=True, text=True)
    if p.returncode != 0 or "Requires: msgpack" not in p.stdout:
        sys.exit("FAIL: pip show mutirao:\n%s%s" % (p.stdout, p.stderr))
    print("python.install: ok")


def run_tests(marker):
    if not os.path.exists(VPY):
        sys.exit("FAIL: no venv: run the python.install test first")
    env = mutirao_test.env_without_mutirao(keep_test=True)
    env.update(MUTIRAO_LIB=os.path.join(BUILD, "lib", "libmutirao.so"),
               MUTIRAO_TEST_BIN=os.path.join(BUILD, "bin"), PYTHONDONTWRITEBYTECODE="1")
    if marker == "fleet" and not (env.get("MUTIRAO_TEST_KAFKA_BROKERS") and
                                  env.get("MUTIRAO_TEST_REDIS_URL")):
        mutirao_test.skip(mutirao_test.SERVICES_UNSET)
    work = os.path.join(HERE, "run-" + marker)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    # from a scratch folder: `import mutirao` must find the installed package
    args = [VPY, "-m", "pytest", "-p", "no:cacheprovider", "-v", "-rs",
            "--basetemp", os.path.join(work, "tmp"), "-c", os.path.join(COPY, "pyproject.toml"),
            "--rootdir", COPY, os.path.join(COPY, "tests"),
            "-m", "fleet" if marker == "fleet" else "not fleet"]
    rc = sh(args, cwd=work, env=env).returncode
    sys.exit(rc)


if MODE == "install":
    install()
elif MODE in ("embedded", "fleet"):
    run_tests(MODE)
else:
    sys.exit("usage: run_pytest.py SOURCE_DIR BUILD_DIR install|embedded|fleet")
