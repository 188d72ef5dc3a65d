/*
 * Unit tests of engine/waitroom_api.c's store-free calls: a poll is answered from this
 * process's view of the room (published here as the refresher would) and the signed queue
 * id, with a signed admission once the line has reached the ticket; a queue id that does not
 * verify is refused; the reservation gate lets everything through while a room is off or
 * absent and, while it is on, only an admission for that event that has not run out; and
 * the asynchronous calls keep libuv's rule for an event the catalog does not know (an error,
 * and no callback); the view keeps every room however many there are. Each test uses fresh
 * event ids: the view is one table per process.
 */
#include "engine/timefmt.h"
#include "engine/uuid.h"
#include "engine/waitroom_api.h"
#include "engine/waitroom_view.h"

#include <check.h>
#include <errno.h>
#include <string.h>

#define MINUTE_MS 60000

static tk_config_t config;
static tk_engine_t engine;

static void setup(void)
{
    static const char secret[] = "tk-test-only-secret-0123456789abcdef0123";
    memset(&config, 0, sizeof(config));
    config.secret_len = strlen(secret);
    memcpy(config.secret, secret, config.secret_len);
    memset(&engine, 0, sizeof(engine));
    engine.config = &config;
}

/* A room of event, opened long ago, admitting one a minute, whose line stands at 10 for
 * another half minute at least: L(now) = 10 whatever the test's speed. */
static void publish_room(const char *event, int enabled)
{
    int64_t from = tk_time_now_ms() - 10 * MINUTE_MS - MINUTE_MS / 2;
    tk_wr_state_t st = {.enabled = enabled,
                        .opens_at_ms = from,
                        .per_minute = 1,
                        .admission_s = 600,
                        .joined = 200,
                        .pre = 0,
                        .nseg = 1,
                        .seg = {{.from_ms = from, .base = 0, .per_minute = 1}}};
    tk_wr_room_publish(event, &st);
}

static int64_t joined_long_ago(void)
{
    return tk_time_now_ms() - 11 * MINUTE_MS;
}

START_TEST(a_poll_behind_the_line_waits_at_its_position)
{
    char event[TK_UUID_LEN + 1], id[TK_WR_QUEUE_ID_MAX];
    tk_uuid_v4(event);
    publish_room(event, 1);
    size_t len = tk_wr_queue_id_sign(&config, event, 100, joined_long_ago(), id);
    tk_wr_poll_result_t r;
    ck_assert_int_eq(tk_waitroom_poll(&engine, id, len, &r), 0);
    ck_assert_str_eq(r.event_id, event);
    ck_assert_int_eq(r.ticket, 100);
    ck_assert_int_eq(r.answer.verdict.status, TK_WR_WAITING);
    ck_assert_int_eq(r.answer.verdict.position, 90);
    ck_assert_int_gt(r.answer.verdict.eta_s, 0);
    ck_assert_uint_eq(r.answer.admission_len, 0);
}
END_TEST

START_TEST(a_poll_the_line_has_reached_carries_a_signed_admission)
{
    char event[TK_UUID_LEN + 1], id[TK_WR_QUEUE_ID_MAX];
    tk_uuid_v4(event);
    publish_room(event, 1);
    size_t len = tk_wr_queue_id_sign(&config, event, 5, joined_long_ago(), id);
    tk_wr_poll_result_t r;
    ck_assert_int_eq(tk_waitroom_poll(&engine, id, len, &r), 0);
    ck_assert_int_eq(r.answer.verdict.status, TK_WR_ADMITTED);
    ck_assert_uint_eq(r.answer.admission_len, strlen(r.answer.admission));
    tk_wr_admission_t adm;
    ck_assert_int_eq(tk_wr_admission_verify(&config, r.answer.admission, r.answer.admission_len, &adm), 0);
    ck_assert_str_eq(adm.event, event);
    ck_assert_int_eq(adm.ticket, 5);
    ck_assert_int_eq(adm.until_ms, r.answer.verdict.until_ms);
    ck_assert_int_eq(adm.until_ms, r.answer.verdict.admitted_ms + 600 * 1000);
    /* and the gate takes it */
    tk_wr_admission_t passed;
    ck_assert_int_eq(tk_waitroom_admit(&engine, event, r.answer.admission, r.answer.admission_len, &passed), 0);
    ck_assert_int_eq(passed.ticket, 5);
}
END_TEST

