/*
 * Integration tests of the outbox writer (engine/writer.c, engine/persist.c) against
 * real Redis and PostgreSQL: a 1,000-reservation funnel ends with exactly those rows,
 * field by field; PostgreSQL stopped mid-sale loses and duplicates nothing; entries a
 * crashed writer left pending are claimed by a live one; and reads of records that
 * left Redis are answered from PostgreSQL.
 */
#include "engine/inventory.h"
#include "engine/persist.h"
#include "engine/pg.h"
#include "engine/uuid.h"
#include "tests/support/api.h"
#include "tests/support/outbox_pack.h"
#include "tests/support/redis_direct.h"

#include <check.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define ADMIN_TOKEN "tk-test-only-admin-token-0123456789abcdef"
#define AUTH "Authorization: Bearer " ADMIN_TOKEN "\r\n"
#define FUNNEL_PROCS 10
#define FUNNEL_EACH 100

static tk_test_server_t server;
/* many holds from one client (127.0.0.1): fair use is tested in test_fair_use_http */
static const char *const server_env[] = {"TICKETD_ADMIN_TOKEN=" ADMIN_TOKEN, "TICKETD_PAYMENT_LATENCY_MS=0",
                                         "TICKETD_CLIENT_MAX_HOLDS=0", "TICKETD_CLIENT_HOLD_RATE=0", NULL};

static void start_server(void)
{
    ck_assert_int_eq(tk_test_server_start(&server, server_env, NULL), 0);
}

static void stop_server(void)
{
    tk_test_services("start-postgres"); /* whatever a failed test left behind */
    tk_test_server_stop(&server);
}

static char *create_event(const tk_test_server_t *s, int amount)
{
    char body[512];
    snprintf(body, sizeof(body),
             "{\"name\": \"Persist\", \"date\": \"2035-01-01T20:00:00Z\", \"ticket_types\": [{\"type\": \"A\", \"price\": 19.99, "
             "\"amount\": %d}]}",
             amount);
    char id[37];
    tk_api_create_event(s, TK_JSON_HEADER AUTH, body, id);
    return strdup(id);
}

/* reserve one ticket; returns the reservation id (caller frees) or NULL when not 201 */
static char *reserve_one(const tk_test_server_t *s, const char *event)
{
    char body[256];
    int status;
    snprintf(body, sizeof(body), "{\"event_id\": \"%s\", \"tickets\": [{\"type\": \"A\", \"amount\": 1}]}", event);
    json_t *res = tk_api_call(s, "POST", "/events/reservation/", TK_JSON_HEADER, body, &status);
    char *rid = status == 201 ? strdup(json_string_value(json_object_get(res, "reservation_id"))) : NULL;
    json_decref(res);
    return rid;
}

static int pay(const tk_test_server_t *s, const char *rid, const char *card)
{
    char body[256];
    int status;
    snprintf(body, sizeof(body), "{\"reservation_id\": \"%s\", \"card\": \"%s\"}", rid, card);
    json_decref(tk_api_call(s, "PUT", "/events/reservation/", TK_JSON_HEADER, body, &status));
    return status;
}

/* polls a count query until it reaches want (or 20 s); returns the last count */
static long long await_count(const char *sql, long long want)
{
    long long n = -1;
    for (int i = 0; i < 200 && (n = tk_test_pg_count(server.database, sql)) != want; ++i)
        usleep(100 * 1000);
    return n;
}

static long long await_count_quietly(const char *sql, long long want, int seconds)
{
    long long n = -1;
    for (int i = 0; i < seconds * 10 && (n = tk_test_pg_count(server.database, sql)) != want; ++i)
        usleep(100 * 1000);
    return n;
}

