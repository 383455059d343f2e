/*
** fleet_conn.h: the security part of a fleet process's Redis client options,
** from its configuration: the TLS files of rediss:// and the password read
** from redis.password_file.
*/
#ifndef MUTIRAO_FLEET_CONN_H
#define MUTIRAO_FLEET_CONN_H

#include "config.h"
#include "redis_uv.h"

/*
** Points ro's TLS fields at cfg's files and, with redis.password_file, reads
** the password into *password (malloc'd; ro->password points at it) and sets
** ro's errbuf to err. Open the clients, then call fleet_redis_security_done.
** 0, or a CONFIG_E* code with err naming the file (never the password).
*/
int fleet_redis_security(const config *cfg, redis_uv_options *ro, char **password, char *err,
                         size_t errlen);
/* Wipes and frees the password (NULL is fine); ro must not be used to open
   a client after this. */
void fleet_redis_security_done(redis_uv_options *ro, char *password);

#endif
