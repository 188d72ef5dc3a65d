/*
 * Client addresses. X-Forwarded-For may come in several
 * headers; together they are one list, read from its right end. An entry that does not
 * parse ends the walk: the client is then the hop that reported it, because nothing it
 * says can be believed. If every entry is a trusted proxy, the leftmost is the client.
 */
#include "http/client_addr.h"

#include <string.h>

#define XFF_HEADERS_MAX 16

/* Walks one header's entries from the right; 1 when the client was found. */
static int walk_entries(h2o_iovec_t value, const tk_config_t *config, tk_netaddr_t *client)
{
    size_t end = value.len;
    while (end != 0) {
        size_t start = end;
        while (start != 0 && value.base[start - 1] != ',')
            --start;
        tk_netaddr_t hop;
        if (tk_netaddr_parse(value.base + start, end - start, &hop) != 0)
            return 1; /* garbage: the hop that reported it (already in *client) is the client */
        *client = hop;
        if (!tk_netaddr_in(&hop, config->trusted_proxies, config->ntrusted_proxies))
            return 1;
        end = start != 0 ? start - 1 : 0;
    }
    return 0;
}

int tk_client_addr(h2o_req_t *req, const tk_config_t *config, tk_netaddr_t *out)
{
    struct sockaddr_storage ss;
    if (req->conn->callbacks->get_peername == NULL || req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss) == 0 ||
        tk_netaddr_from_sockaddr((struct sockaddr *)&ss, out) != 0)
        return -1;
    if (config->ntrusted_proxies == 0 || !tk_netaddr_in(out, config->trusted_proxies, config->ntrusted_proxies))
        return 0;
    /* the last XFF_HEADERS_MAX headers: the list is read from its right end, where the
     * trusted proxy wrote, so a client's own headers in front of it cannot push it out */
    ssize_t last[XFF_HEADERS_MAX];
    size_t n = 0;
    for (ssize_t i = -1; (i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-forwarded-for"), i)) != -1;)
        last[n++ % XFF_HEADERS_MAX] = i;
    for (size_t k = 0; k < n && k < XFF_HEADERS_MAX; ++k)
        if (walk_entries(req->headers.entries[last[(n - 1 - k) % XFF_HEADERS_MAX]].value, config, out))
            break;
    return 0;
}
