/*
 * Unit tests of engine/waitroom_token.c: queue ids and admissions verify with the same
 * secret, name their event and ticket, and are refused when forged, tampered with, moved
 * to another event or ticket, extended, passed off as the other kind, or misspelled.
 */
#include "engine/waitroom_token.h"

#include <check.h>
#include <string.h>

static const char *const EVENT = "abcd1234-5678-4abc-8def-0123456789ab";
static const char *const OTHER = "abcd1234-5678-4abc-8def-0123456789ac";

static tk_config_t config_with_secret(const char *secret)
{
    tk_config_t c;
    memset(&c, 0, sizeof(c));
    c.secret_len = strlen(secret);
    memcpy(c.secret, secret, c.secret_len);
    return c;
}

static tk_config_t secret_a(void)
{
    return config_with_secret("tk-test-only-secret-0123456789abcdef0123");
}

START_TEST(queue_id_verifies_and_names_event_and_ticket)
{
    tk_config_t c = secret_a(), other_process = secret_a();
    char id[TK_WR_QUEUE_ID_MAX], event[37];
    int64_t ticket, joined;
    size_t len = tk_wr_queue_id_sign(&c, EVENT, 57, 1796508397000, id);
    ck_assert_int_eq(len, strlen(id));
    ck_assert_int_eq(tk_wr_queue_id_verify(&other_process, id, len, event, &ticket, &joined), 0);
    ck_assert_str_eq(event, EVENT);
    ck_assert_int_eq(ticket, 57);
    ck_assert_int_eq(joined, 1796508397000);
}
END_TEST

START_TEST(queue_id_refuses_forgery_and_moves)
{
    tk_config_t c = secret_a(), stranger = config_with_secret("another-secret-0123456789abcdef0123456789");
    char id[TK_WR_QUEUE_ID_MAX], forged[TK_WR_QUEUE_ID_MAX + 8], event[37];
    int64_t ticket, joined;
    size_t len = tk_wr_queue_id_sign(&c, EVENT, 57, 1796508397000, id);
    ck_assert_int_eq(tk_wr_queue_id_verify(&stranger, id, len, event, &ticket, &joined), -1);
    /* every single-character change is refused */
    for (size_t i = 0; i < len; ++i) {
        memcpy(forged, id, len);
        forged[i] = forged[i] == 'a' ? 'b' : 'a';
        ck_assert_msg(tk_wr_queue_id_verify(&c, forged, len, event, &ticket, &joined) == -1, "change at %zu accepted", i);
    }
    /* another event or ticket with the same signature */
    memcpy(forged, id, len);
    memcpy(forged, OTHER, 36);
    ck_assert_int_eq(tk_wr_queue_id_verify(&c, forged, len, event, &ticket, &joined), -1);
    memcpy(forged, id, len);
    forged[37] = '1'; /* ticket 17 */
    ck_assert_int_eq(tk_wr_queue_id_verify(&c, forged, len, event, &ticket, &joined), -1);
    /* truncated, extended, upper-cased, leading zero, ticket 0 */
    ck_assert_int_eq(tk_wr_queue_id_verify(&c, id, len - 1, event, &ticket, &joined), -1);
    memcpy(forged, id, len);
    forged[len] = 'A';
    ck_assert_int_eq(tk_wr_queue_id_verify(&c, forged, len + 1, event, &ticket, &joined), -1);
    memcpy(forged, id, len);
    forged[0] = 'A';
    ck_assert_int_eq(tk_wr_queue_id_verify(&c, forged, len, event, &ticket, &joined), -1);
    char zero[TK_WR_QUEUE_ID_MAX];
    size_t zlen = tk_wr_queue_id_sign(&c, EVENT, 0, 1796508397000, zero);
    ck_assert_int_eq(tk_wr_queue_id_verify(&c, zero, zlen, event, &ticket, &joined), -1);
    snprintf(forged, sizeof(forged), "%.36s.057.1796508397000.%s", EVENT, id + 54);
    ck_assert_int_eq(tk_wr_queue_id_verify(&c, forged, strlen(forged), event, &ticket, &joined), -1);
    ck_assert_int_eq(tk_wr_queue_id_verify(&c, "", 0, event, &ticket, &joined), -1);
}
END_TEST

START_TEST(admission_verifies_and_is_bound_to_event_ticket_and_expiry)
{
    tk_config_t c = secret_a();
    tk_wr_admission_t adm = {.ticket = 12, .until_ms = 1796508397000}, got;
    memcpy(adm.event, EVENT, 37);
    char token[TK_WR_ADMISSION_MAX], forged[TK_WR_ADMISSION_MAX];
    size_t len = tk_wr_admission_sign(&c, &adm, token);
    ck_assert_int_eq(tk_wr_admission_verify(&c, token, len, &got), 0);
    ck_assert_str_eq(got.event, EVENT);
    ck_assert_int_eq(got.ticket, 12);
    ck_assert_int_eq(got.until_ms, 1796508397000);
    /* a later expiry with the old signature */
    char *sig = strrchr(token, '.') + 1;
    snprintf(forged, sizeof(forged), "%.36s.12.1796508398000.%s", EVENT, sig);
    ck_assert_int_eq(tk_wr_admission_verify(&c, forged, strlen(forged), &got), -1);
    snprintf(forged, sizeof(forged), "%.36s.12.1796508397000.%s", OTHER, sig);
    ck_assert_int_eq(tk_wr_admission_verify(&c, forged, strlen(forged), &got), -1);
    snprintf(forged, sizeof(forged), "%.36s.13.1796508397000.%s", EVENT, sig);
    ck_assert_int_eq(tk_wr_admission_verify(&c, forged, strlen(forged), &got), -1);
}
END_TEST

START_TEST(a_queue_id_is_no_admission_and_the_reverse)
{
    tk_config_t c = secret_a();
    char id[TK_WR_QUEUE_ID_MAX], token[TK_WR_ADMISSION_MAX], event[37], fake[TK_WR_ADMISSION_MAX];
    int64_t ticket, joined;
    tk_wr_admission_t adm = {.ticket = 5, .until_ms = 1796508397000}, got;
    memcpy(adm.event, EVENT, 37);
    size_t qlen = tk_wr_queue_id_sign(&c, EVENT, 5, 1796508397000, id);
    size_t alen = tk_wr_admission_sign(&c, &adm, token);
    ck_assert_int_eq(tk_wr_queue_id_verify(&c, token, alen, event, &ticket, &joined), -1);
    ck_assert_int_eq(tk_wr_admission_verify(&c, id, qlen, &got), -1);
    /* the queue id's signature spliced into an admission */
    snprintf(fake, sizeof(fake), "%.36s.5.1796508397000.%s", EVENT, id + 53);
    ck_assert_int_eq(tk_wr_admission_verify(&c, fake, strlen(fake), &got), -1);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("waitroom_token");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, queue_id_verifies_and_names_event_and_ticket);
    tcase_add_test(tc, queue_id_refuses_forgery_and_moves);
    tcase_add_test(tc, admission_verifies_and_is_bound_to_event_ticket_and_expiry);
    tcase_add_test(tc, a_queue_id_is_no_admission_and_the_reverse);
    suite_add_tcase(suite, tc);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}
