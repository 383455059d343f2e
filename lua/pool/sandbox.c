/* sandbox.c: the gates of the task sandbox in a pool VM (see sandbox.h).
 *
 * Each gated function is replaced, in its own table, by a C closure whose
 * upvalues are the setting's bit, the original (nil when the ceiling denies
 * it: the original is then gone from the VM) and the function's full name.
 * The gate checks the ceiling and the running task's narrowing, then calls
 * the original with the same arguments (a yield inside it, exec.run or an
 * http request, goes through the continuation). */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "allow.h"
#include "codec.h"
#include "memlimit.h"

/* Largest chunk a sandboxed task compiles (load, loadfile, dofile,
 * require): the parser cannot be stopped by a timeout and its worst case
 * (gotos and labels) is quadratic, about 2 s at this size here. */
#define SANDBOX_CHUNK_MAX (1 << 20)

static allow_set ceiling = {ALLOW_ALL_BITS, NULL};
static int ceiling_set;

int sandbox_set_ceiling(const char *list, char *why, size_t whylen)
{
    allow_set s;
    int rc = allow_parse(list ? list : "", 0, &s, why, whylen);
    if (rc == -2 && why)
        snprintf(why, whylen, "out of memory");
    if (rc != 0)
        return -1;
    allow_set_free(&ceiling);
    ceiling = s;
    ceiling_set = (s.bits & ALLOW_ALL_BITS) != ALLOW_ALL_BITS;
    return 0;
}

int sandbox_active(void)
{
    return ceiling_set;
}

/* ---- the checks ---- */

static uint64_t task_note(lua_State *L)
{
    return memacct_note(memacct_current(L));
}

uint64_t sandbox_current(lua_State *L)
{
    return task_note(L);
}

uint64_t sandbox_narrow(uint64_t a, uint64_t b)
{
    if (!(a & ALLOW_PRESENT))
        return b;
    if (!(b & ALLOW_PRESENT))
        return a;
    return a & b;
}

int sandbox_allows(uint64_t narrowing, uint32_t bit)
{
    if (!(ceiling.bits & bit))
        return 0;
    return !(narrowing & ALLOW_PRESENT) || (narrowing & bit);
}

/* 0 allowed, 1 denied by the ceiling, 2 by the task's pool. */
static int denied(lua_State *L, uint32_t bit)
{
    if (!(ceiling.bits & bit))
        return 1;
    uint64_t n = task_note(L);
    if ((n & ALLOW_PRESENT) && !(n & bit))
        return 2;
    return 0;
}

static int deny_raise(lua_State *L, const char *what, const char *setting, int by)
{
    if (by == 1)
        return luaL_error(L, "%s is not allowed in fleet tasks (worker.allow = %s allows it)", what,
                          setting);
    return luaL_error(L,
                      "%s is not allowed in this pool's tasks (pool_create option allow = {...} "
                      "lacks '%s')",
                      what, setting);
}

static void check(lua_State *L, const char *what, uint32_t bit)
{
    int by = denied(L, bit);
    if (by)
        deny_raise(L, what, allow_name(bit), by);
}

/* 1 when the running code is a sandboxed task's: on a worker with a ceiling,
 * or a task of a pool that narrows. */
static int sandboxed(lua_State *L)
{
    return ceiling_set || (task_note(L) & ALLOW_PRESENT);
}

/* ---- the worker's secret files ----
 *
 * Registered before any task runs (sandbox_deny_file), read-only after:
 * the VM threads read the list without a lock. A file is known by its
 * (st_dev, st_ino), so a symbolic link, a hard link or a rename leads to
 * the same entry, and by its real path at registration, so a file put in
 * its place later (a rotated key) is refused too. */

typedef struct deny_entry {
    dev_t dev;
    ino_t ino;
    char *real; /* realpath at registration, or NULL */
} deny_entry;

static deny_entry *deny_list;
static size_t deny_n;

int sandbox_deny_file(const char *path)
{
    struct stat st;
    if (!path || !*path) {
        errno = EINVAL;
        return -1;
    }
    if (stat(path, &st) != 0)
        return -1;
    for (size_t i = 0; i < deny_n; i++)
        if (deny_list[i].dev == st.st_dev && deny_list[i].ino == st.st_ino)
            return 0;
    deny_entry *l = realloc(deny_list, (deny_n + 1) * sizeof *l);
    if (!l) {
        errno = ENOMEM;
        return -1;
    }
    deny_list = l;
    deny_list[deny_n].dev = st.st_dev;
    deny_list[deny_n].ino = st.st_ino;
    deny_list[deny_n].real = realpath(path, NULL);
    deny_n++;
    return 0;
}

static int deny_st(const struct stat *st)
{
    for (size_t i = 0; i < deny_n; i++)
        if (deny_list[i].dev == st->st_dev && deny_list[i].ino == st->st_ino)
            return 1;
    return 0;
}

/* 1 when the open descriptor fd is a denied file. */
static int deny_fd(int fd)
{
    struct stat st;
    return deny_n && fstat(fd, &st) == 0 && deny_st(&st);
}

/* 1 when path (followed) is a denied file, or where one was. */
static int deny_path(const char *path)
{
    if (!deny_n)
        return 0;
    struct stat st;
    if (stat(path, &st) == 0 && deny_st(&st))
        return 1;
    char real[PATH_MAX];
    if (!realpath(path, real))
        return 0;
    for (size_t i = 0; i < deny_n; i++)
        if (deny_list[i].real && strcmp(deny_list[i].real, real) == 0)
            return 1;
    return 0;
}

/* Raises: what of path (NULL: the standard input) is one of the worker's
 * secret files. */
static int secret_raise(lua_State *L, const char *what, const char *path)
{
    if (path)
        return luaL_error(L,
                          "%s of '%s' is not allowed in sandboxed tasks: the file holds the "
                          "worker's secrets (no setting allows it)",
                          what, path);
    return luaL_error(L,
                      "%s of the standard input is not allowed in sandboxed tasks: the file holds "
                      "the worker's secrets (no setting allows it)",
                      what);
}

/* ---- what is not a regular file ---- */

#define FS_PROC 0x9fa0 /* PROC_SUPER_MAGIC */
#define FS_TRACE 0x74726163
#define FS_DEBUG 0x64626720

/* What st (on a file system of type fstype) is when a sandboxed task may
 * not open it without io.open.special (a read from it may block a VM
 * thread, or it is the worker's /proc: its environment, memory, command
 * line), or NULL for a regular file (or a directory: reading one fails at
 * once). */
static const char *kind_of(const struct stat *st, long fstype)
{
    if (S_ISFIFO(st->st_mode))
        return "a FIFO or pipe";
    if (S_ISSOCK(st->st_mode))
        return "a socket";
    if (S_ISCHR(st->st_mode))
        return "a character device";
    if (S_ISBLK(st->st_mode))
        return "a block device";
    if (fstype == FS_TRACE || fstype == FS_DEBUG)
        return "a tracing or debug file";
    if (fstype == FS_PROC)
        return "a /proc file";
    if (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode))
        return "not a regular file";
    return NULL;
}

static const char *special_path(const char *path)
{
    struct stat st;
    struct statfs fs;
    if (stat(path, &st) != 0)
        return NULL; /* the original says why it cannot open it */
    long t = statfs(path, &fs) == 0 ? (long)fs.f_type : 0;
    return kind_of(&st, t);
}

static const char *special_fd(int fd)
{
    struct stat st;
    struct statfs fs;
    if (fstat(fd, &st) != 0)
        return "not a file";
    long t = fstatfs(fd, &fs) == 0 ? (long)fs.f_type : 0;
    return kind_of(&st, t);
}

/* Raises when a sandboxed task may not open path (NULL: the standard
 * input): one of the worker's secret files (always), or not a regular file
 * (unless io.open.special). By the path, before it is opened: the callers
 * that open the file themselves check what they opened too
 * (check_opened). */
static void check_special(lua_State *L, const char *what, const char *path)
{
    if (!sandboxed(L))
        return;
    if (path ? deny_path(path) : deny_fd(0))
        secret_raise(L, what, path);
    int by = denied(L, ALLOW_IO_SPECIAL);
    if (!by)
        return;
    const char *kind = path ? special_path(path) : special_fd(0);
    if (!kind)
        return;
    if (path)
        lua_pushfstring(L, "%s of '%s' (%s)", what, path, kind);
    else
        lua_pushfstring(L, "%s of the standard input (%s)", what, kind);
    deny_raise(L, lua_tostring(L, -1), allow_name(ALLOW_IO_SPECIAL), by);
}

