/*
 * Unit tests of engine/waitroom.c: the admission line and its inverse agree, verdicts
 * follow the line (waiting positions only decrease, admissions expire), and the opening
 * shuffle is deterministic for a seed and fair: over many openings with seeds from a
 * fixed-seed generator, every early joiner's final place is spread evenly (chi-square).
 * The same statistic is shown to reject a shuffle with a classic off-by-one bug, so the
 * fairness check is one that can fail.
 */
#include "engine/waitroom.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define N_JOINERS 10
#define OPENINGS 20000
/* chi-square critical values at p = 0.0001: 9 degrees of freedom (one joiner's places),
 * 81 (the whole joiner x place table) */
#define CHI2_CRIT_9 33.72
#define CHI2_CRIT_81 137.2

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void next_seed(uint64_t *gen, uint8_t seed[TK_WR_SEED_LEN])
{
    for (int i = 0; i < TK_WR_SEED_LEN; i += 8) {
        uint64_t v = splitmix(gen);
        memcpy(seed + i, &v, 8);
    }
}

typedef void (*shuffle_fn)(const uint8_t *seed, uint32_t n, uint32_t *place_of);

static void real_shuffle(const uint8_t *seed, uint32_t n, uint32_t *place_of)
{
    tk_wr_shuffle(seed, n, place_of);
}

/* Sattolo's mistake: j drawn from [0, i) instead of [0, i], so nobody keeps their place */
static void off_by_one_shuffle(const uint8_t *seed, uint32_t n, uint32_t *place_of)
{
    uint64_t s;
    memcpy(&s, seed, 8);
    for (uint32_t k = 0; k < n; ++k)
        place_of[k] = k + 1;
    for (uint32_t i = n; i > 1; --i) {
        uint32_t j = (uint32_t)(splitmix(&s) % (i - 1)), t = place_of[i - 1];
        place_of[i - 1] = place_of[j];
        place_of[j] = t;
    }
}

/* counts[joiner][place] over OPENINGS shuffles; returns the whole table's chi-square and
 * the largest per-joiner chi-square */
static double fairness(shuffle_fn fn, double *worst_joiner)
{
    static long counts[N_JOINERS][N_JOINERS];
    uint64_t gen = 20261205; /* fixed: the test is reproducible */
    uint8_t seed[TK_WR_SEED_LEN];
    uint32_t place_of[N_JOINERS];
    memset(counts, 0, sizeof(counts));
    for (int o = 0; o < OPENINGS; ++o) {
        next_seed(&gen, seed);
        fn(seed, N_JOINERS, place_of);
        for (int k = 0; k < N_JOINERS; ++k)
            counts[k][place_of[k] - 1]++;
    }
    double expected = (double)OPENINGS / N_JOINERS, total = 0;
    *worst_joiner = 0;
    for (int k = 0; k < N_JOINERS; ++k) {
        double chi2 = 0;
        for (int p = 0; p < N_JOINERS; ++p)
            chi2 += (counts[k][p] - expected) * (counts[k][p] - expected) / expected;
        total += chi2;
        if (chi2 > *worst_joiner)
            *worst_joiner = chi2;
    }
    return total;
}

START_TEST(shuffle_is_a_permutation_and_the_same_for_the_same_seed)
{
    uint8_t seed[TK_WR_SEED_LEN] = {1, 2, 3};
    enum { N = 100000 };
    uint32_t *a = malloc(sizeof(*a) * N), *b = malloc(sizeof(*b) * N);
    char *seen = calloc(N + 1, 1);
    tk_wr_shuffle(seed, N, a);
    tk_wr_shuffle(seed, N, b);
    ck_assert_int_eq(memcmp(a, b, sizeof(*a) * N), 0);
    for (int k = 0; k < N; ++k) {
        ck_assert(a[k] >= 1 && a[k] <= N && !seen[a[k]]);
        seen[a[k]] = 1;
    }
    seed[0] = 9;
    tk_wr_shuffle(seed, N, b);
    ck_assert_int_ne(memcmp(a, b, sizeof(*a) * N), 0);
    free(a);
    free(b);
    free(seen);
}
END_TEST

