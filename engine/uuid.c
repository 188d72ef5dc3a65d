/*
 * UUID generation and validation. Randomness comes from getrandom(2) through a small
 * per-thread buffer, so minting the ids of a reservation is not a system call each; a
 * forked child drops the buffer it inherited.
 */
#include "engine/uuid.h"

#include <h2o/string_.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static __thread struct {
    uint8_t bytes[512];
    size_t used;
} rnd = {.used = sizeof(rnd.bytes)};

/* A forked child starts with its parent's buffer; it must not hand out the same bytes, so
 * the child of a fork discards the (forking thread's) buffer. */
static void on_fork_child(void)
{
    memset(rnd.bytes, 0, sizeof(rnd.bytes));
    rnd.used = sizeof(rnd.bytes);
}

__attribute__((constructor)) static void register_fork_handler(void)
{
    pthread_atfork(NULL, NULL, on_fork_child);
}

static void fill_from_kernel(void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "fatal: getrandom failed: %s\n", strerror(errno));
            abort();
        }
        p += got;
        n -= (size_t)got;
    }
}

void tk_random_bytes(void *buf, size_t n)
{
    if (n > sizeof(rnd.bytes)) {
        fill_from_kernel(buf, n);
        return;
    }
    if (sizeof(rnd.bytes) - rnd.used < n) {
        fill_from_kernel(rnd.bytes, sizeof(rnd.bytes));
        rnd.used = 0;
    }
    memcpy(buf, rnd.bytes + rnd.used, n);
    /* never hand out the same bytes twice */
    memset(rnd.bytes + rnd.used, 0, n);
    rnd.used += n;
}

void tk_random_hex(char *out, size_t n)
{
    uint8_t b[256];
    while (n > 0) {
        size_t chunk = n < sizeof(b) ? n : sizeof(b);
        tk_random_bytes(b, chunk);
        h2o_hex_encode(out, b, chunk); /* lower case, NUL-terminated */
        out += 2 * chunk;
        n -= chunk;
    }
    *out = '\0';
}

void tk_uuid_v4(char *out)
{
    uint8_t b[16];
    char hex[33];
    tk_random_bytes(b, sizeof(b));
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    h2o_hex_encode(hex, b, sizeof(b));
    snprintf(out, TK_UUID_LEN + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

void tk_uuid_v4_in_shard(char *out, const char *shard)
{
    tk_uuid_v4(out);
    memcpy(out, shard, TK_SHARD_LEN);
}

int tk_uuid_normalize(const char *in, size_t len, char *out)
{
    if (len != TK_UUID_LEN)
        return -1;
    for (size_t i = 0; i < len; ++i) {
        char c = in[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return -1;
        } else if (c >= '0' && c <= '9') {
        } else if (c >= 'a' && c <= 'f') {
        } else if (c >= 'A' && c <= 'F') {
            c = (char)(c - 'A' + 'a');
        } else {
            return -1;
        }
        out[i] = c;
    }
    out[len] = '\0';
    return 0;
}
