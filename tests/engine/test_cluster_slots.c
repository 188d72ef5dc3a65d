/*
 * Unit tests of engine/cluster_slots: key slots and hash tags (checked against the values
 * Redis computes), the key a command is routed by, the classification of cluster error
 * replies, and the slot map read from hand-built CLUSTER SLOTS replies.
 */
#include "engine/cluster_slots.h"
#include "tests/support/replies.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static unsigned slot_of(const char *key)
{
    return tk_cluster_key_slot(key, strlen(key));
}

/* ---- key slots ---- */

START_TEST(crc16_is_xmodem)
{
    /* the CRC16/XMODEM check value; below 16384, so the slot is the CRC itself */
    ck_assert_uint_eq(slot_of("123456789"), 0x31C3);
}
END_TEST

START_TEST(known_slots)
{
    ck_assert_uint_eq(slot_of("foo"), 12182);
    ck_assert_uint_eq(slot_of("bar"), 5061);
    ck_assert_uint_eq(tk_cluster_key_slot("", 0), 0);
    ck_assert_uint_eq(tk_cluster_key_slot(NULL, 0), 0);
    ck_assert_uint_eq(tk_cluster_key_slot("foo\0ignored", 3), 12182); /* the length counts, not a NUL */
    for (unsigned i = 0; i < 1000; ++i) {
        char key[16];
        memcpy(key, &i, sizeof(i));
        ck_assert_uint_lt(tk_cluster_key_slot(key, sizeof(i)), TK_CLUSTER_SLOTS);
    }
}
END_TEST

START_TEST(hash_tags)
{
    ck_assert_uint_eq(slot_of("{user1000}.following"), slot_of("{user1000}.followers"));
    ck_assert_uint_eq(slot_of("{user1000}.following"), slot_of("user1000"));
    /* the first tag is empty: the whole key is hashed */
    ck_assert_uint_eq(slot_of("foo{}{bar}"), 8363);
    ck_assert_uint_ne(slot_of("foo{}{bar}"), slot_of("bar"));
    /* the tag runs from the first '{' to the first '}' after it */
    ck_assert_uint_eq(slot_of("foo{{bar}}zap"), slot_of("{bar"));
    ck_assert_uint_eq(slot_of("foo{{bar}}zap"), 4015);
    ck_assert_uint_eq(slot_of("foo{bar}{zap}"), slot_of("bar"));
    /* no closing brace, or a closing brace only before the opening one: the whole key */
    ck_assert_uint_ne(slot_of("foo{bar"), slot_of("bar"));
    ck_assert_uint_ne(slot_of("}bar{"), slot_of("bar"));
    ck_assert_uint_eq(slot_of("x}{bar}"), slot_of("bar"));
    ck_assert_uint_eq(tk_cluster_key_slot("{bar}", 4), slot_of("{bar")); /* the '}' past len is not seen */
    /* ticketd's keys of one event share its slot, so one FCALL's keys never cross slots */
    ck_assert_uint_eq(slot_of("tk:{abcd}:inv"), slot_of("tk:{abcd}:ob"));
    ck_assert_uint_eq(slot_of("tk:{abcd}:inv"), slot_of("abcd"));
}
END_TEST

/* ---- a command's key ---- */

static int key_of(int argc, const char **argv, const char **key)
{
    size_t argvlen[16], keylen = 0;
    for (int i = 0; i < argc; ++i)
        argvlen[i] = strlen(argv[i]);
    *key = NULL;
    int ret = tk_cluster_command_key(argc, argv, argvlen, key, &keylen);
    if (ret == 0)
        ck_assert_uint_eq(keylen, strlen(*key));
    return ret;
}

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

