/* envopt.c: the runtime's tuning variables (see envopt.h). */
#include "envopt.h"

#include <errno.h>
#include <stdlib.h>

#include "rtlog.h"

long envopt_int(const char *name, long min, long max, long def)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return def;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno == 0 && end != s && *end == 0 && v >= min && v <= max)
        return v;
    rtlog_process(RTLOG_WARN,
                  "%s=%.40s ignored (a whole number from %ld to %ld expected); using %ld", name, s,
                  min, max, def);
    return def;
}
