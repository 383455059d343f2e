/* curl_uv.h: libcurl's multi interface driven by a VM's libuv loop.
 *
 * One curl multi handle per VM (per scheduler), created on first use and
 * kept in the registry: curl tells us which sockets to watch and when to
 * time out (CURLMOPT_SOCKETFUNCTION / CURLMOPT_TIMERFUNCTION), uv_poll
 * handles and a uv_timer feed curl_multi_socket_action, and a finished
 * transfer is handed to its completion callback from the loop. Nothing here
 * runs Lua or blocks the loop.
 *
 * Ownership: the VM owns the curluv (a registry userdata whose __gc tears it
 * down; its memory is freed in the last uv close callback). The caller owns
 * each easy handle; while added, the easy handle's CURLOPT_PRIVATE is ours. */
#ifndef MUTIRAO_CURL_UV_H
#define MUTIRAO_CURL_UV_H

#include <curl/curl.h>
#include <lua.h>

#include "list.h"
#include "scheduler.h"

typedef struct curluv curluv;
typedef struct curluv_xfer curluv_xfer;

/* Called from the loop when a transfer ends (rc is its CURLcode); its easy
 * handle has already been removed from the multi handle. Runs no Lua. */
typedef void (*curluv_done_fn)(curluv_xfer *x, CURLcode rc);

/* A transfer, embedded by the caller in its own request record. */
struct curluv_xfer {
    CURL *easy;
    curluv_done_fn done;
    curluv *c;  /* set while added */
    mlist node; /* in c's transfers */
};

/* The curluv of L's VM, created on first use. Raises on failure. */
curluv *curluv_get(lua_State *L, sched *s);
/* Starts x->easy. Returns 0, or -1 (x->done never fires then). */
int curluv_add(curluv *c, curluv_xfer *x);
/* Stops a transfer that has not ended (x->done never fires). No-op when x
 * is not added. */
void curluv_remove(curluv_xfer *x);

#endif
