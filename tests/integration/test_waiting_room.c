/*
 * Integration tests of the waiting room against real ticketd processes, Redis and
 * PostgreSQL: every status and string of the contract (admin settings, join, poll,
 * the reservation gate, one live hold per admission, expiry), and a crowd of 2000
 * buyers racing to join through three ticketd processes that share one Redis. The crowd
 * checks what the room promises, from counts and from the instants the servers
 * themselves report, never from how fast anything ran: every process gives a ticket
 * the same place; admissions go in place order, one place each, evenly spaced at the
 * room's rate; no answer admits a place before the line reaches it; positions only
 * decrease; forged and cross-event ids are refused everywhere.
 */
#include "tests/support/api.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ADMIN_TOKEN "tk-test-only-admin-token-0123456789abcdef"
#define SECRET "tk-test-only-waitroom-secret-0123456789abcdef"
#define ADMIN_HEADERS TK_JSON_HEADER "Authorization: Bearer " ADMIN_TOKEN "\r\n"
#define NSERVERS 3
#define CROWD 2000
#define CROWD_RATE 1200 /* per minute: one place every 50 ms */

static tk_test_server_t servers[NSERVERS];
static int nservers;

static void start_servers(int n)
{
    const char *env[] = {"TICKETD_ADMIN_TOKEN=" ADMIN_TOKEN, "TICKETD_SECRET=" SECRET, NULL, NULL};
    char pg[320];
    nservers = n;
    ck_assert_int_eq(tk_test_server_start(&servers[0], env, NULL), 0);
    snprintf(pg, sizeof(pg), "TICKETD_PG_URL=");
    tk_test_pg_url(servers[0].database, pg + strlen(pg), sizeof(pg) - strlen(pg));
    env[2] = pg; /* the others share the first one's database */
    for (int i = 1; i < n; ++i)
        ck_assert_int_eq(tk_test_server_start(&servers[i], env, NULL), 0);
}

static void start_one(void)
{
    start_servers(1);
}

static void start_three(void)
{
    start_servers(NSERVERS);
}

static void stop_servers(void)
{
    for (int i = nservers - 1; i >= 0; --i)
        tk_test_server_stop(&servers[i]);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_until(int64_t ms)
{
    int64_t left = ms - now_ms();
    if (left > 0)
        usleep((useconds_t)left * 1000);
}

/* RFC 3339 with milliseconds */
static void iso(int64_t ms, char *buf, size_t size)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char base[32];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%03dZ", base, (int)(ms % 1000));
}

static int64_t parse_iso(const char *s)
{
    struct tm tm = {0};
    int ms = 0;
    const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    ck_assert_ptr_nonnull(rest);
    if (*rest == '.')
        ms = atoi(rest + 1);
    return (int64_t)timegm(&tm) * 1000 + ms;
}

static const char *create_event(const tk_test_server_t *s, char *id)
{
    tk_api_create_event(s, ADMIN_HEADERS,
                        "{\"name\": \"On sale\", \"date\": \"2035-01-01T20:00:00Z\", "
                        "\"ticket_types\": [{\"type\": \"VIP\", \"price\": 100, \"amount\": 1000}]}",
                        id);
    return id;
}

static json_t *put_room(const tk_test_server_t *s, const char *event, const char *body, int *status)
{
    char path[128];
    snprintf(path, sizeof(path), "/admin/events/%s/waiting-room", event);
    return tk_api_call(s, "PUT", path, ADMIN_HEADERS, body, status);
}

static void open_room(const tk_test_server_t *s, const char *event, int64_t opens_ms, int rate, int admission_s)
{
    char body[256], when[40];
    int status;
    iso(opens_ms, when, sizeof(when));
    snprintf(body, sizeof(body), "{\"enabled\": true, \"opens_at\": \"%s\", \"admit_per_minute\": %d, \"admission_seconds\": %d}",
             when, rate, admission_s);
    json_decref(put_room(s, event, body, &status));
    ck_assert_int_eq(status, 200);
}

