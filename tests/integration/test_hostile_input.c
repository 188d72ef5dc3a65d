/*
 * Hostile input against a real ticketd: a table of malformed and malicious requests —
 * broken and deeply nested JSON, wrong types in every field of every route, huge
 * numbers, NUL bytes, invalid UTF-8, overlong strings and bodies, unknown fields, wrong
 * methods, forged and garbled cookies, bad UUIDs, SQL-looking ids, hostile query strings,
 * wrong content types, bad Idempotency-Keys, malformed admin credentials and oversized
 * headers — each sent raw over its own connection with the status it must get. After
 * every row the server must still answer /healthz; after the table the test's event,
 * its reservations and PostgreSQL must be exactly as before. A second case holds slow
 * clients (half a request line, a stalled body, trickled headers) open while others are
 * served. Two more follow input the admin route accepts to its edges: type names of 64
 * multi-byte characters, and prices whose payment total exceeds what PostgreSQL holds.
 */
#include "engine/uuid.h"
#include "http/session.h"
#include "tests/support/api.h"

#include <arpa/inet.h>
#include <check.h>
#include <ctype.h>
#include <hiredis/hiredis.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define ADMIN_TOKEN "tk-test-only-admin-token-0123456789abcdef"
#define SECRET "tk-test-only-secret-for-hostile-input-0123456789abcdef0123456789"
#define OTHER_SECRET "tk-test-only-another-secret-0123456789abcdef0123456789abcdef01"
#define SQL "'; DROP TABLE events;--"
#define VIP_AMOUNT 50
#define SILVER_AMOUNT 20

static tk_test_server_t server;

static void start_server(void)
{
    const char *env[] = {"TICKETD_ADMIN_TOKEN=" ADMIN_TOKEN, "TICKETD_SECRET=" SECRET, NULL};
    ck_assert_int_eq(tk_test_server_start(&server, env, NULL), 0);
}

static void stop_server(void)
{
    tk_test_server_stop(&server);
}

/* ---- a raw HTTP/1.1 client: exactly the bytes we choose, any status or none ---- */

typedef struct st_raw_response_t {
    int status; /* 0: the connection closed (or reset) without an HTTP response */
    char *head; /* status line and headers, NUL-terminated */
    char *body;
    size_t body_len;
} raw_response_t;

static int connect_to_server(int timeout_s)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)server.port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = timeout_s};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    ck_assert_msg(connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0, "connect: %s", strerror(errno));
    return fd;
}

/* Sends req and reads until the server closes. A server that closes early (as h2o does
 * on a request it will not parse) can make our write fail; that is an answer too. */
