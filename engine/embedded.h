/*
 * Files embedded into the binary at build time (see cmake/embed.cmake): the Redis
 * function library from lua/ and the numbered SQL migrations from sql/, in order.
 */
#ifndef TK_EMBEDDED_H
#define TK_EMBEDDED_H

#include <stddef.h>

typedef struct st_tk_migration_t {
    const char *name; /* file name, e.g. "001_initial.sql"; its leading number is the version */
    const char *sql;
} tk_migration_t;

extern const char *const tk_lua_library;
extern const tk_migration_t tk_migrations[];
extern const size_t tk_migrations_count;

#endif