START_TEST(funnel_of_1000_ends_with_exactly_those_rows)
{
    char *event = create_event(&server, FUNNEL_PROCS * FUNNEL_EACH);
    for (int p = 0; p < FUNNEL_PROCS; ++p) {
        if (fork() == 0) {
            int bad = 0;
            for (int i = 0; i < FUNNEL_EACH; ++i) {
                char *rid = reserve_one(&server, event);
                bad += rid == NULL || pay(&server, rid, "4242424242424242") != 202;
                free(rid);
            }
            _exit(bad == 0 ? 0 : 1);
        }
    }
    int wstatus, failures = 0;
    while (wait(&wstatus) > 0)
        failures += !WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0;
    ck_assert_int_eq(failures, 0);

    char sql[512];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM reservations WHERE event_id = '%s' AND status = 'COMPLETED'", event);
    ck_assert_int_eq(await_count(sql, 1000), 1000);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM reservations WHERE event_id = '%s'", event);
    ck_assert_int_eq(tk_test_pg_count(server.database, sql), 1000);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM transactions t JOIN reservations r ON r.id = t.reservation_id "
             "WHERE r.event_id = '%s' AND t.status = 'COMPLETED' AND t.amount = 19.99 AND t.error_type IS NULL",
             event);
    ck_assert_int_eq(await_count(sql, 1000), 1000);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM ordered_tickets WHERE event_id = '%s' AND type = 'A' AND price = 19.99",
             event);
    ck_assert_int_eq(tk_test_pg_count(server.database, sql), 1000);

    /* the live figures agree with the database, and the invariant holds */
    char path[128];
    int status;
    snprintf(path, sizeof(path), "/events/stats/?event_id=%s", event);
    json_t *stats = tk_api_call(&server, "GET", path, AUTH, NULL, &status);
    json_t *live = json_object_get(stats, "live");
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(stats, "ticket_counters"), "all_tickets_sold")), 1000);
    ck_assert_int_eq(json_integer_value(json_object_get(live, "sold")), 1000);
    ck_assert_int_eq(json_integer_value(json_object_get(live, "available")) + json_integer_value(json_object_get(live, "held")) +
                         json_integer_value(json_object_get(live, "sold")),
                     json_integer_value(json_object_get(live, "capacity")));
    ck_assert(json_real_value(json_object_get(live, "revenue")) > 19989.0 &&
              json_real_value(json_object_get(live, "revenue")) < 19991.0);
    json_decref(stats);
    free(event);
}
END_TEST

START_TEST(rows_match_the_api_field_by_field)
{
    char *event = create_event(&server, 10);
    char *paid = reserve_one(&server, event), *declined = reserve_one(&server, event), *cancelled = reserve_one(&server, event);
    ck_assert_int_eq(pay(&server, paid, "4242424242424242"), 202);
    ck_assert_int_eq(pay(&server, declined, "4000000000000002"), 202);
    char body[128], path[128], sql[512], value[256];
    int status;
    snprintf(body, sizeof(body), "{\"reservation_id\": \"%s\"}", cancelled);
    json_decref(tk_api_call(&server, "DELETE", "/events/reservation/", TK_JSON_HEADER, body, &status));
    ck_assert_int_eq(status, 200);

    snprintf(sql, sizeof(sql), "SELECT count(*) FROM reservations WHERE event_id = '%s' AND status <> 'PENDING'", event);
    ck_assert_int_eq(await_count(sql, 2), 2);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM transactions WHERE reservation_id = '%s' AND status = 'ERROR'", declined);
    ck_assert_int_eq(await_count(sql, 1), 1);

    snprintf(path, sizeof(path), "/events/reservation/?reservation_id=%s", paid);
    json_t *doc = tk_api_call(&server, "GET", path, NULL, NULL, &status);
    json_t *r = json_object_get(doc, "reservation"), *ticket = json_array_get(json_object_get(doc, "tickets"), 0);
    snprintf(sql, sizeof(sql),
             "SELECT concat_ws('|', event_id, status, to_char(reservation_date AT TIME ZONE 'UTC', "
             "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), "
             "to_char(pending_until AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')) FROM reservations WHERE id = '%s'",
             paid);
    ck_assert_int_eq(tk_test_pg_scalar(server.database, sql, value, sizeof(value)), 0);
    char want[256], created[40], until[40];
    /* the API omits ".000" on whole seconds; PostgreSQL's to_char always has it */
    snprintf(created, sizeof(created), "%s", json_string_value(json_object_get(r, "reservation_date")));
    snprintf(until, sizeof(until), "%s", json_string_value(json_object_get(r, "pending_until")));
    if (strlen(created) == 20)
        strcpy(created + 19, ".000Z");
    if (strlen(until) == 20)
        strcpy(until + 19, ".000Z");
    snprintf(want, sizeof(want), "%s|COMPLETED|%s|%s", event, created, until);
    ck_assert_str_eq(value, want);
    snprintf(sql, sizeof(sql),
             "SELECT concat_ws('|', id, reservation_id, event_id, type, price) FROM ordered_tickets WHERE reservation_id = '%s'",
             paid);
    tk_test_pg_scalar(server.database, sql, value, sizeof(value));
    snprintf(want, sizeof(want), "%s|%s|%s|A|19.99", json_string_value(json_object_get(ticket, "id")), paid, event);
    ck_assert_str_eq(value, want);
    json_decref(doc);

    snprintf(sql, sizeof(sql), "SELECT concat_ws('|', status, amount, error_type) FROM transactions WHERE reservation_id = '%s'",
             declined);
    tk_test_pg_scalar(server.database, sql, value, sizeof(value));
    ck_assert_str_eq(value, "ERROR|19.99|Your card has been declined");
    snprintf(sql, sizeof(sql), "SELECT status FROM reservations WHERE id = '%s'", declined);
    tk_test_pg_scalar(server.database, sql, value, sizeof(value));
    ck_assert_str_eq(value, "PENDING");
    snprintf(sql, sizeof(sql), "SELECT status FROM reservations WHERE id = '%s'", cancelled);
    tk_test_pg_scalar(server.database, sql, value, sizeof(value));
    ck_assert_str_eq(value, "CANCELLED");
    free(paid);
    free(declined);
    free(cancelled);
    free(event);
}
END_TEST

