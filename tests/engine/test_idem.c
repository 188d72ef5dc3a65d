/*
 * Unit tests of engine/idem.c: what is kept how long (API.md "Idempotency": malformed
 * and overload answers never, successes 24 h, other refusals briefly, large answers
 * never), the stored form of an answer both ways, and the decoder of tk_idem_claim's
 * reply, which must not mistake any other shape for an answer to replay.
 */
#include "engine/idem.h"
#include "engine/redis_conn.h"

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

static redisReply *str(const char *s)
{
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_STRING;
    r->len = strlen(s);
    r->str = strdup(s);
    return r;
}

static redisReply *arr2(redisReply *a, redisReply *b)
{
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_ARRAY;
    r->elements = b != NULL ? 2 : 1;
    r->element = calloc(2, sizeof(*r->element));
    r->element[0] = a;
    r->element[1] = b;
    return r;
}

static void release(redisReply *r)
{
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; ++i)
        release(r->element[i]);
    free(r->element);
    free(r->str);
    free(r);
}

START_TEST(claim_replies)
{
    struct {
        redisReply *reply;
        tk_idem_outcome_t want;
    } cases[] = {
        {arr2(str("CLAIMED"), NULL), TK_IDEM_CLAIMED},      {arr2(str("BUSY"), NULL), TK_IDEM_BUSY},
        {arr2(str("MISMATCH"), NULL), TK_IDEM_MISMATCH},    {arr2(str("DONE"), str("201 0\n{}")), TK_IDEM_REPLAY},
        {arr2(str("DONE"), str("*")), TK_IDEM_UNAVAILABLE}, /* not an answer: never replayed */
        {arr2(str("DONE"), NULL), TK_IDEM_UNAVAILABLE},     {arr2(str("CLAIMED"), str("x")), TK_IDEM_UNAVAILABLE},
        {arr2(str("OK"), NULL), TK_IDEM_UNAVAILABLE},       {str("CLAIMED"), TK_IDEM_UNAVAILABLE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        tk_idem_result_t out;
        tk_idem_parse_claim(cases[i].reply, &out);
        ck_assert_msg(out.outcome == cases[i].want, "case %zu: %d", i, out.outcome);
        release(cases[i].reply);
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
