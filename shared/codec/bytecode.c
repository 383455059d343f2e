/*
** bytecode.c: just enough of the Lua 5.4 binary chunk layout (lundump.c)
** to find a function's upvalue descriptors and its nested functions. Used
** to build "factories" (closure.c) from bytecode that lua_load then checks
** in full, and to cut one function out of a chunk this VM compiled from
** source (source.c); every read here is bounds-checked all the same.
*/
#include <string.h>

#include "codec_int.h"

typedef struct rd {
    const unsigned char *p;   /* next byte */
    const unsigned char *end; /* one past the end */
    size_t isz, nsz;          /* sizeof lua_Integer, lua_Number */
    int bad;                  /* set on any overrun */
} rd;

static int byte(rd *r)
{
    if (r->p >= r->end) {
        r->bad = 1;
        return 0;
    }
    return *r->p++;
}

static void skip(rd *r, size_t n)
{
    if ((size_t)(r->end - r->p) < n) {
        r->bad = 1;
        r->p = r->end;
        return;
    }
    r->p += n;
}

/* lundump's loadUnsigned: 7-bit groups, most significant first, the last
   byte has bit 0x80 set. */
static size_t varint(rd *r)
{
    size_t x = 0;
    int b;
    int i = 0;
    do {
        b = byte(r);
        if (r->bad || ++i > 9) {
            r->bad = 1;
            return 0;
        }
        x = (x << 7) | (size_t)(b & 0x7f);
    } while ((b & 0x80) == 0);
    return x;
}

static void string(rd *r)
{
    size_t n = varint(r);
    if (n > 0)
        skip(r, n - 1);
}

/* Reads a function up to (not including) its upvalue descriptors. */
static void head(rd *r)
{
    string(r);  /* source */
    varint(r);  /* linedefined */
    varint(r);  /* lastlinedefined */
    skip(r, 3); /* numparams, is_vararg, maxstacksize */
    size_t n = varint(r);
    if (n > (size_t)(r->end - r->p) / 4) {
        r->bad = 1;
        return;
    }
    skip(r, n * 4); /* code */
    n = varint(r);  /* constants */
    for (size_t i = 0; i < n && !r->bad; i++) {
        switch (byte(r)) {
        case 0:  /* nil */
        case 1:  /* false */
        case 17: /* true */
            break;
        case 3: /* integer */
            skip(r, r->isz);
            break;
        case 19: /* float */
            skip(r, r->nsz);
            break;
        case 4:  /* short string */
        case 20: /* long string */
            string(r);
            break;
        default:
            r->bad = 1;
        }
    }
}

/* Where a function is in a chunk, for a visitor. */
typedef struct visit {
    codec__bc_visit_fn fn;
    void *ud;
    uint16_t path[CODEC__BC_MAXDEPTH];
    const unsigned char *base;
    int stop; /* the visitor returned nonzero */
} visit;

/* Reads one function; with v, tells v->fn about it (after its nested
   functions) with its path from the main function. */
static void function(rd *r, int depth, visit *v)
{
    if (depth > CODEC__BC_MAXDEPTH) {
        r->bad = 1;
        return;
    }
    const unsigned char *start = r->p;
    string(r); /* source */
    const unsigned char *after_source = r->p;
    r->p = start;
    head(r);
    size_t nups = varint(r);
    if (nups > (size_t)(r->end - r->p) / 3) {
        r->bad = 1;
        return;
    }
    skip(r, nups * 3);    /* upvalues */
    size_t n = varint(r); /* nested functions */
    if (v && n > 0 && depth >= CODEC__BC_MAXDEPTH) {
        r->bad = 1;
        return;
    }
    for (size_t i = 0; i < n && !r->bad; i++) {
        if (v) {
            if (i > UINT16_MAX) {
                r->bad = 1;
                return;
            }
            v->path[depth] = (uint16_t)i;
        }
        function(r, depth + 1, v);
        if (v && v->stop)
            return;
    }
    n = varint(r); /* lineinfo */
    skip(r, n);
    n = varint(r); /* abslineinfo */
    for (size_t i = 0; i < n && !r->bad; i++) {
        varint(r);
        varint(r);
    }
    n = varint(r); /* locvars */
    for (size_t i = 0; i < n && !r->bad; i++) {
        string(r);
        varint(r);
        varint(r);
    }
    n = varint(r); /* upvalue names */
    for (size_t i = 0; i < n && !r->bad; i++)
        string(r);
    if (v && !r->bad && nups <= 255) {
        codec__bc_fn f = {(size_t)(start - v->base), (size_t)(after_source - v->base),
                          (size_t)(r->p - v->base), (unsigned)nups};
        v->stop = v->fn(v->ud, v->path, depth, &f);
    }
}

/* Size of the chunk header (signature .. LUAC_NUM), 0 if too short. The
   main function's upvalue count byte follows it. */
size_t codec__bc_hdrlen(const char *bc, size_t len)
{
    if (len < 15)
        return 0;
    size_t h = 15 + (unsigned char)bc[13] + (unsigned char)bc[14];
    return h + 1 <= len ? h : 0;
}

static int rd_init(rd *r, const char *bc, size_t len, size_t hdrlen)
{
    r->p = (const unsigned char *)bc + hdrlen + 1;
    r->end = (const unsigned char *)bc + len;
    r->isz = (unsigned char)bc[13];
    r->nsz = (unsigned char)bc[14];
    r->bad = 0;
    return hdrlen + 1 <= len && (unsigned char)bc[12] == 4;
}

int codec__bc_upvalues(const char *bc, size_t len, size_t hdrlen, size_t *off, unsigned *n)
{
    rd r;
    if (!rd_init(&r, bc, len, hdrlen))
        return -1;
    head(&r);
    size_t k = varint(&r);
    if (r.bad || k > 255 || k * 3 > (size_t)(r.end - r.p))
        return -1;
    *off = (size_t)(r.p - (const unsigned char *)bc);
    *n = (unsigned)k;
    return 0;
}

int codec__bc_child(const char *bc, size_t len, size_t hdrlen, size_t *start, size_t *end)
{
    rd r;
    if (!rd_init(&r, bc, len, hdrlen))
        return -1;
    head(&r);
    size_t n = varint(&r);
    if (n > 255)
        return -1;
    skip(&r, n * 3);
    if (r.bad || varint(&r) != 1 || r.bad)
        return -1;
    *start = (size_t)(r.p - (const unsigned char *)bc);
    function(&r, 1, NULL);
    if (r.bad)
        return -1;
    *end = (size_t)(r.p - (const unsigned char *)bc);
    return 0;
}

int codec__bc_walk(const char *bc, size_t len, codec__bc_visit_fn fn, void *ud)
{
    rd r;
    size_t h = codec__bc_hdrlen(bc, len);
    if (h == 0 || !rd_init(&r, bc, len, h))
        return -1;
    visit v;
    v.fn = fn;
    v.ud = ud;
    v.base = (const unsigned char *)bc;
    v.stop = 0;
    function(&r, 0, &v);
    if (v.stop)
        return 1;
    return r.bad || r.p != r.end ? -1 : 0;
}