/* sql/003: a ticket's (reservation, event) must be a reservation's own pair */
START_TEST(a_ticket_names_its_reservations_event)
{
    char *event = create_event(&server, 10), *other = create_event(&server, 10);
    char *rid = reserve_one(&server, event);
    ck_assert_ptr_nonnull(rid);
    char sql[512], value[64];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM reservations WHERE id = '%s'", rid);
    ck_assert_int_eq(await_count(sql, 1), 1);
    static const char insert[] = "INSERT INTO ordered_tickets (id, reservation_id, event_id, type, price) "
                                 "VALUES (gen_random_uuid(), '%s', '%s', 'A', 1) RETURNING 1";
    snprintf(sql, sizeof(sql), insert, rid, other); /* an event that exists, but not the reservation's */
    ck_assert_int_ne(tk_test_pg_scalar(server.database, sql, value, sizeof(value)), 0);
    snprintf(sql, sizeof(sql), insert, "00000000-0000-4000-8000-000000000000", event); /* no such reservation */
    ck_assert_int_ne(tk_test_pg_scalar(server.database, sql, value, sizeof(value)), 0);
    snprintf(sql, sizeof(sql), insert, rid, event);
    ck_assert_int_eq(tk_test_pg_scalar(server.database, sql, value, sizeof(value)), 0);
    ck_assert_str_eq(value, "1");
    free(rid);
    free(other);
    free(event);
}
END_TEST

START_TEST(postgres_down_mid_sale_loses_and_duplicates_nothing)
{
    char *event = create_event(&server, 100);
    ck_assert_int_eq(tk_test_services("stop-postgres"), 0);
    int sold = 0;
    for (int i = 0; i < 40; ++i) {
        char *rid = reserve_one(&server, event); /* sales go on without the database */
        ck_assert_ptr_nonnull(rid);
        sold += pay(&server, rid, "4242424242424242") == 202;
        free(rid);
    }
    ck_assert_int_eq(sold, 40);
    sleep(1);
    ck_assert_int_eq(tk_test_services("start-postgres"), 0);
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM reservations WHERE event_id = '%s' AND status = 'COMPLETED'", event);
    ck_assert_int_eq(await_count(sql, 40), 40);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM ordered_tickets WHERE event_id = '%s'", event);
    ck_assert_int_eq(tk_test_pg_count(server.database, sql), 40);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM transactions t JOIN reservations r ON r.id = t.reservation_id WHERE r.event_id = '%s'", event);
    ck_assert_int_eq(await_count(sql, 40), 40);
    free(event);
}
END_TEST

/* Reads every new outbox entry of id's shard as consumer "crashed-writer" and never
 * acknowledges them: what a writer that died after reading leaves behind. The group is
 * made first if no live writer has made it yet (they make a shard's group on their next
 * read after the event appears, and with PostgreSQL away they may not read at all). */
