/*
** allow.h: the vocabulary of the task sandbox (what a fleet task may do
** beyond the safe default): the worker's `worker.allow` list, a pool's
** `allow` option and the `allow` field of a task envelope all use it.
** No I/O, no Lua (lua/pool/sandbox.h applies it to a VM).
**
** Items (comma list, or a Lua list of strings for pool_create):
**   os.execute  os.remove  os.rename  os.tmpname   the functions of that name
**   os.getenv        os.getenv of every variable: without it a sandboxed
**                    task gets nil for MUTIRAO_* variables and for names
**                    with PASSWORD, PASSWD, SECRET, TOKEN, KEY or CREDENTIAL
**                    in them (any case); other variables read as usual
**   io.popen                                        io.popen
**   io.open.write    io.open in a mode other than read ("w", "a", "r+"...),
**                    io.output(FILENAME), io.tmpfile
**   io.open.special  opening what is not a regular file (FIFOs, sockets,
**                    character and block devices, tracing files) and any
**                    file under /proc (statfs type PROC_SUPER_MAGIC:
**                    /proc/self/environ, /proc/self/mem, /proc/self/cmdline
**                    hold the worker's secrets) by io.open, io.lines,
**                    io.input, io.output, loadfile, dofile and require: a
**                    read from the first can block a VM thread
**   package.loadlib  package.loadlib
**   debug            every debug function (debug.traceback is always there)
**   load.binary      binary chunks in load, loadfile, dofile and require;
**                    in worker.allow also tasks whose functions come as
**                    bytecode (else only as source, compiled by the worker)
**   exec  http       the exec and http modules
**   require          C modules by require: in worker.allow any; in a pool's
**                    list, those the worker allows
**   require.NAME     worker.allow only: the C module NAME (NAME: letters,
**                    digits, _ . -)
**   os  io           groups: os.execute,os.remove,os.rename,os.tmpname,
**                    os.getenv and io.popen,io.open.write
**   all              everything above (the sandbox is off)
**   none             nothing (the default; only alone: with other items it
**                    is refused)
** os.exit is never allowed in a pool task (it fails the task). No setting
** but all (the sandbox off) lets a task open the files the worker
** registered as its secrets (sandbox_deny_file: its key and password files,
** its configuration file).
*/
#ifndef MUTIRAO_ALLOW_H
#define MUTIRAO_ALLOW_H

#include <stddef.h>
#include <stdint.h>

enum {
    ALLOW_OS_EXECUTE = 1u << 0,
    ALLOW_OS_REMOVE = 1u << 1,
    ALLOW_OS_RENAME = 1u << 2,
    ALLOW_OS_TMPNAME = 1u << 3,
    ALLOW_IO_POPEN = 1u << 4,
    ALLOW_IO_WRITE = 1u << 5,
    ALLOW_LOADLIB = 1u << 6,
    ALLOW_DEBUG = 1u << 7,
    ALLOW_LOAD_BINARY = 1u << 8,
    ALLOW_EXEC = 1u << 9,
    ALLOW_HTTP = 1u << 10,
    ALLOW_REQUIRE = 1u << 11,    /* C modules: any (worker), the worker's (pool) */
    ALLOW_IO_SPECIAL = 1u << 12, /* opening FIFOs, sockets, devices */
    ALLOW_OS_GETENV = 1u << 13,  /* every variable, the secret-looking too */
    ALLOW_ALL_BITS = (1u << 14) - 1,
};

/* In an envelope's `allow` field and a pool's options: set when the pool
 * narrows the sandbox (then the other bits are what it allows), so that
 * "allows nothing" is not 0 (an absent optional field). */
#define ALLOW_PRESENT ((uint64_t)1 << 63)

/* The setting that allows bit (one bit): "os.execute", "io.open.write"... */
const char *allow_name(uint32_t bit);

/* A parsed list. mods: the C modules allowed by name ("a,b", malloc'd, or
 * NULL); any C module when bits has ALLOW_REQUIRE. */
typedef struct allow_set {
    uint32_t bits;
    char *mods;
} allow_set;

/* Checks one item of a list (for the configuration): 0, or -1 with why.
 * pool_list: the pool's vocabulary (no require.NAME). */
int allow_check_item(const char *item, size_t len, int pool_list, char *why, size_t whylen);
/* Parses a comma list ("" = none). 0, -1 (why filled) or -2 (no memory).
 * *out is the caller's to allow_set_free. */
int allow_parse(const char *list, int pool_list, allow_set *out, char *why, size_t whylen);
void allow_set_free(allow_set *s);
/* 1 if s allows the C module name (by ALLOW_REQUIRE or by name). */
int allow_module(const allow_set *s, const char *name);

#endif
