/* curl_uv.c: a curl multi handle per VM on the VM's libuv loop (see
 * curl_uv.h). The glue of curl's multi-uv example: a uv_poll per socket
 * curl asks us to watch, one uv_timer for curl's timeout, and
 * curl_multi_socket_action from their callbacks. */
#include "curl_uv.h"

#include <pthread.h>
#include <stdlib.h>

#include <lauxlib.h>

#include "uv_closer.h"

static const char CURLUV_KEY = 'C';

typedef struct csock csock;

struct curluv {
    sched *s;
    CURLM *multi;
    uv_timer_t timer;
    mlist socks;       /* sockets being watched (of csock.node), for teardown */
    mlist xfers;       /* transfers added (of curluv_xfer.node), for teardown */
    uvc_closer closer; /* frees c after the timer and every socket's poll are closed */
    int closing;       /* torn down: curl's callbacks are ignored */
};

struct csock {
    uv_poll_t poll;
    curl_socket_t fd;
    curluv *c;
    mlist node; /* in c->socks */
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* A socket's poll handle is closed: the first member of its csock. */
static void handle_closed(uv_handle_t *h)
{
    curluv *c = h->data;
    free(h);
    uvc_release(&c->closer); /* the socket's hold, from socket_cb */
}

static void csock_close(csock *cs)
{
    curluv *c = cs->c;
    mlist_remove(&cs->node);
    uv_poll_stop(&cs->poll);
    cs->poll.data = c;
    uv_close((uv_handle_t *)&cs->poll, handle_closed);
}

static void xfer_unlink(curluv_xfer *x)
{
    mlist_remove(&x->node);
    x->c = NULL;
}

/* Hands every finished transfer to its owner. */
static void check_done(curluv *c)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *e = m->easy_handle;
        CURLcode rc = m->data.result; /* m is invalid after the removal */
        curluv_xfer *x = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(c->multi, e);
        if (x) {
            xfer_unlink(x);
            x->done(x, rc);
        }
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    csock *cs = h->data;
    curluv *c = cs->c;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(c->multi, cs->fd, flags, &running); /* may close cs */
    check_done(c);
}

static void on_timeout(uv_timer_t *t)
{
    curluv *c = t->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(c);
}

static int socket_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)e;
    curluv *c = userp;
    csock *cs = socketp;
    if (c->closing)
        return 0;
    if (what == CURL_POLL_REMOVE) {
        if (cs) {
            curl_multi_assign(c->multi, fd, NULL);
            csock_close(cs);
        }
        return 0;
    }
    if (!cs) {
        cs = calloc(1, sizeof *cs);
        if (!cs)
            return -1;
        if (uv_poll_init_socket(c->s->loop, &cs->poll, fd) != 0) {
            free(cs);
            return -1;
        }
        uvc_hold(&c->closer);
        cs->fd = fd;
        cs->c = c;
        cs->poll.data = cs;
        mlist_push_front(&c->socks, &cs->node);
        curl_multi_assign(c->multi, fd, cs);
    }
    int ev = 0;
    if (what & CURL_POLL_IN)
        ev |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        ev |= UV_WRITABLE;
    return uv_poll_start(&cs->poll, ev, on_poll) == 0 ? 0 : -1;
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    (void)m;
    curluv *c = userp;
    if (c->closing)
        return 0;
    if (timeout_ms < 0) {
        uv_timer_stop(&c->timer);
        return 0;
    }
    uv_update_time(c->s->loop); /* curl's timeout counts from now, not the loop's cached time */
    return uv_timer_start(&c->timer, on_timeout, (uint64_t)timeout_ms, 0) == 0 ? 0 : -1;
}

static void curluv_destroy(curluv *c)
{
    c->closing = 1;
    curluv_xfer *x;
    while ((x = mlist_first_entry(&c->xfers, curluv_xfer, node))) {
        curl_multi_remove_handle(c->multi, x->easy); /* x->done never fires */
        xfer_unlink(x);
    }
    csock *cs;
    while ((cs = mlist_first_entry(&c->socks, csock, node))) {
        curl_multi_assign(c->multi, cs->fd, NULL);
        csock_close(cs);
    }
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    uv_timer_stop(&c->timer);
    uvc_close(&c->closer, (uv_handle_t *)&c->timer);
    uvc_release(&c->closer); /* c goes with the last of its handles */
}

static int curluv_gc(lua_State *L)
{
    curluv **box = lua_touserdata(L, 1);
    if (*box) {
        curluv_destroy(*box);
        *box = NULL;
    }
    return 0;
}

curluv *curluv_get(lua_State *L, sched *s)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &CURLUV_KEY) == LUA_TUSERDATA) {
        curluv *c = *(curluv **)lua_touserdata(L, -1);
        lua_pop(L, 1);
        if (!c)
            luaL_error(L, "http: this VM is closing");
        return c;
    }
    lua_pop(L, 1);
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK)
        luaL_error(L, "http: cannot initialise libcurl: %s", curl_easy_strerror(global_rc));
    /* the box first: an out-of-memory error leaks nothing */
    curluv **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = NULL;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, curluv_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    curluv *c = calloc(1, sizeof *c);
    CURLM *multi = c ? curl_multi_init() : NULL;
    if (!multi) {
        free(c);
        luaL_error(L, "http: cannot create a curl multi handle");
    }
    c->s = s;
    c->multi = multi;
    mlist_init(&c->socks);
    mlist_init(&c->xfers);
    uv_timer_init(s->loop, &c->timer);
    c->timer.data = c;
    uvc_init(&c->closer, free, c); /* released by curluv_destroy */
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, c);
    *box = c;
    lua_rawsetp(L, LUA_REGISTRYINDEX, &CURLUV_KEY);
    return c;
}

int curluv_add(curluv *c, curluv_xfer *x)
{
    if (c->closing)
        return -1;
    curl_easy_setopt(x->easy, CURLOPT_PRIVATE, (char *)x);
    if (curl_multi_add_handle(c->multi, x->easy) != CURLM_OK)
        return -1;
    x->c = c;
    mlist_push_front(&c->xfers, &x->node);
    return 0;
}

void curluv_remove(curluv_xfer *x)
{
    curluv *c = x->c;
    if (!c)
        return;
    xfer_unlink(x);
    curl_multi_remove_handle(c->multi, x->easy);
}
