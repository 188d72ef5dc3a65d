/*
 * Unit tests of engine/uuid: v4 generation, shard-prefixed ids, normalisation and
 * random hex strings.
 */
#include "engine/uuid.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* canonical lower-case v4 form: 8-4-4-4-12, version nibble 4, variant 8..b */
static int is_v4(const char *s)
{
    if (strlen(s) != TK_UUID_LEN)
        return 0;
    for (size_t i = 0; i < TK_UUID_LEN; ++i) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!is_lower_hex(s[i])) {
            return 0;
        }
    }
    return s[14] == '4' && strchr("89ab", s[19]) != NULL;
}

static int compare_ids(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* ---- generation ---- */

START_TEST(test_uuid_v4_has_canonical_v4_format)
{
    for (int i = 0; i < 1000; ++i) {
        char id[TK_UUID_LEN + 1];
        memset(id, 'X', sizeof(id));
        tk_uuid_v4(id);
        ck_assert_msg(is_v4(id), "not a v4 UUID: %s", id);
        ck_assert_int_eq(id[TK_UUID_LEN], '\0');
    }
}
END_TEST

START_TEST(test_uuid_v4_variant_takes_all_four_values)
{
    int seen[4] = {0};
    for (int i = 0; i < 1000; ++i) {
        char id[TK_UUID_LEN + 1];
        tk_uuid_v4(id);
        seen[strchr("89ab", id[19]) - "89ab"] = 1;
    }
    ck_assert(seen[0] && seen[1] && seen[2] && seen[3]);
}
END_TEST

START_TEST(test_uuid_v4_ten_thousand_are_unique)
{
    enum { N = 10000 };
    char(*ids)[TK_UUID_LEN + 1] = calloc(N, sizeof(*ids));
    ck_assert_ptr_nonnull(ids);
    for (int i = 0; i < N; ++i)
        tk_uuid_v4(ids[i]);
    qsort(ids, N, sizeof(*ids), compare_ids);
    for (int i = 1; i < N; ++i)
        ck_assert_msg(strcmp(ids[i - 1], ids[i]) != 0, "duplicate %s", ids[i]);
    free(ids);
}
END_TEST

START_TEST(test_uuid_v4_in_shard_keeps_prefix_and_is_valid)
{
    const char *shards[] = {"0000", "ffff", "1a2b", "beef"};
    for (size_t s = 0; s < 4; ++s) {
        for (int i = 0; i < 100; ++i) {
            char id[TK_UUID_LEN + 1];
            tk_uuid_v4_in_shard(id, shards[s]);
            ck_assert_int_eq(memcmp(id, shards[s], TK_SHARD_LEN), 0);
            ck_assert_msg(is_v4(id), "not a v4 UUID: %s", id);
        }
    }
}
END_TEST

START_TEST(test_uuid_v4_in_shard_keeps_shard_of_event_id)
{
    char event[TK_UUID_LEN + 1], a[TK_UUID_LEN + 1], b[TK_UUID_LEN + 1];
    tk_uuid_v4(event);
    tk_uuid_v4_in_shard(a, event);
    tk_uuid_v4_in_shard(b, event);
    ck_assert_int_eq(memcmp(a, event, TK_SHARD_LEN), 0);
    ck_assert_int_eq(memcmp(b, event, TK_SHARD_LEN), 0);
    ck_assert_str_ne(a, b);
    ck_assert_str_ne(a, event);
}
END_TEST

/* ---- normalize ---- */

START_TEST(test_normalize_lower_cases_upper_case_input)
{
    const char *in = "0A1B2C3D-4E5F-4A6B-8C7D-9E0FABCDEF12";
    char out[TK_UUID_LEN + 1];
    ck_assert_int_eq(tk_uuid_normalize(in, strlen(in), out), 0);
    ck_assert_str_eq(out, "0a1b2c3d-4e5f-4a6b-8c7d-9e0fabcdef12");
}
END_TEST

START_TEST(test_normalize_keeps_lower_case_input)
{
    char id[TK_UUID_LEN + 1], out[TK_UUID_LEN + 1];
    tk_uuid_v4(id);
    ck_assert_int_eq(tk_uuid_normalize(id, strlen(id), out), 0);
    ck_assert_str_eq(out, id);
}
END_TEST

START_TEST(test_normalize_reads_only_len_bytes)
{
    const char *in = "0a1b2c3d-4e5f-4a6b-8c7d-9e0fabcdef12trailing";
    char out[TK_UUID_LEN + 1];
    ck_assert_int_eq(tk_uuid_normalize(in, TK_UUID_LEN, out), 0);
    ck_assert_str_eq(out, "0a1b2c3d-4e5f-4a6b-8c7d-9e0fabcdef12");
}
END_TEST

START_TEST(test_normalize_refuses_wrong_length)
{
    const char *in = "0a1b2c3d-4e5f-4a6b-8c7d-9e0fabcdef12";
    char out[TK_UUID_LEN + 2];
    ck_assert_int_eq(tk_uuid_normalize(in, 35, out), -1);
    ck_assert_int_eq(tk_uuid_normalize("0a1b2c3d-4e5f-4a6b-8c7d-9e0fabcdef123", 37, out), -1);
    ck_assert_int_eq(tk_uuid_normalize("", 0, out), -1);
    ck_assert_int_eq(tk_uuid_normalize("0a1b2c3d4e5f4a6b8c7d9e0fabcdef12", 32, out), -1);
}
END_TEST

START_TEST(test_normalize_refuses_misplaced_dashes)
{
    char out[TK_UUID_LEN + 1];
    const char *bad[] = {
        "0a1b2c3d4-e5f-4a6b-8c7d-9e0fabcdef12", "0a1b2c3d-4e5f4-a6b-8c7d-9e0fabcdef12", "0a1b2c3d-4e5f-4a6b8-c7d-9e0fabcdef12",
        "0a1b2c3d-4e5f-4a6b-8c7d9-e0fabcdef12", "-0a1b2c3d4e5f-4a6b-8c7d-9e0fabcdef12", "0a1b2c3d-4e5f-4a6b-8c7d-9e0fabcdef1-",
        "0a1b2c3d_4e5f_4a6b_8c7d_9e0fabcdef12",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i)
        ck_assert_msg(tk_uuid_normalize(bad[i], strlen(bad[i]), out) == -1, "accepted %s", bad[i]);
}
END_TEST

START_TEST(test_normalize_refuses_non_hex)
{
    char out[TK_UUID_LEN + 1];
    const char *bad[] = {
        "0a1b2c3g-4e5f-4a6b-8c7d-9e0fabcdef12",
        "0a1b2c3d-4e5f-4a6b-8c7d-9e0fabcdef1G",
        "0a1b2c3d-4e5f-4a6b-8c7d-9e0fabcdef1 ",
        "{a1b2c3d-4e5f-4a6b-8c7d-9e0fabcdef12",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i)
        ck_assert_msg(tk_uuid_normalize(bad[i], strlen(bad[i]), out) == -1, "accepted %s", bad[i]);
    const char with_nul[] = "0a1b2c3d-4e5f-4a6b-8c7d-9e0fabcdef\0002";
    ck_assert_int_eq(tk_uuid_normalize(with_nul, TK_UUID_LEN, out), -1);
}
END_TEST

/* ---- random hex and bytes ---- */

START_TEST(test_random_hex_length_and_charset)
{
    const size_t sizes[] = {0, 1, 16, 32, 255, 256, 257, 600};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); ++s) {
        size_t n = sizes[s];
        char *out = malloc(2 * n + 2);
        memset(out, 'X', 2 * n + 2);
        tk_random_hex(out, n);
        ck_assert_uint_eq(strlen(out), 2 * n);
        ck_assert_int_eq(out[2 * n + 1], 'X'); /* nothing written past the NUL */
        for (size_t i = 0; i < 2 * n; ++i)
            ck_assert_msg(is_lower_hex(out[i]), "'%c' at %zu is not lower-case hex", out[i], i);
        free(out);
    }
}
END_TEST

