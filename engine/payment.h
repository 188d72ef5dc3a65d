/*
 * The payment gateway interface, and the one implementation ticketd has today: a
 * simulator that answers after TICKETD_PAYMENT_LATENCY_MS on the event loop (a timer,
 * never a sleep), its outcome decided by the test card numbers of API.md. A real
 * provider plugs in behind the same vtable: charge() starts a payment and calls back
 * on the same loop exactly once.
 */
#ifndef TK_PAYMENT_H
#define TK_PAYMENT_H

#include <h2o.h>
#include <stdint.h>

typedef enum en_tk_charge_outcome_t { TK_CHARGE_APPROVED = 0, TK_CHARGE_DECLINED, TK_CHARGE_FAILED } tk_charge_outcome_t;

/* error is NULL when approved; a message for a person otherwise (static storage) */
typedef void (*tk_charge_cb)(tk_charge_outcome_t outcome, const char *error, void *data);

typedef struct st_tk_gateway_t tk_gateway_t;
struct st_tk_gateway_t {
    const char *name;
    /* Starts charging amount_minor to card for transaction txn_id. Returns 0 and calls cb
     * later on the loop, or -1 (cb is never called) when it cannot start. */
    int (*charge)(tk_gateway_t *self, const char *txn_id, const char *card, int64_t amount_minor, tk_charge_cb cb, void *data);
};

#define TK_CARD_DEFAULT "4242424242424242"
#define TK_CARD_DECLINED "4000000000000002"
#define TK_CARD_ERROR "4000000000000119"

tk_gateway_t *tk_gateway_simulator_create(h2o_loop_t *loop, int latency_ms);
/* the simulator's verdict for a card number (exposed for tests) */
tk_charge_outcome_t tk_gateway_simulated_outcome(const char *card, const char **error);

#endif
