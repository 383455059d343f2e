/*
** decimal.h: an unsigned integer in decimal, written by hand where a
** snprintf per call would cost too much (every argument of a Redis command,
** every task id, every delivery question).
**
**     char *end = dec_put(p, n);    dec_len(n) digits at p, no NUL
**     *dec_put(buf, n) = 0;         as a string (buf: 21 bytes hold any n)
*/
#ifndef MUTIRAO_DECIMAL_H
#define MUTIRAO_DECIMAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Decimal digits of n (1 for 0). */
static inline size_t dec_len(uint64_t n)
{
    size_t d = 1;
    while (n >= 10) {
        n /= 10;
        d++;
    }
    return d;
}

/* Writes n in decimal at p (dec_len(n) bytes, no NUL); returns the end. */
static inline char *dec_put(char *p, uint64_t n)
{
    char *end = p + dec_len(n), *q = end;
    do {
        *--q = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    return end;
}

#ifdef __cplusplus
}
#endif

#endif