static long long read_as_crashed_writer(const char *id)
{
    tk_shard_keys_t keys;
    tk_shard_keys(id, &keys);
    redisReply *r = tk_test_redis_command("XGROUP CREATE %s writers 0 MKSTREAM", keys.names[TK_KEY_OB]);
    ck_assert_ptr_nonnull(r);
    ck_assert_msg(r->type == REDIS_REPLY_STATUS || (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) == 0),
                  "XGROUP CREATE: %s", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    freeReplyObject(r);
    r = tk_test_redis_command("XREADGROUP GROUP writers crashed-writer COUNT 10000 STREAMS %s >", keys.names[TK_KEY_OB]);
    ck_assert_ptr_nonnull(r);
    ck_assert_msg(r->type == REDIS_REPLY_ARRAY || r->type == REDIS_REPLY_NIL, "XREADGROUP: %s",
                  r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    long long n = r->type == REDIS_REPLY_ARRAY && r->elements == 1 ? (long long)r->element[0]->element[1]->elements : 0;
    freeReplyObject(r);
    return n;
}

static long long pending_of_crashed_writer(const char *id)
{
    tk_shard_keys_t keys;
    tk_shard_keys(id, &keys);
    redisReply *r = tk_test_redis_command("XPENDING %s writers - + 10000 crashed-writer", keys.names[TK_KEY_OB]);
    long long n = r != NULL && r->type == REDIS_REPLY_ARRAY ? (long long)r->elements : -1;
    freeReplyObject(r);
    return n;
}

START_TEST(entries_left_by_a_crashed_writer_are_claimed)
{
    char *event = create_event(&server, 100);
    /* with the database away the live writers stop reading; a "crashed" consumer takes what is left */
    ck_assert_int_eq(tk_test_services("stop-postgres"), 0);
    /* The live writers stop reading once a write of theirs failed; until then (a writer
     * whose connection has not noticed PostgreSQL is gone) they may read some entries
     * themselves and keep those pending for their own retry. So the sale goes on in
     * rounds until the crashed consumer has taken some. */
    long long taken = 0;
    int sold = 0;
    for (int round = 0; round < 10 && taken == 0; ++round) {
        for (int i = 0; i < 10; ++i) {
            char *rid = reserve_one(&server, event);
            ck_assert_ptr_nonnull(rid);
            ck_assert_int_eq(pay(&server, rid, "4242424242424242"), 202);
            free(rid);
            ++sold;
        }
        usleep(200 * 1000);
        taken = read_as_crashed_writer(event);
    }
    ck_assert_int_ge(taken, 1);
    ck_assert_int_eq(pending_of_crashed_writer(event), taken);
    ck_assert_int_eq(tk_test_services("start-postgres"), 0);
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM reservations WHERE event_id = '%s' AND status = 'COMPLETED'", event);
    /* the live writer claims them once they have been idle for the claim time */
    ck_assert_int_eq(await_count_quietly(sql, sold, 30), sold);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM reservations WHERE event_id = '%s'", event);
    ck_assert_int_eq(tk_test_pg_count(server.database, sql), sold);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM ordered_tickets WHERE event_id = '%s'", event);
    ck_assert_int_eq(tk_test_pg_count(server.database, sql), sold);
    ck_assert_int_eq(pending_of_crashed_writer(event), 0);
    free(event);
}
END_TEST

START_TEST(reads_fall_back_to_postgres_once_records_leave_redis)
{
    char *event = create_event(&server, 10);
    char *rid = reserve_one(&server, event);
    ck_assert_int_eq(pay(&server, rid, "4242424242424242"), 202);
    char sql[256], path[128];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM reservations WHERE id = '%s' AND status = 'COMPLETED'", rid);
    ck_assert_int_eq(await_count(sql, 1), 1);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM transactions WHERE reservation_id = '%s' AND status = 'COMPLETED'", rid);
    ck_assert_int_eq(await_count(sql, 1), 1);
    char txn[64];
    snprintf(sql, sizeof(sql), "SELECT id FROM transactions WHERE reservation_id = '%s'", rid);
    tk_test_pg_scalar(server.database, sql, txn, sizeof(txn));

    int status;
    snprintf(path, sizeof(path), "/events/reservation/?reservation_id=%s", rid);
    json_t *live = tk_api_call(&server, "GET", path, NULL, NULL, &status);
    /* what the writer's grace period does later, now */
    tk_shard_keys_t keys;
    tk_shard_keys(rid, &keys);
    freeReplyObject(tk_test_redis_command("HDEL %s %s", keys.names[TK_KEY_RES], rid));
    freeReplyObject(tk_test_redis_command("HDEL %s %s", keys.names[TK_KEY_TX], txn));
    json_t *stored = tk_api_call(&server, "GET", path, NULL, NULL, &status);
    ck_assert_int_eq(status, 200);
    ck_assert_msg(json_equal(live, stored), "the document from PostgreSQL differs from the live one");
    json_decref(live);
    json_decref(stored);
    snprintf(path, sizeof(path), "/transactions/list/?transaction_id=%s", txn);
    json_t *t = tk_api_call(&server, "GET", path, NULL, NULL, &status);
    ck_assert_int_eq(status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(t, "status")), "COMPLETED");
    ck_assert(json_is_null(json_object_get(t, "transaction_error")));
    json_decref(t);
    /* a finished reservation that left Redis still cannot be paid or cancelled */
    ck_assert_int_eq(pay(&server, rid, "4242424242424242"), 409);
    snprintf(path, sizeof(path), "/events/reservation/?reservation_id=%s", rid);
    json_t *refused = tk_api_call(&server, "DELETE", path, NULL, NULL, &status);
    ck_assert_int_eq(status, 409);
    ck_assert_str_eq(json_string_value(json_object_get(refused, "message")),
                     "This reservation can not be cancelled: it is already finished");
    json_decref(refused);
    free(rid);
    free(event);
}
END_TEST

