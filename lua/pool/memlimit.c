/* memlimit.c: the pool VMs' accounting allocator (see memlimit.h). */
#include "memlimit.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

struct memacct {
    size_t used;   /* bytes of the blocks it owns, as Lua sized them */
    size_t limit;  /* used may not grow past it */
    int open;      /* its task may still allocate (memacct_close not called) */
    uint64_t note; /* the executor's word about the task (memacct_set_note) */
    int ctx;       /* a registry reference (memacct_set_ctx), or LUA_NOREF */
    lua_State *vm; /* the VM's main thread, for ctx */
};

struct memheap {
    void *cur; /* the memacct being charged, or NULL (the scheduler's slot) */
    int warn_on, warn_cont;
};

/* Before every block: its owner. 16 bytes keep the block as aligned as
 * malloc's (Lua needs 8). */
typedef struct hdr {
    alignas(16) memacct *owner;
} hdr;
_Static_assert(sizeof(hdr) == 16, "block header of 16 bytes");

static void acct_free_if_done(memacct *a)
{
    if (!a->open && a->used == 0)
        free(a);
}

static void credit(memacct *a, size_t n)
{
    if (!a)
        return;
    a->used -= n;
    acct_free_if_done(a);
}

static void *heap_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    memheap *h = ud;
    memacct *cur = h->cur;
    if (nsize == 0) {
        if (ptr) {
            hdr *b = (hdr *)ptr - 1;
            memacct *owner = b->owner;
            free(b);
            credit(owner, osize);
        }
        return NULL;
    }
    if (!ptr) { /* a new block (osize tells its type) */
        if (cur && (nsize > cur->limit || cur->used > cur->limit - nsize))
            return NULL;
        hdr *b = malloc(sizeof(hdr) + nsize);
        if (!b)
            return NULL;
        b->owner = cur;
        if (cur)
            cur->used += nsize;
        return b + 1;
    }
    hdr *b = (hdr *)ptr - 1;
    memacct *owner = b->owner;
    if (nsize <= osize) {
        /* shrinking never fails (Lua relies on it): keep the block if
         * realloc cannot move it */
        hdr *nb = realloc(b, sizeof(hdr) + nsize);
        if (!nb)
            nb = b;
        if (owner)
            owner->used -= osize - nsize; /* still owns nsize > 0 */
        return nb + 1;
    }
    /* growing: the whole block is charged to the running task, if any */
    if (cur) {
        size_t have = owner == cur ? osize : 0;
        if (nsize - have > cur->limit || cur->used > cur->limit - (nsize - have))
            return NULL;
    }
    hdr *nb = realloc(b, sizeof(hdr) + nsize);
    if (!nb)
        return NULL;
    nb->owner = cur;
    if (cur)
        cur->used += nsize;
    credit(owner, osize);
    return nb + 1;
}

/* lauxlib's panic: the message, then abort (by returning). */
static int heap_panic(lua_State *L)
{
    const char *msg =
        lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "error object is not a string";
    fprintf(stderr, "PANIC: unprotected error in call to Lua API (%s)\n", msg);
    fflush(stderr);
    return 0;
}

/* lauxlib's warnings: off until "@on", to stderr. */
static void heap_warn(void *ud, const char *msg, int tocont)
{
    memheap *h = ud;
    if (!h->warn_cont && msg[0] == '@') {
        if (strcmp(msg, "@on") == 0)
            h->warn_on = 1;
        else if (strcmp(msg, "@off") == 0)
            h->warn_on = 0;
        return;
    }
    if (h->warn_on) {
        if (!h->warn_cont)
            fputs("Lua warning: ", stderr);
        fputs(msg, stderr);
        if (!tocont)
            fputs("\n", stderr);
        fflush(stderr);
    }
    h->warn_cont = tocont;
}

lua_State *memheap_newstate(memheap **heap)
{
    memheap *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    lua_State *L = lua_newstate(heap_alloc, h);
    if (!L) {
        free(h);
        return NULL;
    }
    lua_atpanic(L, heap_panic);
    lua_setwarnf(L, heap_warn, h);
    *heap = h;
    return L;
}

void memheap_free(memheap *h)
{
    free(h);
}

void **memheap_slot(memheap *h)
{
    return &h->cur;
}

static memheap *heap_of(lua_State *L)
{
    void *ud = NULL;
    return lua_getallocf(L, &ud) == heap_alloc ? ud : NULL;
}

memacct *memacct_new(lua_State *L, size_t limit)
{
    if (!heap_of(L) || limit == 0)
        return NULL;
    memacct *a = malloc(sizeof *a);
    if (a) {
        a->used = 0;
        a->limit = limit;
        a->open = 1;
        a->note = 0;
        a->ctx = LUA_NOREF;
        a->vm = NULL;
    }
    return a;
}

void memacct_close(void *acct)
{
    memacct *a = acct;
    if (a) {
        if (a->ctx != LUA_NOREF && a->vm)
            luaL_unref(a->vm, LUA_REGISTRYINDEX, a->ctx);
        a->ctx = LUA_NOREF;
        a->open = 0;
        acct_free_if_done(a);
    }
}

memacct *memacct_switch(lua_State *L, memacct *acct)
{
    memheap *h = heap_of(L);
    if (!h)
        return NULL;
    memacct *was = h->cur;
    h->cur = acct;
    return was;
}

memacct *memacct_current(lua_State *L)
{
    memheap *h = heap_of(L);
    return h ? h->cur : NULL;
}

void memacct_set_note(memacct *acct, uint64_t note)
{
    acct->note = note;
}

void memacct_set_ctx(memacct *acct, lua_State *L, int ref)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    acct->vm = lua_tothread(L, -1);
    lua_pop(L, 1);
    acct->ctx = ref;
}

int memacct_ctx(const memacct *acct)
{
    return acct ? acct->ctx : LUA_NOREF;
}

memacct *memacct_owner(lua_State *L, const void *block)
{
    if (!block || !heap_of(L))
        return NULL;
    return ((const hdr *)block - 1)->owner;
}

uint64_t memacct_note(const memacct *acct)
{
    return acct ? acct->note : 0;
}

size_t memacct_used(const memacct *acct)
{
    return acct ? acct->used : 0;
}
