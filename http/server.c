/*
 * Server start-up, the loop threads and their connections. Listening sockets are all
 * bound before any thread starts, so "address in use" is reported once, plainly, with
 * exit status 1. The soft file limit is raised to the hard one at start; each loop takes
 * its share of TICKETD_MAX_CONNECTIONS and stops reading its listener while it is full
 * (new clients wait in the kernel's backlog, the loop does not spin). When descriptors
 * run out anyway (EMFILE), the loop gives up its reserve descriptor for a moment to
 * accept and close one waiting connection, so a full table never leaves the listener
 * readable forever; such refusals are counted and logged at most once a second.
 */
#include "http/server.h"
#include "engine/log.h"
#include "engine/timefmt.h"
#include "engine/background.h"
#include "http/access_log.h"
#include "http/http_metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define DRAIN_TIMEOUT_MS 10000
#define FD_RESERVE 64       /* descriptors kept for the stores, the workers and the process itself */
#define FD_PER_THREAD 8     /* a loop's listener, reserve, epoll, wake-up pipe, Redis connection, … */
#define ACCEPT_RETRY_MS 100 /* a loop that could not get its reserve back tries again after this */
#define REFUSAL_LOG_MS 1000 /* at most one "refused" line per loop per second */
#define MIN_CONNECTIONS 16

static h2o_globalconf_t globalconf;
int tk_server_draining;

h2o_socket_t *tk_server_http1_socket(h2o_req_t *req)
{
    /* HTTP/2 (and h2c) streams share their connection's socket, whose input is frames;
     * only h2o's HTTP/1 connections fill in the http1 request-index logger */
    const h2o_conn_callbacks_t *cb = req->conn->callbacks;
    if (req->version >= 0x200 || cb->get_socket == NULL || cb->log_.http1.request_index == NULL)
        return NULL;
    return req->conn->callbacks->get_socket(req->conn);
}

