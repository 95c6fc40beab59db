/* test_xflight.c - the cross-process flight table (core/sf_xflight.h).
 *
 * The table lives in a MAP_SHARED|MAP_ANONYMOUS mapping made before fork(),
 * as a scope's object would be.  Processes (and threads) meet at counters
 * in shared memory, waited on with shared futexes: no sleeps.  Children
 * report what they saw into shared memory and exit; only the test process
 * asserts.  Every wait has a deadline far beyond what a pass needs, so a
 * broken table fails a test instead of hanging its processes. */
#include "core/sf_clock.h"
#include "core/sf_futex.h"
#include "core/sf_xflight.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAXP 64
#define RES 64
#define GIVE_UP_NS (20ull * 1000000000u) /* a broken table, not a slow one */

struct shared {
	_Atomic uint32_t gate;   /* barrier arrivals */
	_Atomic uint32_t joined; /* followers that joined */
	_Atomic uint32_t go;     /* the test process's signals */
	_Atomic uint32_t calls;  /* real calls made */
	_Atomic uint32_t promoted;
	_Atomic uint32_t saw_new_lead;
	_Atomic uint32_t bad; /* anything a child found wrong */
	int32_t promoted_pid;
	struct sf_xowner owner;
	int role[MAXP];
	int outcome[MAXP];
	ssize_t len[MAXP];
	char res[MAXP][RES];
};

static void *mem;
static size_t mem_len;
static sf_xtable *T;
static struct shared *S;