/* Raises, closing fd (opened by a sandboxed task's what of path), when it
 * is one of the worker's secret files, or not a regular file and
 * io.open.special is denied. On what was opened: no race with a rename, no
 * way around by a link. */
static void check_opened(lua_State *L, const char *what, const char *path, int fd)
{
    if (deny_fd(fd)) {
        close(fd);
        secret_raise(L, what, path);
    }
    int by = denied(L, ALLOW_IO_SPECIAL);
    const char *kind = by ? special_fd(fd) : NULL;
    if (kind) {
        close(fd);
        lua_pushfstring(L, "%s of '%s' (%s)", what, path, kind);
        deny_raise(L, lua_tostring(L, -1), allow_name(ALLOW_IO_SPECIAL), by);
    }
}

/* A C module by require: the ceiling's list by name, the pool's `require`. */
static void check_module(lua_State *L, const char *name, const char *file)
{
    int by = 0;
    if (!allow_module(&ceiling, name))
        by = 1;
    else {
        uint64_t n = task_note(L);
        if ((n & ALLOW_PRESENT) && !(n & ALLOW_REQUIRE))
            by = 2;
    }
    if (!by)
        return;
    lua_pushfstring(L, "require of C module '%s' (%s)", name, file);
    const char *what = lua_tostring(L, -1);
    if (by == 1) {
        lua_pushfstring(L, "require.%s", name);
        deny_raise(L, what, lua_tostring(L, -1), 1);
    }
    deny_raise(L, what, "require", 2);
}

/* ---- calling the original ---- */

/* An argument error of the original names it '?' (it is no longer in its
 * table): name it as Lua would have. */
static int fix_error(lua_State *L)
{
    const char *m = lua_tostring(L, -1);
    if (m && strncmp(m, "bad argument #", 14) == 0 && strstr(m, " to '?'")) {
        const char *full = lua_tostring(L, lua_upvalueindex(3));
        const char *dot = full ? strrchr(full, '.') : NULL;
        lua_pushfstring(L, " to '%s'", dot ? dot + 1 : full ? full : "?");
        luaL_gsub(L, m, " to '?'", lua_tostring(L, -1));
    }
    return lua_error(L);
}

static int call_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)ctx;
    if (status != LUA_OK && status != LUA_YIELD)
        return fix_error(L);
    return lua_gettop(L);
}

/* Calls upvalue 2 with the whole stack as its arguments; returns its
 * results. */
static int call_original(lua_State *L)
{
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_insert(L, 1);
    return call_k(L, lua_pcallk(L, n, LUA_MULTRET, 0, 0, call_k), 0);
}

/* ---- a task's view of the VM's shared tables ----
 *
 * A sandboxed task's globals are a table of its own (its env) whose
 * metatable is the VM's ENV_MT until the task first needs its context
 * (ctx, push_ctx), then the ctx: reads fall through to the VM's
 * globals, and every table read from there (string, package,
 * package.loaded, a module...) comes as a per-task proxy: an empty table
 * whose metatable (hidden: __metatable = false) holds the real table and
 * an overlay of the task's own writes. A task writes only to its own
 * proxies (rawset reaches the empty proxy), so no task changes what
 * another sees. ctx (and each proxy's metatable) holds:
 *   [1] the real table, [2] ctx, [3] the overlay (for ctx: the env)
 *   [real table] its proxy (one per table and task: identities hold)
 * and ctx: [CTX_OUT], [CTX_IN] the task's io.output and io.input,
 * [CTX_DECOY] what getmetatable(_ENV) gives. C functions whose name starts
 * with '_' (log._configure, goroutine._set_error_handler, _run_scope...)
 * are not in the view, but for the few that only read or log
 * (goroutine._backend, log._event...). The ctx reaches C code (require, the io defaults) through
 * the task's memory account (memacct_ctx). */

enum { P_REAL = 1, P_CTX = 2, P_OVER = 3, CTX_OUT = 4, CTX_IN = 5, CTX_DECOY = 6 };

static const char TOMB = 't'; /* in an overlay: deleted by the task */

/* Pushes the running task's ctx (returns 1), or nothing (0). */
static const char ENV_MT = 'e'; /* registry: the env's metatable until it needs a ctx */

/* Pushes the running task's env (returns 1), or nothing (0). */
static int push_env(lua_State *L)
{
    int ref = memacct_ctx(memacct_current(L));
    if (ref == LUA_NOREF || ref == LUA_REFNIL)
        return 0;
    if (lua_rawgeti(L, LUA_REGISTRYINDEX, ref) != LUA_TTABLE) {
        lua_pop(L, 1);
        return 0;
    }
    return 1;
}

static int proxy_index(lua_State *L);
static int proxy_pairs(lua_State *L);

/* Pushes the running task's ctx (returns 1), or nothing (0). A task gets
 * it the first time it needs one (its env starts with the VM's ENV_MT:
 * a task that reaches no shared table costs one table). */
static int push_ctx(lua_State *L)
{
    if (!push_env(L))
        return 0;
    int env = lua_gettop(L);
    if (!lua_getmetatable(L, env)) {
        lua_settop(L, env - 1);
        return 0;
    }
    if (lua_rawgeti(L, -1, P_CTX) == LUA_TTABLE) { /* env, mt, ctx */
        lua_replace(L, env);
        lua_settop(L, env);
        return 1;
    }
    lua_pop(L, 1);
    lua_rawgeti(L, -1, P_REAL); /* env, ENV_MT, the VM's globals */
    lua_remove(L, -2);
    lua_createtable(L, 3, 4); /* ctx */
    lua_pushcfunction(L, proxy_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, proxy_pairs);
    lua_setfield(L, -2, "__pairs");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pushvalue(L, env + 1);
    lua_rawseti(L, -2, P_REAL);
    lua_pushvalue(L, env + 1);
    lua_pushvalue(L, env);
    lua_rawset(L, -3); /* ctx[the VM's globals] = env */
    lua_pushvalue(L, -1);
    lua_rawseti(L, -2, P_CTX);
    lua_pushvalue(L, env);
    lua_rawseti(L, -2, P_OVER);
    lua_pushvalue(L, -1);
    lua_setmetatable(L, env);
    lua_replace(L, env);
    lua_settop(L, env);
    return 1;
}

static int hidden(lua_State *L, int k, int v)
{
    if (lua_type(L, k) != LUA_TSTRING || !lua_iscfunction(L, v))
        return 0;
    const char *key = lua_tostring(L, k);
    if (key[0] != '_' || key[1] == '_')
        return 0;
    /* the internals that only read (or log): the rest change the VM */
    static const char *const readonly[] = {"_backend", "_enabled", "_event", "_json", "_paint"};
    for (size_t i = 0; i < sizeof readonly / sizeof readonly[0]; i++)
        if (strcmp(key, readonly[i]) == 0)
            return 0;
    return 1;
}

static int proxy_newindex(lua_State *L);
static int proxy_len(lua_State *L);

/* Replaces the table at v by the task's proxy of it (ctx at index ctx). */
static void wrap(lua_State *L, int ctx, int v)
{
    luaL_checkstack(L, 6, NULL);
    ctx = lua_absindex(L, ctx);
    v = lua_absindex(L, v);
    if (lua_rawgeti(L, ctx, P_OVER) == LUA_TTABLE && lua_rawequal(L, -1, v)) {
        lua_pop(L, 1); /* the env itself */
        return;
    }
    lua_pop(L, 1);
    lua_pushvalue(L, v);
    if (lua_rawget(L, ctx) == LUA_TTABLE) {
        lua_replace(L, v);
        return;
    }
    lua_pop(L, 1);
    if (lua_getmetatable(L, v)) { /* one of this task's proxies already? */
        int mine = lua_rawgeti(L, -1, P_CTX) == LUA_TTABLE && lua_rawequal(L, -1, ctx);
        lua_pop(L, 2);
        if (mine)
            return;
    }
    lua_createtable(L, 0, 0);
    lua_createtable(L, 3, 5);
    lua_pushcfunction(L, proxy_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, proxy_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, proxy_pairs);
    lua_setfield(L, -2, "__pairs");
    lua_pushcfunction(L, proxy_len);
    lua_setfield(L, -2, "__len");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pushvalue(L, v);
    lua_rawseti(L, -2, P_REAL);
    lua_pushvalue(L, ctx);
    lua_rawseti(L, -2, P_CTX);
    lua_setmetatable(L, -2);
    lua_pushvalue(L, v);
    lua_pushvalue(L, -2);
    lua_rawset(L, ctx);
    lua_replace(L, v);
}

