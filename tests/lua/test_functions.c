/*
 * test_functions.c: tests of the Redis function library lua/ticketd.lua, run against a real
 * Redis 7 at 127.0.0.1:$TICKETD_TEST_REDIS_PORT (default 6391). main() loads the library
 * with FUNCTION LOAD REPLACE from $TICKETD_SOURCE_DIR/lua/ticketd.lua (else TK_SOURCE_DIR).
 * Every test makes fresh random event and reservation ids, so runs never collide and the
 * database is never flushed. After every change a test checks avail + held + sold == cap.
 * Outbox entries (stream tk:{s}:ob, field "m") are decoded with msgpack-c. The lag test trims
 * its shard's outbox, and the persistence test acknowledges entries of its shard as group "writers".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* asprintf */
#endif
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define UUID_LEN 36
#define MAX_PER_TYPE "5"
#define HOLD_MS 60000
#define MAX_ARGS 256
#define MAX_TICKETS 64
#define DAY_MS 86400000LL

typedef char tk_uuid_t[UUID_LEN + 1];

typedef struct {
    const char *type;
    const char *amount;
} tk_line_t;

typedef struct {
    char name[32];
    long long cap, avail, held, sold;
} tk_type_stats_t;

typedef struct {
    long long cap, avail, held, sold, cancelled, expired, revenue;
    size_t ntypes;
    tk_type_stats_t t[8];
} tk_stats_t;

static redisContext *rc;
/* ticket ids sent with the last reserve call of this process */
static tk_uuid_t last_tickets[MAX_TICKETS];
static int last_ntickets;

/* ---- plumbing --------------------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static redisContext *redis_connect(void)
{
    const char *p = getenv("TICKETD_TEST_REDIS_PORT");
    int port = p != NULL && *p != '\0' ? atoi(p) : 6391;
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c != NULL && c->err) {
        fprintf(stderr, "test_functions: redis 127.0.0.1:%d: %s\n", port, c->errstr);
        redisFree(c);
        return NULL;
    }
    return c;
}

/* A random version-4 uuid in canonical lower-case text. */
static void uuid_new(tk_uuid_t out)
{
    unsigned char b[16];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, b, sizeof(b)) != (ssize_t)sizeof(b)) {
        perror("/dev/urandom");
        abort();
    }
    close(fd);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    snprintf(out, UUID_LEN + 1, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3],
             b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* A reservation id lives in its event's shard: its first 4 hex characters are the event's. */
static void res_id_new(const char *ev, tk_uuid_t out)
{
    uuid_new(out);
    memcpy(out, ev, 4);
}

static void keys_for(const char *id, char inv[32], char res[32], char dl[32])
{
    snprintf(inv, 32, "tk:{%.4s}:inv", id);
    snprintf(res, 32, "tk:{%.4s}:res", id);
    snprintf(dl, 32, "tk:{%.4s}:dl", id);
}

/* the library's other keys of id's shard, in KEYS order after inv, res, dl */
static const char *const OTHER_KEYS[] = {"pay", "ob", "tx", "gc"};

/* FCALL fn with the seven keys of id's shard and args; NULL on a connection error. */
static redisReply *fcall_on(redisContext *c, const char *fn, const char *id, int argc, const char **args)
{
    const char *argv[MAX_ARGS];
    char inv[32], res[32], dl[32];
    int n = 0;
    keys_for(id, inv, res, dl);
    argv[n++] = "FCALL";
    argv[n++] = fn;
    char others[4][32];
    argv[n++] = "7";
    argv[n++] = inv;
    argv[n++] = res;
    argv[n++] = dl;
    for (int i = 0; i < 4; ++i) {
        snprintf(others[i], sizeof(others[i]), "tk:{%.4s}:%s", id, OTHER_KEYS[i]);
        argv[n++] = others[i];
    }
    for (int i = 0; i < argc && n < MAX_ARGS; i++)
        argv[n++] = args[i];
    return redisCommandArgv(c, n, argv, NULL);
}

/* fcall(fn, id, arg, ..., NULL) on the test's connection. */
static redisReply *fcall(const char *fn, const char *id, ...)
{
    const char *args[MAX_ARGS];
    int n = 0;
    va_list ap;
    va_start(ap, id);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL && n < MAX_ARGS;)
        args[n++] = a;
    va_end(ap);
    redisReply *r = fcall_on(rc, fn, id, n, args);
    ck_assert_msg(r != NULL, "redis: %s", rc->errstr);
    return r;
}

/* tk_reserve with one fresh ticket id per ticket of every well-formed amount. */
static redisReply *reserve_on(redisContext *c, const char *ev, const char *rid, long hold_ms, const tk_line_t *lines, int nlines)
{
    const char *args[MAX_ARGS];
    char hold[24], nl[24];
    int n = 0;
    snprintf(hold, sizeof(hold), "%ld", hold_ms);
    snprintf(nl, sizeof(nl), "%d", nlines);
    args[n++] = ev;
    args[n++] = rid;
    args[n++] = hold;
    args[n++] = MAX_PER_TYPE;
    args[n++] = nl;
    last_ntickets = 0;
    for (int i = 0; i < nlines; i++) {
        args[n++] = lines[i].type;
        args[n++] = lines[i].amount;
    }
    for (int i = 0; i < nlines; i++) {
        char *end;
        long v = strtol(lines[i].amount, &end, 10);
        if (*lines[i].amount == '\0' || *end != '\0' || v < 1)
            continue;
        for (long k = 0; k < v && last_ntickets < MAX_TICKETS; k++) {
            uuid_new(last_tickets[last_ntickets]);
            args[n++] = last_tickets[last_ntickets++];
        }
    }
    return fcall_on(c, "tk_reserve", ev, n, args);
}

static redisReply *reserve(const char *ev, const char *rid, long hold_ms, const tk_line_t *lines, int nlines)
{
    redisReply *r = reserve_on(rc, ev, rid, hold_ms, lines, nlines);
    ck_assert_msg(r != NULL, "redis: %s", rc->errstr);
    return r;
}

static redisReply *cmd(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc, fmt, ap);
    va_end(ap);
    ck_assert_msg(r != NULL, "redis: %s", rc->errstr);
    return r;
}

/* ---- reply checks ----------------------------------------------------------------------- */

static const char *describe(const redisReply *r, char *buf, size_t size)
{
    size_t off = 0;
    buf[0] = '\0';
    if (r->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
        snprintf(buf, size, "'%s'", r->str);
    else if (r->type == REDIS_REPLY_INTEGER)
        snprintf(buf, size, "%lld", r->integer);
    else if (r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements && off + 1 < size; i++) {
            const redisReply *e = r->element[i];
            if (e->type == REDIS_REPLY_INTEGER)
                off += snprintf(buf + off, size - off, "%lld ", e->integer);
            else
                off += snprintf(buf + off, size - off, "%s ", e->type == REDIS_REPLY_STRING ? e->str : "?");
        }
    return buf;
}

/* Reply is {"OK", ...}; frees it unless keep. */
static void expect_ok(redisReply *r, int keep)
{
    char buf[512];
    ck_assert_msg(r->type == REDIS_REPLY_ARRAY && r->elements >= 1 && r->element[0]->type == REDIS_REPLY_STRING &&
                      strcmp(r->element[0]->str, "OK") == 0,
                  "expected OK, got %s", describe(r, buf, sizeof(buf)));
    if (!keep)
        freeReplyObject(r);
}

/* Reply is exactly {"ERR", reason[, arg[, avail]]} (arg NULL: none; avail < 0: none). Frees it. */
static void expect_err(redisReply *r, const char *reason, const char *arg, long long avail)
{
    char buf[512];
    size_t want = 2 + (arg != NULL) + (avail >= 0);
    describe(r, buf, sizeof(buf));
    ck_assert_msg(r->type == REDIS_REPLY_ARRAY && r->elements == want, "expected ERR %s, got %s", reason, buf);
    ck_assert_msg(strcmp(r->element[0]->str, "ERR") == 0 && strcmp(r->element[1]->str, reason) == 0, "expected ERR %s, got %s",
                  reason, buf);
    if (arg != NULL)
        ck_assert_msg(r->element[2]->type == REDIS_REPLY_STRING && strcmp(r->element[2]->str, arg) == 0,
                      "expected ERR %s %s, got %s", reason, arg, buf);
    if (avail >= 0)
        ck_assert_msg(r->element[3]->type == REDIS_REPLY_INTEGER && r->element[3]->integer == avail,
                      "expected ERR %s %s %lld, got %s", reason, arg, avail, buf);
    freeReplyObject(r);
}

/* ---- inventory views -------------------------------------------------------------------- */

/* Parses tk_stats: {cap, avail, held, sold, cancelled, expired, revenue, ntypes, lag_ms, (T cap avail held sold)*ntypes}. */
static void stats_get(const char *ev, tk_stats_t *s)
{
    redisReply *r = fcall("tk_stats", ev, ev, NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_ge(r->elements, 9);
    for (size_t i = 0; i < 9; i++)
        ck_assert_int_eq(r->element[i]->type, REDIS_REPLY_INTEGER);
    memset(s, 0, sizeof(*s));
    s->cap = r->element[0]->integer;
    s->avail = r->element[1]->integer;
    s->held = r->element[2]->integer;
    s->sold = r->element[3]->integer;
    s->cancelled = r->element[4]->integer;
    s->expired = r->element[5]->integer;
    s->revenue = r->element[6]->integer;
    s->ntypes = (size_t)r->element[7]->integer;
    ck_assert_uint_le(s->ntypes, 8);
    ck_assert_int_ge(r->element[8]->integer, 0); /* persistence lag */
    ck_assert_uint_eq(r->elements, 9 + 5 * s->ntypes);
    for (size_t i = 0; i < s->ntypes; i++) {
        redisReply **e = r->element + 9 + 5 * i;
        ck_assert_int_eq(e[0]->type, REDIS_REPLY_STRING);
        for (int k = 1; k < 5; k++)
            ck_assert_int_eq(e[k]->type, REDIS_REPLY_INTEGER);
        snprintf(s->t[i].name, sizeof(s->t[i].name), "%s", e[0]->str);
        s->t[i].cap = e[1]->integer;
        s->t[i].avail = e[2]->integer;
        s->t[i].held = e[3]->integer;
        s->t[i].sold = e[4]->integer;
    }
    freeReplyObject(r);
}

static tk_type_stats_t stats_type(const char *ev, const char *type)
{
    tk_stats_t s;
    stats_get(ev, &s);
    for (size_t i = 0; i < s.ntypes; i++)
        if (strcmp(s.t[i].name, type) == 0)
            return s.t[i];
    ck_abort_msg("type %s not in stats", type);
    return s.t[0];
}

/* avail + held + sold == cap for every type, read raw from the hash and through tk_stats,
 * and the totals of tk_stats are the sums over the types. */
static void assert_invariant(const char *ev)
{
    tk_stats_t s;
    char inv[32], res[32], dl[32];
    long long cap = 0, avail = 0, held = 0, sold = 0;
    stats_get(ev, &s);
    keys_for(ev, inv, res, dl);
    for (size_t i = 0; i < s.ntypes; i++) {
        const tk_type_stats_t *t = &s.t[i];
        redisReply *r =
            cmd("HMGET %s %s:%s:cap %s:%s:avail %s:%s:held %s:%s:sold", inv, ev, t->name, ev, t->name, ev, t->name, ev, t->name);
        ck_assert_uint_eq(r->elements, 4);
        long long raw[4];
        for (int k = 0; k < 4; k++) {
            ck_assert_int_eq(r->element[k]->type, REDIS_REPLY_STRING);
            raw[k] = atoll(r->element[k]->str);
        }
        freeReplyObject(r);
        ck_assert_msg(raw[1] + raw[2] + raw[3] == raw[0], "%s: avail %lld + held %lld + sold %lld != cap %lld", t->name, raw[1],
                      raw[2], raw[3], raw[0]);
        ck_assert_msg(raw[1] >= 0 && raw[2] >= 0 && raw[3] >= 0, "%s: negative count", t->name);
        ck_assert(t->cap == raw[0] && t->avail == raw[1] && t->held == raw[2] && t->sold == raw[3]);
        cap += t->cap, avail += t->avail, held += t->held, sold += t->sold;
    }
    ck_assert(s.cap == cap && s.avail == avail && s.held == held && s.sold == sold);
}

/* tk_event_init of a fresh event: event_new(ev, date_ms, T, cap, price, ..., NULL). */
static void event_new(tk_uuid_t ev, int64_t date_ms, ...)
{
    const char *args[MAX_ARGS];
    char date[24], ntypes[24];
    int n = 3;
    va_list ap;
    uuid_new(ev);
    snprintf(date, sizeof(date), "%lld", (long long)date_ms);
    args[0] = ev;
    args[1] = date;
    args[2] = ntypes;
    va_start(ap, date_ms);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL && n < MAX_ARGS;)
        args[n++] = a;
    va_end(ap);
    snprintf(ntypes, sizeof(ntypes), "%d", (n - 3) / 3);
    redisReply *r = fcall_on(rc, "tk_event_init", ev, n, args);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    ck_assert_int_eq(r->integer, (n - 3) / 3);
    freeReplyObject(r);
    assert_invariant(ev);
}

/* All inventory fields of ev, sorted, as one "field=value;..." string (caller frees). */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *inv_snapshot(const char *ev)
{
    char inv[32], res[32], dl[32];
    keys_for(ev, inv, res, dl);
    redisReply *r = cmd("HGETALL %s", inv);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    char **items = calloc(r->elements / 2 + 1, sizeof(*items));
    size_t n = 0, len = 1;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        if (strncmp(r->element[i]->str, ev, UUID_LEN) != 0)
            continue;
        ck_assert_int_ne(asprintf(&items[n], "%s=%s;", r->element[i]->str, r->element[i + 1]->str), -1);
        len += strlen(items[n++]);
    }
    freeReplyObject(r);
    qsort(items, n, sizeof(*items), cmp_str);
    char *out = calloc(1, len);
    for (size_t i = 0; i < n; i++) {
        strcat(out, items[i]);
        free(items[i]);
    }
    free(items);
    ck_assert_uint_gt(n, 0);
    return out;
}

