/*
** fleet_conn.c: Redis TLS files and the password file of the configuration,
** as redis_uv options (fleet_conn.h).
*/
#include "fleet_conn.h"

#include <stdlib.h>
#include <string.h>

int fleet_redis_security(const config *cfg, redis_uv_options *ro, char **password, char *err,
                         size_t errlen)
{
    *password = NULL;
    ro->tls_ca_file = cfg->redis_tls_ca_file;
    ro->tls_cert_file = cfg->redis_tls_cert_file;
    ro->tls_key_file = cfg->redis_tls_key_file;
    ro->password = NULL;
    ro->errbuf = err;
    ro->errlen = errlen;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (cfg->redis_password_file[0] == '\0')
        return 0;
    int rc =
        config_read_secret(cfg->redis_password_file, "redis.password_file", password, err, errlen);
    if (rc != 0)
        return rc;
    ro->password = *password;
    return 0;
}

void fleet_redis_security_done(redis_uv_options *ro, char *password)
{
    if (ro != NULL)
        ro->password = NULL;
    if (password != NULL) {
        explicit_bzero(password, strlen(password));
        free(password);
    }
}