/* The view of the value at the top (a table read from a shared one). */
static void view_top(lua_State *L, int mt)
{
    if (lua_type(L, -1) != LUA_TTABLE)
        return;
    if (lua_rawgeti(L, mt, P_CTX) != LUA_TTABLE) { /* an env without its ctx yet */
        lua_pop(L, 1);
        if (!push_ctx(L))
            return;
    }
    wrap(L, -1, -2);
    lua_pop(L, 1);
}

/* __index of a proxy (and of a task's env): the overlay, else the real
 * table's value, tables as proxies, internals hidden. */
static int proxy_index(lua_State *L)
{
    lua_settop(L, 2);
    lua_getmetatable(L, 1); /* 3 */
    if (lua_rawgeti(L, 3, P_OVER) == LUA_TTABLE && !lua_rawequal(L, 1, 4)) {
        lua_pushvalue(L, 2);
        if (lua_rawget(L, 4) != LUA_TNIL) {
            if (lua_touserdata(L, -1) == &TOMB)
                lua_pushnil(L);
            return 1;
        }
    }
    lua_settop(L, 3);
    lua_rawgeti(L, 3, P_REAL); /* 4 */
    lua_pushvalue(L, 2);
    lua_gettable(L, 4); /* 5 */
    if (hidden(L, 2, 5))
        return 0;
    view_top(L, 3);
    return 1;
}

static int proxy_newindex(lua_State *L)
{
    lua_settop(L, 3);
    lua_getmetatable(L, 1); /* 4 */
    if (lua_rawgeti(L, 4, P_OVER) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_createtable(L, 0, 1);
        lua_pushvalue(L, -1);
        lua_rawseti(L, 4, P_OVER);
    }
    lua_pushvalue(L, 2);
    if (lua_isnil(L, 3))
        lua_pushlightuserdata(L, (void *)&TOMB);
    else
        lua_pushvalue(L, 3);
    lua_rawset(L, -3);
    return 0;
}

/* next over a proxy: the real table's keys (values as the task sees them),
 * then the overlay's own keys. */
static int proxy_next(lua_State *L)
{
    lua_settop(L, 2);
    lua_getmetatable(L, 1);                        /* 3 */
    lua_rawgeti(L, 3, P_REAL);                     /* 4 */
    if (lua_rawgeti(L, 3, P_OVER) != LUA_TTABLE) { /* 5 */
        lua_pop(L, 1);
        if (lua_rawgeti(L, 3, P_CTX) == LUA_TNIL) /* an env: its own keys */
            lua_pushvalue(L, 1);
        else
            lua_createtable(L, 0, 0);
        lua_remove(L, -2);
    }
    int in_real = lua_isnil(L, 2);
    if (!in_real) {
        lua_pushvalue(L, 2);
        in_real = lua_rawget(L, 4) != LUA_TNIL;
        lua_pop(L, 1);
    }
    lua_pushvalue(L, 2); /* 6: the key to go on from */
    if (in_real) {
        while (lua_next(L, 4)) { /* 6 key, 7 value */
            lua_pushvalue(L, 6);
            if (lua_rawget(L, 5) != LUA_TNIL) { /* the task's own value */
                if (lua_touserdata(L, -1) == &TOMB) {
                    lua_pop(L, 2);
                    continue;
                }
                lua_replace(L, 7);
                return 2;
            }
            lua_pop(L, 1);
            if (hidden(L, 6, 7)) {
                lua_pop(L, 1);
                continue;
            }
            view_top(L, 3);
            return 2;
        }
        lua_pushnil(L); /* on to the overlay */
    }
    while (lua_next(L, 5)) {
        lua_pushvalue(L, -2);
        int in_r = lua_rawget(L, 4) != LUA_TNIL;
        lua_pop(L, 1);
        if (in_r || lua_touserdata(L, -1) == &TOMB) {
            lua_pop(L, 1);
            continue;
        }
        return 2;
    }
    return 0;
}

static int proxy_pairs(lua_State *L)
{
    lua_pushcfunction(L, proxy_next);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

static int proxy_len(lua_State *L)
{
    lua_getmetatable(L, 1);
    lua_rawgeti(L, -1, P_REAL);
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    lua_pop(L, 2);
    while (n > 0 && lua_geti(L, 1, n) == LUA_TNIL) {
        lua_pop(L, 1);
        n--;
    }
    if (n > 0)
        lua_pop(L, 1);
    while (lua_geti(L, 1, n + 1) != LUA_TNIL) {
        lua_pop(L, 1);
        n++;
    }
    lua_pop(L, 1);
    lua_pushinteger(L, n);
    return 1;
}

/* Pushes the task's view of the VM table registry._LOADED[name]
 * (package...), or nil. ctx at index ctx. */
static void push_view_of(lua_State *L, int ctx, const char *name)
{
    ctx = lua_absindex(L, ctx);
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    if (!name) {
        wrap(L, ctx, -1);
        return;
    }
    if (lua_getfield(L, -1, name) == LUA_TTABLE)
        wrap(L, ctx, -1);
    lua_remove(L, -2);
}

void sandbox_push_env(lua_State *L, memacct *acct)
{
    luaL_checkstack(L, 4, NULL);
    lua_createtable(L, 0, 4); /* env */
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &ENV_MT) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_createtable(L, 1, 3);
        lua_pushcfunction(L, proxy_index);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, proxy_pairs);
        lua_setfield(L, -2, "__pairs");
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "__metatable");
        lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
        lua_rawseti(L, -2, P_REAL);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &ENV_MT);
    }
    lua_setmetatable(L, -2);
    if (acct) {
        lua_pushvalue(L, -1);
        memacct_set_ctx(acct, L, luaL_ref(L, LUA_REGISTRYINDEX));
    }
}

void sandbox_view(lua_State *L)
{
    if (lua_type(L, -1) != LUA_TTABLE)
        return;
    memacct *a = memacct_current(L);
    if (a && memacct_owner(L, lua_topointer(L, -1)) == a)
        return;        /* the task's own (decoded for it) */
    if (push_env(L)) { /* its globals (a function's _ENV) */
        int env = lua_rawequal(L, -1, -2);
        lua_pop(L, 1);
        if (env)
            return;
    }
    if (!push_ctx(L))
        return;
    wrap(L, -1, -2);
    lua_pop(L, 1);
}

/* codec_unview_fn: a task's proxy (or env) travels as the real table (a
 * module by name, the globals). */
static int unview(lua_State *L, int idx)
{
    if (!lua_getmetatable(L, idx))
        return 0;
    int ok =
        lua_getfield(L, -1, "__index") == LUA_TFUNCTION && lua_tocfunction(L, -1) == proxy_index;
    lua_pop(L, 1);
    if (!ok) {
        lua_pop(L, 1);
        return 0;
    }
    lua_rawgeti(L, -1, P_REAL);
    lua_remove(L, -2);
    return 1;
}

/* getmetatable in a sandboxed task: a metatable the task did not make
 * comes as its view (the string metatable, a library's userdata
 * metatables, a shared module's class); the env's is a stand-in whose
 * __index is the env. */
static int g_getmetatable(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    if (!sandboxed(L) || !push_ctx(L))
        return call_original(L);
    if (!lua_getmetatable(L, 1)) {
        lua_pushnil(L);
        return 1;
    }
    lua_insert(L, 2); /* 2: mt, 3: ctx */
    int mt = 2, ctx = 3;
    if (lua_rawequal(L, mt, ctx)) { /* the env's */
        if (lua_rawgeti(L, ctx, CTX_DECOY) != LUA_TTABLE) {
            lua_pop(L, 1);
            lua_createtable(L, 0, 1);
            lua_rawgeti(L, ctx, P_OVER);
            lua_setfield(L, -2, "__index");
            lua_pushvalue(L, -1);
            lua_rawseti(L, ctx, CTX_DECOY);
        }
        return 1;
    }
    if (lua_getfield(L, mt, "__metatable") != LUA_TNIL)
        return 1; /* as the original: the protected value */
    lua_pop(L, 1);
    memacct *a = memacct_current(L);
    if (a && memacct_owner(L, lua_topointer(L, mt)) == a) {
        lua_settop(L, mt);
        return 1;
    }
    wrap(L, ctx, mt);
    lua_settop(L, mt);
    return 1;
}

