/* cli.c: the `mutirao` command: argument parsing, the VM of `mutirao run`,
 * loading the task file and the process exit status.
 *
 * `run` creates one VM (lua_newstate with our allocator), preloads the
 * goroutine and log modules and the embedded runner (lua/runner/runner.lua,
 * lua/runner/dsl.lua), loads FILE (errors: one line, exit 2), lets runner.start()
 * spawn the runner as a goroutine and runs the scheduler loop until nothing
 * is left. Goroutines left asleep with nothing to wake them are a deadlock:
 * reported with where each one waits, exit 1. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <uv.h>

#include "codec.h"
#include "cli_ops.h"
#include "cli_top.h"
#include "cli_config.h"
#include "config.h"
#include "dashboard.h"
#include "dlq.h"
#include "progress.h"
#include "embedded.h"
#include "fleet_pool.h"
#include "goroutine.h"
#include "iomods.h"
#include "log.h"
#include "procs.h"
#include "scheduler.h"
#include "sign.h"

#ifndef MUTIRAO_VERSION
#define MUTIRAO_VERSION "0.0.0"
#endif

enum { EXIT_FAIL = 1, EXIT_USAGE = 2 };

static const char usage_text[] =
    "usage: mutirao [--config FILE] <command> [options]\n"
    "\n"
    "commands:\n"
    "  run [-f] FILE [options]   run a task file (.lua or .sloth)\n" CLI_OPS_USAGE CLI_TOP_USAGE
    "  dlq list|retry|drop POOL  a fleet pool's dead letters (mutirao dlq help)\n" DASHBOARD_USAGE
    "  keygen --out DIR [--name NAME]\n"
    "                            make a key pair for signed task envelopes:\n"
    "                            DIR/NAME.key (private, mode 0600, never\n"
    "                            overwritten) and DIR/NAME.pub (default NAME: mutirao)\n"
    "  config                    print the fleet configuration in effect (secrets\n"
    "                            as ***) and check its TLS and SASL settings\n"
    "  version                   print the version\n"
    "  help                      show this help\n"
    "\n"
    "run options:\n"
    "  -f, --file FILE           the task file (also accepted as the first argument)\n"
    "  --workflow NAME           run only this workflow\n"
    "  --param KEY=VALUE         set params.KEY for the tasks (repeatable)\n"
    "  --log-format text|json    log record format on stderr (default: text)\n"
    "  --log-level LEVEL         debug, info, warn or error (default: info;\n"
    "                            also MUTIRAO_LOG_LEVEL)\n"
    "  --fleet                   run pools on the fleet (Kafka + mutirao-worker);\n"
    "                            brokers and Redis from config/mutirao.conf or\n"
    "                            MUTIRAO_KAFKA_BROKERS / MUTIRAO_REDIS_URL\n"
    "\n"
    "--config FILE (before the command, or among its options): the fleet\n"
    "configuration file (default: $MUTIRAO_CONFIG, else\n"
    "./config/mutirao.conf, /etc/mutirao/mutirao.conf); MUTIRAO_* variables\n"
    "override it.\n"
    "\n"
    "Exit status: 0 when every task succeeded, 1 when a task failed or an error\n"
    "escaped, 2 on bad usage or an invalid task file.\n";

/* Where a usage error points ("mutirao run --help" while parsing run's
 * arguments). */
static const char *usage_hint = "mutirao --help";

typedef struct param {
    const char *key;
    size_t keylen;
    const char *value;
} param;

typedef struct run_opts {
    int fleet;
    const char *file;
    const char *workflow;
    const char *log_format;
    const char *log_level;
    param *params;
    int nparams;
    const config *cfg;   /* the configuration, or NULL when it did not load */
    const char *cfg_err; /* then: why */
} run_opts;

/* A usage error: one line, and where the help is. */
static int usage_error(const char *fmt, const char *arg)
{
    fputs("mutirao: ", stderr);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see %s)\n", usage_hint);
    return EXIT_USAGE;
}

static int valid_level(const char *s)
{
    return !strcmp(s, "debug") || !strcmp(s, "info") || !strcmp(s, "warn") ||
           !strcmp(s, "warning") || !strcmp(s, "error");
}

/* The value of option argv[*i] given as "--opt VALUE" or "--opt=VALUE"
 * (name is the option without the value); NULL when it is missing. */
