/*
 * Tests of http/openapi.yaml against the router (http/router.c) and of the static routes
 * (http/routes_static.c). The document's paths are read minimally, without a YAML library:
 * under the top-level `paths:` key, a path is a line `  /path:` at two spaces of indent and
 * its operations are the HTTP-method keys `    get:` at four. Then every route of the
 * router must be documented (as its path with or without the trailing slash), every
 * documented operation must be routed, and the document must name every route of the API
 * contract. A real ticketd then serves the embedded document byte for byte (and its headers
 * alone to HEAD) and the storefront, the admin console and the /docs page with no reference
 * to another host.
 */
#include "engine/embedded.h"
#include "http/router.h"
#include "tests/support/api.h"

#include <check.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define OPENAPI_PATH TK_SOURCE_DIR "/http/openapi.yaml"
#define ADMIN_PAGE_PATH TK_SOURCE_DIR "/http/admin.html"
#define STOREFRONT_PATH TK_SOURCE_DIR "/http/storefront.html"
#define DOCS_PAGE_PATH TK_SOURCE_DIR "/http/docs.html"
#define MAX_OPS 64

typedef struct st_op_t {
    char method[8]; /* upper case */
    char path[128]; /* as written in the document */
} op_t;

static op_t doc_ops[MAX_OPS];
static size_t doc_nops;

/* Every route of the API contract (shared API.md), paths written as it writes them. */
static const op_t api_routes[] = {
    {"GET", "/events/event/"},
    {"POST", "/events/event/"},
    {"GET", "/events/reservation/"},
    {"POST", "/events/reservation/"},
    {"PUT", "/events/reservation/"},
    {"DELETE", "/events/reservation/"},
    {"GET", "/transactions/list/"},
    {"GET", "/events/stats/"},
    {"POST", "/admin/events"},
    {"GET", "/healthz"},
    {"GET", "/metrics"},
    {"HEAD", "/openapi.yaml"},
    {"GET", "/"},
    {"GET", "/docs"},
    {"GET", "/openapi.yaml"},
    {"POST", "/events/queue/"},
    {"GET", "/events/queue/"},
    {"PUT", "/admin/events/{event_id}/waiting-room"},
    {"GET", "/admin/events/{event_id}/waiting-room"},
    {"GET", "/admin/"},
};

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)size + 1);
    ck_assert(buf != NULL);
    ck_assert_int_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
    buf[size] = '\0';
    fclose(f);
    *len = (size_t)size;
    return buf;
}

static int is_method(const char *word, size_t len)
{
    static const char *const methods[] = {"get", "put", "post", "delete", "options", "head", "patch", "trace"};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); ++i)
        if (strlen(methods[i]) == len && memcmp(methods[i], word, len) == 0)
            return 1;
    return 0;
}

/* The length of the key of a line `<indent spaces>key:` (nothing but a comment after the
 * colon), or 0 when the line is not such a key at exactly that indent. */
static size_t key_at(const char *line, size_t indent)
{
    for (size_t i = 0; i < indent; ++i)
        if (line[i] != ' ')
            return 0;
    const char *key = line + indent;
    size_t len = strcspn(key, ":\n");
    if (len == 0 || key[len] != ':' || key[0] == ' ' || key[0] == '#')
        return 0;
    const char *rest = key + len + 1;
    while (*rest == ' ')
        ++rest;
    return *rest == '\0' || *rest == '\n' || *rest == '#' ? len : 0;
}

static void parse_document(void)
{
    size_t len;
    char *doc = read_file(OPENAPI_PATH, &len);
    int in_paths = 0;
    char path[128] = "";
    doc_nops = 0;
    for (char *line = doc; line != NULL && *line != '\0';) {
        char *next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        size_t n;
        if (line[0] != ' ' && line[0] != '#' && line[0] != '\0') {
            in_paths = strcmp(line, "paths:") == 0;
        } else if (in_paths && (n = key_at(line, 2)) != 0) {
            ck_assert_msg(line[2] == '/' && n < sizeof(path), "not a path under paths: %s", line);
            memcpy(path, line + 2, n);
            path[n] = '\0';
        } else if (in_paths && (n = key_at(line, 4)) != 0 && is_method(line + 4, n)) {
            ck_assert_msg(path[0] != '\0' && doc_nops < MAX_OPS, "operation outside a path: %s", line);
            op_t *op = &doc_ops[doc_nops++];
            for (size_t i = 0; i < n; ++i)
                op->method[i] = (char)toupper((unsigned char)line[4 + i]);
            op->method[n] = '\0';
            snprintf(op->path, sizeof(op->path), "%s", path);
        }
        line = next;
    }
    free(doc);
}

