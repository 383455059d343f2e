/* travel.c: (process nonce, core address) names for travelling objects. */
#include "travel.h"

#include "codec.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <uv.h>

static atomic_ullong process_nonce;

static unsigned long long nonce(void)
{
    unsigned long long n = atomic_load(&process_nonce);
    if (n == 0) {
        unsigned long long zero = 0;
        n = ((unsigned long long)(uintptr_t)&process_nonce ^
             ((unsigned long long)uv_hrtime() * 0x9e3779b97f4a7c15ull)) |
            1;
        if (!atomic_compare_exchange_strong(&process_nonce, &zero, n))
            n = zero; /* another thread won */
    }
    return n;
}

/* ---- the table of travelling cores: linear probing on the address ---- */

typedef struct tentry {
    const void *core; /* NULL: empty */
    uint64_t id;
} tentry;

static pthread_mutex_t tmu = PTHREAD_MUTEX_INITIALIZER;
static tentry *table; /* (tmu) */
static size_t tcap, tcount;
static uint64_t next_id; /* (tmu) */

static size_t slot_of(const void *core, size_t cap)
{
    uint64_t h = (uint64_t)(uintptr_t)core * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 17) & (cap - 1);
}

/* (tmu) The entry of core, or NULL. */
static tentry *find(const void *core)
{
    if (!tcap)
        return NULL;
    for (size_t i = slot_of(core, tcap);; i = (i + 1) & (tcap - 1)) {
        if (!table[i].core)
            return NULL;
        if (table[i].core == core)
            return &table[i];
    }
}

static void put(tentry *t, size_t cap, tentry e)
{
    size_t i = slot_of(e.core, cap);
    while (t[i].core)
        i = (i + 1) & (cap - 1);
    t[i] = e;
}

/* (tmu) Makes room for one more entry: 0, or -1 when out of memory. */
static int reserve(void)
{
    if (2 * (tcount + 1) <= tcap)
        return 0;
    size_t cap = tcap ? 2 * tcap : 64;
    tentry *t = calloc(cap, sizeof *t);
    if (!t)
        return -1;
    for (size_t i = 0; i < tcap; i++)
        if (table[i].core)
            put(t, cap, table[i]);
    free(table);
    table = t;
    tcap = cap;
    return 0;
}

/* (tmu) Removes e, moving back the entries of its run (no tombstones). */
static void erase(tentry *e)
{
    size_t i = (size_t)(e - table);
    table[i].core = NULL;
    tcount--;
    for (size_t j = (i + 1) & (tcap - 1); table[j].core; j = (j + 1) & (tcap - 1)) {
        tentry moved = table[j];
        table[j].core = NULL;
        put(table, tcap, moved);
    }
}

void travel_name(lua_State *L, const void *core, travel_anchor *a)
{
    if (!a->id) {
        pthread_mutex_lock(&tmu);
        int rc = reserve();
        if (rc == 0) {
            a->id = ++next_id;
            put(table, tcap, (tentry){core, a->id});
            tcount++;
        }
        pthread_mutex_unlock(&tmu);
        if (rc != 0)
            luaL_error(L, "not enough memory");
    }
    unsigned long long n = nonce();
    char buf[sizeof n + sizeof core + sizeof a->id];
    memcpy(buf, &n, sizeof n);
    memcpy(buf + sizeof n, &core, sizeof core);
    memcpy(buf + sizeof n + sizeof core, &a->id, sizeof a->id);
    lua_pushlstring(L, buf, sizeof buf);
}

void *travel_take(lua_State *L, const char *data, size_t len, const char *what,
                  void (*ref)(void *core))
{
    unsigned long long n;
    void *core;
    uint64_t id;
    if (len != sizeof n + sizeof core + sizeof id)
        return NULL;
    memcpy(&n, data, sizeof n);
    if (n != nonce())
        luaL_error(L, "%s cannot travel to another process on this backend", what);
    memcpy(&core, data + sizeof n, sizeof core);
    memcpy(&id, data + sizeof n + sizeof core, sizeof id);
    pthread_mutex_lock(&tmu);
    tentry *e = find(core);
    int alive = e && e->id == id;
    if (alive)
        ref(core);
    pthread_mutex_unlock(&tmu);
    if (!alive)
        luaL_error(L,
                   "%s no longer exists (every VM that held it dropped it before this copy "
                   "arrived)",
                   what);
    return core;
}

/* A core that travelled (named id) has a count of 0 now: 1 when the caller
 * is to free it (it left the table), 0 when a decode took it meanwhile (its
 * count is no longer 0) or it is no longer in the table. */
static int drop(const void *core, uint64_t id, atomic_int *refs)
{
    pthread_mutex_lock(&tmu);
    tentry *e = find(core);
    int mine = e && e->id == id && atomic_load(refs) == 0;
    if (mine)
        erase(e);
    pthread_mutex_unlock(&tmu);
    return mine;
}

int travel_unref(const void *core, const travel_anchor *a, atomic_int *refs)
{
    /* The id is read before the count falls (a plain read, then the default
     * seq_cst decrement): once our decrement is not the last, another holder
     * may free the core at any time, and once it is the last, a decode may
     * take the core from the table and drop it again, freeing it; either way
     * the core may be gone after the decrement. An id of 0 then means the
     * core never travelled: no other VM can reach it, free it at once. */
    uint64_t id = a->id;
    if (atomic_fetch_sub(refs, 1) != 1)
        return 0;
    return !id || drop(core, id, refs);
}

void travel_new_copies(lua_State *L, const void *key)
{
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "v");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, key);
}

static int refuse(lua_State *L, const char *what)
{
    return luaL_error(
        L, "%s cannot travel to another VM or process (it belongs to the VM that made it)", what);
}

static int refuse_encode(lua_State *L, int idx, void *ud, void *call)
{
    (void)idx;
    (void)call;
    return refuse(L, ud);
}

static int refuse_decode(lua_State *L, const char *data, size_t len, void *ud, void *call)
{
    (void)data;
    (void)len;
    (void)call;
    return refuse(L, ud);
}

void travel_refuse(lua_State *L, const char *tname, const char *what)
{
    codec_register_udata(L, tname, refuse_encode, refuse_decode, (void *)what);
}

#define GUARD_TNAME "goroutine.LocalOnly"

typedef struct guard {
    char what[32];
} guard;

static int guard_encode(lua_State *L, int idx, void *ud, void *call)
{
    (void)ud;
    (void)call;
    return refuse(L, ((guard *)lua_touserdata(L, idx))->what);
}

static int guard_decode(lua_State *L, const char *data, size_t len, void *ud, void *call)
{
    (void)data;
    (void)len;
    (void)ud;
    (void)call;
    return refuse(L, "a local object");
}

void travel_push_guard(lua_State *L, const char *what)
{
    guard *g = lua_newuserdatauv(L, sizeof *g, 0);
    snprintf(g->what, sizeof g->what, "%s", what);
    if (luaL_newmetatable(L, GUARD_TNAME))
        codec_register_udata(L, GUARD_TNAME, guard_encode, guard_decode, NULL);
    lua_setmetatable(L, -2);
}
