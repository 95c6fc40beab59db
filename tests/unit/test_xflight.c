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
#include "sf_unit_main.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef __SANITIZE_ADDRESS__
/* The cancellation test unwinds a thread out of instrumented frames; with
 * the fake stack ASan leaves no stale redzones behind (as in
 * test_flight.c, google/sanitizers#1010). */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "detect_stack_use_after_return=1";
}
#endif

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
	int32_t newlead[MAXP]; /* the first new leader a follower saw */
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
	sf_xtable_lock_bound_for_test(0);
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
	pid_t parent = getpid();
	pid_t p = fork();
	ck_assert_int_ge(p, 0);
	if (p == 0) {
		/* A test that fails leaves no child behind. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
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

/* A follower of a flight whose leader goes (killed, or gives up): the one
 * promoted holds the flight until the other `handover_others` followers
 * have seen it lead (SF_XWAIT_PROGRESS with tk->lead updated), then
 * publishes `mine`; the others record the first new leader they saw. */
static unsigned handover_others;

static void follow_handover(int idx, const char *key, const char *mine)
{
	struct sf_xticket tk;
	struct timespec dl = in_ns(5ull * 1000000000u);
	int32_t first = 0;
	S->role[idx] = (int)sf_xjoin(T, key, strlen(key), &tk);
	int32_t original = tk.lead.pid;
	add_wake(&S->joined);
	if (S->role[idx] != SF_XROLE_FOLLOWER)
		return;
	enum sf_xwait w;
	while ((w = sf_xwait(T, &tk, &dl)) == SF_XWAIT_PROGRESS)
		if (!first && tk.lead.pid && tk.lead.pid != original) {
			first = tk.lead.pid;
			add_wake(&S->saw_new_lead);
		}
	S->outcome[idx] = (int)w;
	S->newlead[idx] = first;
	if (w == SF_XWAIT_PROMOTED) {
		S->promoted_pid = getpid();
		atomic_fetch_add(&S->promoted, 1);
		atomic_fetch_add(&S->calls, 1);
		if (!wait_at_least(&S->saw_new_lead, handover_others))
			atomic_fetch_add(&S->bad, 1);
		size_t n = strlen(mine);
		memcpy(S->res[idx], mine, n);
		S->len[idx] = (ssize_t)n;
		sf_xfinish(T, &tk, mine, n);
		return;
	}
	if (w == SF_XWAIT_DONE)
		S->len[idx] = sf_xresult(T, &tk, S->res[idx], RES);
	sf_xleave(T, &tk);
}

static void follow_dkey(int idx)
{
	follow_handover(idx, dkey, "the promoted follower's answer");
}

/* Exactly one of followers [first, first + n) was promoted; every other
 * one saw it lead, then got its result. */
static void check_handover(int first, int n, const char *want)
{
	ck_assert_uint_eq(atomic_load(&S->bad), 0);
	ck_assert_uint_eq(atomic_load(&S->promoted), 1);
	ck_assert_uint_eq(atomic_load(&S->calls), 1);
	for (int i = first; i < first + n; i++) {
		ck_assert_int_eq(S->role[i], SF_XROLE_FOLLOWER);
		ck_assert_int_eq(S->len[i], (ssize_t)strlen(want));
		ck_assert_mem_eq(S->res[i], want, strlen(want));
		if (S->outcome[i] == SF_XWAIT_PROMOTED)
			continue;
		/* Well within the wait: nobody timed out. */
		ck_assert_int_eq(S->outcome[i], SF_XWAIT_DONE);
		ck_assert_int_eq(S->newlead[i], S->promoted_pid);
	}
}

START_TEST(test_leader_killed_one_promoted)
{
	enum { F = 8 };
	pid_t lead = fork_child(lead_and_hang, 0);
	ck_assert(wait_at_least(&S->go, 1));
	ck_assert_int_eq(S->role[0], SF_XROLE_LEADER);
	pid_t kids[F];
	handover_others = F - 1;
	for (int i = 0; i < F; i++)
		kids[i] = fork_child(follow_dkey, 1 + i);
	ck_assert(wait_at_least(&S->joined, F));
	ck_assert_int_eq(kill(lead, SIGKILL), 0);
	ck_assert_int_eq(reap_signal(lead), SIGKILL);
	ck_assert(!sf_xowner_alive(&S->owner));
	for (int i = 0; i < F; i++)
		reap_ok(kids[i]);
	check_handover(1, F, "the promoted follower's answer");
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

/* A process whose main thread called pthread_exit shows as a zombie in
 * /proc/PID/stat while its other threads run: it is alive. */
static void *park(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static void main_thread_exits(int idx)
{
	(void)idx;
	pthread_t th;
	if (pthread_create(&th, NULL, park, NULL))
		atomic_fetch_add(&S->bad, 1);
	S->owner = sf_xowner_self();
	add_wake(&S->go);
	pthread_exit(NULL);
}

static char proc_state(pid_t p)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)p);
	FILE *f = fopen(path, "r");
	if (!f)
		return '?';
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *q = strrchr(buf, ')');
	return q && q[1] ? q[2] : '?';
}

START_TEST(test_zombie_main_thread_alive)
{
	pid_t p = fork_child(main_thread_exits, 0);
	ck_assert(wait_at_least(&S->go, 1));
	/* A condition, not a sleep: the main thread's exit completes. */
	uint64_t give_up = sf_now_ns() + GIVE_UP_NS;
	while (proc_state(p) != 'Z' && sf_now_ns() < give_up)
		sched_yield();
	ck_assert_int_eq(proc_state(p), 'Z');
	ck_assert_int_eq(S->owner.pid, p);
	ck_assert(sf_xowner_alive(&S->owner));
	kill(p, SIGKILL);
	ck_assert_int_eq(reap_signal(p), SIGKILL);
	ck_assert(!sf_xowner_alive(&S->owner));
	ck_assert_uint_eq(atomic_load(&S->bad), 0);
}
END_TEST

