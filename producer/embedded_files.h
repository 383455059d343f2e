/* embedded_files.h: files built into the `mutirao` command (the
 * dashboard's page, script and style under producer/dashboard/), made by
 * cmake/embed_files.cmake. */
#ifndef MUTIRAO_EMBEDDED_FILES_H
#define MUTIRAO_EMBEDDED_FILES_H

#include <stddef.h>

typedef struct embedded_file {
    const char *name; /* "index.html" */
    const unsigned char *data;
    size_t len;
} embedded_file;

/* Ended by an entry whose name is NULL. */
extern const embedded_file embedded_files[];

#endif