/* how many entries of the dead-letter stream of event's shard have field = value */
static int dead_letters_with(const char *event, const char *field, const char *value)
{
    char dead[32];
    snprintf(dead, sizeof(dead), "tk:{%.4s}:dead", event);
    redisReply *r = tk_test_redis_command("XRANGE %s - +", dead);
    int found = 0;
    for (size_t i = 0; r != NULL && r->type == REDIS_REPLY_ARRAY && i < r->elements; ++i) {
        redisReply *fields = r->element[i]->element[1];
        for (size_t j = 0; j + 1 < fields->elements; j += 2)
            found += strcmp(fields->element[j]->str, field) == 0 && strcmp(fields->element[j + 1]->str, value) == 0;
    }
    freeReplyObject(r);
    return found;
}

START_TEST(a_malformed_entry_is_set_aside_and_persistence_goes_on)
{
    char *event = create_event(&server, 10);
    tk_shard_keys_t keys;
    tk_shard_keys(event, &keys);
    redisReply *r = tk_test_redis_command("XADD %s * m %b", keys.names[TK_KEY_OB], "\xc1garbage", (size_t)8);
    ck_assert(r != NULL && r->type == REDIS_REPLY_STRING);
    char bad_id[64];
    snprintf(bad_id, sizeof(bad_id), "%s", r->str);
    freeReplyObject(r);
    char *rid = reserve_one(&server, event);
    ck_assert_int_eq(pay(&server, rid, "4242424242424242"), 202);
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM reservations WHERE id = '%s' AND status = 'COMPLETED'", rid);
    ck_assert_int_eq(await_count(sql, 1), 1);
    /* the bad entry waits in the dead-letter stream with its reason, out of the outbox */
    ck_assert_msg(dead_letters_with(event, "id", bad_id) == 1, "entry %s is not among the dead letters", bad_id);
    r = tk_test_redis_command("XRANGE %s %s %s", keys.names[TK_KEY_OB], bad_id, bad_id);
    ck_assert_int_eq(r->elements, 0);
    freeReplyObject(r);
    free(rid);
    free(event);
}
END_TEST

/* A CANCELLED record of event, of one ticket (type A at 19.99), as the functions write it;
 * its reservation and ticket ids are new, in the event's shard. */
static void cancelled_record(tk_outbox_record_t *rec, tk_outbox_ticket_t *ticket, const char *event)
{
    *ticket = (tk_outbox_ticket_t){.price_minor = 1999};
    *rec = (tk_outbox_record_t){.created_ms = 1765000000000, .until_ms = 1765000900000, .tickets = ticket, .ntickets = 1};
    tk_uuid_v4_in_shard(rec->rid, event);
    snprintf(rec->event, sizeof(rec->event), "%s", event);
    snprintf(rec->status, sizeof(rec->status), "CANCELLED");
    tk_uuid_v4_in_shard(ticket->id, event);
    snprintf(ticket->type, sizeof(ticket->type), "A");
}

/* Appends rec to the outbox of its reservation's shard: its id as the entry's own field
 * "r" (today's form), or with rid_inside only in the record (before 2026-12-07). */
static void append_entry(const tk_outbox_record_t *rec, int rid_inside)
{
    msgpack_sbuffer buf;
    msgpack_packer pk;
    msgpack_sbuffer_init(&buf);
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    tk_test_pack_record(&pk, rec, rid_inside);
    tk_shard_keys_t keys;
    tk_shard_keys(rec->rid, &keys);
    redisReply *r = rid_inside ? tk_test_redis_command("XADD %s * m %b", keys.names[TK_KEY_OB], buf.data, buf.size)
                               : tk_test_redis_command("XADD %s * r %s m %b", keys.names[TK_KEY_OB], rec->rid, buf.data, buf.size);
    ck_assert(r != NULL && r->type == REDIS_REPLY_STRING);
    freeReplyObject(r);
    msgpack_sbuffer_destroy(&buf);
}

