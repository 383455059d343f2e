/* timerheap.c: binary min-heap of deadline entries (see timerheap.h). */
#include "timerheap.h"

#include <stdlib.h>

static int before(const theap_ent *a, const theap_ent *b)
{
    return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void place(theap *h, size_t i, theap_ent *e)
{
    h->v[i] = e;
    e->idx = i + 1;
}

static void sift_up(theap *h, size_t i)
{
    theap_ent *e = h->v[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(e, h->v[p]))
            break;
        place(h, i, h->v[p]);
        i = p;
    }
    place(h, i, e);
}

static void sift_down(theap *h, size_t i)
{
    theap_ent *e = h->v[i];
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        const theap_ent *best = e;
        if (l < h->n && before(h->v[l], best)) {
            m = l;
            best = h->v[l];
        }
        if (l + 1 < h->n && before(h->v[l + 1], best))
            m = l + 1;
        if (m == i)
            break;
        place(h, i, h->v[m]);
        i = m;
    }
    place(h, i, e);
}

void theap_init(theap *h)
{
    h->v = NULL;
    h->n = h->cap = 0;
    h->seq = 0;
}

void theap_free(theap *h)
{
    for (size_t i = 0; i < h->n; i++)
        h->v[i]->idx = 0;
    free(h->v);
    theap_init(h);
}

int theap_push(theap *h, theap_ent *ent)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        theap_ent **v = realloc(h->v, cap * sizeof *v);
        if (!v)
            return -1;
        h->v = v;
        h->cap = cap;
    }
    ent->seq = h->seq++;
    place(h, h->n++, ent);
    sift_up(h, h->n - 1);
    return 0;
}

void theap_remove(theap *h, theap_ent *ent)
{
    if (!ent->idx)
        return;
    size_t i = ent->idx - 1;
    ent->idx = 0;
    theap_ent *last = h->v[--h->n];
    if (i == h->n)
        return;
    place(h, i, last);
    if (i > 0 && before(last, h->v[(i - 1) / 2]))
        sift_up(h, i);
    else
        sift_down(h, i);
}
