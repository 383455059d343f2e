/*
** test-redis-uv.c: tests of the async Redis client (shared/redis/redis_uv.h)
** against real redis-server processes this program starts on free loopback
** ports (REDIS_SERVER overrides /usr/bin/redis-server; missing: skip, 77).
** Run all: test-redis-uv; run one: test-redis-uv NAME;
** throughput: test-redis-uv bench [N].
*/
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "redis_uv.h"
#include "test.h"

/* ---- redis-server children --------------------------------------------- */

typedef struct server {
    pid_t pid;
    int port;
    const char *pass; /* --requirepass, or NULL */
    char sock[108];   /* --unixsocket, or "" */
    const char *tls;  /* a directory with ca.crt, server.crt, server.key: also a TLS port */
    int tls_port;     /* picked by server_start */
    int tls_clients;  /* --tls-auth-clients yes */
    const char *user; /* an ACL user USER with password USER-pw, or NULL */
} server;

/* Started servers, killed at exit even when a test fails half way. */
static pid_t live_pids[16];

static void kill_all(void)
{
    for (size_t i = 0; i < sizeof live_pids / sizeof live_pids[0]; i++)
        if (live_pids[i] > 0) {
            kill(live_pids[i], SIGCONT);
            kill(live_pids[i], SIGKILL);
            waitpid(live_pids[i], NULL, 0);
            live_pids[i] = 0;
        }
}

static const char *redis_bin(void)
{
    const char *b = getenv("REDIS_SERVER");
    return b != NULL && b[0] ? b : "/usr/bin/redis-server";
}

/* A loopback port nobody listens on (bind to port 0, read it, close). */
static int free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static double now_ms(void)
{
    return (double)uv_hrtime() / 1e6;
}

/* Starts s (s->port set, 0: pick one) and waits until it answers. 0 or -1. */
static int server_start(server *s)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        int pick = s->port == 0;
        char port[16];
        const char *argv[48];
        char tport[16], cert[300], key[300], ca[300], upw[100];
        int n = 0;
        if (pick)
            s->port = free_port();
        snprintf(port, sizeof port, "%d", s->port);
        argv[n++] = "redis-server";
        argv[n++] = "--port";
        argv[n++] = port;
        argv[n++] = "--bind";
        argv[n++] = "127.0.0.1 -::1";
        argv[n++] = "--save";
        argv[n++] = "";
        argv[n++] = "--appendonly";
        argv[n++] = "no";
        if (s->pass != NULL) {
            argv[n++] = "--requirepass";
            argv[n++] = s->pass;
        }
        if (s->sock[0]) {
            argv[n++] = "--unixsocket";
            argv[n++] = s->sock;
        }
        if (s->tls != NULL) {
            s->tls_port = free_port();
            snprintf(tport, sizeof tport, "%d", s->tls_port);
            snprintf(cert, sizeof cert, "%s/server.crt", s->tls);
            snprintf(key, sizeof key, "%s/server.key", s->tls);
            snprintf(ca, sizeof ca, "%s/ca.crt", s->tls);
            argv[n++] = "--tls-port";
            argv[n++] = tport;
            argv[n++] = "--tls-cert-file";
            argv[n++] = cert;
            argv[n++] = "--tls-key-file";
            argv[n++] = key;
            argv[n++] = "--tls-ca-cert-file";
            argv[n++] = ca;
            argv[n++] = "--tls-auth-clients";
            argv[n++] = s->tls_clients ? "yes" : "no";
        }
        if (s->user != NULL) {
            snprintf(upw, sizeof upw, ">%s-pw", s->user);
            argv[n++] = "--user";
            argv[n++] = s->user;
            argv[n++] = "on";
            argv[n++] = upw;
            argv[n++] = "~*";
            argv[n++] = "&*";
            argv[n++] = "+@all";
        }
        argv[n] = NULL;
        pid_t pid = fork();
        if (pid < 0)
            return -1;
        if (pid == 0) {
            int fd = open("/dev/null", O_RDWR);
            dup2(fd, 1);
            dup2(fd, 2);
            execv(redis_bin(), (char *const *)argv);
            _exit(127);
        }
        for (size_t i = 0; i < sizeof live_pids / sizeof live_pids[0]; i++)
            if (live_pids[i] == 0) {
                live_pids[i] = pid;
                break;
            }
        s->pid = pid;
        double t0 = now_ms();
        while (now_ms() - t0 < 10000) {
            int st;
            if (waitpid(pid, &st, WNOHANG) == pid)
                break; /* died: port taken? */
            struct timeval tv = {0, 200000};
            redisContext *c = redisConnectWithTimeout("127.0.0.1", s->port, tv);
            int up = 0;
            if (c != NULL && !c->err) {
                redisReply *r = redisCommand(c, "PING"); /* PONG or NOAUTH: up */
                up = r != NULL;
                if (r != NULL)
                    freeReplyObject(r);
            }
            if (c != NULL)
                redisFree(c);
            if (up)
                return 0;
            usleep(20000);
        }
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        for (size_t i = 0; i < sizeof live_pids / sizeof live_pids[0]; i++)
            if (live_pids[i] == pid)
                live_pids[i] = 0;
        s->pid = 0;
        if (!pick)
            return -1;
        s->port = 0;
    }
    return -1;
}

static void server_stop(server *s, int sig)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, sig);
    waitpid(s->pid, NULL, 0);
    for (size_t i = 0; i < sizeof live_pids / sizeof live_pids[0]; i++)
        if (live_pids[i] == s->pid)
            live_pids[i] = 0;
    s->pid = 0;
}

/* ---- loop helpers ------------------------------------------------------ */

/* A loop with a 5 ms tick so UV_RUN_ONCE never sleeps long. */
typedef struct tenv {
    uv_loop_t loop;
    uv_timer_t tick;
    int closed; /* close callbacks of clients seen */
} tenv;

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static void env_init(tenv *e)
{
    memset(e, 0, sizeof *e);
    uv_loop_init(&e->loop);
    uv_timer_init(&e->loop, &e->tick);
    uv_timer_start(&e->tick, on_tick, 5, 5);
}

/* Runs the loop to its end; 0 when every handle was closed. */
static int env_done(tenv *e)
{
    uv_close((uv_handle_t *)&e->tick, NULL);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    return uv_loop_close(&e->loop);
}