START_TEST(a_poll_for_a_room_this_process_has_not_seen_yet_waits_without_a_position)
{
    char event[TK_UUID_LEN + 1], id[TK_WR_QUEUE_ID_MAX];
    tk_uuid_v4(event);
    size_t len = tk_wr_queue_id_sign(&config, event, 1, joined_long_ago(), id);
    tk_wr_poll_result_t r;
    ck_assert_int_eq(tk_waitroom_poll(&engine, id, len, &r), 0);
    ck_assert_int_eq(r.answer.verdict.status, TK_WR_WAITING);
    ck_assert_int_eq(r.answer.verdict.position, 0);
    ck_assert_uint_eq(r.answer.admission_len, 0);
}
END_TEST

START_TEST(a_queue_id_that_does_not_verify_is_refused)
{
    char event[TK_UUID_LEN + 1], id[TK_WR_QUEUE_ID_MAX];
    tk_uuid_v4(event);
    publish_room(event, 1);
    size_t len = tk_wr_queue_id_sign(&config, event, 5, joined_long_ago(), id);
    id[len - 1] = id[len - 1] == 'A' ? 'B' : 'A';
    tk_wr_poll_result_t r;
    ck_assert_int_eq(tk_waitroom_poll(&engine, id, len, &r), -EINVAL);
    ck_assert_int_eq(tk_waitroom_poll(&engine, "", 0, &r), -EINVAL);
}
END_TEST

START_TEST(the_gate_is_open_while_a_room_is_off_or_absent_once_rooms_are_known)
{
    char off[TK_UUID_LEN + 1], none[TK_UUID_LEN + 1];
    tk_uuid_v4(off);
    tk_uuid_v4(none);
    publish_room(off, 0);
    tk_wr_admission_t adm;
    ck_assert_int_eq(tk_waitroom_admit(&engine, off, NULL, 0, &adm), 0);
    ck_assert_int_eq(adm.ticket, 0);
    /* a room this process has not seen is only absent once every room has been read */
    ck_assert_int_eq(tk_waitroom_admit(&engine, none, "junk", 4, &adm), -EAGAIN);
    tk_wr_rooms_mark_known();
    ck_assert_int_eq(tk_waitroom_admit(&engine, none, "junk", 4, &adm), 0);
    ck_assert_int_eq(adm.ticket, 0);
}
END_TEST

START_TEST(the_gate_of_a_room_that_is_on_needs_a_live_admission_for_its_event)
{
    char event[TK_UUID_LEN + 1], other[TK_UUID_LEN + 1], token[TK_WR_ADMISSION_MAX];
    tk_uuid_v4(event);
    tk_uuid_v4(other);
    publish_room(event, 1);
    tk_wr_admission_t adm;
    ck_assert_int_eq(tk_waitroom_admit(&engine, event, NULL, 0, &adm), -EPERM);
    ck_assert_int_eq(tk_waitroom_admit(&engine, event, "junk", 4, &adm), -EPERM);
    int64_t later = tk_time_now_ms() + MINUTE_MS;
    tk_wr_admission_t for_other = {.ticket = 3, .until_ms = later}, expired = {.ticket = 3, .until_ms = tk_time_now_ms() - 1},
                      while_off = {.ticket = 0, .until_ms = later}, good = {.ticket = 3, .until_ms = later};
    memcpy(for_other.event, other, sizeof(for_other.event));
    memcpy(expired.event, event, sizeof(expired.event));
    memcpy(while_off.event, event, sizeof(while_off.event));
    memcpy(good.event, event, sizeof(good.event));
    size_t len = tk_wr_admission_sign(&config, &for_other, token);
    ck_assert_int_eq(tk_waitroom_admit(&engine, event, token, len, &adm), -EPERM);
    len = tk_wr_admission_sign(&config, &expired, token);
    ck_assert_int_eq(tk_waitroom_admit(&engine, event, token, len, &adm), -EPERM);
    len = tk_wr_admission_sign(&config, &while_off, token);
    ck_assert_int_eq(tk_waitroom_admit(&engine, event, token, len, &adm), -EPERM);
    len = tk_wr_admission_sign(&config, &good, token);
    ck_assert_int_eq(tk_waitroom_admit(&engine, event, token, len, &adm), 0);
    ck_assert_str_eq(adm.event, event);
    ck_assert_int_eq(adm.ticket, 3);
    ck_assert_int_eq(adm.until_ms, later);
}
END_TEST

