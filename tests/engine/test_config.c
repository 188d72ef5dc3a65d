/*
 * Unit tests of engine/config: loading the TICKETD_* environment through a fake getenv,
 * the parsers of its compound values, the production checks, development defaults and
 * the printout of `ticketd --check-config`.
 */
#include "engine/config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct st_env_entry_t {
    const char *name;
    const char *value;
} env_entry_t;

/* the fake getenv: ctx is a table ending in {NULL, NULL} */
static const char *fake_getenv(const char *name, void *ctx)
{
    for (const env_entry_t *e = ctx; e != NULL && e->name != NULL; ++e) {
        if (strcmp(e->name, name) == 0)
            return e->value;
    }
    return NULL;
}

static const env_entry_t empty_env[] = {{NULL, NULL}};

static const char secret40[] = "0123456789abcdef0123456789abcdef01234567";
static const char token33[] = "tok-0123456789abcdef0123456789abc";

static const env_entry_t full_env[] = {
    {"TICKETD_ENV", "development"},
    {"TICKETD_LISTEN", "0.0.0.0:9090"},
    {"TICKETD_REDIS_URL", "redis://:redispw@cache.local:6380/3"},
    {"TICKETD_PG_URL", "postgresql://app:pgpw@db.local/ticketd"},
    {"TICKETD_ADMIN_TOKEN", token33},
    {"TICKETD_SECRET", secret40},
    {"TICKETD_HOLD_SECONDS", "600"},
    {"TICKETD_MAX_PER_TYPE", "10"},
    {"TICKETD_THREADS", "3"},
    {"TICKETD_PAYMENT_LATENCY_MS", "0"},
    {"TICKETD_LOG_LEVEL", "debug"},
    {"TICKETD_MAX_INFLIGHT", "64"},
    {"TICKETD_CLIENT_MAX_HOLDS", "7"},
    {"TICKETD_CLIENT_HOLD_RATE", "0"},
    {"TICKETD_TRUSTED_PROXIES", " 10.0.0.0/8, 192.0.2.1,::1 "},
    {"TICKETD_OUTBOX_PAUSE", "1000"},
    {"TICKETD_HTTP2", "1"},
    {"TICKETD_METRICS_TOKEN", token33},
    {"TICKETD_MAX_CONNECTIONS", "500"},
    {"TICKETD_REDIS_CLUSTER", "10.0.0.1:7001, 10.0.0.2:7002"},
    {NULL, NULL},
};

static char err[512];

static int load(const env_entry_t *env, tk_config_t *cfg)
{
    err[0] = '\0';
    return tk_config_load(cfg, fake_getenv, (void *)env, err, sizeof(err));
}

/* loads an environment of one variable and expects it to be refused with an error naming it */
static void assert_refused(const char *name, const char *value)
{
    env_entry_t env[] = {{name, value}, {NULL, NULL}};
    tk_config_t cfg;
    ck_assert_msg(load(env, &cfg) == -1, "%s=%s was accepted", name, value);
    ck_assert_msg(strncmp(err, name, strlen(name)) == 0, "error for %s=%s does not name it: %s", name, value, err);
}

static void assert_accepted(const char *name, const char *value, tk_config_t *cfg)
{
    env_entry_t env[] = {{name, value}, {NULL, NULL}};
    ck_assert_msg(load(env, cfg) == 0, "%s=%s was refused: %s", name, value, err);
    ck_assert_str_eq(err, "");
}

/* ---- defaults and sources ---- */

START_TEST(test_load_empty_environment_gives_documented_defaults)
{
    tk_config_t cfg;
    ck_assert_int_eq(load(empty_env, &cfg), 0);
    ck_assert_int_eq(cfg.env, TK_ENV_PRODUCTION);
    ck_assert_str_eq(cfg.listen_host, "127.0.0.1");
    ck_assert_uint_eq(cfg.listen_port, 8000);
    ck_assert_str_eq(cfg.redis_url, "redis://127.0.0.1:6379/0");
    ck_assert_str_eq(cfg.redis.host, "127.0.0.1");
    ck_assert_uint_eq(cfg.redis.port, 6379);
    ck_assert_int_eq(cfg.redis.db, 0);
    ck_assert_str_eq(cfg.redis.password, "");
    ck_assert_str_eq(cfg.pg_url, "postgresql:///ticketd");
    ck_assert_uint_eq(cfg.admin_token_len, 0);
    ck_assert_str_eq(cfg.admin_token, "");
    ck_assert_uint_eq(cfg.secret_len, 0);
    ck_assert_str_eq(cfg.secret, "");
    ck_assert_int_eq(cfg.hold_seconds, 900);
    ck_assert_int_eq(cfg.max_per_type, 5);
    ck_assert_int_eq(cfg.payment_latency_ms, 200);
    ck_assert_int_eq(cfg.log_level, TK_LOG_INFO);
    ck_assert_int_eq(cfg.max_inflight, 4096);
}
END_TEST

