/*
** uv_closer.h: frees a struct that owns several libuv handles once the close
** callback of the last of them has run.
**
** libuv may touch a handle until its close callback has run, and it runs the
** close callbacks of one loop turn in an order of its own (on Unix the most
** recently closed first). So a struct that embeds several handles must not
** be freed from the close callback of one of them: it is freed after all.
**
** Use: embed a uvc_closer in the owner, then at teardown
**
**     uvc_init(&o->closer, owner_free, o);      the owner holds one count
**     uvc_close(&o->closer, (uv_handle_t *)&o->timer);
**     uvc_close(&o->closer, (uv_handle_t *)&o->check);
**     uvc_release(&o->closer);                  drops the owner's count
**
** owner_free(o) runs exactly once, when the count reaches zero: from the
** close callback of the last handle (libuv is done with every one of them
** then), or inside uvc_release when no close is still due. Until the
** owner's uvc_release nothing is freed, so handles may also be closed one
** at a time, across loop turns, after an early uvc_init. uvc_hold and
** uvc_release count anything else that must end first (a request being
** canceled, a handle in another allocation with a close callback of its
** own).
**
** Ownership: uvc_close takes over the handle's `data` field (it points to
** the closer from then on): nothing may read it once the handle is being
** closed. The closer lives inside the memory it frees: after the count has
** reached zero, neither the closer nor the owner may be used. One closer
** belongs to one loop and is used from that loop's thread only.
*/
#ifndef MUTIRAO_UV_CLOSER_H
#define MUTIRAO_UV_CLOSER_H

#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*uvc_free_fn)(void *arg);

typedef struct uvc_closer {
    unsigned count;      /* closes still due, plus holds (the owner's included) */
    uvc_free_fn free_fn; /* runs once, when count reaches 0 */
    void *arg;
} uvc_closer;

/* Starts counting with one hold, the owner's: free_fn(arg) cannot run
 * before the matching uvc_release. */
void uvc_init(uvc_closer *c, uvc_free_fn free_fn, void *arg);

/* uv_close(h) counted by c. h must be initialized and not closing yet. */
void uvc_close(uvc_closer *c, uv_handle_t *h);

/* One more count, dropped by uvc_release. */
void uvc_hold(uvc_closer *c);

/* Drops one count; the last one runs free_fn(arg), before returning. */
void uvc_release(uvc_closer *c);

#ifdef __cplusplus
}
#endif

#endif