/* The reservation blob as tk_get returns it (caller frees), or NULL when not_found. */
static char *blob_get(const char *rid)
{
    redisReply *r = fcall("tk_get", rid, rid, NULL);
    char buf[512];
    ck_assert_msg(r->type == REDIS_REPLY_ARRAY && r->elements == 2, "tk_get: %s", describe(r, buf, sizeof(buf)));
    if (strcmp(r->element[0]->str, "ERR") == 0) {
        ck_assert_str_eq(r->element[1]->str, "not_found");
        freeReplyObject(r);
        return NULL;
    }
    ck_assert_str_eq(r->element[0]->str, "OK");
    char *blob = strdup(r->element[1]->str);
    freeReplyObject(r);
    return blob;
}

/* The stored blob, read without running any function (so without lazy expiry). */
static char *blob_raw(const char *rid)
{
    char inv[32], res[32], dl[32];
    keys_for(rid, inv, res, dl);
    redisReply *r = cmd("HGET %s %s", res, rid);
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    char *blob = strdup(r->str);
    freeReplyObject(r);
    return blob;
}

static void assert_status(const char *blob, const char *status)
{
    char needle[64];
    snprintf(needle, sizeof(needle), "\"st\":\"%s\"", status);
    ck_assert_msg(strstr(blob, needle) != NULL, "want %s in %s", needle, blob);
}

static long long blob_int(const char *blob, const char *key)
{
    char needle[16];
    snprintf(needle, sizeof(needle), "\"%s\":", key);
    const char *p = strstr(blob, needle);
    ck_assert_msg(p != NULL, "no %s in %s", key, blob);
    return strtoll(p + strlen(needle), NULL, 10);
}

/* Replaces the blob's status, as the payment code will (PENDING -> PAYING leaves dl). */
static void force_status(const char *rid, const char *status)
{
    char inv[32], res[32], dl[32], *blob = blob_raw(rid), *p = strstr(blob, "\"st\":\"");
    keys_for(rid, inv, res, dl);
    ck_assert_ptr_nonnull(p);
    char *end = strchr(p + 6, '"');
    char *next = NULL;
    ck_assert_int_ne(asprintf(&next, "%.*s\"st\":\"%s%s", (int)(p - blob), blob, status, end), -1);
    freeReplyObject(cmd("HSET %s %s %s", res, rid, next));
    freeReplyObject(cmd("ZREM %s %s", dl, rid));
    free(next);
    free(blob);
}

static long long dl_has(const char *rid)
{
    char inv[32], res[32], dl[32];
    keys_for(rid, inv, res, dl);
    redisReply *r = cmd("ZSCORE %s %s", dl, rid);
    long long score = r->type == REDIS_REPLY_STRING ? atoll(r->str) : -1;
    freeReplyObject(r);
    return score;
}

static int res_exists(const char *rid)
{
    char inv[32], res[32], dl[32];
    keys_for(rid, inv, res, dl);
    redisReply *r = cmd("HEXISTS %s %s", res, rid);
    int yes = (int)r->integer;
    freeReplyObject(r);
    return yes;
}

static long long expire_sweep(const char *id, const char *limit)
{
    redisReply *r = fcall("tk_expire", id, limit, NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

static int64_t future(void)
{
    return now_ms() + DAY_MS;
}

/* ---- payments and the outbox ------------------------------------------------------------ */

#define GATEWAY_MS "30000"
#define DECLINED "Your card has been declined"
#define TIMED_OUT "Payment gateway timed out"
#define OB_MAX_TICKETS 8

/* The key tk:{s}:name of id's shard. */
static void shard_key(const char *id, const char *name, char out[32])
{
    snprintf(out, 32, "tk:{%.4s}:%s", id, name);
}

static redisReply *pay_start(const char *rid, const char *tid, const char *timeout_ms)
{
    return fcall("tk_pay_start", rid, rid, tid, timeout_ms, NULL);
}

/* tk_pay_start that must answer {"OK", tid, amount}; returns amount. */
static long long pay_start_ok(const char *rid, const char *tid, const char *timeout_ms)
{
    redisReply *r = pay_start(rid, tid, timeout_ms);
    expect_ok(r, 1);
    ck_assert_uint_eq(r->elements, 3);
    ck_assert_int_eq(r->element[1]->type, REDIS_REPLY_STRING);
    ck_assert_str_eq(r->element[1]->str, tid);
    ck_assert_int_eq(r->element[2]->type, REDIS_REPLY_INTEGER);
    long long amount = r->element[2]->integer;
    freeReplyObject(r);
    return amount;
}

static redisReply *pay_finish(const char *rid, const char *tid, const char *outcome, const char *msg)
{
    return fcall("tk_pay_finish", rid, rid, tid, outcome, msg, NULL);
}

/* Reply is exactly {"OK", status}; frees it. */
static void expect_ok_status(redisReply *r, const char *status)
{
    char buf[512];
    expect_ok(r, 1);
    ck_assert_msg(r->elements == 2 && r->element[1]->type == REDIS_REPLY_STRING && strcmp(r->element[1]->str, status) == 0,
                  "expected OK %s, got %s", status, describe(r, buf, sizeof(buf)));
    freeReplyObject(r);
}

/* tk_txn(tid) is exactly {"OK", status, err}. */
static void expect_txn(const char *tid, const char *status, const char *err)
{
    char buf[512];
    redisReply *r = fcall("tk_txn", tid, tid, NULL);
    expect_ok(r, 1);
    describe(r, buf, sizeof(buf));
    ck_assert_msg(r->elements == 3, "tk_txn: %s", buf);
    ck_assert_msg(strcmp(r->element[1]->str, status) == 0 && strcmp(r->element[2]->str, err) == 0, "tk_txn: want %s '%s', got %s",
                  status, err, buf);
    freeReplyObject(r);
}

/* The score of rid in its shard's pay set, -1 when absent. */
static long long pay_has(const char *rid)
{
    char pay[32];
    shard_key(rid, "pay", pay);
    redisReply *r = cmd("ZSCORE %s %s", pay, rid);
    long long score = r->type == REDIS_REPLY_STRING ? atoll(r->str) : -1;
    freeReplyObject(r);
    return score;
}

/* HEXISTS on the hash `name` (res, tx) of id's shard. */
static int shard_hexists(const char *name, const char *id)
{
    char key[32];
    shard_key(id, name, key);
    redisReply *r = cmd("HEXISTS %s %s", key, id);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    int yes = (int)r->integer;
    freeReplyObject(r);
    return yes;
}

static long long stream_len(const char *ob)
{
    redisReply *r = cmd("XLEN %s", ob);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

/* The millisecond part of the oldest entry of the stream ob, -1 when it is empty. */
static long long stream_oldest_ms(const char *ob)
{
    redisReply *r = cmd("XRANGE %s - + COUNT 1", ob);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    long long ms = r->elements == 0 ? -1 : atoll(r->element[0]->element[0]->str);
    freeReplyObject(r);
    return ms;
}

/* One outbox entry, decoded from its msgpack field "m". */
typedef struct {
    char sid[48]; /* stream entry id */
    char r[UUID_LEN + 1], e[UUID_LEN + 1], st[16];
    long long c, u;
    int nt;
    struct {
        char id[UUID_LEN + 1], type[32];
        long long price;
    } t[OB_MAX_TICKETS];
    int has_x, has_err;
    char xid[UUID_LEN + 1], xst[16], xerr[128];
    long long amt, d;
} ob_entry_t;

static int mp_key_is(const msgpack_object *k, const char *name)
{
    ck_assert_int_eq(k->type, MSGPACK_OBJECT_STR);
    return k->via.str.size == strlen(name) && memcmp(k->via.str.ptr, name, k->via.str.size) == 0;
}

static void mp_str(const msgpack_object *o, char *out, size_t size)
{
    ck_assert_int_eq(o->type, MSGPACK_OBJECT_STR);
    ck_assert_uint_lt(o->via.str.size, size);
    snprintf(out, size, "%.*s", (int)o->via.str.size, o->via.str.ptr);
}

static long long mp_int(const msgpack_object *o)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return (long long)o->via.u64;
    ck_assert_int_eq(o->type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    return (long long)o->via.i64;
}

/* The transaction map x: keys id, st, amt, d, and err on failure. */
static void ob_decode_x(const msgpack_object *o, ob_entry_t *e)
{
    unsigned seen = 0;
    ck_assert_int_eq(o->type, MSGPACK_OBJECT_MAP);
    e->has_x = 1;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
        if (mp_key_is(k, "id"))
            mp_str(v, e->xid, sizeof(e->xid)), seen |= 1;
        else if (mp_key_is(k, "st"))
            mp_str(v, e->xst, sizeof(e->xst)), seen |= 2;
        else if (mp_key_is(k, "amt"))
            e->amt = mp_int(v), seen |= 4;
        else if (mp_key_is(k, "d"))
            e->d = mp_int(v), seen |= 8;
        else if (mp_key_is(k, "err"))
            mp_str(v, e->xerr, sizeof(e->xerr)), e->has_err = 1;
        else
            ck_abort_msg("unexpected key %.*s in x", (int)k->via.str.size, k->via.str.ptr);
    }
    ck_assert_msg(seen == 15, "x lacks id, st, amt or d (seen %#x)", seen);
}

/* The whole reservation {r, e, st, c, u, t[, x]} as msgpack; nothing else is allowed. */
static void ob_decode(const char *data, size_t len, ob_entry_t *e)
{
    msgpack_unpacked up;
    size_t off = 0;
    unsigned seen = 0;
    msgpack_unpacked_init(&up);
    ck_assert_int_eq(msgpack_unpack_next(&up, data, len, &off), MSGPACK_UNPACK_SUCCESS);
    ck_assert_uint_eq(off, len);
    const msgpack_object *o = &up.data;
    ck_assert_int_eq(o->type, MSGPACK_OBJECT_MAP);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key, *v = &o->via.map.ptr[i].val;
        if (mp_key_is(k, "r")) {
            mp_str(v, e->r, sizeof(e->r)), seen |= 1;
        } else if (mp_key_is(k, "e")) {
            mp_str(v, e->e, sizeof(e->e)), seen |= 2;
        } else if (mp_key_is(k, "st")) {
            mp_str(v, e->st, sizeof(e->st)), seen |= 4;
        } else if (mp_key_is(k, "c")) {
            e->c = mp_int(v), seen |= 8;
        } else if (mp_key_is(k, "u")) {
            e->u = mp_int(v), seen |= 16;
        } else if (mp_key_is(k, "t")) {
            seen |= 32;
            ck_assert_int_eq(v->type, MSGPACK_OBJECT_ARRAY);
            ck_assert_uint_le(v->via.array.size, OB_MAX_TICKETS);
            e->nt = (int)v->via.array.size;
            for (int j = 0; j < e->nt; j++) {
                const msgpack_object *t = &v->via.array.ptr[j];
                ck_assert_int_eq(t->type, MSGPACK_OBJECT_ARRAY);
                ck_assert_uint_eq(t->via.array.size, 3);
                mp_str(&t->via.array.ptr[0], e->t[j].id, sizeof(e->t[j].id));
                mp_str(&t->via.array.ptr[1], e->t[j].type, sizeof(e->t[j].type));
                e->t[j].price = mp_int(&t->via.array.ptr[2]);
            }
        } else if (mp_key_is(k, "x")) {
            ob_decode_x(v, e);
        } else {
            ck_abort_msg("unexpected key %.*s in an outbox entry", (int)k->via.str.size, k->via.str.ptr);
        }
    }
    ck_assert_msg(seen == 63, "outbox entry lacks one of r, e, st, c, u, t (seen %#x)", seen);
    msgpack_unpacked_destroy(&up);
}

/* The outbox entries of reservation rid, oldest first, at most max; returns how many. */
static int outbox_for(const char *rid, ob_entry_t *out, int max)
{
    char ob[32];
    int n = 0;
    shard_key(rid, "ob", ob);
    redisReply *r = cmd("XRANGE %s - +", ob);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *entry = r->element[i], *fields = entry->element[1];
        ck_assert_uint_eq(fields->elements, 2);
        ck_assert_str_eq(fields->element[0]->str, "m");
        ob_entry_t e;
        memset(&e, 0, sizeof(e));
        snprintf(e.sid, sizeof(e.sid), "%s", entry->element[0]->str);
        ob_decode(fields->element[1]->str, fields->element[1]->len, &e);
        if (strcmp(e.r, rid) != 0)
            continue;
        ck_assert_int_lt(n, max);
        out[n++] = e;
    }
    freeReplyObject(r);
    return n;
}