START_TEST(test_load_default_threads_is_number_of_cores_clamped)
{
    tk_config_t cfg;
    ck_assert_int_eq(load(empty_env, &cfg), 0);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int expected = cores < 1 ? 1 : cores > 256 ? 256 : (int)cores;
    ck_assert_int_eq(cfg.threads, expected);
    ck_assert_int_ge(cfg.threads, 1);
    ck_assert_int_le(cfg.threads, 256);
}
END_TEST

START_TEST(test_load_empty_environment_marks_every_source_default)
{
    tk_config_t cfg;
    ck_assert_int_eq(load(empty_env, &cfg), 0);
    for (int i = 0; i < TK_SET__COUNT; ++i)
        ck_assert_msg(cfg.source[i] == TK_SOURCE_DEFAULT, "%s is not from the default", tk_setting_name((tk_setting_t)i));
}
END_TEST

START_TEST(test_load_full_environment_takes_every_value)
{
    tk_config_t cfg;
    ck_assert_int_eq(load(full_env, &cfg), 0);
    ck_assert_int_eq(cfg.env, TK_ENV_DEVELOPMENT);
    ck_assert_str_eq(cfg.listen_host, "0.0.0.0");
    ck_assert_uint_eq(cfg.listen_port, 9090);
    ck_assert_str_eq(cfg.redis_url, "redis://:redispw@cache.local:6380/3");
    ck_assert_str_eq(cfg.redis.host, "cache.local");
    ck_assert_uint_eq(cfg.redis.port, 6380);
    ck_assert_int_eq(cfg.redis.db, 3);
    ck_assert_str_eq(cfg.redis.password, "redispw");
    ck_assert_str_eq(cfg.pg_url, "postgresql://app:pgpw@db.local/ticketd");
    ck_assert_str_eq(cfg.admin_token, token33);
    ck_assert_uint_eq(cfg.admin_token_len, strlen(token33));
    ck_assert_str_eq(cfg.secret, secret40);
    ck_assert_uint_eq(cfg.secret_len, strlen(secret40));
    ck_assert_int_eq(cfg.hold_seconds, 600);
    ck_assert_int_eq(cfg.max_per_type, 10);
    ck_assert_int_eq(cfg.threads, 3);
    ck_assert_int_eq(cfg.payment_latency_ms, 0);
    ck_assert_int_eq(cfg.log_level, TK_LOG_DEBUG);
    ck_assert_int_eq(cfg.max_inflight, 64);
    ck_assert_int_eq(cfg.client_max_holds, 7);
    ck_assert_int_eq(cfg.client_hold_rate, 0);
    ck_assert_int_eq(cfg.outbox_pause, 1000);
    ck_assert_uint_eq(cfg.ntrusted_proxies, 3);
    tk_netaddr_t a;
    ck_assert_int_eq(tk_netaddr_parse("10.200.3.4", strlen("10.200.3.4"), &a), 0);
    ck_assert(tk_netaddr_in(&a, cfg.trusted_proxies, cfg.ntrusted_proxies));
    ck_assert_int_eq(tk_netaddr_parse("[::ffff:192.0.2.1]:80", strlen("[::ffff:192.0.2.1]:80"), &a), 0);
    ck_assert(tk_netaddr_in(&a, cfg.trusted_proxies, cfg.ntrusted_proxies));
    ck_assert_int_eq(tk_netaddr_parse("192.0.2.2", strlen("192.0.2.2"), &a), 0);
    ck_assert(!tk_netaddr_in(&a, cfg.trusted_proxies, cfg.ntrusted_proxies));
}
END_TEST

