/*
 * The forwarder's child: one poll loop over the listening socket and every pair of
 * connections (client, server). Writes are blocking: test traffic is small, and the
 * server reads what it is sent. A pair whose client was cut keeps its server side until
 * the server closes it, so the cut command is read and run, not dropped with the socket.
 */
#include "tests/support/forwarder.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_PAIRS 64

typedef struct st_pair_t {
    int client; /* -1 once closed (cut) */
    int server; /* -1: the slot is free */
} pair_t;

static void close_pair(pair_t *p)
{
    if (p->client >= 0)
        close(p->client);
    close(p->server);
    *p = (pair_t){-1, -1};
}

static int connect_to(const struct sockaddr_in *to)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, (const struct sockaddr *)to, sizeof(*to)) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static void accept_pair(int lfd, const struct sockaddr_in *to, pair_t *pairs)
{
    int c = accept(lfd, NULL, NULL);
    if (c < 0)
        return;
    for (size_t i = 0; i < MAX_PAIRS; ++i) {
        if (pairs[i].server < 0 && (pairs[i].server = connect_to(to)) >= 0) {
            pairs[i].client = c;
            return;
        }
    }
    close(c);
}

/* Forwards until killed; one byte is written to report once the cut came. */
static void run_child(int lfd, const struct sockaddr_in *to, const char *cut, int report)
{
    pair_t pairs[MAX_PAIRS];
    for (size_t i = 0; i < MAX_PAIRS; ++i)
        pairs[i] = (pair_t){-1, -1};
    int cut_left = cut != NULL;
    char buf[65536];
    for (;;) {
        struct pollfd fds[1 + 2 * MAX_PAIRS] = {{.fd = lfd, .events = POLLIN}};
        for (size_t i = 0; i < MAX_PAIRS; ++i) {
            fds[1 + 2 * i] = (struct pollfd){.fd = pairs[i].client, .events = POLLIN};
            fds[2 + 2 * i] = (struct pollfd){.fd = pairs[i].server, .events = POLLIN};
        }
        if (poll(fds, 1 + 2 * MAX_PAIRS, -1) < 0)
            _exit(1);
        if (fds[0].revents != 0)
            accept_pair(lfd, to, pairs);
        for (size_t i = 0; i < MAX_PAIRS; ++i) {
            pair_t *p = pairs + i;
            if (p->client >= 0 && fds[1 + 2 * i].revents != 0) {
                ssize_t got = read(p->client, buf, sizeof(buf));
                if (got <= 0 || write(p->server, buf, (size_t)got) != got) {
                    close_pair(p);
                    continue;
                }
                if (cut_left && memmem(buf, (size_t)got, cut, strlen(cut)) != NULL) {
                    cut_left = 0;
                    close(p->client);
                    p->client = -1;
                    if (write(report, "c", 1) != 1)
                        _exit(1);
                }
            }
            if (p->server >= 0 && fds[2 + 2 * i].revents != 0) {
                ssize_t got = read(p->server, buf, sizeof(buf));
                if (got <= 0 || (p->client >= 0 && write(p->client, buf, (size_t)got) != got))
                    close_pair(p);
            }
        }
    }
}

void tk_test_forwarder_start(tk_test_forwarder_t *f, const char *host, int port, const char *cut)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0), report[2];
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    ck_assert(lfd >= 0 && bind(lfd, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(lfd, 64) == 0);
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
    ck_assert_int_eq(pipe(report), 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    ck_assert_int_eq(inet_pton(AF_INET, host, &to.sin_addr), 1);
    f->port = ntohs(a.sin_port);
    f->pid = fork();
    ck_assert_int_ge(f->pid, 0);
    if (f->pid == 0) {
        signal(SIGPIPE, SIG_IGN);
        close(report[0]);
        run_child(lfd, &to, cut, report[1]);
    }
    close(lfd);
    close(report[1]);
    f->cut_fd = report[0];
}

int tk_test_forwarder_cut(const tk_test_forwarder_t *f)
{
    struct pollfd p = {.fd = f->cut_fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

void tk_test_forwarder_stop(tk_test_forwarder_t *f)
{
    kill(f->pid, SIGKILL);
    waitpid(f->pid, NULL, 0);
    close(f->cut_fd);
}
