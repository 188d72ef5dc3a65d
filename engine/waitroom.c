/*
 * The admission line, its inverse, the opening shuffle and the verdict for a ticket.
 * The arithmetic mirrors wr_line in lua/ticketd.lua exactly (integer floor of
 * (t - from) * per_minute / 60000), so Redis and every process agree on each place.
 */
#include "engine/waitroom.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the segment in force at t, or NULL before the first one */
static const tk_wr_segment_t *segment_at(const tk_wr_state_t *st, int64_t t)
{
    const tk_wr_segment_t *cur = NULL;
    for (int64_t i = 0; i < st->nseg && st->seg[i].from_ms <= t; ++i)
        cur = st->seg + i;
    return cur;
}

int64_t tk_wr_line(const tk_wr_state_t *st, int64_t t)
{
    const tk_wr_segment_t *s = segment_at(st, t);
    if (s == NULL)
        return 0;
    return s->base + (t - s->from_ms) * s->per_minute / 60000;
}

/* A place the line had already reached when the oldest segment still kept began was
 * reached at an instant the segments no longer tell, and that oldest segment's start is
 * only a bound from above: answering it would admit the place later than it really was,
 * reviving an admission that is over. Redis forgets a segment only once its successor
 * began longer ago than an admission lives (wr_schedule), so such a place's admission has
 * expired; when an admin change forced one out earlier, answering "long ago" errs toward
 * expiring, never toward admitting again. */
int64_t tk_wr_admitted_at(const tk_wr_state_t *st, int64_t place)
{
    if (st->nseg > 0 && place <= st->seg[0].base)
        return TK_WR_REACHED_LONG_AGO;
    for (int64_t i = 0; i < st->nseg; ++i) {
        const tk_wr_segment_t *s = st->seg + i;
        int64_t next = i + 1 < st->nseg ? st->seg[i + 1].from_ms : INT64_MAX;
        if (s->base >= place)
            return s->from_ms; /* the previous segment got there exactly as this one began */
        if (s->per_minute > 0) {
            int64_t t = s->from_ms + ((place - s->base) * 60000 + s->per_minute - 1) / s->per_minute;
            if (t < next)
                return t;
        }
    }
    return INT64_MAX;
}

/* ChaCha20 keystream of the seed, read 32 bits at a time. */
typedef struct st_keystream_t {
    EVP_CIPHER_CTX *ctx;
    uint32_t buf[256];
    size_t used;
} keystream_t;

static void keystream_init(keystream_t *ks, const uint8_t seed[TK_WR_SEED_LEN])
{
    static const uint8_t iv[16]; /* block counter 0, nonce 0: the seed is used for this one stream only */
    if ((ks->ctx = EVP_CIPHER_CTX_new()) == NULL || EVP_EncryptInit_ex(ks->ctx, EVP_chacha20(), NULL, seed, iv) != 1) {
        fprintf(stderr, "fatal: ChaCha20 is not available\n");
        abort();
    }
    ks->used = sizeof(ks->buf) / sizeof(ks->buf[0]);
}

static uint32_t keystream_next(keystream_t *ks)
{
    if (ks->used == sizeof(ks->buf) / sizeof(ks->buf[0])) {
        static const uint8_t zeros[sizeof(ks->buf)];
        int len;
        EVP_EncryptUpdate(ks->ctx, (uint8_t *)ks->buf, &len, zeros, sizeof(zeros));
        ks->used = 0;
    }
    return ks->buf[ks->used++];
}

/* uniform in [0, bound) by rejection, so no place is favoured by a modulo bias */
static uint32_t keystream_below(keystream_t *ks, uint32_t bound)
{
    uint64_t limit = (UINT64_C(1) << 32) - (UINT64_C(1) << 32) % bound;
    uint32_t r;
    while ((r = keystream_next(ks)) >= limit)
        ;
    return r % bound;
}

void tk_wr_shuffle(const uint8_t seed[TK_WR_SEED_LEN], uint32_t n, uint32_t *place_of)
{
    keystream_t ks;
    keystream_init(&ks, seed);
    for (uint32_t k = 0; k < n; ++k)
        place_of[k] = k + 1;
    for (uint32_t i = n; i > 1; --i) {
        uint32_t j = keystream_below(&ks, i), tmp = place_of[i - 1];
        place_of[i - 1] = place_of[j];
        place_of[j] = tmp;
    }
    EVP_CIPHER_CTX_free(ks.ctx);
}

static int64_t ceil_div(int64_t a, int64_t b)
{
    return a <= 0 ? 0 : (a + b - 1) / b;
}

/* seconds until place is admitted, from the line, or from the room's rate while the
 * line is frozen or paused */
static int64_t eta_of(const tk_wr_state_t *st, int64_t place, int64_t now)
{
    int64_t at = tk_wr_admitted_at(st, place);
    if (at != INT64_MAX)
        return ceil_div(at - now, 1000);
    int64_t start = st->nseg > 0 && st->seg[st->nseg - 1].from_ms > now ? st->seg[st->nseg - 1].from_ms : now;
    int64_t ahead = place - tk_wr_line(st, now);
    return ceil_div(start - now, 1000) + ceil_div(ahead * 60, st->per_minute > 0 ? st->per_minute : 1);
}

void tk_wr_evaluate(const tk_wr_state_t *st, const uint32_t *place_of, int64_t ticket, int64_t joined_ms, int64_t now,
                    tk_wr_verdict_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!st->enabled) {
        out->status = TK_WR_OPEN;
        out->admitted_ms = now;
        out->until_ms = now + st->admission_s * 1000;
        return;
    }
    out->status = TK_WR_WAITING;
    if (st->pre < 0 || (ticket <= st->pre && place_of == NULL)) {
        /* place not known yet: expect the middle of the crowd that joined before the opening */
        int64_t crowd = st->pre < 0 ? st->joined : st->pre;
        int64_t start = st->opens_at_ms > now ? st->opens_at_ms : now;
        out->eta_s = ceil_div(start - now, 1000) + ceil_div((crowd + 1) / 2 * 60, st->per_minute > 0 ? st->per_minute : 1);
        return;
    }
    out->place = ticket <= st->pre ? place_of[ticket - 1] : ticket;
    int64_t line = tk_wr_line(st, now);
    if (out->place > line) {
        out->position = out->place - line;
        out->eta_s = eta_of(st, out->place, now);
        return;
    }
    /* TK_WR_REACHED_LONG_AGO is before any join: such a place is expired unless joined since */
    out->admitted_ms = tk_wr_admitted_at(st, out->place);
    if (out->admitted_ms < joined_ms) /* a place the line had reached before its ticket was handed out */
        out->admitted_ms = joined_ms;
    if (out->admitted_ms > now) /* cannot happen with a well-formed line; never admit early */
        out->admitted_ms = now;
    out->until_ms = out->admitted_ms + st->admission_s * 1000;
    out->status = now < out->until_ms ? TK_WR_ADMITTED : TK_WR_EXPIRED;
}

void tk_wr_figures(const tk_wr_state_t *st, int64_t now, tk_wr_figures_t *out)
{
    int64_t line = st->pre < 0 ? 0 : tk_wr_line(st, now);
    out->admitted = line < st->joined ? line : st->joined;
    out->waiting = st->joined - out->admitted;
    out->next_position = st->joined + 1 - out->admitted;
    out->expected_wait_s = st->enabled ? eta_of(st, st->joined + 1, now) : 0;
}