static int bind_listener(const tk_config_t *config, char *err, size_t errsize)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res;
    char port[8];
    snprintf(port, sizeof(port), "%u", config->listen_port);
    int gai = getaddrinfo(config->listen_host, port, &hints, &res);
    if (gai != 0) {
        snprintf(err, errsize, "cannot resolve %s: %s", config->listen_host, gai_strerror(gai));
        return -1;
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, 0), on = 1;
    if (fd == -1 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0 ||
        listen(fd, 4096) != 0) {
        snprintf(err, errsize, "cannot listen on %s:%u: %s", config->listen_host, config->listen_port, strerror(errno));
        if (fd != -1)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static void on_accept(h2o_socket_t *listener, const char *err);

/* Logs refusals (or a full cap) at most once a second per loop, with how many since. */
static void log_refusal(tk_thread_t *thread, const char *what)
{
    ++thread->refusals_unlogged;
    int64_t now = tk_time_mono_ms();
    if (now - thread->refusals_logged_ms < REFUSAL_LOG_MS)
        return;
    tk_log_warn("server", "%s (%llu time%s on loop %zu since the last report)", what, (unsigned long long)thread->refusals_unlogged,
                thread->refusals_unlogged == 1 ? "" : "s", thread->index);
    thread->refusals_logged_ms = now;
    thread->refusals_unlogged = 0;
}

static void resume_accepting(tk_thread_t *thread)
{
    if (thread->accept_paused && thread->listener != NULL) {
        thread->accept_paused = 0;
        h2o_socket_read_start(thread->listener, on_accept);
    }
}

static void pause_accepting(tk_thread_t *thread)
{
    if (!thread->accept_paused) {
        thread->accept_paused = 1;
        h2o_socket_read_stop(thread->listener);
    }
}

static void on_accept_retry(h2o_timeout_entry_t *entry)
{
    tk_thread_t *thread = H2O_STRUCT_FROM_MEMBER(tk_thread_t, accept_retry_entry, entry);
    if (thread->reserve_fd == -1)
        thread->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (thread->reserve_fd == -1)
        h2o_timeout_link(thread->ctx.loop, &thread->accept_retry_timeout, &thread->accept_retry_entry);
    else if (thread->connections < thread->max_connections)
        resume_accepting(thread);
}

/* Out of descriptors: frees the reserve to take one waiting connection off the backlog and
 * close it, so the listener stops being readable for it, then takes the reserve back. */
static void refuse_connection(tk_thread_t *thread)
{
    if (thread->reserve_fd != -1) {
        close(thread->reserve_fd);
        int fd = accept4(thread->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd != -1)
            close(fd);
        thread->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    tk_http_metrics_connection_refused();
    log_refusal(thread, "refused a connection: out of file descriptors (raise the hard limit, ulimit -Hn, or lower "
                        "TICKETD_MAX_CONNECTIONS)");
    if (thread->reserve_fd == -1) {
        /* another part of the process took the descriptor: wait instead of spinning */
        pause_accepting(thread);
        if (!h2o_timeout_is_linked(&thread->accept_retry_entry))
            h2o_timeout_link(thread->ctx.loop, &thread->accept_retry_timeout, &thread->accept_retry_entry);
    }
}

static void on_socket_close(void *data)
{
    tk_thread_t *thread = data;
    --thread->connections;
    tk_http_metrics_connection_closed();
    if (thread->connections < thread->max_connections && thread->reserve_fd != -1)
        resume_accepting(thread);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    tk_thread_t *thread = listener->data;
    if (err != NULL)
        return;
    /* accept a burst per wake-up, as h2o's own server does */
    for (int i = 0; i < 16; ++i) {
        if (thread->connections >= thread->max_connections) {
            pause_accepting(thread);
            tk_http_metrics_accept_paused();
            log_refusal(thread, "TICKETD_MAX_CONNECTIONS reached: new connections wait until one closes");
            return;
        }
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL) {
            if (errno == EMFILE || errno == ENFILE)
                refuse_connection(thread);
            return;
        }
        ++thread->connections;
        tk_http_metrics_connection_opened();
        sock->on_close.cb = on_socket_close;
        sock->on_close.data = thread;
        h2o_accept(&thread->accept_ctx, sock);
    }
}

/* On the loop thread: stop accepting. Connections already open are served until exit. */
static void on_control(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    tk_thread_t *thread = H2O_STRUCT_FROM_MEMBER(tk_thread_t, control_receiver, receiver);
    while (!h2o_linklist_is_empty(messages))
        h2o_linklist_unlink(messages->next);
    if (thread->listener != NULL) {
        if (!thread->accept_paused)
            h2o_socket_read_stop(thread->listener);
        h2o_socket_close(thread->listener);
        thread->listener = NULL;
    }
}

/* Whether no thread has a Redis command, a gateway charge or a worker job outstanding. */
static int quiescent(tk_thread_t *threads, size_t nthreads)
{
    for (size_t i = 0; i < nthreads; ++i)
        if (tk_engine_busy(&threads[i].engine))
            return 0;
    return tk_background_idle();
}

static void *thread_main(void *arg)
{
    tk_thread_t *thread = arg;
    h2o_context_init(&thread->ctx, h2o_evloop_create(), &globalconf);
    tk_engine_init(&thread->engine, thread->ctx.loop, thread->config, &thread->metrics, thread->index == 0);
    tk_metrics_register(&thread->metrics);
    thread->queue = h2o_multithread_create_queue(thread->ctx.loop);
    h2o_multithread_register_receiver(thread->queue, &thread->control_receiver, on_control);
    __atomic_store_n(&thread->ready, 1, __ATOMIC_RELEASE);
    thread->accept_ctx = (h2o_accept_ctx_t){.ctx = &thread->ctx, .hosts = globalconf.hosts};
    thread->listener = h2o_evloop_socket_create(thread->ctx.loop, thread->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    thread->listener->data = thread;
    thread->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    h2o_timeout_init(thread->ctx.loop, &thread->accept_retry_timeout, ACCEPT_RETRY_MS);
    thread->accept_retry_entry.cb = on_accept_retry;
    h2o_socket_read_start(thread->listener, on_accept);
    while (h2o_evloop_run(thread->ctx.loop, INT32_MAX) == 0)
        ;
    return NULL;
}

static tk_thread_t *threads; /* lives until the process exits: the loop threads run on it */
static size_t nthreads;

/* Raises the soft limit on open files to the hard one; returns the soft limit in force. */
static size_t raise_file_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit want = {.rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &want) == 0)
            rl = want;
        else
            tk_log_warn("server", "cannot raise the open-file limit from %llu to %llu: %s", (unsigned long long)rl.rlim_cur,
                        (unsigned long long)rl.rlim_max, strerror(errno));
    }
    return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1u << 24) ? (1u << 24) : (size_t)rl.rlim_cur;
}

