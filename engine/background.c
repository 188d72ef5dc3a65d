/*
 * Starting and stopping the engine's background threads in their order (background.h).
 */
#include "engine/background.h"
#include "engine/log.h"
#include "engine/refresher.h"
#include "engine/waitroom_view.h"
#include "engine/worker.h"
#include "engine/writer.h"

#define WORKER_THREADS 2
#define WORKER_QUEUE_LIMIT 1024
#define WAITROOMS_WAIT_MS 3000

int tk_background_start(const tk_config_t *config)
{
    if (tk_workers_start(config, WORKER_THREADS, WORKER_QUEUE_LIMIT) != 0 || tk_refresher_start(config) != 0 ||
        tk_writer_start(config) != 0 || tk_wr_refresher_start(config) != 0)
        return -1;
    /* Reservations answer 503 until the waiting rooms are known (a queue is never skipped
     * because this process has not read it yet): the first round takes milliseconds, so
     * wait for it rather than greet the first buyers with 503. Redis unreachable: go on. */
    if (!tk_wr_rooms_await(WAITROOMS_WAIT_MS))
        tk_log_warn("waitroom", "waiting rooms not read within %d ms: reservations answer 503 until they are", WAITROOMS_WAIT_MS);
    return 0;
}

int tk_background_idle(void)
{
    return tk_workers_idle();
}

void tk_background_stop(int writer_drain_ms)
{
    tk_wr_refresher_stop();
    tk_writer_stop(writer_drain_ms);
    tk_refresher_stop();
    tk_workers_stop();
}
