/* exec.c: the `exec` Lua module: exec.run(cmd, opts) on libuv process
 * handles, waiting the goroutine way (see exec.h).
 *
 * A run spawns the child in its own process group (UV_PROCESS_DETACHED:
 * setsid), collects stdout and stderr through pipes, feeds stdin, and parks
 * the caller until the child has exited and both pipes are at EOF (or a
 * short grace period after the exit has passed: a background grandchild
 * may keep them open). A timeout, a killed caller (task timeout,
 * goroutine.timeout) or the VM's end kill the whole process group.
 *
 * Ownership: the process record is malloc'd and listed in the VM's exec
 * state; a to-be-closed userdata on the caller's stack points to it while
 * the caller waits. It is freed in the close callback of its last handle. */
#include "exec.h"

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "list.h"
#include "scheduler.h"
#include "uv_closer.h"

#define GUARD_TNAME "mutirao.exec_process"
#define EOF_GRACE_MS 200 /* after the exit, how long to wait for EOF on the pipes */

extern char **environ;

static const char EXECVM_KEY = 'X';

typedef struct xproc xproc;

typedef struct exec_vm {
    sched *s;
    mlist procs; /* records not yet closed (of xproc.node) */
} exec_vm;

typedef struct membuf {
    char *p;
    size_t n, cap;
} membuf;

struct xproc {
    uv_process_t proc;
    uv_pipe_t out, err, in;
    uv_timer_t timer; /* the timeout, then the EOF grace period */
    uv_write_t wreq;
    exec_vm *vm;
    mlist node;    /* in vm->procs */
    glist waiters; /* the caller, while it waits */
    membuf obuf, ebuf;
    char *input; /* stdin data being written */
    size_t inlen;
    int pid;
    int64_t exit_status;
    int term_signal;
    uvc_closer closer; /* frees the record once its handles are closed */

    int has_in;  /* the stdin pipe exists (not yet closed) */
    int spawned; /* the child started */
    int exited;  /* its exit was reaped */
    int out_eof, err_eof;
    int timed_out; /* killed at its timeout */
    int done;      /* the result is complete */
    int abandoned; /* the caller is gone: close when done */
    int closing;   /* handles closed or closing */
};

typedef struct xguard {
    xproc *p;
} xguard;

/* ---- life cycle of a record ---- */

static void xproc_free(void *arg)
{
    xproc *p = arg;
    free(p->obuf.p);
    free(p->ebuf.p);
    free(p->input);
    free(p);
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h)) {
        xproc *p = h->data; /* until uvc_close takes data over */
        uvc_close(&p->closer, h);
    }
}

/* Closes every handle; the record is freed with the last one. */
static void xproc_close(xproc *p)
{
    if (p->closing)
        return;
    p->closing = 1;
    if (p->vm) {
        mlist_remove(&p->node);
        p->vm = NULL;
    }
    close_handle((uv_handle_t *)&p->proc);
    close_handle((uv_handle_t *)&p->out);
    close_handle((uv_handle_t *)&p->err);
    close_handle((uv_handle_t *)&p->timer);
    if (p->has_in) {
        p->has_in = 0;
        close_handle((uv_handle_t *)&p->in);
    }
    uvc_release(&p->closer); /* the record's own count, from x_run */
}

/* Kills the child's process group (and the child, should it have left it). */
static void kill_group(xproc *p)
{
    if (!p->spawned || p->done)
        return;
    if (kill(-p->pid, SIGKILL) != 0 && !p->exited)
        kill(p->pid, SIGKILL);
}

static void finish(xproc *p)
{
    if (p->done)
        return;
    p->done = 1;
    uv_timer_stop(&p->timer);
    uv_read_stop((uv_stream_t *)&p->out);
    uv_read_stop((uv_stream_t *)&p->err);
    if (p->abandoned)
        xproc_close(p);
    else if (p->vm)
        sched_ready_all(p->vm->s, &p->waiters);
}

static void on_grace(uv_timer_t *t)
{
    finish(t->data);
}

static void check_done(xproc *p)
{
    if (!p->exited || p->done)
        return;
    if (p->out_eof && p->err_eof) {
        finish(p);
        return;
    }
    uv_timer_stop(&p->timer);
    uv_timer_start(&p->timer, on_grace, EOF_GRACE_MS, 0);
}

