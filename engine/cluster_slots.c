/*
 * Redis Cluster's addressing rules, as plain functions over bytes and hiredis replies: no
 * connection, no allocation, no clock. A key's slot is the CRC16 (XMODEM) of the key, or of
 * its {hash tag} when it has a non-empty one, mod 16384; ticketd names every key of an
 * event tk:{event}:…, so one FCALL's keys always share a slot. A command's routing key is
 * its first key by the command's own layout; an error reply is read for MOVED, ASK,
 * TRYAGAIN and CLUSTERDOWN; CLUSTER SLOTS becomes a slot → master table. Everything read
 * from Redis is validated here, so a malformed reply is refused with a reason rather than
 * trusted by the router (redis_conn.c) or the blocking connections (redis_nodes.c).
 */
#include "engine/cluster_slots.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* CRC16-CCITT as XMODEM computes it (polynomial 0x1021, initial value 0, no reflection),
 * the variant the Redis Cluster specification names. Keys are a few dozen bytes, so the
 * bitwise form is cheap enough and spares the file a 256-entry table. */
static uint16_t crc16_xmodem(const char *buf, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; ++i) {
        crc ^= (uint16_t)((uint16_t)(unsigned char)buf[i] << 8);
        for (int bit = 0; bit < 8; ++bit)
            crc = (crc & 0x8000) != 0 ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

/* Only the hash tag counts when there is one: the bytes between the first '{' and the
 * first '}' after it, provided they are not empty. "foo{}{bar}" hashes whole, because its
 * first tag is empty; "foo{{bar}}" hashes "{bar". */
unsigned tk_cluster_key_slot(const char *key, size_t len)
{
    if (len == 0)
        return crc16_xmodem("", 0) % TK_CLUSTER_SLOTS;
    const char *open = memchr(key, '{', len);
    if (open != NULL) {
        const char *tag = open + 1;
        size_t rest = len - (size_t)(tag - key);
        const char *close = rest != 0 ? memchr(tag, '}', rest) : NULL;
        if (close != NULL && close != tag)
            return crc16_xmodem(tag, (size_t)(close - tag)) % TK_CLUSTER_SLOTS;
    }
    return crc16_xmodem(key, len) % TK_CLUSTER_SLOTS;
}

static size_t arg_len(const char **argv, const size_t *argvlen, int i)
{
    return argvlen != NULL ? argvlen[i] : strlen(argv[i]);
}

static int arg_is(const char **argv, const size_t *argvlen, int i, const char *word)
{
    size_t n = strlen(word);
    return arg_len(argv, argvlen, i) == n && strncasecmp(argv[i], word, n) == 0;
}

/* A decimal number of at most max, digits only (no sign, no spaces): the form Redis
 * writes slots and ports in, and the form a numkeys argument must have. */
static int parse_decimal(const char *s, size_t len, unsigned long max, unsigned long *out)
{
    if (len == 0)
        return -1;
    unsigned long v = 0;
    for (size_t i = 0; i < len; ++i) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        unsigned digit = (unsigned)(s[i] - '0');
        if (digit > max || v > (max - digit) / 10) /* max - digit must not wrap */
            return -1;
        v = v * 10 + digit;
    }
    *out = v;
    return 0;
}

/* Commands that name no key: they go to whichever node the caller picks. KEYS and SCAN
 * take a pattern and a cursor, AUTH a password; none of those is a key to hash. */
static const char *const keyless_commands[] = {
    "PING", "INFO",  "WAIT",   "FUNCTION", "CLUSTER",   "ASKING", "SCRIPT", "CONFIG",   "DBSIZE",  "MULTI", "EXEC", "DISCARD",
    "AUTH", "HELLO", "SELECT", "READONLY", "READWRITE", "KEYS",   "SCAN",   "FLUSHALL", "FLUSHDB", "TIME",  "ROLE",
};

static int set_key(const char **argv, const size_t *argvlen, int i, const char **key, size_t *keylen)
{
    if (key != NULL)
        *key = argv[i];
    if (keylen != NULL)
        *keylen = arg_len(argv, argvlen, i);
    return 0;
}