/* Creates the consumer group "writers" of ob unless it exists. */
static void writers_group(const char *ob)
{
    redisReply *r = cmd("XGROUP CREATE %s writers 0 MKSTREAM", ob);
    ck_assert_msg(r->type == REDIS_REPLY_STATUS || (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) == 0),
                  "XGROUP CREATE: %s", r->str);
    freeReplyObject(r);
}

/* Whether the stream entry sid is in the pending list of the group "writers". */
static int pending_has(const char *ob, const char *sid)
{
    redisReply *r = cmd("XPENDING %s writers %s %s 10", ob, sid, sid);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    int yes = r->elements > 0;
    freeReplyObject(r);
    return yes;
}

/* ---- fixture ---------------------------------------------------------------------------- */

static void setup(void)
{
    rc = redis_connect();
    ck_assert_msg(rc != NULL, "cannot connect to the test Redis");
}

static void teardown(void)
{
    if (rc != NULL)
        redisFree(rc);
    rc = NULL;
}

/* ---- tk_event_init / tk_avail ----------------------------------------------------------- */

START_TEST(test_init_is_idempotent_and_keeps_live_counts)
{
    tk_uuid_t ev, rid;
    char date[24], *before, *after;
    event_new(ev, future(), "VIP", "3", "35000", "Std", "10", "1000", NULL);
    res_id_new(ev, rid);
    tk_line_t line = {"VIP", "2"};
    expect_ok(reserve(ev, rid, HOLD_MS, &line, 1), 0);
    assert_invariant(ev);
    before = inv_snapshot(ev);

    snprintf(date, sizeof(date), "%lld", (long long)future() + 5);
    redisReply *r = fcall("tk_event_init", ev, ev, date, "2", "VIP", "3", "35000", "Std", "10", "1000", NULL);
    ck_assert_int_eq(r->integer, 2);
    freeReplyObject(r);
    /* a re-run with other figures does not overwrite either */
    r = fcall("tk_event_init", ev, ev, date, "1", "VIP", "99", "1", NULL);
    ck_assert_int_eq(r->integer, 1);
    freeReplyObject(r);
    after = inv_snapshot(ev);
    ck_assert_str_eq(before, after);
    assert_invariant(ev);
    free(before);
    free(after);
}
END_TEST