static void on_child_exit(uv_process_t *h, int64_t status, int sig)
{
    xproc *p = h->data;
    p->exited = 1;
    p->exit_status = status;
    p->term_signal = sig;
    check_done(p);
}

static void on_timeout(uv_timer_t *t)
{
    xproc *p = t->data;
    p->timed_out = 1;
    kill_group(p);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    xproc *p = h->data;
    membuf *b = h == (uv_handle_t *)&p->out ? &p->obuf : &p->ebuf;
    if (b->cap - b->n < suggested) {
        size_t cap = b->cap ? b->cap : suggested;
        while (cap - b->n < suggested && cap < ((size_t)-1) / 2)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            *buf = uv_buf_init(NULL, 0); /* read_cb gets UV_ENOBUFS */
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    *buf = uv_buf_init(b->p + b->n, (unsigned)(b->cap - b->n));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    xproc *p = s->data;
    int is_out = s == (uv_stream_t *)&p->out;
    if (n > 0) {
        (is_out ? &p->obuf : &p->ebuf)->n += (size_t)n;
        return;
    }
    if (n == 0)
        return;
    /* EOF, or an error that ends this stream */
    uv_read_stop(s);
    if (is_out)
        p->out_eof = 1;
    else
        p->err_eof = 1;
    check_done(p);
}

static void on_written(uv_write_t *w, int status)
{
    (void)status; /* EPIPE: the child did not read it all */
    xproc *p = w->data;
    free(p->input);
    p->input = NULL;
    if (p->has_in) {
        p->has_in = 0;
        close_handle((uv_handle_t *)&p->in); /* the child sees EOF */
    }
}

/* ---- the per-VM state ---- */

static int execvm_gc(lua_State *L)
{
    exec_vm **box = lua_touserdata(L, 1);
    exec_vm *vm = *box;
    if (!vm)
        return 0;
    *box = NULL;
    /* the VM ends: children still running go with it */
    xproc *p;
    while ((p = mlist_first_entry(&vm->procs, xproc, node))) {
        kill_group(p);
        xproc_close(p);
    }
    free(vm);
    return 0;
}

static exec_vm *execvm_get(lua_State *L, sched *s)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &EXECVM_KEY) == LUA_TUSERDATA) {
        exec_vm *vm = *(exec_vm **)lua_touserdata(L, -1);
        lua_pop(L, 1);
        if (!vm)
            luaL_error(L, "exec: this VM is closing");
        return vm;
    }
    lua_pop(L, 1);
    exec_vm **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = NULL;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, execvm_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    exec_vm *vm = calloc(1, sizeof *vm);
    if (!vm)
        luaL_error(L, "not enough memory");
    vm->s = s;
    mlist_init(&vm->procs);
    *box = vm;
    lua_rawsetp(L, LUA_REGISTRYINDEX, &EXECVM_KEY);
    return vm;
}

/* ---- the guard on the caller's stack ---- */

static int guard_close(lua_State *L)
{
    xguard *g = luaL_checkudata(L, 1, GUARD_TNAME);
    xproc *p = g->p;
    if (!p)
        return 0;
    g->p = NULL;
    if (p->done) {
        xproc_close(p);
        return 0;
    }
    /* the caller was killed (or its VM ends): the child goes too */
    p->abandoned = 1;
    kill_group(p);
    return 0;
}

/* ---- arguments ---- */

typedef struct xargs {
    const char **argv;
    char **env;
    const char *cwd;
    const char *input;
    size_t inlen;
    double timeout_s;
} xargs;

static void opt_error(lua_State *L, const char *field, const char *expected)
{
    lua_getfield(L, 2, field);
    luaL_argerror(L, 2,
                  lua_pushfstring(L, "field '%s': %s expected, got %s", field, expected,
                                  luaL_typename(L, -1)));
}

