/* iomods.h: the I/O modules of a VM (`http`, `exec`) as preloads and
 * globals, for the VMs that run task files and pool tasks. */
#ifndef MUTIRAO_IOMODS_H
#define MUTIRAO_IOMODS_H

#include <lua.h>

/* Adds http and exec to package.preload and sets the globals `http` and
 * `exec` (their per-VM state is created on first use). May raise. */
void iomods_open(lua_State *L);

#endif
