/*
 * The pool allocator behind jansson. While a thread parses, a thread-local pointer
 * names the request pool and every allocation is taken from it, marked so that
 * jansson's frees of it are no-ops; outside a parse, allocations fall back to the heap
 * and frees are real. Jansson keeps its recursion-depth limit (2048), rejects NUL bytes
 * in strings and invalid UTF-8, and we ask it to reject duplicate keys too.
 */
#include "http/jsonr.h"
#include "engine/config.h"
#include "engine/uuid.h"
#include "http/respond.h"

#include <string.h>

#define HEADER_SIZE 16
#define FROM_POOL 0x706f6f6cu
#define FROM_HEAP 0x68656170u

static __thread h2o_mem_pool_t *parse_pool;

static void *json_alloc(size_t size)
{
    char *p;
    if (parse_pool != NULL) {
        p = h2o_mem_alloc_pool(parse_pool, size + HEADER_SIZE);
        *(unsigned *)p = FROM_POOL;
    } else {
        p = h2o_mem_alloc(size + HEADER_SIZE);
        *(unsigned *)p = FROM_HEAP;
    }
    return p + HEADER_SIZE;
}

static void json_free(void *ptr)
{
    if (ptr == NULL)
        return;
    char *p = (char *)ptr - HEADER_SIZE;
    if (*(unsigned *)p == FROM_HEAP)
        free(p);
}

void tk_jsonr_init(void)
{
    json_set_alloc_funcs(json_alloc, json_free);
    json_object_seed(0);
}

json_t *tk_jsonr_parse_object(h2o_mem_pool_t *pool, const char *buf, size_t len, char *err, size_t errsize)
{
    json_error_t jerr;
    parse_pool = pool;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    parse_pool = NULL;
    if (root == NULL) {
        snprintf(err, errsize, "Request body is not valid JSON: %s", jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        snprintf(err, errsize, "Request body must be a JSON object");
        return NULL;
    }
    return root;
}

/* Accepts application/json with or without parameters; a missing content type too. */
static int content_type_ok(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (i == -1)
        return 1;
    h2o_iovec_t v = req->headers.entries[i].value;
    size_t n = 0;
    while (n < v.len && v.base[n] != ';' && v.base[n] != ' ')
        ++n;
    return h2o_lcstris(v.base, n, H2O_STRLIT("application/json"));
}

json_t *tk_jsonr_request_object(h2o_req_t *req)
{
    if (!content_type_ok(req)) {
        tk_respond_error(req, 415, "Unsupported media type", "Send the request body as application/json");
        return NULL;
    }
    if (req->entity.len > TK_BODY_MAX) {
        tk_respond_error(req, 413, "Request body too large", "Request bodies are limited to 64 KiB");
        return NULL;
    }
    if (req->entity.base == NULL || req->entity.len == 0) {
        parse_pool = &req->pool;
        json_t *empty = json_object();
        parse_pool = NULL;
        return empty;
    }
    char err[256];
    json_t *obj = tk_jsonr_parse_object(&req->pool, req->entity.base, req->entity.len, err, sizeof(err));
    if (obj == NULL)
        tk_respond_error(req, 400, "Malformed request", err);
    return obj;
}

int tk_jsonr_uuid(json_t *obj, const char *key, char *out)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v))
        return -1;
    return tk_uuid_normalize(json_string_value(v), json_string_length(v), out) == 0 ? 0 : -2;
}

int tk_jsonr_require_uuid(h2o_req_t *req, json_t *obj, const char *key, char *out)
{
    char error[64], message[128];
    switch (tk_jsonr_uuid(obj, key, out)) {
    case 0:
        return 0;
    case -1:
        snprintf(error, sizeof(error), "Missing %s", key);
        snprintf(message, sizeof(message), "The request body needs \"%s\", a UUID", key);
        break;
    default:
        snprintf(error, sizeof(error), "Invalid %s", key);
        snprintf(message, sizeof(message), "%s must be a UUID", key);
    }
    tk_respond_error(req, 400, error, message);
    return -1;
}
