/* main.c: the `mutirao-worker` command: configuration, the VM threads that
 * run fleet tasks, the consumer (consumer.c) and a clean stop on SIGTERM or
 * SIGINT (the tasks not started go back to Kafka, the worker leaves the
 * group, the running ones finish and are recorded; a second signal exits at
 * once).
 *
 * With no arguments it serves every pool (topics matching topic.prefix,
 * including pools created after it started); --pools restricts it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <uv.h>

#include "config.h"
#include "fleet_pool.h"
#include "goroutine.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "procs.h"
#include "sandbox.h"
#include "scheduler.h"
#include "wlog.h"
#include "worker.h"

#ifndef MUTIRAO_VERSION
#define MUTIRAO_VERSION "0.0.0"
#endif

static const char usage_text[] =
    "usage: mutirao-worker [options]\n"
    "\n"
    "Runs the tasks of fleet pools: consumes their Kafka topics (consumer group\n"
    "worker.group, default mutirao.workers), runs each task as a goroutine on this\n"
    "process's VM threads and records its outcome in Redis.\n"
    "\n"
    "options:\n"
    "  --pools A,B          serve only these pools (default: every pool, also\n"
    "                       pools created later; also MUTIRAO_WORKER_POOLS)\n"
    "  --config FILE        configuration file (default: $MUTIRAO_CONFIG,\n"
    "                       ./config/mutirao.conf, /etc/mutirao/mutirao.conf)\n"
    "  --procs N            VM threads running tasks (default: cores; also\n"
    "                       MUTIRAO_PROCS)\n"
    "  --id ID              this worker's id in Redis and logs (default HOST-PID)\n"
    "  --drain-timeout S    on SIGTERM or SIGINT, wait this long for running tasks\n"
    "                       (default 30; the tasks not started go back at once)\n"
    "  --log-level LEVEL    debug, info, warn or error (default info)\n"
    "  --metrics-addr ADDR  serve Prometheus metrics on http://ADDR/metrics: PORT\n"
    "                       (on 127.0.0.1), HOST:PORT or [IPV6]:PORT (default: none;\n"
    "                       also worker.metrics_addr, MUTIRAO_WORKER_METRICS_ADDR)\n"
    "  --version, --help\n"
    "\n"
    "Kafka and Redis come from the configuration: MUTIRAO_KAFKA_BROKERS,\n"
    "MUTIRAO_REDIS_URL or kafka.brokers / redis.url in the file.\n"
    "\n"
    "Tasks run sandboxed: no os.execute, io.popen, file writes, debug, C modules,\n"
    "bytecode, exec or http unless worker.allow (MUTIRAO_WORKER_ALLOW) allows them,\n"
    "e.g. worker.allow = exec,http,os.execute (see config/mutirao.conf). They never\n"
    "open the worker's key, password and configuration files, /proc only with\n"
    "io.open.special, and read MUTIRAO_* or secret-looking variables only with\n"
    "os.getenv.\n";

static int level_of(const char *s)
{
    if (!strcmp(s, "debug"))
        return WLOG_DEBUG;
    if (!strcmp(s, "info"))
        return WLOG_INFO;
    if (!strcmp(s, "warn") || !strcmp(s, "warning"))
        return WLOG_WARN;
    if (!strcmp(s, "error"))
        return WLOG_ERROR;
    return -1;
}

static const char *log_level = "info";
/* The configuration of the task VMs' fleet backend (main's, read-only once
 * the VM threads start). */
static const config *task_cfg;

/* procs setup hook: every task VM gets the runner's globals, and its pools
 * are fleet pools: a task may create and submit to fleet pools itself. */
static void task_vm_setup(lua_State *L)
{
    fleet_backend_install(L, sched_get(L), task_cfg);
    procs_global_require(L, "goroutine"); /* as a task file's main VM has it */
    log_global_open(L, "text", log_level);
    sandbox_install(L); /* worker.allow: what tasks may do beyond the default */
}

/* config_secret_files: no sandboxed task may open the file. */
static void deny_secret_file(void *ud, const char *what, const char *path)
{
    (void)ud;
    if (sandbox_deny_file(path) == 0)
        wlog(WLOG_INFO, "tasks may not open %s (%s: the worker's secrets)", path, what);
    else
        wlog(WLOG_WARN, "%s %s: %s (not registered as a secret file for tasks)", what, path,
             strerror(errno));
}

