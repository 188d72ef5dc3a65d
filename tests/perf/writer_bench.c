/*
 * writer_bench: the persistence writer's batch, (a) tk_persist_batch from engine/persist.c
 * (COPY into temporary staging tables, then INSERT … SELECT DISTINCT ON … ON CONFLICT,
 * one transaction per batch), measured against (b) libpq 15 pipeline mode (one prepared
 * INSERT … ON CONFLICT per row, BEGIN … COMMIT and one PQpipelineSync per batch) with
 * the same merge rules; and (a') tk_persist_batch over staging tables the bench creates
 * beforehand with bounded column types (no TOAST tables; see bounded_staging_sql).
 *
 *   writer_bench URL [-n records] [-r repetitions] [-b batch[,batch…]] [-s schema.sql]
 *
 * URL names any database of a PostgreSQL 15 server we may create databases on. The
 * program creates a scratch database (ticketd_wbench_<pid>), applies the schema (default
 * sql/001_initial.sql), inserts one event and its ticket types and generates the records:
 * each is msgpack-encoded and decoded by tk_outbox_decode, as the writer receives them.
 * First, untimed, every approach writes a history with stale and out-of-order versions
 * of each reservation and must end with the tables that the final versions alone give.
 * Then, per repetition and batch size, alternating which approach goes first, each
 * approach writes the records into freshly truncated tables and then replays them; the
 * replay must leave the row counts and a checksum of every row unchanged, and every run
 * must produce the same checksum. Drops the scratch database at the end (also on error).
 * Prints every run, then a markdown summary (medians, min–max, paired ratios).
 */
#include "engine/money.h"
#include "engine/outbox.h"
#include "engine/persist.h"
#include "engine/timefmt.h"
#include "engine/uuid.h"
#include "tests/support/outbox_pack.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_BATCH_SIZES 8
#define MAX_REPS 16
#define CHECK_RECORDS 2000 /* records in the untimed equivalence check */
#define CHECK_BATCH 100

enum { APPROACH_COPY = 0, APPROACH_BOUNDED = 1, APPROACH_PIPELINE = 2, NAPPROACHES };
enum { PHASE_WRITE = 0, PHASE_REPLAY = 1, NPHASES };
static const char *const approach_names[] = {"(a) COPY+merge", "(a') COPY+merge, bounded staging", "(b) pipeline"};
static const char *const phase_names[] = {"write", "replay"};

static const char *const type_names[] = {"Standard", "VIP", "Student"};
static const int64_t type_prices[] = {35000, 120000, 12050};
#define NTYPES (sizeof(type_names) / sizeof(type_names[0]))

/*
 * (a'): tk_persist_batch unchanged, on a connection where the staging tables already
 * exist (its CREATE TEMP TABLE IF NOT EXISTS then skips) with bounded types instead of
 * text and numeric. Bounded rows need no TOAST table, and truncating a temporary table
 * with its TOAST table and TOAST index at every commit (ON COMMIT DELETE ROWS) is a
 * fixed cost per batch. Same column names and order, so the same COPY rows and merge.
 * engine/persist.c has declared these types itself since, so (a') now measures what (a)
 * does; it stays so README.md's tables can be reproduced.
 */
static const char bounded_staging_sql[] =
    "CREATE TEMP TABLE stage_reservations (seq int, id uuid, event_id uuid, status varchar(16), "
    "reservation_date timestamptz, pending_until timestamptz) ON COMMIT DELETE ROWS;"
    "CREATE TEMP TABLE stage_tickets (id uuid, reservation_id uuid, event_id uuid, type varchar(64), price numeric(12,2)) "
    "ON COMMIT DELETE ROWS;"
    "CREATE TEMP TABLE stage_transactions (seq int, id uuid, reservation_id uuid, status varchar(16), amount numeric(12,2), "
    "date timestamptz, error_type varchar(200)) ON COMMIT DELETE ROWS";

static const char res_sql[] = "INSERT INTO reservations (id, event_id, status, reservation_date, pending_until) "
                              "VALUES ($1, $2, $3, $4, $5) "
                              "ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, updated_at = now() "
                              "WHERE reservations.status = 'PENDING' AND EXCLUDED.status <> 'PENDING'";
