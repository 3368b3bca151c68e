/*
 * test_fsm: the snapshot threshold that follows the state's size
 * (--snapshot-log-percent; raft/fsm.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "fsm.h"

static void test_threshold_small_state_keeps_minimum(void **state)
{
    (void)state;
    /* 1 MB of state, 100-byte entries, half the state: 5,000 < 32,768. */
    assert_int_equal(fsm_snapshot_threshold(32768, 50, 1000000, 100), 32768);
    /* Off, or nothing known about entries yet: the minimum. */
    assert_int_equal(fsm_snapshot_threshold(32768, 0, 1000000000, 100), 32768);
    assert_int_equal(fsm_snapshot_threshold(64, 50, 1000000000, 0), 64);
}

static void test_threshold_grows_with_state(void **state)
{
    (void)state;
    /* 200 MB of state, 1,100-byte entries: half the state is 90,909 entries. */
    assert_int_equal(fsm_snapshot_threshold(32768, 50, 200000000, 1100), 90909);
    /* Twice the percentage, twice the entries; smaller entries, more. */
    assert_int_equal(fsm_snapshot_threshold(32768, 100, 200000000, 1100), 181818);
    assert_int_equal(fsm_snapshot_threshold(32768, 50, 200000000, 110), 909090);
}

static void test_threshold_is_capped(void **state)
{
    (void)state;
    /* Huge states and tiny entries stay within raft's unsigned threshold. */
    assert_true(fsm_snapshot_threshold(1, 10000, UINT64_MAX / 200, 1) <= UINT32_MAX);
    assert_int_equal(fsm_snapshot_threshold(1, 10000, UINT64_MAX / 200, 1), 1ull << 30);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threshold_small_state_keeps_minimum),
        cmocka_unit_test(test_threshold_grows_with_state),
        cmocka_unit_test(test_threshold_is_capped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