START_TEST(command_keys)
{
    const char *key;

    const char *fcall7[] = {"FCALL", "tk_reserve", "7", "tk:{e1}:inv", "tk:{e1}:res", "k3", "k4", "k5", "k6", "k7", "arg"};
    ck_assert_int_eq(key_of(ARGC(fcall7), fcall7, &key), 0);
    ck_assert_str_eq(key, "tk:{e1}:inv");

    const char *fcall0[] = {"FCALL", "tk_version", "0"};
    ck_assert_int_eq(key_of(ARGC(fcall0), fcall0, &key), -1);
    const char *fcall0_args[] = {"fcall_ro", "tk_version", "0", "not-a-key"};
    ck_assert_int_eq(key_of(ARGC(fcall0_args), fcall0_args, &key), -1);
    const char *fcall_ro[] = {"fcall_RO", "tk_view", "1", "tk:{e2}:inv"};
    ck_assert_int_eq(key_of(ARGC(fcall_ro), fcall_ro, &key), 0);
    ck_assert_str_eq(key, "tk:{e2}:inv");
    const char *fcall_short[] = {"FCALL", "f", "1"}; /* numkeys without the key */
    ck_assert_int_eq(key_of(ARGC(fcall_short), fcall_short, &key), -1);
    const char *fcall_bad[] = {"FCALL", "f", "-1", "k"};
    ck_assert_int_eq(key_of(ARGC(fcall_bad), fcall_bad, &key), -1);
    const char *fcall_many[] = {"FCALL", "f", "9", "k"}; /* more keys than arguments */
    ck_assert_int_eq(key_of(ARGC(fcall_many), fcall_many, &key), -1);
    const char *fcall_nonum[] = {"FCALL", "f"};
    ck_assert_int_eq(key_of(ARGC(fcall_nonum), fcall_nonum, &key), -1);
    const char *eval[] = {"EVAL", "return 1", "1", "k"}; /* the script is not the key */
    ck_assert_int_eq(key_of(ARGC(eval), eval, &key), 0);
    ck_assert_str_eq(key, "k");

    const char *get[] = {"GET", "tk:{e1}:inv"};
    ck_assert_int_eq(key_of(ARGC(get), get, &key), 0);
    ck_assert_str_eq(key, "tk:{e1}:inv");
    const char *get_alone[] = {"GET"};
    ck_assert_int_eq(key_of(ARGC(get_alone), get_alone, &key), -1);

    const char *ping[] = {"PING"};
    ck_assert_int_eq(key_of(ARGC(ping), ping, &key), -1);
    const char *ping_msg[] = {"ping", "hello"};
    ck_assert_int_eq(key_of(ARGC(ping_msg), ping_msg, &key), -1);
    const char *wait[] = {"WAIT", "1", "100"};
    ck_assert_int_eq(key_of(ARGC(wait), wait, &key), -1);
    const char *function[] = {"FUNCTION", "LOAD", "REPLACE", "#!lua name=tk"};
    ck_assert_int_eq(key_of(ARGC(function), function, &key), -1);
    const char *cluster[] = {"CLUSTER", "SLOTS"};
    ck_assert_int_eq(key_of(ARGC(cluster), cluster, &key), -1);
    const char *info[] = {"INFO", "replication"};
    ck_assert_int_eq(key_of(ARGC(info), info, &key), -1);

    const char *xreadgroup[] = {"XREADGROUP", "GROUP", "g", "c", "COUNT", "10", "STREAMS", "k1", ">"};
    ck_assert_int_eq(key_of(ARGC(xreadgroup), xreadgroup, &key), 0);
    ck_assert_str_eq(key, "k1");
    /* a group and a consumer named like the token are stepped over, not taken for it */
    const char *xreadgroup_named[] = {"xreadgroup", "group", "streams", "streams", "BLOCK", "5", "NOACK", "streams", "k2", ">"};
    ck_assert_int_eq(key_of(ARGC(xreadgroup_named), xreadgroup_named, &key), 0);
    ck_assert_str_eq(key, "k2");
    const char *xread[] = {"XREAD", "COUNT", "2", "STREAMS", "a", "b", "0", "0"};
    ck_assert_int_eq(key_of(ARGC(xread), xread, &key), 0);
    ck_assert_str_eq(key, "a");
    const char *xread_nokey[] = {"XREAD", "STREAMS"};
    ck_assert_int_eq(key_of(ARGC(xread_nokey), xread_nokey, &key), -1);
    /* container commands name their key after a subcommand */
    const char *xgroup[] = {"XGROUP", "CREATE", "tk:{ab12}:ob", "writers", "0", "MKSTREAM"};
    ck_assert_int_eq(key_of(ARGC(xgroup), xgroup, &key), 0);
    ck_assert_str_eq(key, "tk:{ab12}:ob");
    const char *xinfo[] = {"xinfo", "STREAM", "tk:{ab12}:ob"};
    ck_assert_int_eq(key_of(ARGC(xinfo), xinfo, &key), 0);
    ck_assert_str_eq(key, "tk:{ab12}:ob");
    const char *xgroup_short[] = {"XGROUP", "HELP"};
    ck_assert_int_eq(key_of(ARGC(xgroup_short), xgroup_short, &key), -1);

    ck_assert_int_eq(key_of(0, get, &key), -1);
}
END_TEST