static void check_opt_names(lua_State *L)
{
    static const char *const known[] = {"timeout", "cwd", "env", "stdin", NULL};
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        lua_pop(L, 1);
        int ok = 0;
        if (lua_type(L, -1) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -1);
            for (int i = 0; known[i] && !ok; i++)
                ok = strcmp(k, known[i]) == 0;
        }
        if (!ok) {
            lua_pushvalue(L, -1);
            luaL_argerror(L, 2,
                          lua_pushfstring(L, "unknown option '%s'", luaL_tolstring(L, -1, NULL)));
        }
    }
}

/* argv from argument 1: a string for /bin/sh -c, or a non-empty array of
 * strings. The array lives in a userdata left on the stack. */
static void check_cmd(lua_State *L, xargs *a)
{
    int t = lua_type(L, 1);
    if (t == LUA_TSTRING) {
        size_t n;
        const char *cmd = lua_tolstring(L, 1, &n);
        if (strlen(cmd) != n)
            luaL_argerror(L, 1, "command contains a zero byte");
        a->argv = lua_newuserdatauv(L, 4 * sizeof *a->argv, 0);
        a->argv[0] = "/bin/sh";
        a->argv[1] = "-c";
        a->argv[2] = cmd;
        a->argv[3] = NULL;
        return;
    }
    if (t != LUA_TTABLE)
        luaL_typeerror(L, 1, "string or table");
    lua_Integer n = luaL_len(L, 1);
    if (n < 1)
        luaL_argerror(L, 1, "argv table is empty");
    if (n > 1 << 20)
        luaL_argerror(L, 1, "argv table is too long");
    a->argv = lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *a->argv, 1);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1); /* anchors the strings */
    for (lua_Integer i = 1; i <= n; i++) {
        int vt = lua_rawgeti(L, 1, i);
        if (vt != LUA_TSTRING)
            luaL_argerror(
                L, 1,
                lua_pushfstring(L, "string expected at index %I, got %s", i, luaL_typename(L, -1)));
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        if (strlen(s) != len)
            luaL_argerror(L, 1, lua_pushfstring(L, "argument %I contains a zero byte", i));
        a->argv[i - 1] = s;
        lua_pop(L, 1);
    }
    a->argv[n] = NULL;
}

/* The child's environment: ours, with opts.env's entries set (a value of
 * false removes a variable). Strings live in a table left on the stack. */
static void build_env(lua_State *L, xargs *a, int envt)
{
    lua_newtable(L); /* name -> "name=value" */
    int tmp = lua_gettop(L);
    for (char **e = environ; *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq || eq == *e)
            continue;
        lua_pushlstring(L, *e, (size_t)(eq - *e));
        lua_pushstring(L, *e);
        lua_rawset(L, tmp);
    }
    lua_pushnil(L);
    while (lua_next(L, envt)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_argerror(L, 2, "field 'env': names must be strings");
        size_t kn;
        const char *k = lua_tolstring(L, -2, &kn);
        if (kn == 0 || strlen(k) != kn || strchr(k, '='))
            luaL_argerror(L, 2, lua_pushfstring(L, "field 'env': invalid name '%s'", k));
        int vt = lua_type(L, -1);
        if (vt == LUA_TBOOLEAN && !lua_toboolean(L, -1)) {
            lua_pushvalue(L, -2);
            lua_pushnil(L);
        } else if (vt == LUA_TSTRING || vt == LUA_TNUMBER) {
            size_t vn;
            lua_pushvalue(L, -1);
            const char *v = lua_tolstring(L, -1, &vn);
            if (strlen(v) != vn)
                luaL_argerror(
                    L, 2, lua_pushfstring(L, "field 'env': value of '%s' contains a zero byte", k));
            lua_pushfstring(L, "%s=%s", k, v);
            lua_remove(L, -2);
            lua_pushvalue(L, -3);
            lua_insert(L, -2);
        } else {
            luaL_argerror(L, 2,
                          lua_pushfstring(L, "field 'env': value of '%s': string expected, got %s",
                                          k, luaL_typename(L, -1)));
        }
        lua_rawset(L, tmp);
        lua_pop(L, 1);
    }
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, tmp)) {
        n++;
        lua_pop(L, 1);
    }
    a->env = lua_newuserdatauv(L, (n + 1) * sizeof *a->env, 1);
    lua_pushvalue(L, tmp);
    lua_setiuservalue(L, -2, 1);
    size_t i = 0;
    lua_pushnil(L);
    while (lua_next(L, tmp)) {
        a->env[i++] = (char *)lua_tostring(L, -1); /* anchored by tmp */
        lua_pop(L, 1);
    }
    a->env[i] = NULL;
}