static json_t *join(const tk_test_server_t *s, const char *event, int *status)
{
    char body[128];
    snprintf(body, sizeof(body), "{\"event_id\": \"%s\"}", event);
    return tk_api_call(s, "POST", "/events/queue/", TK_JSON_HEADER, body, status);
}

static json_t *poll_queue(const tk_test_server_t *s, const char *queue_id, int *status)
{
    char path[256];
    snprintf(path, sizeof(path), "/events/queue/?queue_id=%s", queue_id);
    return tk_api_call(s, "GET", path, NULL, NULL, status);
}

static json_t *reserve(const tk_test_server_t *s, const char *event, const char *admission_header, const char *admission_body,
                       int *status)
{
    char body[512], headers[512];
    snprintf(body, sizeof(body), "{\"event_id\": \"%s\", %s%s%s\"tickets\": [{\"type\": \"VIP\", \"amount\": 1}]}", event,
             admission_body != NULL ? "\"admission\": \"" : "", admission_body != NULL ? admission_body : "",
             admission_body != NULL ? "\", " : "");
    snprintf(headers, sizeof(headers), TK_JSON_HEADER "%s%s%s", admission_header != NULL ? "Admission: " : "",
             admission_header != NULL ? admission_header : "", admission_header != NULL ? "\r\n" : "");
    return tk_api_call(s, "POST", "/events/reservation/", headers, body, status);
}

static void assert_error(json_t *body, const int *status, int want_status, const char *error, const char *message)
{
    ck_assert_msg(*status == want_status, "status %d, want %d", *status, want_status);
    ck_assert_str_eq(json_string_value(json_object_get(body, "error")), error);
    ck_assert_str_eq(json_string_value(json_object_get(body, "message")), message);
    json_decref(body);
}

static void assert_waiting_room_refusal(json_t *body, const int *status)
{
    assert_error(body, status, 403, "Waiting room", "This event sells through a waiting room: join the queue first");
}

/* ---- the contract ------------------------------------------------------------------ */

