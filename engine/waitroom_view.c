/*
 * The rooms table, its refresher thread, and the argument vectors and replies of the
 * waiting-room functions. Rooms are never freed while the process runs (there is one per
 * event that ever had a room), so a reader can never hold a dangling room or shuffle; nor
 * are tables the view outgrew, so a reader may still probe one it loaded.
 */
#include "engine/waitroom_view.h"
#include "engine/inventory.h"
#include "engine/log.h"
#include "engine/redis_nodes.h"
#include "engine/uuid.h"
#include "engine/waitroom_token.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FIRST_TABLE_SIZE 4096 /* slots at first; open addressing, doubled before half full */
#define SYNC_INTERVAL_MS 150
#define STATE_WORDS (sizeof(tk_wr_state_t) / sizeof(int64_t))

_Static_assert(sizeof(tk_wr_state_t) % sizeof(int64_t) == 0, "tk_wr_state_t must be int64 words only");

struct st_tk_wr_room_t {
    char event[TK_UUID_LEN + 1];
    uint64_t seq; /* odd while a writer is copying */
    int64_t words[STATE_WORDS];
    uint32_t *place_of; /* the opening shuffle, set once */
};

/* The rooms by event. A room must never be missing from the view because there was no
 * slot for it: the reservation gate treats an event without a room as one without a
 * waiting room. So the table grows instead: a bigger one takes every room and replaces it,
 * and the one replaced stays (prev), as it was, for readers that loaded it before. */
typedef struct st_room_table_t {
    struct st_room_table_t *prev;
    size_t size; /* a power of two */
    tk_wr_room_t *slots[];
} room_table_t;

static room_table_t *rooms; /* NULL until the first room; replaced under write_mutex */
static size_t nrooms;       /* under write_mutex */
static pthread_mutex_t write_mutex = PTHREAD_MUTEX_INITIALIZER;
static int rooms_known; /* set once a sync round read every room of the index */

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

int tk_wr_rooms_known(void)
{
    return __atomic_load_n(&rooms_known, __ATOMIC_ACQUIRE);
}

void tk_wr_rooms_mark_known(void)
{
    __atomic_store_n(&rooms_known, 1, __ATOMIC_RELEASE);
}

int tk_wr_rooms_await(int timeout_ms)
{
    for (int waited = 0; !tk_wr_rooms_known() && waited < timeout_ms; waited += 10)
        sleep_ms(10);
    return tk_wr_rooms_known();
}

static size_t slot_of(const char *event, size_t size)
{
    return (size_t)strtoul((char[9]){event[0], event[1], event[2], event[3], event[4], event[5], event[6], event[7], 0}, NULL, 16) &
           (size - 1);
}

tk_wr_room_t *tk_wr_room_find(const char *event)
{
    room_table_t *t = __atomic_load_n(&rooms, __ATOMIC_ACQUIRE);
    if (t == NULL)
        return NULL;
    for (size_t i = slot_of(event, t->size), n = 0; n < t->size; i = (i + 1) & (t->size - 1), ++n) {
        tk_wr_room_t *room = __atomic_load_n(&t->slots[i], __ATOMIC_ACQUIRE);
        if (room == NULL)
            return NULL;
        if (memcmp(room->event, event, TK_UUID_LEN) == 0)
            return room;
    }
    return NULL;
}

void tk_wr_room_read(tk_wr_room_t *room, tk_wr_state_t *st, const uint32_t **place_of)
{
    int64_t *out = (int64_t *)st;
    uint64_t before, after;
    do {
        while ((before = __atomic_load_n(&room->seq, __ATOMIC_ACQUIRE)) & 1)
            ;
        /* acquire loads, not a fence (which ThreadSanitizer cannot follow): a word from a
         * newer write makes that write's odd seq visible, and keeps the check below after it */
        for (size_t i = 0; i < STATE_WORDS; ++i)
            out[i] = __atomic_load_n(&room->words[i], __ATOMIC_ACQUIRE);
        after = __atomic_load_n(&room->seq, __ATOMIC_RELAXED);
    } while (before != after);
    *place_of = __atomic_load_n(&room->place_of, __ATOMIC_ACQUIRE);
}