/* PostgreSQL failing for a reason of its own (here a full disk, raised by a trigger on
 * the event's reservations) keeps the records waiting in the outbox, never in the dead
 * letters; a record it refuses for its data (an event it does not know: a foreign key)
 * is set aside. */
START_TEST(only_records_postgres_refuses_for_their_data_are_set_aside)
{
    char *event = create_event(&server, 10);
    char sql[1024], out[16];
    snprintf(sql, sizeof(sql),
             "CREATE FUNCTION tk_test_disk_full() RETURNS trigger LANGUAGE plpgsql AS "
             "$$BEGIN RAISE EXCEPTION 'no space left on device (a test)' USING ERRCODE = 'disk_full'; END$$;"
             "CREATE TRIGGER tk_test_disk_full BEFORE INSERT ON reservations FOR EACH ROW "
             "WHEN (NEW.event_id = '%s') EXECUTE FUNCTION tk_test_disk_full(); SELECT 1",
             event);
    ck_assert_int_eq(tk_test_pg_scalar(server.database, sql, out, sizeof(out)), 0);
    long long failures = tk_api_metric(&server, NULL, "ticketd_writer_failures_total");
    char *rid = reserve_one(&server, event);
    ck_assert_ptr_nonnull(rid);
    for (int i = 0; i < 100 && tk_api_metric(&server, NULL, "ticketd_writer_failures_total") < failures + 2; ++i)
        usleep(100 * 1000); /* tried, and tried again */
    ck_assert_int_ge(tk_api_metric(&server, NULL, "ticketd_writer_failures_total"), failures + 2);
    ck_assert_int_eq(dead_letters_with(event, "r", rid), 0);
    ck_assert_int_eq(
        tk_test_pg_scalar(server.database,
                          "DROP TRIGGER tk_test_disk_full ON reservations; DROP FUNCTION tk_test_disk_full(); SELECT 1", out,
                          sizeof(out)),
        0);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM reservations WHERE id = '%s'", rid);
    ck_assert_int_eq(await_count(sql, 1), 1);
    ck_assert_int_eq(dead_letters_with(event, "r", rid), 0);

    char ghost[TK_UUID_LEN + 1];
    tk_uuid_v4_in_shard(ghost, event); /* an event of the same shard that PostgreSQL does not have */
    tk_outbox_ticket_t ticket;
    tk_outbox_record_t rec;
    cancelled_record(&rec, &ticket, ghost);
    append_entry(&rec, 0);
    const char *ghost_rid = rec.rid;
    for (int i = 0; i < 100 && dead_letters_with(event, "r", ghost_rid) == 0; ++i)
        usleep(100 * 1000);
    ck_assert_int_eq(dead_letters_with(event, "r", ghost_rid), 1);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM reservations WHERE id = '%s'", ghost_rid);
    ck_assert_int_eq(tk_test_pg_count(server.database, sql), 0);
    free(rid);
    free(event);
}
END_TEST

/* Entries of versions before 2026-12-07, still in an outbox when ticketd is upgraded: the
 * record alone in field "m", its id inside it as "r". The writer still persists them. */
START_TEST(an_entry_written_by_an_earlier_version_is_persisted)
{
    char *event = create_event(&server, 10);
    tk_outbox_ticket_t ticket;
    tk_outbox_record_t rec;
    cancelled_record(&rec, &ticket, event);
    append_entry(&rec, 1); /* the id inside the record, no field of its own */
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM reservations WHERE id = '%s' AND status = 'CANCELLED'", rec.rid);
    ck_assert_int_eq(await_count(sql, 1), 1);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM ordered_tickets WHERE id = '%s' AND reservation_id = '%s' AND price = 19.99",
             ticket.id, rec.rid);
    ck_assert_int_eq(await_count(sql, 1), 1);
    free(event);
}
END_TEST

/* writes one CANCELLED reservation of one ticket of event with tk_persist_batch on c */
static int persist_one(PGconn *c, const char *event, char *err, size_t errsize)
{
    tk_outbox_ticket_t ticket;
    tk_outbox_record_t rec;
    cancelled_record(&rec, &ticket, event);
    return tk_persist_batch(c, &rec, 1, err, errsize);
}