START_TEST(command_key_without_lengths_or_outputs)
{
    /* argvlen NULL: the arguments are C strings, as redisCommandArgv allows */
    const char *get[] = {"get", "k"};
    const char *key = NULL;
    size_t keylen = 0;
    ck_assert_int_eq(tk_cluster_command_key(2, get, NULL, &key, &keylen), 0);
    ck_assert_str_eq(key, "k");
    ck_assert_uint_eq(keylen, 1);
    ck_assert_int_eq(tk_cluster_command_key(2, get, NULL, NULL, NULL), 0);
    /* binary-safe: the lengths are believed, not the NULs */
    const char *fcall[] = {"FCALLxx", "f", "1", "key\0tail"};
    size_t lens[] = {5, 1, 1, 8};
    ck_assert_int_eq(tk_cluster_command_key(4, fcall, lens, &key, &keylen), 0);
    ck_assert_uint_eq(keylen, 8);
}
END_TEST

/* ---- redirects ---- */

static tk_redirect_kind_t classify(int type, const char *text, tk_redirect_t *out)
{
    redisReply *r = tk_reply_str_of_type(type, text);
    tk_redirect_kind_t kind = tk_cluster_redirect(r, out);
    tk_reply_free(r);
    return kind;
}

START_TEST(redirects)
{
    tk_redirect_t out;

    ck_assert_int_eq(classify(REDIS_REPLY_ERROR, "MOVED 3999 127.0.0.1:6381", &out), TK_REDIRECT_MOVED);
    ck_assert_int_eq(out.kind, TK_REDIRECT_MOVED);
    ck_assert_uint_eq(out.slot, 3999);
    ck_assert_str_eq(out.host, "127.0.0.1");
    ck_assert_uint_eq(out.port, 6381);

    ck_assert_int_eq(classify(REDIS_REPLY_ERROR, "ASK 16383 redis-2.internal:7002", &out), TK_REDIRECT_ASK);
    ck_assert_uint_eq(out.slot, 16383);
    ck_assert_str_eq(out.host, "redis-2.internal");
    ck_assert_uint_eq(out.port, 7002);

    /* IPv6: the port follows the last colon */
    ck_assert_int_eq(classify(REDIS_REPLY_ERROR, "MOVED 0 ::1:7001", &out), TK_REDIRECT_MOVED);
    ck_assert_str_eq(out.host, "::1");
    ck_assert_uint_eq(out.port, 7001);
    ck_assert_int_eq(classify(REDIS_REPLY_ERROR, "ASK 42 2001:db8::5:65535", &out), TK_REDIRECT_ASK);
    ck_assert_str_eq(out.host, "2001:db8::5");
    ck_assert_uint_eq(out.port, 65535);

    /* an empty host: the node that answered */
    ck_assert_int_eq(classify(REDIS_REPLY_ERROR, "MOVED 12182 :7003", &out), TK_REDIRECT_MOVED);
    ck_assert_str_eq(out.host, "");
    ck_assert_uint_eq(out.port, 7003);
    ck_assert_uint_eq(out.slot, 12182);

    ck_assert_int_eq(classify(REDIS_REPLY_ERROR, "TRYAGAIN Multiple keys request during rehashing of slot", &out),
                     TK_REDIRECT_TRYAGAIN);
    ck_assert_int_eq(classify(REDIS_REPLY_ERROR, "TRYAGAIN", &out), TK_REDIRECT_TRYAGAIN);
    ck_assert_int_eq(classify(REDIS_REPLY_ERROR, "CLUSTERDOWN The cluster is down", &out), TK_REDIRECT_CLUSTERDOWN);
    ck_assert_int_eq(out.kind, TK_REDIRECT_CLUSTERDOWN);
    ck_assert_int_eq(classify(REDIS_REPLY_ERROR, "CLUSTERDOWN Hash slot not served", NULL), TK_REDIRECT_CLUSTERDOWN);
}
END_TEST

