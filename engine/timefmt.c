/*
 * RFC 3339 formatting and parsing without the locale- and TZ-dependent libc calls:
 * days-from-civil arithmetic (Howard Hinnant's algorithm) both ways, so it is
 * thread-safe and exact for every year 0000–9999.
 */
#include "engine/timefmt.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>

int64_t tk_time_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t tk_time_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void tk_time_sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

size_t tk_time_format_rfc3339(int64_t ms, char *buf, size_t bufsize)
{
    int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    int millis = (int)(ms - secs * 1000);
    int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
    int sod = (int)(secs - days * 86400);
    int y, mo, d;
    civil_from_days(days, &y, &mo, &d);
    int n;
    if (millis != 0)
        n = snprintf(buf, bufsize, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, mo, d, sod / 3600, sod / 60 % 60, sod % 60, millis);
    else
        n = snprintf(buf, bufsize, "%04d-%02d-%02dT%02d:%02d:%02dZ", y, mo, d, sod / 3600, sod / 60 % 60, sod % 60);
    return n < 0 ? 0 : (size_t)n;
}

/* Reads exactly `digits` decimal digits at s[*pos]; -1 when they are not there. */
static int read_digits(const char *s, size_t len, size_t *pos, int digits)
{
    int v = 0;
    for (int i = 0; i < digits; ++i, ++*pos) {
        if (*pos >= len || s[*pos] < '0' || s[*pos] > '9')
            return -1;
        v = v * 10 + (s[*pos] - '0');
    }
    return v;
}

static int expect_char(const char *s, size_t len, size_t *pos, char c1, char c2)
{
    if (*pos >= len || (s[*pos] != c1 && s[*pos] != c2))
        return -1;
    ++*pos;
    return 0;
}

int tk_time_parse_rfc3339(const char *s, size_t len, int64_t *ms)
{
    static const int month_days[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    size_t pos = 0;
    int y = read_digits(s, len, &pos, 4);
    if (y < 0 || expect_char(s, len, &pos, '-', '-') != 0)
        return -1;
    int mo = read_digits(s, len, &pos, 2);
    if (mo < 1 || mo > 12 || expect_char(s, len, &pos, '-', '-') != 0)
        return -1;
    int d = read_digits(s, len, &pos, 2);
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d < 1 || d > month_days[mo - 1] || (mo == 2 && d == 29 && !leap) || expect_char(s, len, &pos, 'T', 't') != 0)
        return -1;
    int h = read_digits(s, len, &pos, 2);
    if (h < 0 || h > 23 || expect_char(s, len, &pos, ':', ':') != 0)
        return -1;
    int mi = read_digits(s, len, &pos, 2);
    if (mi < 0 || mi > 59 || expect_char(s, len, &pos, ':', ':') != 0)
        return -1;
    int sec = read_digits(s, len, &pos, 2);
    if (sec < 0 || sec > 59)
        return -1;
    int millis = 0;
    if (pos < len && s[pos] == '.') {
        ++pos;
        int ndigits = 0;
        for (; pos < len && s[pos] >= '0' && s[pos] <= '9'; ++pos, ++ndigits) {
            if (ndigits < 3)
                millis = millis * 10 + (s[pos] - '0');
        }
        if (ndigits == 0)
            return -1;
        for (; ndigits < 3; ++ndigits)
            millis *= 10;
    }
    int offset_min = 0;
    if (pos < len && (s[pos] == 'Z' || s[pos] == 'z')) {
        ++pos;
    } else if (pos < len && (s[pos] == '+' || s[pos] == '-')) {
        int sign = s[pos++] == '-' ? -1 : 1;
        int oh = read_digits(s, len, &pos, 2);
        if (oh < 0 || oh > 23 || expect_char(s, len, &pos, ':', ':') != 0)
            return -1;
        int om = read_digits(s, len, &pos, 2);
        if (om < 0 || om > 59)
            return -1;
        offset_min = sign * (oh * 60 + om);
    } else {
        return -1;
    }
    if (pos != len)
        return -1;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - (int64_t)offset_min * 60;
    *ms = secs * 1000 + millis;
    return 0;
}
