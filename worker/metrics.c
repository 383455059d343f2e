/* metrics.c: the worker's Prometheus metrics registry and its text
 * exposition (see metrics.h). Names follow Prometheus's conventions: the
 * mutirao_ prefix, _total on counters, base units (_seconds, _bytes), one
 * HELP and TYPE line per family, pool names as escaped label values; the
 * process_* family is the one every Prometheus client library exports,
 * read from /proc at scrape time. */
#include "metrics.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

typedef struct lag_entry {
    const metrics_pool *pool;
    int32_t partition;
    int64_t lag;
} lag_entry;

struct metrics {
    metrics_pool *pools; /* newest first; rendered sorted by name */
    size_t npools;
    metrics_hooks hooks;
    double start_s;
    char *info; /* the labels of mutirao_worker_info, escaped */
    uint64_t rtt_count, rtt_sum_ns, rtt_bucket[METRICS_RTT_BUCKETS];
    uint64_t rtt_last_ns;
    lag_entry *lag; /* filled by the lag hook during a render */
    size_t nlag, caplag;
};

static const double dur_bounds[METRICS_DURATION_BUCKETS] = {
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
static const uint64_t rtt_bounds_ns[METRICS_RTT_BUCKETS] = {
    100000ull,  250000ull,   500000ull,   1000000ull,   2500000ull,
    5000000ull, 10000000ull, 25000000ull, 100000000ull, 1000000000ull};

/* Boot time (btime in /proc/stat) + the process's start in clock ticks
 * after it (/proc/self/stat field 22): the Unix time the process started,
 * or fallback. */
static double process_start(double fallback)
{
    FILE *f = fopen("/proc/stat", "r");
    char line[256];
    long long btime = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "btime %lld", &btime) == 1)
            break;
    if (f)
        fclose(f);
    f = fopen("/proc/self/stat", "r");
    char buf[1024];
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long long start = 0;
    int field = 2;
    for (; p && *p && field < 22; p++)
        if (*p == ' ')
            field++;
    long hz = sysconf(_SC_CLK_TCK);
    if (btime < 0 || !p || sscanf(p, "%llu", &start) != 1 || hz <= 0)
        return fallback;
    return (double)btime + (double)start / (double)hz;
}

metrics *metrics_new(double start_unix_s)
{
    metrics *m = calloc(1, sizeof *m);
    if (m)
        m->start_s = process_start(start_unix_s);
    return m;
}

void metrics_free(metrics *m)
{
    if (!m)
        return;
    while (m->pools) {
        metrics_pool *p = m->pools;
        m->pools = p->next;
        free(p);
    }
    free(m->info);
    free(m->lag);
    free(m);
}

metrics_pool *metrics_pool_get(metrics *m, const char *pool)
{
    for (metrics_pool *p = m->pools; p; p = p->next)
        if (!strcmp(p->name, pool))
            return p;
    size_t n = strlen(pool);
    metrics_pool *p = calloc(1, sizeof *p + n + 1);
    if (!p)
        return NULL;
    memcpy(p->name, pool, n + 1);
    p->next = m->pools;
    m->pools = p;
    m->npools++;
    return p;
}

void metrics_observe_redis_rtt(metrics *m, uint64_t ns)
{
    int i = 0;
    while (i < METRICS_RTT_BUCKETS && ns > rtt_bounds_ns[i])
        i++;
    if (i < METRICS_RTT_BUCKETS)
        m->rtt_bucket[i]++;
    m->rtt_count++;
    m->rtt_sum_ns += ns;
    m->rtt_last_ns = ns;
}

void metrics_set_hooks(metrics *m, const metrics_hooks *h)
{
    if (h)
        m->hooks = *h;
    else
        memset(&m->hooks, 0, sizeof m->hooks);
}

size_t metrics_escape_label(const char *v, char *out, size_t outlen)
{
    size_t k = 0;
    for (; *v; v++) {
        const char *r = *v == '\\' ? "\\\\" : *v == '"' ? "\\\"" : *v == '\n' ? "\\n" : NULL;
        size_t rl = r ? 2 : 1;
        if (outlen && k + rl < outlen)
            memcpy(out + k, r ? r : v, rl);
        else if (outlen)
            outlen = k + 1; /* full: stop writing, keep counting */
        k += rl;
    }
    if (outlen)
        out[k < outlen ? k : outlen - 1] = 0;
    return k;
}

int metrics_set_info(metrics *m, const char *worker_id, const char *version)
{
    char id[300], ver[100];
    metrics_escape_label(worker_id, id, sizeof id);
    metrics_escape_label(version, ver, sizeof ver);
    size_t n = strlen(id) + strlen(ver) + 32;
    char *s = malloc(n);
    if (!s)
        return -1;
    snprintf(s, n, "worker=\"%s\",version=\"%s\"", id, ver);
    free(m->info);
    m->info = s;
    return 0;
}