static void setup(void)
{
	mem_len = sf_xtable_bytes();
	mem = mmap(NULL, mem_len, PROT_READ | PROT_WRITE,
	           MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(mem, MAP_FAILED);
	ck_assert_int_eq(sf_xtable_format(mem, mem_len), 0);
	T = sf_xtable_open(mem, mem_len);
	ck_assert_ptr_nonnull(T);
	S = mmap(NULL, sizeof(*S), PROT_READ | PROT_WRITE,
	         MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(S, MAP_FAILED);
	for (int i = 0; i < MAXP; i++) {
		S->role[i] = -1;
		S->outcome[i] = -1;
		S->len[i] = -3;
	}
}

static void teardown(void)
{
	sf_xtable_hook_for_test(NULL);
	sf_xtable_close(T);
	munmap(mem, mem_len);
	munmap(S, sizeof(*S));
}

/* ---- meeting points in shared memory ---------------------------------- */

static void add_wake(_Atomic uint32_t *w)
{
	atomic_fetch_add(w, 1);
	sf_futex_wake_all_shared(w);
}

/* Waits until *w >= n; false past the give-up deadline. */
static bool wait_at_least(_Atomic uint32_t *w, uint32_t n)
{
	struct timespec dl = sf_ns_to_timespec(sf_now_ns() + GIVE_UP_NS);
	uint32_t v;
	while ((v = atomic_load(w)) < n)
		if (sf_futex_wait_shared(w, v, &dl) == ETIMEDOUT)
			return atomic_load(w) >= n;
	return true;
}

static void barrier(uint32_t n)
{
	add_wake(&S->gate);
	if (!wait_at_least(&S->gate, n))
		atomic_fetch_add(&S->bad, 1);
}

static struct timespec in_ns(uint64_t ns)
{
	return sf_ns_to_timespec(sf_now_ns() + ns);
}

static pid_t fork_child(void (*fn)(int), int idx)
{
	pid_t p = fork();
	ck_assert_int_ge(p, 0);
	if (p == 0) {
		fn(idx);
		_exit(0);
	}
	return p;
}

static void reap_ok(pid_t p)
{
	int st;
	ck_assert_int_eq(waitpid(p, &st, 0), p);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	              "child %d ended with status %#x", (int)p, st);
}

static int reap_signal(pid_t p)
{
	int st;
	ck_assert_int_eq(waitpid(p, &st, 0), p);
	return WIFSIGNALED(st) ? WTERMSIG(st) : 0;
}

/* A follower's wait until the end: PROGRESS goes on; PROMOTED makes the
 * call (counted) and publishes `mine`; DONE copies the result. */
static void follow_to_end(int idx, struct sf_xticket *tk, const char *mine,
                          uint64_t within_ns)
{
	struct timespec dl = in_ns(within_ns);
	enum sf_xwait w;
	while ((w = sf_xwait(T, tk, &dl)) == SF_XWAIT_PROGRESS)
		;
	S->outcome[idx] = (int)w;
	if (w == SF_XWAIT_PROMOTED) {
		atomic_fetch_add(&S->calls, 1);
		atomic_fetch_add(&S->promoted, 1);
		size_t n = strlen(mine);
		memcpy(S->res[idx], mine, n);
		S->len[idx] = (ssize_t)n;
		sf_xfinish(T, tk, mine, n);
		return;
	}
	if (w == SF_XWAIT_DONE)
		S->len[idx] = sf_xresult(T, tk, S->res[idx], RES);
	sf_xleave(T, tk);
}

/* ---- one burst: n members join one key at once ------------------------- */

static uint32_t burst_n;         /* who meets at the barrier */
static uint32_t burst_followers; /* who joins as follower */
static const char burst_key[] = "getaddrinfo\0example.org\0443";
static const size_t burst_keylen = sizeof(burst_key) - 1;

static void member(int idx)
{
	struct sf_xticket tk;
	barrier(burst_n);
	enum sf_xrole role = sf_xjoin(T, burst_key, burst_keylen, &tk);
	S->role[idx] = (int)role;
	if (role == SF_XROLE_LEADER) {
		atomic_fetch_add(&S->calls, 1);
		/* The call "lasts" until every other member has joined. */
		if (!wait_at_least(&S->joined, burst_followers))
			atomic_fetch_add(&S->bad, 1);
		char r[RES];
		int n = snprintf(r, sizeof(r), "answer of pid %d", getpid());
		memcpy(S->res[idx], r, (size_t)n);
		S->len[idx] = n;
		sf_xfinish(T, &tk, r, (size_t)n);
	} else if (role == SF_XROLE_FOLLOWER) {
		add_wake(&S->joined);
		follow_to_end(idx, &tk, "a follower's own call", GIVE_UP_NS);
	}
}

static void check_burst(unsigned n)
{
	ck_assert_uint_eq(atomic_load(&S->bad), 0);
	ck_assert_uint_eq(atomic_load(&S->calls), 1);
	unsigned leaders = 0;
	for (unsigned i = 0; i < n; i++) {
		ck_assert_int_ne(S->role[i], SF_XROLE_NONE);
		if (S->role[i] == SF_XROLE_LEADER)
			leaders++;
		else
			ck_assert_int_eq(S->outcome[i], SF_XWAIT_DONE);
		ck_assert_int_gt(S->len[i], 0);
		ck_assert_int_eq(S->len[i], S->len[0]);
		ck_assert_mem_eq(S->res[i], S->res[0], (size_t)S->len[0]);
	}
	ck_assert_uint_eq(leaders, 1);
	ck_assert(strncmp(S->res[0], "answer of pid ", 14) == 0);
}

START_TEST(test_sixteen_processes_one_call)
{
	pid_t kids[16];
	burst_n = 16;
	burst_followers = 15;
	for (int i = 0; i < 16; i++)
		kids[i] = fork_child(member, i);
	for (int i = 0; i < 16; i++)
		reap_ok(kids[i]);
	check_burst(16);
}
END_TEST

static void *member_thread(void *arg)
{
	member((int)(intptr_t)arg);
	return NULL;
}

static void four_threads(int base)
{
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		if (pthread_create(&th[i], NULL, member_thread,
		                   (void *)(intptr_t)(base + i)))
			atomic_fetch_add(&S->bad, 1);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
}

START_TEST(test_threads_and_processes_one_call)
{
	/* Four processes of four threads each; forked before any thread
	 * exists. */
	pid_t kids[4];
	burst_n = 16;
	burst_followers = 15;
	for (int i = 0; i < 4; i++)
		kids[i] = fork_child(four_threads, i * 4);
	for (int i = 0; i < 4; i++)
		reap_ok(kids[i]);
	check_burst(16);
}
END_TEST

/* ---- leader death ------------------------------------------------------ */

static const char *dkey = "a key whose leader dies";

static void lead_and_hang(int idx)
{
	struct sf_xticket tk;
	S->role[idx] = (int)sf_xjoin(T, dkey, strlen(dkey), &tk);
	S->owner = sf_xowner_self();
	add_wake(&S->go);
	for (;;)
		pause(); /* until SIGKILL */
}

static void follow_dkey(int idx)
{
	struct sf_xticket tk;
	S->role[idx] = (int)sf_xjoin(T, dkey, strlen(dkey), &tk);
	add_wake(&S->joined);
	if (S->role[idx] == SF_XROLE_FOLLOWER)
		follow_to_end(idx, &tk, "the promoted follower's answer",
		              5ull * 1000000000u);
}

START_TEST(test_leader_killed_one_promoted)
{
	enum { F = 8 };
	pid_t lead = fork_child(lead_and_hang, 0);
	ck_assert(wait_at_least(&S->go, 1));
	ck_assert_int_eq(S->role[0], SF_XROLE_LEADER);
	pid_t kids[F];
	for (int i = 0; i < F; i++)
		kids[i] = fork_child(follow_dkey, 1 + i);
	ck_assert(wait_at_least(&S->joined, F));
	ck_assert_int_eq(kill(lead, SIGKILL), 0);
	ck_assert_int_eq(reap_signal(lead), SIGKILL);
	ck_assert(!sf_xowner_alive(&S->owner));
	for (int i = 0; i < F; i++)
		reap_ok(kids[i]);
	ck_assert_uint_eq(atomic_load(&S->promoted), 1);
	ck_assert_uint_eq(atomic_load(&S->calls), 1);
	const char *want = "the promoted follower's answer";
	for (int i = 1; i <= F; i++) {
		ck_assert_int_eq(S->role[i], SF_XROLE_FOLLOWER);
		/* Well within the 5 s wait: nobody timed out. */
		ck_assert_int_ne(S->outcome[i], SF_XWAIT_TIMEOUT);
		ck_assert_int_eq(S->len[i], (ssize_t)strlen(want));
		ck_assert_mem_eq(S->res[i], want, strlen(want));
	}
}
END_TEST

/* A leader that exits without finishing stays a zombie until reaped: it
 * is dead all the same. */
static void lead_and_exit(int idx)
{
	struct sf_xticket tk;
	S->role[idx] = (int)sf_xjoin(T, dkey, strlen(dkey), &tk);
	S->owner = sf_xowner_self();
}

START_TEST(test_zombie_leader_is_dead)
{
	pid_t lead = fork_child(lead_and_exit, 0);
	siginfo_t si;
	/* WNOWAIT: the child is left a zombie. */
	ck_assert_int_eq(waitid(P_PID, (id_t)lead, &si, WEXITED | WNOWAIT), 0);
	ck_assert_int_eq(S->role[0], SF_XROLE_LEADER);
	ck_assert_int_eq(S->owner.pid, lead);
	ck_assert(!sf_xowner_alive(&S->owner));
	struct sf_xticket tk;
	ck_assert_int_eq(sf_xjoin(T, dkey, strlen(dkey), &tk),
	                 SF_XROLE_FOLLOWER);
	ck_assert_int_eq(tk.lead.pid, lead);
	struct timespec dl = in_ns(5ull * 1000000000u);
	ck_assert_int_eq(sf_xwait(T, &tk, &dl), SF_XWAIT_PROMOTED);
	ck_assert(tk.leader);
	ck_assert_int_eq(tk.lead.pid, getpid());
	sf_xfinish(T, &tk, "x", 1);
	reap_ok(lead);
}
END_TEST

START_TEST(test_owner_identity)
{
	struct sf_xowner me = sf_xowner_self();
	ck_assert_int_eq(me.pid, getpid());
	ck_assert_uint_gt(me.start, 0);
	ck_assert(sf_xowner_alive(&me));
	/* Right pid, wrong start time: a reused pid. */
	struct sf_xowner fake = me;
	fake.start++;
	ck_assert(!sf_xowner_alive(&fake));
	fake = me;
	fake.start--;
	ck_assert(!sf_xowner_alive(&fake));
	struct sf_xowner none = { 0, 0 };
	ck_assert(!sf_xowner_alive(&none));
	ck_assert(!sf_xowner_alive(NULL));

	/* Another live process, then the same one right start / wrong
	 * start, then exited and reaped. */
	pid_t p = fork_child(lead_and_hang, 0);
	ck_assert(wait_at_least(&S->go, 1));
	struct sf_xowner other = S->owner;
	ck_assert_int_eq(other.pid, p);
	ck_assert(sf_xowner_alive(&other));
	fake = other;
	fake.start += 100;
	ck_assert(!sf_xowner_alive(&fake));
	kill(p, SIGKILL);
	reap_signal(p);
	ck_assert(!sf_xowner_alive(&other));
}
END_TEST

static void report_self(int idx)
{
	(void)idx;
	S->owner = sf_xowner_self();
	if (S->owner.pid != getpid())
		atomic_fetch_add(&S->bad, 1);
}

START_TEST(test_identity_after_fork)
{
	struct sf_xowner me = sf_xowner_self(); /* cached before the fork */
	pid_t p = fork_child(report_self, 0);
	reap_ok(p);
	ck_assert_uint_eq(atomic_load(&S->bad), 0);
	ck_assert_int_eq(S->owner.pid, p);
	ck_assert_int_ne(S->owner.pid, me.pid);
	ck_assert_uint_ge(S->owner.start, me.start);
}
END_TEST

/* ---- the lock's holder dies --------------------------------------------- */

static void hold_lock_and_hang(int idx)
{
	(void)idx;
	sf_xtable_lock_for_test(T);
	add_wake(&S->go);
	for (;;)
		pause();
}

START_TEST(test_lock_holder_killed)
{
	pid_t h = fork_child(hold_lock_and_hang, 0);
	ck_assert(wait_at_least(&S->go, 1));
	enum { N = 4 };
	pid_t kids[N];
	burst_n = N + 1; /* the test process meets them at the barrier */
	burst_followers = N - 1;
	for (int i = 0; i < N; i++)
		kids[i] = fork_child(member, i);
	barrier(burst_n); /* they are about to block on the lock */
	ck_assert_int_eq(kill(h, SIGKILL), 0);
	uint64_t t0 = sf_now_ns();
	ck_assert_int_eq(reap_signal(h), SIGKILL);
	for (int i = 0; i < N; i++)
		reap_ok(kids[i]);
	uint64_t took = sf_now_ns() - t0;
	ck_assert_msg(took < 1000000000u, "took %llu ns",
	              (unsigned long long)took);
	burst_n = N;
	check_burst(N);
}
END_TEST

/* ---- death halfway through a claim or a publication -------------------- */

static void die_at(enum sf_xhook where)
{
	(void)where;
	raise(SIGKILL);
}

static void die_claiming(int idx)
{
	struct sf_xticket tk;
	sf_xtable_hook_for_test(die_at);
	S->role[idx] = (int)sf_xjoin(T, dkey, strlen(dkey), &tk);
	atomic_fetch_add(&S->bad, 1); /* not reached */
}

START_TEST(test_killed_mid_claim)
{
	pid_t p = fork_child(die_claiming, 0);
	ck_assert_int_eq(reap_signal(p), SIGKILL);
	struct sf_xticket tk;
	ck_assert_int_eq(sf_xjoin(T, dkey, strlen(dkey), &tk), SF_XROLE_LEADER);
	sf_xfinish(T, &tk, "ok", 2);
	/* Nothing leaked: every slot can lead a flight again. */
	struct sf_xticket all[SF_XSLOTS];
	char k[32];
	for (unsigned i = 0; i < SF_XSLOTS; i++) {
		int n = snprintf(k, sizeof(k), "key %u", i);
		ck_assert_int_eq(sf_xjoin(T, k, (size_t)n, &all[i]),
		                 SF_XROLE_LEADER);
	}
	ck_assert_int_eq(sf_xjoin(T, "one more", 8, &tk), SF_XROLE_NONE);
	for (unsigned i = 0; i < SF_XSLOTS; i++)
		sf_xfinish(T, &all[i], NULL, 0);
}
END_TEST

static char xres[4000];

static void lead_then_die_publishing(int idx)
{
	struct sf_xticket tk;
	S->role[idx] = (int)sf_xjoin(T, dkey, strlen(dkey), &tk);
	add_wake(&S->go);
	if (!wait_at_least(&S->joined, 4))
		atomic_fetch_add(&S->bad, 1);
	memset(xres, 'X', sizeof(xres));
	sf_xtable_hook_for_test(die_at);
	sf_xfinish(T, &tk, xres, sizeof(xres));
	atomic_fetch_add(&S->bad, 1); /* not reached */
}

START_TEST(test_killed_mid_publish)
{
	pid_t lead = fork_child(lead_then_die_publishing, 0);
	pid_t kids[4];
	ck_assert(wait_at_least(&S->go, 1));
	ck_assert_int_eq(S->role[0], SF_XROLE_LEADER);
	for (int i = 0; i < 4; i++)
		kids[i] = fork_child(follow_dkey, 1 + i);
	ck_assert_int_eq(reap_signal(lead), SIGKILL);
	for (int i = 0; i < 4; i++)
		reap_ok(kids[i]);
	ck_assert_uint_eq(atomic_load(&S->bad), 0);
	ck_assert_uint_eq(atomic_load(&S->promoted), 1);
	const char *want = "the promoted follower's answer";
	for (int i = 1; i <= 4; i++) {
		ck_assert_int_eq(S->len[i], (ssize_t)strlen(want));
		ck_assert_mem_eq(S->res[i], want, strlen(want));
	}
}
END_TEST

/* ---- results ------------------------------------------------------------ */

START_TEST(test_result_bounds)
{
	static char big[SF_XRESULT_MAX + 1], got[SF_XRESULT_MAX + 1];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)(i * 7 + 1);
	struct sf_xticket l, f;
	struct timespec dl = in_ns(5ull * 1000000000u);

	/* Exactly the bound: shared. */
	ck_assert_int_eq(sf_xjoin(T, "k", 1, &l), SF_XROLE_LEADER);
	ck_assert_int_eq(sf_xjoin(T, "k", 1, &f), SF_XROLE_FOLLOWER);
	sf_xfinish(T, &l, big, SF_XRESULT_MAX);
	ck_assert_int_eq(sf_xwait(T, &f, &dl), SF_XWAIT_DONE);
	ck_assert_int_eq(sf_xresult(T, &f, got, sizeof(got)),
	                 (ssize_t)SF_XRESULT_MAX);
	ck_assert_mem_eq(got, big, SF_XRESULT_MAX);
	/* A buffer too small: -1. */
	ck_assert_int_eq(sf_xresult(T, &f, got, SF_XRESULT_MAX - 1), -1);
	sf_xleave(T, &f);

	/* One byte over: no result. */
	ck_assert_int_eq(sf_xjoin(T, "k", 1, &l), SF_XROLE_LEADER);
	ck_assert_int_eq(sf_xjoin(T, "k", 1, &f), SF_XROLE_FOLLOWER);
	sf_xfinish(T, &l, big, SF_XRESULT_MAX + 1);
	ck_assert_int_eq(sf_xwait(T, &f, &dl), SF_XWAIT_DONE);
	ck_assert_int_eq(sf_xresult(T, &f, got, sizeof(got)), -1);
	sf_xleave(T, &f);

	/* No result at all, and an empty one. */
	ck_assert_int_eq(sf_xjoin(T, "k", 1, &l), SF_XROLE_LEADER);
	ck_assert_int_eq(sf_xjoin(T, "k", 1, &f), SF_XROLE_FOLLOWER);
	sf_xfinish(T, &l, NULL, 0);
	ck_assert_int_eq(sf_xwait(T, &f, &dl), SF_XWAIT_DONE);
	ck_assert_int_eq(sf_xresult(T, &f, got, sizeof(got)), -1);
	sf_xleave(T, &f);
	ck_assert_int_eq(sf_xjoin(T, "k", 1, &l), SF_XROLE_LEADER);
	ck_assert_int_eq(sf_xjoin(T, "k", 1, &f), SF_XROLE_FOLLOWER);
	sf_xfinish(T, &l, "", 0);
	ck_assert_int_eq(sf_xwait(T, &f, &dl), SF_XWAIT_DONE);
	ck_assert_int_eq(sf_xresult(T, &f, got, sizeof(got)), 0);
	sf_xleave(T, &f);
}
END_TEST

