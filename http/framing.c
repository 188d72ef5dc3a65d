/*
 * The framing check: one pass over the header lines of a request head that h2o has
 * already parsed (so it is well-formed), noting Content-Length and Transfer-Encoding.
 * Continuation lines (obsolete line folding) start with a space or a tab and name no
 * header, so they are skipped.
 */
#include "http/framing.h"

#include <string.h>
#include <strings.h>

static int name_is(const char *line, size_t name_len, const char *name)
{
    return name_len == strlen(name) && strncasecmp(line, name, name_len) == 0;
}

/* the value of a header line after its colon, without surrounding spaces and tabs */
static void trimmed_value(const char *colon, const char *end, const char **value, size_t *value_len)
{
    const char *v = colon + 1;
    while (v < end && (*v == ' ' || *v == '\t'))
        ++v;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        --end;
    *value = v;
    *value_len = (size_t)(end - v);
}

tk_framing_t tk_framing_check(const char *buf, size_t len)
{
    const char *p = buf, *end = buf + len, *length = NULL;
    size_t length_len = 0, transfer_codings = 0;
    int first = 1;
    /* h2o's parser (picohttpparser) skips one empty line before the request line: some
     * clients send CRLF after a POST body, so the next request on the connection starts
     * with it. Taken for the blank line that ends the head, it would hide every header. */
    if (end - p >= 2 && p[0] == '\r' && p[1] == '\n')
        p += 2;
    else if (p < end && p[0] == '\n')
        p += 1;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            return TK_FRAMING_HEAD_INCOMPLETE;
        const char *line_end = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
        if (line_end == p)
            break; /* the blank line: end of the head */
        if (!first && *p != ' ' && *p != '\t') {
            const char *colon = memchr(p, ':', (size_t)(line_end - p));
            if (colon != NULL) {
                size_t name_len = (size_t)(colon - p);
                if (name_is(p, name_len, "transfer-encoding")) {
                    ++transfer_codings;
                } else if (name_is(p, name_len, "content-length")) {
                    const char *value;
                    size_t value_len;
                    trimmed_value(colon, line_end, &value, &value_len);
                    if (length != NULL && (value_len != length_len || memcmp(value, length, value_len) != 0))
                        return TK_FRAMING_LENGTHS_DIFFER;
                    length = value;
                    length_len = value_len;
                }
            }
        }
        first = 0;
        p = nl + 1;
    }
    if (p >= end)
        return TK_FRAMING_HEAD_INCOMPLETE;
    if (length != NULL && transfer_codings != 0)
        return TK_FRAMING_LENGTH_AND_CHUNKED;
    if (transfer_codings > 1)
        return TK_FRAMING_TRANSFER_CODINGS;
    return TK_FRAMING_OK;
}

const char *tk_framing_reason(tk_framing_t verdict)
{
    switch (verdict) {
    case TK_FRAMING_LENGTH_AND_CHUNKED:
        return "Content-Length and Transfer-Encoding together";
    case TK_FRAMING_LENGTHS_DIFFER:
        return "two different Content-Length values";
    case TK_FRAMING_TRANSFER_CODINGS:
        return "more than one Transfer-Encoding header";
    case TK_FRAMING_HEAD_INCOMPLETE:
        return "the request head could not be read again";
    case TK_FRAMING_OK:
        break;
    }
    return "unambiguous";
}
