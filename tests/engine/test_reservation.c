/*
 * Unit tests of engine/reservation.c's reply decoders: each Redis reply shape the
 * reservation and payment functions promise (lua/ticketd.lua's header) decodes into the
 * shop's typed result, and every other shape is a failure, never a guess. Replies are
 * built by hand, as hiredis would hand them over.
 */
#include "engine/reservation.h"
#include "tests/support/replies.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static const char *const RID = "abcd0000-0000-4000-8000-000000000001";
static const char *const EVENT = "abcd0000-0000-4000-8000-0000000000e1";

START_TEST(reserve_ok_and_refusals)
{
    tk_reserve_result_t out;
    redisReply *r = tk_reply_arr(3, tk_reply_str("OK"), tk_reply_num(1000), tk_reply_num(901000));
    tk_reservation_parse_reserve(r, &out);
    ck_assert_int_eq(out.outcome, TK_RESERVE_OK);
    ck_assert_int_eq(out.created_ms, 1000);
    ck_assert_int_eq(out.until_ms, 901000);
    tk_reply_free(r);

    r = tk_reply_arr(4, tk_reply_str("ERR"), tk_reply_str("insufficient"), tk_reply_str("VIP"), tk_reply_num(0));
    tk_reservation_parse_reserve(r, &out);
    ck_assert_int_eq(out.outcome, TK_RESERVE_INSUFFICIENT);
    ck_assert(h2o_memis(out.type.base, out.type.len, H2O_STRLIT("VIP")));
    ck_assert_int_eq(out.available, 0);
    tk_reply_free(r);

    r = tk_reply_arr(2, tk_reply_str("ERR"), tk_reply_str("admission_used"));
    tk_reservation_parse_reserve(r, &out);
    ck_assert_int_eq(out.outcome, TK_RESERVE_ADMISSION_USED);
    tk_reply_free(r);
}
END_TEST

START_TEST(reserve_fair_use_and_memory_refusals)
{
    tk_reserve_result_t out;
    redisReply *r = tk_reply_arr(3, tk_reply_str("ERR"), tk_reply_str("too_many"), tk_reply_num(7));
    tk_reservation_parse_reserve(r, &out);
    ck_assert_int_eq(out.outcome, TK_RESERVE_TOO_MANY);
    ck_assert_int_eq(out.retry_after_s, 7);
    tk_reply_free(r);

    r = tk_reply_arr(3, tk_reply_str("ERR"), tk_reply_str("paused"), tk_reply_num(1));
    tk_reservation_parse_reserve(r, &out);
    ck_assert_int_eq(out.outcome, TK_RESERVE_PAUSED);
    ck_assert_int_eq(out.retry_after_s, 1);
    tk_reply_free(r);

    r = tk_reply_str_of_type(REDIS_REPLY_ERROR, "OOM command not allowed when used memory > 'maxmemory'.");
    tk_reservation_parse_reserve(r, &out);
    ck_assert_int_eq(out.outcome, TK_RESERVE_OUT_OF_MEMORY);
    tk_reply_free(r);
}
END_TEST

START_TEST(reserve_other_shapes_fail)
{
    tk_reserve_result_t out;
    tk_reservation_parse_reserve(NULL, &out);
    ck_assert_int_eq(out.outcome, TK_RESERVE_FAILED);
    redisReply *shapes[] = {tk_reply_arr(0),
                            tk_reply_arr(2, tk_reply_str("OK"), tk_reply_num(1)),
                            tk_reply_arr(3, tk_reply_str("OK"), tk_reply_str("1"), tk_reply_num(2)),
                            tk_reply_arr(2, tk_reply_str("ERR"), tk_reply_str("what")),
                            tk_reply_str_of_type(REDIS_REPLY_ERROR, "ERR ticketd: bad call"),
                            tk_reply_num(1)};
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); ++i) {
        tk_reservation_parse_reserve(shapes[i], &out);
        ck_assert_msg(out.outcome == TK_RESERVE_FAILED, "shape %zu", i);
        tk_reply_free(shapes[i]);
    }
}
END_TEST

