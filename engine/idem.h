/*
 * Idempotency keys (API.md "Idempotency"), as the engine keeps them. A request carrying
 * a key first claims it: the key (method, path and the client's key, hashed) is bound to
 * a fingerprint of the body and to a token naming this claim. The claim's owner then
 * settles it with the answer it gave: kept for a time that depends on the answer
 * (tk_idem_keep_ms: successes 24 h, other refusals 60 s), or, for an answer not worth
 * remembering (malformed, refused for load, a failure, too large), released so that a
 * corrected retry runs and a squatter's bad request poisons nothing. A later claim with
 * the same body replays the kept answer; with another body it is refused (MISMATCH). The
 * transitions are Redis functions (tk_idem_claim, tk_idem_store, tk_idem_release in
 * lua/ticketd.lua); this file decides names, fingerprints, tokens and how long to keep.
 */
#ifndef TK_IDEM_H
#define TK_IDEM_H

#include "engine/engine.h"
#include "engine/uuid.h"

#include <h2o.h>
#include <stdint.h>

#define TK_IDEM_KEY_LEN (8 + 64)       /* "tk:idem:" and 64 hex digits (named by engine/inventory.c) */
#define TK_IDEM_CLAIM_MS 60000         /* a claim whose owner died lapses after this */
#define TK_IDEM_DONE_MS (24 * 3600000) /* successes are replayed for 24 hours */
#define TK_IDEM_REFUSAL_MS 60000       /* refusals that depend on state (404, 409, ...) */
#define TK_IDEM_ANSWER_MAX 8192        /* larger answers are not kept */

typedef struct st_tk_idem_request_t {
    h2o_iovec_t method, path; /* path without a trailing slash */
    h2o_iovec_t key;          /* the client's Idempotency-Key, already checked */
    h2o_iovec_t body;
} tk_idem_request_t;

/* A claim, as its owner keeps it to settle it later. */
typedef struct st_tk_idem_claim_t {
    char key[TK_IDEM_KEY_LEN + 1];
    char fingerprint[65];
    char token[TK_UUID_LEN + 1];
} tk_idem_claim_t;

typedef struct st_tk_idem_answer_t {
    int status;
    h2o_iovec_t cookie; /* the Set-Cookie value, or empty */
    h2o_iovec_t body;
} tk_idem_answer_t;

typedef enum en_tk_idem_outcome_t {
    TK_IDEM_CLAIMED = 0, /* run the request, then settle the claim */
    TK_IDEM_BUSY,        /* the first request with this key and body is still running */
    TK_IDEM_REPLAY,      /* answer with result->answer */
    TK_IDEM_MISMATCH,    /* the key was used with another body: 422 */
    TK_IDEM_UNAVAILABLE  /* Redis did not answer, or answered something else */
} tk_idem_outcome_t;

typedef struct st_tk_idem_result_t {
    tk_idem_outcome_t outcome;
    tk_idem_answer_t answer; /* REPLAY (pointing into the reply) */
} tk_idem_result_t;

typedef void (*tk_idem_cb)(const tk_idem_result_t *result, void *data);

/* Fills *claim from rq (a fresh token) and claims the key. 0: cb runs once, on e's loop;
 * -EAGAIN: Redis cannot take the call, cb never runs. */
int tk_idem_claim(tk_engine_t *e, const tk_idem_request_t *rq, tk_idem_claim_t *claim, tk_idem_cb cb, void *data);
/* Settles a claim CLAIMED answered: keeps answer for tk_idem_keep_ms, or releases the key
 * when that is 0. 0: cb (NULL: none) runs once Redis has taken it or failed to (a failure
 * is logged; the claim then lapses); -EAGAIN: not sent, cb never runs. */
int tk_idem_settle(tk_engine_t *e, const tk_idem_claim_t *claim, const tk_idem_answer_t *answer, void (*cb)(void *data),
                   void *data);
/* Gives a claim back unanswered; as tk_idem_settle. */
int tk_idem_release(tk_engine_t *e, const tk_idem_claim_t *claim, void (*cb)(void *data), void *data);

/* How long an answer is kept, in ms; 0: not at all (400, 413, 415, 429, 5xx, or its
 * stored form over TK_IDEM_ANSWER_MAX bytes). */
int64_t tk_idem_keep_ms(int status, size_t stored_len);
/* The stored form of an answer, "<status> <cookie length>\n<cookie><body>", in pool. */
h2o_iovec_t tk_idem_encode(h2o_mem_pool_t *pool, const tk_idem_answer_t *answer);
/* 0 and the answer (pointing into stored); -1 when stored is not one */
int tk_idem_decode(h2o_iovec_t stored, tk_idem_answer_t *out);
/* The decoder of tk_idem_claim's reply (answers point into it). */
struct redisReply;
void tk_idem_parse_claim(const struct redisReply *reply, tk_idem_result_t *out);

#endif
