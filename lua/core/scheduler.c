/* scheduler.c: run queue, parking and waking, goroutine life cycle and scopes.
 * See scheduler.h for the model. Every resume of a goroutine happens in
 * sched_drain(), called from the loop's idle handle; wake-ups only move
 * goroutines to the run queue, so no goroutine ever runs inside another. */
#include "scheduler.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "async.h"
#include "coroutines.h"
#include "port.h"
#include "preempt.h"
#include "rtlog.h"

#define container_of(p, T, m) ((T *)((char *)(p)-offsetof(T, m)))
#define FREE_KEEP 1024               /* goroutine records a GC cycle never trims */
#define CLOSE_GRACE_NS 1000000000ull /* <close> handlers of a killed goroutine */

static const char SCHED_KEY = 'S';

uint64_t sched_now_ns(void)
{
    return uv_hrtime();
}

/* ---- lists ---- */

static gor *gl_first(glist *l)
{
    return mlist_first_entry(&l->head, gor, node);
}

static void gl_push(glist *l, gor *g)
{
    mlist_push_back(&l->head, &g->node);
    l->len++;
    g->on = l;
}

static void gl_remove(gor *g)
{
    glist *l = g->on;
    if (!l)
        return;
    mlist_remove(&g->node);
    l->len--;
    g->on = NULL;
}

static gor *gl_pop(glist *l)
{
    gor *g = gl_first(l);
    if (g)
        gl_remove(g);
    return g;
}

static void gl_append(glist *dst, glist *src)
{
    mlist *n;
    mlist_foreach (n, &src->head)
        mlist_entry(n, gor, node)->on = dst;
    mlist_splice_back(&dst->head, &src->head);
    dst->len += src->len;
    src->len = 0;
}

/* ---- timers ---- */

static void on_timer(uv_timer_t *t);

static void timer_arm(sched *s)
{
    theap_ent *m = theap_min(&s->timers);
    if (!m) {
        if (s->timer_due) {
            uv_timer_stop(&s->timer);
            s->timer_due = 0;
        }
        return;
    }
    if (s->timer_due == m->due)
        return;
    uv_update_time(s->loop);
    uint64_t now = uv_hrtime();
    uint64_t ms = m->due > now ? (m->due - now + 999999) / 1000000 : 0;
    uv_timer_start(&s->timer, on_timer, ms, 0);
    s->timer_due = m->due;
}

static void timer_add(sched *s, theap_ent *e, uint64_t due, theap_cb cb)
{
    e->due = due;
    e->cb = cb;
    if (theap_push(&s->timers, e) != 0)
        return; /* out of memory: the entry never fires; callers check theap_has */
    if (theap_min(&s->timers) == e)
        timer_arm(s);
}

/* Removes e from the heap; the uv timer follows the new earliest entry so
 * that a dropped deadline does not keep the loop alive. */
static void timer_del(sched *s, theap_ent *e)
{
    if (!theap_has(e))
        return;
    int was_min = theap_min(&s->timers) == e;
    theap_remove(&s->timers, e);
    if (was_min)
        timer_arm(s);
}

void sched_timer_add(sched *s, theap_ent *e, uint64_t due, theap_cb cb)
{
    timer_add(s, e, due, cb);
}

void sched_timer_del(sched *s, theap_ent *e)
{
    timer_del(s, e);
}

static void on_timer(uv_timer_t *t)
{
    sched *s = t->data;
    s->timer_due = 0;
    s->in_cb++;
    uint64_t now = uv_hrtime();
    theap_ent *e;
    while ((e = theap_min(&s->timers)) && e->due <= now) {
        theap_remove(&s->timers, e);
        e->cb(e);
    }
    s->in_cb--;
    timer_arm(s);
}

static void on_sleep_due(theap_ent *e)
{
    gor *g = container_of(e, gor, timer);
    sched_ready(g->s, g);
}

/* ---- scopes ---- */

static void scope_free(scope *sc);

void scope_watch_add(scope *sc, scope_watch *w)
{
    w->sc = sc;
    mlist_push_front(&sc->watches, &w->node);
}

void scope_watch_del(scope_watch *w)
{
    if (!w->sc)
        return;
    mlist_remove(&w->node);
    w->sc = NULL;
}

