/*
 * libFuzzer target for the reply decoders behind engine/shop.h and engine/idem.h: the
 * reservation and payment decoders of engine/reservation.c (tk_reserve, tk_view,
 * tk_cancel, tk_pay_start, tk_pay_finish, tk_txn) and tk_idem_parse_claim, plus the
 * stored-answer decoder tk_idem_decode on the raw input. The input is RESP wire text,
 * turned into replies by hiredis' own redisReader as the connection does. An accepted
 * reply must have the shape each decoder documents; nothing may read out of bounds.
 */
#include "engine/idem.h"
#include "engine/reservation.h"
#include "tests/fuzz/resp_input.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int within(h2o_iovec_t v, const char *base, size_t len)
{
    return v.len == 0 || (v.base >= base && v.base + v.len <= base + len);
}

static void check_reply(const redisReply *reply)
{
    tk_reserve_result_t reserved;
    tk_reservation_parse_reserve(reply, &reserved);
    if (reserved.outcome == TK_RESERVE_OK && (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3))
        abort();

    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    tk_reservation_view_t view;
    if (tk_reservation_parse_view(reply, &pool, &view) == 1) {
        if (reply->elements != 5 + 3 * view.ntickets || view.status > TK_RES_CANCELLED)
            abort();
        for (size_t i = 0; i < view.ntickets; ++i)
            if (view.tickets[i].id.len != TK_UUID_LEN)
                abort();
    }
    h2o_mem_clear_pool(&pool);

    if (tk_reservation_parse_cancel(reply) == TK_CANCEL_OK && (reply->type != REDIS_REPLY_ARRAY || reply->elements != 1))
        abort();
    tk_pay_start_result_t started;
    tk_reservation_parse_pay_start(reply, &started);
    tk_reservation_parse_pay_finish(reply);
    tk_txn_result_t txn;
    tk_reservation_parse_txn(reply, &txn);
    if (txn.outcome == TK_TXN_FOUND && (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3))
        abort();

    tk_idem_result_t claim;
    tk_idem_parse_claim(reply, &claim);
    if (claim.outcome == TK_IDEM_REPLAY) {
        const redisReply *stored = reply->element[1];
        if (!within(claim.answer.cookie, stored->str, stored->len) || !within(claim.answer.body, stored->str, stored->len))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tk_idem_answer_t answer;
    h2o_iovec_t raw = h2o_iovec_init(data, size);
    if (tk_idem_decode(raw, &answer) == 0 && (answer.status < 100 || answer.status > 999 ||
                                              !within(answer.cookie, raw.base, raw.len) || !within(answer.body, raw.base, raw.len)))
        abort();

    tk_fuzz_each_reply(data, size, check_reply);
    return 0;
}
