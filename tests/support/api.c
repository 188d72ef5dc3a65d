/*
 * The request shorthands behind tests/support/api.h.
 */
#include "tests/support/api.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *tk_api_call(const tk_test_server_t *s, const char *method, const char *path, const char *headers, const char *body,
                    int *status)
{
    tk_http_response_t res;
    ck_assert_msg(tk_http_request(s->port, method, path, headers, body, body != NULL ? strlen(body) : 0, &res) == 0,
                  "%s %s: no HTTP response", method, path);
    *status = res.status;
    json_t *parsed = json_loadb(res.body, res.body_len, 0, NULL);
    tk_http_response_free(&res);
    return parsed;
}

void tk_api_assert_error_shape(json_t *body)
{
    ck_assert_ptr_nonnull(body);
    ck_assert(json_is_string(json_object_get(body, "error")));
    ck_assert(json_is_string(json_object_get(body, "message")));
}

void tk_api_create_event(const tk_test_server_t *s, const char *headers, const char *body, char *id)
{
    int status;
    json_t *res = tk_api_call(s, "POST", "/admin/events", headers, body, &status);
    ck_assert_msg(status == 201, "creating an event answered %d", status);
    const char *created = json_string_value(json_object_get(json_object_get(res, "event"), "id"));
    ck_assert_ptr_nonnull(created);
    snprintf(id, 37, "%s", created);
    json_decref(res);
}

long long tk_api_metric(const tk_test_server_t *s, const char *headers, const char *name)
{
    tk_http_response_t res;
    ck_assert_int_eq(tk_http_request(s->port, "GET", "/metrics", headers, NULL, 0, &res), 0);
    char pattern[128];
    snprintf(pattern, sizeof(pattern), "\n%s ", name);
    const char *at = strstr(res.body, pattern);
    long long v = at != NULL ? atoll(at + strlen(pattern)) : -1;
    tk_http_response_free(&res);
    return v;
}