/* the slot of event's room in t, or the free one where it goes (t is never full) */
static tk_wr_room_t **slot_in(room_table_t *t, const char *event)
{
    size_t i = slot_of(event, t->size);
    while (t->slots[i] != NULL && memcmp(t->slots[i]->event, event, TK_UUID_LEN) != 0)
        i = (i + 1) & (t->size - 1);
    return &t->slots[i];
}

/* A table of size slots holding every room of prev (NULL: none), which it replaces. Its
 * slots are filled before it is published, so a reader that loads it sees them. */
static room_table_t *table_new(size_t size, room_table_t *prev)
{
    room_table_t *t = h2o_mem_alloc(sizeof(*t) + size * sizeof(t->slots[0]));
    memset(t, 0, sizeof(*t) + size * sizeof(t->slots[0]));
    t->prev = prev;
    t->size = size;
    for (size_t i = 0; prev != NULL && i < prev->size; ++i)
        if (prev->slots[i] != NULL)
            *slot_in(t, prev->slots[i]->event) = prev->slots[i];
    if (prev != NULL)
        tk_log_info("waitroom", "rooms table grown to %zu slots for %zu rooms", size, nrooms);
    return t;
}

/* finds or adds the room of event, growing the table first when it is half full; under
 * write_mutex */
static tk_wr_room_t *room_for_writing(const char *event)
{
    room_table_t *t = rooms;
    tk_wr_room_t **slot = t != NULL ? slot_in(t, event) : NULL;
    if (slot != NULL && *slot != NULL)
        return *slot;
    if (t == NULL || 2 * (nrooms + 1) > t->size) {
        t = table_new(t == NULL ? FIRST_TABLE_SIZE : 2 * t->size, t);
        __atomic_store_n(&rooms, t, __ATOMIC_RELEASE);
        slot = slot_in(t, event);
    }
    tk_wr_room_t *room = h2o_mem_alloc(sizeof(*room));
    memset(room, 0, sizeof(*room));
    memcpy(room->event, event, TK_UUID_LEN);
    __atomic_store_n(slot, room, __ATOMIC_RELEASE);
    ++nrooms;
    return room;
}

/* under write_mutex */
static void write_state(tk_wr_room_t *room, const tk_wr_state_t *st)
{
    const int64_t *in = (const int64_t *)st;
    uint64_t seq = room->seq;
    __atomic_store_n(&room->seq, seq + 1, __ATOMIC_RELAXED);
    /* release stores order the odd seq before every word (see tk_wr_room_read) */
    for (size_t i = 0; i < STATE_WORDS; ++i)
        __atomic_store_n(&room->words[i], in[i], __ATOMIC_RELEASE);
    __atomic_store_n(&room->seq, seq + 2, __ATOMIC_RELEASE);
}

/* Publishes st; returns the room when it has opened and still needs its shuffle. */
static tk_wr_room_t *publish(const char *event, const tk_wr_state_t *st)
{
    pthread_mutex_lock(&write_mutex);
    tk_wr_room_t *room = room_for_writing(event);
    int newer = room->seq == 0 || st->joined >= room->words[offsetof(tk_wr_state_t, joined) / sizeof(int64_t)];
    if (newer)
        write_state(room, st);
    pthread_mutex_unlock(&write_mutex);
    return st->pre > 0 && __atomic_load_n(&room->place_of, __ATOMIC_ACQUIRE) == NULL ? room : NULL;
}

void tk_wr_room_publish(const char *event, const tk_wr_state_t *st)
{
    publish(event, st);
}

/* ---- calls and replies -------------------------------------------------------------- */

