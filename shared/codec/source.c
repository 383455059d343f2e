/*
** source.c: functions that travel as source, for receivers that must not
** load bytecode from a message (fleet workers: crafted bytecode escapes
** any Lua sandbox). The sender names the chunk the function was compiled
** from (its chunk name and text) and the function's place in it (the path
** of nested-function indices from the main function); the receiver
** compiles the text in text mode, dumps it and cuts the function out. The
** cut is byte for byte what lua_dump of the sender's function gives (same
** Lua, same text, same chunk name), so everything after that (factories,
** upvalues, the load cache) is the bytecode path, fed bytes this VM's own
** compiler wrote.
**
** Per-VM tables (the state table's slots):
** - SRCDESC: dump of a function (normal form) -> {chunkname, text, path}:
**   how to send it. Filled when a chunk is indexed (every function in it)
**   and by the decoder.
** - SOURCES: chunk name -> {text = true}: texts received; NOTED: the same
**   for codec_note_source's (at most CODEC__SOURCES_MAX, kept apart). Tried
**   when a dump is not in SRCDESC; after them, a file ("@name") is read.
** - SRCCACHE: text -> {[chunkname] = whole dump, [chunkname NUL path] =
**   the function's bytecode}: the decoder compiles a text once.
** SRCDESC, SOURCES and SRCCACHE hold about CODEC__SRC_BUDGET bytes of
** strings together, then start over (codec__source_budget). A text to compile is at most
*CODEC_SOURCE_MAX bytes:
** the parser cannot be interrupted (a task's timeout does not reach it),
** and its worst case (gotos and labels) is quadratic.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec_int.h"

/* Longest chunk name sent for a chunk named by its own text. */
#define CODEC__CHUNKNAME_SHORT 80

/* ---- building a function's bytecode from a whole chunk's dump ---------- */

static void add(codec__ctx *c, const void *p, size_t n)
{
    if (codec__buf_add(&c->scratch, p, n) != 0)
        codec__fail(c, CODEC_ENOMEM, "out of memory cutting a function out of its chunk");
}

/* ldump.c's dumpSize: 7-bit groups, most significant first, the last
   byte marked with 0x80. */
static void add_size(codec__ctx *c, size_t x)
{
    unsigned char b[16];
    int n = 0;
    do {
        b[sizeof b - (size_t)++n] = (unsigned char)(x & 0x7f);
        x >>= 7;
    } while (x != 0);
    b[sizeof b - 1] |= 0x80;
    add(c, b + sizeof b - n, (size_t)n);
}

/* Pushes the standalone chunk of function f of the whole dump w (wlen
   bytes): w's header, f's upvalue count, the chunk name as its source
   (nested functions leave theirs out: "same as the parent"), the rest of
   f. lua_dump of the closure writes exactly this. */
static void push_cut(codec__ctx *c, const char *w, size_t wlen, const codec__bc_fn *f,
                     const char *chunkname, size_t cnlen)
{
    size_t h = codec__bc_hdrlen(w, wlen);
    c->scratch.len = 0;
    add(c, w, h);
    unsigned char nups = (unsigned char)f->nups;
    add(c, &nups, 1);
    add_size(c, cnlen + 1);
    add(c, chunkname, cnlen);
    add(c, w + f->after_source, f->end - f->after_source);
    lua_pushlstring(c->L, c->scratch.data, c->scratch.len);
}

/* Replaces the function bytecode at the top with its "normal" form: its
   upvalue descriptors (where the parent kept each upvalue) zeroed. They
   differ between a function compiled in its file and the same text compiled
   alone, and nothing reads them once the function is loaded on its own (a
   main function's upvalues are fresh; the factories set their own). */
static void normalize_top(codec__ctx *c)
{
    lua_State *L = c->L;
    size_t len, off;
    unsigned n;
    const char *bc = lua_tolstring(L, -1, &len);
    size_t h = codec__bc_hdrlen(bc, len);
    if (h == 0 || codec__bc_upvalues(bc, len, h, &off, &n) != 0)
        codec__fail(c, CODEC_ELUA, "unexpected layout of a function this Lua dumped");
    if (n == 0)
        return;
    int zero = 1;
    for (size_t i = 0; i < 3 * (size_t)n && zero; i++)
        zero = bc[off + i] == 0;
    if (zero)
        return;
    c->scratch.len = 0;
    add(c, bc, len);
    memset(c->scratch.data + off, 0, 3 * (size_t)n);
    lua_pop(L, 1);
    lua_pushlstring(L, c->scratch.data, c->scratch.len);
}

static int dump_writer(lua_State *L, const void *p, size_t n, void *ud)
{
    (void)L;
    return codec__buf_add(&((codec__ctx *)ud)->scratch, p, n) != 0;
}

/* Compiles text (stack index) as chunk chunkname in text mode and pushes
   its dump; returns 0, or -1 with the compiler's message pushed instead. */
