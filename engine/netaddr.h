/*
 * Network addresses as fair use needs them: parsed from text (IPv4, IPv6, either with a
 * port, IPv6 in brackets), from a socket address, or as a CIDR prefix; compared against a
 * list of prefixes (the trusted proxies); and reduced to the part that names one client.
 * An IPv4-mapped IPv6 address is its IPv4 address, and an IPv6 client is its /64, since
 * one subscriber is routinely given a whole /64 and could otherwise pick a fresh address
 * per request.
 */
#ifndef TK_NETADDR_H
#define TK_NETADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct st_tk_netaddr_t {
    int family;        /* AF_INET or AF_INET6 */
    uint8_t bytes[16]; /* network order; 4 used for AF_INET */
    unsigned prefix;   /* significant bits: 32 / 128 for an address, less for a range */
} tk_netaddr_t;

/* "1.2.3.4", "1.2.3.4:80", "::1", "[::1]:80", surrounding blanks ignored; 0 or -1 */
int tk_netaddr_parse(const char *s, size_t len, tk_netaddr_t *out);
/* an address, or a range "10.0.0.0/8", "fd00::/8"; 0 or -1 */
int tk_netaddr_parse_range(const char *s, size_t len, tk_netaddr_t *out);
/* from getpeername()'s answer; -1 for other families (then no client can be named) */
int tk_netaddr_from_sockaddr(const struct sockaddr *sa, tk_netaddr_t *out);
/* whether addr lies in one of the n ranges */
int tk_netaddr_in(const tk_netaddr_t *addr, const tk_netaddr_t *ranges, size_t n);
/* the bytes that name one client: the IPv4 address, or the /64 of an IPv6 one */
size_t tk_netaddr_client_bytes(const tk_netaddr_t *addr, uint8_t *out);
/* "1.2.3.4" / "2001:db8::" (with "/n" when a range); returns the length written */
size_t tk_netaddr_format(const tk_netaddr_t *addr, char *buf, size_t bufsize);

#endif