START_TEST(admin_settings_need_the_token_and_valid_values)
{
    char event[37], path[128], unknown_path[128];
    int status;
    create_event(&servers[0], event);
    snprintf(path, sizeof(path), "/admin/events/%s/waiting-room", event);
    snprintf(unknown_path, sizeof(unknown_path), "/admin/events/%s/waiting-room", "0000aaaa-1111-4222-8333-444455556666");
    const char *good = "{\"enabled\": true, \"opens_at\": \"2035-01-01T10:00:00Z\", \"admit_per_minute\": 600}";

    json_t *res = tk_api_call(&servers[0], "PUT", path, TK_JSON_HEADER, good, &status);
    ck_assert_int_eq(status, 401);
    tk_api_assert_error_shape(res);
    json_decref(res);
    res = tk_api_call(&servers[0], "PUT", path, TK_JSON_HEADER "Authorization: Bearer wrong\r\n", good, &status);
    ck_assert_int_eq(status, 403);
    json_decref(res);
    res = tk_api_call(&servers[0], "GET", path, NULL, NULL, &status);
    ck_assert_int_eq(status, 401);
    json_decref(res);
    res = tk_api_call(&servers[0], "PUT", unknown_path, ADMIN_HEADERS, good, &status);
    ck_assert_int_eq(status, 404);
    tk_api_assert_error_shape(res);
    json_decref(res);
    res = tk_api_call(&servers[0], "GET", unknown_path, ADMIN_HEADERS, NULL, &status);
    ck_assert_int_eq(status, 404);
    json_decref(res);
    /* a segment 13 characters short of an id: the path ends where the id's end would be read */
    res = tk_api_call(&servers[0], "GET", "/admin/events/0000aaaa-1111-4222-8333/waiting-room", ADMIN_HEADERS, NULL, &status);
    ck_assert_int_eq(status, 404);
    json_decref(res);

    const char *bad[] = {
        "{\"enabled\": true, \"opens_at\": \"2035-01-01T10:00:00Z\", \"admit_per_minute\": 0}",
        "{\"enabled\": true, \"opens_at\": \"2035-01-01T10:00:00Z\", \"admit_per_minute\": 1.5}",
        "{\"enabled\": true, \"opens_at\": \"2035-01-01T10:00:00Z\", \"admit_per_minute\": \"600\"}",
        "{\"enabled\": true, \"opens_at\": \"2035-01-01T10:00:00Z\", \"admit_per_minute\": 600, \"admission_seconds\": 29}",
        "{\"enabled\": true, \"opens_at\": \"2035-01-01T10:00:00Z\", \"admit_per_minute\": 600, \"admission_seconds\": -5}",
        "{\"enabled\": true, \"opens_at\": \"tomorrow\", \"admit_per_minute\": 600}",
        "{\"enabled\": true, \"admit_per_minute\": 600}",
        "{\"enabled\": \"yes\", \"opens_at\": \"2035-01-01T10:00:00Z\", \"admit_per_minute\": 600}",
        "{\"opens_at\": \"2035-01-01T10:00:00Z\", \"admit_per_minute\": 600}",
        "[1, 2]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        res = tk_api_call(&servers[0], "PUT", path, ADMIN_HEADERS, bad[i], &status);
        ck_assert_msg(status == 400, "%s: status %d", bad[i], status);
        tk_api_assert_error_shape(res);
        json_decref(res);
    }

    res = tk_api_call(&servers[0], "PUT", path, ADMIN_HEADERS, good, &status);
    ck_assert_int_eq(status, 200);
    ck_assert(json_is_true(json_object_get(res, "enabled")));
    ck_assert_str_eq(json_string_value(json_object_get(res, "opens_at")), "2035-01-01T10:00:00Z");
    ck_assert_int_eq(json_integer_value(json_object_get(res, "admit_per_minute")), 600);
    ck_assert_int_eq(json_integer_value(json_object_get(res, "admission_seconds")), 600);
    json_decref(res);

    res = tk_api_call(&servers[0], "GET", path, ADMIN_HEADERS, NULL, &status);
    ck_assert_int_eq(status, 200);
    ck_assert(json_is_true(json_object_get(res, "enabled")));
    ck_assert_int_eq(json_integer_value(json_object_get(res, "admit_per_minute")), 600);
    ck_assert_int_eq(json_integer_value(json_object_get(res, "admission_seconds")), 600);
    const char *figures[] = {"waiting", "admitted", "next_position", "expected_wait_seconds"};
    for (size_t i = 0; i < 4; ++i)
        ck_assert_msg(json_is_integer(json_object_get(res, figures[i])), "%s is not an integer", figures[i]);
    ck_assert_int_eq(json_integer_value(json_object_get(res, "waiting")), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(res, "next_position")), 1);
    json_decref(res);
}
END_TEST

START_TEST(an_event_without_a_room_admits_at_once)
{
    char event[37];
    int status;
    create_event(&servers[0], event);
    json_t *res = join(&servers[0], event, &status);
    ck_assert_int_eq(status, 201);
    ck_assert_str_eq(json_string_value(json_object_get(res, "status")), "admitted");
    ck_assert(json_is_string(json_object_get(res, "admission")));
    ck_assert(json_is_string(json_object_get(res, "admitted_until")));
    json_decref(res);
    res = reserve(&servers[0], event, NULL, NULL, &status);
    ck_assert_int_eq(status, 201);
    json_decref(res);

    res = join(&servers[0], "0000aaaa-1111-4222-8333-444455556666", &status);
    ck_assert_int_eq(status, 404);
    json_decref(res);
    res = tk_api_call(&servers[0], "POST", "/events/queue/", TK_JSON_HEADER, "{}", &status);
    ck_assert_int_eq(status, 400);
    json_decref(res);
    res = tk_api_call(&servers[0], "GET", "/events/queue/", NULL, NULL, &status);
    ck_assert_int_eq(status, 400);
    tk_api_assert_error_shape(res);
    json_decref(res);
}
END_TEST