START_TEST(view_found_not_found_and_malformed)
{
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    tk_reservation_view_t view;
    redisReply *r = tk_reply_arr(11, tk_reply_str("OK"), tk_reply_str("PENDING"), tk_reply_str(EVENT), tk_reply_num(1000),
                                 tk_reply_num(2000), tk_reply_str(RID), tk_reply_str("VIP"), tk_reply_num(35000),
                                 tk_reply_str("abcd0000-0000-4000-8000-000000000002"), tk_reply_str("Std"), tk_reply_num(1000));
    ck_assert_int_eq(tk_reservation_parse_view(r, &pool, &view), 1);
    ck_assert_int_eq(view.status, TK_RES_PENDING);
    ck_assert_str_eq(view.event, EVENT);
    ck_assert_int_eq(view.created_ms, 1000);
    ck_assert_int_eq(view.until_ms, 2000);
    ck_assert_uint_eq(view.ntickets, 2);
    ck_assert(h2o_memis(view.tickets[1].type.base, view.tickets[1].type.len, H2O_STRLIT("Std")));
    ck_assert_int_eq(view.tickets[0].price_minor, 35000);
    tk_reply_free(r);

    r = tk_reply_arr(2, tk_reply_str("ERR"), tk_reply_str("not_found"));
    ck_assert_int_eq(tk_reservation_parse_view(r, &pool, &view), 0);
    tk_reply_free(r);

    ck_assert_int_eq(tk_reservation_parse_view(NULL, &pool, &view), -1);
    redisReply *shapes[] = {
        /* PAYING is not a status the API shows: lua's public_status turns it into PENDING */
        tk_reply_arr(5, tk_reply_str("OK"), tk_reply_str("PAYING"), tk_reply_str(EVENT), tk_reply_num(1), tk_reply_num(2)),
        tk_reply_arr(6, tk_reply_str("OK"), tk_reply_str("PENDING"), tk_reply_str(EVENT), tk_reply_num(1), tk_reply_num(2),
                     tk_reply_str(RID)),
        tk_reply_arr(5, tk_reply_str("OK"), tk_reply_str("PENDING"), tk_reply_str("not-a-uuid"), tk_reply_num(1), tk_reply_num(2)),
        tk_reply_arr(8, tk_reply_str("OK"), tk_reply_str("PENDING"), tk_reply_str(EVENT), tk_reply_num(1), tk_reply_num(2),
                     tk_reply_str("short"), tk_reply_str("VIP"), tk_reply_num(1)),
        tk_reply_arr(8, tk_reply_str("OK"), tk_reply_str("PENDING"), tk_reply_str(EVENT), tk_reply_num(1), tk_reply_num(2),
                     tk_reply_str(RID), tk_reply_str("VIP"), tk_reply_str("1")),
        tk_reply_arr(2, tk_reply_str("ERR"), tk_reply_str("state")),
        tk_reply_arr(3, tk_reply_str("ERR"), tk_reply_str("not_found"), tk_reply_str("x")),
    };
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); ++i) {
        ck_assert_msg(tk_reservation_parse_view(shapes[i], &pool, &view) == -1, "shape %zu", i);
        tk_reply_free(shapes[i]);
    }
    h2o_mem_clear_pool(&pool);
}
END_TEST

