/*
 * Support for the tests of the Redis function library lua/ticketd.lua (tests/lua/test_*.c),
 * run against a real Redis 7 at 127.0.0.1:$TICKETD_TEST_REDIS_PORT (default 6391).
 * tk_lua_run loads the library with FUNCTION LOAD REPLACE from
 * $TICKETD_SOURCE_DIR/lua/ticketd.lua (else TK_SOURCE_DIR) and runs one suite, each test
 * on a fresh connection (tk_lua_redis). Tests make fresh random event and reservation ids,
 * so runs never collide and the database is never flushed.
 *
 * Nothing the engine already knows is re-implemented here: ids come from engine/uuid.c,
 * key names and the FCALL prefix from engine/inventory.c (tk_shard_keys, tk_fcall_prefix),
 * clocks and sleeps from engine/timefmt.c, and outbox entries are read with
 * engine/outbox.c's decoder, the one the writer uses. What is left is the test's own view
 * of replies: it checks the shapes the functions promise, independently of the engine's
 * reply parsers.
 */
#ifndef TK_TESTS_LUA_SUPPORT_H
#define TK_TESTS_LUA_SUPPORT_H

#include "engine/inventory.h"
#include "engine/outbox.h"
#include "engine/timefmt.h"
#include "engine/uuid.h"

#include <check.h>
#include <hiredis/hiredis.h>
#include <stdint.h>
#include <sys/types.h>

#define TK_LUA_MAX_PER_TYPE "5"
#define TK_LUA_HOLD_MS 60000
#define TK_LUA_MAX_ARGS 256
#define TK_LUA_MAX_TICKETS 64 /* tickets remembered from the last reserve call */
#define TK_LUA_DAY_MS 86400000LL
#define TK_LUA_GATEWAY_MS "30000"
#define TK_LUA_DECLINED "Your card has been declined"
#define TK_LUA_TIMED_OUT "Payment gateway timed out"
#define TK_LUA_OUTBOX_MAX_TICKETS 8

typedef char tk_lua_uuid_t[TK_UUID_LEN + 1];

typedef struct st_tk_lua_line_t {
    const char *type;
    const char *amount;
} tk_lua_line_t;

typedef struct st_tk_lua_type_stats_t {
    char name[32];
    long long cap, avail, held, sold;
} tk_lua_type_stats_t;

typedef struct st_tk_lua_stats_t {
    long long cap, avail, held, sold, cancelled, expired, revenue;
    size_t ntypes;
    tk_lua_type_stats_t t[8];
} tk_lua_stats_t;

/* One outbox entry: its stream id and the record as the writer decodes it (tickets copied in). */
typedef struct st_tk_lua_outbox_entry_t {
    char sid[48];
    tk_outbox_record_t rec; /* rec.tickets is NULL: the tickets are below */
    tk_outbox_ticket_t tickets[TK_LUA_OUTBOX_MAX_TICKETS];
    int ntickets;
    int has_err; /* the transaction map carries the key "err" */
} tk_lua_outbox_entry_t;

/* the test's connection (set up before, freed after each test) */
extern redisContext *tk_lua_redis;
/* ticket ids sent with the last reserve call of this process */
extern tk_lua_uuid_t tk_lua_last_tickets[TK_LUA_MAX_TICKETS];
extern int tk_lua_last_ntickets;

/* Loads the library and runs one suite named name; add adds its tests. Returns main's status. */
int tk_lua_run(const char *name, void (*add)(TCase *tc));
redisContext *tk_lua_connect(void);
/* the test Redis' port ($TICKETD_TEST_REDIS_PORT, default 6391) */
int tk_lua_port(void);

/* ---- calls ---- */
/* FCALL fn with the seven keys of id's shard and args; NULL on a connection error */
redisReply *tk_lua_fcall_on(redisContext *c, const char *fn, const char *id, int argc, const char **args);
/* tk_lua_fcall(fn, id, arg, ..., NULL) on the test's connection */
redisReply *tk_lua_fcall(const char *fn, const char *id, ...);
/* tk_reserve with one fresh ticket id per ticket of every well-formed amount */
redisReply *tk_lua_reserve_on(redisContext *c, const char *ev, const char *rid, long hold_ms, const tk_lua_line_t *lines,
                              int nlines);
redisReply *tk_lua_reserve(const char *ev, const char *rid, long hold_ms, const tk_lua_line_t *lines, int nlines);
redisReply *tk_lua_cmd(const char *fmt, ...);