#define WAIT_UNTIL(e, cond, ms)                                                                    \
    do {                                                                                           \
        double t0_ = now_ms();                                                                     \
        while (!(cond) && now_ms() - t0_ < (ms))                                                   \
            uv_run(&(e)->loop, UV_RUN_ONCE);                                                       \
    } while (0)

static void on_closed(void *ud)
{
    ((tenv *)ud)->closed++;
}

/* ---- a recording callback ---------------------------------------------- */

typedef struct rec {
    int calls;
    int status;
    int type;
    long long integer;
    size_t len;
    char str[512];
    char err[512];
    size_t elements;
} rec;

static void rec_cb(redis_uv *cli, int status, const redisReply *reply, const char *err, void *ud)
{
    rec *r = ud;
    (void)cli;
    r->calls++;
    r->status = status;
    if (reply != NULL) {
        r->type = reply->type;
        r->integer = reply->integer;
        r->elements = reply->elements;
        r->len = reply->len;
        if (reply->str != NULL)
            memcpy(r->str, reply->str, reply->len < sizeof r->str ? reply->len : sizeof r->str - 1);
    } else {
        snprintf(r->err, sizeof r->err, "%s", err != NULL ? err : "(null)");
    }
}

static int open_client(tenv *e, const char *url, unsigned op_ms, redis_uv **out)
{
    redis_uv_options o;
    memset(&o, 0, sizeof o);
    o.op_timeout_ms = op_ms;
    o.backoff_min_ms = 20;
    o.backoff_max_ms = 200;
    o.connect_timeout_ms = 1000;
    return redis_uv_open(&e->loop, url, &o, out);
}

static char *url_of(char *buf, size_t n, const server *s, const char *userinfo, int db)
{
    if (db >= 0)
        snprintf(buf, n, "redis://%s127.0.0.1:%d/%d", userinfo ? userinfo : "", s->port, db);
    else
        snprintf(buf, n, "redis://%s127.0.0.1:%d", userinfo ? userinfo : "", s->port);
    return buf;
}

/* ---- tests ------------------------------------------------------------- */

/* Bad input returns errors and never aborts. */
static int test_bad_input(void)
{
    tenv e;
    redis_uv *cli = NULL;
    env_init(&e);
    static const char *const bad[] = {
        "",
        "http://x:1",
        "redis://",
        "redis://:1",
        "redis://h:0",
        "redis://h:x",
        "redis://h:70000",
        "redis://[::1",
        "redis://h:1/x",
        "redis://user@h:1",
        "unix://",
        "unix://rel",
        "redis://:p%zz@h:1",
        "redis://h:1?db=2",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = redis_uv_open(&e.loop, bad[i], NULL, &cli);
        if (rc != REDIS_UV_EURL)
            fprintf(stderr, "url %s\n", bad[i]);
        ASSERT_EQ(rc, REDIS_UV_EURL);
        ASSERT(cli == NULL);
    }
    ASSERT_EQ(redis_uv_open(NULL, "redis://h", NULL, &cli), REDIS_UV_EINVAL);
    ASSERT_EQ(redis_uv_open(&e.loop, NULL, NULL, &cli), REDIS_UV_EINVAL);
    ASSERT_EQ(redis_uv_open(&e.loop, "redis://h", NULL, NULL), REDIS_UV_EINVAL);
    ASSERT_STR_EQ(redis_uv_strerror(REDIS_UV_ETIMEDOUT), "command timed out");
    ASSERT_STR_EQ(redis_uv_errname(REDIS_UV_EUNREACHABLE), "EUNREACHABLE");
    ASSERT_STR_EQ(redis_uv_strerror(12345), "unknown error");
    ASSERT_EQ(redis_uv_command(NULL, NULL, NULL, "PING"), REDIS_UV_EINVAL);

    /* Good URLs; endpoints; then calls with bad arguments. */
    ASSERT_EQ(redis_uv_open(&e.loop, "redis://[::1]:7000/2", NULL, &cli), 0);
    ASSERT_STR_EQ(redis_uv_endpoint(cli), "[::1]:7000");
    redis_uv_close(cli, on_closed, &e);
    ASSERT_EQ(redis_uv_open(&e.loop, "unix:///nonexistent/redis.sock", NULL, &cli), 0);
    ASSERT_STR_EQ(redis_uv_endpoint(cli), "/nonexistent/redis.sock");
    redis_uv_close(cli, on_closed, &e);
    /* A name is resolved on the thread pool; close cancels the lookup. */
    ASSERT_EQ(redis_uv_open(&e.loop, "redis://u:p%41ss@localhost/0", NULL, &cli), 0);
    ASSERT_STR_EQ(redis_uv_endpoint(cli), "localhost:6379");
    redis_uv_close(cli, on_closed, &e);
    ASSERT_EQ(redis_uv_open(&e.loop, "redis://127.0.0.1:1", NULL, &cli), 0);
    ASSERT_EQ(redis_uv_command(cli, rec_cb, NULL, NULL), REDIS_UV_EINVAL);
    ASSERT_EQ(redis_uv_command(cli, rec_cb, NULL, "SUBSCRIBE ch"), REDIS_UV_ENOTSUP);
    ASSERT_EQ(redis_uv_command(cli, rec_cb, NULL, "psubscribe ch"), REDIS_UV_ENOTSUP);
    ASSERT_EQ(redis_uv_command(cli, rec_cb, NULL, "MONITOR"), REDIS_UV_ENOTSUP);
    ASSERT_EQ(redis_uv_command(cli, rec_cb, NULL, "CLIENT REPLY OFF"), REDIS_UV_ENOTSUP);
    ASSERT_EQ(redis_uv_command(cli, rec_cb, NULL, ""), REDIS_UV_EINVAL);
    const char *argv[] = {"GET", NULL};
    ASSERT_EQ(redis_uv_command_argv(cli, rec_cb, NULL, 0, argv, NULL), REDIS_UV_EINVAL);
    ASSERT_EQ(redis_uv_command_argv(cli, rec_cb, NULL, 2, argv, NULL), REDIS_UV_EINVAL);
    ASSERT_EQ(redis_uv_command_argv(cli, rec_cb, NULL, 1, NULL, NULL), REDIS_UV_EINVAL);
    ASSERT_EQ(redis_uv_eval(cli, rec_cb, NULL, 0, 0, 0, NULL, NULL), REDIS_UV_ENOSCRIPT);
    ASSERT_EQ(redis_uv_script(cli, NULL, 0), REDIS_UV_EINVAL);
    int id = redis_uv_script(cli, "return 1", 8);
    ASSERT_EQ(id, 0);
    ASSERT_EQ(redis_uv_script(cli, "return 1", 8), 0);
    ASSERT_EQ(redis_uv_script(cli, "return 2", 8), 1);
    ASSERT(redis_uv_script_sha(cli, 2) == NULL);
    ASSERT_EQ(redis_uv_eval(cli, rec_cb, NULL, id, 2, 1, argv, NULL), REDIS_UV_EINVAL);
    ASSERT_EQ(redis_uv_eval(cli, rec_cb, NULL, id, -1, 0, NULL, NULL), REDIS_UV_EINVAL);
    redis_uv_close(cli, on_closed, &e);
    redis_uv_close(cli, on_closed, &e); /* second close: nothing */
    ASSERT_EQ(env_done(&e), 0);
    ASSERT_EQ(e.closed, 4);
    return 0;
}