static const char *opt_value(int argc, char **argv, int *i, const char *name)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (a[n] == '=')
        return a + n + 1;
    if (*i + 1 >= argc)
        return NULL;
    return argv[++*i];
}

static int is_opt(const char *a, const char *name)
{
    size_t n = strlen(name);
    return strncmp(a, name, n) == 0 && (a[n] == 0 || (a[n] == '=' && name[1] == '-'));
}

/* Parses `run` arguments into o (o->params must hold argc entries).
 * Returns 0, or an exit status after printing the problem. */
static int parse_run(int argc, char **argv, run_opts *o)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v;
        int st;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_text, stdout);
            return -1;
        } else if (is_opt(a, "-f") || is_opt(a, "--file")) {
            if (!(v = opt_value(argc, argv, &i, a[1] == 'f' ? "-f" : "--file")))
                return usage_error("option %s needs a file", a);
            if (o->file)
                return usage_error("more than one task file given (%s)", v);
            o->file = v;
        } else if (!strcmp(a, "--fleet")) {
            o->fleet = 1;
        } else if ((st = cli_config_option(argc, argv, &i, "mutirao", usage_hint)) !=
                   CLI_CONFIG_OTHER) {
            if (st != 0)
                return st;
        } else if (is_opt(a, "--workflow")) {
            if (!(v = opt_value(argc, argv, &i, "--workflow")) || !*v)
                return usage_error("option %s needs a workflow name", "--workflow");
            o->workflow = v;
        } else if (is_opt(a, "--param")) {
            if (!(v = opt_value(argc, argv, &i, "--param")))
                return usage_error("option %s needs KEY=VALUE", "--param");
            const char *eq = strchr(v, '=');
            if (!eq || eq == v)
                return usage_error("--param expects KEY=VALUE, got '%s'", v);
            param *p = &o->params[o->nparams++];
            p->key = v;
            p->keylen = (size_t)(eq - v);
            p->value = eq + 1;
        } else if (is_opt(a, "--log-format")) {
            if (!(v = opt_value(argc, argv, &i, "--log-format")))
                return usage_error("option %s needs text or json", "--log-format");
            if (strcmp(v, "text") && strcmp(v, "json"))
                return usage_error("invalid --log-format '%s' (expected text or json)", v);
            o->log_format = v;
        } else if (is_opt(a, "--log-level")) {
            if (!(v = opt_value(argc, argv, &i, "--log-level")))
                return usage_error("option %s needs a level", "--log-level");
            if (!valid_level(v))
                return usage_error("invalid --log-level '%s' (expected debug, info, warn or error)",
                                   v);
            o->log_level = v;
        } else if (a[0] == '-' && a[1] != 0) {
            return usage_error("unknown option '%s'", a);
        } else {
            if (o->file)
                return usage_error("more than one task file given (%s)", a);
            o->file = a;
        }
    }
    if (!o->file)
        return usage_error("%s", "run: no task file given");
    if (!o->log_level) {
        const char *env = getenv("MUTIRAO_LOG_LEVEL");
        if (env && *env) {
            if (!valid_level(env))
                return usage_error("invalid MUTIRAO_LOG_LEVEL '%s' (expected debug, info, warn "
                                   "or error)",
                                   env);
            o->log_level = env;
        }
    }
    return 0;
}

/* ---- the VM ---- */

static void *vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    (void)ud;
    (void)osize;
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, nsize);
}

static int vm_panic(lua_State *L)
{
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "mutirao: fatal: unprotected Lua error: %s\n", msg ? msg : "(no message)");
    fflush(stderr);
    return 0; /* abort() follows */
}

/* The log settings of the run, for the pool VMs' setup hook (which takes no
 * user data): written once before the scheduler starts, read-only after. */
static const run_opts *pool_log_opts;

/* procs setup hook: gives every pool VM the globals `log`, configured as
 * the main VM's, and `goroutine`. */
static void pool_vm_setup(lua_State *L)
{
    procs_global_require(L, "goroutine"); /* as runner.lua gives the main VM */
    const run_opts *o = pool_log_opts;
    log_global_open(L, o && o->log_format ? o->log_format : "text",
                    o && o->log_level ? o->log_level : "info");
}

