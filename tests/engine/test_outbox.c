/*
 * Unit tests of engine/outbox: an outbox entry's fields to a record. Entries name their
 * reservation in field "r" beside the record ("m"); entries of earlier versions carry it
 * inside the record. The functions' own entries are decoded by tests/lua (test_outbox).
 */
#include "engine/outbox.h"
#include "tests/support/outbox_pack.h"

#include <check.h>
#include <msgpack.h>
#include <stdio.h>
#include <string.h>

static const char RID[] = "0a1b2c3d-0000-4000-8000-000000000001";
static const char OTHER[] = "0a1b2c3d-0000-4000-8000-000000000002";
static const char EVENT[] = "0a1b2c3d-0000-4000-8000-0000000000ee";
static const char TICKET[] = "0a1b2c3d-0000-4000-8000-0000000000f1";

/* A PENDING record of one ticket, as the functions store it; with "r" = rid unless NULL. */
static void record(msgpack_sbuffer *buf, const char *rid)
{
    tk_outbox_ticket_t ticket = {.price_minor = 1999};
    tk_outbox_record_t rec = {.created_ms = 1765000000000, .until_ms = 1765000900000, .tickets = &ticket, .ntickets = 1};
    snprintf(rec.rid, sizeof(rec.rid), "%s", rid != NULL ? rid : "");
    snprintf(rec.event, sizeof(rec.event), "%s", EVENT);
    snprintf(rec.status, sizeof(rec.status), "PENDING");
    snprintf(ticket.id, sizeof(ticket.id), "%s", TICKET);
    snprintf(ticket.type, sizeof(ticket.type), "GA");
    msgpack_packer pk;
    msgpack_sbuffer_init(buf);
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    tk_test_pack_record(&pk, &rec, rid != NULL);
}

static int decode(const char *field_r, const char *inner_r, tk_outbox_record_t *rec)
{
    msgpack_sbuffer buf;
    record(&buf, inner_r);
    int rc = tk_outbox_decode_entry(field_r, field_r != NULL ? strlen(field_r) : 0, buf.data, buf.size, rec);
    msgpack_sbuffer_destroy(&buf);
    return rc;
}

static void assert_record(tk_outbox_record_t *rec)
{
    ck_assert_str_eq(rec->rid, RID);
    ck_assert_str_eq(rec->event, EVENT);
    ck_assert_str_eq(rec->status, "PENDING");
    ck_assert_uint_eq(rec->ntickets, 1);
    ck_assert_str_eq(rec->tickets[0].id, TICKET);
    ck_assert_int_eq(rec->tickets[0].price_minor, 1999);
    tk_outbox_record_dispose(rec);
}

START_TEST(test_the_id_as_its_own_field)
{
    tk_outbox_record_t rec;
    ck_assert_int_eq(decode(RID, NULL, &rec), 0);
    assert_record(&rec);
}
END_TEST

START_TEST(test_the_id_inside_the_record_as_earlier_versions_wrote_it)
{
    tk_outbox_record_t rec;
    ck_assert_int_eq(decode(NULL, RID, &rec), 0);
    assert_record(&rec);
    msgpack_sbuffer buf;
    record(&buf, RID);
    ck_assert_int_eq(tk_outbox_decode(buf.data, buf.size, &rec), 0); /* the record alone */
    msgpack_sbuffer_destroy(&buf);
    assert_record(&rec);
}
END_TEST

START_TEST(test_the_same_id_in_both_places)
{
    tk_outbox_record_t rec;
    ck_assert_int_eq(decode(RID, RID, &rec), 0);
    assert_record(&rec);
}
END_TEST

START_TEST(test_two_different_ids_are_refused)
{
    tk_outbox_record_t rec;
    ck_assert_int_eq(decode(RID, OTHER, &rec), -1);
    ck_assert_int_eq(decode(OTHER, RID, &rec), -1);
}
END_TEST

START_TEST(test_no_id_or_a_malformed_one_is_refused)
{
    tk_outbox_record_t rec;
    ck_assert_int_eq(decode(NULL, NULL, &rec), -1);
    ck_assert_int_eq(decode("", NULL, &rec), -1);
    ck_assert_int_eq(decode("not-a-uuid", NULL, &rec), -1);
    ck_assert_int_eq(decode("0a1b2c3d-0000-4000-8000-00000000000", NULL, &rec), -1); /* one digit short */
}
END_TEST

START_TEST(test_a_record_that_is_not_msgpack_is_refused_whatever_its_id)
{
    tk_outbox_record_t rec;
    static const char junk[] = "{\"e\":\"x\"}";
    ck_assert_int_eq(tk_outbox_decode_entry(RID, strlen(RID), junk, strlen(junk), &rec), -1);
    ck_assert_int_eq(tk_outbox_decode_entry(RID, strlen(RID), junk, 0, &rec), -1);
}
END_TEST

static Suite *outbox_suite(void)
{
    Suite *s = suite_create("outbox");
    TCase *tc = tcase_create("entry");
    tcase_add_test(tc, test_the_id_as_its_own_field);
    tcase_add_test(tc, test_the_id_inside_the_record_as_earlier_versions_wrote_it);
    tcase_add_test(tc, test_the_same_id_in_both_places);
    tcase_add_test(tc, test_two_different_ids_are_refused);
    tcase_add_test(tc, test_no_id_or_a_malformed_one_is_refused);
    tcase_add_test(tc, test_a_record_that_is_not_msgpack_is_refused_whatever_its_id);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(outbox_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