START_TEST(test_load_rejects_bad_fair_use_settings)
{
    static const char *const bad[][2] = {{"TICKETD_CLIENT_MAX_HOLDS", "-1"},         {"TICKETD_CLIENT_HOLD_RATE", "ten"},
                                         {"TICKETD_TRUSTED_PROXIES", "10.0.0.0/33"}, {"TICKETD_TRUSTED_PROXIES", "proxy.local"},
                                         {"TICKETD_TRUSTED_PROXIES", "10.0.0.1,,"},  {"TICKETD_OUTBOX_PAUSE", "1e6"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        env_entry_t env[] = {{bad[i][0], bad[i][1]}, {NULL, NULL}};
        tk_config_t cfg;
        ck_assert_int_eq(load(env, &cfg), -1);
        ck_assert_msg(strstr(err, bad[i][0]) != NULL, "error for %s=%s does not name it: %s", bad[i][0], bad[i][1], err);
    }
    tk_config_t cfg;
    env_entry_t none[] = {{NULL, NULL}};
    ck_assert_int_eq(load(none, &cfg), 0);
    ck_assert_int_eq(cfg.client_max_holds, 20);
    ck_assert_int_eq(cfg.client_hold_rate, 10);
    ck_assert_uint_eq(cfg.ntrusted_proxies, 0);
}
END_TEST

START_TEST(test_load_full_environment_marks_every_source_environment)
{
    tk_config_t cfg;
    ck_assert_int_eq(load(full_env, &cfg), 0);
    for (int i = 0; i < TK_SET__COUNT; ++i)
        ck_assert_msg(cfg.source[i] == TK_SOURCE_ENVIRONMENT, "%s is not from the environment", tk_setting_name((tk_setting_t)i));
}
END_TEST

START_TEST(test_load_empty_value_counts_as_unset)
{
    env_entry_t env[] = {{"TICKETD_HOLD_SECONDS", ""}, {"TICKETD_SECRET", ""}, {NULL, NULL}};
    tk_config_t cfg;
    ck_assert_int_eq(load(env, &cfg), 0);
    ck_assert_int_eq(cfg.hold_seconds, 900);
    ck_assert_int_eq(cfg.source[TK_SET_HOLD_SECONDS], TK_SOURCE_DEFAULT);
    ck_assert_uint_eq(cfg.secret_len, 0);
    ck_assert_int_eq(cfg.source[TK_SET_SECRET], TK_SOURCE_DEFAULT);
}
END_TEST

START_TEST(test_setting_names_are_the_environment_variables)
{
    ck_assert_str_eq(tk_setting_name(TK_SET_ENV), "TICKETD_ENV");
    ck_assert_str_eq(tk_setting_name(TK_SET_LISTEN), "TICKETD_LISTEN");
    ck_assert_str_eq(tk_setting_name(TK_SET_REDIS_URL), "TICKETD_REDIS_URL");
    ck_assert_str_eq(tk_setting_name(TK_SET_PG_URL), "TICKETD_PG_URL");
    ck_assert_str_eq(tk_setting_name(TK_SET_ADMIN_TOKEN), "TICKETD_ADMIN_TOKEN");
    ck_assert_str_eq(tk_setting_name(TK_SET_SECRET), "TICKETD_SECRET");
    ck_assert_str_eq(tk_setting_name(TK_SET_HOLD_SECONDS), "TICKETD_HOLD_SECONDS");
    ck_assert_str_eq(tk_setting_name(TK_SET_MAX_PER_TYPE), "TICKETD_MAX_PER_TYPE");
    ck_assert_str_eq(tk_setting_name(TK_SET_THREADS), "TICKETD_THREADS");
    ck_assert_str_eq(tk_setting_name(TK_SET_PAYMENT_LATENCY_MS), "TICKETD_PAYMENT_LATENCY_MS");
    ck_assert_str_eq(tk_setting_name(TK_SET_LOG_LEVEL), "TICKETD_LOG_LEVEL");
}
END_TEST

/* ---- parse errors, each naming the variable ---- */

START_TEST(test_load_refuses_unknown_env)
{
    assert_refused("TICKETD_ENV", "staging");
    ck_assert_ptr_nonnull(strstr(err, "staging"));
    assert_refused("TICKETD_ENV", "Production");
}
END_TEST

START_TEST(test_load_refuses_bad_listen_forms)
{
    assert_refused("TICKETD_LISTEN", "nohost");
    assert_refused("TICKETD_LISTEN", "h:0");
    assert_refused("TICKETD_LISTEN", "h:65536");
    assert_refused("TICKETD_LISTEN", "h:");
    assert_refused("TICKETD_LISTEN", "h:80x");
    assert_refused("TICKETD_LISTEN", "[::1:80");
}
END_TEST

START_TEST(test_load_refuses_bad_redis_url)
{
    assert_refused("TICKETD_REDIS_URL", "http://127.0.0.1:6379/0");
    assert_refused("TICKETD_REDIS_URL", "redis://127.0.0.1:6379/16");
    assert_refused("TICKETD_REDIS_URL", "redis://");
}
END_TEST

START_TEST(test_load_takes_cluster_seeds)
{
    tk_config_t cfg;
    ck_assert_int_eq(load(full_env, &cfg), 0);
    ck_assert_uint_eq(cfg.ncluster_seeds, 2);
    ck_assert_str_eq(cfg.cluster_seeds[0].host, "10.0.0.1");
    ck_assert_uint_eq(cfg.cluster_seeds[0].port, 7001);
    ck_assert_str_eq(cfg.cluster_seeds[1].host, "10.0.0.2");
    ck_assert_uint_eq(cfg.cluster_seeds[1].port, 7002);
    ck_assert_int_eq(load(empty_env, &cfg), 0);
    ck_assert_uint_eq(cfg.ncluster_seeds, 0);
}
END_TEST

START_TEST(test_load_refuses_bad_cluster_seeds)
{
    assert_refused("TICKETD_REDIS_CLUSTER", "127.0.0.1");
    assert_refused("TICKETD_REDIS_CLUSTER", "127.0.0.1:0");
    assert_refused("TICKETD_REDIS_CLUSTER", "127.0.0.1:7001,");
    assert_refused("TICKETD_REDIS_CLUSTER", "redis://127.0.0.1:7001");
    assert_refused("TICKETD_REDIS_CLUSTER", "127.0.0.1:7001/2");
    assert_refused("TICKETD_REDIS_CLUSTER", ",,");
    ck_assert_ptr_nonnull(strstr(err, "TICKETD_REDIS_CLUSTER"));
}
END_TEST

START_TEST(test_load_refuses_hold_seconds_zero)
{
    assert_refused("TICKETD_HOLD_SECONDS", "0");
}
END_TEST

START_TEST(test_load_refuses_hold_seconds_not_a_number)
{
    assert_refused("TICKETD_HOLD_SECONDS", "abc");
    assert_refused("TICKETD_HOLD_SECONDS", "90s");
    assert_refused("TICKETD_HOLD_SECONDS", " 90");
    assert_refused("TICKETD_HOLD_SECONDS", "+90");
    assert_refused("TICKETD_HOLD_SECONDS", "-");
}
END_TEST

START_TEST(test_load_refuses_hold_seconds_over_a_day)
{
    assert_refused("TICKETD_HOLD_SECONDS", "86401");
    assert_refused("TICKETD_HOLD_SECONDS", "99999999999999999999");
}
END_TEST

START_TEST(test_load_accepts_hold_seconds_bounds)
{
    tk_config_t cfg;
    assert_accepted("TICKETD_HOLD_SECONDS", "1", &cfg);
    ck_assert_int_eq(cfg.hold_seconds, 1);
    assert_accepted("TICKETD_HOLD_SECONDS", "86400", &cfg);
    ck_assert_int_eq(cfg.hold_seconds, 86400);
}
END_TEST

START_TEST(test_load_refuses_bad_max_per_type)
{
    assert_refused("TICKETD_MAX_PER_TYPE", "0");
    assert_refused("TICKETD_MAX_PER_TYPE", "-1");
    assert_refused("TICKETD_MAX_PER_TYPE", "1001");
    assert_refused("TICKETD_MAX_PER_TYPE", "five");
}
END_TEST

START_TEST(test_load_refuses_bad_threads)
{
    assert_refused("TICKETD_THREADS", "0");
    assert_refused("TICKETD_THREADS", "257");
    assert_refused("TICKETD_THREADS", "two");
    tk_config_t cfg;
    assert_accepted("TICKETD_THREADS", "256", &cfg);
    ck_assert_int_eq(cfg.threads, 256);
}
END_TEST

START_TEST(test_load_refuses_bad_payment_latency)
{
    assert_refused("TICKETD_PAYMENT_LATENCY_MS", "-1");
    assert_refused("TICKETD_PAYMENT_LATENCY_MS", "60001");
    assert_refused("TICKETD_PAYMENT_LATENCY_MS", "1.5");
    tk_config_t cfg;
    assert_accepted("TICKETD_PAYMENT_LATENCY_MS", "60000", &cfg);
    ck_assert_int_eq(cfg.payment_latency_ms, 60000);
}
END_TEST

START_TEST(test_load_refuses_bad_log_level)
{
    assert_refused("TICKETD_MAX_INFLIGHT", "0");
    assert_refused("TICKETD_MAX_INFLIGHT", "lots");
    assert_refused("TICKETD_LOG_LEVEL", "verbose");
    assert_refused("TICKETD_LOG_LEVEL", "INFO");
    tk_config_t cfg;
    assert_accepted("TICKETD_LOG_LEVEL", "error", &cfg);
    ck_assert_int_eq(cfg.log_level, TK_LOG_ERROR);
    assert_accepted("TICKETD_LOG_LEVEL", "warn", &cfg);
    ck_assert_int_eq(cfg.log_level, TK_LOG_WARN);
}
END_TEST

/* ---- tk_config_parse_listen ---- */

START_TEST(test_parse_listen_ipv4_host_and_port)
{
    char host[64];
    uint16_t port = 0;
    ck_assert_int_eq(tk_config_parse_listen("127.0.0.1:8000", host, sizeof(host), &port), 0);
    ck_assert_str_eq(host, "127.0.0.1");
    ck_assert_uint_eq(port, 8000);
}
END_TEST

START_TEST(test_parse_listen_bracketed_ipv6)
{
    char host[64];
    uint16_t port = 0;
    ck_assert_int_eq(tk_config_parse_listen("[::1]:80", host, sizeof(host), &port), 0);
    ck_assert_str_eq(host, "::1");
    ck_assert_uint_eq(port, 80);
}
END_TEST

START_TEST(test_parse_listen_empty_host_means_all_interfaces)
{
    char host[64];
    uint16_t port = 0;
    ck_assert_int_eq(tk_config_parse_listen(":9000", host, sizeof(host), &port), 0);
    ck_assert_str_eq(host, "0.0.0.0");
    ck_assert_uint_eq(port, 9000);
}
END_TEST

START_TEST(test_parse_listen_refuses_missing_port)
{
    char host[64];
    uint16_t port = 0;
    ck_assert_int_eq(tk_config_parse_listen("nohost", host, sizeof(host), &port), -1);
}
END_TEST

START_TEST(test_parse_listen_refuses_port_out_of_range)
{
    char host[64];
    uint16_t port = 0;
    ck_assert_int_eq(tk_config_parse_listen("h:0", host, sizeof(host), &port), -1);
    ck_assert_int_eq(tk_config_parse_listen("h:65536", host, sizeof(host), &port), -1);
    ck_assert_int_eq(tk_config_parse_listen("h:65535", host, sizeof(host), &port), 0);
    ck_assert_str_eq(host, "h");
    ck_assert_uint_eq(port, 65535);
}
END_TEST

START_TEST(test_parse_listen_refuses_host_longer_than_buffer)
{
    char host[8];
    uint16_t port = 0;
    ck_assert_int_eq(tk_config_parse_listen("abcdefgh:80", host, sizeof(host), &port), -1);
    ck_assert_int_eq(tk_config_parse_listen("abcdefg:80", host, sizeof(host), &port), 0);
    ck_assert_str_eq(host, "abcdefg");
}
END_TEST

/* ---- tk_config_parse_redis_url ---- */

START_TEST(test_parse_redis_url_host_only_uses_defaults)
{
    tk_redis_url_t r;
    ck_assert_int_eq(tk_config_parse_redis_url("redis://cache", &r), 0);
    ck_assert_str_eq(r.host, "cache");
    ck_assert_uint_eq(r.port, 6379);
    ck_assert_int_eq(r.db, 0);
    ck_assert_str_eq(r.password, "");
}
END_TEST

START_TEST(test_parse_redis_url_host_port_db)
{
    tk_redis_url_t r;
    ck_assert_int_eq(tk_config_parse_redis_url("redis://10.0.0.5:6390/7", &r), 0);
    ck_assert_str_eq(r.host, "10.0.0.5");
    ck_assert_uint_eq(r.port, 6390);
    ck_assert_int_eq(r.db, 7);
    ck_assert_str_eq(r.password, "");
}
END_TEST

START_TEST(test_parse_redis_url_trailing_slash_is_db_zero)
{
    tk_redis_url_t r;
    ck_assert_int_eq(tk_config_parse_redis_url("redis://cache/", &r), 0);
    ck_assert_int_eq(r.db, 0);
}
END_TEST

START_TEST(test_parse_redis_url_password_forms)
{
    tk_redis_url_t r;
    ck_assert_int_eq(tk_config_parse_redis_url("redis://:s3cret@cache:6380/2", &r), 0);
    ck_assert_str_eq(r.password, "s3cret");
    ck_assert_str_eq(r.host, "cache");
    ck_assert_uint_eq(r.port, 6380);
    ck_assert_int_eq(r.db, 2);
    ck_assert_int_eq(tk_config_parse_redis_url("redis://user:s3cret@cache", &r), 0);
    ck_assert_str_eq(r.password, "s3cret");
    ck_assert_str_eq(r.host, "cache");
}
END_TEST

START_TEST(test_parse_redis_url_refuses_other_scheme)
{
    tk_redis_url_t r;
    ck_assert_int_eq(tk_config_parse_redis_url("rediss://cache", &r), -1);
    ck_assert_int_eq(tk_config_parse_redis_url("http://cache:6379/0", &r), -1);
    ck_assert_int_eq(tk_config_parse_redis_url("cache:6379", &r), -1);
}
END_TEST

START_TEST(test_parse_redis_url_refuses_db_16)
{
    tk_redis_url_t r;
    ck_assert_int_eq(tk_config_parse_redis_url("redis://cache/16", &r), -1);
    ck_assert_int_eq(tk_config_parse_redis_url("redis://cache/15", &r), 0);
    ck_assert_int_eq(r.db, 15);
    ck_assert_int_eq(tk_config_parse_redis_url("redis://cache/x", &r), -1);
}
END_TEST

START_TEST(test_parse_redis_url_refuses_empty_host_and_bad_port)
{
    tk_redis_url_t r;
    ck_assert_int_eq(tk_config_parse_redis_url("redis://", &r), -1);
    ck_assert_int_eq(tk_config_parse_redis_url("redis://:6379", &r), -1);
    ck_assert_int_eq(tk_config_parse_redis_url("redis://cache:0", &r), -1);
    ck_assert_int_eq(tk_config_parse_redis_url("redis://cache:65536", &r), -1);
    ck_assert_int_eq(tk_config_parse_redis_url("redis://cache:", &r), -1);
    ck_assert_int_eq(tk_config_parse_redis_url("redis://cache:12345678901", &r), -1);
}
END_TEST

/* ---- production problems ---- */

static void fill_secret(tk_config_t *cfg, size_t len)
{
    memset(cfg->secret, 'k', len);
    cfg->secret[len] = '\0';
    cfg->secret_len = len;
}

static void fill_token(tk_config_t *cfg, size_t len)
{
    memset(cfg->admin_token, 't', len);
    cfg->admin_token[len] = '\0';
    cfg->admin_token_len = len;
}

START_TEST(test_production_refuses_missing_secret)
{
    tk_config_t cfg;
    ck_assert_int_eq(load(empty_env, &cfg), 0);
    char problems[4][256];
    ck_assert_uint_eq(tk_config_production_problems(&cfg, 0, problems, 4), 1);
    ck_assert_ptr_nonnull(strstr(problems[0], "TICKETD_SECRET"));
}
END_TEST

START_TEST(test_production_refuses_31_byte_secret)
{
    tk_config_t cfg;
    ck_assert_int_eq(load(empty_env, &cfg), 0);
    fill_secret(&cfg, 31);
    char problems[4][256];
    ck_assert_uint_eq(tk_config_production_problems(&cfg, 0, problems, 4), 1);
    ck_assert_ptr_nonnull(strstr(problems[0], "TICKETD_SECRET"));
    ck_assert_ptr_nonnull(strstr(problems[0], "31"));
}
END_TEST

START_TEST(test_production_accepts_32_byte_secret)
{
    tk_config_t cfg;
    ck_assert_int_eq(load(empty_env, &cfg), 0);
    fill_secret(&cfg, 32);
    char problems[4][256];
    ck_assert_uint_eq(tk_config_production_problems(&cfg, 0, problems, 4), 0);
}
END_TEST

START_TEST(test_production_refuses_31_char_admin_token)
{
    tk_config_t cfg;
    ck_assert_int_eq(load(empty_env, &cfg), 0);
    fill_secret(&cfg, 32);
    fill_token(&cfg, 31);
    char problems[4][256];
    ck_assert_uint_eq(tk_config_production_problems(&cfg, 0, problems, 4), 1);
    ck_assert_ptr_nonnull(strstr(problems[0], "TICKETD_ADMIN_TOKEN"));
    fill_token(&cfg, 32);
    ck_assert_uint_eq(tk_config_production_problems(&cfg, 0, problems, 4), 0);
}
END_TEST

START_TEST(test_production_refuses_31_char_metrics_token)
{
    tk_config_t cfg;
    ck_assert_int_eq(load(empty_env, &cfg), 0);
    fill_secret(&cfg, 32);
    memset(cfg.metrics_token, 'm', 31);
    cfg.metrics_token_len = 31;
    char problems[4][256];
    ck_assert_uint_eq(tk_config_production_problems(&cfg, 0, problems, 4), 1);
    ck_assert_ptr_nonnull(strstr(problems[0], "TICKETD_METRICS_TOKEN"));
    cfg.metrics_token_len = 0; /* unset: /metrics refuses everyone, production starts */
    ck_assert_uint_eq(tk_config_production_problems(&cfg, 0, problems, 4), 0);
    cfg.metrics_token_len = 32;
    ck_assert_uint_eq(tk_config_production_problems(&cfg, 0, problems, 4), 0);
}
END_TEST

START_TEST(test_production_accepts_unset_admin_token)
{
    tk_config_t cfg;
    ck_assert_int_eq(load(empty_env, &cfg), 0);
    fill_secret(&cfg, 64);
    ck_assert_uint_eq(cfg.admin_token_len, 0);
    char problems[4][256];
    ck_assert_uint_eq(tk_config_production_problems(&cfg, 0, problems, 4), 0);
}
END_TEST

START_TEST(test_production_refuses_demo_flag)
{
    tk_config_t cfg;
    ck_assert_int_eq(load(empty_env, &cfg), 0);
    fill_secret(&cfg, 32);
    char problems[4][256];
    ck_assert_uint_eq(tk_config_production_problems(&cfg, 1, problems, 4), 1);
    ck_assert_ptr_nonnull(strstr(problems[0], "--demo"));
}
END_TEST

START_TEST(test_production_reports_all_three_problems_one_line_each)
{
    tk_config_t cfg;
    ck_assert_int_eq(load(empty_env, &cfg), 0);
    fill_token(&cfg, 8);
    char problems[4][256];
    ck_assert_uint_eq(tk_config_production_problems(&cfg, 1, problems, 4), 3);
    ck_assert_ptr_nonnull(strstr(problems[0], "TICKETD_SECRET"));
    ck_assert_ptr_nonnull(strstr(problems[1], "TICKETD_ADMIN_TOKEN"));
    ck_assert_ptr_nonnull(strstr(problems[2], "--demo"));
    for (int i = 0; i < 3; ++i)
        ck_assert_ptr_null(strchr(problems[i], '\n'));
}
END_TEST

START_TEST(test_production_problems_respects_max)
{
    tk_config_t cfg;
    ck_assert_int_eq(load(empty_env, &cfg), 0);
    fill_token(&cfg, 8);
    char problems[1][256];
    ck_assert_uint_eq(tk_config_production_problems(&cfg, 1, problems, 1), 1);
    ck_assert_ptr_nonnull(strstr(problems[0], "TICKETD_SECRET"));
}
END_TEST

/* ---- development ---- */

START_TEST(test_fill_development_generates_secret_and_token)
{
    env_entry_t env[] = {{"TICKETD_ENV", "development"}, {NULL, NULL}};
    tk_config_t cfg;
    ck_assert_int_eq(load(env, &cfg), 0);
    tk_config_fill_development(&cfg);
    ck_assert_uint_ge(cfg.secret_len, TK_SECRET_MIN_LEN);
    ck_assert_uint_eq(strlen(cfg.secret), cfg.secret_len);
    ck_assert_uint_ge(cfg.admin_token_len, TK_ADMIN_TOKEN_MIN_LEN);
    ck_assert_uint_eq(strlen(cfg.admin_token), cfg.admin_token_len);
    ck_assert_int_eq(cfg.source[TK_SET_SECRET], TK_SOURCE_GENERATED);
    ck_assert_int_eq(cfg.source[TK_SET_ADMIN_TOKEN], TK_SOURCE_GENERATED);
    char problems[4][256];
    ck_assert_uint_eq(tk_config_production_problems(&cfg, 0, problems, 4), 0);
}
END_TEST

START_TEST(test_fill_development_generates_different_values_each_time)
{
    tk_config_t a, b;
    ck_assert_int_eq(load(empty_env, &a), 0);
    ck_assert_int_eq(load(empty_env, &b), 0);
    tk_config_fill_development(&a);
    tk_config_fill_development(&b);
    ck_assert_str_ne(a.secret, b.secret);
    ck_assert_str_ne(a.admin_token, b.admin_token);
    ck_assert_str_ne(a.secret, a.admin_token);
}
END_TEST

START_TEST(test_fill_development_keeps_given_values)
{
    tk_config_t cfg;
    ck_assert_int_eq(load(full_env, &cfg), 0);
    tk_config_fill_development(&cfg);
    ck_assert_str_eq(cfg.secret, secret40);
    ck_assert_uint_eq(cfg.secret_len, strlen(secret40));
    ck_assert_str_eq(cfg.admin_token, token33);
    ck_assert_uint_eq(cfg.admin_token_len, strlen(token33));
    ck_assert_int_eq(cfg.source[TK_SET_SECRET], TK_SOURCE_ENVIRONMENT);
    ck_assert_int_eq(cfg.source[TK_SET_ADMIN_TOKEN], TK_SOURCE_ENVIRONMENT);
}
END_TEST

/* ---- printing ---- */

/* prints cfg into a heap string the caller frees */
static char *print_to_string(const tk_config_t *cfg)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    ck_assert_ptr_nonnull(f);
    tk_config_print(cfg, f);
    ck_assert_int_eq(fclose(f), 0);
    return text;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; ++s)
        n += *s == '\n';
    return n;
}