/* Signals every 2 ms (no SA_RESTART: each one ends the futex wait with
 * EINTR) must not put off the leader's liveness check: the follower of a
 * dead leader still takes over, long before its deadline. */
static void on_alarm(int sig)
{
	(void)sig;
}

START_TEST(test_signals_do_not_defer_liveness)
{
	pid_t lead = fork_child(lead_and_exit, 0);
	siginfo_t si;
	ck_assert_int_eq(waitid(P_PID, (id_t)lead, &si, WEXITED | WNOWAIT), 0);
	ck_assert_int_eq(S->role[0], SF_XROLE_LEADER);
	struct sf_xticket tk;
	ck_assert_int_eq(sf_xjoin(T, dkey, strlen(dkey), &tk),
	                 SF_XROLE_FOLLOWER);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm; /* no SA_RESTART */
	ck_assert_int_eq(sigaction(SIGALRM, &sa, NULL), 0);
	struct itimerval every = { { 0, 2000 }, { 0, 2000 } }, off = { 0 };
	ck_assert_int_eq(setitimer(ITIMER_REAL, &every, NULL), 0);
	uint64_t t0 = sf_now_ns();
	struct timespec dl = in_ns(5ull * 1000000000u);
	enum sf_xwait w = sf_xwait(T, &tk, &dl);
	uint64_t took = sf_now_ns() - t0;
	setitimer(ITIMER_REAL, &off, NULL);
	ck_assert_int_eq(w, SF_XWAIT_PROMOTED);
	/* Well within the wait (it takes SF_XLIVENESS_MS): not at its end. */
	ck_assert_msg(took < 1000000000u, "took %llu ns",
	              (unsigned long long)took);
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

/* A holder that is stopped, not dead, keeps the lock: callers give up
 * after the bound and call per-process instead of hanging with it.  (The
 * only test that lets real time pass on purpose: 50 ms.) */
START_TEST(test_stopped_lock_holder_bounded)
{
	struct sf_xticket l, f, tk;
	ck_assert_int_eq(sf_xjoin(T, "q", 1, &l), SF_XROLE_LEADER);
	ck_assert_int_eq(sf_xjoin(T, "q", 1, &f), SF_XROLE_FOLLOWER);
	pid_t h = fork_child(hold_lock_and_hang, 0);
	ck_assert(wait_at_least(&S->go, 1));
	ck_assert_int_eq(kill(h, SIGSTOP), 0);
	sf_xtable_lock_bound_for_test(50);
	uint64_t t0 = sf_now_ns();
	ck_assert_int_eq(sf_xjoin(T, "k", 1, &tk), SF_XROLE_NONE);
	ck_assert_uint_ge(sf_now_ns() - t0, 50u * 1000000u);
	ck_assert_uint_eq(tk.slot, SF_XSLOTS);
	/* A leader that cannot publish quits visibly: its follower finds it
	 * gone, cannot take over either, and calls alone (LOST), long
	 * before its own deadline. */
	sf_xfinish(T, &l, "unpublished", 11);
	struct timespec dl = in_ns(60ull * 1000000000u);
	ck_assert_int_eq(sf_xwait(T, &f, &dl), SF_XWAIT_LOST);
	sf_xleave(T, &f);
	sf_xtable_lock_bound_for_test(0);
	/* Killed while stopped: its lock is recovered at once. */
	ck_assert_int_eq(kill(h, SIGKILL), 0);
	ck_assert_int_eq(reap_signal(h), SIGKILL);
	ck_assert_int_eq(sf_xjoin(T, "k", 1, &tk), SF_XROLE_LEADER);
	sf_xfinish(T, &tk, "k", 1);
}
END_TEST

/* A thread that asks for the lock while it holds it (a signal handler
 * calling in, say) is refused at once: no flight, no wait. */
START_TEST(test_relock_refused)
{
	struct sf_xticket tk;
	sf_xtable_lock_bound_for_test(
	        60000); /* a wait would time the test out */
	sf_xtable_lock_for_test(T);
	ck_assert_int_eq(sf_xjoin(T, "k", 1, &tk), SF_XROLE_NONE);
	sf_xtable_unlock_for_test(T);
	ck_assert_int_eq(sf_xjoin(T, "k", 1, &tk), SF_XROLE_LEADER);
	sf_xfinish(T, &tk, NULL, 0);
}
END_TEST

/* A signal handler's siglongjmp out of the table's code while the thread
 * holds the lock (alarm() as a resolver timeout; here the claim hook
 * jumps): sf_xtable_left(), which the hooks run on that way out, undoes
 * the half claim and releases the lock.  Before it, the live thread kept
 * the lock for good: every other process waited the bound and got NONE,
 * and the thread itself was refused. */
static sigjmp_buf jump_env;

static void jump_out(enum sf_xhook where)
{
	(void)where;
	siglongjmp(jump_env, 1);
}

static void join_dkey(int idx)
{
	struct sf_xticket tk;
	S->role[idx] = (int)sf_xjoin(T, dkey, strlen(dkey), &tk);
	sf_xfinish(T, &tk, NULL, 0);
}

START_TEST(test_jumped_out_holding_lock)
{
	static struct sf_xticket tk;
	sf_xtable_lock_bound_for_test(200);
	if (sigsetjmp(jump_env, 1) == 0) {
		sf_xtable_hook_for_test(jump_out);
		sf_xjoin(T, dkey, strlen(dkey), &tk);
		ck_abort_msg("the hook did not jump");
	}
	sf_xtable_hook_for_test(NULL);
	sf_xtable_left(T);
	sf_xtable_left(T); /* not held any more: nothing */
	pid_t p = fork_child(join_dkey, 0);
	reap_ok(p);
	ck_assert_int_eq(S->role[0], SF_XROLE_LEADER);
	ck_assert_int_eq(sf_xjoin(T, "k", 1, &tk), SF_XROLE_LEADER);
	sf_xfinish(T, &tk, NULL, 0);
}
END_TEST

/* The same jump while a follower checks its leader's life (reading
 * /proc): before, a jump out of the read left its descriptor open and the
 * thread's cancellation disabled for good. */
static void jump_sig(int sig)
{
	(void)sig;
	siglongjmp(jump_env, 1);
}

static int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	ck_assert_ptr_nonnull(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

START_TEST(test_jumped_out_of_liveness)
{
	static struct sf_xowner parent;
	static volatile int i;
	parent.pid = (int32_t)getppid();
	char st[1024];
	snprintf(st, sizeof(st), "/proc/%d/stat", (int)parent.pid);
	FILE *f = fopen(st, "r");
	ck_assert_ptr_nonnull(f);
	unsigned long long start = 0;
	ck_assert_int_eq(fscanf(f,
	                        "%*d (%*[^)]) %*c %*d %*d %*d %*d %*d %*u "
	                        "%*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
	                        "%*d %*d %llu",
	                        &start),
	                 1);
	fclose(f);
	parent.start = start;
	int fds = count_fds();
	struct sigaction sa = { .sa_handler = jump_sig };
	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGALRM, &sa, NULL), 0);
	struct itimerval it = { { 0, 50 }, { 0, 50 } };
	ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
	i = 0;
	sigsetjmp(jump_env, 1);
	while (i < 5000) {
		i++; /* first: a jump may come at every call's end */
		sf_xowner_alive(&parent);
	}
	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	setitimer(ITIMER_REAL, &off, NULL);
	signal(SIGALRM, SIG_IGN);
	int old;
	pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old);
	ck_assert_int_eq(old, PTHREAD_CANCEL_ENABLE);
	ck_assert_int_eq(count_fds(), fds);
	ck_assert(sf_xowner_alive(&parent));
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
	/* Every slot finished, slot `old` first: the claim takes it over. */
	struct sf_xticket old, f, tk;
	ck_assert_int_eq(sf_xjoin(T, "old", 3, &old), SF_XROLE_LEADER);
	ck_assert_int_eq(sf_xjoin(T, "old", 3, &f), SF_XROLE_FOLLOWER);
	sf_xfinish(T, &old, "old", 3);
	for (unsigned i = 1; i < SF_XSLOTS; i++) {
		char k[32];
		int n = snprintf(k, sizeof(k), "done %u", i);
		ck_assert_int_eq(sf_xjoin(T, k, (size_t)n, &tk),
		                 SF_XROLE_LEADER);
		sf_xfinish(T, &tk, NULL, 0);
	}
	pid_t p = fork_child(die_claiming, 0);
	ck_assert_int_eq(reap_signal(p), SIGKILL);
	/* The old flight is gone, and the half-made one never existed. */
	struct timespec dl = in_ns(5ull * 1000000000u);
	ck_assert_int_eq(sf_xwait(T, &f, &dl), SF_XWAIT_LOST);
	ck_assert(!sf_xflight_current(T, old.slot, old.gen));
	ck_assert(!sf_xflight_current(T, old.slot, old.gen + 1));
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
	handover_others = 3;
	for (int i = 0; i < 4; i++)
		kids[i] = fork_child(follow_dkey, 1 + i);
	ck_assert_int_eq(reap_signal(lead), SIGKILL);
	for (int i = 0; i < 4; i++)
		reap_ok(kids[i]);
	/* No follower saw the half-written result: one took over. */
	check_handover(1, 4, "the promoted follower's answer");
}
END_TEST

