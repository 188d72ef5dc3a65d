/*
 * libFuzzer target for http/jsonr.c: request bodies as the routes see them. Each input
 * is parsed by tk_jsonr_parse_object into an h2o pool (through the pool-aware jansson
 * allocator), and every id field a route reads is run through tk_jsonr_uuid; a parsed
 * object must also re-serialise. The same bytes then go through
 * tk_jsonr_request_object on a minimal h2o_req_t (pool, headers, entity): when the
 * input has a '\n' in its first 64 bytes, what precedes it is sent as Content-Type.
 * Pools are cleared after each input, as a request's is, so ASan sees any pointer that
 * outlives them.
 */
#include "http/jsonr.h"
#include "engine/config.h"
#include "engine/uuid.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* respond.c drags in the whole server; this stand-in records the status the route
 * would have answered with. */
static int answered;

void tk_respond_error(h2o_req_t *req, int status, const char *error, const char *message)
{
    if (answered != 0 || error[0] == '\0' || message[0] == '\0')
        abort(); /* one answer per request, always with a reason */
    answered = status;
}

static const char *const id_fields[] = {"event_id", "reservation_id", "transaction_id", "id"};

static void check_object(json_t *obj)
{
    if (!json_is_object(obj))
        abort();
    for (size_t i = 0; i < sizeof(id_fields) / sizeof(id_fields[0]); ++i) {
        char id[TK_UUID_LEN + 1];
        int rc = tk_jsonr_uuid(obj, id_fields[i], id);
        if (rc == 0) {
            /* canonical: 36 characters, lower-case hex and dashes */
            if (strlen(id) != TK_UUID_LEN)
                abort();
            for (size_t j = 0; j < TK_UUID_LEN; ++j)
                if (id[j] >= 'A' && id[j] <= 'F')
                    abort();
        } else if (rc != -1 && rc != -2) {
            abort();
        }
    }
    /* the routes' own walk: tickets[].type / .amount */
    json_t *tickets = json_object_get(obj, "tickets");
    for (size_t i = 0; json_is_array(tickets) && i < json_array_size(tickets); ++i) {
        json_t *line = json_array_get(tickets, i), *type = json_object_get(line, "type");
        if (json_is_string(type) && memchr(json_string_value(type), 0, json_string_length(type)) != NULL)
            abort(); /* jansson refuses \u0000 unless asked; the routes rely on that */
        (void)json_integer_value(json_object_get(line, "amount"));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int initialised;
    if (!initialised) {
        tk_jsonr_init();
        initialised = 1;
    }
    /* a private copy: the body is not NUL-terminated in a request either */
    char *copy = malloc(size + 1);
    memcpy(copy, data, size);

    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    char err[256];
    json_t *obj = tk_jsonr_parse_object(&pool, copy, size, err, sizeof(err));
    if (obj == NULL) {
        if (err[0] == '\0')
            abort(); /* a refusal always says why */
    } else {
        check_object(obj);
        /* outside a parse the allocator falls back to the heap: dumping must work, and
         * what it returns goes back through jansson's free hook, not free() */
        json_malloc_t alloc_fn;
        json_free_t free_fn;
        json_get_alloc_funcs(&alloc_fn, &free_fn);
        char *dumped = json_dumps(obj, JSON_COMPACT | JSON_ENCODE_ANY);
        if (dumped == NULL)
            abort();
        free_fn(dumped);
    }
    h2o_mem_clear_pool(&pool);

    h2o_req_t req;
    memset(&req, 0, sizeof(req));
    h2o_mem_init_pool(&req.pool);
    const char *nl = memchr(copy, '\n', size < 64 ? size : 64);
    req.entity = h2o_iovec_init(copy, size);
    if (nl != NULL) {
        h2o_add_header(&req.pool, &req.headers, H2O_TOKEN_CONTENT_TYPE, NULL, copy, (size_t)(nl - copy));
        req.entity = h2o_iovec_init(nl + 1, size - (size_t)(nl + 1 - copy));
    }
    answered = 0;
    obj = tk_jsonr_request_object(&req);
    if (obj != NULL) {
        if (answered != 0)
            abort();
        check_object(obj);
    } else if (answered != 400 && answered != 413 && answered != 415) {
        abort();
    } else if (answered == 413 && req.entity.len <= TK_BODY_MAX) {
        abort();
    }
    h2o_mem_clear_pool(&req.pool);
    free(copy);
    return 0;
}