static int open_log_global(lua_State *L)
{
    luaL_requiref(L, "log", luaopen_mutirao_log, 1);
    return 1;
}

/* Opens the libraries, preloads goroutine and the embedded runner modules and
 * sets the global `log`. Runs under lua_pcall. */
static int vm_setup(lua_State *L)
{
    /* The main thread's extra space is not initialised by lua_newstate and
     * new threads copy it: the scheduler reads it as a goroutine pointer. */
    memset(lua_getextraspace(L), 0, LUA_EXTRASPACE);
    luaL_openlibs(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_goroutine);
    lua_setfield(L, -2, "goroutine");
    iomods_open(L);                             /* http and exec: preloads and globals */
    lua_pushcfunction(L, luaopen_mutirao_term); /* the progress lines' terminal */
    lua_setfield(L, -2, "mutirao.term");
    for (const embedded_chunk *c = embedded_lua; c->name; c++) {
        if (luaL_loadbufferx(L, (const char *)c->data, c->len, c->chunkname, "t") != LUA_OK)
            return lua_error(L);
        /* their functions travel to fleet workers as this text */
        if (codec_note_source(L, c->chunkname, (const char *)c->data, c->len) != 0)
            return luaL_error(L, "not enough memory");
        lua_setfield(L, -2, c->name);
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, open_log_global);
    lua_call(L, 0, 0);
    lua_pop(L, lua_gettop(L));
    return 0;
}

/* Configures the log, loads the task file and starts the runner. Stack in:
 * a light userdata run_opts. Returns the runner's state table; a load
 * failure is raised as a string starting with "load:". */
static int vm_start(lua_State *L)
{
    run_opts *o = lua_touserdata(L, 1);
    sched *s = sched_get(L);
    if (!o->cfg)
        fleet_backend_broken(L, s, o->cfg_err); /* pool calls say why */
    else if (o->cfg->fleet)
        fleet_backend_install(L, s, o->cfg);
    lua_getglobal(L, "log");
    lua_getfield(L, -1, "_configure");
    lua_createtable(L, 0, 2);
    lua_pushstring(L, o->log_format ? o->log_format : "text");
    lua_setfield(L, -2, "format");
    lua_pushstring(L, o->log_level ? o->log_level : "info");
    lua_setfield(L, -2, "level");
    lua_call(L, 1, 0);
    lua_pop(L, 1);

    if (luaL_loadfilex(L, o->file, "t") != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        if (msg && !strstr(msg, o->file)) /* e.g. a binary chunk: name the file */
            msg = lua_pushfstring(L, "%s: %s", o->file, msg);
        lua_pushfstring(L, "load:%s", msg ? msg : "?");
        return lua_error(L);
    }
    int chunk = lua_gettop(L);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "mutirao.runner");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "start");
    lua_pushvalue(L, chunk);
    lua_createtable(L, 0, 5);
    lua_pushstring(L, o->file);
    lua_setfield(L, -2, "file");
    if (o->workflow) {
        lua_pushstring(L, o->workflow);
        lua_setfield(L, -2, "workflow");
    }
    lua_pushstring(L, o->log_format ? o->log_format : "text");
    lua_setfield(L, -2, "log_format");
    lua_createtable(L, 0, o->nparams);
    for (int i = 0; i < o->nparams; i++) {
        lua_pushlstring(L, o->params[i].key, o->params[i].keylen);
        lua_pushstring(L, o->params[i].value);
        lua_settable(L, -3);
    }
    lua_setfield(L, -2, "params");
    lua_call(L, 2, 1);
    return 1;
}

/* The deadlock report as one JSON log record (--log-format json): level
 * error, event "deadlock", the parked goroutines' stacks in "stacks".
 * 0, or -1 when it could not be written (the text report follows). */
