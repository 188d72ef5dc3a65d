/*
 * Reading JSON request bodies. The checks run in the API's order: content type (415),
 * size (413), syntax and shape (400). Parsing allocates from the request's pool through
 * jansson's allocator hooks, so a parsed body costs no malloc and needs no freeing.
 */
#ifndef TK_JSONR_H
#define TK_JSONR_H

#include <h2o.h>
#include <jansson.h>

/* installs the pool-aware allocator; call once before any thread parses */
void tk_jsonr_init(void);
/* Parses buf as a JSON object into pool memory. NULL with a reason in err when it is not
 * valid JSON or not an object. */
json_t *tk_jsonr_parse_object(h2o_mem_pool_t *pool, const char *buf, size_t len, char *err, size_t errsize);
/* The request's body as a JSON object; on any problem answers the request itself (415,
 * 413 or 400) and returns NULL. An empty body is an empty object. */
json_t *tk_jsonr_request_object(h2o_req_t *req);
/* obj[key] as a canonical lower-case UUID into out[37]: 0 ok, -1 missing or not a string,
 * -2 a string that is not a UUID */
int tk_jsonr_uuid(json_t *obj, const char *key, char *out);
/* As tk_jsonr_uuid for a field the request must carry: 0 and the UUID, or answers 400
 * ("Missing <key>" / "Invalid <key>") and returns -1. */
int tk_jsonr_require_uuid(h2o_req_t *req, json_t *obj, const char *key, char *out);

#endif
