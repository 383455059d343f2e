/* travel.h: how objects of one VM (WaitGroups, async handles) travel to the
 * other VMs of this process: as the address of a shared core plus a nonce
 * that only this process knows, so bytes from elsewhere are refused. */
#ifndef MUTIRAO_TRAVEL_H
#define MUTIRAO_TRAVEL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <lua.h>

/*
** Where the values of one encode or decode travel, passed as the codec
** call's `call` (codec_limits.call). NULL: another VM of this process (the
** default hooks below). A layer that sends values out of the process (the
** fleet) passes hooks of its own; a NULL hook refuses that kind of object.
** Each returns like a codec userdata hook (push one value, 0; or < 0 /
** raise).
*/
typedef struct travel_ctx travel_ctx;
struct travel_ctx {
    int (*wg_encode)(travel_ctx *tc, lua_State *L, int idx);
    int (*wg_decode)(travel_ctx *tc, lua_State *L, const char *data, size_t len);
    int (*handle_encode)(travel_ctx *tc, lua_State *L, int idx);
    int (*handle_decode)(travel_ctx *tc, lua_State *L, const char *data, size_t len);
    /* Channels, semaphores and AtomicInts that leave the process: the layer
     * gives the object at idx a form of its own (the fleet: Redis keys) and
     * pushes its bytes. kind: "channel", "semaphore" or "atomic_int"; a, b:
     * its state (a channel: cap, closed; a semaphore: capacity, available;
     * an AtomicInt: value, 0). The caller checked that nothing of this VM
     * waits on it and no other VM shares it. */
    int (*obj_encode)(travel_ctx *tc, lua_State *L, int idx, const char *kind, lua_Integer a,
                      lua_Integer b);
    int (*obj_decode)(travel_ctx *tc, lua_State *L, const char *data, size_t len);
    const char *where; /* names the destination in errors: "a fleet pool" */
};

/*
** Names of shared cores. A core that travels is named by (process nonce,
** address, id): the first time it travels (on its home thread) it is
** entered in the process's table of travelling cores with a fresh id, and
** a decode finds it there, under the table's lock, only while it is alive:
** bytes that outlived their core (a result awaited again after every VM
** dropped the object) are refused, not read. A name holds no reference: a
** decode takes its own.
*/
typedef struct travel_anchor {
    uint64_t id; /* 0 until the core first travels */
} travel_anchor;

/* Pushes the bytes that name core (entering it in the table the first
 * time). Raises when out of memory. */
void travel_name(lua_State *L, const void *core, travel_anchor *a);
/* The core named by data, with ref(core) called under the table's lock;
 * NULL when the bytes are malformed; raises "<what> cannot travel to
 * another process ..." for another process's bytes and "<what> no longer
 * exists ..." for a core that was freed. */
void *travel_take(lua_State *L, const char *data, size_t len, const char *what,
                  void (*ref)(void *core));
/* Drops one reference on a core that may travel (refs: its count, a: its
 * anchor): 1 when that was the last and the caller is to free the core now
 * (it never travelled, or it left the table); 0 when others hold it, or a
 * decode took it meanwhile. Any thread. */
int travel_unref(const void *core, const travel_anchor *a, atomic_int *refs);

/* Registers codec hooks that refuse a userdata of type tname wherever it
 * would travel: "<what> cannot travel to another VM or process (it belongs
 * to the VM that made it)". what: a static string ("a mutex"). */
void travel_refuse(lua_State *L, const char *tname, const char *what);
/* Pushes a guard, a userdata refused the same way, naming what (copied, at
 * most 31 bytes): an object written in Lua (a context) keeps one in a field
 * so that the codec refuses it instead of sending a disconnected copy. */
void travel_push_guard(lua_State *L, const char *what);

/* Creates (or replaces) a registry table under key whose values are weak:
 * core address -> the object of this VM that stands for it. */
void travel_new_copies(lua_State *L, const void *key);

#endif
