/*
 * Support for the Lua function tests (support.h): calls, reply checks and store views over
 * one hiredis connection per test, built on the engine's own ids, keys and outbox decoder.
 */
#include "tests/lua/support.h"

#include <errno.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

redisContext *tk_lua_redis;
tk_lua_uuid_t tk_lua_last_tickets[TK_LUA_MAX_TICKETS];
int tk_lua_last_ntickets;

/* ---- plumbing --------------------------------------------------------------------------- */

int tk_lua_port(void)
{
    const char *p = getenv("TICKETD_TEST_REDIS_PORT");
    return p != NULL && *p != '\0' ? atoi(p) : 6391;
}

redisContext *tk_lua_connect(void)
{
    int port = tk_lua_port();
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c != NULL && c->err) {
        fprintf(stderr, "tests/lua: redis 127.0.0.1:%d: %s\n", port, c->errstr);
        redisFree(c);
        return NULL;
    }
    return c;
}

redisReply *tk_lua_fcall_on(redisContext *c, const char *fn, const char *id, int argc, const char **args)
{
    const char *argv[TK_LUA_MAX_ARGS];
    size_t argvlen[TK_LUA_MAX_ARGS];
    tk_shard_keys_t keys;
    tk_shard_keys(id, &keys);
    int n = tk_fcall_prefix(fn, &keys, argv, argvlen);
    for (int i = 0; i < argc && n < TK_LUA_MAX_ARGS; i++, n++) {
        argv[n] = args[i];
        argvlen[n] = strlen(args[i]);
    }
    return redisCommandArgv(c, n, argv, argvlen);
}

redisReply *tk_lua_fcall(const char *fn, const char *id, ...)
{
    const char *args[TK_LUA_MAX_ARGS];
    int n = 0;
    va_list ap;
    va_start(ap, id);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL && n < TK_LUA_MAX_ARGS;)
        args[n++] = a;
    va_end(ap);
    redisReply *r = tk_lua_fcall_on(tk_lua_redis, fn, id, n, args);
    ck_assert_msg(r != NULL, "redis: %s", tk_lua_redis->errstr);
    return r;
}

redisReply *tk_lua_reserve_on(redisContext *c, const char *ev, const char *rid, long hold_ms, const tk_lua_line_t *lines,
                              int nlines)
{
    const char *args[TK_LUA_MAX_ARGS];
    char hold[24], nl[24];
    int n = 0;
    snprintf(hold, sizeof(hold), "%ld", hold_ms);
    snprintf(nl, sizeof(nl), "%d", nlines);
    args[n++] = ev;
    args[n++] = rid;
    args[n++] = hold;
    args[n++] = TK_LUA_MAX_PER_TYPE;
    args[n++] = nl;
    tk_lua_last_ntickets = 0;
    for (int i = 0; i < nlines; i++) {
        args[n++] = lines[i].type;
        args[n++] = lines[i].amount;
    }
    for (int i = 0; i < nlines; i++) {
        char *end;
        long v = strtol(lines[i].amount, &end, 10);
        if (*lines[i].amount == '\0' || *end != '\0' || v < 1)
            continue;
        for (long k = 0; k < v && tk_lua_last_ntickets < TK_LUA_MAX_TICKETS; k++) {
            tk_uuid_v4(tk_lua_last_tickets[tk_lua_last_ntickets]);
            args[n++] = tk_lua_last_tickets[tk_lua_last_ntickets++];
        }
    }
    return tk_lua_fcall_on(c, "tk_reserve", ev, n, args);
}

redisReply *tk_lua_reserve(const char *ev, const char *rid, long hold_ms, const tk_lua_line_t *lines, int nlines)
{
    redisReply *r = tk_lua_reserve_on(tk_lua_redis, ev, rid, hold_ms, lines, nlines);
    ck_assert_msg(r != NULL, "redis: %s", tk_lua_redis->errstr);
    return r;
}

redisReply *tk_lua_cmd(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(tk_lua_redis, fmt, ap);
    va_end(ap);
    ck_assert_msg(r != NULL, "redis: %s", tk_lua_redis->errstr);
    return r;
}