static const char ticket_sql[] = "INSERT INTO ordered_tickets (id, reservation_id, event_id, type, price) "
                                 "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING";
static const char txn_sql[] = "INSERT INTO transactions (id, reservation_id, status, amount, date, error_type) "
                              "VALUES ($1, $2, $3, $4, $5, $6) "
                              "ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, error_type = EXCLUDED.error_type "
                              "WHERE transactions.status = 'PENDING' AND EXCLUDED.status <> 'PENDING'";

/* row counts and an md5 of every row's content (updated_at aside), in id order */
static const char checksum_sql[] =
    "SELECT (SELECT count(*) FROM reservations), (SELECT count(*) FROM ordered_tickets), "
    "(SELECT count(*) FROM transactions), md5("
    "(SELECT coalesce(string_agg(concat_ws('|', id, event_id, status, reservation_date, pending_until), ',' ORDER BY id), '') "
    "FROM reservations) || '#' || "
    "(SELECT coalesce(string_agg(concat_ws('|', id, reservation_id, event_id, type, price), ',' ORDER BY id), '') "
    "FROM ordered_tickets) || '#' || "
    "(SELECT coalesce(string_agg(concat_ws('|', id, reservation_id, status, amount, date, coalesce(error_type, '<null>')), ',' "
    "ORDER BY id), '') FROM transactions))";

typedef struct st_bench_state_t {
    const char *url;
    char dbname[64];
    int db_created;
    PGconn *maint; /* the URL's database: CREATE / DROP DATABASE */
    PGconn *admin; /* the scratch database: schema, TRUNCATE, checks */
    PGconn *writer[NAPPROACHES];
} bench_state_t;

static bench_state_t state;

typedef struct st_table_sum_t {
    long long reservations, tickets, transactions;
    char md5[33];
} table_sum_t;

static void cleanup(void)
{
    for (int a = 0; a < NAPPROACHES; ++a)
        if (state.writer[a] != NULL)
            PQfinish(state.writer[a]);
    if (state.admin != NULL)
        PQfinish(state.admin);
    state.admin = NULL;
    for (int a = 0; a < NAPPROACHES; ++a)
        state.writer[a] = NULL;
    if (state.db_created && state.maint != NULL) {
        char sql[128];
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", state.dbname);
        PGresult *res = PQexec(state.maint, sql);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            fprintf(stderr, "writer_bench: could not drop %s: %s", state.dbname, PQerrorMessage(state.maint));
        PQclear(res);
        state.db_created = 0;
    }
    if (state.maint != NULL)
        PQfinish(state.maint);
    state.maint = NULL;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("writer_bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1); /* cleanup() runs from atexit */
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* as engine/pg.c: server notices ("relation … already exists, skipping") are dropped */
static void drop_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* a connection set up as tk_pg_connect sets up the writer's, to dbname when not NULL */
static PGconn *connect_to(const char *url, const char *dbname)
{
    const char *keys[] = {"dbname", "dbname", "application_name", NULL};
    const char *values[] = {url, dbname, "writer_bench", NULL};
    if (dbname == NULL) {
        keys[1] = "application_name";
        values[1] = "writer_bench";
        keys[2] = values[2] = NULL;
    }
    PGconn *conn = PQconnectdbParams(keys, values, 1);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "writer_bench: cannot connect: %s", PQerrorMessage(conn));
        PQfinish(conn);
        exit(1);
    }
    PQsetNoticeProcessor(conn, drop_notice, NULL);
    PQclear(PQexec(conn, "SET TIME ZONE 'UTC'"));
    return conn;
}

static void exec_or_die(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
        die("%.80s…: %s", sql, PQerrorMessage(conn));
    PQclear(res);
}

