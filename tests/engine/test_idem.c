/*
 * Unit tests of engine/idem.c: what is kept how long (API.md "Idempotency": malformed
 * and overload answers never, successes 24 h, other refusals briefly, large answers
 * never), the stored form of an answer both ways, and the decoder of tk_idem_claim's
 * reply, which must not mistake any other shape for an answer to replay.
 */
#include "engine/idem.h"
#include "engine/redis_conn.h"
#include "tests/support/replies.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

START_TEST(what_is_kept_and_for_how_long)
{
    ck_assert_int_eq(tk_idem_keep_ms(201, 300), TK_IDEM_DONE_MS);
    ck_assert_int_eq(tk_idem_keep_ms(202, 300), TK_IDEM_DONE_MS);
    ck_assert_int_eq(tk_idem_keep_ms(404, 100), TK_IDEM_REFUSAL_MS);
    ck_assert_int_eq(tk_idem_keep_ms(409, 100), TK_IDEM_REFUSAL_MS);
    const int never[] = {400, 413, 415, 429, 500, 502, 503};
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); ++i)
        ck_assert_msg(tk_idem_keep_ms(never[i], 100) == 0, "status %d kept", never[i]);
    ck_assert_int_eq(tk_idem_keep_ms(201, TK_IDEM_ANSWER_MAX), TK_IDEM_DONE_MS);
    ck_assert_int_eq(tk_idem_keep_ms(201, TK_IDEM_ANSWER_MAX + 1), 0);
}
END_TEST

START_TEST(stored_answers_round_trip)
{
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    tk_idem_answer_t in = {.status = 201,
                           .cookie = h2o_iovec_init(H2O_STRLIT("sessionid=a.b; Path=/")),
                           .body = h2o_iovec_init(H2O_STRLIT("{\"ok\":\"x\"}"))},
                     out;
    h2o_iovec_t stored = tk_idem_encode(&pool, &in);
    ck_assert_int_eq(tk_idem_decode(stored, &out), 0);
    ck_assert_int_eq(out.status, 201);
    ck_assert(h2o_memis(out.cookie.base, out.cookie.len, in.cookie.base, in.cookie.len));
    ck_assert(h2o_memis(out.body.base, out.body.len, in.body.base, in.body.len));

    tk_idem_answer_t bare = {.status = 409, .body = h2o_iovec_init(H2O_STRLIT("{}"))};
    stored = tk_idem_encode(&pool, &bare);
    ck_assert_int_eq(tk_idem_decode(stored, &out), 0);
    ck_assert_uint_eq(out.cookie.len, 0);
    ck_assert_int_eq(out.status, 409);
    h2o_mem_clear_pool(&pool);
}
END_TEST

START_TEST(malformed_stored_answers_are_refused)
{
    const char *bad[] = {"",           "*",         "201",       "201 ",      "201 0",    "20 0\n{}",
                         "2010 0\n{}", "201 5\n{}", "abc 0\n{}", "201 x\n{}", "099 0\n{}"};
    tk_idem_answer_t out;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i)
        ck_assert_msg(tk_idem_decode(h2o_iovec_init(bad[i], strlen(bad[i])), &out) == -1, "accepted '%s'", bad[i]);
}
END_TEST

START_TEST(claim_replies)
{
    struct {
        redisReply *reply;
        tk_idem_outcome_t want;
    } cases[] = {
        {tk_reply_arr(1, tk_reply_str("CLAIMED")), TK_IDEM_CLAIMED},
        {tk_reply_arr(1, tk_reply_str("BUSY")), TK_IDEM_BUSY},
        {tk_reply_arr(1, tk_reply_str("MISMATCH")), TK_IDEM_MISMATCH},
        {tk_reply_arr(2, tk_reply_str("DONE"), tk_reply_str("201 0\n{}")), TK_IDEM_REPLAY},
        {tk_reply_arr(2, tk_reply_str("DONE"), tk_reply_str("*")), TK_IDEM_UNAVAILABLE}, /* not an answer: never replayed */
        {tk_reply_arr(1, tk_reply_str("DONE")), TK_IDEM_UNAVAILABLE},
        {tk_reply_arr(2, tk_reply_str("CLAIMED"), tk_reply_str("x")), TK_IDEM_UNAVAILABLE},
        {tk_reply_arr(1, tk_reply_str("OK")), TK_IDEM_UNAVAILABLE},
        {tk_reply_str("CLAIMED"), TK_IDEM_UNAVAILABLE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        tk_idem_result_t out;
        tk_idem_parse_claim(cases[i].reply, &out);
        ck_assert_msg(out.outcome == cases[i].want, "case %zu: %d", i, out.outcome);
        tk_reply_free(cases[i].reply);
    }
    tk_idem_result_t out;
    tk_idem_parse_claim(NULL, &out);
    ck_assert_int_eq(out.outcome, TK_IDEM_UNAVAILABLE);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("idem");
    TCase *tc = tcase_create("idem");
    tcase_add_test(tc, what_is_kept_and_for_how_long);
    tcase_add_test(tc, stored_answers_round_trip);
    tcase_add_test(tc, malformed_stored_answers_are_refused);
    tcase_add_test(tc, claim_replies);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