START_TEST(test_random_hex_differs_between_calls)
{
    char a[65], b[65];
    tk_random_hex(a, 32);
    tk_random_hex(b, 32);
    ck_assert_str_ne(a, b);
}
END_TEST

START_TEST(test_random_bytes_fill_large_and_small_buffers)
{
    unsigned char small1[16] = {0}, small2[16] = {0}, big[2048] = {0};
    tk_random_bytes(small1, sizeof(small1));
    tk_random_bytes(small2, sizeof(small2));
    ck_assert_int_ne(memcmp(small1, small2, sizeof(small1)), 0);
    tk_random_bytes(big, sizeof(big));
    size_t zeros = 0;
    for (size_t i = 0; i < sizeof(big); ++i)
        zeros += big[i] == 0;
    ck_assert_uint_lt(zeros, 64); /* ~8 expected */
}
END_TEST

/* a forked child does not mint the ids its parent mints next (it drops the inherited buffer) */
START_TEST(test_uuid_v4_child_of_fork_draws_fresh_bytes)
{
    char parent[TK_UUID_LEN + 1], child[TK_UUID_LEN + 1];
    int fds[2];
    tk_uuid_v4(parent); /* the buffer is filled now */
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ne(pid, -1);
    if (pid == 0) {
        tk_uuid_v4(child);
        _exit(write(fds[1], child, TK_UUID_LEN) == TK_UUID_LEN ? 0 : 1);
    }
    tk_uuid_v4(parent);
    ck_assert_int_eq(read(fds[0], child, TK_UUID_LEN), TK_UUID_LEN);
    child[TK_UUID_LEN] = '\0';
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_str_ne(parent, child);
    close(fds[0]);
    close(fds[1]);
}
END_TEST

static Suite *uuid_suite(void)
{
    Suite *s = suite_create("uuid");
    TCase *tc = tcase_create("generate");
    tcase_add_test(tc, test_uuid_v4_has_canonical_v4_format);
    tcase_add_test(tc, test_uuid_v4_variant_takes_all_four_values);
    tcase_add_test(tc, test_uuid_v4_ten_thousand_are_unique);
    tcase_add_test(tc, test_uuid_v4_in_shard_keeps_prefix_and_is_valid);
    tcase_add_test(tc, test_uuid_v4_in_shard_keeps_shard_of_event_id);
    suite_add_tcase(s, tc);

    tc = tcase_create("normalize");
    tcase_add_test(tc, test_normalize_lower_cases_upper_case_input);
    tcase_add_test(tc, test_normalize_keeps_lower_case_input);
    tcase_add_test(tc, test_normalize_reads_only_len_bytes);
    tcase_add_test(tc, test_normalize_refuses_wrong_length);
    tcase_add_test(tc, test_normalize_refuses_misplaced_dashes);
    tcase_add_test(tc, test_normalize_refuses_non_hex);
    suite_add_tcase(s, tc);

    tc = tcase_create("random");
    tcase_add_test(tc, test_random_hex_length_and_charset);
    tcase_add_test(tc, test_random_hex_differs_between_calls);
    tcase_add_test(tc, test_random_bytes_fill_large_and_small_buffers);
    tcase_add_test(tc, test_uuid_v4_child_of_fork_draws_fresh_bytes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(uuid_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
