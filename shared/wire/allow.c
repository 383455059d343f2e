/* allow.c: the task sandbox's vocabulary (see allow.h). */
#include "allow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct item {
    const char *name;
    uint32_t bits;
} item;

static const item items[] = {
    {"os.execute", ALLOW_OS_EXECUTE},
    {"os.remove", ALLOW_OS_REMOVE},
    {"os.rename", ALLOW_OS_RENAME},
    {"os.tmpname", ALLOW_OS_TMPNAME},
    {"os.getenv", ALLOW_OS_GETENV},
    {"io.popen", ALLOW_IO_POPEN},
    {"io.open.write", ALLOW_IO_WRITE},
    {"io.open.special", ALLOW_IO_SPECIAL},
    {"package.loadlib", ALLOW_LOADLIB},
    {"debug", ALLOW_DEBUG},
    {"load.binary", ALLOW_LOAD_BINARY},
    {"exec", ALLOW_EXEC},
    {"http", ALLOW_HTTP},
    {"require", ALLOW_REQUIRE},
    {"os",
     ALLOW_OS_EXECUTE | ALLOW_OS_REMOVE | ALLOW_OS_RENAME | ALLOW_OS_TMPNAME | ALLOW_OS_GETENV},
    {"io", ALLOW_IO_POPEN | ALLOW_IO_WRITE},
    {"all", ALLOW_ALL_BITS},
    {"none", 0},
};

#define NITEMS (sizeof items / sizeof items[0])

const char *allow_name(uint32_t bit)
{
    for (size_t i = 0; i < NITEMS; i++)
        if (items[i].bits == bit)
            return items[i].name;
    return "?";
}

static int module_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 200)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

/* The bits of one item, or -1 (a require.NAME: 0 bits, *mod set). */
static long item_bits(const char *s, size_t n, int pool_list, int *is_mod)
{
    *is_mod = 0;
    for (size_t i = 0; i < NITEMS; i++)
        if (strlen(items[i].name) == n && memcmp(items[i].name, s, n) == 0)
            return (long)items[i].bits;
    if (!pool_list && n > 8 && memcmp(s, "require.", 8) == 0 && module_name_ok(s + 8, n - 8)) {
        *is_mod = 1;
        return 0;
    }
    return -1;
}

int allow_check_item(const char *s, size_t len, int pool_list, char *why, size_t whylen)
{
    int is_mod;
    if (item_bits(s, len, pool_list, &is_mod) >= 0)
        return 0;
    if (why) {
        int n =
            snprintf(why, whylen,
                     "%s expected: os, os.execute, os.remove, os.rename, os.tmpname, os.getenv, "
                     "io, "
                     "io.popen, io.open.write, io.open.special, package.loadlib, debug, "
                     "load.binary, exec, http, require%s, all or none",
                     pool_list ? "one of" : "items", pool_list ? "" : ", require.NAME");
        if (n > 0 && (size_t)n < whylen && pool_list && len > 8 && memcmp(s, "require.", 8) == 0)
            snprintf(why + n, whylen - (size_t)n,
                     " ('require.NAME' is only for worker.allow; a pool's list takes 'require': "
                     "the C modules the worker allows)");
    }
    return -1;
}

static void trim(const char **s, const char **e)
{
    while (*s < *e && (**s == ' ' || **s == '\t'))
        (*s)++;
    while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
        (*e)--;
}

int allow_parse(const char *list, int pool_list, allow_set *out, char *why, size_t whylen)
{
    out->bits = 0;
    out->mods = NULL;
    size_t modlen = 0;
    int none = 0, others = 0;
    const char *p = list;
    while (*p) {
        const char *comma = strchr(p, ',');
        const char *s = p, *e = comma ? comma : p + strlen(p);
        p = comma ? comma + 1 : e;
        trim(&s, &e);
        if (s == e)
            continue;
        int is_mod;
        long b = item_bits(s, (size_t)(e - s), pool_list, &is_mod);
        if (b < 0) {
            char w[300];
            allow_check_item(s, (size_t)(e - s), pool_list, w, sizeof w);
            if (why)
                snprintf(why, whylen, "'%.*s': %s", (int)(e - s > 60 ? 60 : e - s), s, w);
            allow_set_free(out);
            return -1;
        }
        if (!is_mod && (e - s) == 4 && memcmp(s, "none", 4) == 0)
            none = 1;
        else
            others = 1;
        if (none && others) {
            if (why)
                snprintf(why, whylen,
                         "'none' allows nothing and cannot be combined with other items "
                         "(got '%.*s')",
                         (int)(strlen(list) > 80 ? 80 : strlen(list)), list);
            allow_set_free(out);
            return -1;
        }
        out->bits |= (uint32_t)b;
        if (is_mod) {
            size_t n = (size_t)(e - s) - 8;
            char *m = realloc(out->mods, modlen + n + 2);
            if (!m) {
                allow_set_free(out);
                return -2;
            }
            out->mods = m;
            if (modlen)
                m[modlen++] = ',';
            memcpy(m + modlen, s + 8, n);
            modlen += n;
            m[modlen] = 0;
        }
    }
    return 0;
}

void allow_set_free(allow_set *s)
{
    free(s->mods);
    s->mods = NULL;
}

int allow_module(const allow_set *s, const char *name)
{
    if (s->bits & ALLOW_REQUIRE)
        return 1;
    if (!s->mods)
        return 0;
    size_t n = strlen(name);
    for (const char *p = s->mods; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0)
            return 1;
        if (!comma)
            break;
        p = comma + 1;
    }
    return 0;
}
