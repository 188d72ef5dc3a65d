/*
 * The test HTTP client. Deliberately simple and strict: anything it cannot parse is
 * a failed request, which the calling test reports.
 */
#include "tests/support/httpc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int decode_chunked(const char *p, size_t len, char **out, size_t *outlen)
{
    char *dst = malloc(len + 1);
    size_t n = 0;
    const char *end = p + len;
    for (;;) {
        char *line_end;
        unsigned long size = strtoul(p, &line_end, 16);
        const char *crlf = strstr(p, "\r\n");
        if (crlf == NULL || crlf > end)
            goto Fail;
        p = crlf + 2;
        if (size == 0)
            break;
        if ((size_t)(end - p) < size)
            goto Fail;
        memcpy(dst + n, p, size);
        n += size;
        p += size + 2;
    }
    dst[n] = '\0';
    *out = dst;
    *outlen = n;
    return 0;
Fail:
    free(dst);
    return -1;
}

int tk_http_request(int port, const char *method, const char *path, const char *extra_headers, const char *body, size_t body_len,
                    tk_http_response_t *res)
{
    memset(res, 0, sizeof(*res));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 20};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        close(fd);
        return -1;
    }
    char head[4096];
    int hlen = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s", method, path,
                        extra_headers != NULL ? extra_headers : "");
    if (body != NULL)
        hlen += snprintf(head + hlen, sizeof(head) - (size_t)hlen, "Content-Length: %zu\r\n", body_len);
    hlen += snprintf(head + hlen, sizeof(head) - (size_t)hlen, "\r\n");
    if (write_all(fd, head, (size_t)hlen) != 0 || (body != NULL && write_all(fd, body, body_len) != 0)) {
        close(fd);
        return -1;
    }
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (cap - len < 4096)
            buf = realloc(buf, cap *= 2);
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    char *sep = strstr(buf, "\r\n\r\n");
    if (sep == NULL || sscanf(buf, "HTTP/1.%*d %d", &res->status) != 1) {
        free(buf);
        return -1;
    }
    *sep = '\0';
    res->headers = strdup(buf);
    const char *payload = sep + 4;
    size_t payload_len = len - (size_t)(payload - buf);
    char te[64];
    if (tk_http_header(res, "transfer-encoding", te, sizeof(te)) != NULL && strcasecmp(te, "chunked") == 0) {
        if (decode_chunked(payload, payload_len, &res->body, &res->body_len) != 0) {
            free(buf);
            tk_http_response_free(res);
            return -1;
        }
    } else {
        res->body = malloc(payload_len + 1);
        memcpy(res->body, payload, payload_len);
        res->body[payload_len] = '\0';
        res->body_len = payload_len;
    }
    free(buf);
    return 0;
}

void tk_http_response_free(tk_http_response_t *res)
{
    free(res->headers);
    free(res->body);
    res->headers = res->body = NULL;
}

const char *tk_http_header(const tk_http_response_t *res, const char *name, char *buf, size_t bufsize)
{
    size_t nlen = strlen(name);
    for (const char *line = strstr(res->headers, "\r\n"); line != NULL; line = strstr(line + 2, "\r\n")) {
        const char *p = line + 2;
        if (strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            p += nlen + 1;
            while (*p == ' ')
                ++p;
            const char *end = strstr(p, "\r\n");
            size_t vlen = end != NULL ? (size_t)(end - p) : strlen(p);
            snprintf(buf, bufsize, "%.*s", (int)vlen, p);
            return buf;
        }
    }
    return NULL;
}
