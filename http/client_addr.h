/*
 * Who the client is, for fair use (API.md "Fair use"): the peer address, or, when the
 * peer is one of TICKETD_TRUSTED_PROXIES, the first address of X-Forwarded-For that is
 * not a trusted proxy, walking from the right (the end the proxies append to; whatever
 * is further left was written by the client and proves nothing).
 */
#ifndef TK_CLIENT_ADDR_H
#define TK_CLIENT_ADDR_H

#include "engine/config.h"
#include "engine/netaddr.h"

#include <h2o.h>

/* 0 and the client's address; -1 when the connection has no IP peer */
int tk_client_addr(h2o_req_t *req, const tk_config_t *config, tk_netaddr_t *out);

#endif
