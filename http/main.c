/*
 * ticketd's entry point: parse the command line and the environment, refuse unsafe
 * production settings, connect to PostgreSQL and Redis (failing fast with one line
 * naming what and where), migrate the schema, load the Redis functions, load demo data
 * in development, publish the catalog, then serve.
 */
#include "engine/background.h"
#include "engine/config.h"
#include "engine/log.h"
#include "engine/metrics.h"
#include "engine/startup.h"
#include "http/idempotency.h"
#include "http/jsonr.h"
#include "http/respond.h"
#include "http/router.h"
#include "http/server.h"

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#define WRITER_DRAIN_MS 5000 /* after the server's drain, how long the writer may take to empty the outbox */

static const char usage[] = "usage: ticketd [--demo] [--check-config] [--help] [--version]\n"
                            "\n"
                            "A booking engine for on-sales: h2o HTTP in front, Redis for live inventory and holds,\n"
                            "PostgreSQL for the durable record. Configured by the environment:\n"
                            "\n"
                            "  TICKETD_ENV                 production (default) or development\n"
                            "  TICKETD_LISTEN              address and port (127.0.0.1:8000)\n"
                            "  TICKETD_REDIS_URL           redis://[:password@]host[:port][/db] (redis://127.0.0.1:6379/0)\n"
                            "  TICKETD_PG_URL              libpq connection string or URI (postgresql:///ticketd)\n"
                            "  TICKETD_ADMIN_TOKEN         admin bearer token; production: at least 32 characters, unset\n"
                            "                              refuses all admin requests; development: generated and printed\n"
                            "  TICKETD_SECRET              key signing sessionid cookies; production: required, at least\n"
                            "                              32 bytes, the same in every process; development: random\n"
                            "  TICKETD_HOLD_SECONDS        how long a hold lasts (900)\n"
                            "  TICKETD_MAX_PER_TYPE        tickets of one type per reservation (5)\n"
                            "  TICKETD_THREADS             HTTP event-loop threads (number of cores)\n"
                            "  TICKETD_PAYMENT_LATENCY_MS  simulated payment gateway delay (200)\n"
                            "  TICKETD_LOG_LEVEL           debug, info, warn or error (info)\n"
                            "  TICKETD_MAX_INFLIGHT        Redis commands in flight per loop before writes get 503 (4096)\n"
                            "  TICKETD_CLIENT_MAX_HOLDS    live holds per client, per event shard (20; 0: no limit)\n"
                            "  TICKETD_CLIENT_HOLD_RATE    hold requests per second per client, bursts of twice that\n"
                            "                              (10; 0: no limit)\n"
                            "  TICKETD_TRUSTED_PROXIES     proxies (addresses or CIDR ranges, comma-separated) whose\n"
                            "                              X-Forwarded-For is believed (none)\n"
                            "  TICKETD_OUTBOX_PAUSE        unpersisted outbox entries of a shard that pause its new holds\n"
                            "                              (200000; 0: never)\n"
                            "  TICKETD_HTTP2               1 accepts HTTP/2 over cleartext (0: HTTP/1.1 only)\n"
                            "  TICKETD_METRICS_TOKEN       bearer token for /metrics; production: at least 32\n"
                            "                              characters, unset refuses every scrape; development: open\n"
                            "                              unless set\n"
                            "  TICKETD_MAX_CONNECTIONS     open connections (what the open-file limit leaves room for)\n"
                            "  TICKETD_REDIS_CLUSTER       Redis Cluster seed nodes HOST:PORT,... (unset: one Redis at\n"
                            "                              TICKETD_REDIS_URL, which a cluster setting overrides)\n"
                            "\n"
                            "  --demo          load demo events into an empty database (development only)\n"
                            "  --check-config  print the effective settings and whether production would start;\n"
                            "                  exit 0 when it would, 1 when not\n";

static const char *process_getenv(const char *name, void *ctx)
{
    return getenv(name);
}

