/* libmutirao-host-own.c: the host program's own module (see
 * libmutirao-host.h). Its own file, so that the host's calls are resolved
 * by the linker, as libmutirao's would be. */
#include <string.h>

#include "libmutirao-host.h"

int pools;
int host_calls;

int config_load(const char *key, int fallback)
{
    host_calls++;
    return strcmp(key, "answer") == 0 ? 42 : fallback;
}

int handle_new(void)
{
    static int next = 1000;
    host_calls++;
    return next++;
}

double port_post(double amount)
{
    host_calls++;
    return amount * 1.5;
}

const char *sched_get(int day)
{
    static const char *const days[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};
    host_calls++;
    return day >= 0 && day < 7 ? days[day] : "?";
}

/* rot13 into out (NUL-terminated, truncated to outlen - 1); the length */
size_t codec_encode(const char *in, char *out, size_t outlen)
{
    size_t n = 0;
    host_calls++;
    for (; in[n] && n + 1 < outlen; n++) {
        char c = in[n];
        if (c >= 'a' && c <= 'z')
            c = (char)('a' + (c - 'a' + 13) % 26);
        else if (c >= 'A' && c <= 'Z')
            c = (char)('A' + (c - 'A' + 13) % 26);
        out[n] = c;
    }
    if (outlen)
        out[n] = '\0';
    return n;
}

int envelope_check_id(long id)
{
    host_calls++;
    return id % 97 == 1;
}

int redis_uv_open(void)
{
    host_calls++;
    return -42;
}

int kuv_producer_new(int a, int b)
{
    host_calls++;
    return a * b;
}

long travel_pack(long kg)
{
    host_calls++;
    return kg <= 23 ? 1 : 2;
}

void procs_start(int *n)
{
    host_calls++;
    pools += *n;
    *n = 7;
}