/* Joins n buyers before an opening 2 s away (rate 60/min, admissions of 30 s); their
 * queue ids into ids[n][160]. Returns the opening instant. */
static int64_t early_crowd(const char *event, int n, char (*ids)[160])
{
    int64_t opens = (now_ms() / 1000 + 3) * 1000;
    char when[40];
    int status;
    iso(opens, when, sizeof(when));
    open_room(&servers[0], event, opens, 60, 30);
    for (int i = 0; i < n; ++i) {
        json_t *res = join(&servers[0], event, &status);
        ck_assert_int_eq(status, 201);
        ck_assert_str_eq(json_string_value(json_object_get(res, "status")), "waiting");
        ck_assert(json_is_null(json_object_get(res, "position")));
        ck_assert(json_is_integer(json_object_get(res, "eta_seconds")));
        ck_assert_int_eq(parse_iso(json_string_value(json_object_get(res, "opens_at"))), opens);
        snprintf(ids[i], 160, "%s", json_string_value(json_object_get(res, "queue_id")));
        json_decref(res);
        res = poll_queue(&servers[0], ids[i], &status);
        ck_assert_int_eq(status, 200);
        ck_assert_str_eq(json_string_value(json_object_get(res, "status")), "waiting");
        ck_assert(json_is_null(json_object_get(res, "position")));
        json_decref(res);
    }
    return opens;
}

START_TEST(early_joiners_get_places_at_the_opening_then_admissions_in_order)
{
    char event[37], other[37], ids[5][160];
    int status;
    create_event(&servers[0], event);
    create_event(&servers[0], other);
    int64_t opens = early_crowd(event, 5, ids);

    /* refused ids: forged, moved to another event, missing */
    char forged[160];
    snprintf(forged, sizeof(forged), "%s", ids[0]);
    forged[strlen(forged) - 1] = forged[strlen(forged) - 1] == 'A' ? 'B' : 'A';
    json_t *res = poll_queue(&servers[0], forged, &status);
    assert_error(res, &status, 403, "Invalid queue id", "This queue id was not issued by this server");
    snprintf(forged, sizeof(forged), "%s", ids[0]);
    memcpy(forged, other, 36);
    res = poll_queue(&servers[0], forged, &status);
    assert_error(res, &status, 403, "Invalid queue id", "This queue id was not issued by this server");

    sleep_until(opens + 400);
    int seen[6] = {0};
    json_int_t place[5], last[5];
    for (int i = 0; i < 5; ++i) {
        res = poll_queue(&servers[0], ids[i], &status);
        ck_assert_int_eq(status, 200);
        ck_assert_str_eq(json_string_value(json_object_get(res, "status")), "waiting");
        json_int_t p = json_integer_value(json_object_get(res, "position"));
        int64_t line = (now_ms() - opens) / 1000; /* one admission a second from the opening */
        ck_assert_msg(p >= 1 && p <= 5 && !seen[p], "position %lld", (long long)p);
        seen[p] = 1;
        ck_assert_int_eq(line, 0);
        place[i] = last[i] = p;
        json_decref(res);
    }
    ck_assert_msg(now_ms() < opens + 1000, "too slow to see the whole queue before the first admission");
    /* a late joiner queues behind the early crowd */
    res = join(&servers[0], event, &status);
    ck_assert_int_eq(status, 201);
    ck_assert_int_le(json_integer_value(json_object_get(res, "position")), 6);
    ck_assert_int_ge(json_integer_value(json_object_get(res, "position")), 6 - (now_ms() - opens) / 1000);
    json_decref(res);

    /* admissions go in place order, one a second; positions only decrease */
    int nadmitted = 0, done[5] = {0};
    int64_t deadline = opens + 4500;
    while (now_ms() < deadline) {
        for (int i = 0; i < 5; ++i) {
            if (done[i])
                continue;
            res = poll_queue(&servers[0], ids[i], &status);
            ck_assert_int_eq(status, 200);
            const char *st = json_string_value(json_object_get(res, "status"));
            if (strcmp(st, "admitted") == 0) {
                ck_assert(json_is_string(json_object_get(res, "admission")));
                int64_t until = parse_iso(json_string_value(json_object_get(res, "admitted_until")));
                ck_assert_int_eq(until, opens + place[i] * 1000 + 30000); /* place p is admitted at opens + p s */
                ++nadmitted;
                done[i] = 1;
            } else {
                ck_assert_str_eq(st, "waiting");
                json_int_t p = json_integer_value(json_object_get(res, "position"));
                ck_assert_msg(p <= last[i], "position went up from %lld to %lld", (long long)last[i], (long long)p);
                last[i] = p;
                ck_assert(json_integer_value(json_object_get(res, "eta_seconds")) <= p);
            }
            json_decref(res);
        }
        usleep(100 * 1000);
    }
    ck_assert_int_ge(nadmitted, 3);
    ck_assert_int_le(nadmitted, 5);
    for (int i = 0; i < 5; ++i)
        ck_assert_msg(done[i] == (place[i] <= nadmitted), "place %lld admitted out of order", (long long)place[i]);
}
END_TEST

