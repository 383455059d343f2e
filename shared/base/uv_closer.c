/*
** uv_closer.c: the counted close of uv_closer.h.
*/
#include "uv_closer.h"

#include <assert.h>
#include <stddef.h>

void uvc_init(uvc_closer *c, uvc_free_fn free_fn, void *arg)
{
    c->count = 1;
    c->free_fn = free_fn;
    c->arg = arg;
}

void uvc_hold(uvc_closer *c)
{
    assert(c->count > 0); /* a closer that has freed its owner is gone */
    c->count++;
}

void uvc_release(uvc_closer *c)
{
    assert(c->count > 0);
    if (--c->count > 0)
        return;
    /* copied first: free_fn may free the memory that holds c */
    uvc_free_fn fn = c->free_fn;
    void *arg = c->arg;
    fn(arg);
}

/* libuv calls this last for h and never touches h afterwards. */
static void on_closed(uv_handle_t *h)
{
    uvc_release(h->data);
}

void uvc_close(uvc_closer *c, uv_handle_t *h)
{
    assert(!uv_is_closing(h));
    uvc_hold(c);
    h->data = c;
    uv_close(h, on_closed);
}
