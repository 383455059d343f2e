#!/usr/bin/env python3
"""Checks of README.md and docs/*.md against the repository.

  check_docs.py SOURCE_DIR paths
      Every repository path the documents name exists: paths in inline code
      or code blocks that start with a top-level folder (.ci/ bench/ config/
      docs/ examples/ include/ lua/ producer/ python/ scripts/ shared/ tests/
      worker/) or are compose.yaml, Dockerfile or CMakeLists.txt (a trailing
      :LINE and punctuation stripped; globs, URLs and build outputs ignored),
      and the targets of relative markdown links (from the document's
      folder). Fails with the list of missing paths.

  check_docs.py SOURCE_DIR producer-library BUILD_DIR [SANITIZE]
      The compile block of docs/producer-library.md (the one that runs
      pkg-config), run as written by bash -e in a temporary copy of the
      checkout whose build/ is BUILD_DIR; then the C fragment of that page,
      in a main(), built with pkg-config mutirao alone and run. Both run on
      the embedded backend (no MUTIRAO_* variables). Skipped (exit 77) in a
      sanitizer build: the library then needs the sanitizer's runtime.
"""
import glob
import os
import re
import subprocess
import sys
import tempfile

TOP_DIRS = (".ci", "bench", "config", "docs", "examples", "include", "lua", "producer",
            "python", "scripts", "shared", "tests", "worker")
TOP_FILES = ("compose.yaml", "Dockerfile", "CMakeLists.txt")

# a candidate path: a top-level folder and what follows, or a top-level file,
# not preceded by a character that would make it part of a longer path
PATH_RE = re.compile(r"(?<![\w./$~-])((?:%s)/[^\s`'\"()<>\[\],;|]*|(?:%s)(?![\w.-]))" % (
    "|".join(re.escape(d) for d in TOP_DIRS), "|".join(re.escape(f) for f in TOP_FILES)))
LINK_RE = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
GLOB_CHARS = set("*?{}[]")


def documents(src):
    docs = [os.path.join(src, "README.md")]
    docs += sorted(glob.glob(os.path.join(src, "docs", "*.md")))
    return [d for d in docs if os.path.isfile(d)]


def clean(path):
    path = re.sub(r"(:\d+)+$", "", path)           # file.c:12 or file.c:12:3
    path = path.rstrip(".,;:!?)]}'\"`")
    path = re.sub(r"(:\d+)+$", "", path)           # file.c:12.
    return path


def code_spans(text):
    """(line number, code text) of fenced blocks and inline code."""
    out = []
    fence = None
    for n, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fence = None if fence else n
            continue
        if fence:
            out.append((n, line))
        else:
            out.extend((n, m) for m in re.findall(r"`([^`]+)`", line))
    return out


def check_paths(src):
    missing = []
    for doc in documents(src):
        rel = os.path.relpath(doc, src)
        text = open(doc, encoding="utf-8").read()
        seen = set()
        for n, code in code_spans(text):
            for m in PATH_RE.finditer(code):
                path = clean(m.group(1))
                if not path or "://" in code[max(0, m.start() - 10):m.start()]:
                    continue
                if GLOB_CHARS & set(path) or (path, n) in seen:
                    continue
                seen.add((path, n))
                if not os.path.exists(os.path.join(src, path)):
                    missing.append("%s:%d: %s" % (rel, n, path))
        for n, line in enumerate(text.splitlines(), 1):
            for target in LINK_RE.findall(line):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
                    continue                       # a URL or an anchor on the page
                path = target.split("#", 1)[0]
                if not path or GLOB_CHARS & set(path):
                    continue
                full = os.path.normpath(os.path.join(os.path.dirname(doc), path))
                if not os.path.exists(full):
                    missing.append("%s:%d: link %s (%s)" % (rel, n, target,
                                                             os.path.relpath(full, src)))
    if missing:
        print("paths named in the documentation that do not exist:")
        for m in missing:
            print("  " + m)
        return 1
    print("every path named in %d documents exists" % len(documents(src)))
    return 0


def blocks(text, lang):
    return re.findall(r"^```%s\n(.*?)^```" % lang, text, re.S | re.M)


def run(cmd, cwd, env, what):
    p = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True, timeout=300)
    print("---- %s (exit %d) ----\n%s" % (what, p.returncode, p.stdout))
    return p


def check_producer_library(src, build, sanitize):
    if sanitize:
        print("skipped: a %s build's libmutirao needs the sanitizer runtime" % sanitize)
        return 77
    doc = os.path.join(src, "docs", "producer-library.md")
    text = open(doc, encoding="utf-8").read()
    sh = [b for b in blocks(text, "sh") if "pkg-config" in b]
    frag = blocks(text, "c")
    if len(sh) != 1 or len(frag) != 1:
        print("docs/producer-library.md: expected one sh block running pkg-config and one c "
              "block, found %d and %d" % (len(sh), len(frag)))
        return 1
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MUTIRAO_") and k not in ("PKG_CONFIG_PATH", "LD_LIBRARY_PATH")}
    failed = 0
    with tempfile.TemporaryDirectory(prefix="mutirao-docs-") as tmp:
        # the root of a checkout built into build/: the sources, and build/
        root = os.path.join(tmp, "checkout")
        os.mkdir(root)
        for name in os.listdir(src):
            if name not in ("build", ".git"):
                os.symlink(os.path.join(src, name), os.path.join(root, name))
        os.symlink(build, os.path.join(root, "build"))
        print("---- the compile block of docs/producer-library.md ----\n" + sh[0])
        p = run(["bash", "-e", "-c", sh[0]], root, env, "its output")
        if p.returncode != 0 or "doubled 1..10: total 110" not in p.stdout:
            print("FAIL: the documented commands did not build and run the example")
            failed = 1
        # the fragment, in a main(): needs nothing but mutirao
        app = os.path.join(tmp, "app.c")
        with open(app, "w") as f:
            f.write("#include <stdio.h>\n#include <mutirao.h>\n\nint main(void)\n{\n")
            f.write(frag[0])
            f.write("    return ok == 1 && len == 2 ? 0 : 1;\n}\n")
        cmd = ('export PKG_CONFIG_PATH="%s/lib/pkgconfig"; cc -o app app.c -Wl,-rpath,"%s/lib" '
               '$(pkg-config --cflags --libs mutirao) && ./app' % (build, build))
        p = run(["bash", "-e", "-c", cmd], tmp, env, "the C fragment: " + cmd)
        if p.returncode != 0:
            print("FAIL: the C fragment of docs/producer-library.md does not build or run")
            failed = 1
    if not failed:
        print("docs/producer-library.md: the compile block and the C fragment work")
    return failed


def main(argv):
    if len(argv) >= 3 and argv[2] == "paths":
        return check_paths(argv[1])
    if len(argv) >= 4 and argv[2] == "producer-library":
        return check_producer_library(os.path.abspath(argv[1]), os.path.abspath(argv[3]),
                                      argv[4] if len(argv) > 4 else "")
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