static int compile_dump(codec__ctx *c, int text, const char *chunkname)
{
    lua_State *L = c->L;
    size_t len;
    const char *s = lua_tolstring(L, text, &len);
    int st = luaL_loadbufferx(L, s, len, chunkname, "t");
    if (st == LUA_ERRMEM)
        codec__fail(c, CODEC_ENOMEM, "out of memory compiling a function's source");
    if (st != LUA_OK)
        return -1;
    c->scratch.len = 0;
    if (lua_dump(L, dump_writer, c, 0) != 0)
        codec__fail(c, CODEC_ENOMEM, "out of memory dumping a compiled chunk");
    lua_pop(L, 1);
    lua_pushlstring(L, c->scratch.data, c->scratch.len);
    c->vm->stats.compiles++;
    return 0;
}

/* Finds the function at a path (codec__bc_walk visitor). */
typedef struct finder {
    const uint16_t *path;
    int depth;
    codec__bc_fn found;
} finder;

static int find_one(void *ud, const uint16_t *path, int depth, const codec__bc_fn *f)
{
    finder *x = ud;
    if (depth != x->depth || (depth && memcmp(path, x->path, sizeof *path * (size_t)depth) != 0))
        return 0;
    x->found = *f;
    return 1;
}

/* ---- the per-VM tables -------------------------------------------------- */

/* Pushes the state table's table at slot (made on first use). */
static void push_slot(codec__ctx *c, int slot)
{
    lua_State *L = c->L;
    if (lua_rawgeti(L, c->state, slot) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_rawseti(L, c->state, slot);
    }
}

/* Counts one more entry of the table at slot; past max, the table
   starts over (a long-lived VM that sees ever new code stays bounded). */
static void count_entry(codec__ctx *c, int slot, int count_slot, lua_Integer max)
{
    lua_State *L = c->L;
    lua_rawgeti(L, c->state, count_slot);
    lua_Integer n = lua_tointeger(L, -1) + 1;
    lua_pop(L, 1);
    if (n > max) {
        lua_newtable(L);
        lua_rawseti(L, c->state, slot);
        n = 1;
    }
    lua_pushinteger(L, n);
    lua_rawseti(L, c->state, count_slot);
}

/* The three tables hold about CODEC__SRC_BUDGET bytes of strings at most
   (texts, dumps, chunk names, counted as they are entered by spend; shared
   strings once): a decode call that finds them over it starts them all
   over first (codec__source_budget), so that ever new texts (a long-lived
   worker, a hostile producer) cannot grow a VM without bound. Never in the
   middle of a message: a function decoded earlier in it must stay known (a
   task sends it on); nor at an encode unless twice over (a VM that only
   sends: it learns again from its files and its noted texts, which are
   kept apart), so that a task's submit right after its decode finds the
   function it received. */
static void spend(codec__ctx *c, size_t n)
{
    c->vm->src_bytes += n;
}

void codec__source_budget(codec__ctx *c, int times)
{
    lua_State *L = c->L;
    if (c->vm->src_bytes > (size_t)times * CODEC__SRC_BUDGET) {
        static const int slots[] = {CODEC__S_SRCDESC, CODEC__S_SOURCES, CODEC__S_SRCCACHE};
        for (size_t i = 0; i < sizeof slots / sizeof slots[0]; i++) {
            lua_pushnil(L);
            lua_rawseti(L, c->state, slots[i]);
        }
        codec__srcfront_clear(L, c->state, c->vm);
        c->vm->src_bytes = 0;
        c->vm->stats.source_resets++;
    }
}

/* ---- the front of the source cache ---------------------------------------
   A worker receives the same few functions over and over: finding them in
   SRCCACHE took a Lua string of the text (a copy, and Lua's hash of every
   byte of it) and one of the chunk name and path (lua_concat) per message.
   The front finds them from the message's bytes: a hash of the path, the
   chunk name, the text's length and its first and last bytes picks the
   entry, and an entry is used only when all of those bytes are the same as
   its own (a different text with the same hash is a miss). */

static int srcfront_collide; /* codec_test_collide */

void codec_test_collide(int on)
{
    srcfront_collide = on != 0;
}

/* Bytes of the text hashed at each end (the comparison reads them all). */
#define SRCFRONT_HASHED 128

static uint64_t mix(uint64_t h, const unsigned char *p, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    uint64_t w = 0;
    memcpy(&w, p + i, n - i);
    h = (h ^ w ^ n) * 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 29);
}

static uint64_t srcfront_hash(const unsigned char *path, uint32_t plen, const unsigned char *cn,
                              uint32_t cnlen, const unsigned char *text, size_t textlen)
{
    if (srcfront_collide)
        return 42;
    uint64_t h = mix(0x9e3779b97f4a7c15ull ^ textlen, path, plen);
    h = cn ? mix(h, cn, cnlen) : mix(h ^ 1, (const unsigned char *)"", 0);
    if (textlen <= 2 * SRCFRONT_HASHED)
        return mix(h, text, textlen);
    h = mix(h, text, SRCFRONT_HASHED);
    return mix(h, text + textlen - SRCFRONT_HASHED, SRCFRONT_HASHED);
}