static int report_deadlock_json(lua_State *L, sched *s)
{
    char *dump = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&dump, &len);
    if (!m)
        return -1;
    sched_dump_parked(s, m);
    if (fclose(m) != 0) {
        free(dump);
        return -1;
    }
    int top = lua_gettop(L);
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    int rc = -1;
    if (lua_getfield(L, -1, "log") == LUA_TTABLE &&
        lua_getfield(L, -1, "_event") == LUA_TFUNCTION) {
        lua_pushliteral(L, "error");
        lua_pushliteral(L, "fatal: all goroutines are asleep - deadlock!");
        lua_createtable(L, 0, 4);
        lua_pushliteral(L, "deadlock");
        lua_setfield(L, -2, "event");
        lua_pushlstring(L, dump, len);
        lua_setfield(L, -2, "stacks");
        lua_pushboolean(L, 0); /* no task context: the whole run */
        lua_setfield(L, -2, "task");
        rc = lua_pcall(L, 3, 0, 0) == LUA_OK ? 0 : -1;
    }
    lua_settop(L, top);
    free(dump);
    return rc;
}

static int cmd_run(int argc, char **argv)
{
    run_opts o;
    memset(&o, 0, sizeof o);
    param *params = calloc((size_t)argc + 1, sizeof *params);
    if (!params) {
        fputs("mutirao: out of memory\n", stderr);
        return EXIT_FAIL;
    }
    o.params = params;
    usage_hint = "mutirao run --help";
    int rc = parse_run(argc, argv, &o);
    usage_hint = "mutirao --help";
    if (rc != 0) {
        free(params);
        return rc < 0 ? 0 : rc;
    }

    /* the configuration decides the main VM's pool backend; it must outlive
     * the VM */
    config cfg;
    char cfg_err[512];
    int cfg_rc = config_load(&cfg, NULL, cfg_err, sizeof cfg_err);
    if (cfg_rc == 0 && o.fleet)
        cfg_rc = config_set(&cfg, "fleet", "on", "--fleet", cfg_err, sizeof cfg_err);
    if (cfg_rc != 0 && o.fleet) {
        fprintf(stderr, "mutirao: %s\n", cfg_err);
        config_free(&cfg);
        free(params);
        return EXIT_USAGE;
    }
    o.cfg = cfg_rc == 0 ? &cfg : NULL;
    o.cfg_err = cfg_err;
    pool_log_opts = &o;
    procs_set_setup(pool_vm_setup);
    lua_State *L = lua_newstate(vm_alloc, NULL);
    if (!L) {
        config_free(&cfg);
        free(params);
        fputs("mutirao: cannot create a Lua state: out of memory\n", stderr);
        return EXIT_FAIL;
    }
    lua_atpanic(L, vm_panic);
    lua_pushcfunction(L, vm_setup);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        fprintf(stderr, "mutirao: cannot set up the Lua state: %s\n", lua_tostring(L, -1));
        lua_close(L);
        config_free(&cfg);
        free(params);
        return EXIT_FAIL;
    }

    lua_pushcfunction(L, vm_start);
    lua_pushlightuserdata(L, &o);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        if (msg && strncmp(msg, "load:", 5) == 0) {
            fprintf(stderr, "mutirao: %s\n", msg + 5);
            rc = EXIT_USAGE;
        } else {
            fprintf(stderr, "mutirao: %s\n", msg ? msg : "(error object)");
            rc = EXIT_FAIL;
        }
        lua_close(L);
        config_free(&cfg);
        free(params);
        return rc;
    }
    int st = lua_gettop(L); /* the runner's state table */

    sched *s = sched_get(L);
    size_t left = sched_run(s);
    if (left > 0) {
        fflush(stdout);
        if (!o.log_format || strcmp(o.log_format, "json") || report_deadlock_json(L, s) != 0) {
            fprintf(stderr, "fatal: all goroutines are asleep - deadlock!\n\n");
            sched_dump_parked(s, stderr);
        }
        fflush(stderr);
        rc = EXIT_FAIL;
    } else {
        lua_getfield(L, st, "exit");
        rc = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : EXIT_FAIL;
        lua_pop(L, 1);
    }
    fflush(stdout);
    lua_close(L);
    config_free(&cfg);
    free(params);
    return rc;
}