START_TEST(reservations_need_an_admission_and_hold_one_at_a_time)
{
    char event[37], other[37], ids[1][160], admission[256], other_admission[256];
    int status;
    create_event(&servers[0], event);
    create_event(&servers[0], other);
    int64_t opens = early_crowd(event, 1, ids);
    /* the other event's room is on too, with an admission of its own */
    open_room(&servers[0], other, opens, 60, 30);
    json_t *res = join(&servers[0], other, &status);
    char other_id[160];
    snprintf(other_id, sizeof(other_id), "%s", json_string_value(json_object_get(res, "queue_id")));
    json_decref(res);

    res = reserve(&servers[0], event, NULL, NULL, &status);
    assert_waiting_room_refusal(res, &status);
    sleep_until(opens + 1300);
    res = poll_queue(&servers[0], ids[0], &status);
    ck_assert_str_eq(json_string_value(json_object_get(res, "status")), "admitted");
    snprintf(admission, sizeof(admission), "%s", json_string_value(json_object_get(res, "admission")));
    int64_t until = parse_iso(json_string_value(json_object_get(res, "admitted_until")));
    json_decref(res);
    res = poll_queue(&servers[0], other_id, &status);
    snprintf(other_admission, sizeof(other_admission), "%s", json_string_value(json_object_get(res, "admission")));
    json_decref(res);

    /* missing, forged, another event's */
    char forged[256];
    snprintf(forged, sizeof(forged), "%s", admission);
    forged[strlen(forged) - 2] = forged[strlen(forged) - 2] == 'x' ? 'y' : 'x';
    res = reserve(&servers[0], event, forged, NULL, &status);
    assert_waiting_room_refusal(res, &status);
    res = reserve(&servers[0], event, NULL, "not-an-admission", &status);
    assert_waiting_room_refusal(res, &status);
    res = reserve(&servers[0], event, other_admission, NULL, &status);
    assert_waiting_room_refusal(res, &status);

    /* the admission holds one reservation at a time */
    res = reserve(&servers[0], event, NULL, admission, &status);
    ck_assert_int_eq(status, 201);
    char rid[64], body[128];
    snprintf(rid, sizeof(rid), "%s", json_string_value(json_object_get(res, "reservation_id")));
    json_decref(res);
    res = reserve(&servers[0], event, admission, NULL, &status);
    assert_error(res, &status, 409, "Admission already used", "This admission already holds a reservation");
    snprintf(body, sizeof(body), "{\"reservation_id\": \"%s\"}", rid);
    res = tk_api_call(&servers[0], "DELETE", "/events/reservation/", TK_JSON_HEADER, body, &status);
    ck_assert_int_eq(status, 200);
    json_decref(res);
    res = reserve(&servers[0], event, admission, NULL, &status);
    ck_assert_int_eq(status, 201);
    json_decref(res);
    res = reserve(&servers[0], event, admission, NULL, &status);
    assert_error(res, &status, 409, "Admission already used", "This admission already holds a reservation");

    /* past admitted_until: the poll says expired and the admission opens nothing */
    sleep_until(until + 200);
    res = poll_queue(&servers[0], ids[0], &status);
    ck_assert_int_eq(status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(res, "status")), "expired");
    ck_assert_int_eq(json_object_size(res), 1);
    json_decref(res);
    res = reserve(&servers[0], event, admission, NULL, &status);
    assert_waiting_room_refusal(res, &status);

    /* metrics count the room's traffic */
    ck_assert_int_ge(tk_api_metric(&servers[0], NULL, "ticketd_waitroom_joins_total"), 0);
    ck_assert_int_ge(tk_api_metric(&servers[0], NULL, "ticketd_waitroom_refusals_total"), 1);
    ck_assert_int_ge(tk_api_metric(&servers[0], NULL, "ticketd_waitroom_polls_total"), 1);
}
END_TEST