/* Pipelining: 10,000 INCRs, every callback once and in order. */
typedef struct pipe_state {
    int n, next, bad;
    unsigned char *calls;
} pipe_state;

typedef struct pipe_item {
    pipe_state *ps;
    int i;
} pipe_item;

static void pipe_cb(redis_uv *cli, int status, const redisReply *reply, const char *err, void *ud)
{
    pipe_item *it = ud;
    pipe_state *ps = it->ps;
    (void)cli;
    (void)err;
    ps->calls[it->i]++;
    if (status != 0 || reply == NULL || reply->type != REDIS_REPLY_INTEGER ||
        reply->integer != it->i + 1 || it->i != ps->next)
        ps->bad++;
    ps->next++;
}

static int test_pipeline(void)
{
    enum { N = 10000 };
    tenv e;
    server s = {0};
    redis_uv *cli;
    rec ping = {0}, del = {0};
    char url[128];
    pipe_state ps = {N, 0, 0, calloc(N, 1)};
    pipe_item *items = calloc(N, sizeof *items);
    ASSERT(ps.calls != NULL && items != NULL);
    ASSERT_EQ(server_start(&s), 0);
    env_init(&e);
    ASSERT_EQ(open_client(&e, url_of(url, sizeof url, &s, NULL, -1), 5000, &cli), 0);
    /* Issued before the connection is up: queued, then sent in order. */
    ASSERT_EQ(redis_uv_command(cli, rec_cb, &ping, "PING"), 0);
    ASSERT_EQ(redis_uv_command(cli, rec_cb, &del, "DEL ctr"), 0);
    for (int i = 0; i < N; i++) {
        items[i].ps = &ps;
        items[i].i = i;
        ASSERT_EQ(redis_uv_command(cli, pipe_cb, &items[i], "INCR ctr"), 0);
    }
    WAIT_UNTIL(&e, ps.next == N, 20000);
    ASSERT_EQ(ping.calls, 1);
    ASSERT_EQ(ping.type, REDIS_REPLY_STATUS);
    ASSERT_STR_EQ(ping.str, "PONG");
    ASSERT_EQ(del.calls, 1);
    ASSERT_EQ(ps.next, N);
    ASSERT_EQ(ps.bad, 0);
    for (int i = 0; i < N; i++)
        ASSERT_EQ(ps.calls[i], 1);

    /* And once more while connected: pipelined from one loop turn. */
    rec get = {0};
    ps.next = 0;
    memset(ps.calls, 0, N);
    ASSERT_EQ(redis_uv_command(cli, rec_cb, &del, "DEL ctr"), 0);
    for (int i = 0; i < N; i++)
        ASSERT_EQ(redis_uv_command(cli, pipe_cb, &items[i], "INCR ctr"), 0);
    ASSERT_EQ(redis_uv_command(cli, rec_cb, &get, "GET ctr"), 0);
    WAIT_UNTIL(&e, get.calls == 1, 20000);
    ASSERT_EQ(ps.bad, 0);
    ASSERT_STR_EQ(get.str, "10000");
    redis_uv_stats st;
    redis_uv_get_stats(cli, &st);
    ASSERT_EQ(st.replies, 2 * N + 4);
    ASSERT_EQ(st.failures, 0);
    ASSERT_EQ(st.connects, 1);
    ASSERT_EQ(st.pending, 0);
    ASSERT_EQ(st.connected, 1);
    redis_uv_close(cli, on_closed, &e);
    ASSERT_EQ(env_done(&e), 0);
    ASSERT_EQ(e.closed, 1);
    server_stop(&s, SIGTERM);
    free(ps.calls);
    free(items);
    return 0;
}

/* Binary-safe arguments and replies, through argv and %b. */
static int test_binary(void)
{
    tenv e;
    server s = {0};
    redis_uv *cli;
    char url[128], val[1000];
    const char key[] = "bin\0key\r\n$3\r\n";
    size_t klen = sizeof key - 1;
    rec set = {0}, get = {0}, get2 = {0}, strlen_ = {0};
    for (size_t i = 0; i < sizeof val; i++)
        val[i] = (char)(i * 7 + (i % 3 == 0 ? 0 : 13));
    val[0] = '\0';
    val[10] = '\r';
    val[11] = '\n';
    ASSERT_EQ(server_start(&s), 0);
    env_init(&e);
    ASSERT_EQ(open_client(&e, url_of(url, sizeof url, &s, NULL, -1), 5000, &cli), 0);
    const char *argv[] = {"SET", key, val};
    const size_t lens[] = {3, klen, sizeof val};
    ASSERT_EQ(redis_uv_command_argv(cli, rec_cb, &set, 3, argv, lens), 0);
    const char *gargv[] = {"GET", key};
    const size_t glens[] = {3, klen};
    ASSERT_EQ(redis_uv_command_argv(cli, rec_cb, &get, 2, gargv, glens), 0);
    ASSERT_EQ(redis_uv_command(cli, rec_cb, &get2, "GET %b", key, klen), 0);
    ASSERT_EQ(redis_uv_command(cli, rec_cb, &strlen_, "STRLEN %b", key, klen), 0);
    WAIT_UNTIL(&e, strlen_.calls == 1, 5000);
    ASSERT_EQ(set.status, 0);
    ASSERT_STR_EQ(set.str, "OK");
    ASSERT_EQ(get.type, REDIS_REPLY_STRING);
    ASSERT_EQ(get.len, sizeof val);
    ASSERT(memcmp(get.str, val, sizeof val / 2) == 0); /* rec keeps 511 bytes */
    ASSERT_EQ(get2.len, sizeof val);
    ASSERT_EQ(strlen_.integer, (long long)sizeof val);
    redis_uv_close(cli, on_closed, &e);
    ASSERT_EQ(env_done(&e), 0);
    server_stop(&s, SIGTERM);
    return 0;
}

