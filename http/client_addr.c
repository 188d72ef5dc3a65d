/*
 * Client addresses and the fair-use answers. X-Forwarded-For may come in several
 * headers; together they are one list, read from its right end. An entry that does not
 * parse ends the walk: the client is then the hop that reported it, because nothing it
 * says can be believed. If every entry is a trusted proxy, the leftmost is the client.
 */
#include "http/client_addr.h"
#include "http/respond.h"
#include "http/server.h"

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
    ssize_t found[XFF_HEADERS_MAX];
    size_t n = 0;
    for (ssize_t i = -1;
         n < XFF_HEADERS_MAX && (i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-forwarded-for"), i)) != -1;)
        found[n++] = i;
    while (n != 0 && !walk_entries(req->headers.entries[found[--n]].value, config, out))
        ;
    return 0;
}

tk_fairuse_t *tk_client_fairuse(h2o_req_t *req, const tk_config_t *config)
{
    tk_fairuse_t *fu = h2o_mem_alloc_pool(&req->pool, sizeof(*fu));
    tk_netaddr_t addr;
    tk_fairuse_init(fu, config, tk_client_addr(req, config, &addr) == 0 ? &addr : NULL);
    return fu;
}

int tk_client_refused(h2o_req_t *req, const redisReply *reply)
{
    int retry_after;
    tk_fairuse_refusal_t refusal = tk_fairuse_parse_refusal(reply, &retry_after);
    if (refusal == TK_FAIRUSE_ADMITTED)
        return 0;
    tk_thread_t *thread = tk_thread_of(req);
    switch (refusal) {
    case TK_FAIRUSE_TOO_MANY: {
        char *seconds = h2o_mem_alloc_pool(&req->pool, 16);
        size_t len = (size_t)snprintf(seconds, 16, "%d", retry_after);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, seconds, len);
        tk_metrics_inc(&thread->metrics.fairuse_refusals);
        tk_respond_error(req, 429, "Too many holds", "This client holds too many reservations or asks too fast; try again shortly");
        break;
    }
    case TK_FAIRUSE_PAUSED:
        tk_metrics_inc(&thread->metrics.overload_refusals);
        tk_respond_unavailable(req, "Sales are paused while the database catches up; try again");
        break;
    default:
        tk_metrics_inc(&thread->metrics.overload_refusals);
        tk_respond_unavailable(req, "Sales are paused: the store is full; try again");
        break;
    }
    return 1;
}
