/* travel.h: how objects of one VM (WaitGroups, async handles) travel to the
 * other VMs of this process: as the address of a shared core plus a nonce
 * that only this process knows, so bytes from elsewhere are refused. */
#ifndef MUTIRAO_TRAVEL_H
#define MUTIRAO_TRAVEL_H

#include <stddef.h>

#include <lua.h>

/* Pushes the opaque bytes that name core in this process. */
void travel_pack(lua_State *L, const void *core);
/* The core named by data, or NULL when the bytes are malformed; raises
 * "<what> cannot travel to another process" for another process's bytes. */
void *travel_unpack(lua_State *L, const char *data, size_t len, const char *what);
/* Creates (or replaces) a registry table under key whose values are weak:
 * core address -> the object of this VM that stands for it. */
void travel_new_copies(lua_State *L, const void *key);

#endif
