/*
 * Conversions between JSON numbers, integer minor units and SQL numerics. Doubles are
 * accepted only when they sit within a thousandth of a cent of a whole number of cents,
 * so 0.1 + 0.2 style artefacts pass while 1.005 (three decimals) is refused at any size.
 */
#include "engine/money.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>

int tk_money_from_double(double major, int64_t *minor)
{
    if (!isfinite(major) || major < 0)
        return -1;
    double cents = major * 100.0;
    if (cents > (double)TK_MONEY_MAX_MINOR)
        return -1;
    double rounded = round(cents);
    /* an absolute tolerance: doubles resolve far finer than 0.001 cent up to the maximum */
    if (fabs(cents - rounded) > 1e-3)
        return -1;
    *minor = (int64_t)rounded;
    return 0;
}

size_t tk_money_format_json(int64_t minor, char *buf, size_t bufsize)
{
    int64_t major = minor / 100, cents = minor % 100;
    int n;
    if (cents == 0)
        n = snprintf(buf, bufsize, "%" PRId64 ".0", major);
    else if (cents % 10 == 0)
        n = snprintf(buf, bufsize, "%" PRId64 ".%" PRId64, major, cents / 10);
    else
        n = snprintf(buf, bufsize, "%" PRId64 ".%02" PRId64, major, cents);
    return n < 0 ? 0 : (size_t)n;
}

size_t tk_money_format_sql(int64_t minor, char *buf, size_t bufsize)
{
    int n = snprintf(buf, bufsize, "%" PRId64 ".%02" PRId64, minor / 100, minor % 100);
    return n < 0 ? 0 : (size_t)n;
}
