"""bench/fleet_scripts.py: the fleet's Redis scripts as a source tree has
them (shared/wire/fleet_keys.h), for the benchmarks that name or replay
them: their names, their texts (printed by a small C program compiled
against the tree) and sha1 -> name."""
import hashlib
import os
import subprocess
import tempfile

SCRIPTS = ["FLEET_SUBMIT_LUA", "FLEET_DELIVER_LUA", "FLEET_COMPLETE_LUA", "FLEET_NOTIFY_LUA",
           "FLEET_LOOKUP_LUA", "FLEET_REMARK_LUA", "FLEET_DEAD_LUA", "FLEET_RETRY_CLAIM_LUA",
           "FLEET_DLQ_TAKE_LUA", "FLEET_DLQ_REMOVE_LUA"]


def script_texts(src):
    """name -> the script's text (bytes) in SRC's shared/wire/fleet_keys.h;
    subprocess.CalledProcessError when the program does not compile."""
    with tempfile.TemporaryDirectory() as tmp:
        c, exe = os.path.join(tmp, "s.c"), os.path.join(tmp, "s")
        with open(c, "w") as f:
            f.write('#include <stdio.h>\n#include "fleet_keys.h"\nint main(void) {\n')
            for name in SCRIPTS:
                f.write("fputs(%s, stdout); putchar(0);\n" % name)
            f.write("return 0; }\n")
        subprocess.run(["cc", "-I", os.path.join(src, "shared", "wire"), "-I",
                        os.path.join(src, "shared", "base"), "-o", exe, c], check=True)
        out = subprocess.run([exe], capture_output=True, check=True).stdout.split(b"\0")
    return dict(zip(SCRIPTS, out))


def script_names(*srcs):
    """sha1 -> the script's name, over the scripts of each source tree
    (a text that several trees share: the first tree's name)."""
    names = {}
    for src in srcs:
        for name, text in script_texts(src).items():
            names.setdefault(hashlib.sha1(text).hexdigest(), name)
    return names