/* ---- kill -9 at any instruction ------------------------------------------ */

/* Workers (two threads each) hammer four keys (join, notify, finish with results of every
 * size, abandon, follow) while the test kills one of them with SIGKILL at
 * arbitrary moments, inside or outside the lock, and starts another.
 * Whatever the moment: a follower never reads a result that is not a
 * whole one of its own key, and afterwards every slot can be claimed. */
#define HOT 4
#define WORKERS 6

static _Atomic uint32_t *ops; /* in S: operations done, all workers */

static uint8_t pattern(unsigned key, size_t j, size_t len)
{
	return (uint8_t)(key * 31u + j * 7u + len * 13u);
}

static uint32_t rnd(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

static void lead_hot(unsigned k, struct sf_xticket *tk, uint32_t *seed)
{
	static __thread unsigned char res[SF_XRESULT_MAX];
	uint32_t r = rnd(seed);
	if (r % 8 == 0) {
		sf_xabandon(T, tk);
		return;
	}
	size_t len = r % 4 == 1 ? SF_XRESULT_MAX : (r >> 8) % 600;
	for (size_t j = 0; j < len; j++)
		res[j] = pattern(k, j, len);
	if (r % 3 == 0)
		sf_xnotify(T, tk, r);
	sf_xfinish(T, tk, res, len);
}

static void hot_loop(int idx)
{
	static __thread unsigned char got[SF_XRESULT_MAX];
	uint32_t seed = (uint32_t)getpid() * 2654435761u + (uint32_t)idx;
	char key[16];
	for (;;) {
		unsigned k = rnd(&seed) % HOT;
		int n = snprintf(key, sizeof(key), "hot %u", k);
		struct sf_xticket tk;
		enum sf_xrole role = sf_xjoin(T, key, (size_t)n, &tk);
		if (role == SF_XROLE_LEADER) {
			lead_hot(k, &tk, &seed);
		} else if (role == SF_XROLE_FOLLOWER) {
			struct timespec dl = in_ns(2000000000u);
			enum sf_xwait w;
			while ((w = sf_xwait(T, &tk, &dl)) == SF_XWAIT_PROGRESS)
				;
			if (w == SF_XWAIT_PROMOTED) {
				lead_hot(k, &tk, &seed);
			} else {
				ssize_t len = w == SF_XWAIT_DONE
				                      ? sf_xresult(T, &tk, got,
				                                   sizeof(got))
				                      : -1;
				for (ssize_t j = 0; j < len; j++)
					if (got[j] != pattern(k, (size_t)j,
					                      (size_t)len)) {
						atomic_fetch_add(&S->bad, 1);
						break;
					}
				sf_xleave(T, &tk);
			}
		}
		atomic_fetch_add(ops, 1);
	}
}

static void *hot_thread(void *arg)
{
	hot_loop((int)(intptr_t)arg);
	return NULL;
}

/* Two threads per worker: the table's lock-free reads race with slot
 * reuse inside a process too, where TSan can see them. */
static void hot_worker(int idx)
{
	pthread_t th;
	if (pthread_create(&th, NULL, hot_thread, (void *)(intptr_t)(idx + 64)))
		atomic_fetch_add(&S->bad, 1);
	hot_loop(idx);
}

START_TEST(test_kill9_anywhere)
{
	ops = &S->calls;
	pid_t w[WORKERS];
	uint32_t seed = 12345;
	for (int i = 0; i < WORKERS; i++)
		w[i] = fork_child(hot_worker, i);
	for (int kill_no = 0; kill_no < 200; kill_no++) {
		/* A condition, not a sleep: some more operations happened. */
		uint32_t until = atomic_load(ops) + 20 + rnd(&seed) % 200;
		uint64_t give_up = sf_now_ns() + GIVE_UP_NS;
		while (atomic_load(ops) < until && sf_now_ns() < give_up)
			sched_yield();
		ck_assert_uint_ge(atomic_load(ops), until);
		int v = (int)(rnd(&seed) % WORKERS);
		kill(w[v], SIGKILL);
		ck_assert_int_eq(reap_signal(w[v]), SIGKILL);
		w[v] = fork_child(hot_worker, v);
	}
	for (int i = 0; i < WORKERS; i++) {
		kill(w[i], SIGKILL);
		reap_signal(w[i]);
	}
	ck_assert_uint_eq(atomic_load(&S->bad), 0);
	/* Nothing corrupt, nothing stuck: every slot leads a new flight. */
	struct sf_xticket all[SF_XSLOTS], extra;
	char k[32];
	for (unsigned i = 0; i < SF_XSLOTS; i++) {
		int n = snprintf(k, sizeof(k), "after %u", i);
		ck_assert_int_eq(sf_xjoin(T, k, (size_t)n, &all[i]),
		                 SF_XROLE_LEADER);
	}
	ck_assert_int_eq(sf_xjoin(T, "one more", 8, &extra), SF_XROLE_NONE);
	for (unsigned i = 0; i < SF_XSLOTS; i++)
		sf_xfinish(T, &all[i], "x", 1);
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

/* After a leader died halfway through publishing (a follower attached,
 * so under the lock), the repair makes the flight leaderless: the next
 * caller of the key leads at once, instead of following a dead leader
 * until its liveness check; the attached follower sees it lead. */
static void lead_then_die_publishing_followed(int idx)
{
	struct sf_xticket tk;
	S->role[idx] = (int)sf_xjoin(T, dkey, strlen(dkey), &tk);
	add_wake(&S->go);
	if (!wait_at_least(&S->joined, 1))
		atomic_fetch_add(&S->bad, 1);
	sf_xtable_hook_for_test(die_at);
	sf_xfinish(T, &tk, "partial?", 8);
	atomic_fetch_add(&S->bad, 1); /* not reached */
}

START_TEST(test_dead_publisher_next_leads)
{
	pid_t p = fork_child(lead_then_die_publishing_followed, 0);
	ck_assert(wait_at_least(&S->go, 1));
	ck_assert_int_eq(S->role[0], SF_XROLE_LEADER);
	struct sf_xticket f, tk;
	ck_assert_int_eq(sf_xjoin(T, dkey, strlen(dkey), &f),
	                 SF_XROLE_FOLLOWER);
	add_wake(&S->joined);
	ck_assert_int_eq(reap_signal(p), SIGKILL);
	ck_assert_uint_eq(atomic_load(&S->bad), 0);
	ck_assert_int_eq(sf_xjoin(T, dkey, strlen(dkey), &tk), SF_XROLE_LEADER);
	ck_assert_int_eq(tk.lead.pid, getpid());
	struct timespec dl = in_ns(5ull * 1000000000u);
	ck_assert_int_eq(sf_xwait(T, &f, &dl), SF_XWAIT_PROGRESS);
	ck_assert_int_eq(f.lead.pid, getpid());
	sf_xfinish(T, &tk, "whole", 5);
	char got[8];
	ck_assert_int_eq(sf_xwait(T, &f, &dl), SF_XWAIT_DONE);
	ck_assert_int_eq(sf_xresult(T, &f, got, sizeof(got)), 5);
	ck_assert_mem_eq(got, "whole", 5);
	sf_xleave(T, &f);
}
END_TEST

/* A lone leader ends without the lock.  Killed before its state word, it
 * leaves a running flight with a dead leader: the next caller follows it
 * and takes it over within its wait.  Killed right after, it leaves a
 * finished flight the next join files among the finished slots (the
 * oldest, so the first reused once no slot is free). */
static enum sf_xhook lone_die_where;

static void die_at_lone(enum sf_xhook where)
{
	if (where == lone_die_where)
		raise(SIGKILL);
}

static void lead_alone_then_die(int idx)
{
	struct sf_xticket tk;
	S->role[idx] = (int)sf_xjoin(T, dkey, strlen(dkey), &tk);
	S->outcome[idx] = (int)tk.slot;
	sf_xtable_hook_for_test(die_at_lone);
	sf_xfinish(T, &tk, "unread", 6);
	atomic_fetch_add(&S->bad, 1); /* not reached */
}

START_TEST(test_lone_finish_killed)
{
	struct sf_xticket tk, run[SF_XSLOTS - 1], next;
	struct timespec dl = in_ns(5ull * 1000000000u);
	lone_die_where = SF_XHOOK_PUBLISH;
	pid_t p = fork_child(lead_alone_then_die, 0);
	ck_assert_int_eq(reap_signal(p), SIGKILL);
	ck_assert_int_eq(S->role[0], SF_XROLE_LEADER);
	ck_assert_int_eq(sf_xjoin(T, dkey, strlen(dkey), &tk),
	                 SF_XROLE_FOLLOWER);
	ck_assert_int_eq(sf_xwait(T, &tk, &dl), SF_XWAIT_PROMOTED);
	sf_xfinish(T, &tk, NULL, 0);

	lone_die_where = SF_XHOOK_PUBLISHED;
	p = fork_child(lead_alone_then_die, 1);
	ck_assert_int_eq(reap_signal(p), SIGKILL);
	ck_assert_int_eq(S->role[1], SF_XROLE_LEADER);
	/* Finished: the next caller starts a new flight elsewhere. */
	ck_assert_int_eq(sf_xjoin(T, dkey, strlen(dkey), &tk), SF_XROLE_LEADER);
	ck_assert_int_ne((int)tk.slot, S->outcome[1]);
	sf_xfinish(T, &tk, NULL, 0);
	char k[32];
	for (unsigned i = 0; i < SF_XSLOTS - 2; i++) {
		int n = snprintf(k, sizeof(k), "other %u", i);
		ck_assert_int_eq(sf_xjoin(T, k, (size_t)n, &run[i]),
		                 SF_XROLE_LEADER);
	}
	/* No slot free: the oldest finished is the killed leader's. */
	ck_assert_int_eq(sf_xjoin(T, "next", 4, &next), SF_XROLE_LEADER);
	ck_assert_int_eq((int)next.slot, S->outcome[1]);
	for (unsigned i = 0; i < SF_XSLOTS - 2; i++)
		sf_xfinish(T, &run[i], NULL, 0);
	sf_xfinish(T, &next, NULL, 0);
}
END_TEST

/* Dies right after its result's state word, before the table's
 * bookkeeping: the result stands, and the repair files the slot as
 * finished (the oldest, so the first to be reused once no slot is free). */
static void die_published(enum sf_xhook where)
{
	if (where == SF_XHOOK_PUBLISHED)
		raise(SIGKILL);
}

static void lead_then_die_published(int idx)
{
	struct sf_xticket tk;
	S->role[idx] = (int)sf_xjoin(T, dkey, strlen(dkey), &tk);
	S->outcome[idx] = (int)tk.slot;
	add_wake(&S->go);
	if (!wait_at_least(&S->joined, 1))
		atomic_fetch_add(&S->bad, 1);
	sf_xtable_hook_for_test(die_published);
	sf_xfinish(T, &tk, "published", 9);
	atomic_fetch_add(&S->bad, 1); /* not reached */
}

START_TEST(test_dead_after_publish)
{
	pid_t p = fork_child(lead_then_die_published, 0);
	ck_assert(wait_at_least(&S->go, 1));
	ck_assert_int_eq(S->role[0], SF_XROLE_LEADER);
	struct sf_xticket f;
	ck_assert_int_eq(sf_xjoin(T, dkey, strlen(dkey), &f),
	                 SF_XROLE_FOLLOWER);
	add_wake(&S->joined);
	ck_assert_int_eq(reap_signal(p), SIGKILL);
	struct timespec dl = in_ns(5ull * 1000000000u);
	ck_assert_int_eq(sf_xwait(T, &f, &dl), SF_XWAIT_DONE);
	char got[RES];
	ck_assert_int_eq(sf_xresult(T, &f, got, sizeof(got)), 9);
	ck_assert_mem_eq(got, "published", 9);
	sf_xleave(T, &f);
	/* The free slots go first, then the oldest finished one. */
	struct sf_xticket run[SF_XSLOTS - 1], next;
	char k[32];
	for (unsigned i = 0; i < SF_XSLOTS - 1; i++) {
		int n = snprintf(k, sizeof(k), "other %u", i);
		ck_assert_int_eq(sf_xjoin(T, k, (size_t)n, &run[i]),
		                 SF_XROLE_LEADER);
		ck_assert_int_ne((int)run[i].slot, S->outcome[0]);
	}
	for (unsigned i = 0; i < SF_XSLOTS - 1; i++)
		sf_xfinish(T, &run[i], "r", 1);
	ck_assert_int_eq(sf_xjoin(T, "next", 4, &next), SF_XROLE_LEADER);
	ck_assert_int_eq((int)next.slot, S->outcome[0]);
	/* Then the others, in the order they finished. */
	for (unsigned i = 0; i < 3; i++) {
		struct sf_xticket again;
		int n = snprintf(k, sizeof(k), "again %u", i);
		ck_assert_int_eq(sf_xjoin(T, k, (size_t)n, &again),
		                 SF_XROLE_LEADER);
		ck_assert_uint_eq(again.slot, run[i].slot);
	}
	sf_xfinish(T, &next, NULL, 0);
}
END_TEST

/* ---- hand-over, progress, deadlines, counts ----------------------------- */

static const char *akey = "a key whose leader gives up";

static void follow_akey(int idx)
{
	follow_handover(idx, akey, "from the new leader");
}

START_TEST(test_abandon_hands_over)
{
	struct sf_xticket l;
	ck_assert_int_eq(sf_xjoin(T, akey, strlen(akey), &l), SF_XROLE_LEADER);
	pid_t kids[3];
	handover_others = 2;
	for (int i = 0; i < 3; i++)
		kids[i] = fork_child(follow_akey, i);
	ck_assert(wait_at_least(&S->joined, 3));
	sf_xabandon(T, &l);
	ck_assert(!l.leader);
	for (int i = 0; i < 3; i++)
		reap_ok(kids[i]);
	check_handover(0, 3, "from the new leader");
}
END_TEST

START_TEST(test_abandon_alone_frees)
{
	struct sf_xticket l, f;
	ck_assert_int_eq(sf_xjoin(T, "solo", 4, &l), SF_XROLE_LEADER);
	unsigned slot = l.slot, gen = l.gen;
	ck_assert(sf_xflight_current(T, slot, gen));
	sf_xabandon(T, &l);
	ck_assert(!sf_xflight_current(T, slot, gen));
	ck_assert_int_eq(sf_xjoin(T, "solo", 4, &l), SF_XROLE_LEADER);

	/* A follower past its deadline that left: nobody to hand over to. */
	ck_assert_int_eq(sf_xjoin(T, "solo", 4, &f), SF_XROLE_FOLLOWER);
	struct timespec past = sf_ns_to_timespec(sf_now_ns() - 1);
	ck_assert_int_eq(sf_xwait(T, &f, &past), SF_XWAIT_TIMEOUT);
	sf_xleave(T, &f);
	ck_assert_uint_eq(f.slot, SF_XSLOTS); /* the ticket is dropped */
	sf_xabandon(T, &l);
	ck_assert(!sf_xflight_current(T, l.slot, l.gen));

	/* One that timed out but stays: it gets the flight. */
	ck_assert_int_eq(sf_xjoin(T, "solo", 4, &l), SF_XROLE_LEADER);
	ck_assert_int_eq(sf_xjoin(T, "solo", 4, &f), SF_XROLE_FOLLOWER);
	ck_assert_int_eq(sf_xwait(T, &f, &past), SF_XWAIT_TIMEOUT);
	sf_xabandon(T, &l);
	ck_assert(sf_xflight_current(T, f.slot, f.gen));
	struct timespec dl = in_ns(5ull * 1000000000u);
	ck_assert_int_eq(sf_xwait(T, &f, &dl), SF_XWAIT_PROMOTED);
	ck_assert(f.leader);
	/* Promoted, it follows no more: alone, its abandon frees the slot. */
	sf_xabandon(T, &f);
	ck_assert(!sf_xflight_current(T, f.slot, f.gen));
	ck_assert_int_eq(sf_xjoin(T, "solo", 4, &f), SF_XROLE_LEADER);
	struct sf_xticket g;
	ck_assert_int_eq(sf_xjoin(T, "solo", 4, &g), SF_XROLE_FOLLOWER);
	sf_xfinish(T, &f, "ok", 2);
	ck_assert_int_eq(sf_xwait(T, &g, &dl), SF_XWAIT_DONE);
	char got[4];
	ck_assert_int_eq(sf_xresult(T, &g, got, sizeof(got)), 2);
	sf_xleave(T, &g);
}
END_TEST

static void follow_progress(int idx)
{
	struct sf_xticket tk;
	struct timespec dl = in_ns(GIVE_UP_NS);
	S->role[idx] = (int)sf_xjoin(T, "p", 1, &tk);
	S->len[idx + 2] = (ssize_t)sf_xprogress(T, &tk);
	add_wake(&S->joined);
	S->outcome[idx] = (int)sf_xwait(T, &tk, &dl);
	S->len[idx] = (ssize_t)sf_xprogress(T, &tk);
	add_wake(&S->go);
	enum sf_xwait w;
	while ((w = sf_xwait(T, &tk, &dl)) == SF_XWAIT_PROGRESS)
		; /* the second notify is an event too */
	S->outcome[idx + 1] = (int)w;
	S->len[idx + 1] = sf_xresult(T, &tk, S->res[idx + 1], RES);
	sf_xleave(T, &tk);
}

START_TEST(test_progress_crosses)
{
	struct sf_xticket l;
	ck_assert_int_eq(sf_xjoin(T, "p", 1, &l), SF_XROLE_LEADER);
	/* Alone, the progress is only stored: who joins reads it. */
	sf_xnotify(T, &l, 10);
	ck_assert_uint_eq(sf_xprogress(T, &l), 10);
	pid_t kid = fork_child(follow_progress, 0);
	ck_assert(wait_at_least(&S->joined, 1));
	sf_xnotify(T, &l, 42);
	ck_assert(wait_at_least(&S->go, 1));
	sf_xnotify(T, &l, 7); /* progress never goes back */
	ck_assert_uint_eq(sf_xprogress(T, &l), 42);
	sf_xfinish(T, &l, "body", 4);
	reap_ok(kid);
	ck_assert_int_eq(S->role[0], SF_XROLE_FOLLOWER);
	ck_assert_int_eq(S->len[2], 10);
	ck_assert_int_eq(S->outcome[0], SF_XWAIT_PROGRESS);
	ck_assert_int_eq(S->len[0], 42);
	ck_assert_int_eq(S->outcome[1], SF_XWAIT_DONE);
	ck_assert_int_eq(S->len[1], 4);
	ck_assert_mem_eq(S->res[1], "body", 4);
}
END_TEST

static void follow_c(int idx)
{
	struct sf_xticket tk;
	S->role[idx] = (int)sf_xjoin(T, "c", 1, &tk);
	add_wake(&S->joined);
	follow_to_end(idx, &tk, "unexpected", GIVE_UP_NS);
}

/* A deadline far in the future is not wrapped into the past (2^62 s, in
 * ns, is 0 modulo 2^64): the follower of a dead leader waits and takes
 * over.  Deadlines in the past (a negative second or nanosecond) end the
 * wait at once. */
START_TEST(test_far_deadline)
{
	pid_t lead = fork_child(lead_and_exit, 0);
	siginfo_t si;
	ck_assert_int_eq(waitid(P_PID, (id_t)lead, &si, WEXITED | WNOWAIT), 0);
	struct sf_xticket f;
	ck_assert_int_eq(sf_xjoin(T, dkey, strlen(dkey), &f),
	                 SF_XROLE_FOLLOWER);
	struct timespec past = { -1, 0 }, odd = { 0, -5 };
	ck_assert_int_eq(sf_xwait(T, &f, &past), SF_XWAIT_TIMEOUT);
	ck_assert_int_eq(sf_xwait(T, &f, &odd), SF_XWAIT_TIMEOUT);
	struct timespec far = { (time_t)1 << 62, 0 };
	ck_assert_int_eq(sf_xwait(T, &f, &far), SF_XWAIT_PROMOTED);
	sf_xfinish(T, &f, NULL, 0);
	reap_ok(lead);
}
END_TEST

START_TEST(test_follower_counts)
{
	struct sf_xticket l, f1, f2;
	unsigned remote = 99;
	ck_assert_int_eq(sf_xjoin(T, "c", 1, &l), SF_XROLE_LEADER);
	ck_assert_uint_eq(sf_xfollowers(T, &l, &remote), 0);
	ck_assert_uint_eq(remote, 0);
	ck_assert_int_eq(sf_xjoin(T, "c", 1, &f1), SF_XROLE_FOLLOWER);
	ck_assert_int_eq(sf_xjoin(T, "c", 1, &f2), SF_XROLE_FOLLOWER);
	pid_t kids[3];
	for (int i = 0; i < 3; i++)
		kids[i] = fork_child(follow_c, i);
	ck_assert(wait_at_least(&S->joined, 3));
	ck_assert_uint_eq(sf_xfollowers(T, &l, &remote), 5);
	ck_assert_uint_eq(remote, 3);
	sf_xfinish(T, &l, "cc", 2);
	for (int i = 0; i < 3; i++)
		reap_ok(kids[i]);
	/* Still readable after the flight ended. */
	ck_assert_uint_eq(sf_xfollowers(T, &l, &remote), 5);
	ck_assert_uint_eq(remote, 3);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(S->outcome[i], SF_XWAIT_DONE);
		ck_assert_int_eq(S->len[i], 2);
	}
	sf_xleave(T, &f1);
	sf_xleave(T, &f2);
	ck_assert_uint_eq(sf_xfollowers(T, NULL, &remote), 0);
	ck_assert_uint_eq(remote, 0);
}
END_TEST

/* ---- keys, tables --------------------------------------------------------- */

START_TEST(test_keys)
{
	static char big[SF_XKEY_MAX + 1];
	memset(big, 'k', sizeof(big));
	struct sf_xticket a, b, c, d;
	ck_assert_int_eq(sf_xjoin(T, big, SF_XKEY_MAX + 1, &a), SF_XROLE_NONE);
	ck_assert_int_eq(sf_xwait(T, &a, NULL), SF_XWAIT_LOST);
	ck_assert_int_eq(sf_xjoin(T, big, SF_XKEY_MAX, &a), SF_XROLE_LEADER);
	/* The full key is compared: one differing byte at the end. */
	big[SF_XKEY_MAX - 1] = 'K';
	ck_assert_int_eq(sf_xjoin(T, big, SF_XKEY_MAX, &b), SF_XROLE_LEADER);
	ck_assert_uint_ne(a.slot, b.slot);
	big[SF_XKEY_MAX - 1] = 'k';
	ck_assert_int_eq(sf_xjoin(T, big, SF_XKEY_MAX, &c), SF_XROLE_FOLLOWER);
	ck_assert_uint_eq(c.slot, a.slot);
	/* A prefix is another key; so is the empty key. */
	ck_assert_int_eq(sf_xjoin(T, big, SF_XKEY_MAX - 1, &d),
	                 SF_XROLE_LEADER);
	sf_xfinish(T, &d, NULL, 0);
	ck_assert_int_eq(sf_xjoin(T, NULL, 0, &d), SF_XROLE_LEADER);
	sf_xfinish(T, &d, NULL, 0);
	ck_assert_int_eq(sf_xjoin(NULL, "x", 1, &d), SF_XROLE_NONE);
	ck_assert_int_eq(sf_xjoin(T, NULL, 1, &d), SF_XROLE_NONE);
	sf_xfinish(T, &a, "A", 1);
	sf_xfinish(T, &b, "B", 1);
	/* A finished flight is not joined: the next caller starts anew. */
	ck_assert_int_eq(sf_xjoin(T, big, SF_XKEY_MAX, &d), SF_XROLE_LEADER);
	ck_assert(d.slot != a.slot || d.gen != a.gen);
	sf_xfinish(T, &d, NULL, 0);
	char got[2];
	struct timespec dl = in_ns(5ull * 1000000000u);
	ck_assert_int_eq(sf_xwait(T, &c, &dl), SF_XWAIT_DONE);
	ck_assert_int_eq(sf_xresult(T, &c, got, sizeof(got)), 1);
	ck_assert_int_eq(got[0], 'A');
	sf_xleave(T, &c);
}
END_TEST

START_TEST(test_open_checks)
{
	ck_assert_ptr_eq(sf_xtable_open(NULL, mem_len), NULL);
	ck_assert_ptr_eq(sf_xtable_open(mem, mem_len - 1), NULL);
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_int_eq(sf_xtable_format(mem, mem_len - 1), -1);
	ck_assert_int_eq(errno, EINVAL);
	void *zero = mmap(NULL, mem_len, PROT_READ | PROT_WRITE,
	                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(zero, MAP_FAILED);
	ck_assert_ptr_eq(sf_xtable_open(zero, mem_len), NULL);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(sf_xtable_format(zero, mem_len), 0);
	ck_assert_ptr_eq(sf_xtable_open(zero, mem_len), zero);
	munmap(zero, mem_len);
}
END_TEST

/* ---- threads, fork, cancellation ------------------------------------------ */

/* A thread of this process holds the table lock while the process forks:
 * the lock lives in the shared mapping and that thread releases it there,
 * so the child waits for it like any other process and carries on. */
static void *hold_then_release(void *arg)
{
	(void)arg;
	sf_xtable_lock_for_test(T);
	add_wake(&S->go);
	if (!wait_at_least(&S->joined, 1))
		atomic_fetch_add(&S->bad, 1);
	sf_xtable_unlock_for_test(T);
	return NULL;
}

static void lead_after_fork(int idx)
{
	struct sf_xticket tk;
	S->role[idx] = (int)sf_xjoin(T, "forked", 6, &tk);
	S->owner = sf_xowner_self();
	sf_xfinish(T, &tk, "child", 5);
	S->outcome[idx] = (int)tk.slot;
}

START_TEST(test_fork_while_thread_holds_lock)
{
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, hold_then_release, NULL), 0);
	ck_assert(wait_at_least(&S->go, 1));
	pid_t p = fork_child(lead_after_fork, 0);
	add_wake(&S->joined); /* now the thread releases the lock */
	pthread_join(th, NULL);
	reap_ok(p);
	ck_assert_uint_eq(atomic_load(&S->bad), 0);
	ck_assert_int_eq(S->role[0], SF_XROLE_LEADER);
	ck_assert_int_eq(S->owner.pid, p); /* the child's own identity */
	/* The child's flight finished: the next caller starts anew. */
	struct sf_xticket tk;
	ck_assert_int_eq(sf_xjoin(T, "forked", 6, &tk), SF_XROLE_LEADER);
	sf_xfinish(T, &tk, NULL, 0);
}
END_TEST