static int call_room(tk_redis_t *r, const char *fn, const char *event, size_t nextra, const char *const *extra, tk_redis_cb cb,
                     void *data)
{
    tk_waitroom_keys_t keys;
    const char *argv[12];
    size_t argvlen[12];
    int argc = 0;
    tk_waitroom_keys(event, &keys);
    argv[argc] = "FCALL", argvlen[argc++] = 5;
    argv[argc] = fn, argvlen[argc++] = strlen(fn);
    argv[argc] = "1", argvlen[argc++] = 1;
    argv[argc] = keys.wr, argvlen[argc++] = strlen(keys.wr);
    argv[argc] = event, argvlen[argc++] = TK_UUID_LEN;
    for (size_t i = 0; i < nextra; ++i)
        argv[argc] = extra[i], argvlen[argc++] = strlen(extra[i]);
    return tk_redis_command(r, cb, data, argc, argv, argvlen);
}

int tk_wr_call_join(tk_redis_t *r, const char *event, tk_redis_cb cb, void *data)
{
    char seed[2 * TK_WR_SEED_LEN + 1];
    tk_random_hex(seed, TK_WR_SEED_LEN);
    const char *extra[] = {seed};
    return call_room(r, "tk_wr_join", event, 1, extra, cb, data);
}

int tk_wr_call_sync(tk_redis_t *r, const char *event, tk_redis_cb cb, void *data)
{
    char seed[2 * TK_WR_SEED_LEN + 1];
    tk_random_hex(seed, TK_WR_SEED_LEN);
    const char *extra[] = {seed};
    return call_room(r, "tk_wr_sync", event, 1, extra, cb, data);
}

static void on_indexed(redisReply *reply, void *data) {}

int tk_wr_call_set(tk_redis_t *r, const char *event, const tk_wr_state_t *settings, tk_redis_cb cb, void *data)
{
    const char *sadd[] = {"SADD", TK_WAITROOM_INDEX_KEY, event};
    const size_t saddlen[] = {4, strlen(TK_WAITROOM_INDEX_KEY), TK_UUID_LEN};
    if (tk_redis_command(r, on_indexed, NULL, 3, sadd, saddlen) != 0)
        return -1;
    char numbers[4][24];
    snprintf(numbers[0], sizeof(numbers[0]), "%d", settings->enabled ? 1 : 0);
    snprintf(numbers[1], sizeof(numbers[1]), "%lld", (long long)settings->opens_at_ms);
    snprintf(numbers[2], sizeof(numbers[2]), "%lld", (long long)settings->per_minute);
    snprintf(numbers[3], sizeof(numbers[3]), "%lld", (long long)settings->admission_s);
    const char *extra[] = {numbers[0], numbers[1], numbers[2], numbers[3]};
    return call_room(r, "tk_wr_set", event, 4, extra, cb, data);
}

size_t tk_waitroom_admission_args(const tk_wr_admission_t *adm, h2o_mem_pool_t *pool, const char **argv, size_t *argvlen, size_t k)
{
    char *until = h2o_mem_alloc_pool(pool, 24), *id = h2o_mem_alloc_pool(pool, TK_UUID_LEN + 24);
    argv[k] = until, argvlen[k++] = (size_t)snprintf(until, 24, "%lld", (long long)adm->until_ms);
    argv[k] = id, argvlen[k++] = (size_t)snprintf(id, TK_UUID_LEN + 24, "%.36s:%lld", adm->event, (long long)adm->ticket);
    return k;
}

