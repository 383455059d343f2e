/* progress.c: the terminal facts `mutirao run`'s progress lines need
 * (lua/runner/progress.lua), as the module `mutirao.term`:
 *   stderr_tty()  true when stderr is a terminal and TERM is not "dumb"
 *   columns()     stderr's width in columns (80 when it cannot be read) */
#include "progress.h"

#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <lauxlib.h>

static int l_stderr_tty(lua_State *L)
{
    const char *term = getenv("TERM");
    lua_pushboolean(L, isatty(STDERR_FILENO) && !(term && !strcmp(term, "dumb")));
    return 1;
}

static int l_columns(lua_State *L)
{
    struct winsize ws;
    int cols = 80;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        cols = ws.ws_col;
    lua_pushinteger(L, cols);
    return 1;
}

int luaopen_mutirao_term(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        {"stderr_tty", l_stderr_tty}, {"columns", l_columns}, {NULL, NULL}};
    luaL_newlib(L, funcs);
    return 1;
}