/* The view keeps every room, however many: one that found no slot was missing from the
 * view, and once the rooms were known the gate let its event's holds through without an
 * admission. 9000 rooms fill the first table (4096 slots) twice over. */
START_TEST(the_view_keeps_every_room_so_the_gate_of_each_stays_shut)
{
    enum { ROOMS = 9000 };
    static char events[ROOMS][TK_UUID_LEN + 1];
    for (int i = 0; i < ROOMS; ++i) {
        tk_uuid_v4(events[i]);
        publish_room(events[i], 1);
    }
    tk_wr_rooms_mark_known();
    tk_wr_admission_t adm;
    for (int i = 0; i < ROOMS; ++i) {
        ck_assert_ptr_nonnull(tk_wr_room_find(events[i]));
        ck_assert_int_eq(tk_waitroom_admit(&engine, events[i], NULL, 0, &adm), -EPERM);
    }
    /* a room kept from the first table still takes the states published later */
    tk_wr_state_t st, seen;
    const uint32_t *place_of;
    tk_wr_room_read(tk_wr_room_find(events[0]), &st, &place_of);
    st.joined += 1;
    tk_wr_room_publish(events[0], &st);
    tk_wr_room_read(tk_wr_room_find(events[0]), &seen, &place_of);
    ck_assert_int_eq(seen.joined, 201);
}
END_TEST

static int callbacks;

static void on_joined(const tk_wr_join_result_t *result, void *data)
{
    (void)result, (void)data;
    ++callbacks;
}

static void on_room(const tk_wr_room_result_t *result, void *data)
{
    (void)result, (void)data;
    ++callbacks;
}

START_TEST(an_event_the_catalog_does_not_know_is_an_error_and_no_callback)
{
    tk_wr_join_request_t join;
    tk_wr_room_query_t query;
    tk_wr_settings_request_t put = {.settings = {.enabled = 1, .opens_at_ms = 0, .per_minute = 60, .admission_s = 600}};
    tk_uuid_v4(join.event_id);
    memcpy(query.event_id, join.event_id, sizeof(query.event_id));
    memcpy(put.event_id, join.event_id, sizeof(put.event_id));
    callbacks = 0;
    ck_assert_int_eq(tk_waitroom_join(&engine, &join, on_joined, NULL), -ENOENT);
    ck_assert_int_eq(tk_waitroom_settings_get(&engine, &query, on_room, NULL), -ENOENT);
    ck_assert_int_eq(tk_waitroom_settings_put(&engine, &put, on_room, NULL), -ENOENT);
    ck_assert_int_eq(callbacks, 0);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("waitroom_api");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, a_poll_behind_the_line_waits_at_its_position);
    tcase_add_test(tc, a_poll_the_line_has_reached_carries_a_signed_admission);
    tcase_add_test(tc, a_poll_for_a_room_this_process_has_not_seen_yet_waits_without_a_position);
    tcase_add_test(tc, a_queue_id_that_does_not_verify_is_refused);
    tcase_add_test(tc, the_gate_is_open_while_a_room_is_off_or_absent_once_rooms_are_known);
    tcase_add_test(tc, the_gate_of_a_room_that_is_on_needs_a_live_admission_for_its_event);
    tcase_add_test(tc, the_view_keeps_every_room_so_the_gate_of_each_stays_shut);
    tcase_add_test(tc, an_event_the_catalog_does_not_know_is_an_error_and_no_callback);
    suite_add_tcase(suite, tc);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed != 0;
}