/* collectgarbage in a sandboxed task: what reads or collects; not what
 * changes the collector of the VM every task runs on ("stop", the modes
 * and their parameters). */
static int g_collectgarbage(lua_State *L)
{
    if (sandboxed(L)) {
        const char *opt = luaL_optstring(L, 1, "collect");
        if (strcmp(opt, "collect") && strcmp(opt, "count") && strcmp(opt, "step") &&
            strcmp(opt, "isrunning"))
            return luaL_error(L,
                              "collectgarbage('%s') is not allowed in sandboxed tasks (it changes "
                              "the collector of the VM other tasks run on)",
                              opt);
    }
    return call_original(L);
}

/* rawget in a sandboxed task: on its env or one of its proxies, what the
 * task sees there (rawget(_G, "os") is its view of os, as in plain Lua). */
static int g_rawget(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    lua_settop(L, 2);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, 1) != LUA_TNIL || !sandboxed(L) || !push_ctx(L))
        return 1;
    if (!lua_getmetatable(L, 1) || lua_rawgeti(L, 5, P_CTX) != LUA_TTABLE ||
        !lua_rawequal(L, -1, 4)) {
        lua_settop(L, 3);
        return 1;
    }
    lua_settop(L, 2);
    lua_pushcfunction(L, proxy_index);
    lua_insert(L, 1);
    lua_call(L, 2, 1);
    return 1;
}

/* load, loadfile, dofile and require give a sandboxed task's chunks its
 * env, not the VM's globals: pushes it (1) or nothing (0). */
static int push_task_env(lua_State *L)
{
    return sandboxed(L) && push_env(L);
}

/* require in a sandboxed task: modules it loads are its own (stored in its
 * view of package.loaded), the VM's come as views; the searchers, the
 * paths and package.preload are the task's view of them. */
static int g_require(lua_State *L)
{
    if (!sandboxed(L))
        return call_original(L);
    const char *name = luaL_checkstring(L, 1);
    lua_settop(L, 1);
    if (!push_ctx(L))
        return call_original(L);
    int ctx = 2;
    push_view_of(L, ctx, NULL); /* 3: package.loaded */
    if (lua_getfield(L, 3, name) != LUA_TNIL)
        return 1;
    lua_pop(L, 1);
    push_view_of(L, ctx, LUA_LOADLIBNAME); /* 4: package */
    if (lua_type(L, 4) != LUA_TTABLE || lua_getfield(L, 4, "searchers") != LUA_TTABLE) /* 5 */
        return luaL_error(L, "'package.searchers' must be a table");
    luaL_Buffer msg;
    lua_pushnil(L); /* 6: the loader's extra value */
    lua_pushnil(L); /* 7: the loader */
    luaL_buffinit(L, &msg);
    for (lua_Integer i = 1;; i++) {
        luaL_addstring(&msg, "\n\t");
        if (lua_geti(L, 5, i) == LUA_TNIL) {
            lua_pop(L, 1);
            luaL_buffsub(&msg, 2);
            luaL_pushresult(&msg);
            return luaL_error(L, "module '%s' not found:%s", name, lua_tostring(L, -1));
        }
        lua_pushstring(L, name);
        lua_call(L, 1, 2);
        if (lua_isfunction(L, -2)) {
            lua_replace(L, 6);
            lua_replace(L, 7);
            break;
        }
        if (lua_isstring(L, -2)) {
            lua_pop(L, 1);
            luaL_addvalue(&msg);
        } else {
            lua_pop(L, 2);
            luaL_buffsub(&msg, 2);
        }
    }
    lua_settop(L, 7);
    lua_pushvalue(L, 7);
    lua_pushstring(L, name);
    lua_pushvalue(L, 6);
    lua_call(L, 2, 1); /* 8 */
    if (!lua_isnil(L, 8))
        lua_setfield(L, 3, name);
    else
        lua_pop(L, 1);
    if (lua_getfield(L, 3, name) == LUA_TNIL) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
        lua_pushvalue(L, -1);
        lua_setfield(L, 3, name);
    }
    lua_pushvalue(L, 6);
    return 2;
}

/* package.searchers[1] in a sandboxed task: the task's view of
 * package.preload. */
static int g_searcher_preload(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    if (!sandboxed(L) || !push_ctx(L))
        return call_original(L);
    push_view_of(L, -1, LUA_LOADLIBNAME);
    if (lua_type(L, -1) != LUA_TTABLE || lua_getfield(L, -1, "preload") != LUA_TTABLE)
        return luaL_error(L, "'package.preload' must be a table");
    if (lua_getfield(L, -1, name) == LUA_TNIL) {
        lua_pushfstring(L, "no field package.preload['%s']", name);
        return 1;
    }
    lua_pushliteral(L, ":preload:");
    return 2;
}

/* The io library's defaults: per task in a sandboxed task. Calls the
 * original (upvalue 2) with the registry's _IO_input and _IO_output set to
 * the task's, and keeps what the call leaves there as the task's. */
static int call_with_task_io(lua_State *L)
{
    if (!sandboxed(L) || !push_ctx(L))
        return call_original(L);
    int n = lua_gettop(L) - 1;
    int ctx = lua_gettop(L);
    lua_getfield(L, LUA_REGISTRYINDEX, "_IO_input");  /* saved */
    lua_getfield(L, LUA_REGISTRYINDEX, "_IO_output"); /* saved */
    if (lua_rawgeti(L, ctx, CTX_IN) != LUA_TNIL)
        lua_setfield(L, LUA_REGISTRYINDEX, "_IO_input");
    else
        lua_pop(L, 1);
    if (lua_rawgeti(L, ctx, CTX_OUT) != LUA_TNIL)
        lua_setfield(L, LUA_REGISTRYINDEX, "_IO_output");
    else
        lua_pop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(2));
    for (int i = 1; i <= n; i++)
        lua_pushvalue(L, i);
    int st = lua_pcall(L, n, LUA_MULTRET, 0);
    int top = lua_gettop(L);
    lua_getfield(L, LUA_REGISTRYINDEX, "_IO_input");
    lua_rawseti(L, ctx, CTX_IN);
    lua_getfield(L, LUA_REGISTRYINDEX, "_IO_output");
    lua_rawseti(L, ctx, CTX_OUT);
    lua_pushvalue(L, ctx + 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "_IO_input");
    lua_pushvalue(L, ctx + 2);
    lua_setfield(L, LUA_REGISTRYINDEX, "_IO_output");
    if (st != LUA_OK) {
        lua_settop(L, top);
        return fix_error(L);
    }
    return top - (ctx + 2);
}

static int loaded_table(lua_State *L, const char *name);

/* Pushes the VM's io.stdin (1), or nothing (0). */
static int loaded_io_stdin(lua_State *L)
{
    if (!loaded_table(L, LUA_IOLIBNAME))
        return 0;
    lua_getfield(L, -1, "stdin");
    lua_remove(L, -2);
    return 1;
}

/* 1 when the default input a sandboxed task would read is io.stdin. */
static int input_is_stdin(lua_State *L)
{
    int top = lua_gettop(L);
    int r = 0;
    if (push_ctx(L) && lua_rawgeti(L, -1, CTX_IN) == LUA_TNIL) {
        lua_pop(L, 1);
        lua_getfield(L, LUA_REGISTRYINDEX, "_IO_input");
    }
    if (lua_gettop(L) > top && loaded_io_stdin(L))
        r = lua_rawequal(L, -1, -2);
    lua_settop(L, top);
    return r;
}

/* ---- the gates ---- */

#define UP_BIT(L) ((uint32_t)lua_tointeger(L, lua_upvalueindex(1)))
#define UP_NAME(L) lua_tostring(L, lua_upvalueindex(3))

/* os.execute, io.popen, debug.getinfo, exec.run...: the setting or nothing. */
static int g_plain(lua_State *L)
{
    check(L, UP_NAME(L), UP_BIT(L));
    return call_original(L);
}

/* os.remove, os.rename: the setting, and never a path that is one of the
 * worker's secret files (a task would delete the worker's key, or move
 * its own file into the key's place). */