START_TEST(test_print_writes_one_line_per_setting_in_order)
{
    tk_config_t cfg;
    ck_assert_int_eq(load(full_env, &cfg), 0);
    char *text = print_to_string(&cfg);
    ck_assert_uint_eq(count_lines(text), TK_SET__COUNT);
    const char *line = text;
    for (int i = 0; i < TK_SET__COUNT; ++i) {
        const char *name = tk_setting_name((tk_setting_t)i);
        ck_assert_msg(strncmp(line, name, strlen(name)) == 0, "line %d does not start with %s", i, name);
        ck_assert_msg(line[strlen(name)] == ' ', "line %d: name not followed by a space", i);
        const char *nl = strchr(line, '\n');
        ck_assert_ptr_nonnull(nl);
        ck_assert_msg(nl - line > 13 && strncmp(nl - 13, "(environment)", 13) == 0, "line %d does not end with its source", i);
        line = nl + 1;
    }
    free(text);
}
END_TEST

START_TEST(test_print_shows_values_and_default_sources)
{
    tk_config_t cfg;
    ck_assert_int_eq(load(empty_env, &cfg), 0);
    char *text = print_to_string(&cfg);
    ck_assert_ptr_nonnull(strstr(text, "127.0.0.1:8000  (default)"));
    ck_assert_ptr_nonnull(strstr(text, "production  (default)"));
    ck_assert_ptr_nonnull(strstr(text, "900  (default)"));
    ck_assert_ptr_nonnull(strstr(text, "(unset: admin routes refuse everyone)"));
    ck_assert_ptr_nonnull(strstr(text, "(unset)"));
    free(text);
}
END_TEST