START_TEST(not_redirects)
{
    const char *malformed[] = {
        "MOVED 16384 127.0.0.1:6381", /* past the last slot */
        "MOVED -1 127.0.0.1:6381",
        "MOVED x 127.0.0.1:6381",
        "MOVED  127.0.0.1:6381",
        "MOVED 99999999999999999999 h:1",
        "MOVED 3999 127.0.0.1", /* no port */
        "MOVED 3999 127.0.0.1:",
        "MOVED 3999 127.0.0.1:0",
        "MOVED 3999 127.0.0.1:65536",
        "MOVED 3999 h:12x",
        "MOVED 3999",
        "MOVED",
        "MOVED ",
        "ASK 1 a b:1",
        "moved 3999 127.0.0.1:6381", /* Redis writes the code in capitals */
        "TRYAGAINX",
        "CLUSTERDOWNS",
        "ERR unknown command 'FOO'",
        "WRONGTYPE Operation against a key",
        "NOSCRIPT",
        "",
    };
    for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); ++i) {
        tk_redirect_t out;
        memset(&out, 0x5a, sizeof(out));
        ck_assert_msg(classify(REDIS_REPLY_ERROR, malformed[i], &out) == TK_REDIRECT_NONE, "\"%s\"", malformed[i]);
        ck_assert_int_eq(out.kind, TK_REDIRECT_NONE);
        ck_assert_str_eq(out.host, ""); /* nothing half-parsed is left */
        ck_assert_uint_eq(out.port, 0);
    }
    /* the same text in a reply that is not an error is the answer itself */
    ck_assert_int_eq(classify(REDIS_REPLY_STATUS, "MOVED 3999 127.0.0.1:6381", NULL), TK_REDIRECT_NONE);
    ck_assert_int_eq(classify(REDIS_REPLY_STRING, "ASK 3999 127.0.0.1:6381", NULL), TK_REDIRECT_NONE);
    redisReply *num = tk_reply_num(1);
    ck_assert_int_eq(tk_cluster_redirect(num, NULL), TK_REDIRECT_NONE);
    tk_reply_free(num);
    redisReply *arr = tk_reply_arr(1, tk_reply_str_of_type(REDIS_REPLY_ERROR, "MOVED 1 h:1"));
    ck_assert_int_eq(tk_cluster_redirect(arr, NULL), TK_REDIRECT_NONE);
    tk_reply_free(arr);
    ck_assert_int_eq(tk_cluster_redirect(NULL, NULL), TK_REDIRECT_NONE);

    /* a host that does not fit the 256 bytes of out->host */
    char long_moved[400];
    memset(long_moved, 'h', sizeof(long_moved));
    memcpy(long_moved, "MOVED 1 ", 8);
    strcpy(long_moved + sizeof(long_moved) - 6, ":6379");
    ck_assert_int_eq(classify(REDIS_REPLY_ERROR, long_moved, NULL), TK_REDIRECT_NONE);
}
END_TEST

/* ---- the slot map ---- */

static tk_slot_map_t map; /* 50 kB: kept off the stack */

/* a node as Redis 7 lists it: host, port, id, and the (here empty) metadata map */
static redisReply *node(const char *host, long long port, const char *id)
{
    return tk_reply_arr(4, tk_reply_str(host), tk_reply_num(port), tk_reply_str(id), tk_reply_arr(0));
}

static void assert_owner(unsigned first, unsigned last, uint16_t owner)
{
    for (unsigned s = first; s <= last; ++s)
        ck_assert_msg(map.owner[s] == owner, "slot %u: owner %u, expected %u", s, map.owner[s], owner);
}