/* TICKETD_MAX_CONNECTIONS, or what the file limit leaves once the process's own needs are set aside */
static size_t connection_cap(const tk_config_t *config, size_t file_limit)
{
    size_t own = FD_RESERVE + FD_PER_THREAD * (size_t)config->threads;
    size_t fit = file_limit > own + MIN_CONNECTIONS ? file_limit - own : MIN_CONNECTIONS;
    if (config->max_connections == 0)
        return fit;
    if ((size_t)config->max_connections > fit)
        tk_log_warn("server",
                    "TICKETD_MAX_CONNECTIONS=%d is more than the open-file limit %zu leaves room for (%zu): "
                    "connections past that are refused",
                    config->max_connections, file_limit, fit);
    return (size_t)config->max_connections;
}

int tk_server_bind(const tk_config_t *config, int (*on_req)(h2o_handler_t *self, h2o_req_t *req), size_t (*slot_of)(h2o_req_t *req))
{
    char err[256];
    h2o_config_init(&globalconf);
    globalconf.server_name = h2o_iovec_init(H2O_STRLIT("ticketd"));
    /* bodies over 64 KiB get our JSON 413; h2o's own limit stops abuse beyond that */
    globalconf.max_request_entity_size = 1024 * 1024;
    /* HTTP/2 over cleartext (Upgrade: h2c and the prior-knowledge preface) only when asked:
     * h2o 2.2.5 has no defence against rapid reset (SECURITY.md) */
    globalconf.http1.upgrade_to_http2 = config->http2;
    h2o_hostconf_t *hostconf = h2o_config_register_host(&globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(pathconf, sizeof(*handler));
    handler->on_req = on_req;
    /* the fallback path is where h2o's own errors (broken framing, body too large) are answered */
    tk_access_log_register(pathconf, slot_of);
    tk_access_log_register(&hostconf->fallback_path, slot_of);
    tk_http_metrics_init();

    size_t cap = connection_cap(config, raise_file_limit());
    nthreads = (size_t)config->threads;
    threads = aligned_alloc(64, (sizeof(*threads) * nthreads + 63) / 64 * 64);
    memset(threads, 0, sizeof(*threads) * nthreads);
    for (size_t i = 0; i < nthreads; ++i) {
        threads[i].index = i;
        threads[i].config = config;
        threads[i].max_connections = (cap + nthreads - 1) / nthreads;
        if ((threads[i].listen_fd = bind_listener(config, err, sizeof(err))) == -1) {
            fprintf(stderr, "ticketd: %s\n", err);
            for (size_t j = 0; j < i; ++j)
                close(threads[j].listen_fd);
            free(threads);
            threads = NULL;
            return 1;
        }
    }
    return 0;
}

int tk_server_run(void)
{
    /* SIGINT/SIGTERM are taken by sigwait below; main blocked them before starting any thread */
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    for (size_t i = 0; i < nthreads; ++i) {
        if (pthread_create(&threads[i].tid, NULL, thread_main, threads + i) != 0) {
            fprintf(stderr, "ticketd: cannot start loop thread %zu\n", i);
            return 1;
        }
    }
    tk_log_info("server", "listening on %s:%u with %zu loop threads", threads[0].config->listen_host,
                threads[0].config->listen_port, nthreads);

    int sig = 0;
    sigwait(&signals, &sig);
    tk_log_info("server", "received %s: no new connections, finishing what is in flight", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    __atomic_store_n(&tk_server_draining, 1, __ATOMIC_RELEASE);
    for (size_t i = 0; i < nthreads; ++i) {
        while (!__atomic_load_n(&threads[i].ready, __ATOMIC_ACQUIRE))
            usleep(1000);
        h2o_multithread_send_message(&threads[i].control_receiver, &threads[i].stop_message);
    }
    int64_t deadline = tk_time_mono_ms() + DRAIN_TIMEOUT_MS;
    while (!quiescent(threads, nthreads) && tk_time_mono_ms() < deadline)
        usleep(20 * 1000);
    if (quiescent(threads, nthreads))
        tk_log_info("server", "in-flight work finished");
    else
        tk_log_warn("server", "gave up waiting for in-flight work after %d ms", DRAIN_TIMEOUT_MS);
    return 0;
}