void codec__srcfront_clear(lua_State *L, int state, codec__vm *vm)
{
    memset(vm->srcfront, 0, sizeof vm->srcfront);
    lua_pushnil(L);
    lua_rawseti(L, state, CODEC__S_SRCFRONT);
}

/* The entry for these bytes, or NULL. */
static codec__srcfront *srcfront_find(codec__vm *vm, uint64_t h, const unsigned char *path,
                                      uint32_t plen, const unsigned char *cn, uint32_t cnlen,
                                      const unsigned char *text, size_t textlen)
{
    codec__srcfront *e = &vm->srcfront[h % CODEC__SRCFRONT_SLOTS];
    if (!e->used || e->hash != h || e->plen != plen || e->textlen != textlen ||
        (e->name == NULL) != (cn == NULL))
        return NULL;
    if (cn && (e->namelen != cnlen || memcmp(e->name, cn, cnlen) != 0))
        return NULL;
    if (memcmp(e->path, path, plen) != 0 || memcmp(e->text, text, textlen) != 0)
        return NULL;
    return e;
}

/* Enters the function's bytecode (on top) under the text at index text,
   the chunk name sent at index name (0: none, named by its text) and the
   path: it replaces what its slot held. */
static void srcfront_put(codec__ctx *c, uint64_t h, const unsigned char *path, uint32_t plen,
                         int text, int name)
{
    lua_State *L = c->L;
    size_t textlen, namelen = 0;
    const char *t = lua_tolstring(L, text, &textlen);
    if (plen > CODEC__SRCFRONT_PATHMAX || textlen > CODEC__SRCFRONT_TEXTMAX)
        return;
    codec__srcfront *e = &c->vm->srcfront[h % CODEC__SRCFRONT_SLOTS];
    lua_Integer k = (lua_Integer)(3 * (size_t)(e - c->vm->srcfront));
    push_slot(c, CODEC__S_SRCFRONT);
    lua_pushvalue(L, text);
    lua_rawseti(L, -2, k + 1);
    if (name)
        lua_pushvalue(L, name);
    else
        lua_pushnil(L);
    lua_rawseti(L, -2, k + 2);
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, k + 3);
    lua_pop(L, 1);
    e->text = t; /* kept alive by SRCFRONT[k + 1] */
    e->textlen = textlen;
    e->name = name ? lua_tolstring(L, name, &namelen) : NULL;
    e->namelen = namelen;
    e->hash = h;
    e->plen = plen;
    memcpy(e->path, path, plen);
    e->used = 1;
    spend(c, textlen + namelen + 64); /* a second copy of the text, perhaps */
}

static size_t len_at(lua_State *L, int idx)
{
    size_t n;
    lua_tolstring(L, idx, &n);
    return n;
}

/* slot[chunk name at name][text at text] = true: SOURCES (texts received)
   or NOTED (codec_note_source's, not under the budget: at most
   CODEC__SOURCES_MAX texts, then NOTED starts over). */
static void remember_text(codec__ctx *c, int slot, int name, int text)
{
    lua_State *L = c->L;
    push_slot(c, slot);
    lua_pushvalue(L, name);
    if (lua_rawget(L, -2) == LUA_TTABLE) {
        lua_pushvalue(L, text);
        int known = lua_rawget(L, -2) != LUA_TNIL;
        lua_pop(L, 3);
        if (known)
            return;
    } else {
        lua_pop(L, 2);
    }
    if (slot == CODEC__S_NOTED)
        count_entry(c, CODEC__S_NOTED, CODEC__S_NOTEDCOUNT, CODEC__SOURCES_MAX);
    else
        spend(c, len_at(L, text) + len_at(L, name) + 64);
    push_slot(c, slot);
    lua_pushvalue(L, name);
    if (lua_rawget(L, -2) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, name);
        lua_pushvalue(L, -2);
        lua_rawset(L, -4);
    }
    lua_pushvalue(L, text);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 2);
}

/* Pushes a descriptor {chunk name, text, path} (path: the ext payload);
   name and text are stack indices (the strings are shared, not copied). */
static void push_desc(codec__ctx *c, int name, int text, const uint16_t *path, int depth)
{
    lua_State *L = c->L;
    unsigned char p[2 * CODEC__BC_MAXDEPTH];
    for (int i = 0; i < depth; i++) {
        p[2 * i] = (unsigned char)(path[i] >> 8);
        p[2 * i + 1] = (unsigned char)path[i];
    }
    lua_createtable(L, 4, 0);
    lua_pushvalue(L, name);
    lua_rawseti(L, -2, 1);
    lua_pushvalue(L, text);
    lua_rawseti(L, -2, 2);
    lua_pushlstring(L, (const char *)p, 2 * (size_t)depth);
    lua_rawseti(L, -2, 3);
}