START_TEST(parse_three_masters_with_replicas)
{
    redisReply *r = tk_reply_arr(
        3, tk_reply_arr(4, tk_reply_num(0), tk_reply_num(5460), node("10.0.0.1", 7000, "a1"), node("10.0.0.4", 7003, "r1")),
        tk_reply_arr(4, tk_reply_num(5461), tk_reply_num(10922), node("10.0.0.2", 7001, "a2"), node("10.0.0.5", 7004, "r2")),
        tk_reply_arr(5, tk_reply_num(10923), tk_reply_num(16383), node("10.0.0.3", 7002, "a3"), node("10.0.0.6", 7005, "r3"),
                     node("10.0.0.7", 7006, "r4")));
    char err[128] = "";
    ck_assert_int_eq(tk_slot_map_parse(&map, r, "seed", err, sizeof(err)), 0);
    ck_assert_str_eq(err, "");
    ck_assert_uint_eq(map.nmasters, 3);
    ck_assert_str_eq(map.masters[0].host, "10.0.0.1");
    ck_assert_uint_eq(map.masters[0].port, 7000);
    ck_assert_uint_eq(map.masters[0].nreplicas, 1);
    ck_assert_str_eq(map.masters[1].host, "10.0.0.2");
    ck_assert_uint_eq(map.masters[1].nreplicas, 1);
    ck_assert_str_eq(map.masters[2].host, "10.0.0.3");
    ck_assert_uint_eq(map.masters[2].port, 7002);
    ck_assert_uint_eq(map.masters[2].nreplicas, 2);
    assert_owner(0, 5460, 0);
    assert_owner(5461, 10922, 1);
    assert_owner(10923, 16383, 2);
    /* a key is routed through the map */
    ck_assert_uint_eq(map.owner[slot_of("foo")], 2);
    ck_assert_uint_eq(map.owner[slot_of("bar")], 0);
    /* replicas are counted, never made masters */
    ck_assert_int_eq(tk_slot_map_find(&map, "10.0.0.4", 7003), -1);
    ck_assert_int_eq(tk_slot_map_find(&map, "10.0.0.2", 7001), 1);
    tk_reply_free(r);
}
END_TEST

START_TEST(parse_master_with_two_ranges_and_gaps)
{
    /* A owns two ranges, B one between them; 16000..16383 is owned by nobody */
    redisReply *r =
        tk_reply_arr(3, tk_reply_arr(3, tk_reply_num(0), tk_reply_num(99), node("a", 7000, "ida")),
                     tk_reply_arr(4, tk_reply_num(100), tk_reply_num(100), node("b", 7001, "idb"), node("c", 7002, "idc")),
                     tk_reply_arr(4, tk_reply_num(101), tk_reply_num(15999), node("a", 7000, "ida"), node("d", 7003, "idd")));
    char err[128];
    ck_assert_int_eq(tk_slot_map_parse(&map, r, "seed", err, sizeof(err)), 0);
    ck_assert_uint_eq(map.nmasters, 2);
    ck_assert_uint_eq(map.masters[0].nreplicas, 1);
    ck_assert_uint_eq(map.masters[1].nreplicas, 1);
    assert_owner(0, 99, 0);
    assert_owner(100, 100, 1);
    assert_owner(101, 15999, 0);
    assert_owner(16000, 16383, TK_CLUSTER_NO_OWNER);
    tk_reply_free(r);

    /* the same host on another port is another master */
    r = tk_reply_arr(2, tk_reply_arr(3, tk_reply_num(0), tk_reply_num(0), node("a", 7000, "x")),
                     tk_reply_arr(3, tk_reply_num(1), tk_reply_num(1), node("a", 7001, "y")));
    ck_assert_int_eq(tk_slot_map_parse(&map, r, "seed", err, sizeof(err)), 0);
    ck_assert_uint_eq(map.nmasters, 2);
    tk_reply_free(r);

    /* a cluster with no slot assigned yet: a valid, empty map */
    r = tk_reply_arr(0);
    ck_assert_int_eq(tk_slot_map_parse(&map, r, "seed", err, sizeof(err)), 0);
    ck_assert_uint_eq(map.nmasters, 0);
    assert_owner(0, 16383, TK_CLUSTER_NO_OWNER);
    tk_reply_free(r);
}
END_TEST