/* Tells every watcher that sc was cancelled or ended; each is unlinked
 * before its callback runs (which may free it). */
static void scope_watches_end(scope *sc, int cancelled)
{
    scope_watch *w;
    while ((w = mlist_first_entry(&sc->watches, scope_watch, node))) {
        scope_watch_del(w);
        w->on_end(w, cancelled);
    }
}

static void scope_inc(scope *sc)
{
    if (sc->nlive++ == 0 && sc->parent && !sc->counted) {
        sc->counted = 1;
        scope_inc(sc->parent);
    }
}

static void scope_dec(scope *sc)
{
    if (--sc->nlive > 0)
        return;
    /* an ended scope has nothing left to cancel: drop its deadline so that
     * it does not keep the loop alive */
    timer_del(sc->s, &sc->deadline);
    sched_ready_all(sc->s, &sc->waiters);
    scope *parent = sc->parent;
    int counted = sc->counted;
    sc->counted = 0;
    if (sc->refs == 0 && sc != &sc->s->root)
        scope_free(sc);
    if (parent && counted)
        scope_dec(parent);
}

static void on_deadline(theap_ent *e)
{
    scope *sc = container_of(e, scope, deadline);
    scope_cancel(sc, NULL);
}

scope *scope_new(sched *s, scope *parent, uint64_t timeout_ns)
{
    scope *sc = calloc(1, sizeof *sc);
    if (!sc)
        return NULL;
    sc->s = s;
    sc->parent = parent;
    sc->refs = 1;
    sc->label_ref = LUA_NOREF;
    glist_init(&sc->waiters);
    mlist_init(&sc->children);
    mlist_init(&sc->members);
    mlist_init(&sc->watches);
    sc->tag = parent->tag;
    parent->refs++;
    mlist_push_front(&parent->children, &sc->sib);
    mlist_push_front(&s->scopes, &sc->all);
    sc->eff_deadline = parent->eff_deadline;
    sc->cancelled = parent->cancelled;
    if (parent->cancelled)
        memcpy(sc->reason, parent->reason, sizeof sc->reason);
    if (timeout_ns != UINT64_MAX) {
        uint64_t due = sched_now_ns() + timeout_ns;
        timer_add(s, &sc->deadline, due, on_deadline);
        if (!sc->eff_deadline || due < sc->eff_deadline)
            sc->eff_deadline = due;
    }
    return sc;
}

static void scope_free(scope *sc)
{
    sched *s = sc->s;
    timer_del(s, &sc->deadline);
    scope_watches_end(sc, 0);
    if (sc->tag_free)
        sc->tag_free(sc->tag);
    if (sc->label_ref != LUA_NOREF)
        luaL_unref(s->L, LUA_REGISTRYINDEX, sc->label_ref);
    free(sc->label_text);
    /* orphan children (they are not live, or we would be live too) */
    mlist *n, *next;
    mlist_foreach_safe (n, next, &sc->children) {
        mlist_entry(n, scope, sib)->parent = NULL;
        mlist_remove(n);
    }
    scope *parent = sc->parent;
    if (parent)
        mlist_remove(&sc->sib);
    mlist_remove(&sc->all);
    free(sc);
    if (parent)
        scope_release(parent);
}

void scope_release(scope *sc)
{
    if (sc == &sc->s->root)
        return;
    if (--sc->refs == 0 && sc->nlive == 0)
        scope_free(sc);
}

void scope_cancel(scope *sc, const char *reason)
{
    sched *s = sc->s;
    if (sc->cancelled)
        return;
    sc->cancelled = 1;
    if (reason)
        snprintf(sc->reason, sizeof sc->reason, "%s", reason);
    else if (!sc->reason[0])
        snprintf(sc->reason, sizeof sc->reason, "cancelled");
    timer_del(s, &sc->deadline);
    sc->refs++;
    /* Killing runs __close handlers, which may spawn into this scope (those
     * are killed at birth) or end other members: restart from the head. */
    for (mlist *n = mlist_first(&sc->members); n;) {
        gor *g = mlist_entry(n, gor, sc_node);
        if (g != s->running) {
            sched_kill(s, g, sc->reason);
            n = mlist_first(&sc->members);
        } else {
            n = mlist_next(&sc->members, n);
        }
    }
    for (mlist *n = mlist_first(&sc->children); n;) {
        scope *c = mlist_entry(n, scope, sib);
        c->refs++;
        scope_cancel(c, sc->reason);
        mlist *next = mlist_next(&sc->children, &c->sib);
        scope_release(c);
        n = next;
    }
    /* The watchers last: a pool task's outcome (executor.c) then tells its
     * submitter that its goroutines' <close> handlers have run (a mutex
     * they unlocked is free when await returns), not that they are about
     * to. */
    scope_watches_end(sc, 1);
    scope_release(sc);
}