/* ---- the crowd --------------------------------------------------------------------- */

typedef struct st_observation_t {
    char id[160];
    int64_t ticket;
    int64_t place;         /* from the admission instant; 0 while unknown */
    int64_t last_position; /* the last waiting position seen; 0 none */
    int64_t waits[8][3];   /* waiting observations: position, sent, received */
    int nwaits;
} observation_t;

static observation_t crowd[CROWD];

/* one child per server joins its share of the crowd at the same time as the others */
static void join_crowd(const char *event, int64_t opens)
{
    char path[NSERVERS][64];
    pid_t pids[NSERVERS];
    for (int k = 0; k < NSERVERS; ++k) {
        snprintf(path[k], sizeof(path[k]), "/tmp/tk_wr_crowd_%d_%d", (int)getpid(), k);
        if ((pids[k] = fork()) == 0) {
            FILE *out = fopen(path[k], "w");
            for (int i = k; i < CROWD; i += NSERVERS) {
                int status;
                json_t *res = join(&servers[k], event, &status);
                const char *id = json_string_value(json_object_get(res, "queue_id"));
                fprintf(out, "%d %s %d\n", i,
                        id != NULL && status == 201 && json_is_null(json_object_get(res, "position")) ? id : "-", status);
                json_decref(res);
            }
            fclose(out);
            _exit(0);
        }
    }
    for (int k = 0; k < NSERVERS; ++k) {
        int wstatus;
        waitpid(pids[k], &wstatus, 0);
        FILE *in = fopen(path[k], "r");
        int i, status;
        char id[160];
        while (in != NULL && fscanf(in, "%d %159s %d", &i, id, &status) == 3) {
            ck_assert_msg(strcmp(id, "-") != 0, "joiner %d: status %d, or joined after the opening", i, status);
            snprintf(crowd[i].id, sizeof(crowd[i].id), "%s", id);
            crowd[i].ticket = atoll(strchr(id, '.') + 1);
        }
        if (in != NULL)
            fclose(in);
        unlink(path[k]);
    }
    ck_assert_int_lt(now_ms(), opens);
}

/* L(t) as the room defines it, for the crowd's rate: places admitted by instant t */
static int64_t line_at(int64_t opens, int64_t t)
{
    return t < opens ? 0 : (t - opens) * CROWD_RATE / 60000;
}