/* Scripts: EVAL on first use, EVALSHA after, NOSCRIPT fallback after SCRIPT
** FLUSH; the SHA1 computed locally matches the server's. */
static int test_eval(void)
{
    tenv e;
    server s = {0};
    redis_uv *cli;
    char url[128];
    const char *src = "return {KEYS[1], ARGV[1], redis.call('INCR', KEYS[1])}";
    rec load = {0}, r1 = {0}, r2 = {0}, flush = {0}, r3 = {0}, r4 = {0}, err = {0};
    ASSERT_EQ(server_start(&s), 0);
    env_init(&e);
    /* "localhost": resolved off the loop. */
    snprintf(url, sizeof url, "redis://localhost:%d", s.port);
    ASSERT_EQ(open_client(&e, url, 5000, &cli), 0);
    int id = redis_uv_script(cli, src, strlen(src));
    ASSERT_GE(id, 0);
    const char *argv[] = {"evk", "a\0b"};
    const size_t lens[] = {3, 3};
    ASSERT_EQ(redis_uv_eval(cli, rec_cb, &r1, id, 1, 2, argv, lens), 0);
    ASSERT_EQ(redis_uv_eval(cli, rec_cb, &r2, id, 1, 2, argv, lens), 0);
    ASSERT_EQ(redis_uv_command(cli, rec_cb, &flush, "SCRIPT FLUSH"), 0);
    ASSERT_EQ(redis_uv_eval(cli, rec_cb, &r3, id, 1, 2, argv, lens), 0);
    ASSERT_EQ(redis_uv_command(cli, rec_cb, &load, "SCRIPT LOAD %s", src), 0);
    ASSERT_EQ(redis_uv_eval(cli, rec_cb, &r4, id, 1, 2, argv, lens), 0);
    /* r3's resend as EVAL is answered after r4 (its effects land later). */
    WAIT_UNTIL(&e, r1.calls + r2.calls + r3.calls + r4.calls == 4, 5000);
    ASSERT_EQ(r1.calls + r2.calls + r3.calls + r4.calls, 4);
    ASSERT_EQ(r1.type, REDIS_REPLY_ARRAY);
    ASSERT_EQ(r1.elements, 3);
    ASSERT_EQ(r3.type, REDIS_REPLY_ARRAY);
    ASSERT_STR_EQ(load.str, redis_uv_script_sha(cli, id));
    redis_uv_stats st;
    redis_uv_get_stats(cli, &st);
    ASSERT_EQ(st.noscript, 1);
    ASSERT_EQ(st.failures, 0);

    /* Results in order: INCR gave 1..4. */
    rec get = {0};
    ASSERT_EQ(redis_uv_command(cli, rec_cb, &get, "GET evk"), 0);
    WAIT_UNTIL(&e, get.calls == 1, 5000);
    ASSERT_STR_EQ(get.str, "4");

    /* A script error is a reply of type ERROR, not a failure. */
    int bad = redis_uv_script(cli, "return redis.call('NOPE')", 25);
    ASSERT_EQ(redis_uv_eval(cli, rec_cb, &err, bad, 0, 0, NULL, NULL), 0);
    WAIT_UNTIL(&e, err.calls == 1, 5000);
    ASSERT_EQ(err.status, 0);
    ASSERT_EQ(err.type, REDIS_REPLY_ERROR);
    redis_uv_close(cli, on_closed, &e);
    ASSERT_EQ(env_done(&e), 0);
    server_stop(&s, SIGTERM);
    return 0;
}

/* The server killed mid-run: pending commands fail with "connection lost",
** commands issued meanwhile wait, and the client reconnects after restart. */
static int test_server_killed(void)
{
    tenv e;
    server s = {0};
    redis_uv *cli;
    char url[128];
    rec ping = {0}, bl[3] = {{0}}, set = {0}, get = {0}, ev = {0};
    ASSERT_EQ(server_start(&s), 0);
    env_init(&e);
    ASSERT_EQ(open_client(&e, url_of(url, sizeof url, &s, NULL, 1), 8000, &cli), 0);
    int id = redis_uv_script(cli, "return ARGV[1]", 14);
    ASSERT_EQ(redis_uv_command(cli, rec_cb, &ping, "PING"), 0);
    WAIT_UNTIL(&e, ping.calls == 1, 5000);
    ASSERT_EQ(ping.status, 0);
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(redis_uv_command(cli, rec_cb, &bl[i], "BLPOP nokey%d 0", i), 0);
    WAIT_UNTIL(&e, 0, 100); /* let them reach the server */
    ASSERT_EQ(bl[0].calls, 0);
    server_stop(&s, SIGKILL);
    WAIT_UNTIL(&e, bl[2].calls == 1, 3000);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(bl[i].calls, 1);
        ASSERT_EQ(bl[i].status, REDIS_UV_ECONNLOST);
        ASSERT_CONTAINS(bl[i].err, "redis: connection lost (");
    }
    printf("# killed: %s\n", bl[0].err);
    ASSERT_EQ(redis_uv_is_connected(cli), 0);
    /* Issued while disconnected: queued. */
    ASSERT_EQ(redis_uv_command(cli, rec_cb, &set, "SET k v"), 0);
    const char *argv[] = {"hello"};
    ASSERT_EQ(redis_uv_eval(cli, rec_cb, &ev, id, 0, 1, argv, NULL), 0);
    WAIT_UNTIL(&e, 0, 300); /* a few failed attempts */
    ASSERT_EQ(set.calls, 0);
    ASSERT_EQ(server_start(&s), 0); /* same port */
    WAIT_UNTIL(&e, ev.calls == 1, 5000);
    ASSERT_EQ(set.calls, 1);
    ASSERT_EQ(set.status, 0);
    ASSERT_STR_EQ(set.str, "OK");
    ASSERT_EQ(ev.status, 0);
    ASSERT_STR_EQ(ev.str, "hello");
    ASSERT_EQ(redis_uv_command(cli, rec_cb, &get, "GET k"), 0);
    WAIT_UNTIL(&e, get.calls == 1, 5000);
    ASSERT_STR_EQ(get.str, "v");
    redis_uv_stats st;
    redis_uv_get_stats(cli, &st);
    ASSERT_EQ(st.connects, 2);
    ASSERT_EQ(st.drops, 1);
    ASSERT_EQ(st.failures, 3);
    /* SELECT 1 was sent again on the new connection. */
    server_stop(&s, SIGKILL);
    redis_uv_close(cli, on_closed, &e);
    ASSERT_EQ(env_done(&e), 0);
    return 0;
}