static void assert_persisted(const char *event, int n)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM reservations WHERE event_id = '%s' AND status = 'CANCELLED'", event);
    ck_assert_int_eq(tk_test_pg_count(server.database, sql), n);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM ordered_tickets WHERE event_id = '%s'", event);
    ck_assert_int_eq(tk_test_pg_count(server.database, sql), n);
}

/* tk_persist_batch makes its staging tables and prepared merges once per connection and
 * notes that on the connection: batches alternating between two connections, then one on
 * a connection made again, all commit (statements prepared already are as good; a new
 * session gets its own). */
START_TEST(batches_commit_on_any_connection_in_any_order)
{
    char *event = create_event(&server, 10);
    char url[512], err[512];
    tk_test_pg_url(server.database, url, sizeof(url));
    PGconn *a = tk_pg_connect(url, err, sizeof(err)), *b = a != NULL ? tk_pg_connect(url, err, sizeof(err)) : NULL;
    ck_assert_msg(b != NULL, "%s", err);
    for (int i = 0; i < 5; ++i) {
        if (i == 4) { /* a connection made again: its session has nothing prepared */
            PQfinish(a);
            a = tk_pg_connect(url, err, sizeof(err));
            ck_assert_msg(a != NULL, "%s", err);
        }
        ck_assert_msg(persist_one(i % 2 == 0 ? a : b, event, err, sizeof(err)) == 0, "batch %d: %s", i, err);
    }
    PQfinish(a);
    PQfinish(b);
    assert_persisted(event, 5);
    free(event);
}
END_TEST

/* A session that lost its staging tables and prepared merges behind the writer's back
 * (DISCARD ALL; a pooler handing over another server connection) is prepared again: a
 * batch written there commits, and is never taken for records PostgreSQL refused. */
START_TEST(a_session_that_lost_what_was_prepared_is_prepared_again)
{
    char *event = create_event(&server, 10);
    char url[512], err[512];
    tk_test_pg_url(server.database, url, sizeof(url));
    PGconn *c = tk_pg_connect(url, err, sizeof(err));
    ck_assert_msg(c != NULL, "%s", err);
    ck_assert_msg(persist_one(c, event, err, sizeof(err)) == 0, "first batch: %s", err);
    PQclear(PQexec(c, "DISCARD ALL"));
    ck_assert_msg(persist_one(c, event, err, sizeof(err)) == 0, "after DISCARD ALL: %s", err);
    PQclear(PQexec(c, "DEALLOCATE tk_merge_tickets"));
    ck_assert_msg(persist_one(c, event, err, sizeof(err)) == 0, "after DEALLOCATE: %s", err);
    PQfinish(c);
    assert_persisted(event, 3);
    free(event);
}
END_TEST

START_TEST(a_batch_is_acknowledged_with_one_call_per_shard)
{
    char *event = create_event(&server, 100);
    ck_assert_int_eq(tk_test_services("stop-postgres"), 0);
    for (int i = 0; i < 40; ++i) /* 40 entries of one shard pile up in the outbox */
        free(reserve_one(&server, event));
    long long batches = tk_api_metric(&server, NULL, "ticketd_writer_batches_total"),
              calls = tk_api_metric(&server, NULL, "ticketd_writer_ack_calls_total");
    ck_assert_int_eq(tk_test_services("start-postgres"), 0);
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM reservations WHERE event_id = '%s'", event);
    ck_assert_int_eq(await_count(sql, 40), 40);
    usleep(300 * 1000);
    long long more_batches = tk_api_metric(&server, NULL, "ticketd_writer_batches_total") - batches,
              more_calls = tk_api_metric(&server, NULL, "ticketd_writer_ack_calls_total") - calls;
    ck_assert_int_ge(more_batches, 1);
    ck_assert_msg(more_calls <= more_batches, "%lld tk_persisted calls for %lld batches of one shard", more_calls, more_batches);
    free(event);
}
END_TEST

/* tickets_left of the event's type A, or -1 when it is not answered with a figure */
static json_int_t tickets_left(const char *event)
{
    char body[128];
    int status;
    snprintf(body, sizeof(body), "{\"event_id\": \"%s\"}", event);
    json_t *res = tk_api_call(&server, "POST", "/events/event/", TK_JSON_HEADER, body, &status);
    json_t *left = json_object_get(json_array_get(json_object_get(res, "ticket_types"), 0), "tickets_left");
    json_int_t n = status == 200 && json_is_integer(left) ? json_integer_value(left) : -1;
    json_decref(res);
    return n;
}