static int check_config(const tk_config_t *config, int demo)
{
    char problems[8][256];
    size_t nproblems = tk_config_production_problems(config, demo, problems, 8);
    tk_config_print(config, stdout);
    printf("\nchecks for production:\n");
    for (size_t i = 0; i < nproblems; ++i)
        printf("FAIL  %s\n", problems[i]);
    if (config->secret_len >= TK_SECRET_MIN_LEN)
        printf("ok    TICKETD_SECRET is set (%zu bytes)\n", config->secret_len);
    if (config->admin_token_len == 0)
        printf("ok    TICKETD_ADMIN_TOKEN is unset: admin routes refuse everyone\n");
    else if (config->admin_token_len >= TK_ADMIN_TOKEN_MIN_LEN)
        printf("ok    TICKETD_ADMIN_TOKEN is set (%zu characters)\n", config->admin_token_len);
    if (config->metrics_token_len == 0)
        printf("ok    TICKETD_METRICS_TOKEN is unset: /metrics refuses everyone\n");
    else if (config->metrics_token_len >= TK_METRICS_TOKEN_MIN_LEN)
        printf("ok    TICKETD_METRICS_TOKEN is set (%zu characters)\n", config->metrics_token_len);
    size_t failures = nproblems + (size_t)tk_startup_check_stores(config, stdout);
    if (failures == 0)
        printf("\nverdict: production would start\n");
    else
        printf("\nverdict: production would refuse to start (%zu problem%s)\n", failures, failures == 1 ? "" : "s");
    return failures == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {{"demo", no_argument, NULL, 'd'},
                                            {"check-config", no_argument, NULL, 'c'},
                                            {"help", no_argument, NULL, 'h'},
                                            {"version", no_argument, NULL, 'v'},
                                            {NULL, 0, NULL, 0}};
    int demo = 0, want_check = 0, opt;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 'd':
            demo = 1;
            break;
        case 'c':
            want_check = 1;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        case 'v':
            printf("ticketd %s\n", TICKETD_VERSION);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "ticketd: unexpected argument '%s'\n%s", argv[optind], usage);
        return 2;
    }

    tk_config_t config;
    char err[512];
    if (tk_config_load(&config, process_getenv, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "ticketd: %s\n", err);
        return 1;
    }
    tk_log_init(config.log_level, config.env == TK_ENV_PRODUCTION ? TK_LOG_JSON : TK_LOG_TEXT);
    if (want_check)
        return check_config(&config, demo);

    if (config.env == TK_ENV_PRODUCTION) {
        char problems[1][256];
        if (tk_config_production_problems(&config, demo, problems, 1) != 0) {
            fprintf(stderr, "ticketd: refusing to start in production: %s\n", problems[0]);
            return 1;
        }
    }
    int generated_token = config.env == TK_ENV_DEVELOPMENT && config.admin_token_len == 0;
    if (config.env == TK_ENV_DEVELOPMENT)
        tk_config_fill_development(&config);

    /* the port first: a busy one is the only thing reported, before any store is touched */
    if (tk_server_bind(&config, tk_router_on_req, tk_router_slot) != 0)
        return 1;
    tk_router_name_metrics();
    tk_respond_set_observer(tk_idempotency_on_respond);
    if (tk_startup_prepare_stores(&config, err, sizeof(err)) != 0) {
        fprintf(stderr, "ticketd: %s\n", err);
        return 1;
    }

    /* printed once, deliberately, so the dashboard and the README's curl tour work; not a log line */
    if (generated_token) {
        printf("ticketd development admin token (valid until restart): %.*s\n", (int)config.admin_token_len, config.admin_token);
        fflush(stdout);
    }
    tk_jsonr_init();
    /* SIGINT/SIGTERM belong to the server's sigwait: block them before any thread exists,
     * so every thread inherits the mask and none can be killed by them mid-drain */
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    if (tk_background_start(&config) != 0) {
        fprintf(stderr, "ticketd: cannot start background threads\n");
        return 1;
    }
    int status = tk_server_run();
    tk_background_stop(WRITER_DRAIN_MS);
    return status;
}
