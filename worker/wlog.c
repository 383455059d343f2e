/* wlog.c: see wlog.h. One fprintf per line, so lines from the VM threads'
 * own logs and these never interleave mid-line. */
#include "wlog.h"

#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

static char wid[80] = "?";
static int min_level = WLOG_INFO;

void wlog_setup(const char *worker_id, int level)
{
    snprintf(wid, sizeof wid, "%s", worker_id);
    min_level = level;
}

void wlog(int level, const char *fmt, ...)
{
    static const char *const names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    if (level < min_level)
        return;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s mutirao-worker[%s] %s\n",
            tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
            (int)(tv.tv_usec / 1000),
            names[level < 0   ? 0
                  : level > 3 ? 3
                              : level],
            wid, msg);
}