START_TEST(cancel_outcomes)
{
    struct {
        redisReply *reply;
        tk_cancel_outcome_t want;
    } cases[] = {
        {tk_reply_arr(1, tk_reply_str("OK")), TK_CANCEL_OK},
        {tk_reply_arr(2, tk_reply_str("ERR"), tk_reply_str("not_found")), TK_CANCEL_NOT_FOUND},
        {tk_reply_arr(3, tk_reply_str("ERR"), tk_reply_str("state"), tk_reply_str("PAYING")), TK_CANCEL_PAYING},
        {tk_reply_arr(3, tk_reply_str("ERR"), tk_reply_str("state"), tk_reply_str("COMPLETED")), TK_CANCEL_COMPLETED},
        {tk_reply_arr(3, tk_reply_str("ERR"), tk_reply_str("state"), tk_reply_str("CANCELLED")), TK_CANCEL_CANCELLED},
        {tk_reply_arr(3, tk_reply_str("ERR"), tk_reply_str("state"), tk_reply_str("WHATEVER")), TK_CANCEL_UNAVAILABLE},
        {tk_reply_arr(2, tk_reply_str("OK"), tk_reply_str("x")), TK_CANCEL_UNAVAILABLE},
        {tk_reply_str_of_type(REDIS_REPLY_ERROR, "LOADING"), TK_CANCEL_UNAVAILABLE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        ck_assert_msg(tk_reservation_parse_cancel(cases[i].reply) == cases[i].want, "case %zu", i);
        tk_reply_free(cases[i].reply);
    }
    ck_assert_int_eq(tk_reservation_parse_cancel(NULL), TK_CANCEL_UNAVAILABLE);
}
END_TEST

START_TEST(pay_start_and_finish_outcomes)
{
    tk_pay_start_result_t started;
    redisReply *r = tk_reply_arr(3, tk_reply_str("OK"), tk_reply_str(RID), tk_reply_num(71000));
    tk_reservation_parse_pay_start(r, &started);
    ck_assert_int_eq(started.outcome, TK_PAY_START_OK);
    ck_assert_int_eq(started.amount_minor, 71000);
    tk_reply_free(r);
    r = tk_reply_arr(2, tk_reply_str("EXISTS"), tk_reply_str(RID));
    tk_reservation_parse_pay_start(r, &started);
    ck_assert_int_eq(started.outcome, TK_PAY_START_IN_FLIGHT);
    tk_reply_free(r);
    r = tk_reply_arr(3, tk_reply_str("ERR"), tk_reply_str("state"), tk_reply_str("COMPLETED"));
    tk_reservation_parse_pay_start(r, &started);
    ck_assert_int_eq(started.outcome, TK_PAY_START_STATE);
    tk_reply_free(r);
    /* no reply, or Redis' own error: the same call may be sent again; the library's refusal is final */
    tk_reservation_parse_pay_start(NULL, &started);
    ck_assert_int_eq(started.outcome, TK_PAY_START_RETRY);
    r = tk_reply_str_of_type(REDIS_REPLY_ERROR, "LOADING Redis is loading the dataset in memory");
    tk_reservation_parse_pay_start(r, &started);
    ck_assert_int_eq(started.outcome, TK_PAY_START_RETRY);
    tk_reply_free(r);
    r = tk_reply_str_of_type(REDIS_REPLY_ERROR, "ERR ticketd: transaction id already used");
    tk_reservation_parse_pay_start(r, &started);
    ck_assert_int_eq(started.outcome, TK_PAY_START_FAILED);
    tk_reply_free(r);

    ck_assert_int_eq(tk_reservation_parse_pay_finish(NULL), TK_PAY_FINISH_RETRY);
    struct {
        redisReply *reply;
        tk_pay_finish_outcome_t want;
    } cases[] = {
        {tk_reply_arr(2, tk_reply_str("OK"), tk_reply_str("COMPLETED")), TK_PAY_FINISH_RECORDED},
        {tk_reply_arr(3, tk_reply_str("ERR"), tk_reply_str("stale"), tk_reply_str("COMPLETED")), TK_PAY_FINISH_STALE},
        {tk_reply_str_of_type(REDIS_REPLY_ERROR, "LOADING Redis is loading the dataset in memory"), TK_PAY_FINISH_RETRY},
        {tk_reply_str_of_type(REDIS_REPLY_ERROR, "ERR ticketd: tk_pay_finish R T ok|fail msg"), TK_PAY_FINISH_REFUSED},
        {tk_reply_num(3), TK_PAY_FINISH_REFUSED},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        ck_assert_msg(tk_reservation_parse_pay_finish(cases[i].reply) == cases[i].want, "case %zu", i);
        tk_reply_free(cases[i].reply);
    }
}
END_TEST

START_TEST(txn_outcomes)
{
    tk_txn_result_t out;
    redisReply *r = tk_reply_arr(3, tk_reply_str("OK"), tk_reply_str("ERROR"), tk_reply_str("Your card has been declined"));
    tk_reservation_parse_txn(r, &out);
    ck_assert_int_eq(out.outcome, TK_TXN_FOUND);
    ck_assert(h2o_memis(out.status.base, out.status.len, H2O_STRLIT("ERROR")));
    ck_assert(h2o_memis(out.error.base, out.error.len, H2O_STRLIT("Your card has been declined")));
    tk_reply_free(r);
    r = tk_reply_arr(2, tk_reply_str("ERR"), tk_reply_str("not_found"));
    tk_reservation_parse_txn(r, &out);
    ck_assert_int_eq(out.outcome, TK_TXN_NOT_FOUND);
    tk_reply_free(r);
    r = tk_reply_arr(3, tk_reply_str("OK"), tk_reply_str("PAYING"), tk_reply_str(""));
    tk_reservation_parse_txn(r, &out);
    ck_assert_int_eq(out.outcome, TK_TXN_UNAVAILABLE);
    tk_reply_free(r);
    tk_reservation_parse_txn(NULL, &out);
    ck_assert_int_eq(out.outcome, TK_TXN_UNAVAILABLE);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("reservation");
    TCase *tc = tcase_create("decoders");
    tcase_add_test(tc, reserve_ok_and_refusals);
    tcase_add_test(tc, reserve_fair_use_and_memory_refusals);
    tcase_add_test(tc, reserve_other_shapes_fail);
    tcase_add_test(tc, view_found_not_found_and_malformed);
    tcase_add_test(tc, cancel_outcomes);
    tcase_add_test(tc, pay_start_and_finish_outcomes);
    tcase_add_test(tc, txn_outcomes);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