/* the first value of a one-row query, copied into out */
static void query_value(PGconn *conn, const char *sql, char *out, size_t outsize)
{
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        die("%s: %s", sql, PQerrorMessage(conn));
    snprintf(out, outsize, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        die("cannot open %s (run from the repository root or pass -s)", path);
    size_t cap = 1 << 16, len = 0, got;
    char *buf = malloc(cap);
    while (buf != NULL && (got = fread(buf + len, 1, cap - len - 1, f)) > 0)
        if ((len += got) == cap - 1)
            buf = realloc(buf, cap *= 2);
    fclose(f);
    if (buf == NULL)
        abort();
    buf[len] = '\0';
    return buf;
}

/* --- synthetic outbox records --------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)((rng >> 32) % n);
}

/*
 * Record i in its final state: 1–3 tickets; 50 % COMPLETED with a COMPLETED payment,
 * 10 % CANCELLED after a failed payment (ERROR), 10 % CANCELLED without one, 20 %
 * PENDING, 10 % PENDING with the payment under way (PENDING transaction).
 */
static void generate(tk_outbox_record_t *out, size_t n, const char *event, int64_t base_ms)
{
    msgpack_sbuffer sbuf;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sbuf);
    msgpack_packer_init(&pk, &sbuf, msgpack_sbuffer_write);
    for (size_t i = 0; i < n; ++i) {
        tk_outbox_record_t r;
        tk_outbox_ticket_t tickets[3];
        memset(&r, 0, sizeof(r));
        memset(tickets, 0, sizeof(tickets));
        tk_uuid_v4_in_shard(r.rid, event);
        snprintf(r.event, sizeof(r.event), "%s", event);
        r.created_ms = base_ms + (int64_t)i * 37;
        r.until_ms = r.created_ms + 10 * 60 * 1000;
        r.tickets = tickets;
        r.ntickets = 1 + rnd(3);
        for (size_t j = 0; j < r.ntickets; ++j) {
            uint32_t t = rnd(NTYPES);
            tk_uuid_v4(tickets[j].id);
            snprintf(tickets[j].type, sizeof(tickets[j].type), "%s", type_names[t]);
            tickets[j].price_minor = type_prices[t];
            r.txn_amount_minor += type_prices[t];
        }
        uint32_t kind = rnd(10);
        const char *status = kind < 5 ? "COMPLETED" : kind < 7 ? "CANCELLED" : "PENDING";
        snprintf(r.status, sizeof(r.status), "%s", status);
        r.has_txn = kind < 5 || kind == 5 || kind == 9;
        if (r.has_txn) {
            tk_uuid_v4(r.txn_id);
            snprintf(r.txn_status, sizeof(r.txn_status), "%s", kind < 5 ? "COMPLETED" : kind == 5 ? "ERROR" : "PENDING");
            if (kind == 5)
                snprintf(r.txn_error, sizeof(r.txn_error), "%s", "Payment failed: card declined");
            r.txn_date_ms = r.created_ms + 30 * 1000;
        }
        msgpack_sbuffer_clear(&sbuf);
        tk_test_pack_record(&pk, &r, 1);
        if (tk_outbox_decode(sbuf.data, sbuf.size, out + i) != 0 || strcmp(out[i].rid, r.rid) != 0 ||
            out[i].ntickets != r.ntickets || out[i].has_txn != r.has_txn)
            die("record %zu does not survive tk_outbox_decode", i);
    }
    msgpack_sbuffer_destroy(&sbuf);
}

/* the earlier outbox entry of the same reservation: still PENDING, payment (if any) PENDING */
static tk_outbox_record_t early_version(const tk_outbox_record_t *final)
{
    tk_outbox_record_t e = *final; /* shares final's tickets */
    snprintf(e.status, sizeof(e.status), "%s", "PENDING");
    if (e.has_txn) {
        snprintf(e.txn_status, sizeof(e.txn_status), "%s", "PENDING");
        e.txn_error[0] = '\0';
    }
    return e;
}

/* --- the two writers ------------------------------------------------------------- */

static int write_copy(PGconn *conn, const tk_outbox_record_t *recs, size_t n, char *err, size_t errsize)
{
    return tk_persist_batch(conn, recs, n, err, errsize);
}