/* Nothing listening: the op timeout fires within bounds, with the endpoint. */
static int test_unreachable(void)
{
    tenv e;
    redis_uv *cli;
    char url[128], want[160];
    rec a = {0}, b = {0};
    int port = free_port();
    env_init(&e);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    ASSERT_EQ(open_client(&e, url, 300, &cli), 0);
    uv_update_time(&e.loop);
    double t0 = now_ms();
    ASSERT_EQ(redis_uv_command(cli, rec_cb, &a, "PING"), 0);
    ASSERT_EQ(redis_uv_command(cli, rec_cb, &b, "PING"), 0);
    WAIT_UNTIL(&e, b.calls == 1, 3000);
    double took = now_ms() - t0;
    ASSERT_EQ(a.calls, 1);
    ASSERT_EQ(a.status, REDIS_UV_EUNREACHABLE);
    snprintf(want, sizeof want, "redis: unreachable at 127.0.0.1:%d after 3", port);
    ASSERT_CONTAINS(a.err, want);
    ASSERT_CONTAINS(a.err, "refused");
    printf("# unreachable: %s\n", a.err);
    ASSERT_GE(took, 295);
    ASSERT_LE(took, 900);
    redis_uv_stats st;
    redis_uv_get_stats(cli, &st);
    ASSERT_EQ(st.timeouts, 2);
    ASSERT_EQ(st.pending, 0);
    redis_uv_close(cli, on_closed, &e);
    ASSERT_EQ(env_done(&e), 0);

    /* A unix socket that does not exist: the same. */
    env_init(&e);
    ASSERT_EQ(open_client(&e, "unix:///nonexistent/redis.sock", 200, &cli), 0);
    memset(&a, 0, sizeof a);
    ASSERT_EQ(redis_uv_command(cli, rec_cb, &a, "PING"), 0);
    WAIT_UNTIL(&e, a.calls == 1, 3000);
    ASSERT_EQ(a.status, REDIS_UV_EUNREACHABLE);
    ASSERT_CONTAINS(a.err, "redis: unreachable at /nonexistent/redis.sock after ");
    redis_uv_close(cli, on_closed, &e);
    ASSERT_EQ(env_done(&e), 0);
    return 0;
}

/* A stalled server (SIGSTOP): commands time out, the connection is dropped,
** and the client recovers once the server runs again. */
static int test_stalled(void)
{
    tenv e;
    server s = {0};
    redis_uv *cli;
    char url[128];
    rec ping = {0}, a = {0}, b = {0}, c = {0};
    ASSERT_EQ(server_start(&s), 0);
    env_init(&e);
    ASSERT_EQ(open_client(&e, url_of(url, sizeof url, &s, NULL, -1), 300, &cli), 0);
    ASSERT_EQ(redis_uv_command(cli, rec_cb, &ping, "PING"), 0);
    WAIT_UNTIL(&e, ping.calls == 1, 5000);
    ASSERT_EQ(ping.status, 0);
    kill(s.pid, SIGSTOP);
    uv_update_time(&e.loop);
    double t0 = now_ms();
    ASSERT_EQ(redis_uv_command(cli, rec_cb, &a, "PING"), 0);
    ASSERT_EQ(redis_uv_command(cli, rec_cb, &b, "PING"), 0);
    WAIT_UNTIL(&e, b.calls == 1, 3000);
    double took = now_ms() - t0;
    ASSERT_EQ(a.calls, 1);
    ASSERT_EQ(a.status, REDIS_UV_ETIMEDOUT);
    ASSERT_CONTAINS(a.err, "redis: timed out after 3");
    ASSERT_EQ(b.status, REDIS_UV_ETIMEDOUT);
    printf("# stalled: %s\n", a.err);
    ASSERT_GE(took, 295);
    ASSERT_LE(took, 900);
    kill(s.pid, SIGCONT);
    ASSERT_EQ(redis_uv_command(cli, rec_cb, &c, "PING"), 0);
    WAIT_UNTIL(&e, c.calls == 1, 3000);
    ASSERT_EQ(c.status, 0);
    ASSERT_STR_EQ(c.str, "PONG");
    redis_uv_stats st;
    redis_uv_get_stats(cli, &st);
    ASSERT_GE(st.drops, 1);
    redis_uv_close(cli, on_closed, &e);
    ASSERT_EQ(env_done(&e), 0);
    server_stop(&s, SIGTERM);
    return 0;
}

/* Close with commands pending: each callback once with ECLOSED, nothing
** leaks (ASan), commands after close are refused. */
typedef struct close_state {
    int n;
    int *calls;
    int ok, closed, other;
    int close_at; /* close from inside the callback of this index (-1: no) */
    int refused;  /* commands issued from callbacks after close refused */
    redis_uv *cli;
    tenv *e;
} close_state;

typedef struct close_item {
    close_state *cs;
    int i;
} close_item;

