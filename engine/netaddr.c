/*
 * Address parsing and prefix matching with inet_pton/inet_ntop; no allocation, so it is
 * safe on the request path and in configuration loading alike.
 */
#include "engine/netaddr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* An IPv4-mapped IPv6 address is the IPv4 address it carries. */
static void unmap(tk_netaddr_t *a)
{
    if (a->family == AF_INET6 && memcmp(a->bytes, v4_mapped, 12) == 0) {
        a->family = AF_INET;
        memmove(a->bytes, a->bytes + 12, 4);
        memset(a->bytes + 4, 0, 12);
        a->prefix = a->prefix >= 96 ? a->prefix - 96 : 0;
    }
}

static int from_text(const char *text, tk_netaddr_t *out)
{
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, text, out->bytes) == 1) {
        out->family = AF_INET;
        out->prefix = 32;
        return 0;
    }
    if (inet_pton(AF_INET6, text, out->bytes) == 1) {
        out->family = AF_INET6;
        out->prefix = 128;
        unmap(out);
        return 0;
    }
    return -1;
}

/* trims blanks; -1 when what is left does not fit buf */
static int trimmed(const char *s, size_t len, char *buf, size_t bufsize)
{
    while (len != 0 && isspace((unsigned char)*s))
        ++s, --len;
    while (len != 0 && isspace((unsigned char)s[len - 1]))
        --len;
    if (len == 0 || len >= bufsize)
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return 0;
}

int tk_netaddr_parse(const char *s, size_t len, tk_netaddr_t *out)
{
    char buf[64];
    if (trimmed(s, len, buf, sizeof(buf)) != 0)
        return -1;
    char *text = buf;
    if (*text == '[') { /* "[v6]" or "[v6]:port" */
        char *close = strchr(text, ']');
        if (close == NULL || (close[1] != '\0' && close[1] != ':'))
            return -1;
        *close = '\0';
        ++text;
    } else {
        char *colon = strchr(text, ':');
        if (colon != NULL && strchr(colon + 1, ':') == NULL) /* one colon: "v4:port" */
            *colon = '\0';
    }
    return from_text(text, out);
}

int tk_netaddr_parse_range(const char *s, size_t len, tk_netaddr_t *out)
{
    char buf[64];
    if (trimmed(s, len, buf, sizeof(buf)) != 0)
        return -1;
    char *slash = strchr(buf, '/');
    if (slash == NULL)
        return from_text(buf, out);
    *slash = '\0';
    char *end;
    long bits = strtol(slash + 1, &end, 10);
    if (slash[1] == '\0' || *end != '\0' || bits < 0 || from_text(buf, out) != 0)
        return -1;
    unsigned max = out->family == AF_INET ? 32 : 128;
    if (out->family == AF_INET && strchr(buf, ':') != NULL) /* "::ffff:a.b.c.d/n": n counts the mapped bits */
        bits -= 96;
    if (bits < 0 || (unsigned long)bits > max)
        return -1;
    out->prefix = (unsigned)bits;
    return 0;
}

int tk_netaddr_from_sockaddr(const struct sockaddr *sa, tk_netaddr_t *out)
{
    memset(out, 0, sizeof(*out));
    if (sa->sa_family == AF_INET) {
        out->family = AF_INET;
        out->prefix = 32;
        memcpy(out->bytes, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        out->family = AF_INET6;
        out->prefix = 128;
        memcpy(out->bytes, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        unmap(out);
        return 0;
    }
    return -1;
}

static int in_range(const tk_netaddr_t *a, const tk_netaddr_t *r)
{
    if (a->family != r->family)
        return 0;
    unsigned full = r->prefix / 8, rest = r->prefix % 8;
    if (memcmp(a->bytes, r->bytes, full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a->bytes[full] & mask) == (r->bytes[full] & mask);
}

int tk_netaddr_in(const tk_netaddr_t *addr, const tk_netaddr_t *ranges, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        if (in_range(addr, ranges + i))
            return 1;
    return 0;
}

size_t tk_netaddr_client_bytes(const tk_netaddr_t *addr, uint8_t *out)
{
    out[0] = addr->family == AF_INET ? 4 : 6;
    size_t n = addr->family == AF_INET ? 4 : 8;
    memcpy(out + 1, addr->bytes, n);
    return n + 1;
}

size_t tk_netaddr_format(const tk_netaddr_t *addr, char *buf, size_t bufsize)
{
    char text[INET6_ADDRSTRLEN];
    if (inet_ntop(addr->family, addr->bytes, text, sizeof(text)) == NULL)
        snprintf(text, sizeof(text), "?");
    unsigned full = addr->family == AF_INET ? 32 : 128;
    int n = addr->prefix == full ? snprintf(buf, bufsize, "%s", text) : snprintf(buf, bufsize, "%s/%u", text, addr->prefix);
    return n < 0 ? 0 : (size_t)n >= bufsize ? bufsize - 1 : (size_t)n;
}