START_TEST(parse_empty_host_is_the_seed)
{
    /* the node answering does not know its own address; a range of it and one of another
     * node; the minimal node form [host, port] (Redis before 4) is enough */
    redisReply *r = tk_reply_arr(
        2, tk_reply_arr(3, tk_reply_num(0), tk_reply_num(8191), node("", 7000, "me")),
        tk_reply_arr(3, tk_reply_num(8192), tk_reply_num(16383), tk_reply_arr(2, tk_reply_str("10.0.0.9"), tk_reply_num(7000))));
    char err[128];
    ck_assert_int_eq(tk_slot_map_parse(&map, r, "redis-seed.internal", err, sizeof(err)), 0);
    ck_assert_uint_eq(map.nmasters, 2);
    ck_assert_str_eq(map.masters[0].host, "redis-seed.internal");
    ck_assert_uint_eq(map.masters[0].port, 7000);
    ck_assert_uint_eq(map.masters[0].nreplicas, 0);
    ck_assert_int_eq(tk_slot_map_find(&map, "redis-seed.internal", 7000), 0);
    ck_assert_int_eq(tk_slot_map_find(&map, "10.0.0.9", 7000), 1);
    assert_owner(0, 8191, 0);
    assert_owner(8192, 16383, 1);
    tk_reply_free(r);
}
END_TEST

static void assert_refused(redisReply *r, const char *why)
{
    char err[128] = "";
    tk_slot_map_single(&map, "old", 1); /* whatever the map held is not left half replaced */
    ck_assert_msg(tk_slot_map_parse(&map, r, "seed", err, sizeof(err)) == -1, "accepted: %s", why);
    ck_assert_msg(strstr(err, "CLUSTER SLOTS") != NULL, "%s: err \"%s\"", why, err);
    ck_assert_uint_eq(map.nmasters, 0);
    assert_owner(0, 16383, TK_CLUSTER_NO_OWNER);
    ck_assert_int_eq(tk_slot_map_parse(&map, r, "seed", NULL, 0), -1); /* err may be left out */
    tk_reply_free(r);
}

#define RANGE(start, end, host, port) tk_reply_arr(3, tk_reply_num(start), tk_reply_num(end), node(host, port, "id"))