static int g_fileop(lua_State *L)
{
    check(L, UP_NAME(L), UP_BIT(L));
    if (sandboxed(L)) {
        int nargs = strcmp(UP_NAME(L), "os.rename") == 0 ? 2 : 1;
        for (int i = 1; i <= nargs; i++) {
            const char *path = lua_isstring(L, i) ? lua_tostring(L, i) : NULL;
            struct stat st;
            if (path && (deny_path(path) || (lstat(path, &st) == 0 && deny_st(&st))))
                secret_raise(L, UP_NAME(L), path);
        }
    }
    return call_original(L);
}

/* 1 when an environment variable's name is the worker's (MUTIRAO_*) or
 * looks like it holds a secret. */
static int secret_variable(const char *name)
{
    static const char *const words[] = {"PASSWORD", "PASSWD", "SECRET",
                                        "TOKEN",    "KEY",    "CREDENTIAL"};
    if (strncasecmp(name, "MUTIRAO_", 8) == 0)
        return 1;
    for (const char *p = name; *p; p++)
        for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
            if (strncasecmp(p, words[i], strlen(words[i])) == 0)
                return 1;
    return 0;
}

/* os.getenv in a sandboxed task: nil for the worker's variables and the
 * secret-looking ones, unless os.getenv is allowed. */
static int g_getenv(lua_State *L)
{
    if (!sandboxed(L) || !denied(L, ALLOW_OS_GETENV))
        return call_original(L);
    if (secret_variable(luaL_checkstring(L, 1))) {
        luaL_pushfail(L);
        return 1;
    }
    return call_original(L);
}

/* os.setlocale: the locale is the whole worker process's (every VM
 * thread's number formatting and parsing): a sandboxed task may read it
 * (no locale, or nil), not change it. */
static int g_setlocale(lua_State *L)
{
    if (sandboxed(L) && !lua_isnoneornil(L, 1))
        return luaL_error(L, "os.setlocale that changes the locale is not allowed in sandboxed "
                             "tasks (the locale is the worker process's; os.setlocale() and "
                             "os.setlocale(nil, CATEGORY) read it)");
    return call_original(L);
}

static int sb_fclose(lua_State *L)
{
    luaL_Stream *p = luaL_checkudata(L, 1, LUA_FILEHANDLE);
    errno = 0;
    return luaL_fileresult(L, fclose(p->f) == 0, NULL);
}

/* Opens fname in mode (a valid io.open mode) for a sandboxed task's what:
 * pushes a file handle and returns 0, or returns the errno (the handle
 * pushed is closed). Raises when what it opened is one of the worker's
 * secret files, or is not a regular file and io.open.special is denied
 * (then it opens without blocking, and a FIFO is never waited for). Checked
 * on what was opened, before anything is read, written or truncated. */
static int open_checked(lua_State *L, const char *what, const char *fname, const char *mode)
{
    const char *m = mode;
    int plus = m[1] == '+';
    int flags = *m == 'r' ? 0 : *m == 'w' ? O_CREAT : O_CREAT | O_APPEND;
    flags |= plus ? O_RDWR : *m == 'r' ? O_RDONLY : O_WRONLY;
    int special = denied(L, ALLOW_IO_SPECIAL);
    if (special)
        flags |= O_NONBLOCK;
    luaL_Stream *p = lua_newuserdatauv(L, sizeof(luaL_Stream), 0);
    p->closef = NULL; /* closed until opened */
    p->f = NULL;
    luaL_setmetatable(L, LUA_FILEHANDLE);
    int fd = open(fname, flags | O_NOCTTY | O_CLOEXEC, 0666);
    if (fd < 0)
        return errno;
    check_opened(L, what, fname, fd);
    struct stat st;
    if (*m == 'w' && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && ftruncate(fd, 0) != 0) {
        int e = errno;
        close(fd);
        return e;
    }
    if (special)
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    p->f = fdopen(fd, mode);
    if (!p->f) {
        int e = errno;
        close(fd);
        return e;
    }
    p->closef = sb_fclose;
    return 0;
}

/* io.open for a sandboxed task: the worker's secret files refused, and
 * what is not a regular file unless io.open.special. */
static int open_regular(lua_State *L)
{
    const char *fname = luaL_checkstring(L, 1);
    const char *mode = luaL_optstring(L, 2, "r");
    const char *m = mode;
    if (!*m || !strchr("rwa", *m))
        return call_original(L); /* its "invalid mode" */
    int plus = m[1] == '+';
    if (strspn(m + 1 + plus, "b") != strlen(m + 1 + plus))
        return call_original(L);
    check_special(L, "io.open", fname);
    int e = open_checked(L, "io.open", fname, mode);
    if (e) {
        errno = e;
        return luaL_fileresult(L, 0, fname);
    }
    return 1;
}

/* io.open: reading is always allowed (regular files only, unless
 * io.open.special; never the worker's secret files). */
static int g_open(lua_State *L)
{
    const char *mode = luaL_optstring(L, 2, "r");
    if (strpbrk(mode, "wa+")) {
        lua_pushfstring(L, "io.open in mode '%s'", mode);
        check(L, lua_tostring(L, -1), ALLOW_IO_WRITE);
        lua_pop(L, 1);
    }
    if (sandboxed(L))
        return open_regular(L);
    return call_original(L);
}

/* io.input(FILENAME) and io.output(FILENAME) in a sandboxed task: the file
 * opened and checked here (open_checked), then given to the original as a
 * file handle (what it would have opened). */
static void open_arg(lua_State *L, const char *what, const char *name, const char *mode)
{
    if (!sandboxed(L))
        return;
    int e = open_checked(L, what, name, mode);
    if (e)
        luaL_error(L, "cannot open file '%s' (%s)", name, strerror(e));
    lua_replace(L, 1);
}

/* A file name argument (anything but a file handle or nil: io.output,
 * io.input and io.lines take numbers as names too), or NULL. */
static const char *name_arg(lua_State *L, int i)
{
    if (lua_isnoneornil(L, i) || luaL_testudata(L, i, LUA_FILEHANDLE))
        return NULL;
    const char *s = lua_tostring(L, i);
    return s ? s : "?";
}

/* io.output(FILENAME) opens it for writing; io.output(file) does not. */
static int g_output(lua_State *L)
{
    const char *name = name_arg(L, 1);
    if (name) {
        check(L, "io.output of a file name", ALLOW_IO_WRITE);
        check_special(L, "io.output", name);
        open_arg(L, "io.output", name, "w");
    }
    return call_with_task_io(L);
}

/* io.input(FILENAME), io.lines(FILENAME): reading, regular files only,
 * never the worker's secret files. io.lines opens the file itself: what it
 * opened (its 4th result, the file to close) is checked before a line is
 * read. */
static int g_input(lua_State *L)
{
    const char *name = name_arg(L, 1);
    int lines = strcmp(UP_NAME(L), "io.lines") == 0;
    if (name) {
        check_special(L, UP_NAME(L), name);
        if (!lines)
            open_arg(L, "io.input", name, "r");
    } else if (lines && sandboxed(L) && input_is_stdin(L))
        check_special(L, "reading", NULL);
    if (!lines || !name || !sandboxed(L))
        return call_with_task_io(L);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", name); /* (the call may pop the argument) */
    int n = call_with_task_io(L);
    luaL_Stream *p = n >= 4 ? luaL_testudata(L, -n + 3, LUA_FILEHANDLE) : NULL;
    if (p && p->closef && p->f && deny_fd(fileno(p->f))) {
        fclose(p->f);
        p->f = NULL;
        p->closef = NULL; /* closed */
        secret_raise(L, "io.lines", path);
    }
    return n;
}

/* io.write, io.read, io.close: the task's defaults. */
static int g_iodefault(lua_State *L)
{
    if (strcmp(UP_NAME(L), "io.read") == 0 && sandboxed(L) && input_is_stdin(L))
        check_special(L, "reading", NULL);
    return call_with_task_io(L);
}

static void check_binary(lua_State *L, const char *what)
{
    check(L, what, ALLOW_LOAD_BINARY);
}

/* load, loadfile and dofile in a sandboxed task (the arguments from index
 * mode on: mode, env): mode "t" unless load.binary, and, when no env is
 * given, the task's env (not the VM's globals). */
static void task_load_args(lua_State *L, int mode)
{
    if (denied(L, ALLOW_LOAD_BINARY)) {
        if (lua_gettop(L) < mode)
            lua_settop(L, mode);
        lua_pushliteral(L, "t");
        lua_replace(L, mode);
    }
    if (lua_gettop(L) <= mode) { /* no env given (nil name and mode are the defaults) */
        int top = lua_gettop(L);
        lua_settop(L, mode);
        if (!push_task_env(L))
            lua_settop(L, top);
    }
}

