/*
 * The gateway simulator. Charges wait on one h2o timeout list (all share the same
 * latency, so a list is a queue); pending charges come from a free list.
 */
#include "engine/payment.h"

#include <string.h>

typedef struct st_tk_simulated_charge_t {
    h2o_timeout_entry_t timer;
    tk_charge_outcome_t outcome;
    const char *error;
    tk_charge_cb cb;
    void *data;
    struct st_tk_simulator_t *owner;
    struct st_tk_simulated_charge_t *next_free;
} tk_simulated_charge_t;

typedef struct st_tk_simulator_t {
    tk_gateway_t super;
    h2o_loop_t *loop;
    h2o_timeout_t latency;
    tk_simulated_charge_t *free_list;
} tk_simulator_t;

tk_charge_outcome_t tk_gateway_simulated_outcome(const char *card, const char **error)
{
    if (strcmp(card, TK_CARD_DECLINED) == 0) {
        *error = "Your card has been declined";
        return TK_CHARGE_DECLINED;
    }
    if (strcmp(card, TK_CARD_ERROR) == 0) {
        *error = "Something went wrong with your transaction";
        return TK_CHARGE_FAILED;
    }
    *error = NULL;
    return TK_CHARGE_APPROVED;
}

static void on_answer(h2o_timeout_entry_t *entry)
{
    tk_simulated_charge_t *charge = H2O_STRUCT_FROM_MEMBER(tk_simulated_charge_t, timer, entry);
    tk_simulator_t *sim = charge->owner;
    tk_charge_cb cb = charge->cb;
    void *data = charge->data;
    tk_charge_outcome_t outcome = charge->outcome;
    const char *error = charge->error;
    charge->next_free = sim->free_list;
    sim->free_list = charge;
    cb(outcome, error, data);
}

static int simulator_charge(tk_gateway_t *self, const char *txn_id, const char *card, int64_t amount_minor, tk_charge_cb cb,
                            void *data)
{
    tk_simulator_t *sim = (tk_simulator_t *)self;
    tk_simulated_charge_t *charge = sim->free_list;
    if (charge != NULL)
        sim->free_list = charge->next_free;
    else
        charge = h2o_mem_alloc(sizeof(*charge));
    *charge = (tk_simulated_charge_t){.timer = {.cb = on_answer}, .cb = cb, .data = data, .owner = sim};
    charge->outcome = tk_gateway_simulated_outcome(card, &charge->error);
    h2o_timeout_link(sim->loop, &sim->latency, &charge->timer);
    return 0;
}

tk_gateway_t *tk_gateway_simulator_create(h2o_loop_t *loop, int latency_ms)
{
    tk_simulator_t *sim = h2o_mem_alloc(sizeof(*sim));
    *sim = (tk_simulator_t){.super = {.name = "simulator", .charge = simulator_charge}, .loop = loop};
    h2o_timeout_init(loop, &sim->latency, (uint64_t)latency_ms);
    return &sim->super;
}