START_TEST(parse_refuses_malformed_replies)
{
    assert_refused(tk_reply_str_of_type(REDIS_REPLY_ERROR, "ERR This instance has cluster support disabled"), "an error");
    assert_refused(tk_reply_num(3), "an integer");
    assert_refused(tk_reply_arr(1, tk_reply_str("0 16383 h 1")), "a range that is not an array");
    assert_refused(tk_reply_arr(1, tk_reply_arr(2, tk_reply_num(0), tk_reply_num(16383))), "a range without a master");
    assert_refused(tk_reply_arr(1, RANGE(10, 9, "h", 7000)), "start after end");
    assert_refused(tk_reply_arr(1, RANGE(0, 16384, "h", 7000)), "end past the last slot");
    assert_refused(tk_reply_arr(1, RANGE(-1, 5, "h", 7000)), "a negative start");
    assert_refused(tk_reply_arr(1, tk_reply_arr(3, tk_reply_str("0"), tk_reply_num(5), node("h", 7000, "id"))),
                   "a start that is not an integer");
    assert_refused(tk_reply_arr(1, tk_reply_arr(3, tk_reply_num(0), tk_reply_num(5),
                                                tk_reply_arr(2, tk_reply_str("h"), tk_reply_str("7000")))),
                   "a port that is not an integer");
    assert_refused(tk_reply_arr(1, RANGE(0, 5, "h", 0)), "port 0");
    assert_refused(tk_reply_arr(1, RANGE(0, 5, "h", 65536)), "a port past 65535");
    assert_refused(
        tk_reply_arr(1, tk_reply_arr(3, tk_reply_num(0), tk_reply_num(5), tk_reply_arr(2, tk_reply_num(1), tk_reply_num(7000)))),
        "a host that is not a string");
    assert_refused(tk_reply_arr(1, tk_reply_arr(3, tk_reply_num(0), tk_reply_num(5), tk_reply_arr(1, tk_reply_str("h")))),
                   "a node without a port");
    assert_refused(tk_reply_arr(1, tk_reply_arr(4, tk_reply_num(0), tk_reply_num(5), node("h", 7000, "id"), tk_reply_str("r"))),
                   "a replica that is not a node");
    assert_refused(tk_reply_arr(2, RANGE(0, 10, "a", 7000), RANGE(10, 20, "b", 7001)), "overlapping ranges");
    assert_refused(tk_reply_arr(2, RANGE(0, 10, "a", 7000), tk_reply_str("junk")), "junk after a good range");

    char host[300];
    memset(host, 'h', sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    assert_refused(tk_reply_arr(1, RANGE(0, 5, host, 7000)), "a host too long to keep");
}
END_TEST

START_TEST(parse_refuses_too_many_masters)
{
    redisReply *r = tk_reply_arr(0);
    free(r->element);
    r->elements = TK_CLUSTER_MAX_MASTERS + 1;
    r->element = calloc(r->elements + 1, sizeof(*r->element));
    for (size_t i = 0; i < r->elements; ++i)
        r->element[i] = RANGE((long long)i, (long long)i, "h", 7000 + (long long)i);
    char err[128] = "";
    ck_assert_int_eq(tk_slot_map_parse(&map, r, "seed", err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "TK_CLUSTER_MAX_MASTERS"));
    /* exactly the limit is fine */
    r->elements = TK_CLUSTER_MAX_MASTERS;
    ck_assert_int_eq(tk_slot_map_parse(&map, r, "seed", err, sizeof(err)), 0);
    ck_assert_uint_eq(map.nmasters, TK_CLUSTER_MAX_MASTERS);
    r->elements = TK_CLUSTER_MAX_MASTERS + 1;
    tk_reply_free(r);
}
END_TEST

START_TEST(single_node_owns_every_slot)
{
    memset(&map, 0x5a, sizeof(map));
    tk_slot_map_single(&map, "127.0.0.1", 6379);
    ck_assert_uint_eq(map.nmasters, 1);
    ck_assert_str_eq(map.masters[0].host, "127.0.0.1");
    ck_assert_uint_eq(map.masters[0].port, 6379);
    ck_assert_uint_eq(map.masters[0].nreplicas, 0);
    assert_owner(0, 16383, 0);
    ck_assert_int_eq(tk_slot_map_find(&map, "127.0.0.1", 6379), 0);
}
END_TEST

START_TEST(find_by_host_and_port)
{
    redisReply *r = tk_reply_arr(2, RANGE(0, 8000, "a", 7000), RANGE(8001, 16383, "b", 7000));
    char err[128];
    ck_assert_int_eq(tk_slot_map_parse(&map, r, "seed", err, sizeof(err)), 0);
    ck_assert_int_eq(tk_slot_map_find(&map, "a", 7000), 0);
    ck_assert_int_eq(tk_slot_map_find(&map, "b", 7000), 1);
    ck_assert_int_eq(tk_slot_map_find(&map, "a", 7001), -1);
    ck_assert_int_eq(tk_slot_map_find(&map, "ab", 7000), -1);
    ck_assert_int_eq(tk_slot_map_find(&map, "", 7000), -1);
    ck_assert_int_eq(tk_slot_map_find(&map, NULL, 7000), -1);
    tk_reply_free(r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cluster_slots");
    TCase *tc = tcase_create("cluster_slots");
    tcase_add_test(tc, crc16_is_xmodem);
    tcase_add_test(tc, known_slots);
    tcase_add_test(tc, hash_tags);
    tcase_add_test(tc, command_keys);
    tcase_add_test(tc, command_key_without_lengths_or_outputs);
    tcase_add_test(tc, redirects);
    tcase_add_test(tc, not_redirects);
    tcase_add_test(tc, parse_three_masters_with_replicas);
    tcase_add_test(tc, parse_master_with_two_ranges_and_gaps);
    tcase_add_test(tc, parse_empty_host_is_the_seed);
    tcase_add_test(tc, parse_refuses_malformed_replies);
    tcase_add_test(tc, parse_refuses_too_many_masters);
    tcase_add_test(tc, single_node_owns_every_slot);
    tcase_add_test(tc, find_by_host_and_port);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
