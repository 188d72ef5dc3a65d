/*
 * Shorthands for integration tests: requests against a test server that return the
 * parsed JSON body (jansson) and the status, with check assertions on transport errors.
 */
#ifndef TK_TEST_API_H
#define TK_TEST_API_H

#include "tests/support/harness.h"
#include "tests/support/httpc.h"

#include <jansson.h>

#define TK_JSON_HEADER "Content-Type: application/json\r\n"

/* sends the request and parses the body as JSON (NULL when it is not JSON); *status gets the code */
json_t *tk_api_call(const tk_test_server_t *s, const char *method, const char *path, const char *headers, const char *body,
                    int *status);
/* POST /admin/events with headers (the JSON content type and the admin token) and body;
 * asserts 201 and copies the new event's id into id (37 bytes) */
void tk_api_create_event(const tk_test_server_t *s, const char *headers, const char *body, char *id);
/* asserts that body is the API's error shape {"error": string, "message": string} */
void tk_api_assert_error_shape(json_t *body);
/* the value of a metric without labels in GET /metrics (headers: e.g. the metrics token,
 * or NULL); -1 when the page does not have it */
long long tk_api_metric(const tk_test_server_t *s, const char *headers, const char *name);

#endif
