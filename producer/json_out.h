/* json_out.h: JSON text written straight to a stream, for the operations
 * commands' --json output (cli_ops.c, dlq.c). */
#ifndef MUTIRAO_JSON_OUT_H
#define MUTIRAO_JSON_OUT_H

#include <stddef.h>
#include <stdio.h>

/* Writes s (n bytes) as a JSON string: quotes, backslashes and control
 * characters escaped; other bytes as they are (the stored text is UTF-8). */
void json_out_str(FILE *f, const char *s, size_t n);

#endif