static void check_opts(lua_State *L, xargs *a)
{
    a->timeout_s = 0;
    if (lua_isnoneornil(L, 2))
        return;
    luaL_checktype(L, 2, LUA_TTABLE);
    check_opt_names(L);
    int t = lua_getfield(L, 2, "timeout");
    if (t != LUA_TNIL) {
        if (t != LUA_TNUMBER)
            opt_error(L, "timeout", "number");
        double v = lua_tonumber(L, -1);
        if (!(v > 0))
            luaL_argerror(L, 2, "field 'timeout': positive number of seconds expected");
        a->timeout_s = v;
    }
    lua_pop(L, 1);
    t = lua_getfield(L, 2, "cwd");
    if (t != LUA_TNIL && t != LUA_TSTRING)
        opt_error(L, "cwd", "string");
    a->cwd = t == LUA_TSTRING ? lua_tostring(L, -1) : NULL; /* anchored by opts */
    lua_pop(L, 1);
    t = lua_getfield(L, 2, "stdin");
    if (t != LUA_TNIL && t != LUA_TSTRING)
        opt_error(L, "stdin", "string");
    a->input = t == LUA_TSTRING ? lua_tolstring(L, -1, &a->inlen) : NULL;
    lua_pop(L, 1);
    t = lua_getfield(L, 2, "env");
    if (t != LUA_TNIL && t != LUA_TTABLE)
        opt_error(L, "env", "table");
    if (t == LUA_TTABLE)
        build_env(L, a, lua_gettop(L));
}

/* ---- run ---- */

static pthread_once_t sigpipe_once = PTHREAD_ONCE_INIT;

/* Writing stdin to a child that exited must fail with EPIPE, not kill the
 * process: SIGPIPE is ignored unless the host set its own handler. (Children
 * get the default disposition back: libuv resets it.) */
static void ignore_sigpipe(void)
{
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
}

static void push_result(lua_State *L, xproc *p)
{
    lua_createtable(L, 0, 7);
    int sig = p->term_signal;
    lua_pushinteger(L, sig ? 128 + sig : (lua_Integer)p->exit_status);
    lua_setfield(L, -2, "code");
    lua_pushlstring(L, p->obuf.p ? p->obuf.p : "", p->obuf.n);
    lua_setfield(L, -2, "stdout");
    lua_pushlstring(L, p->ebuf.p ? p->ebuf.p : "", p->ebuf.n);
    lua_setfield(L, -2, "stderr");
    if (sig) {
        lua_pushinteger(L, sig);
        lua_setfield(L, -2, "signal");
    }
    lua_pushboolean(L, p->timed_out);
    lua_setfield(L, -2, "timed_out");
    lua_pushboolean(L, !sig && p->exit_status == 0 && !p->timed_out);
    lua_setfield(L, -2, "ok");
    lua_pushinteger(L, p->pid);
    lua_setfield(L, -2, "pid");
}

static int run_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    xguard *g = (xguard *)ctx;
    xproc *p = g->p;
    if (!p->done) /* woken for another reason: wait on */
        return sched_wait(L, p->vm->s, &p->waiters, 0, ctx, run_k);
    push_result(L, p);
    g->p = NULL;
    xproc_close(p);
    return 1;
}