/* FCALL function numkeys key… arg… (EVAL and EVALSHA share the layout): the first key
 * when numkeys says there is one and it is present. */
static int script_key(int argc, const char **argv, const size_t *argvlen, const char **key, size_t *keylen)
{
    unsigned long numkeys;
    if (argc < 3 || parse_decimal(argv[2], arg_len(argv, argvlen, 2), (unsigned long)argc, &numkeys) != 0)
        return -1;
    if (numkeys == 0 || argc < 4)
        return -1;
    return set_key(argv, argvlen, 3, key, keylen);
}

/* XREAD [COUNT n] [BLOCK ms] STREAMS key… id… and XREADGROUP GROUP g c [COUNT n] [BLOCK ms]
 * [NOACK] STREAMS key… id…: the first key follows STREAMS. The options are stepped over
 * by their arity, so a group or consumer named "streams" is not taken for the token. */
static int streams_key(int argc, const char **argv, const size_t *argvlen, const char **key, size_t *keylen)
{
    int i = 1;
    while (i < argc) {
        if (arg_is(argv, argvlen, i, "STREAMS"))
            return i + 1 < argc ? set_key(argv, argvlen, i + 1, key, keylen) : -1;
        if (arg_is(argv, argvlen, i, "GROUP"))
            i += 3;
        else if (arg_is(argv, argvlen, i, "COUNT") || arg_is(argv, argvlen, i, "BLOCK"))
            i += 2;
        else if (arg_is(argv, argvlen, i, "NOACK"))
            i += 1;
        else
            return -1; /* Redis would refuse the syntax */
    }
    return -1;
}

int tk_cluster_command_key(int argc, const char **argv, const size_t *argvlen, const char **key, size_t *keylen)
{
    if (argc < 1 || argv == NULL)
        return -1;
    if (arg_is(argv, argvlen, 0, "FCALL") || arg_is(argv, argvlen, 0, "FCALL_RO") || arg_is(argv, argvlen, 0, "EVAL") ||
        arg_is(argv, argvlen, 0, "EVALSHA") || arg_is(argv, argvlen, 0, "EVAL_RO") || arg_is(argv, argvlen, 0, "EVALSHA_RO"))
        return script_key(argc, argv, argvlen, key, keylen);
    if (arg_is(argv, argvlen, 0, "XREAD") || arg_is(argv, argvlen, 0, "XREADGROUP"))
        return streams_key(argc, argv, argvlen, key, keylen);
    for (size_t i = 0; i < sizeof(keyless_commands) / sizeof(keyless_commands[0]); ++i)
        if (arg_is(argv, argvlen, 0, keyless_commands[i]))
            return -1;
    /* container commands: XGROUP CREATE key …, XINFO STREAM key, OBJECT ENCODING key */
    if (arg_is(argv, argvlen, 0, "XGROUP") || arg_is(argv, argvlen, 0, "XINFO") || arg_is(argv, argvlen, 0, "OBJECT"))
        return argc >= 3 ? set_key(argv, argvlen, 2, key, keylen) : -1;
    return argc >= 2 ? set_key(argv, argvlen, 1, key, keylen) : -1;
}

/* "<slot> <host>:<port>", the tail of MOVED and ASK. The host is everything before the
 * last colon, so an IPv6 address ("::1:7001") keeps its own colons; it may be empty, when
 * the node does not know its address, and then means the node that answered. */