/* ---- reply checks ---- */
const char *tk_lua_describe(const redisReply *r, char *buf, size_t size);
/* reply is {"OK", ...}; frees it unless keep */
void tk_lua_expect_ok(redisReply *r, int keep);
/* reply is exactly {"ERR", reason[, arg[, avail]]} (arg NULL: none; avail < 0: none); frees it */
void tk_lua_expect_err(redisReply *r, const char *reason, const char *arg, long long avail);
/* reply is exactly {"OK", status}; frees it */
void tk_lua_expect_ok_status(redisReply *r, const char *status);

/* ---- racing clients ---- */
/* A racing client (a grandchild of the check runner: no check macros): plays on its own
 * connection c, writes what it won to out; 0 when all went as it should (its exit status). */
typedef int (*tk_lua_racer_t)(redisContext *c, const char *ev, int out);
/* Forks nprocs racers of ev (pids[nprocs]), each connected once the start signal came, so
 * that they start at once; returns the read end of their common output pipe. A racer that
 * cannot start exits with 2 (no signal) or 3 (no connection). */
int tk_lua_race_start(int nprocs, tk_lua_racer_t racer, const char *ev, pid_t *pids);
/* Waits for every racer and asserts that each exited with 0. */
void tk_lua_race_wait(int nprocs, const pid_t *pids);

/* ---- inventory ---- */
void tk_lua_stats_get(const char *ev, tk_lua_stats_t *s);
tk_lua_type_stats_t tk_lua_stats_type(const char *ev, const char *type);
/* avail + held + sold == cap for every type, raw and through tk_stats; totals are the sums */
void tk_lua_assert_invariant(const char *ev);
/* tk_event_init of a fresh event: tk_lua_event_new(ev, date_ms, T, cap, price, ..., NULL) */
void tk_lua_event_new(tk_lua_uuid_t ev, int64_t date_ms, ...);
/* a day from now */
int64_t tk_lua_future(void);
/* strcmp for qsort over an array of strings */
int tk_lua_cmp_str(const void *a, const void *b);
/* all inventory fields of ev, sorted, as one "field=value;..." string (caller frees) */
char *tk_lua_inv_snapshot(const char *ev);

/* ---- reservations ---- */
/* the blob as tk_get returns it (caller frees), or NULL when not_found */
char *tk_lua_blob_get(const char *rid);
/* the stored record, read without running any function (so without lazy expiry), as
 * compact JSON like tk_get's */
char *tk_lua_blob_raw(const char *rid);
void tk_lua_assert_status(const char *blob, const char *status);
long long tk_lua_blob_int(const char *blob, const char *key);
/* replaces the record's status; as the payment code does, the hold leaves dl and its buckets */
void tk_lua_force_status(const char *rid, const char *status);
/* When the sweeper would release rid: the deadline of the hold list that names it
 * (lua/ticketd.lua, HOLD LISTS), or its own score when dl indexes it alone (as versions
 * before 2026-12-07 did); -1 when dl names it nowhere or its record is not PENDING (a
 * list skips those) */
long long tk_lua_due_at(const char *rid);
/* the hold lists in the deadline set of ev's shard */
int tk_lua_hold_lists(const char *ev);
int tk_lua_res_exists(const char *rid);
/* the held-ticket buckets of ev ("q:B:ev:T" fields of its tk:{s}:inv); asserts that dl
 * indexes exactly those */
int tk_lua_buckets_of(const char *ev);
long long tk_lua_expire_sweep(const char *id, const char *limit);

/* ---- payments ---- */
redisReply *tk_lua_pay_start(const char *rid, const char *tid, const char *timeout_ms);
/* tk_pay_start that must answer {"OK", tid, amount}; returns amount */
long long tk_lua_pay_start_ok(const char *rid, const char *tid, const char *timeout_ms);
redisReply *tk_lua_pay_finish(const char *rid, const char *tid, const char *outcome, const char *msg);
/* tk_txn(tid) is exactly {"OK", status, err} */
void tk_lua_expect_txn(const char *tid, const char *status, const char *err);
/* the score of rid in its shard's pay set, -1 when absent */
long long tk_lua_pay_has(const char *rid);
/* HEXISTS on the hash of id's shard with key index which (TK_KEY_RES, TK_KEY_TX) */
int tk_lua_shard_hexists(int which, const char *id);

/* ---- the outbox ---- */
long long tk_lua_stream_len(const char *ob);
/* the millisecond part of the oldest entry of the stream ob, -1 when it is empty */
long long tk_lua_stream_oldest_ms(const char *ob);
/* the outbox entries of reservation rid, oldest first, at most max; returns how many */
int tk_lua_outbox_for(const char *rid, tk_lua_outbox_entry_t *out, int max);
/* creates the consumer group "writers" of ob unless it exists */
void tk_lua_writers_group(const char *ob);
/* whether the stream entry sid is in the pending list of the group "writers" */
int tk_lua_pending_has(const char *ob, const char *sid);

#endif
