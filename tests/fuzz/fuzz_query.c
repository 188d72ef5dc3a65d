/*
 * libFuzzer target for http/query.c: query strings as the routes read them. The input
 * is a query string (after '?'); every parameter name the routes look up is fetched
 * and, when found, parsed as a whole number as the pagination does. Decoded values
 * live in an h2o pool that is cleared after each input.
 */
#include "http/query.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[] = {"current_page", "page_size", "reservation_id", "transaction_id", "event_id", "", "a"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    /* a private copy, so a read past the end is an ASan report rather than luck */
    char *copy = malloc(size + 1);
    memcpy(copy, data, size);
    h2o_iovec_t query = h2o_iovec_init(copy, size);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); ++i) {
        h2o_iovec_t value = {NULL, 0};
        int found = tk_query_get(query, names[i], &pool, &value);
        if (found == 1) {
            if (value.base == NULL || value.len > size || value.base[value.len] != '\0')
                abort(); /* decoded values are NUL-terminated and never longer than the input */
            int64_t n;
            if (tk_query_parse_int(value, &n) == 0 && value.len > 0 && value.base[0] != '-' && n < 0)
                abort(); /* a positive number never turns negative: it saturates */
        } else if (found != 0 && found != -1) {
            abort();
        }
    }
    /* the raw input as a number too */
    int64_t n;
    if (tk_query_parse_int(h2o_iovec_init(copy, size), &n) == 0 && size > 0 && copy[0] != '-' && n < 0)
        abort();
    free(copy);
    h2o_mem_clear_pool(&pool);
    return 0;
}