void scope_set_tag(scope *sc, void *tag, void (*tag_free)(void *tag))
{
    sc->tag = tag;
    sc->tag_free = tag_free;
}

void sched_set_tag_slot(sched *s, void **slot)
{
    s->tag_slot = slot;
}

uint64_t scope_deadline(const scope *sc)
{
    uint64_t best = 0;
    for (; sc; sc = sc->parent) {
        if (sc->cancelled)
            return sched_now_ns();
        if (theap_has(&sc->deadline) && (!best || sc->deadline.due < best))
            best = sc->deadline.due;
    }
    return best;
}

scope *sched_current_scope(sched *s, lua_State *L)
{
    gor *g = gor_of(L);
    return (g && g->sc) ? g->sc : &s->root;
}

static void scope_add(scope *sc, gor *g)
{
    g->sc = sc;
    mlist_push_front(&sc->members, &g->sc_node);
    scope_inc(sc);
}

static void scope_del(gor *g)
{
    scope *sc = g->sc;
    mlist_remove(&g->sc_node);
    g->sc = NULL;
    if (sc->lead == g) {
        sc->lead = NULL;
        /* timeout(): fn ended in time, its leftovers run on */
        if (!sc->cancelled && sched_now_ns() < sc->deadline.due)
            timer_del(sc->s, &sc->deadline);
    }
    scope_dec(sc);
}

/* ---- run queue and life cycle ---- */

static void on_idle(uv_idle_t *h);

static void idle_on(sched *s)
{
    if (!uv_is_active((uv_handle_t *)&s->idle))
        uv_idle_start(&s->idle, on_idle);
}

void sched_ready(sched *s, gor *g)
{
    gl_remove(g);
    timer_del(s, &g->timer);
    if (g->flags & GF_BLOCKING) {
        g->flags |= GF_WOKEN;
        uv_stop(s->loop); /* let the blocked thread's uv_run return now */
        return;
    }
    g->state = G_READY;
    gl_push(&s->runq, g);
    idle_on(s);
}

void sched_ready_all(sched *s, glist *wl)
{
    gor *g;
    while ((g = gl_first(wl)))
        sched_ready(s, g);
}

static void report_error(sched *s, gor *g);

/* Ends g's membership and keeps its record for reuse. */
static void gor_release(sched *s, gor *g, int reset)
{
    lua_State *co = g->L;
    lua_State *T = s->T;
    g->state = G_DEAD;
    s->nlive--;
    if (lua_gethook(co))
        lua_sethook(co, NULL, 0, 0);
    if (reset) {
        /* a killed goroutine's <close> handlers are its code: its scope's
         * tag applies while they run (sched_kill) */
        void *was_tag = s->tag_slot ? *s->tag_slot : NULL;
        if (reset == 2 && s->tag_slot && g->sc)
            *s->tag_slot = g->sc->tag;
        int st = lua_resetthread(co);
        if (s->tag_slot)
            *s->tag_slot = was_tag;
        if (reset == 2 && st != LUA_OK && st != LUA_YIELD) {
            /* killed: an error came from one of its <close> handlers */
            lua_xmove(co, T, 1);
            report_error(s, g);
        }
    }
    lua_settop(co, 0);
    if (g->handle) {
        /* drop the handle anchored in the record's second user value */
        g->handle = NULL;
        lua_rawgeti(T, LUA_REGISTRYINDEX, g->ref);
        lua_pushnil(T);
        lua_setiuservalue(T, -2, 2);
        lua_pop(T, 1);
    }
    if (g->flags & GF_HOOKERR) {
        /* an error raised from a hook leaves the thread unable to run hooks
         * again (Lua keeps allowhook off): never reuse it */
        *(gor **)lua_getextraspace(co) = NULL;
        g->magic = 0;
        if (g->sc)
            scope_del(g);
        luaL_unref(T, LUA_REGISTRYINDEX, g->ref);
        return;
    }
    g->free_next = s->free;
    s->free = g;
    s->nfree++;
    if (g->sc)
        scope_del(g);
}