static void close_cb(redis_uv *cli, int status, const redisReply *reply, const char *err, void *ud)
{
    close_item *it = ud;
    close_state *cs = it->cs;
    (void)reply;
    cs->calls[it->i]++;
    if (status == 0)
        cs->ok++;
    else if (status == REDIS_UV_ECLOSED && strcmp(err, "redis: closed") == 0)
        cs->closed++;
    else
        cs->other++;
    if (it->i == cs->close_at)
        redis_uv_close(cli, on_closed, cs->e);
    if (status == REDIS_UV_ECLOSED && redis_uv_command(cli, NULL, NULL, "PING") == REDIS_UV_ECLOSED)
        cs->refused++;
}

static int close_case(const char *url, int wait_first, int close_at, int expect_ok_min)
{
    enum { N = 300 };
    tenv e;
    redis_uv *cli;
    close_state cs;
    close_item items[N];
    int calls[N] = {0};
    memset(&cs, 0, sizeof cs);
    cs.n = N;
    cs.calls = calls;
    cs.close_at = close_at;
    cs.e = &e;
    env_init(&e);
    ASSERT_EQ(open_client(&e, url, 5000, &cli), 0);
    cs.cli = cli;
    for (int i = 0; i < N; i++) {
        items[i].cs = &cs;
        items[i].i = i;
        if (i % 100 == 99)
            ASSERT_EQ(redis_uv_command(cli, close_cb, &items[i], "BLPOP nokey 0"), 0);
        else
            ASSERT_EQ(redis_uv_command(cli, close_cb, &items[i], "INCR c"), 0);
        if (wait_first && i == N / 2)
            WAIT_UNTIL(&e, cs.ok >= 99, 3000);
    }
    if (close_at < 0) {
        redis_uv_close(cli, on_closed, &e);
        ASSERT_EQ(redis_uv_command(cli, NULL, NULL, "PING"), REDIS_UV_ECLOSED);
    }
    ASSERT_EQ(env_done(&e), 0);
    ASSERT_EQ(e.closed, 1);
    for (int i = 0; i < N; i++)
        ASSERT_EQ(calls[i], 1);
    ASSERT_EQ(cs.other, 0);
    ASSERT_EQ(cs.ok + cs.closed, N);
    ASSERT_EQ(cs.refused, cs.closed);
    ASSERT_GE(cs.ok, expect_ok_min);
    if (close_at >= 0)
        ASSERT_EQ(cs.ok, close_at + 1);
    return 0;
}

static int test_close_pending(void)
{
    server s = {0};
    char url[128];
    ASSERT_EQ(server_start(&s), 0);
    url_of(url, sizeof url, &s, NULL, -1);
    ASSERT_EQ(close_case(url, 0, -1, 0), 0);                   /* connecting, all queued */
    ASSERT_EQ(close_case(url, 1, -1, 99), 0);                  /* some answered, some in flight */
    ASSERT_EQ(close_case(url, 0, 50, 0), 0);                   /* closed from a reply callback */
    ASSERT_EQ(close_case("redis://127.0.0.1:1", 0, -1, 0), 0); /* unreachable */
    server_stop(&s, SIGTERM);
    return 0;
}

/* AUTH (password, user + password, %-encoded) and SELECT; a wrong password
** keeps commands waiting, then fails them with the reason. */
static int test_auth(void)
{
    tenv e;
    server s = {0};
    redis_uv *cli;
    char url[160];
    rec set = {0}, info = {0}, bad = {0}, sock = {0};
    s.pass = "p@ss:w/rd";
    snprintf(s.sock, sizeof s.sock, "/tmp/test-redis-uv-%d.sock", (int)getpid());
    ASSERT_EQ(server_start(&s), 0);
    env_init(&e);
    ASSERT_EQ(open_client(&e, url_of(url, sizeof url, &s, ":p%40ss%3Aw%2frd@", 3), 3000, &cli), 0);
    ASSERT_EQ(redis_uv_command(cli, rec_cb, &set, "SET authk 1"), 0);
    ASSERT_EQ(redis_uv_command(cli, rec_cb, &info, "CLIENT INFO"), 0);
    WAIT_UNTIL(&e, info.calls == 1, 5000);
    ASSERT_EQ(set.status, 0);
    ASSERT_STR_EQ(set.str, "OK");
    ASSERT_CONTAINS(info.str, " db=3 ");
    redis_uv_close(cli, on_closed, &e);

    /* user:password (Redis 6 ACL form) over the unix socket. */
    char uurl[200];
    snprintf(uurl, sizeof uurl, "unix://default:p%%40ss%%3Aw%%2frd@%s", s.sock);
    ASSERT_EQ(open_client(&e, uurl, 3000, &cli), 0);
    ASSERT_EQ(redis_uv_command(cli, rec_cb, &sock, "GET authk"), 0);
    WAIT_UNTIL(&e, sock.calls == 1, 5000);
    ASSERT_EQ(sock.status, 0);
    ASSERT_EQ(sock.type, REDIS_REPLY_NIL); /* db 0 */
    redis_uv_close(cli, on_closed, &e);

    ASSERT_EQ(open_client(&e, url_of(url, sizeof url, &s, ":wrong@", -1), 400, &cli), 0);
    ASSERT_EQ(redis_uv_command(cli, rec_cb, &bad, "GET authk"), 0);
    WAIT_UNTIL(&e, bad.calls == 1, 5000);
    ASSERT_EQ(bad.status, REDIS_UV_EUNREACHABLE);
    ASSERT_CONTAINS(bad.err, "AUTH failed");
    printf("# wrong password: %s\n", bad.err);
    redis_uv_close(cli, on_closed, &e);
    ASSERT_EQ(env_done(&e), 0);
    ASSERT_EQ(e.closed, 3);
    server_stop(&s, SIGTERM);
    unlink(s.sock);
    return 0;
}