typedef struct file_reader {
    FILE *f;
    int n; /* characters in buff to give first */
    char buff[BUFSIZ];
} file_reader;

static const char *file_read(lua_State *L, void *ud, size_t *size)
{
    file_reader *r = ud;
    (void)L;
    if (r->n > 0) {
        *size = (size_t)r->n;
        r->n = 0;
        return r->buff;
    }
    if (feof(r->f))
        return NULL;
    *size = fread(r->buff, 1, sizeof r->buff, r->f);
    return r->buff;
}

/* The first character of the chunk in f, after a UTF-8 BOM and a first
 * line starting with '#' (then *comment = 1), as luaL_loadfilex skips them.
 * shared/codec/source.c's push_file_text does the same on a whole text. */
static int chunk_start(FILE *f, int *comment)
{
    int c = getc(f);
    if (c == 0xEF && getc(f) == 0xBB && getc(f) == 0xBF)
        c = getc(f);
    *comment = c == '#';
    if (*comment) {
        while ((c = getc(f)) != EOF && c != '\n')
            ;
        c = getc(f);
    }
    return c;
}

/* luaL_loadfilex(L, fname, mode) for a sandboxed task's what (loadfile,
 * dofile, require; fname NULL: the standard input): the file is opened
 * here and checked on what was opened (check_opened: never the worker's
 * secret files; regular files only unless io.open.special), and a binary
 * chunk raises unless load.binary. Pushes the chunk or the message. */
static int load_checked(lua_State *L, const char *what, const char *fname, const char *mode)
{
    if (!fname)
        return luaL_loadfilex(L, NULL, mode); /* (check_special checked it) */
    int special = denied(L, ALLOW_IO_SPECIAL);
    int fd = open(fname, O_RDONLY | O_NOCTTY | O_CLOEXEC | (special ? O_NONBLOCK : 0));
    FILE *f = NULL;
    if (fd >= 0) {
        check_opened(L, what, fname, fd);
        struct stat st;
        if (fstat(fd, &st) == 0 && st.st_size > SANDBOX_CHUNK_MAX) {
            close(fd);
            return luaL_error(L,
                              "%s of '%s' (%I bytes) is not allowed in sandboxed tasks: chunks "
                              "over %d bytes are not compiled (the Lua parser cannot be stopped "
                              "by a timeout)",
                              what, fname, (lua_Integer)st.st_size, SANDBOX_CHUNK_MAX);
        }
        if (special)
            fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        f = fdopen(fd, "r");
        if (!f)
            close(fd);
    }
    if (!f) {
        lua_pushfstring(L, "cannot open %s: %s", fname, strerror(errno));
        return LUA_ERRFILE;
    }
    file_reader r;
    r.f = f;
    r.n = 0;
    int comment;
    int c = chunk_start(f, &comment);
    if (comment)
        r.buff[r.n++] = '\n'; /* line numbers as luaL_loadfilex's */
    if (c == LUA_SIGNATURE[0] && denied(L, ALLOW_LOAD_BINARY)) {
        fclose(f);
        if (strcmp(what, "require") == 0)
            lua_pushfstring(L, "require of binary chunk '%s'", fname);
        else
            lua_pushfstring(L, "%s of a binary chunk", what);
        check_binary(L, lua_tostring(L, -1)); /* (raises: denied) */
        return LUA_ERRSYNTAX;
    }
    if (c != EOF)
        r.buff[r.n++] = (char)c;
    lua_pushfstring(L, "@%s", fname);
    int st = lua_load(L, file_read, &r, lua_tostring(L, -1), mode);
    lua_remove(L, -2);
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (err) {
        lua_pop(L, 1);
        lua_pushfstring(L, "cannot read %s: %s", fname, strerror(err));
        return LUA_ERRFILE;
    }
    return st;
}

/* load(chunk [, name [, mode [, env]]]): text only unless load.binary. */
static int g_load(lua_State *L)
{
    if (denied(L, ALLOW_LOAD_BINARY)) {
        if (lua_type(L, 1) == LUA_TFUNCTION) { /* read it all: its first byte decides */
            luaL_Buffer b;
            lua_pushvalue(L, 1);
            int reader = lua_gettop(L);
            luaL_buffinit(L, &b);
            for (;;) {
                lua_pushvalue(L, reader);
                lua_call(L, 0, 1);
                if (lua_isnil(L, -1)) {
                    lua_pop(L, 1);
                    break;
                }
                if (lua_type(L, -1) != LUA_TSTRING)
                    return luaL_error(L, "reader function must return a string");
                if (lua_rawlen(L, -1) == 0) {
                    lua_pop(L, 1);
                    break;
                }
                luaL_addvalue(&b);
            }
            luaL_pushresult(&b);
            lua_replace(L, 1);
            lua_settop(L, reader - 1);
        }
        size_t len;
        const char *s = lua_tolstring(L, 1, &len);
        if (s && len > 0 && s[0] == LUA_SIGNATURE[0])
            check_binary(L, "load of a binary chunk");
    }
    if (sandboxed(L) && lua_type(L, 1) == LUA_TSTRING && lua_rawlen(L, 1) > SANDBOX_CHUNK_MAX)
        return luaL_error(L,
                          "load of a chunk of %d bytes is not allowed in sandboxed tasks: chunks "
                          "over %d bytes are not compiled (the Lua parser cannot be stopped by "
                          "a timeout)",
                          (int)lua_rawlen(L, 1), SANDBOX_CHUNK_MAX);
    task_load_args(L, 3);
    return call_original(L);
}

/* loadfile(filename [, mode [, env]]). */
static int g_loadfile(lua_State *L)
{
    if (!sandboxed(L))
        return call_original(L);
    const char *fname = luaL_optstring(L, 1, NULL);
    check_special(L, "loadfile", fname);
    task_load_args(L, 2);
    const char *mode = luaL_optstring(L, 2, NULL);
    int env = !lua_isnone(L, 3) ? 3 : 0;
    if (load_checked(L, "loadfile", fname, mode) != LUA_OK) {
        luaL_pushfail(L);
        lua_insert(L, -2);
        return 2;
    }
    if (env) {
        lua_pushvalue(L, env);
        if (!lua_setupvalue(L, -2, 1))
            lua_pop(L, 1);
    }
    return 1;
}

static int dofile_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    return lua_gettop(L) - 1;
}

/* dofile([filename]): as Lua's, text only unless load.binary. */
static int g_dofile(lua_State *L)
{
    const char *fname = luaL_optstring(L, 1, NULL);
    lua_settop(L, 1);
    if (!sandboxed(L)) {
        if (luaL_loadfile(L, fname) != LUA_OK)
            return lua_error(L);
    } else {
        check_special(L, "dofile", fname);
        task_load_args(L, 2);
        int env = lua_gettop(L) >= 3 ? 3 : 0;
        if (load_checked(L, "dofile", fname, lua_tostring(L, 2)) != LUA_OK)
            return lua_error(L);
        if (env) {
            lua_pushvalue(L, env);
            if (!lua_setupvalue(L, -2, 1))
                lua_pop(L, 1);
        }
        lua_replace(L, 2);
        lua_settop(L, 2);
    }
    lua_callk(L, 0, LUA_MULTRET, 0, dofile_k);
    return dofile_k(L, 0, 0);
}

/* package.searchpath for a sandboxed task without io.open.special: the
 * first candidate that is a readable regular file (the original opens each
 * one, and opening a FIFO blocks). Pushes the name, or returns 0 with the
 * "no file ..." message pushed. */
static int searchpath_regular(lua_State *L, const char *what, const char *name, const char *path)
{
    int first = 1;
    luaL_Buffer b;
    name = luaL_gsub(L, name, ".", LUA_DIRSEP);
    int nameidx = lua_gettop(L);
    luaL_buffinit(L, &b);
    const char *p = path;
    for (;;) {
        while (*p == ';')
            p++;
        if (!*p)
            break;
        const char *e = strchr(p, ';');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        lua_pushlstring(L, p, len);
        const char *file = luaL_gsub(L, lua_tostring(L, -1), "?", lua_tostring(L, nameidx));
        lua_remove(L, -2);
        struct stat st;
        if (stat(file, &st) == 0)
            check_special(L, what, file);
        if (stat(file, &st) == 0 && !S_ISDIR(st.st_mode) && access(file, R_OK) == 0) {
            lua_replace(L, nameidx);
            lua_settop(L, nameidx);
            return 1;
        }
        lua_pushfstring(L, "%sno file '%s'", first ? "" : "\n\t", file);
        first = 0;
        lua_remove(L, -2);
        luaL_addvalue(&b);
        p += len;
    }
    luaL_pushresult(&b);
    lua_replace(L, nameidx);
    lua_settop(L, nameidx);
    return 0;
}

