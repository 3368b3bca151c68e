/*
 * test_read_wait: the wait list of reads parked for a revision (src/read_wait.h).
 * Waiters come out by revision and by deadline in order (ties first come,
 * first served), removal from the middle keeps both orders, the bound holds,
 * and a randomized run agrees with a brute-force model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cairn.h"
#include "read_wait.h"

static void test_ready_in_revision_order(void **state)
{
    struct read_wait w;
    struct read_waiter e[6];
    static const uint64_t revs[6] = {7, 3, 9, 3, 5, 12};
    uint64_t order[6];
    struct read_waiter *x;
    size_t i;
    size_t n = 0;
    (void)state;
    read_wait_init(&w, 100);
    for (i = 0; i < 6; i++) {
        memset(&e[i], 0, sizeof(e[i]));
        e[i].min_revision = revs[i];
        e[i].deadline_ms = 1000 - i;
        assert_int_equal(read_wait_add(&w, &e[i]), 0);
    }
    /* Nothing at revision 2; at 5, the two 3s (first come first) and the 5. */
    assert_null(read_wait_ready(&w, 2));
    while ((x = read_wait_ready(&w, 5)) != NULL) {
        order[n++] = (uint64_t)(x - e);
    }
    assert_int_equal(n, 3);
    assert_int_equal(order[0], 1);
    assert_int_equal(order[1], 3);
    assert_int_equal(order[2], 4);
    assert_int_equal(w.n, 3);
    /* The rest: 7, 9, 12 at revision 100. */
    assert_ptr_equal(read_wait_ready(&w, 100), &e[0]);
    assert_ptr_equal(read_wait_ready(&w, 100), &e[2]);
    assert_ptr_equal(read_wait_ready(&w, 100), &e[5]);
    assert_null(read_wait_ready(&w, UINT64_MAX));
    read_wait_close(&w);
}

static void test_expired_in_deadline_order(void **state)
{
    struct read_wait w;
    struct read_waiter e[4];
    static const uint64_t due[4] = {500, 100, 300, 100};
    uint64_t next = 0;
    (void)state;
    read_wait_init(&w, 100);
    assert_false(read_wait_next_deadline(&w, &next));
    for (size_t i = 0; i < 4; i++) {
        memset(&e[i], 0, sizeof(e[i]));
        e[i].min_revision = 10 + i;
        e[i].deadline_ms = due[i];
        assert_int_equal(read_wait_add(&w, &e[i]), 0);
    }
    assert_true(read_wait_next_deadline(&w, &next));
    assert_int_equal(next, 100);
    assert_null(read_wait_expired(&w, 99));
    assert_ptr_equal(read_wait_expired(&w, 100), &e[1]);
    assert_ptr_equal(read_wait_expired(&w, 100), &e[3]);
    assert_null(read_wait_expired(&w, 299));
    assert_true(read_wait_next_deadline(&w, &next));
    assert_int_equal(next, 300);
    /* What expired is gone from the revision order too. */
    assert_ptr_equal(read_wait_ready(&w, 100), &e[0]);
    assert_ptr_equal(read_wait_ready(&w, 100), &e[2]);
    assert_int_equal(w.n, 0);
    read_wait_close(&w);
}

static void test_bound_and_remove(void **state)
{
    struct read_wait w;
    struct read_waiter e[5];
    struct read_waiter extra;
    (void)state;
    read_wait_init(&w, 5);
    for (size_t i = 0; i < 5; i++) {
        memset(&e[i], 0, sizeof(e[i]));
        e[i].min_revision = 5 - i;
        e[i].deadline_ms = i;
        assert_int_equal(read_wait_add(&w, &e[i]), 0);
    }
    memset(&extra, 0, sizeof(extra));
    assert_int_equal(read_wait_add(&w, &extra), CAIRN_EBUSY);
    /* Out of the middle of both heaps. */
    read_wait_remove(&w, &e[2]);
    assert_int_equal(w.n, 4);
    assert_int_equal(read_wait_add(&w, &extra), 0);
    read_wait_remove(&w, &extra);
    assert_ptr_equal(read_wait_expired(&w, 10), &e[0]);
    assert_ptr_equal(read_wait_ready(&w, 10), &e[4]);
    assert_ptr_equal(read_wait_pop(&w), &e[3]);
    assert_ptr_equal(read_wait_pop(&w), &e[1]);
    assert_null(read_wait_pop(&w));
    /* A list that holds nothing refuses everything. */
    read_wait_close(&w);
    read_wait_init(&w, 0);
    assert_int_equal(read_wait_add(&w, &extra), CAIRN_EBUSY);
    read_wait_close(&w);
}

/* Random adds, removals, wakes and expiries against a plain array. */
#define MODEL_N 400

static void test_random_against_model(void **state)
{
    static struct read_waiter e[MODEL_N];
    static bool held[MODEL_N];
    struct read_wait w;
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    uint64_t rev = 0;
    uint64_t now = 0;
    size_t step;
    (void)state;
    memset(held, 0, sizeof(held));
    read_wait_init(&w, MODEL_N);
    for (step = 0; step < 20000; step++) {
        size_t i;
        struct read_waiter *x;
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        i = (size_t)(rng % MODEL_N);
        switch ((rng >> 20) % 4) {
            case 0:
                if (!held[i]) {
                    e[i].min_revision = rev + (rng >> 32) % 50;
                    e[i].deadline_ms = now + (rng >> 40) % 200;
                    assert_int_equal(read_wait_add(&w, &e[i]), 0);
                    held[i] = true;
                } else {
                    read_wait_remove(&w, &e[i]);
                    held[i] = false;
                }
                break;
            case 1:
                rev += (rng >> 32) % 3;
                while ((x = read_wait_ready(&w, rev)) != NULL) {
                    size_t k = (size_t)(x - e);
                    assert_true(held[k]);
                    assert_true(x->min_revision <= rev);
                    held[k] = false;
                }
                break;
            case 2:
                now += (rng >> 32) % 5;
                while ((x = read_wait_expired(&w, now)) != NULL) {
                    size_t k = (size_t)(x - e);
                    assert_true(held[k]);
                    assert_true(x->deadline_ms <= now);
                    held[k] = false;
                }
                break;
            default:
                break;
        }
        /* Nothing left is ready or due, and the count agrees. */
        {
            size_t count = 0;
            uint64_t earliest = UINT64_MAX;
            uint64_t next = 0;
            for (size_t k = 0; k < MODEL_N; k++) {
                if (held[k]) {
                    count++;
                    earliest = e[k].deadline_ms < earliest ? e[k].deadline_ms : earliest;
                }
            }
            assert_int_equal(count, w.n);
            if (count > 0) {
                assert_true(read_wait_next_deadline(&w, &next));
                assert_int_equal(next, earliest);
            }
        }
    }
    read_wait_close(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ready_in_revision_order),
        cmocka_unit_test(test_expired_in_deadline_order),
        cmocka_unit_test(test_bound_and_remove),
        cmocka_unit_test(test_random_against_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
