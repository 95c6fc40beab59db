/* test_leave.c - core/sf_leave.h: a call left without returning is known,
 * and sf_do() releases its flight when that happens.
 *
 * A longjmp out of a leader's call (a signal handler's timeout, a
 * callback) used to leave the flight registered for ever: followers waited
 * out their deadline (or, with none, for ever) and every later caller of
 * the key joined a flight nobody led. */
#include "core/sf_flight.h"
#include "core/sf_leave.h"

#include <check.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#ifdef __SANITIZE_ADDRESS__
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "detect_stack_use_after_return=1";
}
#endif

static sigjmp_buf env;
static int left_runs, order[4], n_order;

static void left(void *arg)
{
	left_runs++;
	order[n_order++] = *(int *)arg;
}

static void returns(void *arg)
{
	(void)arg;
}

static void jumps(void *arg)
{
	(void)arg;
	siglongjmp(env, 1);
}

static void reset(void)
{
	left_runs = n_order = 0;
}

START_TEST(normal_return_runs_nothing)
{
	int tag = 1;
	reset();
	sf_leave_guarded(returns, NULL, left, &tag);
	ck_assert_int_eq(left_runs, 0);
}
END_TEST

START_TEST(jump_out_runs_left_once)
{
	static int tag = 7;
	reset();
	if (sigsetjmp(env, 1) == 0) {
		sf_leave_guarded(jumps, NULL, left, &tag);
		ck_abort_msg("returned");
	}
	ck_assert_int_eq(left_runs, 1);
	ck_assert_int_eq(order[0], 7);
	/* Popped: a later jump from elsewhere runs nothing more. */
	if (sigsetjmp(env, 1) == 0)
		jumps(NULL);
	ck_assert_int_eq(left_runs, 1);
}
END_TEST

/* Nested guards: innermost first, each once. */
static int tag_inner = 2, tag_outer = 1;
static void inner_then_jump(void *arg)
{
	(void)arg;
	sf_leave_guarded(jumps, NULL, left, &tag_inner);
}

START_TEST(nested_guards_run_innermost_first)
{
	reset();
	if (sigsetjmp(env, 1) == 0)
		sf_leave_guarded(inner_then_jump, NULL, left, &tag_outer);
	ck_assert_int_eq(left_runs, 2);
	ck_assert_int_eq(order[0], 2);
	ck_assert_int_eq(order[1], 1);
}
END_TEST

/* A jump that stays inside call() leaves nothing. */
static void jumps_inside(void *arg)
{
	(void)arg;
	sigjmp_buf inner;
	if (sigsetjmp(inner, 1) == 0)
		siglongjmp(inner, 1);
}

START_TEST(jump_within_call_runs_nothing)
{
	int tag = 3;
	reset();
	sf_leave_guarded(jumps_inside, NULL, left, &tag);
	ck_assert_int_eq(left_runs, 0);
}
END_TEST

/* Cancellation leaves the frame too: left runs once. */
static _Atomic int cancel_left;
static void count_cancel(void *arg)
{
	(void)arg;
	cancel_left++;
}

static void blocks(void *arg)
{
	pthread_barrier_wait(arg);
	for (;;)
		pthread_testcancel(), sched_yield();
}

static void *cancel_main(void *arg)
{
	sf_leave_guarded(blocks, arg, count_cancel, NULL);
	return NULL;
}

START_TEST(cancellation_runs_left_once)
{
	pthread_barrier_t b;
	pthread_barrier_init(&b, NULL, 2);
	pthread_t t;
	ck_assert_int_eq(pthread_create(&t, NULL, cancel_main, &b), 0);
	pthread_barrier_wait(&b);
	ck_assert_int_eq(pthread_cancel(t), 0);
	void *ret;
	ck_assert_int_eq(pthread_join(t, &ret), 0);
	ck_assert_ptr_eq(ret, PTHREAD_CANCELED);
	ck_assert_int_eq(cancel_left, 1);
	pthread_barrier_destroy(&b);
}
END_TEST

/* ---- sf_do ------------------------------------------------------------- */

static const char KEY[] = "jump.example";
static _Atomic int calls;
static _Atomic bool jump_next, leading;
static sf_group *g;

/* The call: the first one (jump_next) tells the test it is leading, waits
 * until a follower has joined if there is to be one, and jumps out. */
static _Atomic unsigned want_followers;
static void do_call(void *arg, void *out)
{
	(void)arg;
	calls++;
	if (atomic_exchange(&jump_next, false)) {
		atomic_store(&leading, true);
		while (sf_group_followers(g, KEY, sizeof(KEY)) < want_followers)
			sched_yield();
		siglongjmp(env, 1);
	}
	*(int *)out = 42;
}

static void *do_share(const void *out)
{
	static int shared;
	shared = *(const int *)out;
	return &shared;
}

static bool do_take(const void *result, void *out)
{
	*(int *)out = *(const int *)result;
	return true;
}

static const struct sf_do_ops ops = { .call = do_call,
	                              .share = do_share,
	                              .take = do_take };

START_TEST(jumped_leader_leaves_no_flight)
{
	g = sf_group_new();
	atomic_store(&jump_next, true);
	int out = 0;
	if (sigsetjmp(env, 1) == 0) {
		sf_do(g, KEY, sizeof(KEY), &ops, NULL, &out, 0, false, NULL);
		ck_abort_msg("returned");
	}
	/* The next caller leads at once (with no deadline, it would have
	 * waited for ever on the stranded flight). */
	ck_assert_int_eq(sf_do(g, KEY, sizeof(KEY), &ops, NULL, &out, 0, false,
	                       NULL),
	                 SF_PATH_LEADER);
	ck_assert_int_eq(out, 42);
	ck_assert_int_eq(calls, 2);
	sf_group_free(g);
}
END_TEST

struct follower {
	pthread_t t;
	enum sf_path path;
	int out;
};

static void *follower_main(void *p)
{
	struct follower *f = p;
	while (!atomic_load(&leading))
		sched_yield();
	f->path =
	        sf_do(g, KEY, sizeof(KEY), &ops, NULL, &f->out, 0, false, NULL);
	return NULL;
}

/* A leader that jumps out while a follower waits with no deadline: the
 * follower is promoted at once and makes the call. */
START_TEST(jumped_leader_promotes_waiting_follower)
{
	g = sf_group_new();
	atomic_store(&jump_next, true);
	atomic_store(&want_followers, 1);
	struct follower fw = { 0 };
	ck_assert_int_eq(pthread_create(&fw.t, NULL, follower_main, &fw), 0);
	int out = 0;
	if (sigsetjmp(env, 1) == 0) {
		sf_do(g, KEY, sizeof(KEY), &ops, NULL, &out, 0, false, NULL);
		ck_abort_msg("returned");
	}
	ck_assert_int_eq(pthread_join(fw.t, NULL), 0);
	ck_assert_int_eq(fw.path, SF_PATH_PROMOTED);
	ck_assert_int_eq(fw.out, 42);
	ck_assert_int_eq(calls, 2);
	sf_group_free(g);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("leave");
	TCase *tc = tcase_create("leave");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, normal_return_runs_nothing);
	tcase_add_test(tc, jump_out_runs_left_once);
	tcase_add_test(tc, nested_guards_run_innermost_first);
	tcase_add_test(tc, jump_within_call_runs_nothing);
	tcase_add_test(tc, cancellation_runs_left_once);
	tcase_add_test(tc, jumped_leader_leaves_no_flight);
	tcase_add_test(tc, jumped_leader_promotes_waiting_follower);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