static int open_main_vm(lua_State *L)
{
    memset(lua_getextraspace(L), 0, LUA_EXTRASPACE);
    luaL_openlibs(L);
    luaL_requiref(L, "goroutine", luaopen_goroutine, 0);
    lua_pop(L, 1);
    return 0;
}

typedef struct app {
    sched *s;
    worker *w;
    metrics *m;         /* the Prometheus figures (NULL: no endpoint) */
    metrics_http *http; /* their endpoint */
    uv_signal_t sigterm, sigint;
    int drain_ms;
    int signals;
} app;

static void on_stopped(void *ud)
{
    app *a = ud;
    wlog(WLOG_INFO, "stopped");
    metrics_http_close(a->http);
    a->http = NULL;
    uv_close((uv_handle_t *)&a->sigterm, NULL);
    uv_close((uv_handle_t *)&a->sigint, NULL);
    sched_unhold(a->s);
}

/* The first SIGTERM or SIGINT stops gracefully (worker_stop); a second one
 * exits at once, with 128 + its number: the tasks still running here are
 * not recorded and run again on the workers that get their partitions. */
static void on_signal(uv_signal_t *h, int signum)
{
    app *a = h->data;
    if (a->signals++ > 0) {
        wlog(WLOG_WARN,
             "second signal (%s): exiting now; unfinished tasks will run again elsewhere",
             signum == SIGTERM ? "SIGTERM" : "SIGINT");
        fflush(stdout);
        _exit(128 + signum); /* not exit(): the VM threads still run */
    }
    wlog(WLOG_INFO, "%s received", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    worker_stop(a->w, a->drain_ms, on_stopped, a);
}

static int fail(const char *fmt, const char *arg)
{
    fputs("mutirao-worker: ", stderr);
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    return 2;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    setvbuf(stderr, NULL, _IONBF, 0);
    const char *pools = NULL, *config_file = NULL, *procs = NULL, *id = NULL, *maddr = NULL;
    int drain_s = 30;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (!strcmp(a, "--version") || !strcmp(a, "-V")) {
            printf("mutirao-worker %s (%s, libuv %s)\n", MUTIRAO_VERSION, LUA_RELEASE,
                   uv_version_string());
            return 0;
        } else if (!strcmp(a, "--pools") || !strcmp(a, "--config") || !strcmp(a, "--procs") ||
                   !strcmp(a, "--id") || !strcmp(a, "--log-level") ||
                   !strcmp(a, "--drain-timeout") || !strcmp(a, "--metrics-addr")) {
            if (!v || !*v)
                return fail("option %s needs a value", a);
            i++;
            if (!strcmp(a, "--pools"))
                pools = v;
            else if (!strcmp(a, "--config"))
                config_file = v;
            else if (!strcmp(a, "--procs"))
                procs = v;
            else if (!strcmp(a, "--id"))
                id = v;
            else if (!strcmp(a, "--metrics-addr"))
                maddr = v;
            else if (!strcmp(a, "--log-level")) {
                if (level_of(v) < 0)
                    return fail("invalid --log-level '%s' (expected debug, info, warn or error)",
                                v);
                log_level = v;
            } else {
                char *end;
                long d = strtol(v, &end, 10);
                if (*end || d < 0 || d > 86400)
                    return fail("invalid --drain-timeout '%s' (seconds, 0 to 86400)", v);
                drain_s = (int)d;
            }
        } else {
            return fail("unknown argument '%s' (see --help)", a);
        }
    }
    if (procs) {
        char *end;
        long n = strtol(procs, &end, 10);
        if (*end || n < 1 || n > 1024)
            return fail("invalid --procs '%s' (1 to 1024)", procs);
        setenv("MUTIRAO_PROCS", procs, 1);
    }
    char why[512];
    if (config_file && config_use_file(config_file, why, sizeof why) != 0) {
        fprintf(stderr, "mutirao-worker: %s\n", why);
        return 2;
    }

    config cfg;
    char err[512];
    int rc = config_load(&cfg, NULL, err, sizeof err);
    if (rc == 0 && pools)
        rc = config_set(&cfg, "worker.pools", pools, "--pools", err, sizeof err);
    if (rc == 0 && id)
        rc = config_set(&cfg, "worker.id", id, "--id", err, sizeof err);
    if (rc == 0 && maddr)
        rc = config_set(&cfg, "worker.metrics_addr", maddr, "--metrics-addr", err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "mutirao-worker: %s\n", err);
        config_free(&cfg);
        return 2;
    }
    wlog_setup(cfg.worker_id, level_of(log_level));
    if (sandbox_set_ceiling(cfg.worker_allow, err, sizeof err) != 0) {
        fprintf(stderr, "mutirao-worker: worker.allow: %s\n", err);
        config_free(&cfg);
        return 2;
    }
    if (sandbox_active())
        wlog(WLOG_INFO, "tasks run sandboxed (worker.allow = %s)",
             cfg.worker_allow[0] ? cfg.worker_allow : "nothing more than the default");
    else
        wlog(WLOG_WARN,
             "worker.allow = %s: the task sandbox is off (tasks may run commands, "
             "write files and load C code)",
             cfg.worker_allow);
    /* before any task runs: the files that hold the worker's secrets */
    config_secret_files(&cfg, deny_secret_file, NULL);
    char redacted[512];
    config_redact_url(cfg.redis_url, redacted, sizeof redacted);
    wlog(WLOG_INFO, "starting: kafka %s (%s), redis %s, pools %s", cfg.kafka_brokers,
         cfg.kafka_security_protocol, redacted,
         cfg.worker_npools ? pools ? pools : "(from the configuration)" : "all");

    lua_State *L = luaL_newstate();
    if (L) {
        lua_pushcfunction(L, open_main_vm);
        if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
            lua_close(L);
            L = NULL;
        }
    }
    if (!L) {
        fprintf(stderr, "mutirao-worker: cannot create the Lua state\n");
        config_free(&cfg);
        return 1;
    }
    app a;
    memset(&a, 0, sizeof a);
    a.s = sched_get(L);
    a.drain_ms = drain_s * 1000;
    task_cfg = &cfg;
    procs_set_setup(task_vm_setup);
    int n = procs_start();
    if (n < 0) {
        fprintf(stderr, "mutirao-worker: cannot start the VM threads\n");
        lua_close(L);
        config_free(&cfg);
        return 1;
    }
    if (cfg.worker_metrics_addr[0]) {
        /* before anything connects: a port in use is a startup error */
        a.m = metrics_new((double)time(NULL));
        if (a.m)
            metrics_set_info(a.m, cfg.worker_id, MUTIRAO_VERSION);
        a.http = a.m ? metrics_http_start(a.s->loop, cfg.worker_metrics_addr, a.m, err, sizeof err)
                     : NULL;
        if (!a.http) {
            fprintf(stderr, "mutirao-worker: %s\n", a.m ? err : "metrics: out of memory");
            uv_run(a.s->loop, UV_RUN_NOWAIT); /* the listener's close */
            metrics_free(a.m);
            lua_close(L);
            config_free(&cfg);
            return 2;
        }
        wlog(WLOG_INFO, "metrics on http://%s%s/metrics",
             strchr(cfg.worker_metrics_addr, ':') ? "" : "127.0.0.1:", cfg.worker_metrics_addr);
    }
    a.w = worker_start(a.s, &cfg, a.m, err, sizeof err);
    if (!a.w) {
        fprintf(stderr, "mutirao-worker: %s\n", err);
        if (a.http) {
            metrics_http_close(a.http);
            uv_run(a.s->loop, UV_RUN_NOWAIT); /* its close callbacks */
        }
        metrics_free(a.m);
        lua_close(L);
        config_free(&cfg);
        return 1;
    }
    wlog(WLOG_INFO, "running tasks on %d VM thread(s)", n);
    uv_signal_init(a.s->loop, &a.sigterm);
    uv_signal_init(a.s->loop, &a.sigint);
    a.sigterm.data = a.sigint.data = &a;
    uv_signal_start(&a.sigterm, on_signal, SIGTERM);
    uv_signal_start(&a.sigint, on_signal, SIGINT);
    sched_hold(a.s);
    sched_run(a.s);
    /* let the consumer's last commit and group leave go out (bounded) */
    uint64_t until = uv_hrtime() + 15000000000ull;
    while (uv_run(a.s->loop, UV_RUN_NOWAIT) != 0 && uv_hrtime() < until)
        usleep(2000);
    /* the VM threads live as long as the process: exit without joining them */
    fflush(stdout);
    config_free(&cfg);
    _exit(0);
}
