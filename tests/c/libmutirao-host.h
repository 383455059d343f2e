/* libmutirao-host.h: a host program's own functions and globals, named like
 * libmutirao's internal ones (shared/wire/config.c, lua/core/async.c, lua/core/port.c, ...)
 * but with other signatures and behaviour. A host linking libmutirao.a or
 * libmutirao.so must keep them: the library may not define or call them. */
#ifndef LIBMUTIRAO_HOST_H
#define LIBMUTIRAO_HOST_H

#include <stddef.h>

extern int pools;      /* a global the host owns */
extern int host_calls; /* calls of the functions below, whoever made them */

int config_load(const char *key, int fallback);
int handle_new(void);
double port_post(double amount);
const char *sched_get(int day);
size_t codec_encode(const char *in, char *out, size_t outlen);
int envelope_check_id(long id);
int redis_uv_open(void);
int kuv_producer_new(int a, int b);
long travel_pack(long kg);
void procs_start(int *n);

#endif
