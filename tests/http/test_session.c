/*
 * Unit tests of http/session.c: the signed sessionid cookie verifies with the same
 * secret, and refuses tampering, other secrets, and malformed values.
 */
#include "http/session.h"

#include <check.h>
#include <string.h>

static const char *const RID = "abcd1234-5678-4abc-8def-0123456789ab";

static tk_config_t config_with_secret(const char *secret)
{
    tk_config_t c;
    memset(&c, 0, sizeof(c));
    c.secret_len = strlen(secret);
    memcpy(c.secret, secret, c.secret_len);
    c.hold_seconds = 900;
    return c;
}

START_TEST(signed_value_verifies_and_names_the_reservation)
{
    tk_config_t c = config_with_secret("tk-test-only-secret-0123456789abcdef0123");
    char value[TK_SESSION_VALUE_LEN + 1], rid[37];
    tk_session_sign(&c, RID, value);
    ck_assert_int_eq(strlen(value), TK_SESSION_VALUE_LEN);
    ck_assert_int_eq(tk_session_verify(&c, value, strlen(value), rid), 0);
    ck_assert_str_eq(rid, RID);
    for (const char *p = value + 37; *p; ++p)
        ck_assert_msg(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *p) != NULL, "not base64url: %c",
                      *p);
}
END_TEST

/* the signature is unpadded base64url of HMAC-SHA256 (value from `openssl dgst -sha256 -hmac`) */
START_TEST(signature_is_the_known_hmac_in_base64url)
{
    tk_config_t c = config_with_secret("tk-test-only-secret-0123456789abcdef0123");
    char value[TK_SESSION_VALUE_LEN + 1];
    tk_session_sign(&c, RID, value);
    ck_assert_str_eq(value, "abcd1234-5678-4abc-8def-0123456789ab.r_kBEe6rnxvsacrfziVqv0GJO-G1QqHzh7ovAqIB8JE");
}
END_TEST

START_TEST(another_process_with_the_same_secret_verifies)
{
    tk_config_t a = config_with_secret("tk-test-only-secret-0123456789abcdef0123");
    tk_config_t b = config_with_secret("tk-test-only-secret-0123456789abcdef0123");
    char value[TK_SESSION_VALUE_LEN + 1], rid[37];
    tk_session_sign(&a, RID, value);
    ck_assert_int_eq(tk_session_verify(&b, value, strlen(value), rid), 0);
}
END_TEST

START_TEST(tampering_and_other_secrets_are_refused)
{
    tk_config_t c = config_with_secret("tk-test-only-secret-0123456789abcdef0123");
    tk_config_t other = config_with_secret("tk-test-only-other-secret-0123456789abcd");
    char value[TK_SESSION_VALUE_LEN + 1], rid[37];
    tk_session_sign(&c, RID, value);
    ck_assert_int_eq(tk_session_verify(&other, value, strlen(value), rid), -1);
    for (size_t i = 0; i < TK_SESSION_VALUE_LEN; ++i) {
        if (value[i] == '-' || value[i] == '.')
            continue;
        char copy[TK_SESSION_VALUE_LEN + 1];
        memcpy(copy, value, sizeof(copy));
        copy[i] = copy[i] == 'a' ? 'b' : 'a';
        ck_assert_msg(tk_session_verify(&c, copy, strlen(copy), rid) == -1, "tampered byte %zu accepted", i);
    }
}
END_TEST

START_TEST(malformed_values_are_refused)
{
    tk_config_t c = config_with_secret("tk-test-only-secret-0123456789abcdef0123");
    char value[TK_SESSION_VALUE_LEN + 1], rid[37];
    tk_session_sign(&c, RID, value);
    ck_assert_int_eq(tk_session_verify(&c, "", 0, rid), -1);
    ck_assert_int_eq(tk_session_verify(&c, value, strlen(value) - 1, rid), -1);
    ck_assert_int_eq(tk_session_verify(&c, RID, 36, rid), -1);
    value[36] = ':';
    ck_assert_int_eq(tk_session_verify(&c, value, strlen(value), rid), -1);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("session");
    TCase *tc = tcase_create("session");
    tcase_add_test(tc, signed_value_verifies_and_names_the_reservation);
    tcase_add_test(tc, signature_is_the_known_hmac_in_base64url);
    tcase_add_test(tc, another_process_with_the_same_secret_verifies);
    tcase_add_test(tc, tampering_and_other_secrets_are_refused);
    tcase_add_test(tc, malformed_values_are_refused);
    suite_add_tcase(suite, tc);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed != 0;
}
