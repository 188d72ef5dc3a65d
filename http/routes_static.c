/*
 * Static routes: GET and HEAD /openapi.yaml (the API's OpenAPI document), GET / (the
 * buyers' storefront), GET /docs (the API reference, rendered from the document in the
 * browser) and GET /admin/ (the organiser's console), each one self-contained file.
 * They are embedded into the binary at build time (cmake/embed.cmake), so they are sent
 * straight from read-only memory: no file system access and no copy into the request pool.
 */
#include "engine/embedded.h"
#include "http/respond.h"
#include "http/routes.h"

#include <string.h>

/* The dashboard may talk to this origin only and load nothing from anywhere else. */
#define ADMIN_PAGE_CSP                                                                                                             \
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; "        \
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static const tk_static_file_t *find_static(const char *name)
{
    for (const tk_static_file_t *f = tk_static_files; f->name != NULL; ++f)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

/* name in lower case; h2o 2.2 has no tokens for the security headers */
static void add_header(h2o_req_t *req, const char *name, const char *value)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL, value, strlen(value));
}

/* Sends the embedded file called name with 200, or a JSON 500 when the build left it out. */
static int send_static(h2o_req_t *req, const char *name, int is_page)
{
    static h2o_generator_t generator = {NULL, NULL};
    const tk_static_file_t *f = find_static(name);
    if (f == NULL) {
        tk_respond_error(req, 500, "Internal error", "This build does not carry the file");
        return 0;
    }
    req->res.status = 200;
    req->res.reason = "OK";
    req->res.content_length = f->length;
    add_header(req, "content-type", f->content_type);
    add_header(req, "cache-control", "no-cache");
    add_header(req, "x-content-type-options", "nosniff");
    if (is_page) {
        add_header(req, "content-security-policy", ADMIN_PAGE_CSP);
        add_header(req, "x-frame-options", "DENY");
        add_header(req, "referrer-policy", "no-referrer");
    }
    h2o_start_response(req, &generator);
    /* HEAD: the same headers, Content-Length included, and no body (h2o leaves that to us) */
    int is_head = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    h2o_iovec_t body = h2o_iovec_init(f->body, f->length);
    h2o_send(req, &body, is_head ? 0 : 1, H2O_SEND_STATE_FINAL);
    return 0;
}

int tk_route_openapi(h2o_req_t *req, tk_thread_t *thread)
{
    return send_static(req, "openapi.yaml", 0);
}

int tk_route_admin_page(h2o_req_t *req, tk_thread_t *thread)
{
    return send_static(req, "admin.html", 1);
}

int tk_route_storefront(h2o_req_t *req, tk_thread_t *thread)
{
    return send_static(req, "storefront.html", 1);
}

int tk_route_docs_page(h2o_req_t *req, tk_thread_t *thread)
{
    return send_static(req, "docs.html", 1);
}
