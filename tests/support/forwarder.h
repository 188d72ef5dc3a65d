/*
 * A TCP forwarder for tests that need a connection to fail where they choose: it listens
 * on an ephemeral port of 127.0.0.1 and forwards every connection made to it (any number
 * at once) to a server, in a forked child. Optionally it loses one reply: the first time a
 * client sends bytes containing `cut`, they are forwarded and the client's connection is
 * closed at once, while the server's side stays open and what it answers is read and
 * thrown away. So the command runs and its sender hears nothing but the connection drop,
 * as when a link fails between a command and its reply. After that one cut, everything
 * passes.
 */
#ifndef TK_TESTS_SUPPORT_FORWARDER_H
#define TK_TESTS_SUPPORT_FORWARDER_H

#include <sys/types.h>

typedef struct st_tk_test_forwarder_t {
    pid_t pid;
    int port;   /* where it listens, on 127.0.0.1 */
    int cut_fd; /* readable once the cut has happened */
} tk_test_forwarder_t;

/* Starts forwarding to host:port (an IPv4 address); cut NULL: no reply is lost. Asserts
 * (check) that it could listen. */
void tk_test_forwarder_start(tk_test_forwarder_t *f, const char *host, int port, const char *cut);
/* whether the cut has happened */
int tk_test_forwarder_cut(const tk_test_forwarder_t *f);
/* kills the child and waits for it */
void tk_test_forwarder_stop(tk_test_forwarder_t *f);

#endif