static void prepare_pipeline(PGconn *conn)
{
    const char *names[] = {"wb_res", "wb_ticket", "wb_txn"};
    const char *sqls[] = {res_sql, ticket_sql, txn_sql};
    for (int i = 0; i < 3; ++i) {
        PGresult *res = PQprepare(conn, names[i], sqls[i], 0, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            die("prepare %s: %s", names[i], PQerrorMessage(conn));
        PQclear(res);
    }
}

/*
 * One batch through the pipeline: BEGIN, per record its reservation, each ticket and its
 * transaction, COMMIT, then one Sync; the results are read after the Sync. libpq reads
 * the server's replies into its buffer whenever a send would block, so sending a whole
 * batch before reading cannot deadlock. After an error the server skips the rest up to
 * the Sync and the transaction block is left failed; it is rolled back.
 */
static int write_pipeline(PGconn *conn, const tk_outbox_record_t *recs, size_t n, char *err, size_t errsize)
{
    int ok = PQenterPipelineMode(conn);
    ok = ok && PQsendQueryParams(conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0);
    for (size_t i = 0; ok && i < n; ++i) {
        const tk_outbox_record_t *r = recs + i;
        char created[TK_RFC3339_MAX], until[TK_RFC3339_MAX], date[TK_RFC3339_MAX], money[32];
        tk_time_format_rfc3339(r->created_ms, created, sizeof(created));
        tk_time_format_rfc3339(r->until_ms, until, sizeof(until));
        const char *rp[] = {r->rid, r->event, r->status, created, until};
        ok = PQsendQueryPrepared(conn, "wb_res", 5, rp, NULL, NULL, 0);
        for (size_t j = 0; ok && j < r->ntickets; ++j) {
            tk_money_format_sql(r->tickets[j].price_minor, money, sizeof(money));
            const char *tp[] = {r->tickets[j].id, r->rid, r->event, r->tickets[j].type, money};
            ok = PQsendQueryPrepared(conn, "wb_ticket", 5, tp, NULL, NULL, 0);
        }
        if (ok && r->has_txn) {
            tk_money_format_sql(r->txn_amount_minor, money, sizeof(money));
            tk_time_format_rfc3339(r->txn_date_ms, date, sizeof(date));
            const char *xp[] = {r->txn_id, r->rid, r->txn_status, money, date, r->txn_error[0] != '\0' ? r->txn_error : NULL};
            ok = PQsendQueryPrepared(conn, "wb_txn", 6, xp, NULL, NULL, 0);
        }
    }
    ok = ok && PQsendQueryParams(conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) && PQpipelineSync(conn);
    if (!ok) {
        snprintf(err, errsize, "pipeline send: %s", PQerrorMessage(conn));
        return -1; /* the connection is not usable any more for this benchmark */
    }

    int failed = 0, nulls = 0;
    for (;;) {
        PGresult *res = PQgetResult(conn);
        if (res == NULL) {
            if (++nulls > 1) { /* two in a row: nothing more will come */
                snprintf(err, errsize, "pipeline ended before its sync: %s", PQerrorMessage(conn));
                return -1;
            }
            continue;
        }
        nulls = 0;
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            break;
        }
        if (st != PGRES_COMMAND_OK && !failed) {
            failed = 1;
            snprintf(err, errsize, "pipeline: %s", st == PGRES_PIPELINE_ABORTED ? "aborted" : PQresultErrorMessage(res));
        }
        PQclear(res);
    }
    if (!PQexitPipelineMode(conn)) {
        snprintf(err, errsize, "exit pipeline: %s", PQerrorMessage(conn));
        return -1;
    }
    if (failed || PQtransactionStatus(conn) != PQTRANS_IDLE) {
        PQclear(PQexec(conn, "ROLLBACK"));
        if (!failed)
            snprintf(err, errsize, "pipeline: transaction left open");
        return -1;
    }
    return 0;
}

typedef int (*writer_fn)(PGconn *, const tk_outbox_record_t *, size_t, char *, size_t);
static const writer_fn writers[] = {write_copy, write_copy, write_pipeline};

/* writes recs in batches of batch with approach a; returns the elapsed seconds */
static double write_all(int a, const tk_outbox_record_t *recs, size_t n, size_t batch)
{
    char err[1024];
    double t0 = now_s();
    for (size_t i = 0; i < n; i += batch) {
        size_t k = n - i < batch ? n - i : batch;
        if (writers[a](state.writer[a], recs + i, k, err, sizeof(err)) != 0)
            die("%s, batch at record %zu: %s", approach_names[a], i, err);
    }
    return now_s() - t0;
}

/* --- checks ---------------------------------------------------------------------- */

static void fresh_tables(void)
{
    exec_or_die(state.admin, "TRUNCATE reservations, ordered_tickets, transactions");
    exec_or_die(state.admin, "CHECKPOINT");
}