static void raw_exchange(const char *req, size_t len, raw_response_t *res)
{
    memset(res, 0, sizeof(*res));
    int fd = connect_to_server(15);
    for (size_t off = 0; off < len;) {
        ssize_t n = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    size_t cap = 1 << 16, got = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (cap - got < 4096)
            buf = realloc(buf, cap *= 2);
        ssize_t n = recv(fd, buf + got, cap - got - 1, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    char *sep = strstr(buf, "\r\n\r\n");
    if (sep != NULL && sscanf(buf, "HTTP/1.%*d %d", &res->status) == 1) {
        *sep = '\0';
        res->head = strdup(buf);
        res->body_len = got - (size_t)(sep + 4 - buf);
        res->body = malloc(res->body_len + 1);
        memcpy(res->body, sep + 4, res->body_len);
        res->body[res->body_len] = '\0';
    }
    free(buf);
}

static void raw_free(raw_response_t *res)
{
    free(res->head);
    free(res->body);
}

/* the value of header name (lower case) in the response head, into buf; NULL when absent */
static const char *raw_header(const raw_response_t *res, const char *name, char *buf, size_t bufsize)
{
    size_t nlen = strlen(name);
    for (const char *line = res->head != NULL ? strstr(res->head, "\r\n") : NULL; line != NULL; line = strstr(line + 2, "\r\n")) {
        const char *p = line + 2;
        if (strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            p += nlen + 1;
            while (*p == ' ')
                ++p;
            const char *end = strstr(p, "\r\n");
            snprintf(buf, bufsize, "%.*s", (int)(end != NULL ? (size_t)(end - p) : strlen(p)), p);
            return buf;
        }
    }
    return NULL;
}

/* ---- placeholders: the ids of this run and generated oversized values ---- */

static struct {
    char event[TK_UUID_LEN + 1], event_upper[TK_UUID_LEN + 1];
    char live[TK_UUID_LEN + 1], live_upper[TK_UUID_LEN + 1]; /* a PENDING reservation */
    char live_short[TK_UUID_LEN];                            /* its first 35 characters */
    char cancelled[TK_UUID_LEN + 1];                         /* a CANCELLED one */
    char unknown[TK_UUID_LEN + 1];                           /* never existed, in the event's shard */
    char cookie_live[TK_SESSION_VALUE_LEN + 1], cookie_cancelled[TK_SESSION_VALUE_LEN + 1];
    char cookie_unknown[TK_SESSION_VALUE_LEN + 1], cookie_other_secret[TK_SESSION_VALUE_LEN + 1];
} ids;

typedef struct st_buf_t {
    char *p;
    size_t len, cap;
} buf_t;

static void buf_add(buf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        while (b->len + n + 1 > b->cap)
            b->cap = b->cap != 0 ? b->cap * 2 : 1024;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_str(buf_t *b, const char *s)
{
    buf_add(b, s, strlen(s));
}

static const char *placeholder(const char *name, size_t len)
{
    static const struct {
        const char *name;
        const char *value;
    } table[] = {{"E", ids.event},
                 {"EU", ids.event_upper},
                 {"R", ids.live},
                 {"RU", ids.live_upper},
                 {"R35", ids.live_short},
                 {"C", ids.cancelled},
                 {"X", ids.unknown},
                 {"COOKIE_R", ids.cookie_live},
                 {"COOKIE_C", ids.cookie_cancelled},
                 {"COOKIE_X", ids.cookie_unknown},
                 {"COOKIE_OTHER", ids.cookie_other_secret},
                 {"SIG_R", ids.cookie_live + TK_UUID_LEN + 1},
                 {"TOK", ADMIN_TOKEN}};
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); ++i)
        if (strlen(table[i].name) == len && memcmp(table[i].name, name, len) == 0)
            return table[i].value;
    return NULL;
}

/* Expands @NAME@ (an id above), @REP:n:text@ (text n times), @LINES:n@ (n reservation
 * lines of distinct unknown types) and @TYPES:n@ (n admin ticket types) in s[0..len). */
static void expand(buf_t *out, const char *s, size_t len)
{
    const char *end = s + len;
    while (s < end) {
        const char *at = memchr(s, '@', (size_t)(end - s));
        const char *close = at != NULL ? memchr(at + 1, '@', (size_t)(end - at - 1)) : NULL;
        if (close == NULL) {
            buf_add(out, s, (size_t)(end - s));
            return;
        }
        buf_add(out, s, (size_t)(at - s));
        const char *name = at + 1;
        size_t nlen = (size_t)(close - name);
        const char *value = placeholder(name, nlen);
        char item[128];
        if (value != NULL) {
            buf_str(out, value);
        } else if (nlen > 4 && memcmp(name, "REP:", 4) == 0) {
            char *text;
            long n = strtol(name + 4, &text, 10);
            ck_assert(*text == ':');
            ++text;
            for (long i = 0; i < n; ++i)
                buf_add(out, text, (size_t)(close - text));
        } else if (nlen > 6 && memcmp(name, "LINES:", 6) == 0) {
            for (long i = 0, n = atol(name + 6); i < n; ++i) {
                snprintf(item, sizeof(item), "%s{\"type\": \"T%ld\", \"amount\": 1}", i ? ", " : "", i);
                buf_str(out, item);
            }
        } else if (nlen > 6 && memcmp(name, "TYPES:", 6) == 0) {
            for (long i = 0, n = atol(name + 6); i < n; ++i) {
                snprintf(item, sizeof(item), "%s{\"type\": \"T%ld\", \"price\": 1, \"amount\": 1}", i ? ", " : "", i);
                buf_str(out, item);
            }
        } else {
            ck_abort_msg("unknown placeholder @%.*s@", (int)nlen, name);
        }
        s = close + 1;
    }
}

/* ---- the table ---- */

enum { ANY = -1, CLOSED = 0 };
enum { F_H2O = 1 /* answered by h2o itself: no JSON error body */, F_RAW = 2 /* body is the whole request */ };

typedef struct st_row_t {
    const char *name;
    const char *method;
    const char *path;
    const char *headers; /* "Name: value\r\n" lines */
    const char *body;
    size_t body_len;    /* 0: no body and no Content-Length (unless headers say otherwise) */
    int status;         /* expected; ANY: whatever h2o does, as long as the server lives */
    const char *header; /* "name: value" the response must carry, or NULL */
    int flags;
} row_t;

#define J "Content-Type: application/json\r\n"
#define ADMIN "Authorization: Bearer " ADMIN_TOKEN "\r\n"
#define EV "/events/event/"
#define RES "/events/reservation/"
#define ADM "/admin/events"
#define ROW(name, method, path, headers, body, status)                                                                             \
    {                                                                                                                              \
        name, method, path, headers, body, sizeof(body) - 1, status, NULL, 0                                                       \
    }
#define ROWH(name, method, path, headers, body, status, header)                                                                    \
    {                                                                                                                              \
        name, method, path, headers, body, sizeof(body) - 1, status, header, 0                                                     \
    }
#define ROWF(name, method, path, headers, body, status, flags)                                                                     \
    {                                                                                                                              \
        name, method, path, headers, body, sizeof(body) - 1, status, NULL, flags                                                   \
    }
#define RAW(name, request, status)                                                                                                 \
    {                                                                                                                              \
        name, NULL, NULL, NULL, request, sizeof(request) - 1, status, NULL, F_RAW | F_H2O                                          \
    }
#define RESERVE(tickets) "{\"event_id\": \"@E@\", \"tickets\": " tickets "}"
#define ADMIN_EVENT(name, date, types) "{\"name\": " name ", \"date\": " date ", \"ticket_types\": " types "}"
#define GOOD_TYPES "[{\"type\": \"A\", \"price\": 1, \"amount\": 1}]"
#define FUTURE "\"2035-01-01T20:00:00Z\""

static const row_t rows[] = {
    /* broken JSON */
    ROW("unterminated object", "POST", RES, J, "{", 400),
    ROW("missing closing brace", "POST", RES, J, "{\"event_id\": \"@E@\", \"tickets\": [{\"type\": \"VIP\", \"amount\": 1}]", 400),
    ROW("trailing comma", "POST", EV, J, "{\"event_id\": \"@E@\",}", 400),
    ROW("single quotes", "POST", EV, J, "{'event_id': '@E@'}", 400),
    ROW("missing comma", "POST", RES, J, "{\"event_id\": \"@E@\" \"tickets\": []}", 400),
    ROW("bare null", "POST", RES, J, "null", 400),
    ROW("array instead of object", "POST", EV, J, "[\"@E@\"]", 400),
    ROW("string instead of object", "POST", EV, J, "\"@E@\"", 400),
    ROW("duplicate keys", "POST", EV, J, "{\"event_id\": \"@X@\", \"event_id\": \"@E@\"}", 400),
    ROW("garbage after the object", "POST", EV, J, "{\"event_id\": \"@E@\"} trailing", 400),
    ROW("two objects", "POST", EV, J, "{\"event_id\": \"@E@\"}{}", 400),
    ROW("byte order mark", "POST", EV, J, "\xef\xbb\xbf{\"event_id\": \"@E@\"}", 400),
    ROW("comment", "POST", EV, J, "/* hi */ {\"event_id\": \"@E@\"}", 400),
    ROW("empty body", "POST", RES, J, "", 400),
    ROW("nested arrays 10k deep", "POST", RES, J, "{\"event_id\": \"@E@\", \"tickets\": @REP:10000:[@@REP:10000:]@}", 400),
    ROW("nested objects 10k deep", "POST", EV, J, "@REP:10000:{\"a\":@1@REP:10000:}@", 400),
    ROW("nesting 2000 deep, unknown field, accepted", "POST", EV, J, "{\"event_id\": \"@E@\", \"deep\": @REP:2000:[@@REP:2000:]@}",
        200),
    /* wrong types, every field of every route */
    ROW("detail: event_id number", "POST", EV, J, "{\"event_id\": 123}", 400),
    ROW("detail: event_id null", "POST", EV, J, "{\"event_id\": null}", 400),
    ROW("detail: event_id array", "POST", EV, J, "{\"event_id\": [\"@E@\"]}", 400),
    ROW("detail: event_id object", "POST", EV, J, "{\"event_id\": {\"id\": \"@E@\"}}", 400),
    ROW("detail: event_id true", "POST", EV, J, "{\"event_id\": true}", 400),
    ROW("reserve: event_id number", "POST", RES, J, "{\"event_id\": 1, \"tickets\": [{\"type\": \"VIP\", \"amount\": 1}]}", 400),
    ROW("reserve: tickets string", "POST", RES, J, RESERVE("\"VIP\""), 400),
    ROW("reserve: tickets object", "POST", RES, J, RESERVE("{\"type\": \"VIP\", \"amount\": 1}"), 400),
    ROW("reserve: tickets null", "POST", RES, J, RESERVE("null"), 400),
    ROW("reserve: line a number", "POST", RES, J, RESERVE("[1]"), 400),
    ROW("reserve: line null", "POST", RES, J, RESERVE("[null]"), 400),
    ROW("reserve: type number", "POST", RES, J, RESERVE("[{\"type\": 1, \"amount\": 1}]"), 400),
    ROW("reserve: type array", "POST", RES, J, RESERVE("[{\"type\": [\"VIP\"], \"amount\": 1}]"), 400),
    ROW("reserve: amount string", "POST", RES, J, RESERVE("[{\"type\": \"VIP\", \"amount\": \"1\"}]"), 400),
    ROW("reserve: amount true", "POST", RES, J, RESERVE("[{\"type\": \"VIP\", \"amount\": true}]"), 400),
    ROW("reserve: amount null", "POST", RES, J, RESERVE("[{\"type\": \"VIP\", \"amount\": null}]"), 400),
    ROW("reserve: amount object", "POST", RES, J, RESERVE("[{\"type\": \"VIP\", \"amount\": {}}]"), 400),
    ROW("reserve: amount 1.0", "POST", RES, J, RESERVE("[{\"type\": \"VIP\", \"amount\": 1.0}]"), 400),
    ROW("pay: reservation_id number", "PUT", RES, J, "{\"reservation_id\": 7}", 400),
    ROW("pay: card number type", "PUT", RES, J, "{\"reservation_id\": \"@R@\", \"card\": 4242424242424242}", 400),
    ROW("pay: card null", "PUT", RES, J, "{\"reservation_id\": \"@R@\", \"card\": null}", 400),
    ROW("pay: card empty", "PUT", RES, J, "{\"reservation_id\": \"@R@\", \"card\": \"\"}", 400),
    ROW("pay: card with dashes", "PUT", RES, J, "{\"reservation_id\": \"@R@\", \"card\": \"4242-4242-4242-4242\"}", 400),
    ROW("pay: card 33 digits", "PUT", RES, J, "{\"reservation_id\": \"@R@\", \"card\": \"@REP:33:4@\"}", 400),
    ROW("cancel: reservation_id number, no other name", "DELETE", RES, J, "{\"reservation_id\": 7}", 400),
    ROW("cancel: reservation_id not a UUID", "DELETE", RES, J, "{\"reservation_id\": \"zzz\"}", 400),
    ROW("admin: name number", "POST", ADM, J ADMIN, ADMIN_EVENT("1", FUTURE, GOOD_TYPES), 400),
    ROW("admin: name empty", "POST", ADM, J ADMIN, ADMIN_EVENT("\"\"", FUTURE, GOOD_TYPES), 400),
    ROW("admin: name with a newline", "POST", ADM, J ADMIN, ADMIN_EVENT("\"a\\nb\"", FUTURE, GOOD_TYPES), 400),
    ROW("admin: date number", "POST", ADM, J ADMIN, ADMIN_EVENT("\"n\"", "20350101", GOOD_TYPES), 400),
    ROW("admin: date words", "POST", ADM, J ADMIN, ADMIN_EVENT("\"n\"", "\"tomorrow\"", GOOD_TYPES), 400),
    ROW("admin: date out of range", "POST", ADM, J ADMIN, ADMIN_EVENT("\"n\"", "\"2035-13-45T99:99:99Z\"", GOOD_TYPES), 400),
    ROW("admin: ticket_types object", "POST", ADM, J ADMIN, ADMIN_EVENT("\"n\"", FUTURE, "{\"type\": \"A\"}"), 400),
    ROW("admin: ticket_types empty", "POST", ADM, J ADMIN, ADMIN_EVENT("\"n\"", FUTURE, "[]"), 400),
    ROW("admin: price string", "POST", ADM, J ADMIN,
        ADMIN_EVENT("\"n\"", FUTURE, "[{\"type\": \"A\", \"price\": \"1\", \"amount\": 1}]"), 400),
    ROW("admin: price negative", "POST", ADM, J ADMIN,
        ADMIN_EVENT("\"n\"", FUTURE, "[{\"type\": \"A\", \"price\": -1, \"amount\": 1}]"), 400),
    ROW("admin: price three decimals", "POST", ADM, J ADMIN,
        ADMIN_EVENT("\"n\"", FUTURE, "[{\"type\": \"A\", \"price\": 1.005, \"amount\": 1}]"), 400),
    ROW("admin: amount fractional", "POST", ADM, J ADMIN,
        ADMIN_EVENT("\"n\"", FUTURE, "[{\"type\": \"A\", \"price\": 1, \"amount\": 1.5}]"), 400),
    ROW("admin: duplicate type", "POST", ADM, J ADMIN,
        ADMIN_EVENT("\"n\"", FUTURE,
                    "[{\"type\": \"A\", \"price\": 1, \"amount\": 1}, {\"type\": \"A\", \"price\": 2, \"amount\": 1}]"),
        400),
    ROW("admin: 65 ticket types", "POST", ADM, J ADMIN, ADMIN_EVENT("\"n\"", FUTURE, "[@TYPES:65@]"), 400),
    /* huge and odd numbers */
    ROW("amount 1e400", "POST", RES, J, RESERVE("[{\"type\": \"VIP\", \"amount\": 1e400}]"), 400),
    ROW("amount 2^63", "POST", RES, J, RESERVE("[{\"type\": \"VIP\", \"amount\": 9223372036854775808}]"), 400),
    ROW("amount 2^63-1 (over the limit)", "POST", RES, J, RESERVE("[{\"type\": \"VIP\", \"amount\": 9223372036854775807}]"), 400),
    ROW("amount -2^63", "POST", RES, J, RESERVE("[{\"type\": \"VIP\", \"amount\": -9223372036854775808}]"), 400),
    ROW("amount -0", "POST", RES, J, RESERVE("[{\"type\": \"VIP\", \"amount\": -0}]"), 400),
    ROW("amount 1e-400", "POST", RES, J, RESERVE("[{\"type\": \"VIP\", \"amount\": 1e-400}]"), 400),
    ROW("two lines of 2^31-1 (merged, saturating)", "POST", RES, J,
        RESERVE("[{\"type\": \"VIP\", \"amount\": 2147483647}, {\"type\": \"VIP\", \"amount\": 2147483647}]"), 400),
    ROW("admin: price 1e400", "POST", ADM, J ADMIN,
        ADMIN_EVENT("\"n\"", FUTURE, "[{\"type\": \"A\", \"price\": 1e400, \"amount\": 1}]"), 400),
    ROW("admin: price beyond the money range", "POST", ADM, J ADMIN,
        ADMIN_EVENT("\"n\"", FUTURE, "[{\"type\": \"A\", \"price\": 92233720368547758.07, \"amount\": 1}]"), 400),
    ROW("admin: amount 2^63", "POST", ADM, J ADMIN,
        ADMIN_EVENT("\"n\"", FUTURE, "[{\"type\": \"A\", \"price\": 1, \"amount\": 9223372036854775808}]"), 400),
    /* NUL bytes, \u0000 and invalid UTF-8 */
    ROW("raw NUL inside a string", "POST", EV, J, "{\"event_id\": \"@E@\0\"}", 400),
    ROW("NUL after the object", "POST", EV, J, "{\"event_id\": \"@E@\"}\0", 400),
    ROW("\\u0000 in a type", "POST", RES, J, RESERVE("[{\"type\": \"VIP\\u0000x\", \"amount\": 1}]"), 400),
    ROW("\\u0000 in an id", "POST", EV, J, "{\"event_id\": \"@E@\\u0000\"}", 400),
    ROW("%00 in a query id", "GET", RES "?reservation_id=@R@%00", NULL, "", 400),
    ROW("invalid UTF-8 in an id", "POST", EV, J, "{\"event_id\": \"\xff\xfe\"}", 400),
    ROW("invalid UTF-8 in a type", "POST", RES, J, RESERVE("[{\"type\": \"V\xc3\x28P\", \"amount\": 1}]"), 400),
    ROW("overlong UTF-8 slash", "POST", RES, J, RESERVE("[{\"type\": \"\xc0\xaf\", \"amount\": 1}]"), 400),
    ROW("lone surrogate escape", "POST", RES, J, RESERVE("[{\"type\": \"\\ud800\", \"amount\": 1}]"), 400),
    ROW("valid UTF-8, unknown type", "POST", RES, J,
        RESERVE("[{\"type\": \"S\xc3\xa4\xc3\xa4l \xf0\x9f\x8e\xab\", \"amount\": 1}]"), 400),
    /* overlong strings and bodies */
    ROW("60 KB type name in a 60 KB body", "POST", RES, J, RESERVE("[{\"type\": \"@REP:60000:A@\", \"amount\": 1}]"), 400),
    ROW("100 KB type name", "POST", RES, J, RESERVE("[{\"type\": \"@REP:100000:A@\", \"amount\": 1}]"), 413),
    ROW("70 KB body of valid JSON", "POST", EV, J, "{\"event_id\": \"@E@\"}@REP:70000: @", 413),
    ROWF("2 MB declared body (h2o's own limit)", "POST", EV, J "Content-Length: 2000000\r\n", "", 413, F_H2O),
    ROW("admin: 60 KB name", "POST", ADM, J ADMIN, ADMIN_EVENT("\"@REP:60000:n@\"", FUTURE, GOOD_TYPES), 400),
    ROW("65 different ticket lines", "POST", RES, J, RESERVE("[@LINES:65@]"), 400),
    ROW("64 unknown ticket lines", "POST", RES, J, RESERVE("[@LINES:64@]"), 400),
    ROW("10 KB path", "GET", "/events/@REP:10000:a@", NULL, "", 404),
    ROW("10 KB query id", "GET", RES "?reservation_id=@REP:10000:a@", NULL, "", 400),
    /* unknown fields are ignored */
    ROW("unknown fields, read", "POST", EV, J, "{\"event_id\": \"@E@\", \"__proto__\": {\"admin\": true}, \"constructor\": [1]}",
        200),
    ROW("unknown fields, pay unknown reservation", "PUT", RES, J,
        "{\"reservation_id\": \"@X@\", \"card\": \"4242424242424242\", \"x\": 1}", 404),
    ROW("unknown fields, cancel unknown reservation", "DELETE", RES, J, "{\"reservation_id\": \"@X@\", \"force\": true}", 404),
    /* wrong methods */
    ROWH("PATCH reservation", "PATCH", RES, J, "{}", 405, "allow: GET, POST, PUT, DELETE"),
    ROWH("DELETE events", "DELETE", EV, NULL, "", 405, "allow: GET, POST"),
    ROWH("POST healthz", "POST", "/healthz", J, "{}", 405, "allow: GET"),
    ROWH("GET admin events", "GET", ADM, ADMIN, "", 405, "allow: POST"),
    ROWH("PUT transactions", "PUT", "/transactions/list/", J, "{}", 405, "allow: GET"),
    ROWH("OPTIONS preflight (no CORS)", "OPTIONS", EV, "Origin: https://evil.example\r\nAccess-Control-Request-Method: POST\r\n",
         "", 405, "allow: GET, POST"),
    ROWH("TRACE", "TRACE", EV, NULL, "", 405, "allow: GET, POST"),
    ROWH("lower-case get", "get", "/healthz", NULL, "", 405, "allow: GET"),
    ROW("unknown route", "GET", "/events/events/", NULL, "", 404),
    /* a path h2o would normalize (dot segments, percent-encoding) has two readings: 400 */
    ROW("dot segments refused", "GET", "/x/../events/./event/", NULL, "", 400),
    ROW("percent-encoded path refused", "GET", "/events/%65vent/", NULL, "", 400),
    ROW("dot segments to /metrics refused", "GET", "/x/../metrics", NULL, "", 400),
    /* sessionid cookies: forged, expired, garbled, several */
    ROW("cookie: forged signature", "DELETE", RES, "Cookie: sessionid=@R@.@REP:43:A@\r\n", "", 403),
    ROW("cookie: unsigned id", "DELETE", RES, "Cookie: sessionid=@R@\r\n", "", 403),
    ROW("cookie: upper-case id, lower-case signature", "DELETE", RES, "Cookie: sessionid=@RU@.@SIG_R@\r\n", "", 403),
    ROW("cookie: padded signature", "DELETE", RES, "Cookie: sessionid=@COOKIE_R@=\r\n", "", 403),
    ROW("cookie: quoted value", "DELETE", RES, "Cookie: sessionid=\"@COOKIE_R@\"\r\n", "", 403),
    ROW("cookie: another secret", "DELETE", RES, "Cookie: sessionid=@COOKIE_OTHER@\r\n", "", 403),
    ROW("cookie: garbage", "DELETE", RES, "Cookie: sessionid=%00%ff';--\r\n", "", 403),
    ROW("cookie: empty sessionid", "DELETE", RES, "Cookie: sessionid=\r\n", "", 400),
    ROW("cookie: name in upper case is not ours", "DELETE", RES, "Cookie: SESSIONID=@COOKIE_R@\r\n", "", 400),
    ROW("cookie: 3000 other pairs", "DELETE", RES, "Cookie: @REP:3000:a=b; @\r\n", "", 400),
    ROW("cookie: signed, reservation cancelled (expired)", "DELETE", RES, "Cookie: sessionid=@COOKIE_C@\r\n", "", 409),
    ROW("cookie: signed, reservation never existed", "DELETE", RES, "Cookie: sessionid=@COOKIE_X@\r\n", "", 404),
    ROW("two Cookie headers, forged second", "DELETE", RES, "Cookie: theme=dark\r\nCookie: sessionid=@R@.@REP:43:B@\r\n", "", 403),
    ROW("two Cookie headers, forged first wins", "DELETE", RES,
        "Cookie: sessionid=@R@.@REP:43:C@\r\nCookie: sessionid=@COOKIE_R@\r\n", "", 403),
    ROW("bad body id beats a valid cookie", "DELETE", RES, J "Cookie: sessionid=@COOKIE_R@\r\n", "{\"reservation_id\": \"nope\"}",
        400),
    /* bad UUIDs; upper case is accepted */
    ROW("uuid: too short", "POST", EV, J, "{\"event_id\": \"0123\"}", 400),
    ROW("uuid: 35 characters", "GET", RES "?reservation_id=@R35@", NULL, "", 400),
    ROW("uuid: 37 characters", "POST", EV, J, "{\"event_id\": \"@E@0\"}", 400),
    ROW("uuid: non-hex", "POST", EV, J, "{\"event_id\": \"g0000000-0000-4000-8000-000000000000\"}", 400),
    ROW("uuid: braces", "POST", EV, J, "{\"event_id\": \"{@E@}\"}", 400),
    ROW("uuid: no dashes", "POST", EV, J, "{\"event_id\": \"0123456789abcdef0123456789abcdef\"}", 400),
    ROW("uuid: dashes misplaced", "POST", EV, J, "{\"event_id\": \"0123456-78901-4bcd-8f01-23456789abcd\"}", 400),
    ROW("uuid: urn prefix", "GET", "/transactions/list/?transaction_id=urn:uuid:@R@", NULL, "", 400),
    ROW("uuid: upper-case event accepted", "POST", EV, J, "{\"event_id\": \"@EU@\"}", 200),
    ROW("uuid: upper-case reservation accepted", "GET", RES "?reservation_id=@RU@", NULL, "", 200),
    ROW("uuid: unknown event", "POST", EV, J, "{\"event_id\": \"@X@\"}", 404),
    /* SQL-looking strings */
    ROW("sql: event_id", "POST", EV, J, "{\"event_id\": \"" SQL "\"}", 400),
    ROW("sql: type", "POST", RES, J, RESERVE("[{\"type\": \"" SQL "\", \"amount\": 1}]"), 400),
    ROW("sql: query id", "GET", RES "?reservation_id=%27%3B%20DROP%20TABLE%20events%3B--", NULL, "", 400),
    ROW("sql: transaction id", "GET", "/transactions/list/?transaction_id=1'%20OR%20'1'='1", NULL, "", 400),
    ROW("sql: stats event id", "GET", "/events/stats/?event_id=1;DELETE%20FROM%20events", ADMIN, "", 400),
    ROW("sql: admin event and type names are data", "POST", ADM, J ADMIN,
        ADMIN_EVENT("\"" SQL "\"", FUTURE, "[{\"type\": \"Robert'); DROP TABLE ticket_types;--\", \"price\": 1, \"amount\": 1}]"),
        201),
    /* query strings */
    ROW("query: %00 in a number", "GET", EV "?current_page=1%00", NULL, "", 400),
    ROW("query: repeated, first is used", "GET", EV "?current_page=2&current_page=abc", NULL, "", 200),
    ROW("query: repeated, first is bad", "GET", EV "?current_page=abc&current_page=2", NULL, "", 400),
    ROW("query: page_size 0", "GET", EV "?page_size=0", NULL, "", 400),
    ROW("query: page_size negative", "GET", EV "?page_size=-5", NULL, "", 400),
    ROW("query: page_size absurd, capped", "GET", EV "?page_size=1000000000000", NULL, "", 200),
    ROW("query: page_size beyond int64, saturates", "GET", EV "?page_size=99999999999999999999999", NULL, "", 200),
    ROW("query: current_page beyond -int64", "GET", EV "?current_page=-99999999999999999999999", NULL, "", 200),
    ROW("query: exponent", "GET", EV "?page_size=1e3", NULL, "", 400),
    ROW("query: hex", "GET", EV "?page_size=0x10", NULL, "", 400),
    ROW("query: plus is a space", "GET", EV "?page_size=+5", NULL, "", 400),
    ROW("query: broken percent", "GET", EV "?current_page=%zz", NULL, "", 400),
    ROW("query: truncated percent", "GET", EV "?current_page=%4", NULL, "", 400),
    ROW("query: 2000 parameters", "GET", EV "?@REP:2000:a=1&@current_page=1", NULL, "", 200),
    /* content types */
    ROW("content type text/plain", "POST", EV, "Content-Type: text/plain\r\n", "{\"event_id\": \"@E@\"}", 415),
    ROW("content type form", "POST", RES, "Content-Type: application/x-www-form-urlencoded\r\n", "event_id=@E@", 415),
    ROW("content type multipart", "PUT", RES, "Content-Type: multipart/form-data; boundary=x\r\n", "--x--", 415),
    ROW("content type jsonx", "POST", EV, "Content-Type: application/jsonx\r\n", "{\"event_id\": \"@E@\"}", 415),
    ROW("content type empty", "POST", EV, "Content-Type: \r\n", "{\"event_id\": \"@E@\"}", 415),
    ROW("content type upper case accepted", "POST", EV, "Content-Type: APPLICATION/JSON; charset=utf-8\r\n",
        "{\"event_id\": \"@E@\"}", 200),
    ROW("admin content type checked after auth", "POST", ADM, "Content-Type: text/plain\r\n", "{}", 401),
    ROW("admin content type text/plain", "POST", ADM, "Content-Type: text/plain\r\n" ADMIN, "{}", 415),
    /* Idempotency-Key */
    ROW("idempotency key empty", "POST", RES, J "Idempotency-Key: \r\n", RESERVE("[{\"type\": \"VIP\", \"amount\": 1}]"), 400),
    ROW("idempotency key 256 chars", "POST", RES, J "Idempotency-Key: @REP:256:k@\r\n",
        RESERVE("[{\"type\": \"VIP\", \"amount\": 1}]"), 400),
    ROW("idempotency key with a tab", "POST", RES, J "Idempotency-Key: a\tb\r\n", RESERVE("[{\"type\": \"VIP\", \"amount\": 1}]"),
        400),
    ROW("idempotency key non-ASCII", "PUT", RES, J "Idempotency-Key: \xd0\xba\xd0\xbb\xd1\x8e\xd1\x87\r\n",
        "{\"reservation_id\": \"@R@\"}", 400),
    /* admin authorization */
    ROWH("stats without Authorization", "GET", "/events/stats/?event_id=@E@", NULL, "", 401,
         "www-authenticate: Bearer realm=\"ticketd\""),
    ROW("stats: Bearer without token", "GET", "/events/stats/?event_id=@E@", "Authorization: Bearer\r\n", "", 403),
    ROW("stats: Basic", "GET", "/events/stats/?event_id=@E@", "Authorization: Basic YWRtaW46YWRtaW4=\r\n", "", 403),
    ROW("stats: wrong token", "GET", "/events/stats/?event_id=@E@", "Authorization: Bearer wrong\r\n", "", 403),
    ROW("stats: token with a suffix", "GET", "/events/stats/?event_id=@E@", "Authorization: Bearer @TOK@x\r\n", "", 403),
    ROW("stats: token with two spaces", "GET", "/events/stats/?event_id=@E@", "Authorization: Bearer  @TOK@\r\n", "", 403),
    ROW("stats: token as the scheme", "GET", "/events/stats/?event_id=@E@", "Authorization: @TOK@\r\n", "", 403),
    ROW("stats: 100 KB token", "GET", "/events/stats/?event_id=@E@", "Authorization: Bearer @REP:102400:t@\r\n", "", 403),
    ROW("stats: wrong first of two Authorization headers", "GET", "/events/stats/?event_id=@E@",
        "Authorization: Bearer wrong\r\n" ADMIN, "", 403),
    ROW("stats: lower-case scheme accepted", "GET", "/events/stats/?event_id=@E@", "Authorization: bearer @TOK@\r\n", "", 200),
    ROW("admin create without Authorization", "POST", ADM, J, ADMIN_EVENT("\"n\"", FUTURE, GOOD_TYPES), 401),
    ROW("admin create with a wrong token", "POST", ADM, J "Authorization: Bearer x\r\n", ADMIN_EVENT("\"n\"", FUTURE, GOOD_TYPES),
        403),
    /* HTTP framing and oversized headers: whatever h2o does, the server must live */
    ROWF("100 KB header", "GET", "/healthz", "X-Big: @REP:102400:a@\r\n", "", ANY, F_H2O),
    ROWF("500 KB header (beyond H2O_MAX_REQLEN)", "GET", "/healthz", "X-Big: @REP:512000:a@\r\n", "", 400, F_H2O),
    ROWF("150 headers (beyond H2O_MAX_HEADERS)", "GET", "/healthz", "@REP:150:X-H: v\r\n@", "", 400, F_H2O),
    ROWF("100 KB request line", "GET", "/healthz?@REP:102400:a@", NULL, "", ANY, F_H2O),
    ROWF("control byte in a header value", "GET", "/healthz",
         "X-Bad: a\x01"
         "b\r\n",
         "", ANY, F_H2O),
    ROWF("broken Content-Length", "POST", EV, J "Content-Length: abc\r\n", "", 400, F_H2O),
    ROWF("unknown Transfer-Encoding", "POST", EV, J "Transfer-Encoding: gzip\r\n", "", 400, F_H2O),
    ROWF("broken chunked body", "POST", EV, J "Transfer-Encoding: chunked\r\n", "zz\r\n{}\r\n0\r\n\r\n", 400, F_H2O),
    /* ambiguous framing: 400 and the connection closed (test_http_hygiene shows the close) */
    ROW("Content-Length with Transfer-Encoding", "POST", EV, J "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n",
        400),
    ROW("two different Content-Lengths", "POST", EV, J "Content-Length: 2\r\nContent-Length: 9\r\n", "{}", 400),
    ROWF("unknown Expect", "POST", EV, J "Expect: 200-ok\r\n", "{}", 417, F_H2O),
    RAW("garbage request line", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n", 400),
    RAW("HTTP/1.0 without Host", "GET /healthz HTTP/1.0\r\n\r\n", 200),
    /* HTTP/2 over cleartext is off by default (TICKETD_HTTP2): the preface is a bad HTTP/1 request */
    RAW("HTTP/2 preface, then a broken frame",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff", 400),
    RAW("h2c upgrade with garbage settings",
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\nHTTP2-Settings: "
        "!!!\r\n\r\n",
        ANY),
    RAW("bare LF line endings", "GET /healthz HTTP/1.1\nHost: x\nConnection: close\n\n", 200),
};

#define NROWS (sizeof(rows) / sizeof(rows[0]))

/* Builds the row's request bytes: request line, Host, Connection: close, the row's
 * headers, Content-Length unless the row frames the body itself, the body. */
static void build_request(const row_t *row, buf_t *req)
{
    if (row->flags & F_RAW) {
        expand(req, row->body, row->body_len);
        return;
    }
    buf_t headers = {0}, body = {0};
    if (row->headers != NULL)
        expand(&headers, row->headers, strlen(row->headers));
    expand(&body, row->body, row->body_len);
    buf_str(req, row->method);
    buf_str(req, " ");
    expand(req, row->path, strlen(row->path));
    buf_str(req, " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if (headers.len != 0)
        buf_add(req, headers.p, headers.len);
    int framed = headers.p != NULL &&
                 (strcasestr(headers.p, "content-length:") != NULL || strcasestr(headers.p, "transfer-encoding:") != NULL);
    if (!framed && row->body_len != 0) {
        char cl[64];
        snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", body.len);
        buf_str(req, cl);
    }
    buf_str(req, "\r\n");
    if (body.len != 0)
        buf_add(req, body.p, body.len);
    free(headers.p);
    free(body.p);
}

/* Whether ticketd still runs. Tests run in a child of the process that started it, so
 * waitpid cannot tell; a dead server is a zombie until that parent reaps it. */
static int server_alive(void)
{
    char path[64], stat[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)server.pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(stat, 1, sizeof(stat) - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *paren = strrchr(stat, ')');
    return paren != NULL && paren[1] == ' ' && paren[2] != 'Z' && paren[2] != 'X';
}

static int healthz(void)
{
    tk_http_response_t res;
    if (tk_http_request(server.port, "GET", "/healthz", NULL, NULL, 0, &res) != 0)
        return 0;
    int status = res.status;
    tk_http_response_free(&res);
    return status;
}

/* Runs one row; "" when it passed, else what went wrong (static buffer). */
static const char *run_row(const row_t *row)
{
    static char why[512];
    buf_t req = {0};
    build_request(row, &req);
    raw_response_t res;
    raw_exchange(req.p, req.len, &res);
    free(req.p);
    why[0] = '\0';
    char value[256];
    if (row->status == ANY)
        fprintf(stderr, "hostile row \"%s\": h2o answered %d\n", row->name, res.status);
    if (row->status != ANY && res.status != row->status) {
        snprintf(why, sizeof(why), "status %d, want %d; body %.200s", res.status, row->status, res.body != NULL ? res.body : "");
    } else if (row->header != NULL) {
        char name[64];
        const char *colon = strchr(row->header, ':');
        snprintf(name, sizeof(name), "%.*s", (int)(colon - row->header), row->header);
        const char *got = raw_header(&res, name, value, sizeof(value));
        if (got == NULL || strcmp(got, colon + 2) != 0)
            snprintf(why, sizeof(why), "header %s: %s, want %s", name, got != NULL ? got : "(absent)", colon + 2);
    }
    if (why[0] == '\0' && !(row->flags & F_H2O) && res.status >= 400) {
        /* ticketd's own refusals are the API's JSON error shape */
        json_t *body = json_loadb(res.body, res.body_len, 0, NULL);
        const char *ct = raw_header(&res, "content-type", value, sizeof(value));
        if (ct == NULL || strncmp(ct, "application/json", 16) != 0 || !json_is_string(json_object_get(body, "error")) ||
            !json_is_string(json_object_get(body, "message")))
            snprintf(why, sizeof(why), "status %d without the JSON error shape: %.200s", res.status, res.body);
        json_decref(body);
    }
    raw_free(&res);
    if (why[0] == '\0' && !server_alive())
        snprintf(why, sizeof(why), "ticketd died");
    else if (why[0] == '\0' && healthz() != 200)
        snprintf(why, sizeof(why), "/healthz does not answer 200 afterwards");
    return why;
}

/* ---- fixtures of the data check ---- */

static json_t *call(const char *method, const char *path, const char *headers, const char *body, int *status)
{
    return tk_api_call(&server, method, path, headers, body, status);
}

static void create_event(void)
{
    int status;
    json_t *res =
        call("POST", ADM, J ADMIN,
             "{\"name\": \"Hostile\", \"date\": \"2035-06-01T20:00:00Z\", \"ticket_types\": ["
             "{\"type\": \"VIP\", \"price\": 350, \"amount\": 50}, {\"type\": \"Silver\", \"price\": 120.5, \"amount\": 20}]}",
             &status);
    ck_assert_int_eq(status, 201);
    snprintf(ids.event, sizeof(ids.event), "%s", json_string_value(json_object_get(json_object_get(res, "event"), "id")));
    json_decref(res);
}

static void reserve_one(char *rid)
{
    char body[256];
    int status;
    snprintf(body, sizeof(body), "{\"event_id\": \"%s\", \"tickets\": [{\"type\": \"VIP\", \"amount\": 1}]}", ids.event);
    json_t *res = call("POST", RES, J, body, &status);
    ck_assert_int_eq(status, 201);
    snprintf(rid, TK_UUID_LEN + 1, "%s", json_string_value(json_object_get(res, "reservation_id")));
    json_decref(res);
}

static void upper(char *dst, const char *src)
{
    for (size_t i = 0; i <= strlen(src); ++i)
        dst[i] = (char)toupper((unsigned char)src[i]);
}

static void prepare_ids(void)
{
    create_event();
    reserve_one(ids.live);
    reserve_one(ids.cancelled);
    int status;
    char path[128];
    snprintf(path, sizeof(path), RES "?reservation_id=%s", ids.cancelled);
    json_decref(call("DELETE", path, NULL, NULL, &status));
    ck_assert_int_eq(status, 200);
    tk_uuid_v4_in_shard(ids.unknown, ids.event);
    upper(ids.event_upper, ids.event);
    upper(ids.live_upper, ids.live);
    snprintf(ids.live_short, sizeof(ids.live_short), "%s", ids.live);

    tk_config_t config, other;
    memset(&config, 0, sizeof(config));
    config.secret_len = strlen(SECRET);
    memcpy(config.secret, SECRET, config.secret_len);
    other = config;
    other.secret_len = strlen(OTHER_SECRET);
    memcpy(other.secret, OTHER_SECRET, other.secret_len);
    tk_session_sign(&config, ids.live, ids.cookie_live);
    tk_session_sign(&config, ids.cancelled, ids.cookie_cancelled);
    tk_session_sign(&config, ids.unknown, ids.cookie_unknown);
    tk_session_sign(&other, ids.live, ids.cookie_other_secret);
}

typedef struct st_snapshot_t {
    json_int_t left[2]; /* VIP, Silver */
    long long reservations, cancelled, tickets, transactions;
    char live_status[16], cancelled_status[16];
} snapshot_t;

static void reservation_status(const char *rid, char *out, size_t outsize)
{
    char path[128];
    int status;
    snprintf(path, sizeof(path), RES "?reservation_id=%s", rid);
    json_t *res = call("GET", path, NULL, NULL, &status);
    ck_assert_int_eq(status, 200);
    snprintf(out, outsize, "%s", json_string_value(json_object_get(json_object_get(res, "reservation"), "status")));
    json_decref(res);
}

static void take_snapshot(snapshot_t *s)
{
    char body[128];
    int status;
    snprintf(body, sizeof(body), "{\"event_id\": \"%s\"}", ids.event);
    json_t *res = call("POST", EV, J, body, &status);
    ck_assert_int_eq(status, 200);
    json_t *types = json_object_get(res, "ticket_types");
    s->left[0] = s->left[1] = -1;
    for (size_t i = 0; i < json_array_size(types); ++i) {
        const char *type = json_string_value(json_object_get(json_array_get(types, i), "type"));
        s->left[strcmp(type, "VIP") == 0 ? 0 : 1] = json_integer_value(json_object_get(json_array_get(types, i), "tickets_left"));
    }
    json_decref(res);
    s->reservations = tk_test_pg_count(server.database, "SELECT count(*) FROM reservations");
    s->cancelled = tk_test_pg_count(server.database, "SELECT count(*) FROM reservations WHERE status = 'CANCELLED'");
    s->tickets = tk_test_pg_count(server.database, "SELECT count(*) FROM ordered_tickets");
    s->transactions = tk_test_pg_count(server.database, "SELECT count(*) FROM transactions");
    reservation_status(ids.live, s->live_status, sizeof(s->live_status));
    reservation_status(ids.cancelled, s->cancelled_status, sizeof(s->cancelled_status));
}

START_TEST(hostile_requests_are_refused_and_change_nothing)
{
    ck_assert_msg(NROWS >= 60, "only %zu rows", NROWS);
    prepare_ids();
    /* both reservations reach PostgreSQL before the baseline is taken */
    for (int i = 0;
         i < 100 && tk_test_pg_count(server.database, "SELECT count(*) FROM reservations WHERE status = 'CANCELLED'") != 1; ++i)
        usleep(50 * 1000);
    snapshot_t before, after;
    take_snapshot(&before);
    ck_assert_int_eq(before.left[0], VIP_AMOUNT - 1);
    ck_assert_int_eq(before.left[1], SILVER_AMOUNT);
    ck_assert_int_eq(before.reservations, 2);
    ck_assert_str_eq(before.live_status, "PENDING");
    ck_assert_str_eq(before.cancelled_status, "CANCELLED");

    int failures = 0;
    for (size_t i = 0; i < NROWS; ++i) {
        const char *why = run_row(rows + i);
        if (why[0] != '\0') {
            fprintf(stderr, "hostile row %zu \"%s\" (%s %s): %s\n", i, rows[i].name,
                    rows[i].method != NULL ? rows[i].method : "raw", rows[i].path != NULL ? rows[i].path : "", why);
            ++failures;
            if (!server_alive())
                break;
        }
    }
    fprintf(stderr, "hostile input: %zu rows, %d failed\n", NROWS, failures);
    ck_assert_msg(server_alive(), "ticketd died during the table");

    /* give the outbox writer time to persist anything a row might wrongly have changed */
    usleep(1500 * 1000);
    take_snapshot(&after);
    ck_assert_int_eq(after.left[0], before.left[0]);
    ck_assert_int_eq(after.left[1], before.left[1]);
    ck_assert_int_eq(after.reservations, before.reservations);
    ck_assert_int_eq(after.cancelled, before.cancelled);
    ck_assert_int_eq(after.tickets, before.tickets);
    ck_assert_int_eq(after.transactions, before.transactions);
    ck_assert_str_eq(after.live_status, "PENDING");
    ck_assert_str_eq(after.cancelled_status, "CANCELLED");
    /* the SQL-looking names were stored as data, and the tables they name are still there */
    ck_assert_int_eq(tk_test_pg_count(server.database, "SELECT count(*) FROM events WHERE name = '''; DROP TABLE events;--'"), 1);
    ck_assert_int_eq(
        tk_test_pg_count(server.database, "SELECT count(*) FROM ticket_types WHERE type = 'Robert''); DROP TABLE ticket_types;--'"),
        1);
    ck_assert_int_eq(healthz(), 200);
    ck_assert_int_eq(failures, 0);
}
END_TEST

/* ---- slow clients ---- */

#define SLOW_CLIENTS 200

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* whether the server closed fd (EOF or reset, any answer read and dropped) */
static int closed_by_server(int fd)
{
    char buf[4096];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            return 1;
        if (n < 0)
            return 0;
    }
}

/* Slow clients: 200 connections that sent half a request line and went silent, one
 * that sent its headers and a byte of its body, and one that trickles a header byte
 * every 500 ms. Meanwhile others are served at normal speed; then h2o's http1 request
 * timeout (10 s from the start of a request, not reset by the trickle) closes them all,
 * without an answer. */
START_TEST(slow_clients_do_not_block_others)
{
    if (ids.event[0] == '\0')
        create_event();
    int slow[SLOW_CLIENTS];
    for (int i = 0; i < SLOW_CLIENTS; ++i) {
        slow[i] = connect_to_server(20);
        ck_assert_int_eq(send(slow[i], "GET /events/ev", 14, MSG_NOSIGNAL), 14);
    }
    static const char body_head[] = "POST /events/event/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                    "Content-Length: 1000\r\n\r\n{";
    int stalled_body = connect_to_server(20), trickle = connect_to_server(20);
    ck_assert_int_eq(send(stalled_body, body_head, sizeof(body_head) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(body_head) - 1);
    static const char trickle_head[] = "GET /healthz HTTP/1.1\r\nX-Slow: ";
    ck_assert_int_eq(send(trickle, trickle_head, sizeof(trickle_head) - 1, MSG_NOSIGNAL), (ssize_t)sizeof(trickle_head) - 1);

    int64_t start = now_ms(), worst = 0, last_trickle = start;
    int served = 0;
    char body[128];
    snprintf(body, sizeof(body), "{\"event_id\": \"%s\"}", ids.event);
    while (now_ms() - start < 5000) {
        int64_t t0 = now_ms();
        int status;
        json_decref(call("GET", EV, NULL, NULL, &status));
        ck_assert_int_eq(status, 200);
        json_decref(call("POST", EV, J, body, &status));
        ck_assert_int_eq(status, 200);
        int64_t took = now_ms() - t0;
        worst = took > worst ? took : worst;
        ++served;
        if (now_ms() - last_trickle >= 500) {
            ck_assert_int_eq(send(trickle, "a", 1, MSG_NOSIGNAL), 1);
            last_trickle = now_ms();
        }
        usleep(100 * 1000);
    }
    fprintf(stderr, "slow clients: %d request pairs served in 5 s beside %d stalled connections, slowest pair %lld ms\n", served,
            SLOW_CLIENTS + 2, (long long)worst);
    ck_assert_int_ge(served, 10); /* every one answered 200; the latency is reported, not judged */

    int64_t closed_at[3] = {0, 0, 0};
    int fds[3] = {slow[0], stalled_body, trickle};
    while (now_ms() - start < 14000 && (closed_at[0] == 0 || closed_at[1] == 0 || closed_at[2] == 0)) {
        for (int i = 0; i < 3; ++i)
            if (closed_at[i] == 0 && closed_by_server(fds[i]))
                closed_at[i] = now_ms() - start;
        if (closed_at[2] == 0 && now_ms() - last_trickle >= 500) {
            send(trickle, "a", 1, MSG_NOSIGNAL);
            last_trickle = now_ms();
        }
        usleep(50 * 1000);
    }
    fprintf(stderr,
            "slow clients: closed after %lld ms (half a request line), %lld ms (stalled body), %lld ms (trickling headers)\n",
            (long long)closed_at[0], (long long)closed_at[1], (long long)closed_at[2]);
    for (int i = 0; i < 3; ++i) {
        ck_assert_msg(closed_at[i] != 0, "slow connection %d still open after 14 s", i);
        ck_assert_int_ge(closed_at[i], 9000);
    }
    int still_open = 0;
    for (int i = 0; i < SLOW_CLIENTS; ++i) {
        still_open += !closed_by_server(slow[i]);
        close(slow[i]);
    }
    close(stalled_body);
    close(trickle);
    ck_assert_int_eq(still_open, 0);
    ck_assert_int_eq(healthz(), 200);
}
END_TEST

/* ---- type names at the edges of what the admin route accepts ---- */

/* A ticket type may be 64 characters (http/routes_admin.c, MAX_TYPE_CHARS; PostgreSQL
 * checks length(type) <= 64, in characters). Each name below is accepted at creation;
 * a reservation of it must then read back and reach PostgreSQL intact. */
START_TEST(accepted_type_names_are_read_back_and_persisted)
{
    static const struct {
        const char *what, *json; /* the name as a JSON string */
    } names[] = {
        {"64 ASCII characters", "\"@REP:64:a@\""},
        {"SQL and COPY metacharacters", "\"x'); DROP TABLE ordered_tickets;-- \\\\N \\\\\""},
        {"64 two-byte characters", "\"@REP:64:\xc3\xa9@\""},
        {"64 three-byte characters", "\"@REP:64:\xe2\x82\xac@\""},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); ++i) {
        buf_t type = {0}, body = {0};
        expand(&type, names[i].json, strlen(names[i].json));
        buf_str(&body, "{\"name\": \"Names\", \"date\": " FUTURE ", \"ticket_types\": [{\"type\": ");
        buf_add(&body, type.p, type.len);
        buf_str(&body, ", \"price\": 3, \"amount\": 5}]}");
        int status;
        json_t *created = call("POST", ADM, J ADMIN, body.p, &status);
        ck_assert_msg(status == 201, "%s: admin create answered %d", names[i].what, status);
        const char *event = json_string_value(json_object_get(json_object_get(created, "event"), "id"));
        json_t *name = json_object_get(json_array_get(json_object_get(created, "ticket_types"), 0), "type");

        json_t *req = json_pack("{s:s, s:[{s:O, s:i}]}", "event_id", event, "tickets", "type", name, "amount", 1);
        char *req_body = json_dumps(req, 0);
        json_t *made = call("POST", RES, J, req_body, &status);
        ck_assert_msg(status == 201, "%s: reserve answered %d", names[i].what, status);
        char rid[TK_UUID_LEN + 1], path[128];
        snprintf(rid, sizeof(rid), "%s", json_string_value(json_object_get(made, "reservation_id")));

        snprintf(path, sizeof(path), RES "?reservation_id=%s", rid);
        json_t *got = call("GET", path, NULL, NULL, &status);
        ck_assert_msg(status == 200, "%s (%zu bytes): reading the reservation answered %d", names[i].what,
                      strlen(json_string_value(name)), status);
        ck_assert(json_equal(json_object_get(json_array_get(json_object_get(got, "tickets"), 0), "type"), name));

        /* the writer persists it: the ticket row carries the exact name */
        char sql[256];
        snprintf(sql, sizeof(sql), "SELECT type FROM ordered_tickets WHERE reservation_id = '%s'", rid);
        char stored[1024] = "";
        for (int tries = 0; tries < 60 && stored[0] == '\0'; ++tries) {
            tk_test_pg_scalar(server.database, sql, stored, sizeof(stored));
            if (stored[0] == '\0')
                usleep(50 * 1000);
        }
        ck_assert_msg(strcmp(stored, json_string_value(name)) == 0, "%s: PostgreSQL has \"%s\"", names[i].what, stored);
        json_decref(got);
        json_decref(made);
        free(req_body);
        json_decref(req);
        json_decref(created);
        free(type.p);
        free(body.p);
    }
}
END_TEST

/* ---- a payment total beyond what PostgreSQL's column holds ---- */

static json_t *admin_create(const char *body)
{
    int status;
    json_t *res = call("POST", ADM, J ADMIN, body, &status);
    ck_assert_msg(status == 201, "admin create answered %d", status);
    return res;
}

/* The admin route accepts prices up to 999,999,999.99 (TK_MONEY_MAX_MINOR) and a
 * reservation may hold 5 tickets of each of 64 types, but transactions.amount is
 * numeric(12,2): below 10^10. A customer paying 15 such tickets must not stop
 * PostgreSQL from learning about everyone else's reservations. */
START_TEST(a_huge_payment_total_does_not_stall_persistence)
{
    json_t *pricey = admin_create("{\"name\": \"Pricey\", \"date\": " FUTURE ", \"ticket_types\": ["
                                  "{\"type\": \"A\", \"price\": 999999999.99, \"amount\": 5},"
                                  "{\"type\": \"B\", \"price\": 999999999.99, \"amount\": 5},"
                                  "{\"type\": \"C\", \"price\": 999999999.99, \"amount\": 5}]}");
    char event[TK_UUID_LEN + 1], body[512], rid[TK_UUID_LEN + 1];
    snprintf(event, sizeof(event), "%s", json_string_value(json_object_get(json_object_get(pricey, "event"), "id")));
    json_decref(pricey);
    int status;
    snprintf(body, sizeof(body),
             "{\"event_id\": \"%s\", \"tickets\": [{\"type\": \"A\", \"amount\": 5}, {\"type\": \"B\", \"amount\": 5}, "
             "{\"type\": \"C\", \"amount\": 5}]}",
             event);
    json_t *made = call("POST", RES, J, body, &status);
    ck_assert_int_eq(status, 201);
    snprintf(rid, sizeof(rid), "%s", json_string_value(json_object_get(made, "reservation_id")));
    json_decref(made);
    snprintf(body, sizeof(body), "{\"reservation_id\": \"%s\"}", rid);
    json_decref(call("PUT", RES, J, body, &status));
    ck_assert_int_eq(status, 202);

    /* then an ordinary sale, on another event */
    json_t *cheap = admin_create("{\"name\": \"Cheap\", \"date\": " FUTURE ", \"ticket_types\": "
                                 "[{\"type\": \"A\", \"price\": 1, \"amount\": 5}]}");
    char other[TK_UUID_LEN + 1], other_rid[TK_UUID_LEN + 1], sql[256];
    snprintf(other, sizeof(other), "%s", json_string_value(json_object_get(json_object_get(cheap, "event"), "id")));
    json_decref(cheap);
    snprintf(body, sizeof(body), "{\"event_id\": \"%s\", \"tickets\": [{\"type\": \"A\", \"amount\": 1}]}", other);
    made = call("POST", RES, J, body, &status);
    ck_assert_int_eq(status, 201);
    snprintf(other_rid, sizeof(other_rid), "%s", json_string_value(json_object_get(made, "reservation_id")));
    json_decref(made);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM reservations WHERE id = '%s'", other_rid);
    long long persisted = 0;
    for (int i = 0; i < 100 && persisted != 1; ++i) {
        usleep(50 * 1000);
        persisted = tk_test_pg_count(server.database, sql);
    }
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM transactions WHERE reservation_id = '%s'", rid);
    long long pricey_txn = tk_test_pg_count(server.database, sql);

    /* leave no wedged outbox entry in the shared test Redis for later servers */
    redisContext *c = redisConnect("127.0.0.1", tk_test_redis_port());
    char key[64];
    snprintf(key, sizeof(key), "tk:{%.4s}:ob", event);
    freeReplyObject(redisCommand(c, "DEL %s", key));
    redisFree(c);

    ck_assert_msg(persisted == 1,
                  "an ordinary reservation did not reach PostgreSQL within 5 s after a payment of 15 x 999999999.99");
    ck_assert_msg(pricey_txn == 1, "the 14,999,999,999.85 transaction is not in PostgreSQL");
}
END_TEST

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    Suite *suite = suite_create("hostile_input");
    TCase *tc = tcase_create("hostile");
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, start_server, stop_server);
    tcase_add_test(tc, hostile_requests_are_refused_and_change_nothing);
    tcase_add_test(tc, slow_clients_do_not_block_others);
    tcase_add_test(tc, accepted_type_names_are_read_back_and_persisted);
    tcase_add_test(tc, a_huge_payment_total_does_not_stall_persistence);
    suite_add_tcase(suite, tc);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed != 0;
}
