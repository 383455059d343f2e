/* cli_top.c: `mutirao top`: the pools and the live workers (ops_data.h, the
 * data behind `mutirao pools` and `workers`) redrawn every second.
 *
 * On a terminal: raw mode (termios) on the alternate screen, plain ANSI
 * escapes, the size read each frame (TIOCGWINSZ; SIGWINCH redraws at
 * once). Keys: s cycles the pools' sort column, r reverses it, space
 * refreshes now, q (or Ctrl-C) quits. The terminal is restored on every
 * way out: q, SIGINT, SIGTERM, SIGHUP. When stdout is not a terminal (or
 * with --once; stdin not a terminal either): the same tables as plain lines, one snapshot a second
 * (one with --once). An unreachable Redis is one line before anything is drawn, exit status 1;
 * later failures show in the status line while it keeps trying. */
#include "cli_top.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli_config.h"
#include "config.h"
#include "fleet_keys.h"
#include "ops_data.h"

enum { OK = 0, FAIL = 1, USAGE = 2 };

/* The pools' columns, in the order s cycles them. */
enum { C_NAME, C_QUEUED, C_RUNNING, C_PERSEC, C_RATE, C_FAILED, C_P50, C_P99, NCOLS };
static const char *const col_names[NCOLS] = {"POOL",     "QUEUED", "RUNNING", "DONE/S",
                                             "RATE/MIN", "FAILED", "P50",     "P99"};

typedef struct row {
    const ops_pool *p;
    double persec; /* outcomes a second since the previous snapshot, -1: unknown */
    double p50, p99;
} row;

typedef struct view {
    int sort, reverse;
    ops_snapshot s, prev;
    uint64_t at_ms, prev_ms;
    row *rows;
    char err[400];
} view;

static uint64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* ---- the terminal ---- */

static struct termios saved;
static volatile sig_atomic_t term_raw, got_signal, resized;

static void term_restore(void)
{
    if (!term_raw)
        return;
    static const char out[] = "\x1b[0m\x1b[?25h\x1b[?1049l";
    ssize_t w = write(STDOUT_FILENO, out, sizeof out - 1);
    (void)w;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
    term_raw = 0;
}

static void on_signal(int sig)
{
    if (sig == SIGWINCH)
        resized = 1;
    else
        got_signal = sig;
}

static int term_enter(void)
{
    if (tcgetattr(STDIN_FILENO, &saved) != 0)
        return -1;
    struct termios t = saved;
    t.c_lflag &= ~(tcflag_t)(ICANON | ECHO | IEXTEN);
    t.c_iflag &= ~(tcflag_t)(IXON | ICRNL);
    t.c_cc[VMIN] = 0;
    t.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) != 0)
        return -1;
    term_raw = 1;
    fputs("\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J", stdout);
    fflush(stdout);
    return 0;
}

static void term_size(int *cols, int *lines)
{
    struct winsize ws;
    *cols = 80;
    *lines = 24;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
        *cols = ws.ws_col;
        *lines = ws.ws_row;
    }
}

/* ---- the figures ---- */

static void fmt_ms(double ms, char *out, size_t n)
{
    if (ms < 0)
        snprintf(out, n, "-");
    else if (ms >= FLEET_DUR_MAX_MS)
        snprintf(out, n, ">60s");
    else if (ms < 1000)
        snprintf(out, n, "%.0fms", ms);
    else
        snprintf(out, n, "%.1fs", ms / 1000);
}

static double key_of(const row *r, int col)
{
    switch (col) {
    case C_QUEUED:
        return (double)r->p->queued;
    case C_RUNNING:
        return (double)r->p->running;
    case C_PERSEC:
        return r->persec;
    case C_RATE:
        return (double)r->p->rate;
    case C_FAILED:
        return (double)r->p->failed;
    case C_P50:
        return r->p50;
    case C_P99:
        return r->p99;
    }
    return 0;
}

static int sort_col, sort_rev;