/* SRCDESC[bytecode at -2] = descriptor at -1; pops both. */
static void set_desc(codec__ctx *c)
{
    lua_State *L = c->L;
    spend(c, len_at(L, -2) + 96);
    push_slot(c, CODEC__S_SRCDESC);
    lua_insert(L, -3);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

/* ---- shrinking: a function's own text instead of its whole chunk ------- */

static int is_word(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_';
}

/* Offset of the next whole word w (length wl) in s[from, to), or -1. */
static long find_word(const char *s, size_t len, size_t from, size_t to, const char *w, size_t wl)
{
    for (size_t i = from; i + wl <= to; i++) {
        if (memcmp(s + i, w, wl) == 0 && (i == 0 || !is_word(s[i - 1])) &&
            (i + wl >= len || !is_word(s[i + wl])))
            return (long)i;
    }
    return -1;
}

/* Bounds [*b, *e) of line `line` (1-based) of s; -1 past the end. */
static int line_bounds(const char *s, size_t len, int line, size_t *b, size_t *e)
{
    size_t i = 0;
    for (int l = 1; l < line; l++) {
        const char *nl = memchr(s + i, '\n', len - i);
        if (!nl)
            return -1;
        i = (size_t)(nl - s) + 1;
    }
    const char *nl = memchr(s + i, '\n', len - i);
    *b = i;
    *e = nl ? (size_t)(nl - s) : len;
    return 0;
}

static size_t skip_blanks(const char *s, size_t i, size_t to)
{
    while (i < to && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i;
}

static size_t skip_name(const char *s, size_t i, size_t to)
{
    if (i >= to || !(is_word(s[i]) && !(s[i] >= '0' && s[i] <= '9')))
        return 0;
    while (i < to && is_word(s[i]))
        i++;
    return i;
}

/* Writes into scratch the chunk "<newlines>local u1,u2... return
   function(<params>) ... end" for the function whose keyword is at fn and
   whose closing `end` is at end (a statement's name dropped; a method's
   `self` made explicit). 0, or -1 when the header is not plain. */
static int build_alone(codec__ctx *c, const char *s, size_t fn, size_t end, int line,
                       const char *locals, size_t llen)
{
    size_t i = skip_blanks(s, fn + 8, end);
    int method = 0;
    if (i < end && s[i] != '(') { /* function a.b.c(...) / function a:m(...) */
        i = skip_name(s, i, end);
        while (i && i < end && (s[i] == '.' || s[i] == ':')) {
            method = s[i] == ':';
            i = skip_name(s, i + 1, end);
            if (method)
                break;
        }
        if (!i)
            return -1;
        i = skip_blanks(s, i, end);
    }
    if (i >= end || s[i] != '(')
        return -1;
    c->scratch.len = 0;
    for (int l = 1; l < line; l++)
        add(c, "\n", 1);
    add(c, locals, llen);
    add(c, "return function(", 16);
    if (method) {
        size_t j = skip_blanks(s, i + 1, end);
        add(c, j < end && s[j] == ')' ? "self" : "self, ", j < end && s[j] == ')' ? 4 : 6);
    }
    add(c, s + i + 1, end + 3 - (i + 1));
    return 0;
}

/* Tries to find, for the function at f whose descriptor (full chunk text)
   is at desc, a text holding just that function: its lines, the names of
   its upvalues as locals. The candidate must compile to the same function
   (normal dump at dump): then SRCDESC[dump] becomes {chunkname, that text,
   path [0]} and it replaces the descriptor on the stack. */
static void shrink(codec__ctx *c, int f, int dump, int desc)
{
    lua_State *L = c->L;
    lua_Debug ar;
    lua_pushvalue(L, f);
    lua_getinfo(L, ">Su", &ar);
    lua_rawgeti(L, desc, 3);
    size_t plen;
    lua_tolstring(L, -1, &plen);
    lua_pop(L, 1);
    if (plen == 0 || ar.linedefined <= 0 || ar.lastlinedefined < ar.linedefined)
        return; /* a main function: its chunk is its text */
    /* "local a, b; " for its upvalues (not _ENV: the new chunk's own) */
    int top = lua_gettop(L);
    luaL_Buffer lb;
    luaL_buffinit(L, &lb);
    int nlocals = 0;
    for (int i = 1; i <= ar.nups; i++) {
        const char *name = lua_getupvalue(L, f, i);
        if (!name || !*name || !(is_word(name[0]) && !(name[0] >= '0' && name[0] <= '9'))) {
            lua_settop(L, top); /* stripped ("(no name)"), or odd: keep the whole chunk */
            return;
        }
        lua_pop(L, 1);
        if (strcmp(name, "_ENV") == 0)
            continue;
        luaL_addstring(&lb, nlocals++ ? ", " : "local ");
        luaL_addstring(&lb, name);
    }
    if (nlocals)
        luaL_addstring(&lb, "; ");
    luaL_pushresult(&lb);
    int locals = lua_gettop(L);
    size_t llen;
    const char *lstr = lua_tolstring(L, locals, &llen);
    lua_rawgeti(L, desc, 1);
    int name = lua_gettop(L);
    const char *chunkname = lua_tostring(L, name);
    lua_rawgeti(L, desc, 2);
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    size_t fb, fe, eb, ee;
    int tries = 0;
    if (line_bounds(s, len, ar.linedefined, &fb, &fe) != 0 ||
        line_bounds(s, len, ar.lastlinedefined, &eb, &ee) != 0) {
        lua_settop(L, locals - 1);
        return;
    }
    for (long fn = find_word(s, len, fb, fe, "function", 8); fn >= 0 && tries < 16;
         fn = find_word(s, len, (size_t)fn + 1, fe, "function", 8)) {
        size_t from = eb > (size_t)fn ? eb : (size_t)fn + 8;
        for (long end = find_word(s, len, from, ee, "end", 3); end >= 0 && tries < 16;
             end = find_word(s, len, (size_t)end + 1, ee, "end", 3)) {
            tries++;
            if (build_alone(c, s, (size_t)fn, (size_t)end, ar.linedefined, lstr, llen) != 0)
                break;
            lua_pushlstring(L, c->scratch.data, c->scratch.len);
            int text = lua_gettop(L);
            if (compile_dump(c, text, chunkname) != 0) {
                lua_pop(L, 2);
                continue;
            }
            size_t wlen;
            const char *w = lua_tolstring(L, -1, &wlen);
            uint16_t zero = 0;
            finder x = {&zero, 1, {0, 0, 0, 0}};
            if (codec__bc_walk(w, wlen, find_one, &x) == 1) {
                push_cut(c, w, wlen, &x.found, chunkname, strlen(chunkname));
                normalize_top(c);
                if (lua_rawequal(L, -1, dump)) {
                    lua_pop(L, 2);
                    spend(c, len_at(L, text));
                    push_desc(c, name, text, &zero, 1);
                    lua_pushboolean(L, 1);
                    lua_rawseti(L, -2, 4);
                    lua_replace(L, desc);
                    lua_pushvalue(L, dump);
                    lua_pushvalue(L, desc);
                    set_desc(c);
                    lua_settop(L, locals - 1);
                    return;
                }
                lua_pop(L, 1);
            }
            lua_pop(L, 2);
        }
    }
    lua_settop(L, locals - 1);
}

/* ---- encoding ----------------------------------------------------------- */

typedef struct indexer {
    codec__ctx *c;
    const char *w; /* the whole dump */
    size_t wlen;
    const char *chunkname;
    int name, text; /* stack indices */
} indexer;

static int index_one(void *ud, const uint16_t *path, int depth, const codec__bc_fn *f)
{
    indexer *x = ud;
    push_cut(x->c, x->w, x->wlen, f, x->chunkname, strlen(x->chunkname));
    normalize_top(x->c);
    push_desc(x->c, x->name, x->text, path, depth);
    set_desc(x->c);
    return 0;
}

/* Enters every function of the chunk text compiled as the chunk name (both
   stack indices) into SRCDESC. 0, or -1 when the text does not compile. */
static int index_chunk(codec__ctx *c, int text, int name)
{
    lua_State *L = c->L;
    codec__checkstack(c, 12);
    const char *chunkname = lua_tostring(L, name);
    if (compile_dump(c, text, chunkname) != 0) {
        lua_pop(L, 1);
        return -1;
    }
    spend(c, len_at(L, text));
    indexer x = {c, NULL, 0, chunkname, name, text};
    x.w = lua_tolstring(L, -1, &x.wlen);
    if (codec__bc_walk(x.w, x.wlen, index_one, &x) != 0)
        codec__fail(c, CODEC_ELUA, "unexpected layout of a chunk this Lua dumped");
    lua_pop(L, 1);
    return 0;
}

/* Pushes the text of file name as luaL_loadfilex reads it (a byte order
   mark dropped, a first line starting with '#' emptied) and returns 0, or
   pushes nothing and returns -1 with why filled: a file that cannot be
   opened, is not a regular file (opened without blocking: a FIFO is not
   waited for), is over CODEC__FILE_MAX bytes, or holds a binary chunk.
   lua/pool/sandbox.c's chunk_start skips the same prefix for a stream it
   loads itself: the codec cannot depend on the pool layer, hence two. */
static int push_file_text(codec__ctx *c, const char *name, char *why, size_t whylen)
{
    int fd = open(name, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        snprintf(why, whylen, "%s", strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > CODEC__FILE_MAX) {
        snprintf(why, whylen, "%s",
                 !S_ISREG(st.st_mode) ? "not a regular file" : "larger than the codec reads");
        close(fd);
        return -1;
    }
    c->scratch.len = 0;
    char b[4096];
    ssize_t n;
    int bad = 0;
    while ((n = read(fd, b, sizeof b)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || c->scratch.len + (size_t)n > CODEC__FILE_MAX ||
            codec__buf_add(&c->scratch, b, (size_t)n) != 0) {
            bad = 1;
            break;
        }
    }
    close(fd);
    if (bad) {
        snprintf(why, whylen, "it could not be read whole");
        return -1;
    }
    const char *s = c->scratch.data;
    size_t len = c->scratch.len;
    if (len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
        s += 3;
        len -= 3;
    }
    if (len > 0 && s[0] == '#') { /* a "#!" line: only its newline stays */
        const char *nl = memchr(s, '\n', len);
        if (!nl) {
            lua_pushliteral(c->L, "\n");
            return 0;
        }
        len -= (size_t)(nl - s);
        s = nl;
    }
    if (len > 0 && s[0] == LUA_SIGNATURE[0]) {
        snprintf(why, whylen, "it holds a binary chunk");
        return -1;
    }
    lua_pushlstring(c->L, s ? s : "", len);
    return 0;
}

/* Pushes SRCDESC[dump at idx] and returns its type. */
static int get_desc(codec__ctx *c, int dump)
{
    lua_State *L = c->L;
    push_slot(c, CODEC__S_SRCDESC);
    lua_pushvalue(L, dump);
    int t = lua_rawget(L, -2);
    lua_remove(L, -2);
    return t;
}

/* Indexes the texts known for chunkname, then a file's current text (when
   lim.source_files), then a chunk named by its text. Stops as soon as dump
   is found; otherwise why says what was missing. */
static void learn(codec__ctx *c, int dump, const char *chunkname, char *why, size_t whylen)
{
    lua_State *L = c->L;
    lua_pushstring(L, chunkname);
    int name = lua_gettop(L);
    static const int slots[] = {CODEC__S_NOTED, CODEC__S_SOURCES};
    for (int k = 0; k < 2; k++) {
        push_slot(c, slots[k]);
        lua_pushvalue(L, name);
        if (lua_rawget(L, -2) == LUA_TTABLE) {
            int set = lua_gettop(L);
            lua_pushnil(L);
            while (lua_next(L, set)) {
                lua_pop(L, 1);
                index_chunk(c, lua_gettop(L), name);
                if (get_desc(c, dump) == LUA_TTABLE) {
                    lua_settop(L, name - 1);
                    return;
                }
                lua_pop(L, 1);
            }
        }
        lua_settop(L, name);
    }
    lua_settop(L, name);
    if (chunkname[0] == '@') {
        char fwhy[120];
        if (!c->lim.source_files)
            snprintf(why, whylen,
                     "its file is not read here (a sandboxed task sends only "
                     "functions of the chunks it received)");
        else if (push_file_text(c, chunkname + 1, fwhy, sizeof fwhy) != 0)
            snprintf(why, whylen, "its file cannot be read: %s", fwhy);
        else if (index_chunk(c, lua_gettop(L), name) != 0 || get_desc(c, dump) != LUA_TTABLE)
            snprintf(why, whylen, "its file no longer holds the text it was compiled from");
    } else if (chunkname[0] != '=') {
        /* load(text) without a name: the name is the text */
        index_chunk(c, name, name);
        snprintf(why, whylen, "its chunk's text is not known here");
    } else {
        snprintf(why, whylen,
                 "its chunk's text is not known here (a chunk named %.40s: load it from a "
                 "file, or with its text as its name)",
                 chunkname);
    }
    lua_settop(L, name - 1);
}

void codec__encode_source(codec__ctx *c, int f)
{
    lua_State *L = c->L;
    codec__checkstack(c, 12);
    codec__push_dump(c, f);
    normalize_top(c);
    int dump = lua_gettop(L);
    if (get_desc(c, dump) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_Debug ar;
        lua_pushvalue(L, f);
        lua_getinfo(L, ">S", &ar);
        char why[200] = "";
        learn(c, dump, ar.source, why, sizeof why);
        if (get_desc(c, dump) != LUA_TTABLE) {
            char what[300];
            snprintf(what, sizeof what, "function at %s:%d: it travels as source, and %s",
                     ar.short_src, ar.linedefined, why);
            codec__unsendable(c, what);
        }
    }
    if (lua_rawgeti(L, -1, 4) != LUA_TBOOLEAN) { /* first use: try its own text */
        lua_pop(L, 1);
        shrink(c, f, dump, dump + 1);
        lua_pushboolean(L, 1);
        lua_rawseti(L, dump + 1, 4);
    } else {
        lua_pop(L, 1);
    }
    /* [dump, desc] */
    lua_rawgeti(L, -1, 3);
    size_t plen;
    const char *path = lua_tolstring(L, -1, &plen);
    codec__pack_ok(c, msgpack_pack_ext(&c->pk, plen, CODEC__EXT_SOURCE));
    if (plen)
        codec__pack_ok(c, msgpack_pack_ext_body(&c->pk, path, plen));
    lua_pop(L, 1);
    lua_rawgeti(L, -1, 1); /* chunk name */
    lua_rawgeti(L, -2, 2); /* text */
    if (len_at(L, -1) > CODEC_SOURCE_MAX) {
        lua_Debug ar;
        lua_pushvalue(L, f);
        lua_getinfo(L, ">S", &ar);
        char what[300];
        snprintf(what, sizeof what,
                 "function at %s:%d: it travels as source, and its text (the whole chunk: its "
                 "own lines do not compile alone) is %zu bytes, over CODEC_SOURCE_MAX (%d)",
                 ar.short_src, ar.linedefined, len_at(L, -1), CODEC_SOURCE_MAX);
        codec__unsendable(c, what);
    }
    size_t n;
    const char *s = lua_tolstring(L, -2, &n);
    if (lua_rawequal(L, -1, -2)) {
        codec__pack_ok(c, msgpack_pack_nil(&c->pk)); /* load(text): the same */
    } else {
        if (s[0] != '@' && s[0] != '=' && n > CODEC__CHUNKNAME_SHORT) {
            /* load(text) whose function travels alone: its first line names
             * it (as in "[string "local x = 1..."]"), not the whole text */
            const char *nl = memchr(s, '\n', CODEC__CHUNKNAME_SHORT);
            n = nl ? (size_t)(nl - s) + 1 : CODEC__CHUNKNAME_SHORT;
        }
        codec__pack_ok(c, msgpack_pack_str(&c->pk, n));
        codec__pack_ok(c, msgpack_pack_str_body(&c->pk, s, n));
    }
    codec__pack_blob(c, lua_gettop(L));
    lua_pop(L, 4);
    c->v3 = 1;
}

/* ---- decoding ----------------------------------------------------------- */

void codec__decode_source(codec__ctx *c)
{
    lua_State *L = c->L;
    codec__checkstack(c, 12);
    int type;
    const unsigned char *d;
    uint32_t plen;
    codec__read_ext(c, &type, &d, &plen);
    if (c->version < 3 || plen % 2 != 0 || plen / 2 > CODEC__BC_MAXDEPTH)
        codec__fail(c, CODEC_EMALFORMED, "malformed message: bad function source path");
    uint16_t path[CODEC__BC_MAXDEPTH];
    int depth = (int)(plen / 2);
    for (int i = 0; i < depth; i++)
        path[i] = (uint16_t)(d[2 * i] << 8 | d[2 * i + 1]);
    /* chunk name (nil: the text itself), then the text */
    const unsigned char *cn = NULL;
    uint32_t cnlen = 0;
    if (c->p < c->end && *c->p == 0xc0)
        c->p++;
    else
        codec__read_raw(c, &cn, &cnlen);
    if (cnlen > CODEC__CHUNKNAME_MAX)
        codec__fail(c, CODEC_EMALFORMED, "malformed message: a chunk name of %u bytes", cnlen);
    const char *tp;
    size_t textlen;
    codec__read_blob_bytes(c, "source", &tp, &textlen);
    if (textlen > CODEC_SOURCE_MAX)
        codec__fail(c, CODEC_ETOOBIG,
                    "a function's source of %zu bytes: more than CODEC_SOURCE_MAX (%d)", textlen,
                    CODEC_SOURCE_MAX);
    const unsigned char *sent_cn = cn;
    uint64_t fh = srcfront_hash(d, plen, cn, cnlen, (const unsigned char *)tp, textlen);
    codec__srcfront *fe =
        srcfront_find(c->vm, fh, d, plen, cn, cnlen, (const unsigned char *)tp, textlen);
    if (fe) {
        lua_rawgeti(L, c->state, CODEC__S_SRCFRONT);
        lua_rawgeti(L, -1, (lua_Integer)(3 * (size_t)(fe - c->vm->srcfront) + 3));
        lua_remove(L, -2);
        c->vm->stats.source_hits++;
        c->vm->stats.source_fast++;
        return;
    }
    lua_pushlstring(L, tp, textlen);
    int text = lua_gettop(L);
    int by_text = !cn;
    if (by_text) { /* its first line names it (as luaO_chunkid would show it) */
        const char *t = lua_tostring(L, text);
        size_t n = textlen < CODEC__CHUNKNAME_SHORT ? textlen : CODEC__CHUNKNAME_SHORT;
        const char *nl = memchr(t, '\n', n);
        if (nl || textlen > n) {
            cn = (const unsigned char *)t;
            cnlen = (uint32_t)(nl ? (size_t)(nl - t) + 1 : n);
        }
    }
    if (cn)
        lua_pushlstring(L, (const char *)cn, cnlen);
    else
        lua_pushvalue(L, text);
    int name = lua_gettop(L);
    size_t namelen;
    const char *chunkname = lua_tolstring(L, name, &namelen);
    if (strlen(chunkname) != namelen)
        codec__fail(c, by_text ? CODEC_ELOAD : CODEC_EMALFORMED, "%s",
                    !by_text
                        ? "malformed message: chunk name holds a NUL byte"
                        : "cannot compile a function's source: it holds a NUL byte (source, not "
                          "a binary chunk, is expected)");

    /* SRCCACHE[text] = {[chunkname] = whole dump, [chunkname NUL path] = cut} */
    push_slot(c, CODEC__S_SRCCACHE);
    lua_pushvalue(L, text);
    if (lua_rawget(L, -2) != LUA_TTABLE) {
        lua_pop(L, 2);
        spend(c, textlen + 64);
        push_slot(c, CODEC__S_SRCCACHE);
        lua_pushvalue(L, text);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_insert(L, -4);
        lua_rawset(L, -3);
        lua_pop(L, 1);
    } else {
        lua_remove(L, -2);
    }
    int cache = lua_gettop(L);
    lua_pushvalue(L, name);
    lua_pushlstring(L, "", 1); /* a NUL byte */
    lua_pushlstring(L, (const char *)d, plen);
    lua_concat(L, 3);
    int key = lua_gettop(L);
    lua_pushvalue(L, key);
    if (lua_rawget(L, cache) == LUA_TSTRING) {
        c->vm->stats.source_hits++;
        srcfront_put(c, fh, d, plen, text, sent_cn ? name : 0);
        lua_replace(L, text);
        lua_settop(L, text);
        return;
    }
    lua_pop(L, 1);
    lua_pushvalue(L, name);
    if (lua_rawget(L, cache) != LUA_TSTRING) {
        lua_pop(L, 1);
        if (compile_dump(c, text, chunkname) != 0)
            codec__fail(c, CODEC_ELOAD, "cannot compile a function's source: %s",
                        lua_tostring(L, -1));
        spend(c, len_at(L, -1) + namelen);
        lua_pushvalue(L, name);
        lua_pushvalue(L, -2);
        lua_rawset(L, cache);
        remember_text(c, CODEC__S_SOURCES, name, text);
    }
    size_t wlen;
    const char *w = lua_tolstring(L, -1, &wlen);
    finder x = {path, depth, {0, 0, 0, 0}};
    if (codec__bc_walk(w, wlen, find_one, &x) != 1)
        codec__fail(c, CODEC_EMALFORMED, "malformed message: no function at the source path");
    push_cut(c, w, wlen, &x.found, chunkname, namelen);
    normalize_top(c);
    spend(c, len_at(L, -1) + len_at(L, key));
    lua_pushvalue(L, key);
    lua_pushvalue(L, -2);
    lua_rawset(L, cache);
    /* the encoder knows at once how to send it on (a task's own submits) */
    lua_pushvalue(L, -1);
    push_desc(c, name, text, path, depth);
    set_desc(c);
    srcfront_put(c, fh, d, plen, text, sent_cn ? name : 0);
    lua_replace(L, text);
    lua_settop(L, text);
}

/* ---- public ------------------------------------------------------------- */

typedef struct note_args {
    const char *chunkname;
    const char *text;
    size_t len;
} note_args;

static int note_main(lua_State *L)
{
    codec__ctx *c = lua_touserdata(L, 1);
    note_args *a = lua_touserdata(L, 2);
    codec__state(L);
    c->state = lua_gettop(L);
    c->vm = codec__vm_of(L, c->state);
    lua_pushlstring(L, a->text, a->len);
    lua_pushstring(L, a->chunkname);
    remember_text(c, CODEC__S_NOTED, lua_gettop(L), lua_gettop(L) - 1);
    return 0;
}

int codec_note_source(lua_State *L, const char *chunkname, const char *text, size_t len)
{
    codec__ctx c;
    memset(&c, 0, sizeof c);
    c.L = L;
    codec_limits_default(&c.lim);
    note_args a = {chunkname, text, len};
    if (!lua_checkstack(L, 8))
        return CODEC_ENOMEM;
    lua_pushcfunction(L, note_main);
    lua_pushlightuserdata(L, &c);
    lua_pushlightuserdata(L, &a);
    int st = lua_pcall(L, 2, 0, 0);
    free(c.scratch.data);
    if (st != LUA_OK) {
        lua_pop(L, 1);
        return st == LUA_ERRMEM ? CODEC_ENOMEM : CODEC_ELUA;
    }
    return 0;
}
