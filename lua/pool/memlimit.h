/* memlimit.h: per-task memory limits for the pool VMs.
 *
 * A pool VM's allocator (procs.c opens its lua_State with memheap_newstate)
 * keeps a 16-byte header before every block naming the account that owns
 * it. Several tasks share a VM (they are goroutines of its threads), so
 * each task gets an account of its own (memacct_new), attached to the
 * task's scope as its tag: while one of the task's goroutines is being
 * resumed, the scheduler puts the account in the heap's slot
 * (memheap_slot, sched_set_tag_slot) and the allocator charges it. A block
 * allocated, or grown, past the account's limit is refused, so Lua raises
 * "not enough memory" in that task (after an emergency collection). A free
 * or a shrink credits the block's owner and never fails; outside a resume
 * the slot is NULL and nothing is limited. An account outlives its task
 * while blocks it owns live on (interned strings, cached functions): it is
 * freed with the last of them. Everything runs on the VM's thread. */
#ifndef MUTIRAO_MEMLIMIT_H
#define MUTIRAO_MEMLIMIT_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

typedef struct memheap memheap;
typedef struct memacct memacct;

/* A new state as luaL_newstate makes it (same panic function, warnings off
 * until "@on"), with the accounting allocator. *heap receives the
 * allocator's state: free it with memheap_free after lua_close. NULL when
 * out of memory. */
lua_State *memheap_newstate(memheap **heap);
void memheap_free(memheap *h);
/* Where the scheduler puts the running goroutine's account. */
void **memheap_slot(memheap *h);

/* A new account of limit bytes (>= 1) for a task on L's VM. NULL when L's
 * allocator is not a memheap or out of memory. */
memacct *memacct_new(lua_State *L, size_t limit);
/* The task is over (its scope's tag_free): the account is freed once no
 * block it owns is left. */
void memacct_close(void *acct);
/* Makes acct (NULL: none) the account charged on L's VM; returns the one
 * that was. For work done for a task outside its goroutines (decoding its
 * arguments), or done for it that must not fail (encoding its outcome). */
memacct *memacct_switch(lua_State *L, memacct *acct);
/* The account charged now (the running task's), NULL when none. */
memacct *memacct_current(lua_State *L);
/* A word the executor keeps with a task's account, read back by code the
 * task calls (its sandbox narrowing, sandbox.h): the account is the one
 * thing that follows every goroutine of a task. 0 until set. */
void memacct_set_note(memacct *acct, uint64_t note);
uint64_t memacct_note(const memacct *acct);
/* A registry reference the executor keeps with a task's account (the task
 * sandbox's view of the VM, sandbox.h), released when the account is
 * closed; memacct_ctx gives it back (LUA_NOREF when none). */
void memacct_set_ctx(memacct *acct, lua_State *L, int ref);
int memacct_ctx(const memacct *acct);
/* The account that owns a block of L's allocator (a table's
 * lua_topointer), NULL when none or not a memheap. */
memacct *memacct_owner(lua_State *L, const void *block);
/* Bytes charged to acct now. */
size_t memacct_used(const memacct *acct);

#endif