START_TEST(test_print_masks_secret_and_token_with_their_length)
{
    tk_config_t cfg;
    ck_assert_int_eq(load(full_env, &cfg), 0);
    char *text = print_to_string(&cfg);
    ck_assert_ptr_nonnull(strstr(text, "*** (40 bytes)"));
    ck_assert_ptr_nonnull(strstr(text, "*** (33 characters)"));
    ck_assert_ptr_null(strstr(text, secret40));
    ck_assert_ptr_null(strstr(text, token33));
    ck_assert_ptr_null(strstr(text, "0123456789abcdef"));
    free(text);
}
END_TEST

START_TEST(test_print_masks_url_passwords)
{
    tk_config_t cfg;
    ck_assert_int_eq(load(full_env, &cfg), 0);
    char *text = print_to_string(&cfg);
    ck_assert_ptr_null(strstr(text, "redispw"));
    ck_assert_ptr_null(strstr(text, "pgpw"));
    ck_assert_ptr_nonnull(strstr(text, "cache.local:6380/3"));
    free(text);
}
END_TEST

START_TEST(test_print_marks_generated_values)
{
    tk_config_t cfg;
    ck_assert_int_eq(load(empty_env, &cfg), 0);
    tk_config_fill_development(&cfg);
    char *text = print_to_string(&cfg);
    ck_assert_ptr_nonnull(strstr(text, "(generated)"));
    ck_assert_ptr_null(strstr(text, cfg.secret));
    ck_assert_ptr_null(strstr(text, cfg.admin_token));
    free(text);
}
END_TEST