/* The path a task's require uses (upvalue 1 is the package table). */
static void push_path(lua_State *L, const char *pathfield)
{
    if (sandboxed(L) && push_ctx(L)) {
        push_view_of(L, -1, LUA_LOADLIBNAME);
        lua_remove(L, -2);
        if (lua_type(L, -1) == LUA_TTABLE) {
            lua_getfield(L, -1, pathfield);
            lua_remove(L, -2);
            return;
        }
        lua_pop(L, 1);
    }
    lua_getfield(L, lua_upvalueindex(1), pathfield);
}

/* package.searchpath(name, path) with the original (upvalue up); pushes
 * the file name or, returning 0, the "no file ..." message. */
static int search(lua_State *L, int up, const char *name, const char *pathfield)
{
    push_path(L, pathfield);
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "'package.%s' must be a string", pathfield);
    if (sandboxed(L) && denied(L, ALLOW_IO_SPECIAL)) {
        const char *path = lua_tostring(L, -1);
        int r = searchpath_regular(L, "require", name, path);
        lua_remove(L, -2);
        return r;
    }
    lua_pushvalue(L, lua_upvalueindex(up));
    lua_pushstring(L, name);
    lua_pushvalue(L, -3);
    lua_call(L, 2, 2);
    lua_remove(L, -3);
    if (lua_isnil(L, -2)) {
        lua_remove(L, -2);
        return 0;
    }
    lua_pop(L, 1);
    return 1;
}

/* package.searchpath: regular files only in sandboxed tasks. */
static int g_searchpath(lua_State *L)
{
    if (!(sandboxed(L) && denied(L, ALLOW_IO_SPECIAL)))
        return call_original(L);
    const char *name = luaL_checkstring(L, 1);
    const char *path = luaL_checkstring(L, 2);
    if (!lua_isnoneornil(L, 3) || !lua_isnoneornil(L, 4))
        return call_original(L); /* other separators: as the original */
    if (searchpath_regular(L, "package.searchpath", name, path))
        return 1;
    luaL_pushfail(L);
    lua_insert(L, -2);
    return 2;
}

/* package.searchers[2]: Lua files, text only unless load.binary
 * (upvalues: package, package.searchpath). */
static int g_searcher_lua(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    if (!search(L, 2, name, "path"))
        return 1;
    const char *file = lua_tostring(L, -1);
    int st;
    if (sandboxed(L)) {
        check_special(L, "require", file);
        st = load_checked(L, "require", file, denied(L, ALLOW_LOAD_BINARY) ? "t" : NULL);
    } else
        st = luaL_loadfilex(L, file, NULL);
    if (st != LUA_OK)
        return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, file,
                          lua_tostring(L, -1));
    if (push_task_env(L) && !lua_setupvalue(L, -2, 1))
        lua_pop(L, 1);
    lua_pushvalue(L, -2);
    return 2;
}

/* package.searchers[3] and [4]: C modules, by name on the allow-list
 * (upvalues: package, package.searchpath, the original searcher, 1 for
 * the all-in-one searcher). The library is not even opened when denied. */
static int g_searcher_c(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    lua_settop(L, 1);
    int allin = lua_toboolean(L, lua_upvalueindex(4));
    const char *dot = strchr(name, '.');
    if (allin && !dot)
        return 0; /* the all-in-one searcher only looks for submodules */
    lua_pushlstring(L, name, allin ? (size_t)(dot - name) : strlen(name));
    const char *file_of = lua_tostring(L, -1);
    if (search(L, 2, file_of, "cpath")) {
        check_module(L, name, lua_tostring(L, -1));
        lua_settop(L, 1);
        lua_pushvalue(L, lua_upvalueindex(3));
        lua_insert(L, 1);
        lua_call(L, 1, LUA_MULTRET);
        return lua_gettop(L);
    }
    return allin ? 0 : 1; /* the "no file" message, as the original's */
}

/* A preload loader of a gated module (exec, http): the setting, then the
 * module's functions gated like the ones loaded already. */
static void gate_module(lua_State *L, int t, const char *mod, uint32_t bit);

static int loader_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    if (lua_type(L, -1) == LUA_TTABLE)
        gate_module(L, lua_gettop(L), lua_tostring(L, lua_upvalueindex(3)), UP_BIT(L));
    return 1;
}

static int g_loader(lua_State *L)
{
    check(L, UP_NAME(L), UP_BIT(L));
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_insert(L, 1);
    lua_callk(L, n, 1, 0, loader_k);
    return loader_k(L, LUA_OK, 0);
}

/* The methods of a file handle on the worker's standard streams (upvalues:
 * the original, io.stdin, io.stdout, io.stderr): no seek (a task would
 * rewind the worker's log) nor setvbuf (the worker's buffering), no read
 * of a standard input that is not a regular file (it would block the VM
 * thread). */
static int g_stdmethod(lua_State *L)
{
    if (sandboxed(L)) {
        const char *name = lua_tostring(L, lua_upvalueindex(5));
        int which = 0;
        for (int i = 2; i <= 4; i++)
            if (lua_rawequal(L, 1, lua_upvalueindex(i)))
                which = i;
        static const char *const names[] = {"", "", "io.stdin", "io.stdout", "io.stderr"};
        if (which && (strcmp(name, "seek") == 0 || strcmp(name, "setvbuf") == 0))
            return luaL_error(L,
                              "%s on %s is not allowed in sandboxed tasks (the standard "
                              "streams are the worker's)",
                              name, names[which]);
        if (which == 2)
            check_special(L, "reading", NULL);
    }
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    return lua_gettop(L);
}

static void gate_std_methods(lua_State *L, int io)
{
    if (luaL_getmetatable(L, LUA_FILEHANDLE) != LUA_TTABLE ||
        lua_getfield(L, -1, "__index") != LUA_TTABLE) {
        lua_pop(L, 2);
        return;
    }
    int m = lua_gettop(L);
    static const char *const names[] = {"seek", "setvbuf", "read", "lines"};
    for (int i = 0; i < 4; i++) {
        if (lua_getfield(L, m, names[i]) != LUA_TFUNCTION ||
            lua_tocfunction(L, -1) == g_stdmethod) {
            lua_pop(L, 1);
            continue;
        }
        lua_getfield(L, io, "stdin");
        lua_getfield(L, io, "stdout");
        lua_getfield(L, io, "stderr");
        lua_pushstring(L, names[i]);
        lua_pushcclosure(L, g_stdmethod, 5);
        lua_setfield(L, m, names[i]);
    }
    lua_pop(L, 2);
}

/* ---- installing them ---- */

static const char INSTALLED = 'S';

/* Replaces t[field] (a function) by a closure of fn with (bit, original
 * or nil when drop, "prefix.field"). */
static void gate(lua_State *L, int t, const char *prefix, const char *field, uint32_t bit,
                 lua_CFunction fn, int drop)
{
    if (lua_getfield(L, t, field) != LUA_TFUNCTION) {
        lua_pop(L, 1);
        return;
    }
    if (lua_tocfunction(L, -1) == fn) { /* gated already */
        lua_pop(L, 1);
        return;
    }
    lua_pushinteger(L, bit);
    lua_insert(L, -2);
    if (drop && !(ceiling.bits & bit)) {
        lua_pop(L, 1);
        lua_pushnil(L); /* gone from the VM */
    }
    if (prefix)
        lua_pushfstring(L, "%s.%s", prefix, field);
    else
        lua_pushstring(L, field);
    lua_pushcclosure(L, fn, 3);
    lua_setfield(L, t, field);
}

static void gate_module(lua_State *L, int t, const char *mod, uint32_t bit)
{
    lua_pushnil(L);
    while (lua_next(L, t)) {
        int isf = lua_type(L, -2) == LUA_TSTRING && lua_isfunction(L, -1);
        lua_pop(L, 1);
        if (isf) {
            lua_pushvalue(L, -1);
            const char *k = lua_tostring(L, -1);
            /* (no new key: replacing a value during lua_next is allowed) */
            gate(L, t, mod, k, bit, g_plain, 1);
            lua_pop(L, 1);
        }
    }
}

