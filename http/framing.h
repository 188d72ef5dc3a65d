/*
 * HTTP/1.1 message framing that two parsers could read two ways. h2o 2.2.5 accepts a
 * request with both Content-Length and Transfer-Encoding (it reads the body as chunked)
 * and, of two different Content-Length headers, uses the first; a proxy in front that
 * picks the other reading sees a different request boundary, and whatever lies between
 * the two is a request smuggled past it. The router asks this module about every
 * HTTP/1 request's raw head and refuses ambiguous ones with 400 and a closed connection.
 */
#ifndef TK_FRAMING_H
#define TK_FRAMING_H

#include <stddef.h>

typedef enum en_tk_framing_t {
    TK_FRAMING_OK = 0,
    TK_FRAMING_LENGTH_AND_CHUNKED, /* Content-Length beside Transfer-Encoding */
    TK_FRAMING_LENGTHS_DIFFER,     /* two Content-Length headers with different values */
    TK_FRAMING_TRANSFER_CODINGS,   /* more than one Transfer-Encoding header */
    TK_FRAMING_HEAD_INCOMPLETE,    /* no blank line ends the head within len bytes */
} tk_framing_t;

/* Reads the request head at the start of buf (request line, header lines, blank line;
 * CRLF or bare LF, as h2o's parser accepts) and says whether its body framing is
 * ambiguous. Header names are matched case-insensitively; Content-Length values are
 * compared as written, after trimming spaces and tabs (so "5" and " 5" agree). Bytes
 * after the head (the body, a pipelined request) are not read. */
tk_framing_t tk_framing_check(const char *buf, size_t len);
/* a short English reason for a verdict other than TK_FRAMING_OK */
const char *tk_framing_reason(tk_framing_t verdict);

#endif
