/*
 * The names of the API's reservation statuses, both ways.
 */
#include "engine/shop_types.h"

#include <string.h>

static const char *const status_names[] = {
    [TK_RES_PENDING] = "PENDING", [TK_RES_COMPLETED] = "COMPLETED", [TK_RES_CANCELLED] = "CANCELLED"};

const char *tk_res_status_name(tk_res_status_t status)
{
    return status_names[status];
}

int tk_res_status_parse(const char *s, size_t len, tk_res_status_t *out)
{
    for (size_t i = 0; i < sizeof(status_names) / sizeof(status_names[0]); ++i) {
        if (h2o_memis(s, len, status_names[i], strlen(status_names[i]))) {
            *out = (tk_res_status_t)i;
            return 0;
        }
    }
    return -1;
}
