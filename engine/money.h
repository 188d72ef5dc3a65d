/*
 * Money. The server keeps amounts as integer minor units (cents); the wire carries
 * JSON numbers in the major unit with at most two decimals (120.5), and PostgreSQL
 * keeps numeric(12,2). These helpers are the only place the conversion happens.
 */
#ifndef TK_MONEY_H
#define TK_MONEY_H

#include <stddef.h>
#include <stdint.h>

/* largest amount numeric(12,2) holds, in minor units */
#define TK_MONEY_MAX_MINOR INT64_C(99999999999)

/* converts a JSON number to minor units; -1 when negative, over the maximum, not finite
 * or with more than two decimals */
int tk_money_from_double(double major, int64_t *minor);
/* writes minor units as a JSON number ("350.0", "120.5", "0.99") plus NUL; returns the length */
size_t tk_money_format_json(int64_t minor, char *buf, size_t bufsize);
/* writes minor units as a SQL numeric literal ("350.00") plus NUL; returns the length */
size_t tk_money_format_sql(int64_t minor, char *buf, size_t bufsize);

#endif