/* Certificates for the TLS tests, made with the openssl command in dir:
** ca.crt (the CA), server.crt/key (IP 127.0.0.1), client.crt/key (signed by
** the CA), other-ca.crt (a CA that signed nothing here). 0 or -1. */
static int make_certs(const char *dir)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "set -e; cd '%s'; exec 2>/dev/null\n"
             "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 "
             "-subj '/CN=test CA'\n"
             "openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.crt "
             "-days 2 -subj '/CN=other CA'\n"
             "for who in server client; do\n"
             "  openssl req -newkey rsa:2048 -nodes -keyout $who.key -out $who.csr "
             "-subj \"/CN=$who\"\n"
             "  printf 'subjectAltName=IP:127.0.0.1\\n' > $who.ext\n"
             "  openssl x509 -req -in $who.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
             "-out $who.crt -days 2 -extfile $who.ext\n"
             "done\n",
             dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int tls_client(tenv *e, const char *url, const char *dir, const char *ca, int client_cert,
                      const char *password, unsigned op_ms, redis_uv **out, char *err,
                      size_t errlen)
{
    char caf[300], cert[300], key[300];
    redis_uv_options o;
    memset(&o, 0, sizeof o);
    o.op_timeout_ms = op_ms;
    o.backoff_min_ms = 20;
    o.backoff_max_ms = 200;
    o.connect_timeout_ms = 1000;
    snprintf(caf, sizeof caf, "%s/%s", dir, ca);
    snprintf(cert, sizeof cert, "%s/client.crt", dir);
    snprintf(key, sizeof key, "%s/client.key", dir);
    o.tls_ca_file = caf;
    o.tls_cert_file = client_cert ? cert : NULL;
    o.tls_key_file = client_cert ? key : NULL;
    o.password = password;
    o.errbuf = err;
    o.errlen = errlen;
    return redis_uv_open(&e->loop, url, &o, out);
}