/* ---- racing clients -------------------------------------------------------------------- */

int tk_lua_race_start(int nprocs, tk_lua_racer_t racer, const char *ev, pid_t *pids)
{
    int go[2], out[2];
    ck_assert_int_eq(pipe(go), 0);
    ck_assert_int_eq(pipe(out), 0);
    fflush(NULL);
    for (int p = 0; p < nprocs; ++p) {
        pids[p] = fork();
        ck_assert_int_ne(pids[p], -1);
        if (pids[p] == 0) {
            close(go[1]);
            close(out[0]);
            char c;
            if (read(go[0], &c, 1) < 0)
                _exit(2);
            redisContext *ctx = tk_lua_connect();
            if (ctx == NULL)
                _exit(3);
            int rc = racer(ctx, ev, out[1]);
            redisFree(ctx);
            _exit(rc);
        }
    }
    close(go[0]);
    close(out[1]);
    close(go[1]); /* every racer starts at once */
    return out[0];
}

void tk_lua_race_wait(int nprocs, const pid_t *pids)
{
    for (int p = 0; p < nprocs; ++p) {
        int status;
        ck_assert_int_eq(waitpid(pids[p], &status, 0), pids[p]);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "racer %d: status %d", p, status);
    }
}

/* ---- reply checks ----------------------------------------------------------------------- */

const char *tk_lua_describe(const redisReply *r, char *buf, size_t size)
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
void tk_lua_expect_ok(redisReply *r, int keep)
{
    char buf[512];
    ck_assert_msg(r->type == REDIS_REPLY_ARRAY && r->elements >= 1 && r->element[0]->type == REDIS_REPLY_STRING &&
                      strcmp(r->element[0]->str, "OK") == 0,
                  "expected OK, got %s", tk_lua_describe(r, buf, sizeof(buf)));
    if (!keep)
        freeReplyObject(r);
}

