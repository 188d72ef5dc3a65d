/*
 * A fixed pool of worker threads around one mutex-guarded FIFO. Connections are made
 * lazily and remade after a failure, so a database restart costs the jobs that were
 * running at that moment, not the pool.
 */
#include "engine/worker.h"
#include "engine/log.h"
#include "engine/pg.h"

#include <pthread.h>

static struct {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    tk_job_t *head, **tail;
    size_t queued, limit;
    size_t running; /* taken by a worker and not yet done on its loop (tk_workers_on_complete) */
    int stopping;
    pthread_t *threads;
    size_t nthreads;
    const tk_config_t *config;
} pool = {.mutex = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

int tk_worker_conn_open(tk_worker_conn_t *conn, char *err, size_t errsize)
{
    if (conn->pg != NULL && PQstatus(conn->pg) != CONNECTION_OK) {
        PQfinish(conn->pg);
        conn->pg = NULL;
    }
    if (conn->pg == NULL && (conn->pg = tk_pg_connect(conn->config->pg_url, err, errsize)) == NULL)
        return -1;
    if (conn->redis == NULL && (conn->redis = tk_redis_nodes_open(conn->config, 2000, err, errsize)) == NULL)
        return -1;
    return 0;
}

int tk_worker_conn_ensure(tk_worker_conn_t *conn, char *err, size_t errsize)
{
    if (tk_worker_conn_open(conn, err, errsize) != 0)
        return -1;
    /* A master restarted, failed over or moved: read the map again and reconnect. One
     * that stays unreachable fails only the commands sent to it, not jobs that need
     * PostgreSQL or another master (during a failover, most of them). */
    if (!tk_redis_nodes_complete(conn->redis) && tk_redis_nodes_reconnect(conn->redis, err, errsize) != 0)
        return -1;
    return 0;
}

int tk_worker_run_pg(tk_worker_conn_t *conn, int (*fn)(PGconn *pg, void *arg), void *arg, char *err, size_t errsize)
{
    for (int attempt = 0; attempt < 2; ++attempt) {
        if (tk_worker_conn_ensure(conn, err, errsize) != 0)
            return -1;
        int rc = fn(conn->pg, arg);
        if (rc >= 0 || PQstatus(conn->pg) == CONNECTION_OK)
            return rc;
    }
    snprintf(err, errsize, "PostgreSQL connection lost: %s", PQerrorMessage(conn->pg));
    return -1;
}

void tk_worker_conn_dispose(tk_worker_conn_t *conn)
{
    if (conn->pg != NULL)
        PQfinish(conn->pg);
    tk_redis_nodes_close(conn->redis);
    conn->pg = NULL;
    conn->redis = NULL;
}

static void *worker_main(void *arg)
{
    tk_worker_conn_t conn = {.config = pool.config};
    for (;;) {
        pthread_mutex_lock(&pool.mutex);
        while (pool.head == NULL && !pool.stopping)
            pthread_cond_wait(&pool.cond, &pool.mutex);
        if (pool.head == NULL) {
            pthread_mutex_unlock(&pool.mutex);
            break;
        }
        tk_job_t *job = pool.head;
        if ((pool.head = job->next) == NULL)
            pool.tail = &pool.head;
        --pool.queued;
        ++pool.running;
        pthread_mutex_unlock(&pool.mutex);

        job->run(job, &conn);
        h2o_multithread_send_message(job->origin, &job->super); /* running until done has run */
    }
    tk_worker_conn_dispose(&conn);
    return NULL;
}

int tk_workers_start(const tk_config_t *config, size_t nthreads, size_t queue_limit)
{
    pool.config = config;
    pool.limit = queue_limit;
    pool.tail = &pool.head;
    pool.threads = h2o_mem_alloc(sizeof(*pool.threads) * nthreads);
    for (size_t i = 0; i < nthreads; ++i) {
        if (pthread_create(&pool.threads[i], NULL, worker_main, NULL) != 0) {
            tk_log_error("worker", "cannot start worker thread %zu", i);
            return -1;
        }
        ++pool.nthreads;
    }
    return 0;
}

void tk_workers_stop(void)
{
    pthread_mutex_lock(&pool.mutex);
    pool.stopping = 1;
    pthread_cond_broadcast(&pool.cond);
    pthread_mutex_unlock(&pool.mutex);
    for (size_t i = 0; i < pool.nthreads; ++i)
        pthread_join(pool.threads[i], NULL);
    free(pool.threads);
    pool.threads = NULL;
    pool.nthreads = 0;
}

int tk_workers_submit(tk_job_t *job)
{
    int rc = -1;
    job->next = NULL;
    pthread_mutex_lock(&pool.mutex);
    if (!pool.stopping && pool.nthreads != 0 && pool.queued < pool.limit) {
        *pool.tail = job;
        pool.tail = &job->next;
        ++pool.queued;
        pthread_cond_signal(&pool.cond);
        rc = 0;
    }
    pthread_mutex_unlock(&pool.mutex);
    return rc;
}

int tk_workers_idle(void)
{
    pthread_mutex_lock(&pool.mutex);
    int idle = pool.queued == 0 && pool.running == 0;
    pthread_mutex_unlock(&pool.mutex);
    return idle;
}

void tk_workers_on_complete(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        tk_job_t *job = H2O_STRUCT_FROM_MEMBER(tk_job_t, super.link, messages->next);
        h2o_linklist_unlink(&job->super.link);
        job->done(job);
        /* only now is the job's answer on its way: a drain that saw it idle earlier could
         * have ended the process before the answer was sent */
        pthread_mutex_lock(&pool.mutex);
        --pool.running;
        pthread_mutex_unlock(&pool.mutex);
    }
}