/* Records of finished goroutines are reused (a thread is the costly part of
 * a goroutine); each garbage collection cycle returns half of those beyond
 * FREE_KEEP to the collector, so a burst of 100,000 goroutines does not
 * keep its memory forever. */
static void free_trim(sched *s)
{
    int keep = s->nfree / 2 > FREE_KEEP ? s->nfree / 2 : FREE_KEEP;
    while (s->nfree > keep) {
        gor *g = s->free;
        s->free = g->free_next;
        s->nfree--;
        *(gor **)lua_getextraspace(g->L) = NULL;
        g->magic = 0;
        luaL_unref(s->T, LUA_REGISTRYINDEX, g->ref);
    }
}

static int gc_tick(lua_State *L);

static void gc_tick_arm(lua_State *L, sched *s)
{
    sched **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = s;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, gc_tick);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_pop(L, 1); /* garbage at once: its __gc runs at the end of this cycle */
}

static int gc_tick(lua_State *L)
{
    sched *s = *(sched **)lua_touserdata(L, 1);
    if (s->closing)
        return 0;
    free_trim(s);
    gc_tick_arm(L, s);
    return 0;
}

void sched_report_error(sched *s, uint64_t gid, int label_ref)
{
    rtlog_value(s, RTLOG_ERROR, gid, label_ref);
}

int scope_has_label(const scope *sc)
{
    return sc->label_ref != LUA_NOREF || sc->label_text != NULL;
}

int scope_label_ref(scope *sc)
{
    if (sc->label_ref == LUA_NOREF && sc->label_text) {
        lua_State *T = sc->s->T;
        lua_pushstring(T, sc->label_text);
        sc->label_ref = luaL_ref(T, LUA_REGISTRYINDEX);
        free(sc->label_text);
        sc->label_text = NULL;
    }
    return sc->label_ref;
}

static void report_error(sched *s, gor *g)
{
    scope *sc = g->sc;
    while (sc && !scope_has_label(sc))
        sc = sc->parent;
    sched_report_error(s, g->id, sc ? scope_label_ref(sc) : LUA_NOREF);
}

lua_State *sched_scratch(sched *s)
{
    return s->T;
}

int sched_label_ref(sched *s, lua_State *L)
{
    for (scope *sc = sched_current_scope(s, L); sc; sc = sc->parent)
        if (scope_has_label(sc))
            return scope_label_ref(sc);
    return LUA_NOREF;
}

/* Pushes onto T the error of a goroutine that failed: a string message
 * gets the goroutine's traceback appended; other values are kept as is. */
static void take_error(sched *s, gor *g, int for_log)
{
    lua_State *T = s->T, *co = g->L;
    lua_xmove(co, T, 1);
    int base = lua_gettop(T); /* the error value */
    if (lua_type(T, base) == LUA_TSTRING) {
        luaL_traceback(T, co, lua_tostring(T, base), 0);
    } else if (for_log) {
        /* a log line needs text: other values as tostring() shows them */
        if (lua_isnil(T, base))
            lua_pushliteral(T, "nil (an error raised without a message)");
        else
            rtlog_tostring(T, base);
        luaL_traceback(T, co, lua_tostring(T, -1), 0);
    } else {
        return; /* await gets the value itself */
    }
    lua_replace(T, base);
    lua_settop(T, base);
}

static void finish(sched *s, gor *g, int status, int nres)
{
    if (status == LUA_OK) {
        if (g->handle)
            handle_resolve_values(g->handle, g->L, nres);
        gor_release(s, g, 0);
        return;
    }
    take_error(s, g, g->handle == NULL);
    if (g->handle)
        handle_resolve_error(g->handle, s->T);
    else
        report_error(s, g);
    gor_release(s, g, 1);
}