void metrics_put_lag(metrics *m, const char *pool, int32_t partition, int64_t lag)
{
    metrics_pool *p = NULL;
    for (metrics_pool *q = m->pools; q && !p; q = q->next)
        if (!strcmp(q->name, pool))
            p = q;
    if (!p)
        return; /* a pool no task of was seen yet: made by metrics_pool_get */
    if (m->nlag == m->caplag) {
        size_t c = m->caplag ? m->caplag * 2 : 64;
        lag_entry *n = realloc(m->lag, c * sizeof *n);
        if (!n)
            return;
        m->lag = n;
        m->caplag = c;
    }
    m->lag[m->nlag++] = (lag_entry){p, partition, lag};
}

/* ---- the text ---- */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void put(sbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t c = b->cap * 2 + (size_t)n;
        char *np = realloc(b->p, c);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = c;
    }
}

static void family(sbuf *b, const char *name, const char *type, const char *help)
{
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int by_name(const void *a, const void *b)
{
    return strcmp((*(metrics_pool *const *)a)->name, (*(metrics_pool *const *)b)->name);
}

static int by_pool_partition(const void *a, const void *b)
{
    const lag_entry *x = a, *y = b;
    int c = strcmp(x->pool->name, y->pool->name);
    return c ? c : (x->partition > y->partition) - (x->partition < y->partition);
}

typedef struct counter_def {
    const char *name, *help;
    size_t off;
} counter_def;

static void process_metrics(metrics *m, sbuf *b)
{
    FILE *f = fopen("/proc/self/stat", "r");
    char buf[1024];
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = 0;
    /* fields after the command: 3 state ... 14 utime 15 stime ... 23 vsize 24 rss */
    unsigned long long v[25] = {0};
    char *p = strrchr(buf, ')');
    int field = 3;
    if (p)
        p += 2;
    while (p && *p && field <= 24) {
        if (field != 3)
            v[field] = strtoull(p, NULL, 10);
        p = strchr(p, ' ');
        if (p)
            p++;
        field++;
    }
    long hz = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    if (hz > 0 && field > 15) {
        family(b, "process_cpu_seconds_total", "counter",
               "Total user and system CPU time spent in seconds.");
        put(b, "process_cpu_seconds_total %.2f\n", (double)(v[14] + v[15]) / (double)hz);
    }
    if (field > 24) {
        family(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
        put(b, "process_virtual_memory_bytes %llu\n", v[23]);
        family(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
        put(b, "process_resident_memory_bytes %llu\n", v[24] * (unsigned long long)page);
    }
    family(b, "process_start_time_seconds", "gauge",
           "Start time of the process since unix epoch in seconds.");
    put(b, "process_start_time_seconds %.2f\n", m->start_s);
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        long fds = -1; /* the directory's own descriptor is in it */
        while (readdir(d))
            fds++;
        closedir(d);
        fds -= 2; /* . and .. */
        family(b, "process_open_fds", "gauge", "Number of open file descriptors.");
        put(b, "process_open_fds %ld\n", fds);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        family(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
        put(b, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    }
}

int metrics_render(metrics *m, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    sbuf b = {malloc(8192), 0, 8192, 0};
    metrics_pool **ps = malloc((m->npools ? m->npools : 1) * sizeof *ps);
    if (!b.p || !ps) {
        free(b.p);
        free(ps);
        return -1;
    }
    if (m->hooks.gauges)
        m->hooks.gauges(m->hooks.ud, m);
    m->nlag = 0;
    if (m->hooks.lag)
        m->hooks.lag(m->hooks.ud, m);
    size_t np = 0;
    for (metrics_pool *p = m->pools; p; p = p->next)
        ps[np++] = p;
    qsort(ps, np, sizeof *ps, by_name);
    /* pool names are escaped once per render */
    char(*names)[600] = malloc((np ? np : 1) * sizeof *names);
    if (!names) {
        free(b.p);
        free(ps);
        return -1;
    }
    for (size_t i = 0; i < np; i++)
        metrics_escape_label(ps[i]->name, names[i], sizeof names[i]);

    if (m->info) {
        family(&b, "mutirao_worker_info", "gauge", "This worker's id and version (always 1).");
        put(&b, "mutirao_worker_info{%s} 1\n", m->info);
    }
    static const counter_def counters[] = {
        {"mutirao_tasks_completed_total", "Tasks this worker ran whose success it recorded.",
         offsetof(metrics_pool, completed)},
        {"mutirao_tasks_failed_total",
         "Tasks this worker recorded as failed (timed out and dead-lettered ones included).",
         offsetof(metrics_pool, failed)},
        {"mutirao_tasks_retried_total",
         "Failed attempts this worker scheduled a next attempt for (the pool's retries).",
         offsetof(metrics_pool, retried)},
        {"mutirao_tasks_dead_lettered_total",
         "Tasks this worker dead-lettered (delivered max_deliveries times without an outcome).",
         offsetof(metrics_pool, dead_lettered)},
        {"mutirao_tasks_timed_out_total",
         "Attempts cancelled at their timeout or deadline (also counted as failed or retried).",
         offsetof(metrics_pool, timed_out)},
        {"mutirao_tasks_rejected_total",
         "Messages refused unrun (unsigned or badly signed envelopes), dead-lettered.",
         offsetof(metrics_pool, rejected)},
    };
    for (size_t c = 0; c < sizeof counters / sizeof counters[0]; c++) {
        family(&b, counters[c].name, "counter", counters[c].help);
        for (size_t i = 0; i < np; i++)
            put(&b, "%s{pool=\"%s\"} %" PRIu64 "\n", counters[c].name, names[i],
                *(const uint64_t *)((const char *)ps[i] + counters[c].off));
    }
    family(&b, "mutirao_tasks_running", "gauge", "Tasks of the pool running on this worker now.");
    for (size_t i = 0; i < np; i++)
        put(&b, "mutirao_tasks_running{pool=\"%s\"} %d\n", names[i], ps[i]->running);
    family(&b, "mutirao_pool_slots", "gauge",
           "Tasks of the pool this worker runs at once (the pool's workers option).");
    for (size_t i = 0; i < np; i++)
        put(&b, "mutirao_pool_slots{pool=\"%s\"} %d\n", names[i], ps[i]->slots);
    family(&b, "mutirao_task_duration_seconds", "histogram",
           "Run time of the tasks this worker ran, from start to return.");
    for (size_t i = 0; i < np; i++) {
        uint64_t cum = 0;
        for (int k = 0; k < METRICS_DURATION_BUCKETS; k++) {
            cum += ps[i]->dur_bucket[k];
            put(&b, "mutirao_task_duration_seconds_bucket{pool=\"%s\",le=\"%g\"} %" PRIu64 "\n",
                names[i], dur_bounds[k], cum);
        }
        put(&b, "mutirao_task_duration_seconds_bucket{pool=\"%s\",le=\"+Inf\"} %" PRIu64 "\n",
            names[i], ps[i]->dur_count);
        put(&b, "mutirao_task_duration_seconds_sum{pool=\"%s\"} %.9f\n", names[i],
            (double)ps[i]->dur_sum_ns / 1e9);
        put(&b, "mutirao_task_duration_seconds_count{pool=\"%s\"} %" PRIu64 "\n", names[i],
            ps[i]->dur_count);
    }
    family(&b, "mutirao_kafka_consumer_lag", "gauge",
           "Messages of an assigned partition not yet finished here: its high watermark minus "
           "the first offset this worker has not recorded.");
    if (m->nlag)
        qsort(m->lag, m->nlag, sizeof *m->lag, by_pool_partition);
    for (size_t i = 0; i < m->nlag; i++) {
        size_t k = 0;
        while (k < np && ps[k] != m->lag[i].pool)
            k++;
        if (k < np)
            put(&b, "mutirao_kafka_consumer_lag{pool=\"%s\",partition=\"%d\"} %" PRId64 "\n",
                names[k], (int)m->lag[i].partition, m->lag[i].lag);
    }
    family(&b, "mutirao_redis_rtt_seconds", "histogram",
           "Round-trip time of the worker's Redis PING, sent every second.");
    uint64_t cum = 0;
    for (int k = 0; k < METRICS_RTT_BUCKETS; k++) {
        cum += m->rtt_bucket[k];
        put(&b, "mutirao_redis_rtt_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
            (double)rtt_bounds_ns[k] / 1e9, cum);
    }
    put(&b, "mutirao_redis_rtt_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", m->rtt_count);
    put(&b, "mutirao_redis_rtt_seconds_sum %.9f\n", (double)m->rtt_sum_ns / 1e9);
    put(&b, "mutirao_redis_rtt_seconds_count %" PRIu64 "\n", m->rtt_count);
    family(&b, "mutirao_redis_last_rtt_seconds", "gauge",
           "Round-trip time of the last Redis PING answered.");
    put(&b, "mutirao_redis_last_rtt_seconds %.9f\n", (double)m->rtt_last_ns / 1e9);
    process_metrics(m, &b);
    free(names);
    free(ps);
    if (b.oom) {
        free(b.p);
        return -1;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}