static table_sum_t table_sum(void)
{
    table_sum_t s;
    PGresult *res = PQexec(state.admin, checksum_sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        die("checksum: %s", PQerrorMessage(state.admin));
    s.reservations = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    s.tickets = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    s.transactions = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    snprintf(s.md5, sizeof(s.md5), "%s", PQgetvalue(res, 0, 3));
    PQclear(res);
    return s;
}

static int same_sum(const table_sum_t *x, const table_sum_t *y)
{
    return x->reservations == y->reservations && x->tickets == y->tickets && x->transactions == y->transactions &&
           strcmp(x->md5, y->md5) == 0;
}

/*
 * Both approaches write, in batches of CHECK_BATCH: the early (PENDING) versions of the
 * first half; then every reservation as a pair in one batch (final then early for even
 * i, early then final for odd i); then a stale replay of every early version. Each must
 * end with what the final versions alone give, and the two approaches must agree.
 */
static void check_equivalence(const tk_outbox_record_t *recs, size_t n)
{
    size_t m = n < CHECK_RECORDS ? n : CHECK_RECORDS, len = 0;
    tk_outbox_record_t *history = malloc(sizeof(*history) * 4 * m);
    if (history == NULL)
        abort();
    for (size_t i = 0; i < m / 2; ++i)
        history[len++] = early_version(recs + i);
    for (size_t i = 0; i < m; ++i) {
        history[len++] = i % 2 == 0 ? recs[i] : early_version(recs + i);
        history[len++] = i % 2 == 0 ? early_version(recs + i) : recs[i];
    }
    for (size_t i = 0; i < m; ++i)
        history[len++] = early_version(recs + i);

    table_sum_t expected = {0}, got;
    for (int a = 0; a < NAPPROACHES; ++a) {
        fresh_tables();
        write_all(a, recs, m, CHECK_BATCH);
        got = table_sum();
        if (a == 0)
            expected = got;
        else if (!same_sum(&got, &expected))
            die("equivalence: %s and %s disagree on the final versions", approach_names[0], approach_names[a]);
        fresh_tables();
        write_all(a, history, len, CHECK_BATCH);
        got = table_sum();
        if (!same_sum(&got, &expected))
            die("equivalence: %s ends elsewhere after a history with stale versions", approach_names[a]);
    }
    printf("equivalence check: %zu reservations, %zu outbox entries with stale and out-of-order versions, "
           "every approach ends with the final state (%lld/%lld/%lld rows, md5 %s)\n",
           m, len, expected.reservations, expected.tickets, expected.transactions, expected.md5);
    free(history);
}

/* --- setup, runs and the summary --------------------------------------------------- */

static void setup_database(const char *schema_path, char *event)
{
    state.maint = connect_to(state.url, NULL);
    snprintf(state.dbname, sizeof(state.dbname), "ticketd_wbench_%d", (int)getpid());
    char sql[160];
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", state.dbname);
    exec_or_die(state.maint, sql);
    state.db_created = 1;

    state.admin = connect_to(state.url, state.dbname);
    char *schema = read_file(schema_path);
    exec_or_die(state.admin, schema);
    free(schema);

    tk_uuid_v4(event);
    const char *ep[] = {event};
    PGresult *res =
        PQexecParams(state.admin, "INSERT INTO events (id, name, date) VALUES ($1, 'writer bench', '2031-06-01T19:00:00Z')", 1,
                     NULL, ep, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        die("insert event: %s", PQerrorMessage(state.admin));
    PQclear(res);
    for (size_t t = 0; t < NTYPES; ++t) {
        char id[TK_UUID_LEN + 1], price[32], position[8];
        tk_uuid_v4(id);
        tk_money_format_sql(type_prices[t], price, sizeof(price));
        snprintf(position, sizeof(position), "%zu", t);
        const char *tp[] = {id, event, type_names[t], price, position};
        res = PQexecParams(
            state.admin,
            "INSERT INTO ticket_types (id, event_id, type, price, amount, position) VALUES ($1, $2, $3, $4, 1000000, $5)", 5, NULL,
            tp, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            die("insert ticket type: %s", PQerrorMessage(state.admin));
        PQclear(res);
    }
    for (int a = 0; a < NAPPROACHES; ++a)
        state.writer[a] = connect_to(state.url, state.dbname);
    exec_or_die(state.writer[APPROACH_BOUNDED], bounded_staging_sql);
    prepare_pipeline(state.writer[APPROACH_PIPELINE]);
}

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* the first line of /proc/loadavg, with its newline */
static void load_average(char *out, size_t outsize)
{
    FILE *f = fopen("/proc/loadavg", "r");
    if (f == NULL || fgets(out, (int)outsize, f) == NULL)
        snprintf(out, outsize, "?\n");
    if (f != NULL)
        fclose(f);
}

/* median and 90th percentile of 200 "SELECT 1" round trips, in microseconds: how busy the machine is */
static void round_trip(double *median_us, double *p90_us)
{
    double v[200];
    for (int i = 0; i < 200; ++i) {
        double t0 = now_s();
        PQclear(PQexec(state.admin, "SELECT 1"));
        v[i] = (now_s() - t0) * 1e6;
    }
    qsort(v, 200, sizeof(double), cmp_double);
    *median_us = v[100];
    *p90_us = v[180];
}

static void print_environment(void)
{
    char version[256], value[64], load[128];
    query_value(state.admin, "SELECT version()", version, sizeof(version));
    printf("server: %s\n", version);
    printf("libpq: %d; settings:", PQlibVersion());
    const char *settings[] = {"shared_buffers", "synchronous_commit", "fsync", "wal_level", "max_wal_size"};
    for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); ++i) {
        char sql[64];
        snprintf(sql, sizeof(sql), "SHOW %s", settings[i]);
        query_value(state.admin, sql, value, sizeof(value));
        printf(" %s=%s", settings[i], value);
    }
    load_average(load, sizeof(load));
    double rtt, rtt90;
    round_trip(&rtt, &rtt90);
    printf("\nclient: %ld online CPUs, load average %sround trip (SELECT 1): median %.0f µs, p90 %.0f µs\n",
           sysconf(_SC_NPROCESSORS_ONLN), load, rtt, rtt90);
}

static double median(const double *v, int n)
{
    double s[MAX_REPS];
    memcpy(s, v, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static void min_max(const double *v, int n, double *lo, double *hi)
{
    *lo = *hi = v[0];
    for (int i = 1; i < n; ++i) {
        *lo = v[i] < *lo ? v[i] : *lo;
        *hi = v[i] > *hi ? v[i] : *hi;
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: writer_bench URL [-n records] [-r repetitions] [-b batch[,batch...]] [-s schema.sql]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    size_t n = 20000, batches[MAX_BATCH_SIZES] = {100, 1000}, nbatches = 2;
    int reps = 3, opt;
    const char *schema_path = "sql/001_initial.sql";
    while ((opt = getopt(argc, argv, "n:r:b:s:")) != -1) {
        switch (opt) {
        case 'n':
            n = strtoul(optarg, NULL, 10);
            break;
        case 'r':
            reps = atoi(optarg);
            break;
        case 'b':
            nbatches = 0;
            for (char *p = strtok(optarg, ","); p != NULL && nbatches < MAX_BATCH_SIZES; p = strtok(NULL, ","))
                batches[nbatches++] = strtoul(p, NULL, 10);
            break;
        case 's':
            schema_path = optarg;
            break;
        default:
            usage();
        }
    }
    if (optind != argc - 1 || n == 0 || reps < 1 || reps > MAX_REPS || nbatches == 0)
        usage();
    for (size_t b = 0; b < nbatches; ++b)
        if (batches[b] == 0)
            usage();
    state.url = argv[optind];
    atexit(cleanup);
    setvbuf(stdout, NULL, _IOLBF, 0);

    char event[TK_UUID_LEN + 1];
    setup_database(schema_path, event);
    print_environment();

    tk_outbox_record_t *recs = calloc(n, sizeof(*recs));
    if (recs == NULL)
        abort();
    generate(recs, n, event, tk_time_now_ms());
    long long rows = 0, nres = (long long)n, ntickets = 0, ntxns = 0;
    for (size_t i = 0; i < n; ++i) {
        ntickets += (long long)recs[i].ntickets;
        ntxns += recs[i].has_txn;
    }
    rows = nres + ntickets + ntxns;
    printf("records: %zu reservations, %lld tickets, %lld transactions = %lld rows; %d repetitions\n", n, ntickets, ntxns, rows,
           reps);

    check_equivalence(recs, n);

    /* secs[rep][batch size][approach][phase] */
    static double secs[MAX_REPS][MAX_BATCH_SIZES][NAPPROACHES][NPHASES];
    table_sum_t reference = {0};
    int have_reference = 0;
    printf("\nrep  B     approach                         phase   seconds  records/s  rows/s\n");
    for (int rep = 0; rep < reps; ++rep) {
        for (size_t b = 0; b < nbatches; ++b) {
            for (int k = 0; k < NAPPROACHES; ++k) {
                /* (a), (a'), (b) then (b), (a'), (a): (a) and (b) take turns going first */
                int a = rep % 2 == 0 ? k : NAPPROACHES - 1 - k;
                fresh_tables();
                for (int p = 0; p < NPHASES; ++p) {
                    double s = write_all(a, recs, n, batches[b]);
                    secs[rep][b][a][p] = s;
                    table_sum_t got = table_sum();
                    if (got.reservations != nres || got.tickets != ntickets || got.transactions != ntxns)
                        die("%s %s: row counts %lld/%lld/%lld, expected %lld/%lld/%lld", approach_names[a], phase_names[p],
                            got.reservations, got.tickets, got.transactions, nres, ntickets, ntxns);
                    if (!have_reference) {
                        reference = got;
                        have_reference = 1;
                    } else if (!same_sum(&got, &reference)) {
                        die("%s %s (B=%zu): tables differ from the first run", approach_names[a], phase_names[p], batches[b]);
                    }
                    printf("%-4d %-5zu %-32s %-7s %7.3f %10.0f %7.0f\n", rep + 1, batches[b], approach_names[a], phase_names[p], s,
                           (double)n / s, (double)rows / s);
                }
            }
        }
    }
    printf("every run and replay: %lld/%lld/%lld rows, md5 %s\n", nres, ntickets, ntxns, reference.md5);

    printf("\n## Summary (N = %zu records = %lld rows, %d repetitions; median, min–max)\n\n", n, rows, reps);
    printf("| B | approach | phase | records/s | rows/s | range rows/s |\n|---|---|---|---|---|---|\n");
    for (size_t b = 0; b < nbatches; ++b)
        for (int p = 0; p < NPHASES; ++p)
            for (int a = 0; a < NAPPROACHES; ++a) {
                double v[MAX_REPS], lo, hi;
                for (int r = 0; r < reps; ++r)
                    v[r] = (double)rows / secs[r][b][a][p];
                min_max(v, reps, &lo, &hi);
                double med = median(v, reps);
                printf("| %zu | %s | %s | %.0f | %.0f | %.0f–%.0f |\n", batches[b], approach_names[a], phase_names[p],
                       med * (double)n / (double)rows, med, lo, hi);
            }
    printf("\nSpeed ratios, each from runs of the same repetition (> 1: COPY+merge is faster than pipeline).\n\n"
           "| B | phase | ratio | per repetition | median |\n|---|---|---|---|---|\n");
    for (size_t b = 0; b < nbatches; ++b)
        for (int p = 0; p < NPHASES; ++p)
            for (int a = APPROACH_COPY; a <= APPROACH_BOUNDED; ++a) {
                double ratio[MAX_REPS];
                printf("| %zu | %s | %s / (b) |", batches[b], phase_names[p], a == APPROACH_COPY ? "(a)" : "(a')");
                for (int r = 0; r < reps; ++r) {
                    ratio[r] = secs[r][b][APPROACH_PIPELINE][p] / secs[r][b][a][p];
                    printf(" %.2f", ratio[r]);
                }
                printf(" | %.2f× |\n", median(ratio, reps));
            }

    for (size_t i = 0; i < n; ++i)
        tk_outbox_record_dispose(recs + i);
    free(recs);
    char load[128];
    double rtt, rtt90;
    load_average(load, sizeof(load));
    round_trip(&rtt, &rtt90);
    printf("\nat the end: load average %sround trip (SELECT 1): median %.0f µs, p90 %.0f µs\n", load, rtt, rtt90);
    return 0; /* cleanup() drops the scratch database */
}