/* The parser takes "redis://PASSWORD@host" (no colon) as the AUTH password; the printout
 * must not show it either. */
START_TEST(test_print_masks_redis_password_given_without_colon)
{
    env_entry_t env[] = {{"TICKETD_REDIS_URL", "redis://hunter2pw@cache:6379/0"}, {NULL, NULL}};
    tk_config_t cfg;
    ck_assert_int_eq(load(env, &cfg), 0);
    ck_assert_str_eq(cfg.redis.password, "hunter2pw");
    char *text = print_to_string(&cfg);
    ck_assert_msg(strstr(text, "hunter2pw") == NULL, "the Redis password is printed in clear:\n%s", text);
    free(text);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("load");
    tcase_add_test(tc, test_load_empty_environment_gives_documented_defaults);
    tcase_add_test(tc, test_load_default_threads_is_number_of_cores_clamped);
    tcase_add_test(tc, test_load_empty_environment_marks_every_source_default);
    tcase_add_test(tc, test_load_full_environment_takes_every_value);
    tcase_add_test(tc, test_load_full_environment_marks_every_source_environment);
    tcase_add_test(tc, test_load_empty_value_counts_as_unset);
    tcase_add_test(tc, test_setting_names_are_the_environment_variables);
    suite_add_tcase(s, tc);

    tc = tcase_create("errors");
    tcase_add_test(tc, test_load_refuses_unknown_env);
    tcase_add_test(tc, test_load_refuses_bad_listen_forms);
    tcase_add_test(tc, test_load_refuses_bad_redis_url);
    tcase_add_test(tc, test_load_refuses_hold_seconds_zero);
    tcase_add_test(tc, test_load_refuses_hold_seconds_not_a_number);
    tcase_add_test(tc, test_load_refuses_hold_seconds_over_a_day);
    tcase_add_test(tc, test_load_accepts_hold_seconds_bounds);
    tcase_add_test(tc, test_load_refuses_bad_max_per_type);
    tcase_add_test(tc, test_load_refuses_bad_threads);
    tcase_add_test(tc, test_load_refuses_bad_payment_latency);
    tcase_add_test(tc, test_load_refuses_bad_log_level);
    suite_add_tcase(s, tc);

    tc = tcase_create("parse_listen");
    tcase_add_test(tc, test_parse_listen_ipv4_host_and_port);
    tcase_add_test(tc, test_parse_listen_bracketed_ipv6);
    tcase_add_test(tc, test_parse_listen_empty_host_means_all_interfaces);
    tcase_add_test(tc, test_parse_listen_refuses_missing_port);
    tcase_add_test(tc, test_parse_listen_refuses_port_out_of_range);
    tcase_add_test(tc, test_parse_listen_refuses_host_longer_than_buffer);
    suite_add_tcase(s, tc);

    tc = tcase_create("parse_redis_url");
    tcase_add_test(tc, test_parse_redis_url_host_only_uses_defaults);
    tcase_add_test(tc, test_parse_redis_url_host_port_db);
    tcase_add_test(tc, test_parse_redis_url_trailing_slash_is_db_zero);
    tcase_add_test(tc, test_parse_redis_url_password_forms);
    tcase_add_test(tc, test_parse_redis_url_refuses_other_scheme);
    tcase_add_test(tc, test_parse_redis_url_refuses_db_16);
    tcase_add_test(tc, test_parse_redis_url_refuses_empty_host_and_bad_port);
    suite_add_tcase(s, tc);

    tc = tcase_create("production");
    tcase_add_test(tc, test_production_refuses_missing_secret);
    tcase_add_test(tc, test_production_refuses_31_byte_secret);
    tcase_add_test(tc, test_production_accepts_32_byte_secret);
    tcase_add_test(tc, test_production_refuses_31_char_admin_token);
    tcase_add_test(tc, test_production_refuses_31_char_metrics_token);
    tcase_add_test(tc, test_production_accepts_unset_admin_token);
    tcase_add_test(tc, test_production_refuses_demo_flag);
    tcase_add_test(tc, test_production_reports_all_three_problems_one_line_each);
    tcase_add_test(tc, test_production_problems_respects_max);
    suite_add_tcase(s, tc);

    tc = tcase_create("development");
    tcase_add_test(tc, test_fill_development_generates_secret_and_token);
    tcase_add_test(tc, test_fill_development_generates_different_values_each_time);
    tcase_add_test(tc, test_fill_development_keeps_given_values);
    suite_add_tcase(s, tc);

    tc = tcase_create("print");
    tcase_add_test(tc, test_print_writes_one_line_per_setting_in_order);
    tcase_add_test(tc, test_print_shows_values_and_default_sources);
    tcase_add_test(tc, test_print_masks_secret_and_token_with_their_length);
    tcase_add_test(tc, test_print_masks_url_passwords);
    tcase_add_test(tc, test_print_marks_generated_values);
    tcase_add_test(tc, test_print_masks_redis_password_given_without_colon);
    tcase_add_test(tc, test_load_rejects_bad_fair_use_settings);
    tcase_add_test(tc, test_load_takes_cluster_seeds);
    tcase_add_test(tc, test_load_refuses_bad_cluster_seeds);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