START_TEST(test_avail_after_init_lists_types_in_creation_order)
{
    tk_uuid_t ev;
    event_new(ev, future(), "Zeta", "3", "35000", "Alpha", "10", "1000", "Mid", "0", "0", NULL);
    redisReply *r = fcall("tk_avail", ev, ev, NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(r->elements, 6);
    ck_assert_str_eq(r->element[0]->str, "Zeta");
    ck_assert_int_eq(r->element[1]->integer, 3);
    ck_assert_str_eq(r->element[2]->str, "Alpha");
    ck_assert_int_eq(r->element[3]->integer, 10);
    ck_assert_str_eq(r->element[4]->str, "Mid");
    ck_assert_int_eq(r->element[5]->integer, 0);
    freeReplyObject(r);

    tk_uuid_t unknown;
    uuid_new(unknown);
    r = fcall("tk_avail", unknown, unknown, NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(r->elements, 0);
    freeReplyObject(r);
}
END_TEST

/* ---- tk_reserve ------------------------------------------------------------------------- */

START_TEST(test_reserve_moves_avail_to_held_and_stores_blob)
{
    tk_uuid_t ev, rid;
    char needle[128];
    event_new(ev, future(), "VIP", "3", "35000", "Std", "10", "1000", NULL);
    res_id_new(ev, rid);
    tk_line_t lines[] = {{"VIP", "2"}, {"Std", "1"}};
    int64_t t0 = now_ms();
    redisReply *r = reserve(ev, rid, HOLD_MS, lines, 2);
    expect_ok(r, 1);
    ck_assert_uint_eq(r->elements, 3);
    long long created = r->element[1]->integer, until = r->element[2]->integer;
    freeReplyObject(r);
    ck_assert_int_ge(created, t0 - 1000);
    ck_assert_int_le(created, now_ms() + 1000);
    ck_assert_int_eq(until - created, HOLD_MS);
    assert_invariant(ev);

    tk_type_stats_t vip = stats_type(ev, "VIP"), std = stats_type(ev, "Std");
    ck_assert(vip.avail == 1 && vip.held == 2 && vip.sold == 0);
    ck_assert(std.avail == 9 && std.held == 1 && std.sold == 0);
    ck_assert_int_eq(dl_has(rid), until);

    char *blob = blob_get(rid);
    ck_assert_ptr_nonnull(blob);
    assert_status(blob, "PENDING");
    ck_assert_int_eq(blob_int(blob, "c"), created);
    ck_assert_int_eq(blob_int(blob, "u"), until);
    snprintf(needle, sizeof(needle), "\"e\":\"%s\"", ev);
    ck_assert_ptr_nonnull(strstr(blob, needle));
    ck_assert_ptr_nonnull(strstr(blob, "\"l\":[[\"VIP\",2],[\"Std\",1]]"));
    ck_assert_int_eq(last_ntickets, 3);
    for (int i = 0; i < 3; i++) {
        snprintf(needle, sizeof(needle), "[\"%s\",\"%s\",%s]", last_tickets[i], i < 2 ? "VIP" : "Std", i < 2 ? "35000" : "1000");
        ck_assert_msg(strstr(blob, needle) != NULL, "want %s in %s", needle, blob);
    }
    free(blob);
}
END_TEST

START_TEST(test_last_ticket_goes_once_then_insufficient_with_zero)
{
    tk_uuid_t ev, rid;
    event_new(ev, future(), "GA", "3", "500", NULL);
    tk_line_t two = {"GA", "2"}, one = {"GA", "1"};
    res_id_new(ev, rid);
    expect_ok(reserve(ev, rid, HOLD_MS, &two, 1), 0);
    assert_invariant(ev);
    ck_assert_int_eq(stats_type(ev, "GA").avail, 1);
    res_id_new(ev, rid);
    expect_ok(reserve(ev, rid, HOLD_MS, &one, 1), 0);
    assert_invariant(ev);
    res_id_new(ev, rid);
    expect_err(reserve(ev, rid, HOLD_MS, &one, 1), "insufficient", "GA", 0);
    ck_assert_int_eq(res_exists(rid), 0);
    tk_type_stats_t ga = stats_type(ev, "GA");
    ck_assert(ga.avail == 0 && ga.held == 3);
    assert_invariant(ev);
}
END_TEST

START_TEST(test_one_short_type_changes_nothing_at_all)
{
    tk_uuid_t ev, rid;
    event_new(ev, future(), "A", "10", "100", "B", "1", "200", "C", "10", "300", NULL);
    char *before = inv_snapshot(ev);
    res_id_new(ev, rid);
    tk_line_t lines[] = {{"A", "2"}, {"B", "2"}, {"C", "1"}};
    expect_err(reserve(ev, rid, HOLD_MS, lines, 3), "insufficient", "B", 1);
    char *after = inv_snapshot(ev);
    ck_assert_str_eq(before, after);
    ck_assert_int_eq(res_exists(rid), 0);
    ck_assert_int_eq(dl_has(rid), -1);
    assert_invariant(ev);
    free(before);
    free(after);
}
END_TEST

START_TEST(test_duplicate_types_are_merged_before_the_limit)
{
    tk_uuid_t ev, rid;
    event_new(ev, future(), "A", "20", "100", NULL);
    char *before = inv_snapshot(ev);
    res_id_new(ev, rid);
    tk_line_t over[] = {{"A", "3"}, {"A", "3"}};
    expect_err(reserve(ev, rid, HOLD_MS, over, 2), "limit", "A", -1);
    char *after = inv_snapshot(ev);
    ck_assert_str_eq(before, after);

    tk_line_t ok[] = {{"A", "2"}, {"A", "3"}};
    expect_ok(reserve(ev, rid, HOLD_MS, ok, 2), 0);
    assert_invariant(ev);
    ck_assert_int_eq(stats_type(ev, "A").held, 5);
    char *blob = blob_get(rid);
    ck_assert_ptr_nonnull(strstr(blob, "\"l\":[[\"A\",5]]"));
    free(blob);
    free(before);
    free(after);
}
END_TEST

START_TEST(test_limit_five_ok_six_refused)
{
    tk_uuid_t ev, rid;
    event_new(ev, future(), "A", "20", "100", NULL);
    tk_line_t six = {"A", "6"}, five = {"A", "5"};
    res_id_new(ev, rid);
    expect_err(reserve(ev, rid, HOLD_MS, &six, 1), "limit", "A", -1);
    ck_assert_int_eq(stats_type(ev, "A").avail, 20);
    expect_ok(reserve(ev, rid, HOLD_MS, &five, 1), 0);
    ck_assert_int_eq(stats_type(ev, "A").avail, 15);
    assert_invariant(ev);
}
END_TEST

START_TEST(test_bad_amounts_are_refused)
{
    static const char *bad[] = {"0", "-1", "1.5", "abc", "1e3", "", " 1", "0x2", "+1", "1234567890123456"};
    tk_uuid_t ev, rid;
    event_new(ev, future(), "A", "20", "100", "B", "20", "100", NULL);
    char *before = inv_snapshot(ev);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tk_line_t lines[] = {{"A", "1"}, {"B", bad[i]}};
        res_id_new(ev, rid);
        expect_err(reserve(ev, rid, HOLD_MS, lines, 2), "bad_amount", "B", -1);
        ck_assert_int_eq(res_exists(rid), 0);
    }
    char *after = inv_snapshot(ev);
    ck_assert_str_eq(before, after);
    free(before);
    free(after);
}
END_TEST

START_TEST(test_empty_request_refused)
{
    tk_uuid_t ev, rid;
    event_new(ev, future(), "A", "20", "100", NULL);
    res_id_new(ev, rid);
    expect_err(reserve(ev, rid, HOLD_MS, NULL, 0), "empty", NULL, -1);
}
END_TEST

START_TEST(test_unknown_type_refused)
{
    tk_uuid_t ev, rid;
    event_new(ev, future(), "A", "20", "100", NULL);
    char *before = inv_snapshot(ev);
    res_id_new(ev, rid);
    tk_line_t lines[] = {{"A", "1"}, {"Nope", "1"}};
    expect_err(reserve(ev, rid, HOLD_MS, lines, 2), "unknown_type", "Nope", -1);
    char *after = inv_snapshot(ev);
    ck_assert_str_eq(before, after);
    ck_assert_int_eq(res_exists(rid), 0);
    free(before);
    free(after);
}
END_TEST

START_TEST(test_unknown_event_refused)
{
    tk_uuid_t ev, rid;
    uuid_new(ev);
    res_id_new(ev, rid);
    tk_line_t line = {"A", "1"};
    expect_err(reserve(ev, rid, HOLD_MS, &line, 1), "no_event", NULL, -1);
    ck_assert_int_eq(res_exists(rid), 0);
}
END_TEST

START_TEST(test_past_event_refused)
{
    tk_uuid_t ev, rid;
    event_new(ev, now_ms() - 1000, "A", "20", "100", NULL);
    res_id_new(ev, rid);
    tk_line_t line = {"A", "1"};
    expect_err(reserve(ev, rid, HOLD_MS, &line, 1), "past", NULL, -1);
    ck_assert_int_eq(stats_type(ev, "A").avail, 20);
    ck_assert_int_eq(res_exists(rid), 0);
}
END_TEST

START_TEST(test_existing_reservation_id_refused)
{
    tk_uuid_t ev, rid;
    event_new(ev, future(), "A", "20", "100", NULL);
    res_id_new(ev, rid);
    tk_line_t line = {"A", "1"};
    expect_ok(reserve(ev, rid, HOLD_MS, &line, 1), 0);
    char *blob = blob_raw(rid);
    expect_err(reserve(ev, rid, HOLD_MS, &line, 1), "exists", NULL, -1);
    char *again = blob_raw(rid);
    ck_assert_str_eq(blob, again);
    ck_assert_int_eq(stats_type(ev, "A").held, 1);
    assert_invariant(ev);
    free(blob);
    free(again);
}
END_TEST

START_TEST(test_error_precedence_type_then_limit_then_first_short)
{
    tk_uuid_t ev, rid;
    event_new(ev, future(), "A", "1", "100", "B", "1", "100", "C", "1", "100", "D", "10", "100", NULL);
    char *before = inv_snapshot(ev);
    res_id_new(ev, rid);
    /* unknown type beats an earlier line over the limit and short lines */
    tk_line_t t1[] = {{"A", "6"}, {"B", "2"}, {"Nope", "1"}};
    expect_err(reserve(ev, rid, HOLD_MS, t1, 3), "unknown_type", "Nope", -1);
    /* the limit beats an earlier short line */
    tk_line_t t2[] = {{"A", "2"}, {"D", "6"}};
    expect_err(reserve(ev, rid, HOLD_MS, t2, 2), "limit", "D", -1);
    /* the first short line in request order is named */
    tk_line_t t3[] = {{"D", "3"}, {"C", "2"}, {"B", "2"}};
    expect_err(reserve(ev, rid, HOLD_MS, t3, 3), "insufficient", "C", 1);
    /* malformed amounts come before everything, even an unknown event */
    tk_uuid_t ghost, grid;
    uuid_new(ghost);
    res_id_new(ghost, grid);
    tk_line_t t4[] = {{"A", "0"}};
    expect_err(reserve(ghost, grid, HOLD_MS, t4, 1), "bad_amount", "A", -1);
    expect_err(reserve(ev, rid, HOLD_MS, t4, 1), "bad_amount", "A", -1);
    char *after = inv_snapshot(ev);
    ck_assert_str_eq(before, after);
    ck_assert_int_eq(res_exists(rid), 0);
    free(before);
    free(after);
}
END_TEST

START_TEST(test_malformed_calls_are_redis_errors)
{
    tk_uuid_t ev, other, rid;
    event_new(ev, future(), "A", "20", "100", NULL);
    res_id_new(ev, rid);
    /* keys of another shard than the ids */
    do
        uuid_new(other);
    while (memcmp(other, ev, 4) == 0);
    const char *args[] = {ev, rid, "1000", "5", "1", "A", "1", "t1"};
    redisReply *r = fcall_on(rc, "tk_reserve", other, 8, args);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    /* a ticket id missing */
    r = fcall_on(rc, "tk_reserve", ev, 7, args);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    r = fcall("tk_expire", ev, "0", NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    ck_assert_int_eq(stats_type(ev, "A").avail, 20);
    ck_assert_int_eq(res_exists(rid), 0);
    assert_invariant(ev);
}
END_TEST

/* ---- expiry ----------------------------------------------------------------------------- */

START_TEST(test_expired_hold_reads_cancelled_with_tickets_back)
{
    tk_uuid_t ev, rid;
    event_new(ev, future(), "A", "10", "100", NULL);
    res_id_new(ev, rid);
    tk_line_t line = {"A", "3"};
    expect_ok(reserve(ev, rid, 50, &line, 1), 0);
    assert_invariant(ev);
    ck_assert_int_eq(stats_type(ev, "A").held, 3);
    sleep_ms(120);
    char *blob = blob_get(rid);
    assert_status(blob, "CANCELLED");
    free(blob);
    assert_invariant(ev);
    tk_stats_t s;
    stats_get(ev, &s);
    ck_assert(s.avail == 10 && s.held == 0 && s.expired == 3 && s.cancelled == 0);
    ck_assert_int_eq(dl_has(rid), -1);
}
END_TEST

START_TEST(test_expire_sweeps_without_a_read)
{
    tk_uuid_t ev, rid;
    event_new(ev, future(), "A", "10", "100", NULL);
    res_id_new(ev, rid);
    tk_line_t line = {"A", "2"};
    expect_ok(reserve(ev, rid, 50, &line, 1), 0);
    expire_sweep(ev, "200"); /* not due yet: ours stays */
    ck_assert_int_eq(stats_type(ev, "A").held, 2);
    sleep_ms(120);
    ck_assert_int_ge(expire_sweep(ev, "200"), 1);
    char *blob = blob_raw(rid);
    assert_status(blob, "CANCELLED");
    free(blob);
    tk_stats_t s;
    stats_get(ev, &s);
    ck_assert(s.avail == 10 && s.held == 0 && s.expired == 2);
    ck_assert_int_eq(dl_has(rid), -1);
    assert_invariant(ev);
}
END_TEST

START_TEST(test_paying_and_completed_never_expire_or_cancel)
{
    tk_uuid_t ev, paying, done;
    event_new(ev, future(), "A", "10", "100", NULL);
    tk_line_t line = {"A", "1"};
    res_id_new(ev, paying);
    expect_ok(reserve(ev, paying, 50, &line, 1), 0);
    res_id_new(ev, done);
    expect_ok(reserve(ev, done, 50, &line, 1), 0);
    force_status(paying, "PAYING");
    force_status(done, "COMPLETED");
    /* a stale deadline entry is dropped by the sweep without touching the reservation */
    char inv[32], res[32], dl[32];
    keys_for(ev, inv, res, dl);
    freeReplyObject(cmd("ZADD %s 0 %s", dl, paying));
    sleep_ms(120);
    expire_sweep(ev, "200");
    ck_assert_int_eq(dl_has(paying), -1);
    char *blob = blob_get(paying);
    assert_status(blob, "PAYING");
    free(blob);
    expect_err(fcall("tk_cancel", paying, paying, NULL), "state", "PAYING", -1);
    expect_err(fcall("tk_cancel", done, done, NULL), "state", "COMPLETED", -1);
    tk_stats_t s;
    stats_get(ev, &s);
    ck_assert(s.held == 2 && s.avail == 8 && s.expired == 0 && s.cancelled == 0);
    assert_invariant(ev);
}
END_TEST

/* ---- tk_cancel -------------------------------------------------------------------------- */

START_TEST(test_cancel_returns_tickets_then_second_cancel_is_state_cancelled)
{
    tk_uuid_t ev, rid;
    event_new(ev, future(), "A", "10", "100", "B", "10", "100", NULL);
    res_id_new(ev, rid);
    tk_line_t lines[] = {{"A", "2"}, {"B", "1"}};
    expect_ok(reserve(ev, rid, HOLD_MS, lines, 2), 0);
    assert_invariant(ev);
    expect_ok(fcall("tk_cancel", rid, rid, NULL), 0);
    assert_invariant(ev);
    tk_stats_t s;
    stats_get(ev, &s);
    ck_assert(s.avail == 20 && s.held == 0 && s.cancelled == 3 && s.expired == 0);
    ck_assert_int_eq(dl_has(rid), -1);
    char *blob = blob_get(rid);
    assert_status(blob, "CANCELLED");
    free(blob);
    expect_err(fcall("tk_cancel", rid, rid, NULL), "state", "CANCELLED", -1);
    stats_get(ev, &s);
    ck_assert(s.avail == 20 && s.cancelled == 3);
    assert_invariant(ev);
}
END_TEST

START_TEST(test_cancel_after_expiry_is_state_cancelled)
{
    tk_uuid_t ev, rid;
    event_new(ev, future(), "A", "10", "100", NULL);
    res_id_new(ev, rid);
    tk_line_t line = {"A", "4"};
    expect_ok(reserve(ev, rid, 50, &line, 1), 0);
    sleep_ms(120);
    expect_err(fcall("tk_cancel", rid, rid, NULL), "state", "CANCELLED", -1);
    tk_stats_t s;
    stats_get(ev, &s);
    ck_assert(s.avail == 10 && s.held == 0 && s.expired == 4 && s.cancelled == 0);
    assert_invariant(ev);
}
END_TEST

START_TEST(test_cancel_or_get_unknown_is_not_found)
{
    tk_uuid_t rid;
    uuid_new(rid);
    expect_err(fcall("tk_cancel", rid, rid, NULL), "not_found", NULL, -1);
    ck_assert_ptr_null(blob_get(rid));
}
END_TEST

/* ---- tk_stats --------------------------------------------------------------------------- */

START_TEST(test_stats_shape_totals_then_types)
{
    tk_uuid_t ev, rid, unknown;
    event_new(ev, future(), "VIP", "100", "35000", "Std", "500", "1000", NULL);
    res_id_new(ev, rid);
    tk_line_t lines[] = {{"Std", "4"}, {"VIP", "3"}};
    expect_ok(reserve(ev, rid, HOLD_MS, lines, 2), 0);
    redisReply *r = fcall("tk_stats", ev, ev, NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(r->elements, 9 + 2 * 5);
    long long want[] = {600, 593, 7, 0, 0, 0, 0, 2};
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(r->element[i]->integer, want[i]);
    ck_assert_int_ge(r->element[8]->integer, 0); /* the reservation waits in the outbox */
    ck_assert_str_eq(r->element[9]->str, "VIP");
    long long vip[] = {100, 97, 3, 0};
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(r->element[10 + i]->integer, vip[i]);
    ck_assert_str_eq(r->element[14]->str, "Std");
    long long std[] = {500, 496, 4, 0};
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(r->element[15 + i]->integer, std[i]);
    freeReplyObject(r);

    /* read-only: FCALL_RO works; unknown events give an empty array */
    char inv[32], res[32], dl[32];
    keys_for(ev, inv, res, dl);
    char others[4][32];
    for (int i = 0; i < 4; ++i)
        snprintf(others[i], sizeof(others[i]), "tk:{%.4s}:%s", ev, OTHER_KEYS[i]);
    r = cmd("FCALL_RO tk_stats 7 %s %s %s %s %s %s %s %s", inv, res, dl, others[0], others[1], others[2], others[3], ev);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(r->elements, 19);
    freeReplyObject(r);
    uuid_new(unknown);
    r = fcall("tk_stats", unknown, unknown, NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(r->elements, 0);
    freeReplyObject(r);
    assert_invariant(ev);
}
END_TEST

/* ---- tk_pay_start ----------------------------------------------------------------------- */

START_TEST(test_pay_start_makes_pending_paying_with_amount_then_exists)
{
    tk_uuid_t ev, rid, tid, other;
    char needle[128];
    event_new(ev, future(), "VIP", "3", "35000", "Std", "10", "1000", NULL);
    res_id_new(ev, rid);
    tk_line_t lines[] = {{"VIP", "2"}, {"Std", "1"}};
    expect_ok(reserve(ev, rid, HOLD_MS, lines, 2), 0);
    res_id_new(ev, tid);
    int64_t t0 = now_ms();
    ck_assert_int_eq(pay_start_ok(rid, tid, GATEWAY_MS), 2 * 35000 + 1000);
    int64_t t1 = now_ms();
    assert_invariant(ev);

    char *blob = blob_get(rid);
    assert_status(blob, "PAYING");
    snprintf(needle, sizeof(needle), "\"id\":\"%s\"", tid);
    ck_assert_msg(strstr(blob, needle) != NULL, "want %s in %s", needle, blob);
    ck_assert_ptr_nonnull(strstr(blob, "\"amt\":71000"));
    free(blob);
    ck_assert_int_eq(dl_has(rid), -1);
    long long deadline = pay_has(rid);
    ck_assert_int_ge(deadline, t0 + 30000 - 5);
    ck_assert_int_le(deadline, t1 + 30000 + 5);
    expect_txn(tid, "PENDING", "");
    /* tickets stay held while the gateway works */
    tk_type_stats_t vip = stats_type(ev, "VIP"), std = stats_type(ev, "Std");
    ck_assert(vip.held == 2 && vip.sold == 0 && std.held == 1 && std.sold == 0);

    /* a payment is in flight: the same one is named, nothing new starts */
    res_id_new(ev, other);
    redisReply *r = pay_start(rid, other, GATEWAY_MS);
    char buf[512];
    describe(r, buf, sizeof(buf));
    ck_assert_msg(r->type == REDIS_REPLY_ARRAY && r->elements == 2 && strcmp(r->element[0]->str, "EXISTS") == 0 &&
                      strcmp(r->element[1]->str, tid) == 0,
                  "expected EXISTS %s, got %s", tid, buf);
    freeReplyObject(r);
    ck_assert_int_eq(shard_hexists("tx", other), 0);
    ck_assert_int_eq(pay_has(rid), deadline);
    expect_txn(tid, "PENDING", "");
    assert_invariant(ev);
}
END_TEST

START_TEST(test_pay_start_unknown_is_not_found)
{
    tk_uuid_t rid, tid;
    uuid_new(rid);
    res_id_new(rid, tid);
    expect_err(pay_start(rid, tid, GATEWAY_MS), "not_found", NULL, -1);
    ck_assert_int_eq(shard_hexists("tx", tid), 0);
    ck_assert_int_eq(pay_has(rid), -1);
}
END_TEST

START_TEST(test_pay_start_cancelled_or_completed_is_state)
{
    tk_uuid_t ev, gone, done, tid;
    event_new(ev, future(), "A", "10", "100", NULL);
    tk_line_t line = {"A", "2"};
    res_id_new(ev, gone);
    expect_ok(reserve(ev, gone, HOLD_MS, &line, 1), 0);
    expect_ok(fcall("tk_cancel", gone, gone, NULL), 0);
    res_id_new(ev, tid);
    expect_err(pay_start(gone, tid, GATEWAY_MS), "state", "CANCELLED", -1);
    ck_assert_int_eq(shard_hexists("tx", tid), 0);
    ck_assert_int_eq(pay_has(gone), -1);

    res_id_new(ev, done);
    expect_ok(reserve(ev, done, HOLD_MS, &line, 1), 0);
    res_id_new(ev, tid);
    pay_start_ok(done, tid, GATEWAY_MS);
    expect_ok_status(pay_finish(done, tid, "ok", ""), "COMPLETED");
    res_id_new(ev, tid);
    expect_err(pay_start(done, tid, GATEWAY_MS), "state", "COMPLETED", -1);
    ck_assert_int_eq(shard_hexists("tx", tid), 0);
    tk_stats_t s;
    stats_get(ev, &s);
    ck_assert(s.avail == 8 && s.held == 0 && s.sold == 2 && s.revenue == 200 && s.cancelled == 2);
    assert_invariant(ev);
}
END_TEST

START_TEST(test_pay_start_on_expired_hold_is_state_cancelled)
{
    tk_uuid_t ev, rid, tid;
    event_new(ev, future(), "A", "10", "100", NULL);
    res_id_new(ev, rid);
    tk_line_t line = {"A", "3"};
    expect_ok(reserve(ev, rid, 50, &line, 1), 0);
    sleep_ms(120);
    res_id_new(ev, tid);
    expect_err(pay_start(rid, tid, GATEWAY_MS), "state", "CANCELLED", -1);
    ck_assert_int_eq(shard_hexists("tx", tid), 0);
    ck_assert_int_eq(pay_has(rid), -1);
    tk_stats_t s;
    stats_get(ev, &s);
    ck_assert(s.avail == 10 && s.held == 0 && s.sold == 0 && s.expired == 3 && s.revenue == 0);
    assert_invariant(ev);
}
END_TEST

START_TEST(test_pay_start_txn_outside_the_shard_is_a_redis_error)
{
    tk_uuid_t ev, rid, tid;
    event_new(ev, future(), "A", "10", "100", NULL);
    res_id_new(ev, rid);
    tk_line_t line = {"A", "1"};
    expect_ok(reserve(ev, rid, HOLD_MS, &line, 1), 0);
    do
        uuid_new(tid);
    while (memcmp(tid, ev, 4) == 0);
    redisReply *r = pay_start(rid, tid, GATEWAY_MS);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    res_id_new(ev, tid);
    r = pay_start(rid, tid, "0"); /* a gateway timeout must be >= 1 ms */
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    char *blob = blob_get(rid);
    assert_status(blob, "PENDING");
    free(blob);
    ck_assert_int_eq(pay_has(rid), -1);
    ck_assert_int_ge(dl_has(rid), 0);
}
END_TEST

/* ---- tk_pay_finish ---------------------------------------------------------------------- */

START_TEST(test_pay_finish_ok_sells_tickets_then_cancel_and_second_finish_refused)
{
    tk_uuid_t ev, rid, tid;
    event_new(ev, future(), "VIP", "3", "35000", "Std", "10", "1000", NULL);
    res_id_new(ev, rid);
    tk_line_t lines[] = {{"VIP", "2"}, {"Std", "1"}};
    expect_ok(reserve(ev, rid, HOLD_MS, lines, 2), 0);
    res_id_new(ev, tid);
    long long amount = pay_start_ok(rid, tid, GATEWAY_MS);
    expect_ok_status(pay_finish(rid, tid, "ok", ""), "COMPLETED");
    assert_invariant(ev);

    tk_type_stats_t vip = stats_type(ev, "VIP"), std = stats_type(ev, "Std");
    ck_assert(vip.avail == 1 && vip.held == 0 && vip.sold == 2);
    ck_assert(std.avail == 9 && std.held == 0 && std.sold == 1);
    tk_stats_t s;
    stats_get(ev, &s);
    ck_assert_int_eq(s.revenue, amount);
    ck_assert(s.cancelled == 0 && s.expired == 0);
    expect_txn(tid, "COMPLETED", "");
    char *blob = blob_get(rid);
    assert_status(blob, "COMPLETED");
    free(blob);
    ck_assert_int_eq(pay_has(rid), -1);
    ck_assert_int_eq(dl_has(rid), -1);

    expect_err(fcall("tk_cancel", rid, rid, NULL), "state", "COMPLETED", -1);
    expect_err(pay_finish(rid, tid, "ok", ""), "stale", "COMPLETED", -1);
    expect_err(pay_finish(rid, tid, "fail", DECLINED), "stale", "COMPLETED", -1);
    stats_get(ev, &s);
    ck_assert(s.revenue == amount && s.sold == 3 && s.held == 0 && s.cancelled == 0);
    expect_txn(tid, "COMPLETED", "");
    assert_invariant(ev);
}
END_TEST

START_TEST(test_pay_finish_fail_back_to_pending_then_retry_with_new_txn)
{
    tk_uuid_t ev, rid, t1, t2;
    event_new(ev, future(), "A", "10", "2500", NULL);
    res_id_new(ev, rid);
    tk_line_t line = {"A", "2"};
    redisReply *r = reserve(ev, rid, HOLD_MS, &line, 1);
    expect_ok(r, 1);
    long long until = r->element[2]->integer;
    freeReplyObject(r);
    res_id_new(ev, t1);
    ck_assert_int_eq(pay_start_ok(rid, t1, GATEWAY_MS), 5000);
    expect_ok_status(pay_finish(rid, t1, "fail", DECLINED), "PENDING");
    assert_invariant(ev);

    expect_txn(t1, "ERROR", DECLINED);
    char *blob = blob_get(rid);
    assert_status(blob, "PENDING");
    ck_assert_int_eq(blob_int(blob, "u"), until);
    ck_assert_ptr_nonnull(strstr(blob, DECLINED));
    free(blob);
    ck_assert_int_eq(dl_has(rid), until);
    ck_assert_int_eq(pay_has(rid), -1);
    tk_stats_t s;
    stats_get(ev, &s);
    ck_assert(s.held == 2 && s.sold == 0 && s.revenue == 0 && s.expired == 0 && s.cancelled == 0);

    /* retry with a new transaction; the old one stays failed and can no longer finish */
    res_id_new(ev, t2);
    ck_assert_int_eq(pay_start_ok(rid, t2, GATEWAY_MS), 5000);
    expect_txn(t2, "PENDING", "");
    expect_txn(t1, "ERROR", DECLINED);
    ck_assert_int_eq(dl_has(rid), -1);
    expect_err(pay_finish(rid, t1, "ok", ""), "stale", "PAYING", -1);
    expect_ok_status(pay_finish(rid, t2, "ok", ""), "COMPLETED");
    expect_txn(t2, "COMPLETED", "");
    stats_get(ev, &s);
    ck_assert(s.held == 0 && s.sold == 2 && s.revenue == 5000);
    assert_invariant(ev);
}
END_TEST

START_TEST(test_pay_finish_fail_without_message_says_payment_failed)
{
    tk_uuid_t ev, rid, tid;
    event_new(ev, future(), "A", "10", "100", NULL);
    res_id_new(ev, rid);
    tk_line_t line = {"A", "1"};
    expect_ok(reserve(ev, rid, HOLD_MS, &line, 1), 0);
    res_id_new(ev, tid);
    pay_start_ok(rid, tid, GATEWAY_MS);
    expect_ok_status(pay_finish(rid, tid, "fail", ""), "PENDING");
    expect_txn(tid, "ERROR", "Payment failed");
    assert_invariant(ev);
}
END_TEST

START_TEST(test_pay_finish_fail_after_until_expires_at_once)
{
    tk_uuid_t ev, rid, tid;
    event_new(ev, future(), "A", "10", "100", "B", "10", "300", NULL);
    res_id_new(ev, rid);
    tk_line_t lines[] = {{"A", "2"}, {"B", "1"}};
    expect_ok(reserve(ev, rid, 100, lines, 2), 0);
    res_id_new(ev, tid);
    pay_start_ok(rid, tid, GATEWAY_MS);
    sleep_ms(150);
    /* past until, but PAYING: nothing expired it */
    char *blob = blob_get(rid);
    assert_status(blob, "PAYING");
    free(blob);
    expect_ok_status(pay_finish(rid, tid, "fail", DECLINED), "CANCELLED");
    assert_invariant(ev);
    expect_txn(tid, "ERROR", DECLINED);
    blob = blob_get(rid);
    assert_status(blob, "CANCELLED");
    free(blob);
    tk_stats_t s;
    stats_get(ev, &s);
    ck_assert(s.avail == 20 && s.held == 0 && s.sold == 0 && s.expired == 3 && s.cancelled == 0 && s.revenue == 0);
    ck_assert_int_eq(dl_has(rid), -1);
    ck_assert_int_eq(pay_has(rid), -1);
    /* one outbox entry for the failure and the expiry together */
    ob_entry_t e[4];
    ck_assert_int_eq(outbox_for(rid, e, 4), 3);
    ck_assert_str_eq(e[2].st, "CANCELLED");
    ck_assert_str_eq(e[2].xst, "ERROR");
    ck_assert_str_eq(e[2].xerr, DECLINED);
    res_id_new(ev, tid);
    expect_err(pay_start(rid, tid, GATEWAY_MS), "state", "CANCELLED", -1);
}
END_TEST

START_TEST(test_paying_hold_survives_its_until_only_the_gateway_timeout_fails_it)
{
    tk_uuid_t ev, rid, tid;
    event_new(ev, future(), "A", "10", "100", NULL);
    res_id_new(ev, rid);
    tk_line_t line = {"A", "2"};
    expect_ok(reserve(ev, rid, 50, &line, 1), 0);
    res_id_new(ev, tid);
    pay_start_ok(rid, tid, "400");
    long long deadline = pay_has(rid);
    sleep_ms(120); /* until has passed, the gateway deadline has not */
    expire_sweep(ev, "200");
    char *blob = blob_get(rid);
    assert_status(blob, "PAYING");
    free(blob);
    expect_txn(tid, "PENDING", "");
    tk_stats_t s;
    stats_get(ev, &s);
    ck_assert(s.held == 2 && s.expired == 0);
    ck_assert_int_eq(pay_has(rid), deadline);
    assert_invariant(ev);

    long long wait = deadline - now_ms() + 30;
    if (wait > 0)
        sleep_ms((long)wait);
    expire_sweep(ev, "200");
    blob = blob_raw(rid);
    assert_status(blob, "CANCELLED");
    free(blob);
    expect_txn(tid, "ERROR", TIMED_OUT);
    stats_get(ev, &s);
    ck_assert(s.avail == 10 && s.held == 0 && s.sold == 0 && s.expired == 2);
    ck_assert_int_eq(pay_has(rid), -1);
    ck_assert_int_eq(dl_has(rid), -1);
    /* the gateway's late answer changes nothing */
    expect_err(pay_finish(rid, tid, "ok", ""), "stale", "CANCELLED", -1);
    stats_get(ev, &s);
    ck_assert(s.sold == 0 && s.revenue == 0);
    assert_invariant(ev);
}
END_TEST

START_TEST(test_gateway_timeout_returns_a_live_hold_to_pending)
{
    tk_uuid_t ev, rid, tid, again;
    event_new(ev, future(), "A", "10", "100", NULL);
    res_id_new(ev, rid);
    tk_line_t line = {"A", "2"};
    redisReply *r = reserve(ev, rid, HOLD_MS, &line, 1);
    expect_ok(r, 1);
    long long until = r->element[2]->integer;
    freeReplyObject(r);
    res_id_new(ev, tid);
    pay_start_ok(rid, tid, "50");
    sleep_ms(120);
    /* nothing but the sweep fails it: a read still sees PAYING */
    char *blob = blob_get(rid);
    assert_status(blob, "PAYING");
    free(blob);
    expire_sweep(ev, "200");
    blob = blob_raw(rid);
    assert_status(blob, "PENDING");
    free(blob);
    expect_txn(tid, "ERROR", TIMED_OUT);
    ck_assert_int_eq(dl_has(rid), until);
    ck_assert_int_eq(pay_has(rid), -1);
    tk_stats_t s;
    stats_get(ev, &s);
    ck_assert(s.held == 2 && s.expired == 0 && s.sold == 0);
    /* the late answer of the gateway is stale; a new attempt may start */
    expect_err(pay_finish(rid, tid, "ok", ""), "stale", "PENDING", -1);
    res_id_new(ev, again);
    pay_start_ok(rid, again, GATEWAY_MS);
    expect_txn(again, "PENDING", "");
    assert_invariant(ev);
}
END_TEST

START_TEST(test_pay_finish_with_wrong_txn_is_stale_and_changes_nothing)
{
    tk_uuid_t ev, rid, tid, wrong, pending, unknown;
    event_new(ev, future(), "A", "10", "100", NULL);
    tk_line_t line = {"A", "2"};
    res_id_new(ev, rid);
    expect_ok(reserve(ev, rid, HOLD_MS, &line, 1), 0);
    res_id_new(ev, pending);
    expect_ok(reserve(ev, pending, HOLD_MS, &line, 1), 0);
    res_id_new(ev, tid);
    pay_start_ok(rid, tid, GATEWAY_MS);
    char *inv_before = inv_snapshot(ev), *blob_before = blob_raw(rid), *pend_before = blob_raw(pending);
    long long deadline = pay_has(rid);

    res_id_new(ev, wrong);
    expect_err(pay_finish(rid, wrong, "ok", ""), "stale", "PAYING", -1);
    expect_err(pay_finish(rid, wrong, "fail", DECLINED), "stale", "PAYING", -1);
    /* no payment in flight, or no reservation at all */
    expect_err(pay_finish(pending, tid, "ok", ""), "stale", "PENDING", -1);
    res_id_new(ev, unknown);
    expect_err(pay_finish(unknown, tid, "ok", ""), "stale", "NOT_FOUND", -1);

    char *inv_after = inv_snapshot(ev), *blob_after = blob_raw(rid), *pend_after = blob_raw(pending);
    ck_assert_str_eq(inv_before, inv_after);
    ck_assert_str_eq(blob_before, blob_after);
    ck_assert_str_eq(pend_before, pend_after);
    ck_assert_int_eq(pay_has(rid), deadline);
    expect_txn(tid, "PENDING", "");
    expect_err(fcall("tk_txn", wrong, wrong, NULL), "not_found", NULL, -1);
    ck_assert_int_eq(res_exists(unknown), 0);
    assert_invariant(ev);
    free(inv_before);
    free(inv_after);
    free(blob_before);
    free(blob_after);
    free(pend_before);
    free(pend_after);
}
END_TEST

/* ---- the outbox ------------------------------------------------------------------------- */

/* entry is the whole reservation rid of ev with the tickets of the last reserve call */
static void assert_ob_whole(const ob_entry_t *e, const char *rid, const char *ev, long long created, long long until,
                            const char *const *types, const long long *prices)
{
    ck_assert_str_eq(e->r, rid);
    ck_assert_str_eq(e->e, ev);
    ck_assert_int_eq(e->c, created);
    ck_assert_int_eq(e->u, until);
    ck_assert_int_eq(e->nt, last_ntickets);
    for (int i = 0; i < e->nt; i++) {
        ck_assert_str_eq(e->t[i].id, last_tickets[i]);
        ck_assert_str_eq(e->t[i].type, types[i]);
        ck_assert_int_eq(e->t[i].price, prices[i]);
    }
}

START_TEST(test_outbox_reserve_pay_complete_three_whole_entries)
{
    static const char *const types[] = {"VIP", "VIP", "Std"};
    static const long long prices[] = {35000, 35000, 1000};
    tk_uuid_t ev, rid, tid;
    ob_entry_t e[4];
    event_new(ev, future(), "VIP", "3", "35000", "Std", "10", "1000", NULL);
    res_id_new(ev, rid);
    tk_line_t lines[] = {{"VIP", "2"}, {"Std", "1"}};
    redisReply *r = reserve(ev, rid, HOLD_MS, lines, 2);
    expect_ok(r, 1);
    long long created = r->element[1]->integer, until = r->element[2]->integer;
    freeReplyObject(r);
    ck_assert_int_eq(outbox_for(rid, e, 4), 1);
    res_id_new(ev, tid);
    pay_start_ok(rid, tid, GATEWAY_MS);
    ck_assert_int_eq(outbox_for(rid, e, 4), 2);
    expect_ok_status(pay_finish(rid, tid, "ok", ""), "COMPLETED");

    ck_assert_int_eq(outbox_for(rid, e, 4), 3);
    static const char *const want[] = {"PENDING", "PENDING", "COMPLETED"};
    for (int i = 0; i < 3; i++) {
        assert_ob_whole(&e[i], rid, ev, created, until, types, prices);
        ck_assert_str_eq(e[i].st, want[i]); /* PAYING shows as PENDING */
    }
    ck_assert_int_eq(e[0].has_x, 0);
    for (int i = 1; i < 3; i++) {
        ck_assert_int_eq(e[i].has_x, 1);
        ck_assert_str_eq(e[i].xid, tid);
        ck_assert_int_eq(e[i].amt, 71000);
        ck_assert_int_eq(e[i].has_err, 0);
        ck_assert_int_ge(e[i].d, created);
    }
    ck_assert_int_eq(e[1].d, e[2].d);
    ck_assert_str_eq(e[1].xst, "PENDING");
    ck_assert_str_eq(e[2].xst, "COMPLETED");
}
END_TEST

START_TEST(test_outbox_failed_payment_then_cancel_carries_the_error)
{
    static const char *const types[] = {"A"};
    static const long long prices[] = {700};
    tk_uuid_t ev, rid, tid;
    ob_entry_t e[5];
    event_new(ev, future(), "A", "10", "700", NULL);
    res_id_new(ev, rid);
    tk_line_t line = {"A", "1"};
    redisReply *r = reserve(ev, rid, HOLD_MS, &line, 1);
    expect_ok(r, 1);
    long long created = r->element[1]->integer, until = r->element[2]->integer;
    freeReplyObject(r);
    res_id_new(ev, tid);
    pay_start_ok(rid, tid, GATEWAY_MS);
    expect_ok_status(pay_finish(rid, tid, "fail", DECLINED), "PENDING");
    expect_ok(fcall("tk_cancel", rid, rid, NULL), 0);

    ck_assert_int_eq(outbox_for(rid, e, 5), 4);
    static const char *const want[] = {"PENDING", "PENDING", "PENDING", "CANCELLED"};
    for (int i = 0; i < 4; i++) {
        assert_ob_whole(&e[i], rid, ev, created, until, types, prices);
        ck_assert_str_eq(e[i].st, want[i]);
    }
    ck_assert_str_eq(e[1].xst, "PENDING");
    ck_assert_int_eq(e[1].has_err, 0);
    for (int i = 2; i < 4; i++) {
        ck_assert_str_eq(e[i].xid, tid);
        ck_assert_str_eq(e[i].xst, "ERROR");
        ck_assert_int_eq(e[i].has_err, 1);
        ck_assert_str_eq(e[i].xerr, DECLINED);
        ck_assert_int_eq(e[i].amt, 700);
    }
}
END_TEST

/* ---- tk_persisted and forgetting -------------------------------------------------------- */

START_TEST(test_persisted_acks_deletes_then_expire_forgets_only_finished)
{
    tk_uuid_t ev, done, open, tid;
    ob_entry_t e[8];
    char ob[32], gc[32], mdone[48], mopen[48], mtx[48];
    event_new(ev, future(), "A", "10", "100", NULL);
    shard_key(ev, "ob", ob);
    shard_key(ev, "gc", gc);
    writers_group(ob);
    tk_line_t line = {"A", "1"};
    res_id_new(ev, done);
    expect_ok(reserve(ev, done, HOLD_MS, &line, 1), 0);
    res_id_new(ev, tid);
    pay_start_ok(done, tid, GATEWAY_MS);
    expect_ok_status(pay_finish(done, tid, "ok", ""), "COMPLETED");
    res_id_new(ev, open);
    expect_ok(reserve(ev, open, HOLD_MS, &line, 1), 0);

    /* a writer reads them: they are pending in the group */
    redisReply *r = cmd("XREADGROUP GROUP writers test COUNT 100000 STREAMS %s >", ob);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    const char *ids[4];
    ck_assert_int_eq(outbox_for(done, e, 8), 3);
    ck_assert_int_eq(outbox_for(open, e + 3, 5), 1);
    for (int i = 0; i < 4; i++) {
        ids[i] = e[i].sid;
        ck_assert_msg(pending_has(ob, ids[i]), "%s not pending", ids[i]);
    }

    /* committed: acknowledged, deleted, the finished records (and a pending one by mistake) scheduled */
    snprintf(mdone, sizeof(mdone), "r:%s", done);
    snprintf(mtx, sizeof(mtx), "x:%s", tid);
    snprintf(mopen, sizeof(mopen), "r:%s", open);
    long long len = stream_len(ob);
    r = fcall("tk_persisted", ev, "0", "4", ids[0], ids[1], ids[2], ids[3], mdone, mtx, mopen, NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    ck_assert_int_eq(r->integer, 4);
    freeReplyObject(r);
    ck_assert_int_eq(stream_len(ob), len - 4);
    for (int i = 0; i < 4; i++)
        ck_assert_msg(!pending_has(ob, ids[i]), "%s still pending", ids[i]);
    ck_assert_int_eq(outbox_for(done, e, 8), 0);
    ck_assert_int_eq(outbox_for(open, e, 8), 0);

    /* the sweep forgets the finished reservation and its transaction, not the open hold */
    expire_sweep(ev, "200");
    ck_assert_int_eq(shard_hexists("res", done), 0);
    ck_assert_int_eq(shard_hexists("tx", tid), 0);
    ck_assert_ptr_null(blob_get(done));
    expect_err(fcall("tk_txn", tid, tid, NULL), "not_found", NULL, -1);
    ck_assert_int_eq(shard_hexists("res", open), 1);
    char *blob = blob_get(open);
    assert_status(blob, "PENDING");
    free(blob);
    ck_assert_int_ge(dl_has(open), 0);
    r = cmd("ZMSCORE %s %s %s %s", gc, mdone, mtx, mopen);
    for (size_t i = 0; i < r->elements; i++)
        ck_assert_int_eq(r->element[i]->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    /* inventory is not touched by forgetting */
    tk_stats_t s;
    stats_get(ev, &s);
    ck_assert(s.sold == 1 && s.held == 1 && s.avail == 8 && s.revenue == 100);
    assert_invariant(ev);
}
END_TEST

START_TEST(test_persisted_grace_keeps_records_until_it_runs_out)
{
    tk_uuid_t ev, rid;
    char gc[32], member[48];
    event_new(ev, future(), "A", "10", "100", NULL);
    shard_key(ev, "gc", gc);
    res_id_new(ev, rid);
    tk_line_t line = {"A", "1"};
    expect_ok(reserve(ev, rid, HOLD_MS, &line, 1), 0);
    expect_ok(fcall("tk_cancel", rid, rid, NULL), 0);
    snprintf(member, sizeof(member), "r:%s", rid);
    int64_t t0 = now_ms();
    redisReply *r = fcall("tk_persisted", ev, "60000", "0", member, NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    ck_assert_int_eq(r->integer, 0);
    freeReplyObject(r);
    r = cmd("ZSCORE %s %s", gc, member);
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    ck_assert_int_ge(atoll(r->str), t0 + 60000 - 5);
    ck_assert_int_le(atoll(r->str), now_ms() + 60000 + 5);
    freeReplyObject(r);
    expire_sweep(ev, "200");
    ck_assert_int_eq(shard_hexists("res", rid), 1);
    /* a malformed call (fewer ids than nids) is a Redis error */
    r = fcall("tk_persisted", ev, "0", "2", "0-1", NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}
END_TEST

/* ---- tk_stats lag_ms -------------------------------------------------------------------- */

static long long stats_lag(const char *ev)
{
    redisReply *r = fcall("tk_stats", ev, ev, NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_ge(r->elements, 9);
    ck_assert_int_eq(r->element[8]->type, REDIS_REPLY_INTEGER);
    long long lag = r->element[8]->integer;
    freeReplyObject(r);
    return lag;
}

/* lag_ms is now - the oldest entry's time, bounded by the clock read before and after the call */
static void assert_lag(const char *ev, const char *ob)
{
    long long oldest = stream_oldest_ms(ob);
    int64_t t0 = now_ms();
    long long lag = stats_lag(ev);
    int64_t t1 = now_ms();
    if (oldest < 0) {
        ck_assert_int_eq(lag, 0);
        return;
    }
    ck_assert_int_ge(lag, t0 - oldest - 5);
    ck_assert_int_le(lag, t1 - oldest + 5);
}

START_TEST(test_stats_lag_ms_is_the_age_of_the_oldest_unpersisted_entry)
{
    tk_uuid_t ev, rid;
    char ob[32];
    event_new(ev, future(), "A", "10", "100", NULL);
    shard_key(ev, "ob", ob);
    freeReplyObject(cmd("XTRIM %s MAXLEN 0", ob));
    assert_lag(ev, ob);
    if (stream_len(ob) == 0)
        ck_assert_int_eq(stats_lag(ev), 0);

    res_id_new(ev, rid);
    tk_line_t line = {"A", "1"};
    expect_ok(reserve(ev, rid, HOLD_MS, &line, 1), 0);
    sleep_ms(60);
    ck_assert_int_ge(stats_lag(ev), 50);
    assert_lag(ev, ob);

    /* once every entry is persisted, nothing lags */
    redisReply *all = cmd("XRANGE %s - +", ob);
    const char *args[MAX_ARGS];
    char nids[16];
    int n = 0;
    args[n++] = "0";
    args[n++] = nids;
    for (size_t i = 0; i < all->elements && n < MAX_ARGS; i++)
        args[n++] = all->element[i]->element[0]->str;
    snprintf(nids, sizeof(nids), "%d", n - 2);
    redisReply *r = fcall_on(rc, "tk_persisted", ev, n, args);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    ck_assert_int_eq(r->integer, n - 2);
    freeReplyObject(r);
    freeReplyObject(all);
    ck_assert_int_eq(stream_len(ob), 0);
    ck_assert_int_eq(stats_lag(ev), 0);
    assert_invariant(ev);
}
END_TEST

/* ---- race ------------------------------------------------------------------------------- */

#define RACE_PROCS 20
#define RACE_TRIES 10
#define RACE_CAP 100
#define RACE_HOLD_MS 2000

/* One racing client: waits for the start signal, then tries RACE_TRIES holds of one ticket and
 * writes the id of each granted hold to out_fd. Exit status 0 when every answer was OK or
 * "insufficient GA 0"; no check macros here (this is a grandchild of the check runner). */
static int race_client(const char *ev, int go_fd, int out_fd)
{
    char c;
    if (read(go_fd, &c, 1) < 0)
        return 3;
    redisContext *ctx = redis_connect();
    if (ctx == NULL)
        return 4;
    for (int i = 0; i < RACE_TRIES; i++) {
        tk_uuid_t rid;
        tk_line_t line = {"GA", "1"};
        res_id_new(ev, rid);
        redisReply *r = reserve_on(ctx, ev, rid, RACE_HOLD_MS, &line, 1);
        if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1)
            return 5;
        if (strcmp(r->element[0]->str, "OK") == 0) {
            if (write(out_fd, rid, UUID_LEN) != UUID_LEN)
                return 6;
        } else if (!(r->elements == 4 && strcmp(r->element[1]->str, "insufficient") == 0 && r->element[3]->integer == 0)) {
            return 7;
        }
        freeReplyObject(r);
    }
    redisFree(ctx);
    return 0;
}

START_TEST(test_race_200_clients_100_tickets_exactly_100_held)
{
    static char got[RACE_PROCS * RACE_TRIES * UUID_LEN + 1];
    tk_uuid_t ev;
    pid_t pids[RACE_PROCS];
    int go[2], out[2];
    event_new(ev, future(), "GA", "100", "2500", NULL);
    ck_assert_int_eq(pipe(go), 0);
    ck_assert_int_eq(pipe(out), 0);
    fflush(NULL);
    for (int p = 0; p < RACE_PROCS; p++) {
        pids[p] = fork();
        ck_assert_int_ne(pids[p], -1);
        if (pids[p] == 0) {
            close(go[1]);
            close(out[0]);
            _exit(race_client(ev, go[0], out[1]));
        }
    }
    close(go[0]);
    close(out[1]);
    close(go[1]); /* every client starts at once */
    size_t len = 0;
    for (ssize_t n; len < sizeof(got) - 1 && (n = read(out[0], got + len, sizeof(got) - 1 - len)) != 0;) {
        if (n < 0 && errno == EINTR)
            continue;
        ck_assert_int_gt(n, 0);
        len += (size_t)n;
    }
    close(out[0]);
    for (int p = 0; p < RACE_PROCS; p++) {
        int status;
        ck_assert_int_eq(waitpid(pids[p], &status, 0), pids[p]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "client %d: status %d", p, status);
    }

    /* exactly the capacity was granted, each id once, each ticket once */
    ck_assert_uint_eq(len, RACE_CAP * UUID_LEN);
    static char ids[RACE_CAP][UUID_LEN + 1], tickets[RACE_CAP][UUID_LEN + 1];
    const char *idp[RACE_CAP], *tkp[RACE_CAP];
    long long last_until = 0;
    for (int i = 0; i < RACE_CAP; i++) {
        memcpy(ids[i], got + (size_t)i * UUID_LEN, UUID_LEN);
        ids[i][UUID_LEN] = '\0';
        idp[i] = ids[i];
        char *blob = blob_get(ids[i]);
        ck_assert_ptr_nonnull(blob);
        assert_status(blob, "PENDING");
        const char *t = strstr(blob, "\"t\":[[\"");
        ck_assert_ptr_nonnull(t);
        memcpy(tickets[i], t + 7, UUID_LEN);
        tickets[i][UUID_LEN] = '\0';
        tkp[i] = tickets[i];
        long long u = blob_int(blob, "u");
        last_until = u > last_until ? u : last_until;
        free(blob);
    }
    qsort(idp, RACE_CAP, sizeof(*idp), cmp_str);
    qsort(tkp, RACE_CAP, sizeof(*tkp), cmp_str);
    for (int i = 1; i < RACE_CAP; i++) {
        ck_assert_str_ne(idp[i - 1], idp[i]);
        ck_assert_str_ne(tkp[i - 1], tkp[i]);
    }
    tk_type_stats_t ga = stats_type(ev, "GA");
    ck_assert(ga.avail == 0 && ga.held == RACE_CAP && ga.sold == 0);
    assert_invariant(ev);

    /* once every hold is due, the sweep alone gives everything back */
    long long wait = last_until - now_ms() + 30;
    if (wait > 0)
        sleep_ms((long)wait);
    long long swept = 0;
    for (long long n; (n = expire_sweep(ev, "50")) > 0;)
        swept += n;
    ck_assert_int_ge(swept, RACE_CAP);
    tk_stats_t s;
    stats_get(ev, &s);
    ck_assert(s.avail == RACE_CAP && s.held == 0 && s.expired == RACE_CAP && s.cancelled == 0);
    for (int i = 0; i < RACE_CAP; i++) {
        char *blob = blob_raw(ids[i]);
        assert_status(blob, "CANCELLED");
        free(blob);
    }
    assert_invariant(ev);
}
END_TEST

/* ---- runner ----------------------------------------------------------------------------- */

static int load_library(void)
{
    const char *dir = getenv("TICKETD_SOURCE_DIR");
#ifdef TK_SOURCE_DIR
    if (dir == NULL || *dir == '\0')
        dir = TK_SOURCE_DIR;
#endif
    if (dir == NULL || *dir == '\0')
        dir = ".";
    char path[4096];
    snprintf(path, sizeof(path), "%s/lua/ticketd.lua", dir);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    static char code[1 << 20];
    size_t len = fread(code, 1, sizeof(code), f);
    fclose(f);
    redisContext *c = redis_connect();
    if (c == NULL)
        return -1;
    redisReply *r = redisCommand(c, "FUNCTION LOAD REPLACE %b", code, len);
    int ok = r != NULL && r->type == REDIS_REPLY_STRING && strcmp(r->str, "ticketd") == 0;
    if (!ok)
        fprintf(stderr, "test_functions: FUNCTION LOAD %s: %s\n", path, r != NULL && r->str != NULL ? r->str : c->errstr);
    if (r != NULL)
        freeReplyObject(r);
    redisFree(c);
    return ok ? 0 : -1;
}

static Suite *functions_suite(void)
{
    Suite *s = suite_create("lua_functions");
    TCase *tc = tcase_create("functions");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_init_is_idempotent_and_keeps_live_counts);
    tcase_add_test(tc, test_avail_after_init_lists_types_in_creation_order);
    tcase_add_test(tc, test_reserve_moves_avail_to_held_and_stores_blob);
    tcase_add_test(tc, test_last_ticket_goes_once_then_insufficient_with_zero);
    tcase_add_test(tc, test_one_short_type_changes_nothing_at_all);
    tcase_add_test(tc, test_duplicate_types_are_merged_before_the_limit);
    tcase_add_test(tc, test_limit_five_ok_six_refused);
    tcase_add_test(tc, test_bad_amounts_are_refused);
    tcase_add_test(tc, test_empty_request_refused);
    tcase_add_test(tc, test_unknown_type_refused);
    tcase_add_test(tc, test_unknown_event_refused);
    tcase_add_test(tc, test_past_event_refused);
    tcase_add_test(tc, test_existing_reservation_id_refused);
    tcase_add_test(tc, test_error_precedence_type_then_limit_then_first_short);
    tcase_add_test(tc, test_malformed_calls_are_redis_errors);
    tcase_add_test(tc, test_expired_hold_reads_cancelled_with_tickets_back);
    tcase_add_test(tc, test_expire_sweeps_without_a_read);
    tcase_add_test(tc, test_paying_and_completed_never_expire_or_cancel);
    tcase_add_test(tc, test_cancel_returns_tickets_then_second_cancel_is_state_cancelled);
    tcase_add_test(tc, test_cancel_after_expiry_is_state_cancelled);
    tcase_add_test(tc, test_cancel_or_get_unknown_is_not_found);
    tcase_add_test(tc, test_stats_shape_totals_then_types);
    tcase_add_test(tc, test_pay_start_makes_pending_paying_with_amount_then_exists);
    tcase_add_test(tc, test_pay_start_unknown_is_not_found);
    tcase_add_test(tc, test_pay_start_cancelled_or_completed_is_state);
    tcase_add_test(tc, test_pay_start_on_expired_hold_is_state_cancelled);
    tcase_add_test(tc, test_pay_start_txn_outside_the_shard_is_a_redis_error);
    tcase_add_test(tc, test_pay_finish_ok_sells_tickets_then_cancel_and_second_finish_refused);
    tcase_add_test(tc, test_pay_finish_fail_back_to_pending_then_retry_with_new_txn);
    tcase_add_test(tc, test_pay_finish_fail_without_message_says_payment_failed);
    tcase_add_test(tc, test_pay_finish_fail_after_until_expires_at_once);
    tcase_add_test(tc, test_paying_hold_survives_its_until_only_the_gateway_timeout_fails_it);
    tcase_add_test(tc, test_gateway_timeout_returns_a_live_hold_to_pending);
    tcase_add_test(tc, test_pay_finish_with_wrong_txn_is_stale_and_changes_nothing);
    tcase_add_test(tc, test_outbox_reserve_pay_complete_three_whole_entries);
    tcase_add_test(tc, test_outbox_failed_payment_then_cancel_carries_the_error);
    tcase_add_test(tc, test_persisted_acks_deletes_then_expire_forgets_only_finished);
    tcase_add_test(tc, test_persisted_grace_keeps_records_until_it_runs_out);
    tcase_add_test(tc, test_stats_lag_ms_is_the_age_of_the_oldest_unpersisted_entry);
    tcase_add_test(tc, test_race_200_clients_100_tickets_exactly_100_held);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (load_library() != 0)
        return EXIT_FAILURE;
    SRunner *sr = srunner_create(functions_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