/* Redis restarted without an event's data (its shard's keys and the function library
 * gone, as after a restart with no AOF): ticketd equips it again, and the event starts
 * from what PostgreSQL knows, not from its capacity. The sold ticket stays sold and the
 * held ones stay held (until their deadline), so none of them is sold twice. */
START_TEST(a_redis_that_lost_an_event_sells_nothing_postgres_has)
{
    char *event = create_event(&server, 5);
    char *paid = reserve_one(&server, event), *held[2] = {reserve_one(&server, event), reserve_one(&server, event)};
    ck_assert(paid != NULL && held[0] != NULL && held[1] != NULL);
    ck_assert_int_eq(pay(&server, paid, "4242424242424242"), 202);
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM reservations WHERE event_id = '%s' AND status = 'COMPLETED'", event);
    ck_assert_int_eq(await_count(sql, 1), 1);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM reservations WHERE event_id = '%s' AND status = 'PENDING'", event);
    ck_assert_int_eq(await_count(sql, 2), 2);

    tk_shard_keys_t keys;
    tk_shard_keys(event, &keys);
    redisReply *r = tk_test_redis_command("DEL %s %s %s %s %s %s %s", keys.names[0], keys.names[1], keys.names[2], keys.names[3],
                                          keys.names[4], keys.names[5], keys.names[6]);
    ck_assert(r != NULL && r->type == REDIS_REPLY_INTEGER);
    freeReplyObject(r);
    r = tk_test_redis_command("FUNCTION FLUSH SYNC"); /* on the shard's node: the last command named its keys */
    ck_assert(r != NULL && r->type == REDIS_REPLY_STATUS);
    freeReplyObject(r);

    long long back = 0; /* the event's inventory is in Redis again */
    for (int i = 0; i < 100 && back != 1; ++i) {
        usleep(100 * 1000);
        r = tk_test_redis_command("HEXISTS %s %s:types", keys.names[TK_KEY_INV], event);
        back = r != NULL && r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
        freeReplyObject(r);
    }
    ck_assert_int_eq(back, 1);
    ck_assert_int_eq(tickets_left(event), 2); /* 5 - 1 sold - 2 held */
    char *more[3] = {reserve_one(&server, event), reserve_one(&server, event), reserve_one(&server, event)};
    ck_assert(more[0] != NULL && more[1] != NULL && more[2] == NULL);
    snprintf(sql, sizeof(sql), "/events/stats/?event_id=%s", event);
    int status;
    json_t *stats = tk_api_call(&server, "GET", sql, AUTH, NULL, &status);
    json_t *live = json_object_get(stats, "live");
    ck_assert_int_eq(json_integer_value(json_object_get(live, "sold")), 1);
    ck_assert_int_eq(json_integer_value(json_object_get(live, "held")), 4);
    ck_assert_int_eq(json_integer_value(json_object_get(live, "available")), 0);
    json_decref(stats);
    free(more[0]);
    free(more[1]);
    free(paid);
    free(held[0]);
    free(held[1]);
    free(event);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("persistence");
    TCase *tc = tcase_create("persistence");
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, start_server, stop_server);
    tcase_add_checked_fixture(tc, tk_test_postgres_running, NULL);
    tcase_add_test(tc, funnel_of_1000_ends_with_exactly_those_rows);
    tcase_add_test(tc, rows_match_the_api_field_by_field);
    tcase_add_test(tc, a_ticket_names_its_reservations_event);
    tcase_add_test(tc, postgres_down_mid_sale_loses_and_duplicates_nothing);
    tcase_add_test(tc, entries_left_by_a_crashed_writer_are_claimed);
    tcase_add_test(tc, reads_fall_back_to_postgres_once_records_leave_redis);
    tcase_add_test(tc, a_malformed_entry_is_set_aside_and_persistence_goes_on);
    tcase_add_test(tc, only_records_postgres_refuses_for_their_data_are_set_aside);
    tcase_add_test(tc, an_entry_written_by_an_earlier_version_is_persisted);
    tcase_add_test(tc, batches_commit_on_any_connection_in_any_order);
    tcase_add_test(tc, a_session_that_lost_what_was_prepared_is_prepared_again);
    tcase_add_test(tc, a_batch_is_acknowledged_with_one_call_per_shard);
    tcase_add_test(tc, a_redis_that_lost_an_event_sells_nothing_postgres_has);
    suite_add_tcase(suite, tc);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed != 0;
}