static int hex_value(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* the state array from element `at` of reply; the seed (when there is one) into seed */
static int parse_state_at(const redisReply *reply, size_t at, tk_wr_state_t *st, uint8_t *seed, int *has_seed)
{
    enum { HEADER = 8 };
    memset(st, 0, sizeof(*st));
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY)
        return -1;
    if (reply->elements == at)
        return 0;
    if (reply->elements < at + HEADER)
        return -1;
    redisReply **e = reply->element + at;
    int64_t *fields[] = {&st->enabled, &st->opens_at_ms, &st->per_minute, &st->admission_s, &st->joined, &st->pre};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); ++i) {
        if (e[i]->type != REDIS_REPLY_INTEGER)
            return -1;
        *fields[i] = e[i]->integer;
    }
    if (e[6]->type != REDIS_REPLY_STRING || e[7]->type != REDIS_REPLY_INTEGER || e[7]->integer < 0 ||
        e[7]->integer > TK_WR_MAX_SEGMENTS || reply->elements != at + HEADER + 3 * (size_t)e[7]->integer)
        return -1;
    st->nseg = e[7]->integer;
    for (int64_t i = 0; i < st->nseg; ++i) {
        redisReply **s = e + HEADER + 3 * i;
        if (s[0]->type != REDIS_REPLY_INTEGER || s[1]->type != REDIS_REPLY_INTEGER || s[2]->type != REDIS_REPLY_INTEGER)
            return -1;
        st->seg[i] = (tk_wr_segment_t){s[0]->integer, s[1]->integer, s[2]->integer};
    }
    *has_seed = e[6]->len == 2 * TK_WR_SEED_LEN;
    for (size_t i = 0; *has_seed && i < TK_WR_SEED_LEN; ++i) {
        int hi = hex_value(e[6]->str[2 * i]), lo = hex_value(e[6]->str[2 * i + 1]);
        if (hi < 0 || lo < 0)
            *has_seed = 0;
        else if (seed != NULL)
            seed[i] = (uint8_t)(hi << 4 | lo);
    }
    return st->per_minute >= 1 && st->admission_s >= 1 && st->nseg >= 1 ? 1 : -1;
}

int tk_wr_parse_state(const redisReply *reply, tk_wr_state_t *st)
{
    int has_seed;
    return parse_state_at(reply, 0, st, NULL, &has_seed);
}

static int is_string(const redisReply *r, const char *s)
{
    return (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) && r->len == strlen(s) &&
           memcmp(r->str, s, r->len) == 0;
}

tk_wr_join_outcome_t tk_wr_parse_join(const redisReply *reply, int64_t *ticket, tk_wr_state_t *st)
{
    int has_seed;
    memset(st, 0, sizeof(*st));
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 || reply->element[1]->type != REDIS_REPLY_INTEGER)
        return TK_WR_JOIN_FAILED;
    if (is_string(reply->element[0], "OFF")) {
        st->admission_s = reply->element[1]->integer;
        return TK_WR_JOIN_OFF;
    }
    *ticket = reply->element[1]->integer;
    if (!is_string(reply->element[0], "JOIN") || parse_state_at(reply, 2, st, NULL, &has_seed) != 1)
        return TK_WR_JOIN_FAILED;
    return TK_WR_JOIN_QUEUED;
}

/* ---- the refresher thread ----------------------------------------------------------- */

static pthread_t refresher_thread;
static int refresher_running, refresher_stopping;
static const tk_config_t *refresher_config;

/* Opens the shuffle of a room that has opened: computed here, published once. */
static void compute_shuffle(tk_wr_room_t *room, const tk_wr_state_t *st, const uint8_t *seed)
{
    uint32_t *place_of = malloc(sizeof(*place_of) * (size_t)st->pre);
    if (place_of == NULL) {
        fprintf(stderr, "fatal: no memory for a waiting room's shuffle\n");
        abort();
    }
    tk_wr_shuffle(seed, (uint32_t)st->pre, place_of);
    __atomic_store_n(&room->place_of, place_of, __ATOMIC_RELEASE);
    tk_log_info("waitroom", "room of event %s opened: %lld joiners shuffled", room->event, (long long)st->pre);
}

/* One round: every room in the index (SMEMBERS at the index key's master), then
 * tk_wr_sync pipelined to each room's master. -1 when a master did not answer. */