/* polls everyone once, rotating servers from `first`; returns the line when it started */
static int64_t sweep(const char *event, int64_t opens, int first, int admission_s)
{
    int64_t start = now_ms();
    for (int i = 0; i < CROWD; ++i) {
        observation_t *o = crowd + i;
        int status;
        int64_t sent = now_ms();
        json_t *res = poll_queue(&servers[(first + i) % NSERVERS], o->id, &status);
        int64_t received = now_ms();
        ck_assert_int_eq(status, 200);
        const char *st = json_string_value(json_object_get(res, "status"));
        if (strcmp(st, "admitted") == 0) {
            int64_t admitted = parse_iso(json_string_value(json_object_get(res, "admitted_until"))) - admission_s * 1000;
            /* place p is reached at opens + 50 p ms exactly: evenly spread at the room's rate */
            ck_assert_msg((admitted - opens) % (60000 / CROWD_RATE) == 0, "admitted at %lld", (long long)admitted);
            int64_t place = (admitted - opens) / (60000 / CROWD_RATE);
            ck_assert_msg(admitted <= received, "admitted %lld ms early", (long long)(admitted - received));
            ck_assert_msg(o->place == 0 || o->place == place, "ticket %lld: place %lld, then %lld on another process",
                          (long long)o->ticket, (long long)o->place, (long long)place);
            ck_assert_msg(o->last_position == 0 || place - o->last_position <= line_at(opens, received),
                          "place %lld admitted while waiting at %lld", (long long)place, (long long)o->last_position);
            o->place = place;
        } else {
            ck_assert_str_eq(st, "waiting");
            ck_assert_msg(o->place == 0, "ticket %lld waits again after its admission", (long long)o->ticket);
            int64_t p = json_integer_value(json_object_get(res, "position"));
            ck_assert_msg(p >= 1 && (o->last_position == 0 || p <= o->last_position), "position %lld after %lld", (long long)p,
                          (long long)o->last_position);
            o->last_position = p;
            if (o->nwaits < 8) {
                int64_t *w = o->waits[o->nwaits++];
                w[0] = p, w[1] = sent, w[2] = received;
            }
        }
        json_decref(res);
    }
    return line_at(opens, start);
}