START_TEST(test_reused_slot_lost)
{
	struct sf_xticket l, f, run[SF_XSLOTS];
	struct timespec dl = in_ns(5ull * 1000000000u);
	ck_assert_int_eq(sf_xjoin(T, "old", 3, &l), SF_XROLE_LEADER);
	ck_assert_int_eq(sf_xjoin(T, "old", 3, &f), SF_XROLE_FOLLOWER);
	sf_xfinish(T, &l, "old answer", 10);
	ck_assert(sf_xflight_current(T, l.slot, l.gen));
	/* Every other slot is free: they are taken first. */
	char k[32];
	for (unsigned i = 0; i < SF_XSLOTS - 1; i++) {
		int n = snprintf(k, sizeof(k), "other %u", i);
		ck_assert_int_eq(sf_xjoin(T, k, (size_t)n, &run[i]),
		                 SF_XROLE_LEADER);
		ck_assert_uint_ne(run[i].slot, l.slot);
	}
	ck_assert(sf_xflight_current(T, l.slot, l.gen));
	/* Then the finished one. */
	ck_assert_int_eq(sf_xjoin(T, "new", 3, &run[SF_XSLOTS - 1]),
	                 SF_XROLE_LEADER);
	ck_assert_uint_eq(run[SF_XSLOTS - 1].slot, l.slot);
	ck_assert_uint_ne(run[SF_XSLOTS - 1].gen, l.gen);
	ck_assert(!sf_xflight_current(T, l.slot, l.gen));
	ck_assert_int_eq(sf_xwait(T, &f, &dl), SF_XWAIT_LOST);
	char got[RES];
	ck_assert_int_eq(sf_xresult(T, &f, got, sizeof(got)), -1);
	ck_assert_uint_eq(sf_xprogress(T, &f), 0);
	sf_xleave(T, &f);
	/* Full of live flights: no flight. */
	struct sf_xticket none;
	ck_assert_int_eq(sf_xjoin(T, "full", 4, &none), SF_XROLE_NONE);
	ck_assert_int_eq(sf_xwait(T, &none, &dl), SF_XWAIT_LOST);
	for (unsigned i = 0; i < SF_XSLOTS; i++)
		sf_xfinish(T, &run[i], "r", 1);
}
END_TEST

Suite *xflight_suite(void);
Suite *xflight_suite(void)
{
	Suite *s = suite_create("xflight");
	TCase *tc = tcase_create("xflight");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_sixteen_processes_one_call);
	tcase_add_test(tc, test_threads_and_processes_one_call);
	tcase_add_test(tc, test_leader_killed_one_promoted);
	tcase_add_test(tc, test_zombie_leader_is_dead);
	tcase_add_test(tc, test_owner_identity);
	tcase_add_test(tc, test_identity_after_fork);
	tcase_add_test(tc, test_lock_holder_killed);
	tcase_add_test(tc, test_killed_mid_claim);
	tcase_add_test(tc, test_killed_mid_publish);
	tcase_add_test(tc, test_result_bounds);
	tcase_add_test(tc, test_reused_slot_lost);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *r = srunner_create(xflight_suite());
	srunner_run_all(r, CK_NORMAL);
	int failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
