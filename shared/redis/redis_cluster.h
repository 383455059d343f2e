/*
** redis_cluster.h: the cluster mode of the async client, internal to
** shared/redis (redis_uv.c calls it for redis+cluster:// and
** rediss+cluster:// URLs; users see only redis_uv.h).
**
** A cluster client is a set of plain clients (redis_uv.h), one per master,
** behind the one redis_uv handle its user holds. Each command goes to the
** master serving the slot of its first key (redis_slot.h); a command
** without a key goes to the first node. The slot map comes from CLUSTER
** SLOTS, asked at open and again after a MOVED or a failed command (one
** request in flight at a time). A MOVED reply updates the map's slot and
** resends the command to the node it names; an ASK resends it there once,
** after ASKING on the same connection; at most REDIS_CLUSTER_HOPS resends a
** command. Until the map is known, commands go to the first seed and
** follow its MOVED replies. Each plain client keeps its own reconnection,
** queue and deadlines, so a command's deadline is counted per hop. A reply
** CLUSTERDOWN, LOADING or TRYAGAIN (the node did not run the command: a
** master restarted answers CLUSTERDOWN for its first 2 s) resends the
** command after 50 ms doubling to 500 ms, routed again, while the op
** timeout from the call allows; then that reply is the command's. Closing
** fails the commands waiting so with REDIS_UV_ECLOSED.
*/
#ifndef MUTIRAO_REDIS_CLUSTER_H
#define MUTIRAO_REDIS_CLUSTER_H

#include "redis_uv.h"

#define REDIS_CLUSTER_HOPS 5 /* redirects followed per command */

typedef struct rcluster rcluster;

/* url starts with "redis+cluster://" or "rediss+cluster://". */
int rcl_is_cluster_url(const char *url);

/* Opens the clients of the seeds of url:
**   redis+cluster://[[user]:password@]host[:port][,host[:port]...][/0]
** (the same for rediss+cluster://; the user, password and TLS options apply
** to every node). `facade` is the handle the callbacks get. 0 or EURL,
** EINVAL, ENOMEM, ETLS (opts->errbuf says why, as for redis_uv_open). */
int rcl_open(uv_loop_t *loop, const char *url, const redis_uv_options *opts, redis_uv *facade,
             rcluster **out);
/* Closes every node's client; `done(arg)` runs once they are all freed
** (never from inside this call). Pending commands fail as redis_uv.h says. */
void rcl_close(rcluster *cl, void (*done)(void *), void *arg);
void rcl_hold(rcluster *cl);
int rcl_command_argv(rcluster *cl, redis_uv_cb cb, void *ud, int argc, const char *const *argv,
                     const size_t *argvlen);
/* A formatted command (RESP array of bulk strings), split and routed. */
int rcl_command_resp(rcluster *cl, redis_uv_cb cb, void *ud, const char *cmd, size_t len);
/* script_id: the facade's id of src (each node's client registers src once). */
int rcl_eval(rcluster *cl, redis_uv_cb cb, void *ud, int script_id, const char *src, size_t srclen,
             int nkeys, int argc, const char *const *argv, const size_t *argvlen);
int rcl_is_connected(const rcluster *cl);
const char *rcl_endpoint(const rcluster *cl);
void rcl_get_stats(const rcluster *cl, redis_uv_stats *out);

#endif