/* Names ascending, figures largest first; r reverses either. */
static int by_col(const void *a, const void *b)
{
    const row *x = a, *y = b;
    int c = 0;
    if (sort_col != C_NAME) {
        double kx = key_of(x, sort_col), ky = key_of(y, sort_col);
        c = kx > ky ? -1 : kx < ky ? 1 : 0;
    }
    if (c == 0)
        c = strcmp(x->p->name, y->p->name);
    return sort_rev ? -c : c;
}

/* Rows for v->s, sorted, with their rates against v->prev. */
static void make_rows(view *v)
{
    free(v->rows);
    v->rows = calloc(v->s.npools ? v->s.npools : 1, sizeof *v->rows);
    if (!v->rows)
        return;
    double dt = (double)(v->at_ms - v->prev_ms) / 1000;
    for (size_t i = 0; i < v->s.npools; i++) {
        row *r = &v->rows[i];
        r->p = &v->s.pools[i];
        r->persec = -1;
        for (size_t j = 0; j < v->prev.npools && v->prev_ms && dt > 0; j++)
            if (!strcmp(v->prev.pools[j].name, r->p->name)) {
                long long d = r->p->completed + r->p->failed - v->prev.pools[j].completed -
                              v->prev.pools[j].failed;
                r->persec = d > 0 ? (double)d / dt : 0;
            }
        r->p50 = fleet_dur_quantile(r->p->dur, 0.5);
        r->p99 = fleet_dur_quantile(r->p->dur, 0.99);
    }
    sort_col = v->sort;
    sort_rev = v->reverse;
    qsort(v->rows, v->s.npools, sizeof *v->rows, by_col);
}

/* ---- drawing: lines into a buffer, cut to the width ---- */

typedef struct screen {
    int cols, lines, n, tty;
} screen;