/* rediss://: an ACL user over TLS (a large value, scripts, SELECT), the
** password as an option, a CA that did not sign the server's certificate,
** a host name the certificate does not name, a wrong password, a server
** that wants a client certificate, and TLS files it cannot load. */
static int test_tls(void)
{
    char dir[] = "/tmp/test-redis-uv-tls-XXXXXX", url[200], err[300];
    if (mkdtemp(dir) == NULL)
        return 1;
    if (make_certs(dir) != 0) {
        printf("# skip: the openssl command cannot make certificates\n");
        return 0;
    }
    server s = {0}, m = {0};
    s.tls = dir;
    s.user = "alice";
    m.tls = dir;
    m.tls_clients = 1;
    ASSERT_EQ(server_start(&s), 0);
    ASSERT_EQ(server_start(&m), 0);
    tenv e;
    redis_uv *cli;
    env_init(&e);

    /* the user and password in the URL, db 2 */
    snprintf(url, sizeof url, "rediss://alice:alice-pw@127.0.0.1:%d/2", s.tls_port);
    /* (a generous deadline: 3 MB through TLS under valgrind takes seconds) */
    ASSERT_EQ(tls_client(&e, url, dir, "ca.crt", 0, NULL, 30000, &cli, err, sizeof err), 0);
    size_t big = 3 * 1000 * 1000;
    char *val = malloc(big);
    ASSERT(val != NULL);
    for (size_t i = 0; i < big; i++)
        val[i] = (char)(i * 7);
    rec set = {0}, strlen_ = {0}, info = {0}, ev = {0};
    const char *argv[] = {"SET", "tlsbig", val};
    size_t lens[] = {3, 6, big};
    ASSERT_EQ(redis_uv_command_argv(cli, rec_cb, &set, 3, argv, lens), 0);
    ASSERT_EQ(redis_uv_command(cli, rec_cb, &strlen_, "STRLEN tlsbig"), 0);
    ASSERT_EQ(redis_uv_command(cli, rec_cb, &info, "CLIENT INFO"), 0);
    static const char script[] = "return #redis.call('GET', KEYS[1])";
    int sid = redis_uv_script(cli, script, strlen(script));
    ASSERT(sid >= 0);
    const char *keys[] = {"tlsbig"};
    ASSERT_EQ(redis_uv_eval(cli, rec_cb, &ev, sid, 1, 1, keys, NULL), 0);
    WAIT_UNTIL(&e, ev.calls == 1, 30000);
    ASSERT_EQ(set.status, 0);
    ASSERT_STR_EQ(set.str, "OK");
    ASSERT_EQ(strlen_.integer, (long long)big);
    ASSERT_CONTAINS(info.str, " db=2 ");
    ASSERT_CONTAINS(info.str, " user=alice ");
    ASSERT_EQ(ev.status, 0);
    ASSERT_EQ(ev.integer, (long long)big);
    rec get = {0};
    ASSERT_EQ(redis_uv_command(cli, rec_cb, &get, "GET tlsbig"), 0);
    WAIT_UNTIL(&e, get.calls == 1, 30000);
    ASSERT_EQ(get.len, big);
    ASSERT_EQ(memcmp(get.str, val, sizeof get.str - 1), 0);
    free(val);
    ASSERT(redis_uv_is_connected(cli));
    redis_uv_close(cli, on_closed, &e);

    /* the password as an option (a password file's): overrides the URL's */
    rec ok = {0};
    snprintf(url, sizeof url, "rediss://alice:not-this@127.0.0.1:%d", s.tls_port);
    ASSERT_EQ(tls_client(&e, url, dir, "ca.crt", 0, "alice-pw", 3000, &cli, err, sizeof err), 0);
    ASSERT_EQ(redis_uv_command(cli, rec_cb, &ok, "PING"), 0);
    WAIT_UNTIL(&e, ok.calls == 1, 5000);
    ASSERT_EQ(ok.status, 0);
    ASSERT_STR_EQ(ok.str, "PONG");
    redis_uv_close(cli, on_closed, &e);

    /* failures: the reason and the server in the message, never the password */
    static const struct {
        const char *ca, *host, *userinfo, *want;
    } bad[] = {
        {"other-ca.crt", "127.0.0.1", "alice:alice-pw@",
         "TLS handshake failed: certificate verify failed: "},
        {"ca.crt", "localhost", "alice:alice-pw@",
         "TLS handshake failed: certificate verify failed: hostname mismatch"},
        {"ca.crt", "127.0.0.1", "alice:wrong-pw@", "AUTH failed: WRONGPASS"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rec r = {0};
        snprintf(url, sizeof url, "rediss://%s%s:%d", bad[i].userinfo, bad[i].host, s.tls_port);
        ASSERT_EQ(tls_client(&e, url, dir, bad[i].ca, 0, NULL, 1500, &cli, err, sizeof err), 0);
        ASSERT_EQ(redis_uv_command(cli, rec_cb, &r, "PING"), 0);
        WAIT_UNTIL(&e, r.calls == 1, 5000);
        printf("# %s: %s\n", bad[i].want, r.err);
        ASSERT_EQ(r.status, REDIS_UV_EUNREACHABLE);
        ASSERT_CONTAINS(r.err, bad[i].want);
        char at[64];
        snprintf(at, sizeof at, "at %s:%d", bad[i].host, s.tls_port);
        ASSERT_CONTAINS(r.err, at);
        ASSERT_NOT_CONTAINS(r.err, "pw");
        redis_uv_close(cli, on_closed, &e);
    }

    /* a server that asks for a client certificate */
    rec nocert = {0}, withcert = {0};
    snprintf(url, sizeof url, "rediss://127.0.0.1:%d", m.tls_port);
    ASSERT_EQ(tls_client(&e, url, dir, "ca.crt", 0, NULL, 400, &cli, err, sizeof err), 0);
    ASSERT_EQ(redis_uv_command(cli, rec_cb, &nocert, "PING"), 0);
    WAIT_UNTIL(&e, nocert.calls == 1, 5000);
    printf("# no client certificate: %s\n", nocert.err);
    ASSERT_NE(nocert.status, 0);
    redis_uv_close(cli, on_closed, &e);
    ASSERT_EQ(tls_client(&e, url, dir, "ca.crt", 1, NULL, 3000, &cli, err, sizeof err), 0);
    ASSERT_EQ(redis_uv_command(cli, rec_cb, &withcert, "PING"), 0);
    WAIT_UNTIL(&e, withcert.calls == 1, 5000);
    ASSERT_EQ(withcert.status, 0);
    redis_uv_close(cli, on_closed, &e);

    /* files it cannot use: an error at open, naming the file */
    ASSERT_EQ(tls_client(&e, url, dir, "missing.crt", 0, NULL, 400, &cli, err, sizeof err),
              REDIS_UV_ETLS);
    ASSERT_CONTAINS(err, "missing.crt");
    ASSERT(cli == NULL);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", s.port);
    ASSERT_EQ(tls_client(&e, url, dir, "ca.crt", 0, NULL, 400, &cli, err, sizeof err),
              REDIS_UV_ETLS);
    ASSERT_CONTAINS(err, "not rediss://");
    ASSERT_EQ(env_done(&e), 0);
    ASSERT_EQ(e.closed, 7);
    server_stop(&s, SIGTERM);
    server_stop(&m, SIGTERM);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ASSERT_EQ(system(cmd), 0);
    return 0;
}

/* ---- throughput -------------------------------------------------------- */

typedef struct bench_state {
    long n, done, bad;
} bench_state;

static void bench_cb(redis_uv *cli, int status, const redisReply *reply, const char *err, void *ud)
{
    bench_state *b = ud;
    (void)cli;
    (void)err;
    b->done++;
    if (status != 0 || reply->type != REDIS_REPLY_INTEGER || reply->integer != b->done)
        b->bad++;
}

static int bench(long n)
{
    tenv e;
    server s = {0};
    redis_uv *cli;
    char url[128];
    rec ping = {0}, del = {0};
    ASSERT_EQ(server_start(&s), 0);
    env_init(&e);
    ASSERT_EQ(open_client(&e, url_of(url, sizeof url, &s, NULL, -1), 60000, &cli), 0);
    ASSERT_EQ(redis_uv_command(cli, rec_cb, &ping, "PING"), 0);
    ASSERT_EQ(redis_uv_command(cli, rec_cb, &del, "DEL bench"), 0);
    WAIT_UNTIL(&e, del.calls == 1, 5000);
    for (int round = 0; round < 3; round++) {
        bench_state b = {n, 0, 0};
        del.calls = 0;
        ASSERT_EQ(redis_uv_command(cli, rec_cb, &del, "DEL bench"), 0);
        WAIT_UNTIL(&e, del.calls == 1, 5000);
        double t0 = now_ms();
        for (long i = 0; i < n; i++)
            ASSERT_EQ(redis_uv_command(cli, bench_cb, &b, "INCR bench"), 0);
        double t1 = now_ms();
        WAIT_UNTIL(&e, b.done == n, 60000);
        double t2 = now_ms();
        ASSERT_EQ(b.done, n);
        ASSERT_EQ(b.bad, 0);
        printf("bench: %ld pipelined INCR in %.1f ms (issue %.1f ms): %.0f commands/s\n", n,
               t2 - t0, t1 - t0, (double)n / ((t2 - t0) / 1000.0));
    }
    redis_uv_close(cli, on_closed, &e);
    ASSERT_EQ(env_done(&e), 0);
    server_stop(&s, SIGTERM);
    return 0;
}

/* ---- runner ------------------------------------------------------------ */

static const struct {
    const char *name;
    int (*fn)(void);
} tests[] = {
    {"bad_input", test_bad_input},
    {"pipeline", test_pipeline},
    {"binary", test_binary},
    {"eval", test_eval},
    {"server_killed", test_server_killed},
    {"unreachable", test_unreachable},
    {"stalled", test_stalled},
    {"close_pending", test_close_pending},
    {"auth", test_auth},
    {"tls", test_tls},
};

int main(int argc, char **argv)
{
    int failed = 0, ran = 0;
    signal(SIGPIPE, SIG_IGN);
    atexit(kill_all);
    if (access(redis_bin(), X_OK) != 0) {
        printf("# skip: %s not found (set REDIS_SERVER)\n", redis_bin());
        return 77;
    }
    if (argc > 1 && strcmp(argv[1], "bench") == 0)
        return bench(argc > 2 ? atol(argv[2]) : 100000);
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        if (argc > 1 && strcmp(argv[1], tests[i].name) != 0)
            continue;
        ran++;
        double t0 = now_ms();
        int rc = tests[i].fn();
        printf("%s %zu - %s (%.0f ms)\n", rc == 0 ? "ok" : "not ok", i + 1, tests[i].name,
               now_ms() - t0);
        fflush(stdout);
        failed += rc != 0;
    }
    printf("# %d/%d passed\n", ran - failed, ran);
    return failed || ran == 0 ? 1 : 0;
}