/* a documented path names a router path: the same, or with one trailing slash more */
static int same_route(const char *doc_path, const char *router_path)
{
    /* a router '*' stands for one path parameter of the document, "{name}" */
    const char *star = strchr(router_path, '*');
    if (star != NULL) {
        size_t head = (size_t)(star - router_path);
        const char *close = strchr(doc_path, '}');
        return strncmp(doc_path, router_path, head) == 0 && doc_path[head] == '{' && close != NULL &&
               same_route(close + 1, star + 1);
    }
    size_t n = strlen(router_path);
    return strncmp(doc_path, router_path, n) == 0 && (doc_path[n] == '\0' || strcmp(doc_path + n, "/") == 0);
}

static int documented(const char *method, const char *router_path)
{
    for (size_t i = 0; i < doc_nops; ++i)
        if (strcasecmp(doc_ops[i].method, method) == 0 && same_route(doc_ops[i].path, router_path))
            return 1;
    return 0;
}

static int routed(const op_t *op)
{
    const char *method, *path;
    for (size_t i = 0; tk_router_route(i, &method, &path) == 0; ++i)
        if (strcasecmp(op->method, method) == 0 && same_route(op->path, path))
            return 1;
    return 0;
}

START_TEST(document_has_every_route_of_the_contract_and_no_other)
{
    char missing[1024] = "";
    size_t n = sizeof(api_routes) / sizeof(api_routes[0]);
    for (size_t i = 0; i < n; ++i) {
        int found = 0;
        for (size_t j = 0; j < doc_nops; ++j)
            found |= strcmp(doc_ops[j].method, api_routes[i].method) == 0 && strcmp(doc_ops[j].path, api_routes[i].path) == 0;
        if (!found)
            snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing), " %s %s;", api_routes[i].method,
                     api_routes[i].path);
    }
    ck_assert_msg(missing[0] == '\0', "API.md routes missing from openapi.yaml:%s", missing);
    ck_assert_msg(doc_nops == n, "openapi.yaml has %zu operations, API.md %zu", doc_nops, n);
}
END_TEST

START_TEST(every_routed_path_is_documented)
{
    char missing[1024] = "";
    const char *method, *path;
    size_t count = 0;
    for (size_t i = 0; tk_router_route(i, &method, &path) == 0; ++i, ++count)
        if (!documented(method, path))
            snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing), " %s %s;", method, path);
    ck_assert(count > 0);
    ck_assert_msg(missing[0] == '\0', "routes missing from openapi.yaml:%s", missing);
}
END_TEST

START_TEST(every_documented_operation_is_routed)
{
    char missing[1024] = "";
    for (size_t i = 0; i < doc_nops; ++i)
        if (!routed(&doc_ops[i]))
            snprintf(missing + strlen(missing), sizeof(missing) - strlen(missing), " %s %s;", doc_ops[i].method, doc_ops[i].path);
    ck_assert_msg(missing[0] == '\0', "documented but not routed:%s", missing);
}
END_TEST

START_TEST(document_is_embedded_as_is)
{
    static const struct {
        const char *name, *source, *content_type;
    } files[] = {
        {"openapi.yaml", OPENAPI_PATH, "application/yaml; charset=utf-8"},
        {"admin.html", ADMIN_PAGE_PATH, "text/html; charset=utf-8"},
        {"storefront.html", STOREFRONT_PATH, "text/html; charset=utf-8"},
        {"docs.html", DOCS_PAGE_PATH, "text/html; charset=utf-8"},
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); ++i) {
        const tk_static_file_t *f = tk_static_files;
        while (f->name != NULL && strcmp(f->name, files[i].name) != 0)
            ++f;
        ck_assert_msg(f->name != NULL, "%s is not embedded", files[i].name);
        ck_assert_str_eq(f->content_type, files[i].content_type);
        size_t len;
        char *source = read_file(files[i].source, &len);
        ck_assert_msg(f->length == len && memcmp(f->body, source, len) == 0, "embedded %s differs from the source", f->name);
        ck_assert_int_eq(f->body[f->length], '\0');
        free(source);
    }
}
END_TEST

static tk_test_server_t server;

static void start_server(void)
{
    ck_assert_int_eq(tk_test_server_start(&server, NULL, NULL), 0);
}

static void stop_server(void)
{
    tk_test_server_stop(&server);
}

START_TEST(serves_the_embedded_document)
{
    size_t len;
    char *source = read_file(OPENAPI_PATH, &len);
    static const char *const paths[] = {"/openapi.yaml", "/openapi.yaml/"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); ++i) {
        tk_http_response_t res;
        char ct[128];
        ck_assert_int_eq(tk_http_request(server.port, "GET", paths[i], NULL, NULL, 0, &res), 0);
        ck_assert_int_eq(res.status, 200);
        ck_assert_str_eq(tk_http_header(&res, "content-type", ct, sizeof(ct)), "application/yaml; charset=utf-8");
        ck_assert_msg(res.body_len == len && memcmp(res.body, source, len) == 0, "served document differs from %s", OPENAPI_PATH);
        tk_http_response_free(&res);
    }
    free(source);
}
END_TEST