START_TEST(every_early_joiner_lands_on_every_place_evenly)
{
    double worst, total = fairness(real_shuffle, &worst);
    ck_assert_msg(total < CHI2_CRIT_81, "joiner x place chi-square %.1f >= %.1f", total, CHI2_CRIT_81);
    ck_assert_msg(worst < CHI2_CRIT_9, "one joiner's places: chi-square %.1f >= %.1f", worst, CHI2_CRIT_9);
}
END_TEST

START_TEST(the_fairness_check_rejects_a_biased_shuffle)
{
    double worst, total = fairness(off_by_one_shuffle, &worst);
    ck_assert_msg(total >= CHI2_CRIT_81 && worst >= CHI2_CRIT_9, "a biased shuffle passed: %.1f, %.1f", total, worst);
}
END_TEST

static tk_wr_state_t room(void)
{
    tk_wr_state_t st = {.enabled = 1, .opens_at_ms = 100000, .per_minute = 600, .admission_s = 60, .joined = 5, .pre = 3};
    st.nseg = 3;
    st.seg[0] = (tk_wr_segment_t){100000, 0, 600};  /* 10 a second from the opening */
    st.seg[1] = (tk_wr_segment_t){100500, 5, 0};    /* frozen at 5 */
    st.seg[2] = (tk_wr_segment_t){102000, 5, 6000}; /* resumed at 100 a second */
    return st;
}

START_TEST(line_and_its_inverse_agree)
{
    tk_wr_state_t st = room();
    ck_assert_int_eq(tk_wr_line(&st, 99999), 0);
    ck_assert_int_eq(tk_wr_line(&st, 100000), 0);
    ck_assert_int_eq(tk_wr_line(&st, 100099), 0);
    ck_assert_int_eq(tk_wr_line(&st, 100100), 1);
    ck_assert_int_eq(tk_wr_line(&st, 101999), 5);
    ck_assert_int_eq(tk_wr_line(&st, 102010), 6);
    for (int64_t place = 1; place < 200; ++place) {
        int64_t t = tk_wr_admitted_at(&st, place);
        ck_assert_msg(tk_wr_line(&st, t) >= place && tk_wr_line(&st, t - 1) < place, "place %lld at %lld", (long long)place,
                      (long long)t);
    }
    for (int64_t t = 99000; t < 104000; ++t)
        ck_assert(tk_wr_line(&st, t + 1) >= tk_wr_line(&st, t));
}
END_TEST

START_TEST(verdicts_follow_the_line)
{
    tk_wr_state_t st = room();
    uint32_t place_of[3] = {3, 1, 2};
    tk_wr_verdict_t v;
    tk_wr_state_t before = st;
    before.pre = -1;
    tk_wr_evaluate(&before, NULL, 2, 0, 90000, &v);
    ck_assert_int_eq(v.status, TK_WR_WAITING);
    ck_assert_int_eq(v.position, 0); /* unknown before the opening */
    tk_wr_evaluate(&st, NULL, 2, 0, 100050, &v);
    ck_assert_int_eq(v.position, 0); /* shuffle not computed yet */
    tk_wr_evaluate(&st, place_of, 1, 0, 100050, &v);
    ck_assert_int_eq(v.status, TK_WR_WAITING);
    ck_assert_int_eq(v.place, 3);
    ck_assert_int_eq(v.position, 3);
    ck_assert_int_eq(v.eta_s, 1);
    int64_t last = v.position;
    for (int64_t now = 100050; now < 100300; now += 7) {
        tk_wr_evaluate(&st, place_of, 1, 0, now, &v);
        if (v.status != TK_WR_WAITING)
            break;
        ck_assert(v.position <= last);
        last = v.position;
    }
    tk_wr_evaluate(&st, place_of, 1, 0, 100350, &v);
    ck_assert_int_eq(v.status, TK_WR_ADMITTED);
    ck_assert_int_eq(v.admitted_ms, 100300);
    ck_assert_int_eq(v.until_ms, 160300);
    tk_wr_evaluate(&st, place_of, 1, 0, 160300, &v);
    ck_assert_int_eq(v.status, TK_WR_EXPIRED);
    /* after the opening, arrival order: ticket 6 is place 6, behind the frozen line */
    tk_wr_evaluate(&st, place_of, 6, 0, 101000, &v);
    ck_assert_int_eq(v.status, TK_WR_WAITING);
    ck_assert_int_eq(v.position, 1);
    ck_assert_int_eq(v.eta_s, 2); /* at 102010 */
    /* a ticket handed out after the line passed its place is admitted from its join */
    tk_wr_evaluate(&st, place_of, 4, 101500, 101600, &v);
    ck_assert_int_eq(v.status, TK_WR_ADMITTED);
    ck_assert_int_eq(v.admitted_ms, 101500);
    st.enabled = 0;
    tk_wr_evaluate(&st, place_of, 6, 0, 101000, &v);
    ck_assert_int_eq(v.status, TK_WR_OPEN);
}
END_TEST

