/*
 * Files embedded into the binary at build time (see cmake/embed.cmake): the Redis
 * function library from lua/, the numbered SQL migrations from sql/, in order, and the
 * static files served over HTTP.
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

/* A static file served over HTTP (http/openapi.yaml, http/admin.html), by file name. */
typedef struct st_tk_static_file_t {
    const char *name;         /* file name, e.g. "openapi.yaml" */
    const char *content_type; /* e.g. "application/yaml; charset=utf-8" */
    const char *body;         /* length bytes, NUL-terminated */
    size_t length;
} tk_static_file_t;

/* tk_static_files_count entries, then one whose name is NULL */
extern const tk_static_file_t tk_static_files[];
extern const size_t tk_static_files_count;

#endif