START_TEST(serves_the_document_headers_to_head)
{
    size_t len;
    char *source = read_file(OPENAPI_PATH, &len);
    tk_http_response_t res;
    char ct[128], cl[32];
    ck_assert_int_eq(tk_http_request(server.port, "HEAD", "/openapi.yaml", NULL, NULL, 0, &res), 0);
    ck_assert_int_eq(res.status, 200);
    ck_assert_str_eq(tk_http_header(&res, "content-type", ct, sizeof(ct)), "application/yaml; charset=utf-8");
    ck_assert_ptr_nonnull(tk_http_header(&res, "content-length", cl, sizeof(cl)));
    ck_assert_int_eq(strtoul(cl, NULL, 10), len);
    ck_assert_int_eq(res.body_len, 0);
    tk_http_response_free(&res);
    free(source);
}
END_TEST

/* Each page is HTML under a CSP that allows nothing from elsewhere, names no other host,
 * and carries the ids its browser tests and dashboards rely on. */
static void check_page(const char *const *paths, size_t npaths, const char *const *ids, size_t nids)
{
    static const char *const external[] = {"http://", "https://", "src=\"//", "href=\"//", "url(//", "@import"};
    for (size_t i = 0; i < npaths; ++i) {
        tk_http_response_t res;
        char ct[128], csp[512];
        ck_assert_int_eq(tk_http_request(server.port, "GET", paths[i], NULL, NULL, 0, &res), 0);
        ck_assert_int_eq(res.status, 200);
        ck_assert_str_eq(tk_http_header(&res, "content-type", ct, sizeof(ct)), "text/html; charset=utf-8");
        ck_assert_ptr_nonnull(tk_http_header(&res, "content-security-policy", csp, sizeof(csp)));
        ck_assert_ptr_nonnull(strstr(csp, "default-src 'none'"));
        ck_assert_ptr_nonnull(strstr(res.body, "<!doctype html>"));
        for (size_t j = 0; j < sizeof(external) / sizeof(external[0]); ++j)
            ck_assert_msg(strstr(res.body, external[j]) == NULL, "%s: the page refers to another host (%s)", paths[i], external[j]);
        for (size_t j = 0; j < nids; ++j) {
            char attr[64];
            snprintf(attr, sizeof(attr), "id=\"%s\"", ids[j]);
            ck_assert_msg(strstr(res.body, attr) != NULL, "the page has no %s", attr);
        }
        tk_http_response_free(&res);
    }
}

START_TEST(serves_a_self_contained_admin_page)
{
    static const char *const paths[] = {"/admin/", "/admin"};
    static const char *const ids[] = {"stat-capacity",    "stat-available",       "stat-held",    "stat-sold",
                                      "stat-expired",     "stat-cancelled",       "stat-revenue", "stat-persistence-lag",
                                      "stat-turned-away", "stat-payments-failed", "create-form",  "room-form"};
    check_page(paths, sizeof(paths) / sizeof(paths[0]), ids, sizeof(ids) / sizeof(ids[0]));
}
END_TEST

START_TEST(serves_a_self_contained_storefront_and_docs_page)
{
    static const char *const store[] = {"/"};
    static const char *const store_ids[] = {"event-list",    "order-form", "hold-button", "card",          "pay-button",
                                            "cancel-button", "countdown",  "receipt",     "queue-position"};
    check_page(store, 1, store_ids, sizeof(store_ids) / sizeof(store_ids[0]));
    static const char *const docs[] = {"/docs", "/docs/"};
    static const char *const docs_ids[] = {"ops"};
    check_page(docs, 2, docs_ids, 1);
}
END_TEST

START_TEST(other_methods_are_refused)
{
    int status;
    json_t *body = tk_api_call(&server, "POST", "/openapi.yaml", TK_JSON_HEADER, "{}", &status);
    ck_assert_int_eq(status, 405);
    tk_api_assert_error_shape(body);
    json_decref(body);
    body = tk_api_call(&server, "DELETE", "/admin/", NULL, NULL, &status);
    ck_assert_int_eq(status, 405);
    tk_api_assert_error_shape(body);
    json_decref(body);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("openapi");
    TCase *doc = tcase_create("document");
    tcase_add_checked_fixture(doc, parse_document, NULL);
    tcase_add_test(doc, document_has_every_route_of_the_contract_and_no_other);
    tcase_add_test(doc, every_routed_path_is_documented);
    tcase_add_test(doc, every_documented_operation_is_routed);
    tcase_add_test(doc, document_is_embedded_as_is);
    suite_add_tcase(suite, doc);
    TCase *served = tcase_create("served");
    tcase_set_timeout(served, 60);
    tcase_add_unchecked_fixture(served, start_server, stop_server);
    tcase_add_test(served, serves_the_embedded_document);
    tcase_add_test(served, serves_the_document_headers_to_head);
    tcase_add_test(served, serves_a_self_contained_admin_page);
    tcase_add_test(served, serves_a_self_contained_storefront_and_docs_page);
    tcase_add_test(served, other_methods_are_refused);
    suite_add_tcase(suite, served);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed != 0;
}