/* One line (attr: an SGR code or NULL) */
static void line(screen *sc, const char *attr, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void line(screen *sc, const char *attr, const char *fmt, ...)
{
    if (sc->tty && sc->n >= sc->lines)
        return;
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    for (char *c = buf; *c; c++) /* names from Redis: no escape reaches the terminal */
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    if (sc->tty) {
        if ((int)strlen(buf) > sc->cols)
            buf[sc->cols] = 0;
        printf("\x1b[%d;1H%s%s\x1b[0m\x1b[K", sc->n + 1, attr ? attr : "", buf);
    } else {
        puts(buf);
    }
    sc->n++;
}

static const char pool_head[] = "%-24s %7s %7s %7s %7s %8s %9s %7s %5s %7s %7s";
static const char worker_head[] = "%-28s %-20s %-24s %7s %5s %s";

static void draw(view *v, screen *sc)
{
    char when[32];
    time_t t = (time_t)(v->at_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    long long run = 0, q = 0;
    for (size_t i = 0; i < v->s.npools; i++) {
        run += v->s.pools[i].running;
        q += v->s.pools[i].queued;
    }
    line(sc, NULL, "mutirao top  %s  pools %zu  workers %zu  running %lld  queued %lld  sort %s%s",
         when, v->s.npools, v->s.nworkers, run, q, col_names[v->sort],
         v->reverse ? " (reversed)" : "");
    if (sc->tty)
        line(sc, "\x1b[2m", "keys: s sort column  r reverse  space refresh  q quit");
    line(sc, NULL, "%s", "");
    /* the header, the sort column marked with a * on a terminal too */
    char h[NCOLS][16];
    for (int i = 0; i < NCOLS; i++)
        snprintf(h[i], sizeof h[i], "%s%s", col_names[i], sc->tty && i == v->sort ? "*" : "");
    line(sc, sc->tty ? "\x1b[7m" : NULL, pool_head, h[C_NAME], "WORKERS", h[C_QUEUED], h[C_RUNNING],
         h[C_PERSEC], h[C_RATE], "COMPLETED", h[C_FAILED], "DEAD", h[C_P50], h[C_P99]);
    if (v->s.npools == 0)
        line(sc, NULL, "no pools (none created, or their keys expired)");
    for (size_t i = 0; v->rows && i < v->s.npools; i++) {
        const row *r = &v->rows[i];
        char ps[16], p50[16], p99[16];
        if (r->persec < 0)
            snprintf(ps, sizeof ps, "-");
        else
            snprintf(ps, sizeof ps, "%.1f", r->persec);
        fmt_ms(r->p50, p50, sizeof p50);
        fmt_ms(r->p99, p99, sizeof p99);
        line(sc, NULL, "%-24s %7lld %7lld %7lld %7s %8lld %9lld %7lld %5lld %7s %7s", r->p->name,
             r->p->workers, r->p->queued, r->p->running, ps, r->p->rate, r->p->completed,
             r->p->failed, r->p->dead, p50, p99);
    }
    line(sc, NULL, "%s", "");
    line(sc, sc->tty ? "\x1b[7m" : NULL, worker_head, "WORKER", "HOST", "POOLS", "RUNNING", "SLOTS",
         "LAST SEEN");
    if (v->s.nworkers == 0)
        line(sc, NULL, "no live workers (none reported in the last %d s)", FLEET_WORKER_TTL_S);
    for (size_t i = 0; i < v->s.nworkers; i++) {
        const ops_worker *w = &v->s.workers[i];
        uint64_t d = v->at_ms > w->seen_ms ? (v->at_ms - w->seen_ms) / 1000 : 0;
        line(sc, NULL, "%-28s %-20s %-24s %7lld %5lld %" PRIu64 "s ago", w->id, w->host, w->pools,
             w->running, w->slots, d);
    }
    if (v->err[0]) {
        line(sc, NULL, "%s", "");
        line(sc, sc->tty ? "\x1b[31m" : NULL, "error: %s (retrying)", v->err);
    }
}

/* Reads a new snapshot; 0 or -1 (v->err says why once quiet). */
static int refresh(view *v, ops_conn *c)
{
    ops_snapshot s;
    char err[sizeof v->err];
    err[0] = 0;
    ops_quiet(c, err, sizeof err);
    int rc = ops_read(c, &s);
    if (rc != 0) {
        snprintf(v->err, sizeof v->err, "%s", err[0] ? err : "cannot read Redis");
        return -1;
    }
    v->err[0] = 0;
    ops_snapshot_free(&v->prev);
    v->prev = v->s;
    v->prev_ms = v->at_ms;
    v->s = s;
    v->at_ms = now_ms();
    make_rows(v);
    return 0;
}

/* ---- the two modes ---- */

static int run_plain(view *v, ops_conn *c, int once)
{
    for (;;) {
        screen sc = {0, 0, 0, 0};
        draw(v, &sc);
        if (once)
            return OK;
        putchar('\n');
        fflush(stdout);
        uint64_t next = v->at_ms + 1000, now;
        while ((now = now_ms()) < next) {
            struct timespec ts = {0, (long)(next - now) * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (refresh(v, c) != 0) {
            fprintf(stderr, "mutirao: %s\n", v->err);
            v->at_ms = now_ms();
        }
    }
}

static int run_tty(view *v, ops_conn *c)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: poll returns at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGWINCH, &sa, NULL);
    if (term_enter() != 0) {
        fprintf(stderr, "mutirao: top: cannot set up the terminal: %s\n", strerror(errno));
        return FAIL;
    }
    atexit(term_restore);
    int st = OK;
    for (;;) {
        screen sc = {0, 0, 0, 1};
        term_size(&sc.cols, &sc.lines);
        draw(v, &sc);
        fputs("\x1b[J", stdout);
        fflush(stdout);
        resized = 0;
        int redraw = 0;
        uint64_t next = v->at_ms + 1000, now;
        while (!redraw && !got_signal && (now = now_ms()) < next) {
            struct pollfd pfd = {STDIN_FILENO, POLLIN, 0};
            int r = poll(&pfd, 1, (int)(next - now));
            if (resized) {
                redraw = 1;
                break;
            }
            if (r <= 0)
                continue;
            char keys[32];
            ssize_t n = read(STDIN_FILENO, keys, sizeof keys);
            if (n == 0 && !isatty(STDIN_FILENO))
                break;
            for (ssize_t i = 0; i < n; i++) {
                switch (keys[i]) {
                case 'q':
                case 'Q':
                case 3: /* Ctrl-C without ISIG */
                    goto out;
                case 's':
                    v->sort = (v->sort + 1) % NCOLS;
                    redraw = 1;
                    break;
                case 'r':
                    v->reverse = !v->reverse;
                    redraw = 1;
                    break;
                case ' ':
                    next = 0;
                    break;
                }
            }
        }
        if (got_signal) {
            st = 128 + got_signal;
            break;
        }
        if (redraw) {
            sort_col = v->sort;
            sort_rev = v->reverse;
            if (v->rows)
                qsort(v->rows, v->s.npools, sizeof *v->rows, by_col);
            continue;
        }
        if (refresh(v, c) != 0)
            v->at_ms = now_ms();
    }
out:
    term_restore();
    return st;
}

static const char top_help[] =
    "usage: mutirao top [--once] [--config FILE]\n"
    "\n"
    "The fleet's pools and live workers, read from Redis as `mutirao pools` and\n"
    "`mutirao workers` read them, redrawn every second on the terminal's alternate\n"
    "screen. Per pool: workers, queued, running, outcomes a second since the\n"
    "previous refresh (DONE/S) and over the last minute (RATE/MIN), completed,\n"
    "failed, dead-lettered, and the p50 and p99 of the durations (started to\n"
    "recorded) of the last minute's tasks, from the workers' registry entries.\n"
    "\n"
    "Keys: s cycles the pools' sort column (POOL, QUEUED, RUNNING, DONE/S,\n"
    "RATE/MIN, FAILED, P50, P99; figures largest first), r reverses the order,\n"
    "space refreshes now, q or Ctrl-C quits.\n"
    "\n"
    "When stdout (or stdin) is not a terminal: the same tables as plain lines, a\n"
    "snapshot a second (a blank line between them); --once prints one and exits.\n"
    "\n"
    "Exit status: 0, 1 when Redis cannot be read at start, 2 on bad usage.\n";

int cli_top_main(int argc, char **argv)
{
    int once = 0;
    for (int i = 0, st; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(top_help, stdout);
            return OK;
        } else if (!strcmp(a, "--once")) {
            once = 1;
        } else if ((st = cli_config_option(argc, argv, &i, "mutirao top", "mutirao top --help")) !=
                   CLI_CONFIG_OTHER) {
            if (st != 0)
                return st;
        } else {
            fprintf(stderr, "mutirao: %s '%s' (see mutirao top --help)\n",
                    a[0] == '-' ? "unknown option" : "unexpected argument", a);
            return USAGE;
        }
    }
    config cfg;
    char err[512];
    if (config_load(&cfg, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "mutirao: %s\n", err);
        config_free(&cfg);
        return USAGE;
    }
    int st = FAIL;
    ops_conn *c = ops_open(&cfg, stderr);
    if (c) {
        view v;
        memset(&v, 0, sizeof v);
        v.at_ms = now_ms();
        ops_snapshot s;
        if (ops_read(c, &s) == 0) { /* the first failure: one line on stderr */
            v.s = s;
            make_rows(&v);
            if (!once && isatty(STDOUT_FILENO) && isatty(STDIN_FILENO))
                st = run_tty(&v, c);
            else
                st = run_plain(&v, c, once);
        }
        ops_snapshot_free(&v.s);
        ops_snapshot_free(&v.prev);
        free(v.rows);
        ops_close(c);
    }
    config_free(&cfg);
    return st;
}