void sched_kill(sched *s, gor *g, const char *reason)
{
    if (g->state == G_DEAD || g == s->running)
        return;
    gl_remove(g);
    timer_del(s, &g->timer);
    if (g->parker) {
        sched_parker *p = g->parker;
        g->parker = NULL;
        p->cancel(p, g);
    }
    g->state = G_DEAD;
    if (g->handle) {
        lua_pushstring(s->T, reason ? reason : "cancelled");
        handle_resolve_error(g->handle, s->T);
    }
    /* Its pending <close> handlers run now, watched like a running
     * goroutine: one that is still running after CLOSE_GRACE_NS is stopped
     * by an error (they cannot yield), so a stuck handler cannot hang the
     * VM. */
    sched *prev = NULL;
    int entered = atomic_load_explicit(&s->busy_since, memory_order_relaxed) == 0;
    if (entered)
        prev = preempt_enter(s);
    lua_State *was_L = atomic_load_explicit(&s->running_L, memory_order_relaxed);
    uint64_t was_dl = atomic_load_explicit(&s->run_deadline, memory_order_relaxed);
    s->close_deadline = sched_now_ns() + CLOSE_GRACE_NS;
    atomic_store_explicit(&s->run_deadline, s->close_deadline, memory_order_relaxed);
    atomic_store_explicit(&s->running_L, g->L, memory_order_relaxed);
    /* the handlers are the goroutine's code: its scope's tag applies */
    void *was_tag = s->tag_slot ? *s->tag_slot : NULL;
    if (s->tag_slot)
        *s->tag_slot = g->sc->tag;
    coroutines_close_chain(s->T, g->L);
    if (s->tag_slot)
        *s->tag_slot = was_tag;
    gor_release(s, g, 2);
    atomic_store_explicit(&s->running_L, was_L, memory_order_relaxed);
    atomic_store_explicit(&s->run_deadline, was_dl, memory_order_relaxed);
    s->close_deadline = 0;
    if (entered)
        preempt_leave(s, prev);
}

static void resume(sched *s, gor *g)
{
    lua_State *co = g->L;
    int nargs = g->nargs, nres = 0;
    g->nargs = 0;
    g->state = G_RUNNING;
    s->running = g;
    atomic_store_explicit(&s->run_deadline, g->sc->eff_deadline, memory_order_relaxed);
    atomic_store_explicit(&s->running_L, co, memory_order_relaxed);
    if (s->tag_slot)
        *s->tag_slot = g->sc->tag;
    int status = lua_resume(co, NULL, nargs, &nres);
    if (s->tag_slot)
        *s->tag_slot = NULL;
    atomic_store_explicit(&s->running_L, NULL, memory_order_relaxed);
    s->running = NULL;
    if (status == LUA_YIELD) {
        lua_pop(co, nres);
        if (g->state == G_PARKED)
            return;
        /* preempted, or a plain coroutine.yield(): runs again next round */
        g->flags &= (uint8_t)~GF_PREEMPTED;
        g->state = G_READY;
        if (g->sc->cancelled) {
            sched_kill(s, g, g->sc->reason);
            return;
        }
        gl_push(&s->next_round, g);
        idle_on(s);
        return;
    }
    finish(s, g, status, nres);
}

void sched_drain(sched *s)
{
    s->in_cb++;
    sched *prev = preempt_enter(s);
    if (!glist_empty(&s->next_round))
        gl_append(&s->runq, &s->next_round);
    gor *g;
    for (int round = 0;; round++) {
        while (!atomic_load_explicit(&s->preempt, memory_order_relaxed) && (g = gl_pop(&s->runq)))
            resume(s, g);
        /* messages that came meanwhile (tasks for a pool VM, outcomes for
         * their submitter) run here rather than after a trip through the
         * loop's poll; a few rounds, then timers and I/O get their turn */
        if (round == 8 || atomic_load_explicit(&s->preempt, memory_order_relaxed) ||
            !glist_empty(&s->next_round) || !s->port || !port_run(s->port))
            break;
    }
    preempt_leave(s, prev);
    if (glist_empty(&s->runq) && glist_empty(&s->next_round))
        uv_idle_stop(&s->idle);
    s->in_cb--;
    sched_stop_if_done(s);
}

/* Inside sched_run, ends the loop once no goroutine and no hold is left,
 * even when handles (a fleet client's connections) are still open. */
