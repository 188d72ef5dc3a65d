/*
 * Starting and stopping the engine's background threads in their order (background.h).
 */
#include "engine/background.h"
#include "engine/refresher.h"
#include "engine/waitroom_view.h"
#include "engine/worker.h"
#include "engine/writer.h"

#define WORKER_THREADS 2
#define WORKER_QUEUE_LIMIT 1024

int tk_background_start(const tk_config_t *config)
{
    return tk_workers_start(config, WORKER_THREADS, WORKER_QUEUE_LIMIT) == 0 && tk_refresher_start(config) == 0 &&
                   tk_writer_start(config) == 0 && tk_wr_refresher_start(config) == 0
               ? 0
               : -1;
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
