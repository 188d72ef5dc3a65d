/*
 * Unit tests of http/framing.c: request heads whose body framing two parsers could read
 * two ways (Content-Length with Transfer-Encoding, two different Content-Lengths, two
 * Transfer-Encodings) and the ordinary heads that must pass, in CRLF and bare-LF form.
 */
#include "http/framing.h"

#include <check.h>
#include <string.h>

static tk_framing_t check_head(const char *head)
{
    return tk_framing_check(head, strlen(head));
}

START_TEST(ordinary_heads_pass)
{
    ck_assert_int_eq(check_head("GET / HTTP/1.1\r\nhost: x\r\n\r\n"), TK_FRAMING_OK);
    ck_assert_int_eq(check_head("POST /e HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{}"), TK_FRAMING_OK);
    ck_assert_int_eq(check_head("POST /e HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"), TK_FRAMING_OK);
    /* the same length twice is one reading (RFC 9112 6.3 allows accepting it) */
    ck_assert_int_eq(check_head("POST /e HTTP/1.1\r\ncontent-length: 2\r\nContent-Length:  2 \r\n\r\n{}"), TK_FRAMING_OK);
    ck_assert_int_eq(check_head("GET / HTTP/1.1\nhost: x\ncontent-length: 0\n\n"), TK_FRAMING_OK);
    /* what follows the head is not read: a body or a pipelined request may say anything */
    ck_assert_int_eq(check_head("POST /e HTTP/1.1\r\ncontent-length: 40\r\n\r\ncontent-length: 5\r\ntransfer-encoding: x\r\n"),
                     TK_FRAMING_OK);
    /* names that merely contain the words */
    ck_assert_int_eq(check_head("GET / HTTP/1.1\r\nx-content-length: 1\r\ncontent-length: 2\r\ntransfer-encodings: a\r\n\r\n"),
                     TK_FRAMING_OK);
    /* a folded continuation line names no header */
    ck_assert_int_eq(check_head("GET / HTTP/1.1\r\nx-a: 1\r\n content-length: 9\r\ncontent-length: 2\r\n\r\n"), TK_FRAMING_OK);
}
END_TEST

START_TEST(length_with_chunked_is_ambiguous_in_either_order)
{
    ck_assert_int_eq(check_head("POST /e HTTP/1.1\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"),
                     TK_FRAMING_LENGTH_AND_CHUNKED);
    ck_assert_int_eq(check_head("POST /e HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
                     TK_FRAMING_LENGTH_AND_CHUNKED);
    ck_assert_int_eq(check_head("POST /e HTTP/1.1\ntransfer-encoding: chunked\ncontent-length: 0\n\n"),
                     TK_FRAMING_LENGTH_AND_CHUNKED);
    ck_assert_int_eq(check_head("POST /e HTTP/1.1\r\ncontent-length:5\r\ntransfer-encoding:chunked\r\n\r\n"),
                     TK_FRAMING_LENGTH_AND_CHUNKED);
}
END_TEST

/* picohttpparser skips one empty line before the request line; so does the check */
START_TEST(an_empty_line_before_the_request_line_hides_nothing)
{
    ck_assert_int_eq(check_head("\r\nPOST /e HTTP/1.1\r\ncontent-length: 40\r\ntransfer-encoding: chunked\r\n\r\n"),
                     TK_FRAMING_LENGTH_AND_CHUNKED);
    ck_assert_int_eq(check_head("\nPOST /e HTTP/1.1\ncontent-length: 2\ncontent-length: 3\n\n"), TK_FRAMING_LENGTHS_DIFFER);
    ck_assert_int_eq(check_head("\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n"), TK_FRAMING_OK);
}
END_TEST

START_TEST(different_lengths_are_ambiguous)
{
    ck_assert_int_eq(check_head("POST /e HTTP/1.1\r\ncontent-length: 2\r\ncontent-length: 40\r\n\r\n{}"),
                     TK_FRAMING_LENGTHS_DIFFER);
    ck_assert_int_eq(check_head("POST /e HTTP/1.1\r\ncontent-length: 2\r\nhost: x\r\nCONTENT-LENGTH: 02\r\n\r\n{}"),
                     TK_FRAMING_LENGTHS_DIFFER);
    ck_assert_int_eq(check_head("POST /e HTTP/1.1\r\ncontent-length: 2\r\ncontent-length: \r\n\r\n{}"), TK_FRAMING_LENGTHS_DIFFER);
}
END_TEST

START_TEST(two_transfer_encodings_are_ambiguous)
{
    ck_assert_int_eq(check_head("POST /e HTTP/1.1\r\ntransfer-encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n"),
                     TK_FRAMING_TRANSFER_CODINGS);
}
END_TEST

START_TEST(a_head_without_its_blank_line_is_reported)
{
    ck_assert_int_eq(check_head("GET / HTTP/1.1\r\nhost: x\r\n"), TK_FRAMING_HEAD_INCOMPLETE);
    ck_assert_int_eq(check_head("GET / HTTP/1.1\r\nhost: x"), TK_FRAMING_HEAD_INCOMPLETE);
    ck_assert_int_eq(tk_framing_check("", 0), TK_FRAMING_HEAD_INCOMPLETE);
    ck_assert_str_ne(tk_framing_reason(TK_FRAMING_LENGTHS_DIFFER), tk_framing_reason(TK_FRAMING_LENGTH_AND_CHUNKED));
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("framing");
    TCase *tc = tcase_create("framing");
    tcase_add_test(tc, ordinary_heads_pass);
    tcase_add_test(tc, length_with_chunked_is_ambiguous_in_either_order);
    tcase_add_test(tc, an_empty_line_before_the_request_line_hides_nothing);
    tcase_add_test(tc, different_lengths_are_ambiguous);
    tcase_add_test(tc, two_transfer_encodings_are_ambiguous);
    tcase_add_test(tc, a_head_without_its_blank_line_is_reported);
    suite_add_tcase(suite, tc);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed != 0;
}