static int parse_slot_address(const char *s, size_t len, tk_redirect_t *out)
{
    const char *space = memchr(s, ' ', len);
    if (space == NULL)
        return -1;
    unsigned long slot, port;
    if (parse_decimal(s, (size_t)(space - s), TK_CLUSTER_SLOTS - 1, &slot) != 0)
        return -1;
    const char *addr = space + 1;
    size_t addr_len = len - (size_t)(addr - s);
    const char *colon = NULL;
    for (size_t i = addr_len; i > 0; --i)
        if (addr[i - 1] == ':') {
            colon = addr + i - 1;
            break;
        }
    if (colon == NULL)
        return -1;
    size_t host_len = (size_t)(colon - addr);
    if (host_len >= sizeof(out->host) || memchr(addr, ' ', host_len) != NULL)
        return -1;
    if (parse_decimal(colon + 1, addr_len - host_len - 1, 65535, &port) != 0 || port == 0)
        return -1;
    out->slot = (unsigned)slot;
    memcpy(out->host, addr, host_len);
    out->host[host_len] = '\0';
    out->port = (uint16_t)port;
    return 0;
}

/* whether s (len bytes) is word alone or word followed by a space */
static int starts_with_word(const char *s, size_t len, const char *word)
{
    size_t n = strlen(word);
    return len >= n && memcmp(s, word, n) == 0 && (len == n || s[n] == ' ');
}

tk_redirect_kind_t tk_cluster_redirect(const redisReply *reply, tk_redirect_t *out)
{
    tk_redirect_t scratch;
    tk_redirect_t *r = out != NULL ? out : &scratch;
    memset(r, 0, sizeof(*r));
    if (reply == NULL || reply->type != REDIS_REPLY_ERROR || reply->str == NULL)
        return TK_REDIRECT_NONE;
    const char *s = reply->str;
    size_t len = reply->len;
    tk_redirect_kind_t kind = TK_REDIRECT_NONE;
    if (len > 6 && memcmp(s, "MOVED ", 6) == 0) {
        if (parse_slot_address(s + 6, len - 6, r) == 0)
            kind = TK_REDIRECT_MOVED;
    } else if (len > 4 && memcmp(s, "ASK ", 4) == 0) {
        if (parse_slot_address(s + 4, len - 4, r) == 0)
            kind = TK_REDIRECT_ASK;
    } else if (starts_with_word(s, len, "TRYAGAIN")) {
        kind = TK_REDIRECT_TRYAGAIN;
    } else if (starts_with_word(s, len, "CLUSTERDOWN")) {
        kind = TK_REDIRECT_CLUSTERDOWN;
    }
    if (kind == TK_REDIRECT_NONE)
        memset(r, 0, sizeof(*r)); /* nothing half-parsed is left behind */
    r->kind = kind;
    return kind;
}

static void set_node(tk_cluster_node_t *node, const char *host, size_t host_len, uint16_t port)
{
    memcpy(node->host, host, host_len);
    node->host[host_len] = '\0';
    node->port = port;
    node->nreplicas = 0;
}

static void clear_map(tk_slot_map_t *map)
{
    map->nmasters = 0;
    for (size_t i = 0; i < TK_CLUSTER_SLOTS; ++i)
        map->owner[i] = TK_CLUSTER_NO_OWNER;
}

void tk_slot_map_single(tk_slot_map_t *map, const char *host, uint16_t port)
{
    if (host == NULL)
        host = "";
    size_t host_len = strnlen(host, sizeof(map->masters[0].host) - 1);
    memset(&map->masters[0], 0, sizeof(map->masters[0]));
    set_node(&map->masters[0], host, host_len, port);
    map->nmasters = 1;
    for (size_t i = 0; i < TK_CLUSTER_SLOTS; ++i)
        map->owner[i] = 0;
}

int tk_slot_map_find(const tk_slot_map_t *map, const char *host, uint16_t port)
{
    if (host == NULL)
        return -1;
    for (size_t i = 0; i < map->nmasters; ++i)
        if (map->masters[i].port == port && strcmp(map->masters[i].host, host) == 0)
            return (int)i;
    return -1;
}

/* One node of a range as CLUSTER SLOTS lists it: [host, port, id?, metadata?]. Only host
 * and port are read; NULL when it has that shape, else what is wrong. */