/* Nothing in the table is a cancellation point, though it reads /proc
 * (open and read are): a pending cancellation stays pending. */
static void *cancel_pending(void *arg)
{
	struct sf_xowner *other = arg;
	struct sf_xticket f;
	pthread_cancel(pthread_self()); /* deferred: pending from here */
	S->outcome[0] = sf_xowner_alive(other) ? 1 : 0;
	S->role[0] = (int)sf_xjoin(T, dkey, strlen(dkey), &f);
	/* Long enough for liveness checks of the other process's leader. */
	struct timespec dl = in_ns(3ull * SF_XLIVENESS_MS * 1000000u);
	S->outcome[1] = (int)sf_xwait(T, &f, &dl);
	sf_xleave(T, &f);
	S->outcome[2] = 1; /* reached */
	pthread_testcancel();
	S->outcome[2] = 2; /* not reached */
	return NULL;
}

START_TEST(test_not_a_cancellation_point)
{
	pid_t lead = fork_child(lead_and_hang, 1);
	ck_assert(wait_at_least(&S->go, 1));
	ck_assert_int_eq(S->role[1], SF_XROLE_LEADER);
	struct sf_xowner other = S->owner;
	pthread_t th;
	void *ret;
	ck_assert_int_eq(pthread_create(&th, NULL, cancel_pending, &other), 0);
	ck_assert_int_eq(pthread_join(th, &ret), 0);
	ck_assert_ptr_eq(ret, PTHREAD_CANCELED);
	ck_assert_int_eq(S->outcome[0], 1);
	ck_assert_int_eq(S->role[0], SF_XROLE_FOLLOWER);
	ck_assert_int_eq(S->outcome[1], SF_XWAIT_TIMEOUT);
	ck_assert_int_eq(S->outcome[2], 1);
	kill(lead, SIGKILL);
	reap_signal(lead);
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
	tcase_add_test(tc, test_signals_do_not_defer_liveness);
	tcase_add_test(tc, test_owner_identity);
	tcase_add_test(tc, test_zombie_main_thread_alive);
	tcase_add_test(tc, test_identity_after_fork);
	tcase_add_test(tc, test_lock_holder_killed);
	tcase_add_test(tc, test_stopped_lock_holder_bounded);
	tcase_add_test(tc, test_relock_refused);
	tcase_add_test(tc, test_jumped_out_holding_lock);
	tcase_add_test(tc, test_jumped_out_of_liveness);
	tcase_add_test(tc, test_killed_mid_claim);
	tcase_add_test(tc, test_killed_mid_publish);
	tcase_add_test(tc, test_kill9_anywhere);
	tcase_add_test(tc, test_result_bounds);
	tcase_add_test(tc, test_reused_slot_lost);
	tcase_add_test(tc, test_dead_publisher_next_leads);
	tcase_add_test(tc, test_lone_finish_killed);
	tcase_add_test(tc, test_dead_after_publish);
	tcase_add_test(tc, test_abandon_hands_over);
	tcase_add_test(tc, test_abandon_alone_frees);
	tcase_add_test(tc, test_progress_crosses);
	tcase_add_test(tc, test_follower_counts);
	tcase_add_test(tc, test_far_deadline);
	tcase_add_test(tc, test_keys);
	tcase_add_test(tc, test_open_checks);
	tcase_add_test(tc, test_fork_while_thread_holds_lock);
	tcase_add_test(tc, test_not_a_cancellation_point);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return sf_unit_run(xflight_suite());
}
