/*
 * Server start-up and the loop threads. Listening sockets are all bound before any
 * thread starts, so "address in use" is reported once, plainly, with exit status 1.
 */
#include "http/server.h"
#include "engine/log.h"
#include "engine/timefmt.h"
#include "engine/worker.h"
#include "http/router.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DRAIN_TIMEOUT_MS 10000

static h2o_globalconf_t globalconf;
int tk_server_draining;

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

static void on_accept(h2o_socket_t *listener, const char *err)
{
    tk_thread_t *thread = listener->data;
    h2o_socket_t *sock;
    if (err != NULL)
        return;
    /* accept a burst per wake-up, as h2o's own server does */
    for (int i = 0; i < 16 && (sock = h2o_evloop_socket_accept(listener)) != NULL; ++i)
        h2o_accept(&thread->accept_ctx, sock);
}

/* On the loop thread: stop accepting. Connections already open are served until exit. */
static void on_control(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    tk_thread_t *thread = H2O_STRUCT_FROM_MEMBER(tk_thread_t, control_receiver, receiver);
    while (!h2o_linklist_is_empty(messages))
        h2o_linklist_unlink(messages->next);
    if (thread->listener != NULL) {
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
    return tk_workers_idle();
}

static void *thread_main(void *arg)
{
    tk_thread_t *thread = arg;
    h2o_context_init(&thread->ctx, h2o_evloop_create(), &globalconf);
    tk_engine_init(&thread->engine, thread->ctx.loop, thread->config, &thread->metrics, thread->index == 0);
    tk_metrics_register(&thread->metrics);
    thread->queue = h2o_multithread_create_queue(thread->ctx.loop);
    h2o_multithread_register_receiver(thread->queue, &thread->job_receiver, tk_workers_on_complete);
    h2o_multithread_register_receiver(thread->queue, &thread->control_receiver, on_control);
    __atomic_store_n(&thread->ready, 1, __ATOMIC_RELEASE);
    thread->accept_ctx = (h2o_accept_ctx_t){.ctx = &thread->ctx, .hosts = globalconf.hosts};
    thread->listener = h2o_evloop_socket_create(thread->ctx.loop, thread->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    thread->listener->data = thread;
    h2o_socket_read_start(thread->listener, on_accept);
    while (h2o_evloop_run(thread->ctx.loop, INT32_MAX) == 0)
        ;
    return NULL;
}

static tk_thread_t *threads; /* lives until the process exits: the loop threads run on it */
static size_t nthreads;

int tk_server_bind(const tk_config_t *config)
{
    char err[256];
    h2o_config_init(&globalconf);
    globalconf.server_name = h2o_iovec_init(H2O_STRLIT("ticketd"));
    /* bodies over 64 KiB get our JSON 413; h2o's own limit stops abuse beyond that */
    globalconf.max_request_entity_size = 1024 * 1024;
    h2o_hostconf_t *hostconf = h2o_config_register_host(&globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(pathconf, sizeof(*handler));
    handler->on_req = tk_router_on_req;
    tk_router_name_metrics();

    nthreads = (size_t)config->threads;
    threads = aligned_alloc(64, (sizeof(*threads) * nthreads + 63) / 64 * 64);
    memset(threads, 0, sizeof(*threads) * nthreads);
    for (size_t i = 0; i < nthreads; ++i) {
        threads[i].index = i;
        threads[i].config = config;
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
