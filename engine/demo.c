/*
 * The demo catalog, dated relative to today so it is always upcoming.
 */
#include "engine/demo.h"
#include "engine/catalog.h"
#include "engine/pg.h"
#include "engine/timefmt.h"
#include "engine/uuid.h"

#include <string.h>

#define DAY_MS (INT64_C(86400) * 1000)

static const struct {
    const char *name;
    int days_ahead;
    int hour_utc;
    struct {
        const char *type;
        int64_t price_minor, amount;
    } types[3];
} demo_events[] = {
    {"New Year Gala", 30, 20, {{"VIP", 35000, 100}, {"Silver", 12050, 500}, {"Standing", 4900, 2000}}},
    {"Philharmonic: Beethoven 9", 45, 19, {{"Box", 22000, 40}, {"Stalls", 9000, 600}, {"Balcony", 5500, 400}}},
    {"Indie Rock Night", 60, 21, {{"Early Bird", 2500, 300}, {"Regular", 3900, 1200}}},
    {"City Marathon Expo", 90, 9, {{"Day Pass", 1500, 5000}}},
};

int tk_demo_load(PGconn *pg, int *loaded, char *err, size_t errsize)
{
    int64_t today = tk_time_now_ms() / DAY_MS * DAY_MS;
    tk_catalog_t *c = tk_catalog_new(0);
    for (size_t i = 0; i < sizeof(demo_events) / sizeof(demo_events[0]); ++i) {
        char id[TK_UUID_LEN + 1];
        tk_uuid_v4(id);
        int64_t date = today + demo_events[i].days_ahead * DAY_MS + demo_events[i].hour_utc * DAY_MS / 24;
        tk_catalog_add_event(c, id, demo_events[i].name, strlen(demo_events[i].name), date);
        for (size_t j = 0; j < 3 && demo_events[i].types[j].type != NULL; ++j) {
            tk_uuid_v4(id);
            tk_catalog_add_type(c, id, demo_events[i].types[j].type, strlen(demo_events[i].types[j].type),
                                demo_events[i].types[j].price_minor, demo_events[i].types[j].amount);
        }
    }
    tk_catalog_seal(c);
    int rc = tk_pg_insert_if_empty(pg, c, loaded, err, errsize);
    tk_catalog_release(c);
    return rc;
}