/* Redis forgets the segments before those it keeps: a place the line had reached before
 * the oldest one kept began was admitted long ago, and must not be admitted afresh at that
 * segment's start (which revived expired admissions, differently in processes that held
 * different segments). Its ticket joined since is admitted from its join, as ever. */
START_TEST(a_place_reached_before_the_oldest_segment_kept_has_expired)
{
    tk_wr_state_t st = {.enabled = 1, .opens_at_ms = 1000, .per_minute = 600, .admission_s = 60, .joined = 80, .pre = 0};
    st.nseg = 2;
    st.seg[0] = (tk_wr_segment_t){100000, 50, 0};   /* frozen at 50: what came before is forgotten */
    st.seg[1] = (tk_wr_segment_t){101000, 50, 600}; /* resumed at 10 a second */
    ck_assert_int_eq(tk_wr_admitted_at(&st, 10), TK_WR_REACHED_LONG_AGO);
    ck_assert_int_eq(tk_wr_admitted_at(&st, 50), TK_WR_REACHED_LONG_AGO);
    ck_assert_int_eq(tk_wr_admitted_at(&st, 51), 101100);
    tk_wr_verdict_t v;
    tk_wr_evaluate(&st, NULL, 10, 0, 102000, &v);
    ck_assert_int_eq(v.status, TK_WR_EXPIRED); /* admitted until 160000 before the fix */
    tk_wr_evaluate(&st, NULL, 10, 100500, 102000, &v);
    ck_assert_int_eq(v.status, TK_WR_ADMITTED);
    ck_assert_int_eq(v.admitted_ms, 100500);
    tk_wr_evaluate(&st, NULL, 51, 0, 102000, &v);
    ck_assert_int_eq(v.status, TK_WR_ADMITTED);
    ck_assert_int_eq(v.admitted_ms, 101100);
    tk_wr_figures_t f;
    tk_wr_figures(&st, 102000, &f);
    ck_assert_int_eq(f.admitted, 60);
    ck_assert_int_eq(f.expected_wait_s, 3); /* place 81 at 104100 */
}
END_TEST

START_TEST(figures_count_waiting_and_admitted)
{
    tk_wr_state_t st = room();
    tk_wr_figures_t f;
    tk_wr_figures(&st, 100250, &f);
    ck_assert_int_eq(f.admitted, 2);
    ck_assert_int_eq(f.waiting, 3);
    ck_assert_int_eq(f.next_position, 4);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("waitroom");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, shuffle_is_a_permutation_and_the_same_for_the_same_seed);
    tcase_add_test(tc, every_early_joiner_lands_on_every_place_evenly);
    tcase_add_test(tc, the_fairness_check_rejects_a_biased_shuffle);
    tcase_add_test(tc, line_and_its_inverse_agree);
    tcase_add_test(tc, verdicts_follow_the_line);
    tcase_add_test(tc, figures_count_waiting_and_admitted);
    tcase_add_test(tc, a_place_reached_before_the_oldest_segment_kept_has_expired);
    suite_add_tcase(suite, tc);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}