/*
** mutirao config: every key as "key = value  # where it came from" (secrets
** shown as ***), then a check of the security settings: the librdkafka
** settings they make (the password file read) and redis.password_file.
** 0, or 2 for a configuration error (said on stderr).
*/
static int cmd_config(int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        int st = cli_config_option(argc, argv, &i, "mutirao", usage_hint);
        if (st == CLI_CONFIG_OTHER)
            return usage_error("config: unexpected argument '%s'", argv[i]);
        if (st != 0)
            return st;
    }
    config cfg;
    char err[512];
    if (config_load(&cfg, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "mutirao: %s\n", err);
        config_free(&cfg);
        return 2;
    }
    size_t need = config_dump(&cfg, NULL, 0);
    char *out = malloc(need + 1);
    if (out == NULL) {
        fprintf(stderr, "mutirao: out of memory\n");
        config_free(&cfg);
        return 1;
    }
    config_dump(&cfg, out, need + 1);
    if (cfg.path[0] != '\0')
        printf("# file: %s\n", cfg.path);
    fputs(out, stdout);
    free(out);
    char **kconf = NULL, *pw = NULL;
    int rc = config_kafka_conf(&cfg, NULL, &kconf, err, sizeof err);
    config_kafka_conf_free(kconf);
    if (rc == 0 && cfg.redis_password_file[0] != '\0')
        rc = config_read_secret(cfg.redis_password_file, "redis.password_file", &pw, err,
                                sizeof err);
    if (pw != NULL) {
        explicit_bzero(pw, strlen(pw));
        free(pw);
    }
    config_free(&cfg);
    if (rc != 0) {
        fprintf(stderr, "mutirao: %s\n", err);
        return 2;
    }
    return 0;
}

static int cmd_version(void)
{
    printf("mutirao %s (%s, libuv %s)\n", MUTIRAO_VERSION, LUA_RELEASE, uv_version_string());
    return 0;
}

/* mutirao keygen --out DIR [--name NAME]: a new Ed25519 key pair. */
static int cmd_keygen(int argc, char **argv)
{
    const char *out = NULL, *name = "mutirao";
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (is_opt(a, "--out")) {
            if (!(out = opt_value(argc, argv, &i, "--out")))
                return usage_error("option %s needs a directory", "--out");
        } else if (is_opt(a, "--name")) {
            if (!(name = opt_value(argc, argv, &i, "--name")))
                return usage_error("option %s needs a name", "--name");
        } else {
            return usage_error("keygen: unexpected argument '%s'", a);
        }
    }
    if (!out)
        return usage_error("%s", "keygen: --out DIR is required");
    char err[512], id[2 * SIGN_KEYID_LEN + 1];
    int rc = sign_keygen(out, name, id, err, sizeof err);
    if (rc == SIGN_EINVAL)
        return usage_error("%s", err);
    if (rc < 0) {
        fprintf(stderr, "mutirao: keygen: %s\n", err);
        return EXIT_FAIL;
    }
    printf("%s/%s.key  private key (mode 0600): auth.signing_key of the producers\n"
           "%s/%s.pub  public key: in auth.trusted_keys of the workers\n"
           "key id %s\n",
           out, name, out, name, id);
    return 0;
}

int main(int argc, char **argv)
{
    /* line-buffered stdout and unbuffered stderr keep the two streams in order */
    setvbuf(stdout, NULL, _IOLBF, 0);
    setvbuf(stderr, NULL, _IONBF, 0);
    /* mutirao --config FILE <command>: the file every command reads */
    for (int i = 1, st; argc >= 2 && (st = cli_config_option(argc, argv, &i, "mutirao",
                                                             usage_hint)) != CLI_CONFIG_OTHER;
         i = 1) {
        if (st != 0)
            return st;
        argv += i;
        argc -= i;
    }
    if (argc < 2)
        return usage_error("%s", "no command given");
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version") || !strcmp(cmd, "-V"))
        return cmd_version();
    if (!strcmp(cmd, "run"))
        return cmd_run(argc - 2, argv + 2);
    if (!strcmp(cmd, "dlq"))
        return cmd_dlq(argc - 2, argv + 2);
    if (!strcmp(cmd, "dashboard"))
        return cmd_dashboard(argc - 2, argv + 2);
    if (cli_ops_is_command(cmd))
        return cli_ops_main(cmd, argc - 2, argv + 2);
    if (!strcmp(cmd, "top"))
        return cli_top_main(argc - 2, argv + 2);
    if (!strcmp(cmd, "keygen"))
        return cmd_keygen(argc - 2, argv + 2);
    if (!strcmp(cmd, "config"))
        return cmd_config(argc - 2, argv + 2);
    return usage_error("unknown command '%s'", cmd);
}