static int sync_rooms(tk_redis_nodes_t *n)
{
    redisReply *members = tk_redis_nodes_command(n, "SMEMBERS " TK_WAITROOM_INDEX_KEY);
    if (members == NULL || members->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(members);
        return -1;
    }
    tk_redis_pipeline_t *p = tk_redis_pipeline_new(n);
    for (size_t i = 0; i < members->elements; ++i) {
        redisReply *m = members->element[i];
        char event[TK_UUID_LEN + 1], seed[2 * TK_WR_SEED_LEN + 1];
        if (m->type != REDIS_REPLY_STRING || tk_uuid_normalize(m->str, m->len, event) != 0)
            continue;
        tk_waitroom_keys_t keys;
        tk_waitroom_keys(event, &keys);
        tk_random_hex(seed, TK_WR_SEED_LEN);
        tk_redis_pipeline_append(p, "FCALL tk_wr_sync 1 %s %s %s", keys.wr, event, seed);
        m->len = TK_UUID_LEN; /* remember which members were sent */
        memcpy(m->str, event, TK_UUID_LEN);
    }
    int rc = tk_redis_pipeline_exec(p) == 0 ? 0 : -1;
    for (size_t i = 0, k = 0; k < tk_redis_pipeline_count(p) && i < members->elements; ++i) {
        redisReply *m = members->element[i], *reply;
        if (m->type != REDIS_REPLY_STRING || m->len != TK_UUID_LEN)
            continue;
        if ((reply = tk_redis_pipeline_reply(p, k++)) == NULL)
            continue; /* its master did not answer: the room keeps its last state */
        tk_wr_state_t st;
        uint8_t seed[TK_WR_SEED_LEN];
        int has_seed = 0;
        if (parse_state_at(reply, 0, &st, seed, &has_seed) == 1) {
            tk_wr_room_t *room = publish(m->str, &st);
            if (room != NULL && has_seed)
                compute_shuffle(room, &st, seed);
        }
    }
    tk_redis_pipeline_free(p);
    freeReplyObject(members);
    return rc;
}

static void *refresher_main(void *arg)
{
    tk_redis_nodes_t *n = NULL;
    char err[256];
    int failing = 0;
    while (!__atomic_load_n(&refresher_stopping, __ATOMIC_ACQUIRE)) {
        if (n == NULL && (n = tk_redis_nodes_open(refresher_config, 1000, err, sizeof(err))) == NULL) {
            if (!failing++)
                tk_log_warn("waitroom", "room refresher cannot reach Redis: %s", err);
        } else if (!tk_redis_nodes_complete(n) && tk_redis_nodes_reconnect(n, err, sizeof(err)) != 0) {
            if (!failing++)
                tk_log_warn("waitroom", "room refresher cannot reach Redis: %s", err);
        } else if (sync_rooms(n) != 0) {
            /* the rooms of a master that did not answer keep their last state; its
             * connection was dropped and is made again next round */
            if (!failing++)
                tk_log_warn("waitroom", "room refresher lost a Redis master");
        } else {
            tk_wr_rooms_mark_known();
            if (failing)
                tk_log_info("waitroom", "room refresher recovered");
            failing = 0;
        }
        sleep_ms(SYNC_INTERVAL_MS);
    }
    tk_redis_nodes_close(n);
    return NULL;
}

int tk_wr_refresher_start(const tk_config_t *config)
{
    refresher_config = config;
    if (pthread_create(&refresher_thread, NULL, refresher_main, NULL) != 0)
        return -1;
    refresher_running = 1;
    return 0;
}

void tk_wr_refresher_stop(void)
{
    if (!refresher_running)
        return;
    __atomic_store_n(&refresher_stopping, 1, __ATOMIC_RELEASE);
    pthread_join(refresher_thread, NULL);
    refresher_running = 0;
}
