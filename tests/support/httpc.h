/*
 * A small blocking HTTP/1.1 client for tests: one request per connection, the whole
 * response read (Content-Length or chunked), headers kept for inspection.
 */
#ifndef TK_TEST_HTTPC_H
#define TK_TEST_HTTPC_H

#include <stddef.h>

typedef struct st_tk_http_response_t {
    int status;
    char *headers; /* raw header block, NUL-terminated */
    char *body;    /* NUL-terminated */
    size_t body_len;
} tk_http_response_t;

/* extra_headers: "Name: value\r\n" lines or NULL. 0 on success. */
int tk_http_request(int port, const char *method, const char *path, const char *extra_headers, const char *body, size_t body_len,
                    tk_http_response_t *res);
void tk_http_response_free(tk_http_response_t *res);
/* the value of the first header called name (case-insensitive), copied into buf; NULL when absent */
const char *tk_http_header(const tk_http_response_t *res, const char *name, char *buf, size_t bufsize);

#endif