static const char *check_node(const redisReply *node)
{
    if (node == NULL || node->type != REDIS_REPLY_ARRAY || node->elements < 2)
        return "a node is not an array of host and port";
    const redisReply *host = node->element[0], *port = node->element[1];
    if (host == NULL || host->type != REDIS_REPLY_STRING)
        return "a node's host is not a string";
    if (host->len >= sizeof(((tk_cluster_node_t *)NULL)->host))
        return "a node's host is too long";
    if (port == NULL || port->type != REDIS_REPLY_INTEGER)
        return "a node's port is not an integer";
    if (port->integer <= 0 || port->integer > 65535)
        return "a node's port is out of range";
    return NULL;
}

/* the index of the master at host:port, added when new; -1 when the map is full */
static int master_index(tk_slot_map_t *map, const char *host, size_t host_len, uint16_t port)
{
    for (size_t m = 0; m < map->nmasters; ++m)
        if (map->masters[m].port == port && strlen(map->masters[m].host) == host_len &&
            memcmp(map->masters[m].host, host, host_len) == 0)
            return (int)m;
    if (map->nmasters == TK_CLUSTER_MAX_MASTERS)
        return -1;
    set_node(&map->masters[map->nmasters], host, host_len, port);
    return (int)map->nmasters++;
}

/* One entry of CLUSTER SLOTS, [start, end, master, replica…], into the map; NULL, or what
 * is wrong with it. */
static const char *add_range(tk_slot_map_t *map, const redisReply *range, const char *seed_host)
{
    if (range == NULL || range->type != REDIS_REPLY_ARRAY || range->elements < 3)
        return "not an array of start, end and master";
    const redisReply *start = range->element[0], *end = range->element[1];
    if (start == NULL || start->type != REDIS_REPLY_INTEGER || end == NULL || end->type != REDIS_REPLY_INTEGER)
        return "start or end is not an integer";
    if (start->integer < 0 || end->integer >= TK_CLUSTER_SLOTS || start->integer > end->integer)
        return "start and end are not slots 0..16383 with start <= end";
    for (size_t n = 2; n < range->elements; ++n) {
        const char *why = check_node(range->element[n]);
        if (why != NULL)
            return why;
    }

    const redisReply *master = range->element[2];
    const char *host = master->element[0]->str;
    size_t host_len = master->element[0]->len;
    if (host_len == 0) { /* the node does not know its own address: it is the one we asked */
        host = seed_host;
        host_len = strnlen(seed_host, sizeof(map->masters[0].host) - 1);
    }
    int m = master_index(map, host, host_len, (uint16_t)master->element[1]->integer);
    if (m < 0)
        return "more masters than TK_CLUSTER_MAX_MASTERS";
    unsigned nreplicas = (unsigned)(range->elements - 3);
    if (nreplicas > map->masters[m].nreplicas)
        map->masters[m].nreplicas = nreplicas;
    for (long long s = start->integer; s <= end->integer; ++s) {
        if (map->owner[s] != TK_CLUSTER_NO_OWNER)
            return "overlaps an earlier range";
        map->owner[s] = (uint16_t)m;
    }
    return NULL;
}

/* A master that owns several ranges appears in each and becomes one entry of the map,
 * found again by host and port; its nreplicas is the most replicas any of its ranges
 * lists. A range that overlaps another is refused: one node's view never has two owners
 * for a slot. On -1 the map is left empty (no master, no owner), never half filled: parse
 * into a spare map and keep the one in use when a refresh fails. */
int tk_slot_map_parse(tk_slot_map_t *map, const redisReply *reply, const char *seed_host, char *err, size_t errsize)
{
    clear_map(map);
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        if (err != NULL && errsize != 0)
            snprintf(err, errsize, "CLUSTER SLOTS did not answer an array");
        return -1;
    }
    for (size_t i = 0; i < reply->elements; ++i) {
        const char *why = add_range(map, reply->element[i], seed_host != NULL ? seed_host : "");
        if (why != NULL) {
            clear_map(map);
            if (err != NULL && errsize != 0)
                snprintf(err, errsize, "CLUSTER SLOTS entry %zu: %s", i, why);
            return -1;
        }
    }
    return 0;
}