/* Reply is exactly {"ERR", reason[, arg[, avail]]} (arg NULL: none; avail < 0: none). Frees it. */
void tk_lua_expect_err(redisReply *r, const char *reason, const char *arg, long long avail)
{
    char buf[512];
    size_t want = 2 + (arg != NULL) + (avail >= 0);
    tk_lua_describe(r, buf, sizeof(buf));
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
void tk_lua_stats_get(const char *ev, tk_lua_stats_t *s)
{
    redisReply *r = tk_lua_fcall("tk_stats", ev, ev, NULL);
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

tk_lua_type_stats_t tk_lua_stats_type(const char *ev, const char *type)
{
    tk_lua_stats_t s;
    tk_lua_stats_get(ev, &s);
    for (size_t i = 0; i < s.ntypes; i++)
        if (strcmp(s.t[i].name, type) == 0)
            return s.t[i];
    ck_abort_msg("type %s not in stats", type);
    return s.t[0];
}

/* avail + held + sold == cap for every type, read raw from the hash and through tk_stats,
 * and the totals of tk_stats are the sums over the types. */
void tk_lua_assert_invariant(const char *ev)
{
    tk_lua_stats_t s;
    tk_shard_keys_t keys;
    long long cap = 0, avail = 0, held = 0, sold = 0;
    tk_lua_stats_get(ev, &s);
    tk_shard_keys(ev, &keys);
    for (size_t i = 0; i < s.ntypes; i++) {
        const tk_lua_type_stats_t *t = &s.t[i];
        redisReply *r = tk_lua_cmd("HMGET %s %s:%s:cap %s:%s:avail %s:%s:held %s:%s:sold", keys.names[TK_KEY_INV], ev, t->name, ev,
                                   t->name, ev, t->name, ev, t->name);
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

/* tk_event_init of a fresh event: tk_lua_event_new(ev, date_ms, T, cap, price, ..., NULL). */
void tk_lua_event_new(tk_lua_uuid_t ev, int64_t date_ms, ...)
{
    const char *args[TK_LUA_MAX_ARGS];
    char date[24], ntypes[24];
    int n = 3;
    va_list ap;
    tk_uuid_v4(ev);
    snprintf(date, sizeof(date), "%lld", (long long)date_ms);
    args[0] = ev;
    args[1] = date;
    args[2] = ntypes;
    va_start(ap, date_ms);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL && n < TK_LUA_MAX_ARGS;)
        args[n++] = a;
    va_end(ap);
    snprintf(ntypes, sizeof(ntypes), "%d", (n - 3) / 3);
    redisReply *r = tk_lua_fcall_on(tk_lua_redis, "tk_event_init", ev, n, args);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    ck_assert_int_eq(r->integer, (n - 3) / 3);
    freeReplyObject(r);
    tk_lua_assert_invariant(ev);
}

/* All inventory fields of ev, sorted, as one "field=value;..." string (caller frees). */
int tk_lua_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char *tk_lua_inv_snapshot(const char *ev)
{
    tk_shard_keys_t keys;
    tk_shard_keys(ev, &keys);
    redisReply *r = tk_lua_cmd("HGETALL %s", keys.names[TK_KEY_INV]);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    char **items = calloc(r->elements / 2 + 1, sizeof(*items));
    size_t n = 0, len = 1;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        if (strncmp(r->element[i]->str, ev, TK_UUID_LEN) != 0)
            continue;
        ck_assert_int_ne(asprintf(&items[n], "%s=%s;", r->element[i]->str, r->element[i + 1]->str), -1);
        len += strlen(items[n++]);
    }
    freeReplyObject(r);
    qsort(items, n, sizeof(*items), tk_lua_cmp_str);
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
char *tk_lua_blob_get(const char *rid)
{
    redisReply *r = tk_lua_fcall("tk_get", rid, rid, NULL);
    char buf[512];
    ck_assert_msg(r->type == REDIS_REPLY_ARRAY && r->elements == 2, "tk_get: %s", tk_lua_describe(r, buf, sizeof(buf)));
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
/* appends o as compact JSON (strings unescaped: the records hold ids, statuses, type
 * names without quotes, numbers) */
static void json_of(const msgpack_object *o, FILE *out)
{
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        fprintf(out, "%llu", (unsigned long long)o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        fprintf(out, "%lld", (long long)o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        fprintf(out, "%.17g", o->via.f64);
        break;
    case MSGPACK_OBJECT_STR:
        fprintf(out, "\"%.*s\"", (int)o->via.str.size, o->via.str.ptr);
        break;
    case MSGPACK_OBJECT_ARRAY:
        fputc('[', out);
        for (uint32_t i = 0; i < o->via.array.size; ++i) {
            if (i > 0)
                fputc(',', out);
            json_of(o->via.array.ptr + i, out);
        }
        fputc(']', out);
        break;
    case MSGPACK_OBJECT_MAP:
        fputc('{', out);
        for (uint32_t i = 0; i < o->via.map.size; ++i) {
            if (i > 0)
                fputc(',', out);
            json_of(&o->via.map.ptr[i].key, out);
            fputc(':', out);
            json_of(&o->via.map.ptr[i].val, out);
        }
        fputc('}', out);
        break;
    default:
        fputs("null", out);
    }
}

char *tk_lua_blob_raw(const char *rid)
{
    tk_shard_keys_t keys;
    tk_shard_keys(rid, &keys);
    redisReply *r = tk_lua_cmd("HGET %s %s", keys.names[TK_KEY_RES], rid);
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    char *blob = NULL;
    if (r->len > 0 && r->str[0] == '{') { /* a record in the cjson of earlier versions */
        blob = strdup(r->str);
    } else {
        msgpack_zone zone;
        msgpack_object root;
        size_t offset = 0, size = 0;
        msgpack_zone_init(&zone, 1024);
        ck_assert_int_eq(msgpack_unpack(r->str, r->len, &offset, &zone, &root), MSGPACK_UNPACK_SUCCESS);
        FILE *out = open_memstream(&blob, &size);
        json_of(&root, out);
        fclose(out);
        msgpack_zone_destroy(&zone);
    }
    freeReplyObject(r);
    return blob;
}

void tk_lua_assert_status(const char *blob, const char *status)
{
    char needle[64];
    snprintf(needle, sizeof(needle), "\"st\":\"%s\"", status);
    ck_assert_msg(strstr(blob, needle) != NULL, "want %s in %s", needle, blob);
}

long long tk_lua_blob_int(const char *blob, const char *key)
{
    char needle[16];
    snprintf(needle, sizeof(needle), "\"%s\":", key);
    const char *p = strstr(blob, needle);
    ck_assert_msg(p != NULL, "no %s in %s", key, blob);
    return strtoll(p + strlen(needle), NULL, 10);
}

/* The status is rewritten in the stored record as no function would (msgpack or the cjson
 * of earlier versions alike); like every transition out of PENDING it takes the hold out of
 * the deadline set and its tickets out of their held-ticket buckets, which stay held. */
static const char force_status_lua[] = "local blob = redis.call('HGET', KEYS[2], ARGV[1]) "
                                       "local rec = string.byte(blob, 1) == 123 and cjson.decode(blob) or cmsgpack.unpack(blob) "
                                       "if rec.q then "
                                       "  local n = {} "
                                       "  for _, t in ipairs(rec.t) do n[t[2]] = (n[t[2]] or 0) + 1 end "
                                       "  for t, k in pairs(n) do "
                                       "    local b = rec.u % 100 == 0 and rec.u or rec.u - rec.u % 100 + 100 "
                                       "    local f = 'q:' .. string.format('%d', b) .. ':' .. rec.e .. ':' .. t "
                                       "    if redis.call('HINCRBY', KEYS[1], f, -k) <= 0 then "
                                       "      redis.call('HDEL', KEYS[1], f) redis.call('ZREM', KEYS[3], f) end "
                                       "  end "
                                       "end "
                                       "rec.q, rec.st, rec.l, rec.r = nil, ARGV[2], nil, ARGV[1] "
                                       "redis.call('HSET', KEYS[2], ARGV[1], cmsgpack.pack(rec)) "
                                       "return redis.call('ZREM', KEYS[3], ARGV[1])";

void tk_lua_force_status(const char *rid, const char *status)
{
    tk_shard_keys_t keys;
    tk_shard_keys(rid, &keys);
    redisReply *r = tk_lua_cmd("EVAL %s 3 %s %s %s %s %s", force_status_lua, keys.names[TK_KEY_INV], keys.names[TK_KEY_RES],
                               keys.names[TK_KEY_DL], rid, status);
    ck_assert_msg(r->type == REDIS_REPLY_INTEGER, "force_status: %s", r->type == REDIS_REPLY_ERROR ? r->str : "?");
    freeReplyObject(r);
}

/* Evaluated in Redis (KEYS dl, res; ARGV rid): the record first, then dl alone, then the
 * hold lists, as HOLD LISTS in lua/ticketd.lua's header lays them out. */
static const char due_at_lua[] = "local blob = redis.call('HGET', KEYS[2], ARGV[1]) "
                                 "if not blob then return -1 end "
                                 "local rec = string.byte(blob, 1) == 123 and cjson.decode(blob) or cmsgpack.unpack(blob) "
                                 "if rec.st ~= 'PENDING' then return -1 end "
                                 "local alone = redis.call('ZSCORE', KEYS[1], ARGV[1]) "
                                 "if alone then return tonumber(alone) end "
                                 "for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(-10000000000000')) do "
                                 "  local at, list = string.match(m, '^h:(%d+):(.*)$') "
                                 "  for rid in string.gmatch(list, '[^ ]+') do "
                                 "    if rid == ARGV[1] then return tonumber(at) end "
                                 "  end "
                                 "end "
                                 "return -1";

long long tk_lua_due_at(const char *rid)
{
    tk_shard_keys_t keys;
    tk_shard_keys(rid, &keys);
    redisReply *r = tk_lua_cmd("EVAL %s 2 %s %s %s", due_at_lua, keys.names[TK_KEY_DL], keys.names[TK_KEY_RES], rid);
    ck_assert_msg(r->type == REDIS_REPLY_INTEGER, "due_at: %s", r->type == REDIS_REPLY_ERROR ? r->str : "?");
    long long at = r->integer;
    freeReplyObject(r);
    return at;
}

int tk_lua_hold_lists(const char *ev)
{
    tk_shard_keys_t keys;
    tk_shard_keys(ev, &keys);
    redisReply *r = tk_lua_cmd("ZCOUNT %s -inf (-10000000000000", keys.names[TK_KEY_DL]);
    int n = (int)r->integer;
    freeReplyObject(r);
    return n;
}

int tk_lua_res_exists(const char *rid)
{
    tk_shard_keys_t keys;
    tk_shard_keys(rid, &keys);
    redisReply *r = tk_lua_cmd("HEXISTS %s %s", keys.names[TK_KEY_RES], rid);
    int yes = (int)r->integer;
    freeReplyObject(r);
    return yes;
}

static int count_buckets(const redisReply *r, const char *ev)
{
    int n = 0;
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    for (size_t i = 0; i < r->elements; ++i)
        n += strncmp(r->element[i]->str, "q:", 2) == 0 && strstr(r->element[i]->str, ev) != NULL;
    return n;
}

int tk_lua_buckets_of(const char *ev)
{
    tk_shard_keys_t keys;
    tk_shard_keys(ev, &keys);
    redisReply *fields = tk_lua_cmd("HKEYS %s", keys.names[TK_KEY_INV]);
    redisReply *indexed = tk_lua_cmd("ZRANGEBYSCORE %s -inf (0", keys.names[TK_KEY_DL]);
    int n = count_buckets(fields, ev);
    ck_assert_int_eq(count_buckets(indexed, ev), n);
    freeReplyObject(fields);
    freeReplyObject(indexed);
    return n;
}

long long tk_lua_expire_sweep(const char *id, const char *limit)
{
    redisReply *r = tk_lua_fcall("tk_expire", id, limit, NULL);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

int64_t tk_lua_future(void)
{
    return tk_time_now_ms() + TK_LUA_DAY_MS;
}

redisReply *tk_lua_pay_start(const char *rid, const char *tid, const char *timeout_ms)
{
    return tk_lua_fcall("tk_pay_start", rid, rid, tid, timeout_ms, NULL);
}

/* tk_pay_start that must answer {"OK", tid, amount}; returns amount. */
long long tk_lua_pay_start_ok(const char *rid, const char *tid, const char *timeout_ms)
{
    redisReply *r = tk_lua_pay_start(rid, tid, timeout_ms);
    tk_lua_expect_ok(r, 1);
    ck_assert_uint_eq(r->elements, 3);
    ck_assert_int_eq(r->element[1]->type, REDIS_REPLY_STRING);
    ck_assert_str_eq(r->element[1]->str, tid);
    ck_assert_int_eq(r->element[2]->type, REDIS_REPLY_INTEGER);
    long long amount = r->element[2]->integer;
    freeReplyObject(r);
    return amount;
}

redisReply *tk_lua_pay_finish(const char *rid, const char *tid, const char *outcome, const char *msg)
{
    return tk_lua_fcall("tk_pay_finish", rid, rid, tid, outcome, msg, NULL);
}

/* Reply is exactly {"OK", status}; frees it. */
void tk_lua_expect_ok_status(redisReply *r, const char *status)
{
    char buf[512];
    tk_lua_expect_ok(r, 1);
    ck_assert_msg(r->elements == 2 && r->element[1]->type == REDIS_REPLY_STRING && strcmp(r->element[1]->str, status) == 0,
                  "expected OK %s, got %s", status, tk_lua_describe(r, buf, sizeof(buf)));
    freeReplyObject(r);
}

/* tk_txn(tid) is exactly {"OK", status, err}. */
void tk_lua_expect_txn(const char *tid, const char *status, const char *err)
{
    char buf[512];
    redisReply *r = tk_lua_fcall("tk_txn", tid, tid, NULL);
    tk_lua_expect_ok(r, 1);
    tk_lua_describe(r, buf, sizeof(buf));
    ck_assert_msg(r->elements == 3, "tk_txn: %s", buf);
    ck_assert_msg(strcmp(r->element[1]->str, status) == 0 && strcmp(r->element[2]->str, err) == 0, "tk_txn: want %s '%s', got %s",
                  status, err, buf);
    freeReplyObject(r);
}

/* The score of rid in its shard's pay set, -1 when absent. */
long long tk_lua_pay_has(const char *rid)
{
    tk_shard_keys_t keys;
    tk_shard_keys(rid, &keys);
    redisReply *r = tk_lua_cmd("ZSCORE %s %s", keys.names[TK_KEY_PAY], rid);
    long long score = r->type == REDIS_REPLY_STRING ? atoll(r->str) : -1;
    freeReplyObject(r);
    return score;
}

/* HEXISTS on the hash of id's shard with key index which (TK_KEY_RES, TK_KEY_TX). */
int tk_lua_shard_hexists(int which, const char *id)
{
    tk_shard_keys_t keys;
    tk_shard_keys(id, &keys);
    redisReply *r = tk_lua_cmd("HEXISTS %s %s", keys.names[which], id);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    int yes = (int)r->integer;
    freeReplyObject(r);
    return yes;
}

long long tk_lua_stream_len(const char *ob)
{
    redisReply *r = tk_lua_cmd("XLEN %s", ob);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

/* The millisecond part of the oldest entry of the stream ob, -1 when it is empty. */
long long tk_lua_stream_oldest_ms(const char *ob)
{
    redisReply *r = tk_lua_cmd("XRANGE %s - + COUNT 1", ob);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    long long ms = r->elements == 0 ? -1 : atoll(r->element[0]->element[0]->str);
    freeReplyObject(r);
    return ms;
}

/* ---- the outbox ------------------------------------------------------------------------- */

static int key_in(const msgpack_object *k, const char *const *names)
{
    ck_assert_int_eq(k->type, MSGPACK_OBJECT_STR);
    for (; *names != NULL; ++names)
        if (k->via.str.size == strlen(*names) && memcmp(k->via.str.ptr, *names, k->via.str.size) == 0)
            return 1;
    return 0;
}

/* tk_outbox_decode ignores unknown keys, so that the format can grow; the functions must
 * not write any but the record's own "k" (the fair-use client), "q" (counted in
 * held-ticket buckets) and "a" (held through an admission), which the entry shares with
 * the record, and no "r" (the id is the entry's own field since 2026-12-07). Fails on a
 * key outside {e, st, c, u, t, x, k, q, a} or outside x's {id, st, amt, d, err}; returns
 * whether x carries err. */
static int assert_known_keys(const char *data, size_t len)
{
    static const char *const top[] = {"e", "st", "c", "u", "t", "x", "k", "q", "a", NULL};
    static const char *const txn[] = {"id", "st", "amt", "d", "err", NULL};
    static const char *const err[] = {"err", NULL};
    msgpack_unpacked up;
    size_t off = 0;
    int has_err = 0;
    msgpack_unpacked_init(&up);
    ck_assert_int_eq(msgpack_unpack_next(&up, data, len, &off), MSGPACK_UNPACK_SUCCESS);
    ck_assert_int_eq(up.data.type, MSGPACK_OBJECT_MAP);
    for (uint32_t i = 0; i < up.data.via.map.size; i++) {
        const msgpack_object *k = &up.data.via.map.ptr[i].key, *v = &up.data.via.map.ptr[i].val;
        ck_assert_msg(key_in(k, top), "unexpected key %.*s in an outbox entry", (int)k->via.str.size, k->via.str.ptr);
        if (v->type != MSGPACK_OBJECT_MAP)
            continue;
        for (uint32_t j = 0; j < v->via.map.size; j++) {
            const msgpack_object *xk = &v->via.map.ptr[j].key;
            ck_assert_msg(key_in(xk, txn), "unexpected key %.*s in x", (int)xk->via.str.size, xk->via.str.ptr);
            has_err |= key_in(xk, err);
        }
    }
    msgpack_unpacked_destroy(&up);
    return has_err;
}

int tk_lua_outbox_for(const char *rid, tk_lua_outbox_entry_t *out, int max)
{
    tk_shard_keys_t keys;
    int n = 0;
    tk_shard_keys(rid, &keys);
    redisReply *r = tk_lua_cmd("XRANGE %s - +", keys.names[TK_KEY_OB]);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *entry = r->element[i], *fields = entry->element[1];
        ck_assert_uint_eq(fields->elements, 4); /* "r" the id, "m" the record */
        ck_assert_str_eq(fields->element[0]->str, "r");
        ck_assert_str_eq(fields->element[2]->str, "m");
        const redisReply *id = fields->element[1], *m = fields->element[3];
        tk_lua_outbox_entry_t e;
        memset(&e, 0, sizeof(e));
        snprintf(e.sid, sizeof(e.sid), "%s", entry->element[0]->str);
        /* the writer's own decoder: an entry it would refuse fails the test */
        ck_assert_msg(tk_outbox_decode_entry(id->str, id->len, m->str, m->len, &e.rec) == 0,
                      "outbox entry %s is not one the writer accepts", e.sid);
        e.has_err = assert_known_keys(m->str, m->len);
        ck_assert_uint_le(e.rec.ntickets, TK_LUA_OUTBOX_MAX_TICKETS);
        e.ntickets = (int)e.rec.ntickets;
        memcpy(e.tickets, e.rec.tickets, e.rec.ntickets * sizeof(*e.tickets));
        tk_outbox_record_dispose(&e.rec);
        if (strcmp(e.rec.rid, rid) != 0)
            continue;
        ck_assert_int_lt(n, max);
        out[n++] = e;
    }
    freeReplyObject(r);
    return n;
}

/* Creates the consumer group "writers" of ob unless it exists. */
void tk_lua_writers_group(const char *ob)
{
    redisReply *r = tk_lua_cmd("XGROUP CREATE %s writers 0 MKSTREAM", ob);
    ck_assert_msg(r->type == REDIS_REPLY_STATUS || (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) == 0),
                  "XGROUP CREATE: %s", r->str);
    freeReplyObject(r);
}

/* Whether the stream entry sid is in the pending list of the group "writers". */
int tk_lua_pending_has(const char *ob, const char *sid)
{
    redisReply *r = tk_lua_cmd("XPENDING %s writers %s %s 10", ob, sid, sid);
    ck_assert_int_eq(r->type, REDIS_REPLY_ARRAY);
    int yes = r->elements > 0;
    freeReplyObject(r);
    return yes;
}

/* ---- runner ----------------------------------------------------------------------------- */

static void setup(void)
{
    tk_lua_redis = tk_lua_connect();
    ck_assert_msg(tk_lua_redis != NULL, "cannot connect to the test Redis");
}

static void teardown(void)
{
    if (tk_lua_redis != NULL)
        redisFree(tk_lua_redis);
    tk_lua_redis = NULL;
}

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
    redisContext *c = tk_lua_connect();
    if (c == NULL)
        return -1;
    redisReply *r = redisCommand(c, "FUNCTION LOAD REPLACE %b", code, len);
    int ok = r != NULL && r->type == REDIS_REPLY_STRING && strcmp(r->str, "ticketd") == 0;
    if (!ok)
        fprintf(stderr, "tests/lua: FUNCTION LOAD %s: %s\n", path, r != NULL && r->str != NULL ? r->str : c->errstr);
    if (r != NULL)
        freeReplyObject(r);
    redisFree(c);
    return ok ? 0 : -1;
}

int tk_lua_run(const char *name, void (*add)(TCase *tc))
{
    if (load_library() != 0)
        return EXIT_FAILURE;
    Suite *s = suite_create(name);
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    add(tc);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