START_TEST(a_crowd_over_three_processes_is_admitted_in_order_at_the_rate)
{
    char event[37], other[37];
    const int admission_s = 600;
    create_event(&servers[0], event);
    create_event(&servers[0], other);
    /* every process serves the new event once its catalog refresher saw it */
    char path[128];
    snprintf(path, sizeof(path), "/admin/events/%s/waiting-room", event);
    for (int k = 0; k < NSERVERS; ++k) {
        int status = 0;
        for (int tries = 0; tries < 100 && status != 200; ++tries) {
            json_decref(tk_api_call(&servers[k], "GET", path, ADMIN_HEADERS, NULL, &status));
            if (status != 200)
                usleep(50 * 1000);
        }
        ck_assert_int_eq(status, 200);
    }
    int64_t opens = (now_ms() / 1000 + 6) * 1000;
    open_room(&servers[1], event, opens, CROWD_RATE, admission_s);
    join_crowd(event, opens);

    sleep_until(opens + 2000);
    int64_t line1 = sweep(event, opens, 0, admission_s);
    int64_t line2 = sweep(event, opens, 1, admission_s);
    int64_t line3 = sweep(event, opens, 2, admission_s);
    ck_assert_int_gt(line3, line1);

    /* every place up to the line at the last sweep's start was handed out, once */
    static char seen[CROWD + 1];
    int64_t admitted = 0, out_of_ticket_order = 0, prev_ticket = 0;
    memset(seen, 0, sizeof(seen));
    for (int64_t place = 1; place <= CROWD; ++place)
        for (int i = 0; i < CROWD; ++i)
            if (crowd[i].place == place) {
                out_of_ticket_order += crowd[i].ticket < prev_ticket;
                prev_ticket = crowd[i].ticket;
            }
    for (int i = 0; i < CROWD; ++i) {
        int64_t q = crowd[i].place;
        if (q == 0)
            continue;
        ck_assert_msg(q >= 1 && q <= CROWD && !seen[q], "place %lld handed out twice", (long long)q);
        seen[q] = 1;
        ++admitted;
        /* each waiting answer was the place minus the shared line at that instant */
        for (int k = 0; k < crowd[i].nwaits; ++k) {
            int64_t *w = crowd[i].waits[k], line = q - w[0];
            ck_assert_msg(line >= line_at(opens, w[1]) - 1 && line <= line_at(opens, w[2]) + 1,
                          "position %lld of place %lld: line %lld outside [%lld, %lld]", (long long)w[0], (long long)q,
                          (long long)line, (long long)line_at(opens, w[1]), (long long)line_at(opens, w[2]));
        }
    }
    for (int64_t q = 1; q <= line3; ++q)
        ck_assert_msg(seen[q], "place %lld was reached by the line but nobody was admitted to it", (long long)q);
    ck_assert_int_ge(admitted, line3);
    ck_assert_int_lt(admitted, CROWD);
    ck_assert_msg(out_of_ticket_order > admitted / 4, "the opening did not shuffle: %lld of %lld out of arrival order",
                  (long long)out_of_ticket_order, (long long)admitted);
    fprintf(stderr, "crowd: %lld of %d admitted, line %lld -> %lld -> %lld over three sweeps, %lld out of arrival order\n",
            (long long)admitted, CROWD, (long long)line1, (long long)line2, (long long)line3, (long long)out_of_ticket_order);

    /* the room's figures agree from every process */
    for (int k = 0; k < NSERVERS; ++k) {
        int status;
        json_t *res = tk_api_call(&servers[k], "GET", path, ADMIN_HEADERS, NULL, &status);
        ck_assert_int_eq(status, 200);
        json_int_t a = json_integer_value(json_object_get(res, "admitted")),
                   w = json_integer_value(json_object_get(res, "waiting"));
        ck_assert_int_eq(a + w, CROWD);
        ck_assert_int_ge(a, line3);
        json_decref(res);
    }

    /* forged and cross-event ids are refused by every process */
    for (int k = 0; k < NSERVERS; ++k) {
        char moved[160];
        int status;
        snprintf(moved, sizeof(moved), "%s", crowd[k].id);
        memcpy(moved, other, 36);
        json_t *res = poll_queue(&servers[k], moved, &status);
        ck_assert_int_eq(status, 403);
        json_decref(res);
        snprintf(moved, sizeof(moved), "%s", crowd[k].id);
        char *dot = strchr(moved, '.');
        dot[1] = dot[1] == '9' ? '8' : '9'; /* another ticket */
        res = poll_queue(&servers[k], moved, &status);
        ck_assert_int_eq(status, 403);
        json_decref(res);
    }
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("waiting_room");
    TCase *contract = tcase_create("contract");
    tcase_set_timeout(contract, 90);
    tcase_add_unchecked_fixture(contract, start_one, stop_servers);
    tcase_add_test(contract, admin_settings_need_the_token_and_valid_values);
    tcase_add_test(contract, an_event_without_a_room_admits_at_once);
    tcase_add_test(contract, early_joiners_get_places_at_the_opening_then_admissions_in_order);
    tcase_add_test(contract, reservations_need_an_admission_and_hold_one_at_a_time);
    suite_add_tcase(suite, contract);
    TCase *crowd_case = tcase_create("crowd");
    tcase_set_timeout(crowd_case, 120);
    tcase_add_unchecked_fixture(crowd_case, start_three, stop_servers);
    tcase_add_test(crowd_case, a_crowd_over_three_processes_is_admitted_in_order_at_the_rate);
    suite_add_tcase(suite, crowd_case);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed != 0;
}