/* Pushes registry._LOADED[name] if it is a table (returns 1). */
static int loaded_table(lua_State *L, const char *name)
{
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    int ok = lua_getfield(L, -1, name) == LUA_TTABLE;
    lua_remove(L, -2);
    if (!ok)
        lua_pop(L, 1);
    return ok;
}

static void install_searchers(lua_State *L, int pkg)
{
    if (lua_getfield(L, pkg, "searchers") != LUA_TTABLE ||
        lua_getfield(L, pkg, "searchpath") != LUA_TFUNCTION) {
        lua_pop(L, 2);
        return;
    }
    int sp = lua_gettop(L), ss = sp - 1;
    if (lua_rawgeti(L, ss, 1) == LUA_TFUNCTION && lua_tocfunction(L, -1) != g_searcher_preload) {
        lua_pushinteger(L, 0);
        lua_insert(L, -2);
        lua_pushliteral(L, "require");
        lua_pushcclosure(L, g_searcher_preload, 3);
        lua_rawseti(L, ss, 1);
    } else
        lua_pop(L, 1);
    lua_pushvalue(L, pkg);
    lua_pushvalue(L, sp);
    lua_pushcclosure(L, g_searcher_lua, 2);
    lua_rawseti(L, ss, 2);
    for (int i = 3; i <= 4; i++) {
        lua_pushvalue(L, pkg);
        lua_pushvalue(L, sp);
        lua_rawgeti(L, ss, i);
        lua_pushboolean(L, i == 4);
        lua_pushcclosure(L, g_searcher_c, 4);
        lua_rawseti(L, ss, i);
    }
    lua_pop(L, 2);
}

void sandbox_install(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &INSTALLED) != LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    codec_set_unview(unview);
    luaL_checkstack(L, 12, NULL);
    if (loaded_table(L, LUA_OSLIBNAME)) {
        int t = lua_gettop(L);
        gate(L, t, "os", "execute", ALLOW_OS_EXECUTE, g_plain, 1);
        gate(L, t, "os", "remove", ALLOW_OS_REMOVE, g_fileop, 1);
        gate(L, t, "os", "rename", ALLOW_OS_RENAME, g_fileop, 1);
        gate(L, t, "os", "tmpname", ALLOW_OS_TMPNAME, g_plain, 1);
        gate(L, t, "os", "getenv", ALLOW_OS_GETENV, g_getenv, 0);
        gate(L, t, "os", "setlocale", 0, g_setlocale, 0);
        lua_pop(L, 1);
    }
    if (loaded_table(L, LUA_IOLIBNAME)) {
        int t = lua_gettop(L);
        gate(L, t, "io", "popen", ALLOW_IO_POPEN, g_plain, 1);
        gate(L, t, "io", "tmpfile", ALLOW_IO_WRITE, g_plain, 1);
        gate(L, t, "io", "open", ALLOW_IO_WRITE, g_open, 0);
        gate(L, t, "io", "output", ALLOW_IO_WRITE, g_output, 0);
        gate(L, t, "io", "input", ALLOW_IO_SPECIAL, g_input, 0);
        gate(L, t, "io", "lines", ALLOW_IO_SPECIAL, g_input, 0);
        gate(L, t, "io", "read", ALLOW_IO_SPECIAL, g_iodefault, 0);
        gate(L, t, "io", "write", ALLOW_IO_WRITE, g_iodefault, 0);
        gate(L, t, "io", "close", ALLOW_IO_WRITE, g_iodefault, 0);
        gate_std_methods(L, t);
        lua_pop(L, 1);
    }
    if (loaded_table(L, LUA_DBLIBNAME)) {
        int t = lua_gettop(L);
        lua_pushnil(L);
        while (lua_next(L, t)) {
            lua_pop(L, 1);
            if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "traceback")) {
                lua_pushvalue(L, -1);
                gate(L, t, "debug", lua_tostring(L, -1), ALLOW_DEBUG, g_plain, 1);
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
    }
    if (loaded_table(L, LUA_LOADLIBNAME)) {
        int pkg = lua_gettop(L);
        gate(L, pkg, "package", "loadlib", ALLOW_LOADLIB, g_plain, 1);
        install_searchers(L, pkg);
        gate(L, pkg, "package", "searchpath", ALLOW_IO_SPECIAL, g_searchpath, 0);
        if (lua_getfield(L, pkg, "preload") == LUA_TTABLE) {
            gate(L, lua_gettop(L), NULL, "exec", ALLOW_EXEC, g_loader, 1);
            gate(L, lua_gettop(L), NULL, "http", ALLOW_HTTP, g_loader, 1);
        }
        lua_pop(L, 2);
    }
    static const char *const iomods[] = {"exec", "http"};
    for (int i = 0; i < 2; i++)
        if (loaded_table(L, iomods[i])) {
            gate_module(L, lua_gettop(L), iomods[i], i == 0 ? ALLOW_EXEC : ALLOW_HTTP);
            lua_pop(L, 1);
        }
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    int g = lua_gettop(L);
    gate(L, g, NULL, "load", ALLOW_LOAD_BINARY, g_load, 0);
    gate(L, g, NULL, "loadstring", ALLOW_LOAD_BINARY, g_load, 0);
    gate(L, g, NULL, "loadfile", ALLOW_LOAD_BINARY, g_loadfile, 0);
    gate(L, g, NULL, "require", 0, g_require, 0);
    gate(L, g, NULL, "getmetatable", 0, g_getmetatable, 0);
    gate(L, g, NULL, "rawget", 0, g_rawget, 0);
    gate(L, g, NULL, "collectgarbage", 0, g_collectgarbage, 0);
    if (lua_getfield(L, g, "dofile") == LUA_TFUNCTION && lua_tocfunction(L, -1) != g_dofile) {
        lua_pushcfunction(L, g_dofile);
        lua_setfield(L, g, "dofile");
    }
    lua_pop(L, 2);
    lua_pushboolean(L, 1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &INSTALLED);
}

static int install_p(lua_State *L)
{
    sandbox_install(L);
    return 0;
}

int sandbox_install_safe(lua_State *L)
{
    lua_pushcfunction(L, install_p);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        lua_pop(L, 1);
        return -1;
    }
    return 0;
}

uint64_t sandbox_check_option(lua_State *L, int idx, const char *fname)
{
    int ty = lua_type(L, idx);
    if (ty == LUA_TNIL || ty == LUA_TNONE)
        return 0;
    if (ty != LUA_TTABLE)
        luaL_error(L, "bad option 'allow' to '%s' (list of strings expected, got %s)", fname,
                   luaL_typename(L, idx));
    idx = lua_absindex(L, idx);
    uint32_t bits = 0;
    lua_Integer n = (lua_Integer)lua_rawlen(L, idx), none = 0, other = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int isint;
        lua_Integer k = lua_tointegerx(L, -2, &isint);
        if (lua_type(L, -2) != LUA_TNUMBER || !isint || k < 1 || k > n)
            luaL_error(L, "bad option 'allow' to '%s' (list of strings expected, got key %s)",
                       fname, luaL_tolstring(L, -2, NULL));
        size_t len;
        const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
        char why[600];
        if (s && len == 0)
            luaL_error(L,
                       "bad option 'allow' to '%s' (item %I: a setting expected, got an empty "
                       "string; allow = {} allows nothing)",
                       fname, k);
        if (!s || allow_check_item(s, len, 1, why, sizeof why) != 0)
            luaL_error(L, "bad option 'allow' to '%s' (item %I: %s, got %s)", fname, k,
                       s ? why : "string expected", s ? s : luaL_typename(L, -1));
        if (strcmp(s, "none") == 0)
            none = k;
        else
            other = k;
        if (none && other)
            luaL_error(L,
                       "bad option 'allow' to '%s' (item %I: 'none' allows nothing and cannot be "
                       "combined with other items; allow = {} or {\"none\"} allows nothing)",
                       fname, none);
        allow_set one;
        if (allow_parse(s, 1, &one, NULL, 0) == 0)
            bits |= one.bits;
        allow_set_free(&one);
        lua_pop(L, 1);
    }
    return ALLOW_PRESENT | bits;
}