void sched_stop_if_done(sched *s)
{
    if (s->in_run && s->nlive == 0 && s->holds == 0)
        uv_stop(s->loop);
}

static void on_idle(uv_idle_t *h)
{
    sched_drain(h->data);
}

gor *sched_spawn(sched *s, lua_State *L, int nargs, scope *sc, ghandle *h)
{
    gor *g = s->free;
    if (g) {
        s->free = g->free_next;
        s->nfree--;
    } else {
        luaL_checkstack(L, 3, "spawn");
        g = lua_newuserdatauv(L, sizeof *g, 2);
        memset(g, 0, sizeof *g);
        g->ref = LUA_NOREF;
        lua_State *co = lua_newthread(L);
        lua_setiuservalue(L, -2, 1);
        g->L = co;
        g->s = s;
        g->magic = GOR_MAGIC;
        *(gor **)lua_getextraspace(co) = g;
        g->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    g->free_next = NULL;
    /* (before g gets an id or anchors h: a record given back here holds
     * nothing) */
    if (!lua_checkstack(g->L, nargs + 1 + LUA_MINSTACK)) {
        /* give the record back before raising */
        g->free_next = s->free;
        s->free = g;
        s->nfree++;
        luaL_error(L, "too many arguments to start a goroutine (%d)", nargs);
    }
    g->id = ++s->next_id;
    g->flags = 0;
    g->parker = NULL;
    if (h) {
        /* the handle sits below the function: anchor it in the record */
        lua_rawgeti(L, LUA_REGISTRYINDEX, g->ref);
        lua_pushvalue(L, -nargs - 3);
        lua_setiuservalue(L, -2, 2);
        lua_pop(L, 1);
        lua_remove(L, -nargs - 2);
    }
    g->handle = h;
    lua_xmove(L, g->L, nargs + 1);
    g->nargs = nargs;
    if (!sc)
        sc = sched_current_scope(s, L);
    s->nlive++;
    scope_add(sc, g);
    g->state = G_READY;
    gl_push(&s->runq, g);
    idle_on(s);
    if (sc->cancelled)
        sched_kill(s, g, sc->reason);
    return g;
}

void sched_unspawn(sched *s, scope *sc, uint64_t after_id)
{
    /* scope_add puts new members first: the newest are at the head */
    gor *g;
    while ((g = mlist_first_entry(&sc->members, gor, sc_node)) && g->id > after_id &&
           g->state == G_READY) {
        sched_kill(s, g, NULL); /* never ran: nothing to close; now first on s->free */
        if (s->free == g) {
            /* drop the record rather than keep it for reuse */
            s->free = g->free_next;
            s->nfree--;
            *(gor **)lua_getextraspace(g->L) = NULL;
            g->magic = 0;
            luaL_unref(s->T, LUA_REGISTRYINDEX, g->ref);
        }
    }
}

static void block_parked(lua_State *L, sched *s, glist *wl, uint64_t due, sched_parker *p);

int sched_wait(lua_State *L, sched *s, glist *wl, uint64_t due, lua_KContext ctx, lua_KFunction k)
{
    gor *g = gor_of(L);
    if (g && g->state == G_RUNNING && g->s == s) {
        if (!lua_isyieldable(L))
            return luaL_error(L, "cannot wait here: a goroutine cannot yield across this C call "
                                 "(metamethod, iterator or callback of a C function)");
        g->state = G_PARKED;
        if (wl)
            gl_push(wl, g);
        if (due)
            timer_add(s, &g->timer, due, on_sleep_due);
        return lua_yieldk(L, 0, ctx, k);
    }
    sched_block(L, s, wl, due);
    return k(L, LUA_YIELD, ctx);
}

int sched_wait_parker(lua_State *L, sched *s, sched_parker *p, uint64_t due, lua_KContext ctx,
                      lua_KFunction k)
{
    gor *g = gor_of(L);
    if (g && g->state == G_RUNNING && g->s == s) {
        if (!lua_isyieldable(L)) {
            p->cancel(p, NULL);
            return luaL_error(L, "cannot wait here: a goroutine cannot yield across this C call "
                                 "(metamethod, iterator or callback of a C function)");
        }
        g->state = G_PARKED;
        g->parker = p;
        p->park(p, g);
        if (due)
            timer_add(s, &g->timer, due, on_sleep_due);
        return lua_yieldk(L, 0, ctx, k);
    }
    block_parked(L, s, NULL, due, p);
    return k(L, LUA_YIELD, ctx);
}

void sched_block(lua_State *L, sched *s, glist *wl, uint64_t due)
{
    block_parked(L, s, wl, due, NULL);
}

static void block_parked(lua_State *L, sched *s, glist *wl, uint64_t due, sched_parker *p)
{
    if (s->in_cb) {
        if (p)
            p->cancel(p, NULL);
        luaL_error(L, "cannot wait in a plain coroutine (coroutine.wrap or coroutine.create) "
                      "or a __close handler inside a goroutine: use goroutine.spawn");
    }
    /* Not a goroutine (the main chunk of lua5.4, a plain coroutine): run the
     * loop here until this wait is over. */
    gor self;
    memset(&self, 0, sizeof self);
    self.flags = GF_BLOCKING;
    self.state = G_PARKED;
    self.L = L;
    self.s = s;
    if (wl)
        gl_push(wl, &self);
    if (p) {
        self.parker = p;
        p->park(p, &self);
    }
    if (due)
        timer_add(s, &self.timer, due, on_sleep_due);
    /* ready goroutines first, as when a goroutine waits: uv_run would run
     * due timers before them (timeout(0, fn) would cancel fn before it
     * started in the main chunk only) */
    if (!glist_empty(&s->runq))
        sched_drain(s);
    while (!(self.flags & GF_WOKEN)) {
        int alive = uv_run(s->loop, UV_RUN_ONCE);
        if (!alive && !(self.flags & GF_WOKEN)) {
            gl_remove(&self);
            timer_del(s, &self.timer);
            if (self.parker) {
                self.parker = NULL;
                p->cancel(p, &self);
            }
            luaL_error(L, "deadlock: this wait can never end (%d other goroutine%s, all blocked)",
                       (int)s->nlive, s->nlive == 1 ? "" : "s");
        }
    }
}

int sched_stuck(const sched *s, int own_holds, unsigned base_handles)
{
    return s->nlive > 0 && s->holds <= own_holds && s->remote_waits == 0 && glist_empty(&s->runq) &&
           glist_empty(&s->next_round) && theap_min(&s->timers) == NULL &&
           s->loop->active_handles <= base_handles && s->loop->active_reqs.count == 0;
}

size_t sched_run(sched *s)
{
    /* holds: pool tasks this VM submitted are still running elsewhere;
     * their outcomes are not lost by ending early */
    s->in_run = 1;
    while ((s->nlive > 0 || s->holds > 0) && uv_run(s->loop, UV_RUN_DEFAULT) != 0)
        ;
    s->in_run = 0;
    return s->nlive;
}

static void dump_members(FILE *f, lua_State *T, scope *sc)
{
    mlist *n;
    mlist_foreach (n, &sc->members) {
        gor *g = mlist_entry(n, gor, sc_node);
        luaL_traceback(T, g->L, NULL, 0);
        fprintf(f, "goroutine %llu [blocked]:\n%s\n", (unsigned long long)g->id,
                lua_tostring(T, -1));
        lua_pop(T, 1);
    }
}

void sched_dump_parked(sched *s, void *file)
{
    FILE *f = file;
    lua_State *T = s->T;
    lua_rawgeti(T, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS); /* keep T's stack non-empty */
    dump_members(f, T, &s->root);
    mlist *n;
    mlist_foreach (n, &s->scopes)
        dump_members(f, T, mlist_entry(n, scope, all));
    lua_pop(T, 1);
}

/* ---- creation and teardown ---- */

static void on_closed(uv_handle_t *h)
{
    (void)h;
}

/* ---- per-VM slots of the layers above ---- */

void *sched_ext_get(sched *s, const void *key)
{
    for (sched_ext *e = s->exts; e; e = e->next)
        if (e->key == key)
            return e->data;
    return NULL;
}

int sched_ext_set(sched *s, const void *key, void *data, void (*on_free)(sched *s, void *data))
{
    for (sched_ext *e = s->exts; e; e = e->next) {
        if (e->key == key) {
            e->data = data;
            e->on_free = on_free;
            return 0;
        }
    }
    sched_ext *e = malloc(sizeof *e);
    if (!e)
        return -1;
    e->key = key;
    e->data = data;
    e->on_free = on_free;
    e->next = s->exts; /* the latest first: freed before what it may use */
    s->exts = e;
    return 0;
}

/* ---- hold guards ---- */

struct sched_guard {
    sched *s;
    int holding;
};

static int guard_close(lua_State *L)
{
    sched_guard_release(lua_touserdata(L, 1));
    return 0;
}

sched_guard *sched_guard_push(lua_State *L, sched *s)
{
    sched_guard *g = lua_newuserdatauv(L, sizeof *g, 0);
    g->s = s;
    g->holding = 0;
    if (luaL_newmetatable(L, "goroutine.hold")) {
        lua_pushcfunction(L, guard_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, guard_close);
        lua_setfield(L, -2, "__close");
    }
    lua_setmetatable(L, -2);
    lua_toclose(L, -1);
    sched_hold(s);
    g->holding = 1;
    return g;
}

void sched_guard_release(sched_guard *g)
{
    if (g->holding && !g->s->closing) {
        g->holding = 0;
        sched_unhold(g->s);
    }
}

static void sched_destroy(sched *s)
{
    s->closing = 1;
    while (s->exts) {
        sched_ext *e = s->exts;
        s->exts = e->next;
        if (e->on_free)
            e->on_free(s, e->data);
        free(e);
    }
    theap_free(&s->timers); /* before the scopes: it clears their entries */
    free(s->spare_wait);
    scope *sc;
    while ((sc = mlist_first_entry(&s->scopes, scope, all))) {
        mlist_remove(&sc->all);
        if (sc->tag_free)
            sc->tag_free(sc->tag);
        free(sc);
    }
    port_close(s->port);
    uv_close((uv_handle_t *)&s->idle, on_closed);
    uv_close((uv_handle_t *)&s->timer, on_closed);
    while (uv_run(s->loop, UV_RUN_NOWAIT))
        ;
    if (s->own_loop) {
        uv_loop_close(s->loop);
        free(s->loop);
    }
    preempt_thread_detach();
    free(s);
}

static int sched_gc(lua_State *L)
{
    sched **box = lua_touserdata(L, 1);
    if (*box) {
        sched_destroy(*box);
        *box = NULL;
    }
    return 0;
}

sched *sched_get(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &SCHED_KEY) == LUA_TUSERDATA) {
        sched *s = *(sched **)lua_touserdata(L, -1);
        lua_pop(L, 1);
        if (s)
            return s;
        luaL_error(L, "goroutine: the scheduler of this state is closed");
    }
    lua_pop(L, 1);
    sched **box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = NULL;
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, sched_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    sched *s = calloc(1, sizeof *s);
    uv_loop_t *loop = malloc(sizeof *loop);
    if (!s || !loop || uv_loop_init(loop) != 0) {
        free(s);
        free(loop);
        luaL_error(L, "goroutine: cannot create the event loop");
    }
    *box = s;
    lua_rawsetp(L, LUA_REGISTRYINDEX, &SCHED_KEY);
    s->loop = loop;
    s->own_loop = 1;
    loop->data = s;
    uv_idle_init(loop, &s->idle);
    s->idle.data = s;
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    theap_init(&s->timers);
    glist_init(&s->runq);
    glist_init(&s->next_round);
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    s->L = lua_tothread(L, -1);
    lua_pop(L, 1);
    /* lua_newstate leaves the main thread's extra space uninitialised and
     * new threads copy it: make "not a goroutine" explicit */
    *(gor **)lua_getextraspace(s->L) = NULL;
    s->T = lua_newthread(L);
    s->T_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    s->errh_ref = LUA_NOREF;
    s->root.s = s;
    s->root.refs = 1;
    s->root.label_ref = LUA_NOREF;
    glist_init(&s->root.waiters);
    mlist_init(&s->root.children);
    mlist_init(&s->root.members);
    mlist_init(&s->root.watches);
    mlist_init(&s->scopes);
    s->port = port_open(s);
    if (!s->port)
        luaL_error(L, "goroutine: cannot create the scheduler's port");
    preempt_thread_attach();
    gc_tick_arm(L, s);
    return s;
}