static int x_run(lua_State *L)
{
    sched *s = lua_touserdata(L, lua_upvalueindex(1));
    xargs a;
    memset(&a, 0, sizeof a);
    if (lua_type(L, 1) != LUA_TSTRING && lua_type(L, 1) != LUA_TTABLE)
        luaL_typeerror(L, 1, "string or table");
    lua_settop(L, 2);
    check_cmd(L, &a);
    check_opts(L, &a);
    exec_vm *vm = execvm_get(L, s); /* before the guard: finalised after it */
    xguard *g = lua_newuserdatauv(L, sizeof *g, 0);
    g->p = NULL;
    luaL_setmetatable(L, GUARD_TNAME);
    int gidx = lua_gettop(L);
    xproc *p = calloc(1, sizeof *p);
    if (!p)
        return luaL_error(L, "not enough memory");
    if (a.input && a.inlen > 0) {
        p->input = malloc(a.inlen);
        if (!p->input) {
            free(p);
            return luaL_error(L, "not enough memory");
        }
        memcpy(p->input, a.input, a.inlen);
        p->inlen = a.inlen;
        pthread_once(&sigpipe_once, ignore_sigpipe);
    }
    uv_loop_t *loop = s->loop;
    p->vm = vm;
    mlist_push_front(&vm->procs, &p->node);
    glist_init(&p->waiters);
    uv_pipe_init(loop, &p->out, 0);
    uv_pipe_init(loop, &p->err, 0);
    uv_timer_init(loop, &p->timer);
    /* out, err, timer, the process handle (closed even if spawn fails) and
     * stdin may close at different times: xproc_close releases the last */
    uvc_init(&p->closer, xproc_free, p);
    if (a.input) {
        uv_pipe_init(loop, &p->in, 0);
        p->in.data = p;
        p->has_in = 1;
    }
    p->proc.data = p->out.data = p->err.data = p->timer.data = p;
    p->wreq.data = p;

    uv_stdio_container_t stdio[3];
    if (a.input) {
        stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
        stdio[0].data.stream = (uv_stream_t *)&p->in;
    } else {
        stdio[0].flags = UV_IGNORE; /* /dev/null */
    }
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&p->out;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&p->err;
    uv_process_options_t o;
    memset(&o, 0, sizeof o);
    o.exit_cb = on_child_exit;
    o.file = a.argv[0];
    o.args = (char **)a.argv;
    o.env = a.env;
    o.cwd = a.cwd;
    o.flags = UV_PROCESS_DETACHED; /* its own process group, killed as one */
    o.stdio_count = 3;
    o.stdio = stdio;
    int rc = uv_spawn(loop, &p->proc, &o);
    if (rc != 0) {
        xproc_close(p);
        if (a.cwd && (rc == UV_ENOENT || rc == UV_ENOTDIR || rc == UV_EACCES))
            return luaL_error(L, "exec.run: cannot run '%s' in '%s': %s", a.argv[0], a.cwd,
                              uv_strerror(rc));
        return luaL_error(L, "exec.run: cannot run '%s': %s", a.argv[0], uv_strerror(rc));
    }
    p->spawned = 1;
    p->pid = p->proc.pid;
    g->p = p;
    uv_read_start((uv_stream_t *)&p->out, on_alloc, on_read);
    uv_read_start((uv_stream_t *)&p->err, on_alloc, on_read);
    if (p->input) {
        uv_buf_t b = uv_buf_init(p->input, (unsigned)p->inlen);
        if (uv_write(&p->wreq, (uv_stream_t *)&p->in, &b, 1, on_written) != 0)
            on_written(&p->wreq, -1);
    } else if (p->has_in) { /* stdin = "": EOF at once */
        p->has_in = 0;
        close_handle((uv_handle_t *)&p->in);
    }
    if (a.timeout_s > 0 && isfinite(a.timeout_s) && a.timeout_s < 1e9) {
        uv_update_time(loop); /* the loop's cached time may be stale: spawning took time */
        uv_timer_start(&p->timer, on_timeout, (uint64_t)ceil(a.timeout_s * 1000.0), 0);
    }
    lua_pushvalue(L, gidx);
    lua_replace(L, 1);
    lua_settop(L, 1);
    lua_toclose(L, 1); /* a killed caller kills the child */
    return sched_wait(L, s, &p->waiters, 0, (lua_KContext)g, run_k);
}

int exec_open(lua_State *L, sched *s)
{
    static const luaL_Reg funcs[] = {{"run", x_run}, {NULL, NULL}};
    if (luaL_newmetatable(L, GUARD_TNAME)) {
        lua_pushcfunction(L, guard_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, guard_close);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
    luaL_newlibtable(L, funcs);
    lua_pushlightuserdata(L, s);
    luaL_setfuncs(L, funcs, 1);
    return 1;
}
