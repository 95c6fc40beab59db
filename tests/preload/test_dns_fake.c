/* test_dns_fake.c - the getaddrinfo hook against a stand-in resolver.
 *
 * Run by tests/integration/10-dns-fake.sh as
 *     LD_PRELOAD="[sanitizer runtime] libsfshim.so libsf_fakeres.so"
 * in a private mount namespace whose /etc/hosts holds the names below, so
 * that the fake's real glibc answers are known and rich (several addresses
 * of both families, a canonical name).
 *
 * Determinism without sleeping: the fake holds calls on a gate and reports
 * how many are parked there, and the shim (SFSHIM_LOG=debug, fd 2 captured)
 * prints "joined flight" once per registered follower.  A burst opens the
 * gate only when every thread is either parked in the fake or registered
 * as a follower, so the counts asserted below are exact.
 *
 * The shim reads its configuration once per process.  Check runs each test
 * in a fresh fork of a runner that never calls getaddrinfo (fork mode is
 * forced in main), so a test sets SFSHIM_* before its first call. */
#include "sf_preload_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define N_BURST 50
#define LIMIT_MS SF_WAIT_LIMIT_MS

/* ---- fixture ----------------------------------------------------------- */

static void setup(void)
{
	ck_assert_msg(sf_fake_load(&fake) == 0,
	              "libsf_fakeres.so is not preloaded (see 10-dns-fake.sh)");
	/* Callers' threads call the shim directly (see shim_getaddrinfo);
	 * the test before main goes the ordinary way. */
	sf_default_gai = shim_getaddrinfo();
	ck_assert_msg(sf_default_gai != NULL,
	              "libsfshim.so is not preloaded (see 10-dns-fake.sh)");
	fake.sf_fake_reset();
	setenv("SFSHIM_LOG", "debug", 1);
	unsetenv("SFSHIM_DNS");
	unsetenv("SFSHIM_DNS_INCLUDE");
	unsetenv("SFSHIM_DNS_EXCLUDE");
	unsetenv("SFSHIM_WAIT_MS");
	logcap_start();
	libc_gai = libc_getaddrinfo();
}

static void teardown(void)
{
	fake.sf_fake_gate_open();
	logcap_stop();
}

/* ---- coalescing -------------------------------------------------------- */

static const struct addrinfo h_canon = { .ai_family = AF_UNSPEC,
	                                 .ai_flags = AI_CANONNAME };

START_TEST(same_name_50_threads_one_call)
{
	/* The reference really is rich: both families, several addresses,
	 * three socket types, a canonical name on the first node. */
	struct group g = G("multi.test", NULL, &h_canon, N_BURST, true);
	burst(&g, 1);
	ck_assert_ptr_nonnull(strstr(g.ref, ",multi.test}"));
	ck_assert_ptr_nonnull(strstr(g.ref, "{2,10,"));
	ck_assert_ptr_nonnull(strstr(g.ref, "{2,2,"));
	ck_assert_uint_eq(fake.sf_fake_calls_for("multi.test"), 1);
	assert_answers_are_ref(&g, 1);
	/* Every list was released by glibc's own freeaddrinfo (in
	 * sf_call_main): the shim does not interpose it. */
	void *libc = dlopen("libc.so.6", RTLD_NOLOAD | RTLD_LAZY);
	ck_assert_ptr_eq(dlsym(RTLD_DEFAULT, "freeaddrinfo"),
	                 dlsym(libc, "freeaddrinfo"));
	dlclose(libc);
	groups_free(&g, 1);
}
END_TEST

START_TEST(same_name_null_hints_one_call)
{
	struct group g = G("multi.test", "443", NULL, N_BURST, true);
	burst(&g, 1);
	assert_answers_are_ref(&g, 1);
	groups_free(&g, 1);
}
END_TEST

/* Same node, hints that differ in one field each: one call per hints,
 * shared only by callers with equal hints. */
START_TEST(different_hints_are_separate_calls)
{
	static const struct addrinfo h[] = {
		{ .ai_family = AF_UNSPEC },
		{ .ai_family = AF_INET },
		{ .ai_family = AF_INET6 },
		{ .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM },
		{ .ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM },
		{ .ai_family = AF_UNSPEC,
		  .ai_socktype = SOCK_STREAM,
		  .ai_protocol = IPPROTO_TCP },
		{ .ai_family = AF_UNSPEC, .ai_flags = AI_CANONNAME },
		{ .ai_family = AF_UNSPEC, .ai_flags = AI_ADDRCONFIG },
		{ .ai_family = AF_INET6, .ai_flags = AI_V4MAPPED | AI_ALL },
	};
	struct group g[10];
	size_t ng = 0;
	for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++)
		g[ng++] = G("multi.test", NULL, &h[i], 3, true);
	g[ng++] = G("multi.test", NULL, NULL, 3, true);
	burst(g, ng);
	ck_assert_uint_eq(fake.sf_fake_calls_for("multi.test"), ng);
	assert_answers_are_ref(g, ng);
	groups_free(g, ng);
}
END_TEST

START_TEST(null_and_empty_service_are_distinct)
{
	static const struct addrinfo h = { .ai_family = AF_INET,
		                           .ai_socktype = SOCK_STREAM };
	struct group g[] = {
		G("multi.test", NULL, &h, 4, true),
		G("multi.test", "", &h, 4, true),
		G("multi.test", "80", &h, 4, true),
		G("multi.test", "http", &h, 4, true),
	};
	burst(g, 4);
	assert_answers_are_ref(g, 4);
	groups_free(g, 4);
}
END_TEST

/* Names that differ only in case or a final dot are other keys: their
 * canonical names may differ. */
START_TEST(distinct_names_one_call_each)
{
	struct group g[] = {
		G("multi.test", NULL, &h_canon, 5, true),
		G("multi.test.", NULL, &h_canon, 5, true),
		G("MULTI.test", NULL, &h_canon, 5, true),
		G("other.test", NULL, &h_canon, 5, true),
		G("nosuch.test", NULL, &h_canon, 5, true), /* an error */
	};
	burst(g, 5);
	for (size_t i = 0; i < 5; i++)
		ck_assert_uint_eq(fake.sf_fake_calls_for(g[i].node), 1);
	ck_assert_str_ne(g[4].ref,
	                 "rc=0"); /* EAI_NONAME, or EAI_AGAIN: no DNS */
	assert_answers_are_ref(g, 5);
	groups_free(g, 5);
}
END_TEST

/* ---- pass-through ------------------------------------------------------ */

START_TEST(numeric_hosts_pass_through)
{
	static const struct addrinfo h_num = { .ai_family = AF_UNSPEC,
		                               .ai_flags = AI_NUMERICHOST };
	struct group g[] = {
		G("192.0.2.1", NULL, &h_canon, 6, false),
		G("127.1", NULL, NULL, 6, false), /* inet_aton forms */
		G("0x7f.0.0.1", "80", NULL, 6, false),
		G("::1", NULL, &h_canon, 6, false),
		G("fe80::1%lo", NULL, NULL, 6, false),
		G("192.0.2.1", NULL, &h_num, 6, false),
		G("multi.test", NULL, &h_num, 6, false), /* EAI_NONAME */
	};
	burst(g, 7);
	ck_assert_str_eq(g[6].ref, "rc=-2");
	assert_answers_are_ref(g, 7);
	groups_free(g, 7);
}
END_TEST

START_TEST(disabled_passes_everything_through)
{
	setenv("SFSHIM_DNS", "0", 1);
	struct group g = G("multi.test", NULL, &h_canon, 20, false);
	burst(&g, 1);
	assert_answers_are_ref(&g, 1);
	groups_free(&g, 1);
}
END_TEST

START_TEST(excluded_hosts_pass_through)
{
	setenv("SFSHIM_DNS_EXCLUDE", " excl.* ,nothing", 1);
	struct group g[] = {
		G("excl.test", NULL, &h_canon, 10, false),
		G("EXCL.Test.", NULL, &h_canon, 10,
		  false), /* case, final dot */
		G("multi.test", NULL, &h_canon, 10, true),
	};
	burst(g, 3);
	assert_answers_are_ref(g, 3);
	groups_free(g, 3);
}
END_TEST

START_TEST(include_list_limits_coalescing)
{
	setenv("SFSHIM_DNS_INCLUDE", "*.example", 1);
	struct group g[] = {
		G("incl.example", NULL, &h_canon, 10, true),
		G("multi.test", NULL, &h_canon, 10, false),
	};
	burst(g, 2);
	assert_answers_are_ref(g, 2);
	groups_free(g, 2);
}
END_TEST

START_TEST(exclude_wins_over_include)
{
	setenv("SFSHIM_DNS_INCLUDE", "*.example,*.test", 1);
	setenv("SFSHIM_DNS_EXCLUDE", "incl.ex?mple", 1);
	struct group g[] = {
		G("incl.example", NULL, &h_canon, 10, false),
		G("other.test", NULL, &h_canon, 10, true),
	};
	burst(g, 2);
	assert_answers_are_ref(g, 2);
	groups_free(g, 2);
}
END_TEST

/* ---- errors ------------------------------------------------------------ */

static void error_burst(int eai, int err)
{
	fake.sf_fake_set_error(eai, err);
	struct group g = G("multi.test", NULL, &h_canon, N_BURST, true);
	burst(&g, 1);
	for (unsigned j = 0; j < g.n; j++) {
		ck_assert_int_eq(g.calls[j].rc, eai);
		if (eai == EAI_SYSTEM)
			ck_assert_int_eq(g.calls[j].err, err);
	}
	groups_free(&g, 1);
}

START_TEST(eai_again_is_shared)
{
	error_burst(EAI_AGAIN, 0);
}
END_TEST

START_TEST(eai_noname_is_shared)
{
	error_burst(EAI_NONAME, 0);
}
END_TEST

START_TEST(eai_system_shares_errno)
{
	error_burst(EAI_SYSTEM, ETIMEDOUT);
}
END_TEST

/* ---- re-entrancy --------------------------------------------------------- */

/* A getaddrinfo made from inside the leader's real call (here by the stand-in
 * resolver, as an NSS module might) goes straight to the real function.
 * Were it to join the flight it is part of, it would wait for itself: with
 * no follower deadline, for ever (the test's timeout). */
START_TEST(nested_call_goes_straight_through)
{
	setenv("SFSHIM_WAIT_MS", "0", 1);
	fake.sf_fake_set_nested(1);
	struct addrinfo *r = NULL;
	ck_assert_int_eq(sf_default_gai("multi.test", "80", NULL, &r), 0);
	ck_assert_ptr_nonnull(r);
	freeaddrinfo(r);
	ck_assert_uint_eq(fake.sf_fake_calls_for("multi.test"), 2);
}
END_TEST

/* ---- leaders that do not come back ------------------------------------- */

/* A follower waits SFSHIM_WAIT_MS for a stuck leader, then looks up alone;
 * nobody fails. */
START_TEST(follower_deadline_makes_own_call)
{
	setenv("SFSHIM_WAIT_MS", "50", 1);
	char *ref = sf_lookup_text(libc_gai, "multi.test", NULL, &h_canon);
	struct sf_call c[2] = {
		{ .node = "multi.test", .hints = &h_canon },
		{ .node = "multi.test", .hints = &h_canon },
	};
	fake.sf_fake_gate_close();
	sf_call_start(&c[0]);
	ck_assert_uint_eq(fake.sf_fake_wait_parked(1, LIMIT_MS), 1);
	sf_call_start(&c[1]);
	ck_assert_uint_eq(logcap_wait_joined(1), 1);
	/* Past its deadline the follower calls the fake itself. */
	ck_assert_uint_eq(fake.sf_fake_wait_parked(2, LIMIT_MS), 2);
	fake.sf_fake_gate_open();
	sf_call_join(&c[0]);
	sf_call_join(&c[1]);
	ck_assert_uint_eq(logcap_wait_expired(1), 1); /* logged on return */
	ck_assert_uint_eq(fake.sf_fake_calls(), 2);
	ck_assert_str_eq(c[0].text, ref);
	ck_assert_str_eq(c[1].text, ref);
	sf_call_free(c, 2);
	free(ref);
}
END_TEST

/* The leader's thread is cancelled inside the real call: exactly one
 * follower takes over, the others get its answer. */
START_TEST(cancelled_leader_promotes_one_follower)
{
	enum { N = 10 };
	char *ref = sf_lookup_text(libc_gai, "multi.test", NULL, &h_canon);
	struct sf_call c[N] = { 0 };
	fake.sf_fake_gate_close();
	for (int i = 0; i < N; i++) {
		c[i] = (struct sf_call){ .node = "multi.test",
			                 .hints = &h_canon };
		sf_call_start(&c[i]);
	}
	ck_assert_uint_eq(fake.sf_fake_wait_parked(1, LIMIT_MS), 1);
	ck_assert_uint_eq(logcap_wait_joined(N - 1), N - 1);
	pthread_t leader;
	ck_assert_uint_eq(fake.sf_fake_parked_threads(&leader, 1), 1);
	int li = -1;
	for (int i = 0; i < N; i++)
		if (pthread_equal(c[i].tid, leader))
			li = i;
	ck_assert_int_ge(li, 0);
	ck_assert_int_eq(pthread_cancel(leader), 0);
	void *ret;
	ck_assert_int_eq(pthread_join(leader, &ret), 0);
	ck_assert_ptr_eq(ret, PTHREAD_CANCELED);
	/* The promoted follower is now the one parked in the fake. */
	ck_assert_uint_eq(fake.sf_fake_wait_parked(1, LIMIT_MS), 1);
	pthread_t next;
	ck_assert_uint_eq(fake.sf_fake_parked_threads(&next, 1), 1);
	ck_assert(!pthread_equal(next, leader));
	fake.sf_fake_gate_open();
	for (int i = 0; i < N; i++) {
		if (i == li)
			continue;
		sf_call_join(&c[i]);
		ck_assert_str_eq(c[i].text, ref);
	}
	ck_assert_uint_eq(fake.sf_fake_calls(), 2);
	ck_assert_uint_eq(logcap_get(&logcap.took_over), 1);
	ck_assert_uint_eq(logcap_get(&logcap.joined), N - 1);
	sf_call_free(c, N);
	free(ref);
}
END_TEST

/* A follower cancelled while it waits leaves the flight; the leader and
 * the other followers are unaffected. */
START_TEST(cancelled_follower_leaves_cleanly)
{
	enum { N = 6 };
	char *ref = sf_lookup_text(libc_gai, "multi.test", NULL, &h_canon);
	struct sf_call c[N];
	fake.sf_fake_gate_close();
	for (int i = 0; i < N; i++) {
		c[i] = (struct sf_call){ .node = "multi.test",
			                 .hints = &h_canon };
		sf_call_start(&c[i]);
	}
	ck_assert_uint_eq(fake.sf_fake_wait_parked(1, LIMIT_MS), 1);
	ck_assert_uint_eq(logcap_wait_joined(N - 1), N - 1);
	pthread_t leader;
	ck_assert_uint_eq(fake.sf_fake_parked_threads(&leader, 1), 1);
	int victim = pthread_equal(c[0].tid, leader) ? 1 : 0;
	ck_assert_int_eq(pthread_cancel(c[victim].tid), 0);
	void *ret;
	ck_assert_int_eq(pthread_join(c[victim].tid, &ret), 0);
	ck_assert_ptr_eq(ret, PTHREAD_CANCELED);
	ck_assert_uint_eq(fake.sf_fake_parked(),
	                  1); /* the leader still waits */
	fake.sf_fake_gate_open();
	for (int i = 0; i < N; i++) {
		if (i == victim)
			continue;
		sf_call_join(&c[i]);
		ck_assert_str_eq(c[i].text, ref);
	}
	ck_assert_uint_eq(fake.sf_fake_calls(), 1);
	ck_assert_uint_eq(logcap_get(&logcap.took_over), 0);
	sf_call_free(c, N);
	free(ref);
}
END_TEST

/* fork() while a flight is in progress: the child must not join a flight
 * whose leader does not exist there.  SFSHIM_WAIT_MS=0 (no deadline) turns
 * a wrong join into a hang, which the child's alarm turns into a failure. */
START_TEST(fork_during_flight_child_resolves_at_once)
{
	enum { N = 5 };
	setenv("SFSHIM_WAIT_MS", "0", 1);
	char *ref = sf_lookup_text(libc_gai, "multi.test", NULL, &h_canon);
	struct sf_call c[N];
	fake.sf_fake_gate_close();
	for (int i = 0; i < N; i++) {
		c[i] = (struct sf_call){ .node = "multi.test",
			                 .hints = &h_canon };
		sf_call_start(&c[i]);
	}
	ck_assert_uint_eq(fake.sf_fake_wait_parked(1, LIMIT_MS), 1);
	ck_assert_uint_eq(logcap_wait_joined(N - 1), N - 1);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* Only this thread exists here; the fake starts afresh.  _exit:
		 * the parent's flights are unreachable here by design, and a
		 * leak check at exit would only report them. */
		alarm(20);
		struct sf_call k = { .node = "multi.test", .hints = &h_canon };
		sf_call_main(&k);
		int ok = strcmp(k.text, ref) == 0 ? 0 : 10;
		if (fake.sf_fake_calls() != 1)
			ok |= 20;
		_exit(ok);
	}
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st),
	              "child died of signal %d (joined a dead flight?)",
	              WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	ck_assert_int_eq(WEXITSTATUS(st), 0);
	ck_assert_uint_eq(fake.sf_fake_parked(), 1);
	fake.sf_fake_gate_open();
	for (int i = 0; i < N; i++) {
		sf_call_join(&c[i]);
		ck_assert_str_eq(c[i].text, ref);
	}
	ck_assert_uint_eq(fake.sf_fake_calls(), 1);
	sf_call_free(c, N);
	free(ref);
}
END_TEST

/* ---- before main -------------------------------------------------------- */

/* With SF_TEST_CTOR set, this constructor runs a coalesced burst before
 * main; main then exits with its verdict.  The test re-executes this
 * binary that way (same LD_PRELOAD). */
enum { CTOR_N = 4 };
static int ctor_status = -1;

static int ctor_burst(void)
{
	struct sf_fake_api f;
	if (sf_fake_load(&f) != 0)
		return 2;
	sf_gai_fn *lg = (sf_gai_fn *)dlsym(
	        dlopen("libc.so.6", RTLD_NOLOAD | RTLD_LAZY), "getaddrinfo");
	if (!lg)
		return 3;
	struct sf_call ref = { .node = "multi.test",
		               .hints = &h_canon,
		               .fn = lg };
	sf_call_main(&ref);
	if (logcap_try_start() != 0)
		return 4;
	struct sf_call c[CTOR_N];
	f.sf_fake_gate_close();
	for (int i = 0; i < CTOR_N; i++) {
		c[i] = (struct sf_call){ .node = "multi.test",
			                 .hints = &h_canon };
		if (pthread_create(&c[i].tid, NULL, sf_call_main, &c[i]) != 0)
			return 5;
	}
	int rc = 0;
	if (f.sf_fake_wait_parked(1, LIMIT_MS) != 1 ||
	    logcap_wait_joined(CTOR_N - 1) != CTOR_N - 1)
		rc = 6;
	f.sf_fake_gate_open();
	for (int i = 0; i < CTOR_N; i++) {
		pthread_join(c[i].tid, NULL);
		if (strcmp(c[i].text, ref.text) != 0)
			rc = 7;
		free(c[i].text);
	}
	if (f.sf_fake_calls() != 1)
		rc = 8;
	logcap_stop();
	free(ref.text);
	return rc;
}

__attribute__((constructor)) static void before_main(void)
{
	if (getenv("SF_TEST_CTOR"))
		ctor_status = ctor_burst();
}

START_TEST(calls_before_main_work)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		setenv("SF_TEST_CTOR", "1", 1);
		execl("/proc/self/exe", "test_dns_fake", (char *)NULL);
		_exit(127);
	}
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st));
	ck_assert_msg(WEXITSTATUS(st) == 0, "constructor burst failed: step %d",
	              WEXITSTATUS(st));
}
END_TEST

/* ---- leaders that jump out (issue 7, defect 7) -------------------------- */

/* The classic resolver timeout: a signal handler siglongjmps out of
 * getaddrinfo.  The shim's leader frame is left without returning; the
 * flight must be handed over at once (never joined again as it was), the
 * followers released promptly, and the thread's re-entrancy guard put
 * back. */
static __thread sigjmp_buf *jump_target;
static __thread timer_t *jump_timer; /* re-armed until the call sleeps */

static void jump_out(int sig)
{
	(void)sig;
	if (jump_timer && fake.sf_fake_sleeping_now() == 0) {
		/* Not in the resolver yet (a stalled thread): try again in
		 * 10 ms rather than jump out of the shim's own code. */
		struct itimerspec it = { .it_value = { 0, 10000000L } };
		timer_settime(*jump_timer, 0, &it, NULL);
		return;
	}
	if (jump_target)
		siglongjmp(*jump_target, 1);
}

static void install_jump_handler(int sig)
{
	struct sigaction sa = { .sa_handler = jump_out };
	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(sig, &sa, NULL), 0);
}

struct jumper {
	pthread_t tid;
	const char *node;
	unsigned alarm_ms; /* > 0: a timer signals this thread (SIGALRM) */
	pthread_barrier_t *after; /* then: wait here, and look up again */
	bool jumped;
	int canceltype; /* the thread's cancel type after the call */
	char *again;    /* the answer of the lookup after the jump */
};

/* A timer that sends SIGALRM to this very thread after ms. */
static timer_t thread_alarm(unsigned ms)
{
	struct sigevent ev = { .sigev_notify = SIGEV_THREAD_ID,
		               .sigev_signo = SIGALRM };
	ev._sigev_un._tid = (pid_t)syscall(SYS_gettid);
	timer_t t;
	sf_must(timer_create(CLOCK_MONOTONIC, &ev, &t) == 0);
	struct itimerspec it = { .it_value = { ms / 1000,
		                               (long)(ms % 1000) * 1000000L } };
	sf_must(timer_settime(t, 0, &it, NULL) == 0);
	return t;
}

static void *jumper_main(void *p)
{
	struct jumper *j = p;
	sigjmp_buf env;
	static __thread timer_t t; /* not a local: it lives across the jump */
	if (sigsetjmp(env, 1) == 0) {
		jump_target = &env;
		if (j->alarm_ms) {
			t = thread_alarm(j->alarm_ms);
			jump_timer = &t;
		}
		struct addrinfo *r = NULL;
		if (sf_default_gai(j->node, NULL, &h_canon, &r) == 0)
			freeaddrinfo(r);
	} else {
		j->jumped = true;
	}
	jump_target = NULL;
	jump_timer = NULL;
	pthread_setcanceltype(PTHREAD_CANCEL_DEFERRED, &j->canceltype);
	if (j->alarm_ms)
		timer_delete(t);
	if (j->after) {
		pthread_barrier_wait(j->after);
		j->again = sf_lookup_text(NULL, j->node, NULL, &h_canon);
	}
	return NULL;
}

/* Followers are waiting on a leader that a signal handler takes out of the
 * lookup: one follower takes over at once, the others get its answer;
 * nobody waits out SFSHIM_WAIT_MS (3 s here; with 0, no limit, the
 * stranded flight would hang them for ever: the test's timeout).  Then the
 * thread that jumped leads a flight again: its guard was put back. */
START_TEST(jumped_out_leader_releases_followers)
{
	enum { N = 6 };
	setenv("SFSHIM_WAIT_MS", _i ? "0" : "3000", 1);
	install_jump_handler(SIGUSR1);
	char *ref = sf_lookup_text(libc_gai, "multi.test", NULL, &h_canon);
	pthread_barrier_t after;
	pthread_barrier_init(&after, NULL, 2);
	struct jumper j = { .node = "multi.test", .after = &after };
	fake.sf_fake_set_delay_ms(10 * LIMIT_MS); /* until the signal */
	ck_assert_int_eq(pthread_create(&j.tid, NULL, jumper_main, &j), 0);
	ck_assert_uint_eq(fake.sf_fake_wait_sleeping(1, LIMIT_MS), 1);
	fake.sf_fake_set_delay_ms(0);

	struct sf_call c[N];
	for (int i = 0; i < N; i++) {
		c[i] = (struct sf_call){ .node = "multi.test",
			                 .hints = &h_canon };
		sf_call_start(&c[i]);
	}
	ck_assert_uint_eq(logcap_wait_joined(N), N);
	ck_assert_int_eq(pthread_kill(j.tid, SIGUSR1), 0);
	for (int i = 0; i < N; i++) {
		sf_call_join(&c[i]);
		ck_assert_str_eq(c[i].text, ref);
	}
	/* Logged on return; the reader thread may not have seen it yet. */
	ck_assert_uint_eq(logcap_wait_for(&logcap.took_over, 1), 1);
	ck_assert_uint_eq(logcap_get(&logcap.expired), 0);
	ck_assert_uint_eq(fake.sf_fake_calls(), 2);

	/* The jumper leads again, and a follower joins it: had its guard
	 * stayed up, its call would pass through as re-entrant and the
	 * follower would lead a flight of its own (two parked calls). */
	fake.sf_fake_gate_close();
	pthread_barrier_wait(&after);
	ck_assert_uint_eq(fake.sf_fake_wait_parked(1, LIMIT_MS), 1);
	struct sf_call f = { .node = "multi.test", .hints = &h_canon };
	sf_call_start(&f);
	ck_assert_uint_eq(logcap_wait_joined(N + 1), N + 1);
	fake.sf_fake_gate_open();
	sf_call_join(&f);
	ck_assert_int_eq(pthread_join(j.tid, NULL), 0);
	ck_assert(j.jumped);
	ck_assert_str_eq(j.again, ref);
	ck_assert_str_eq(f.text, ref);
	ck_assert_uint_eq(fake.sf_fake_calls(), 3);
	ck_assert_uint_eq(logcap_get(&logcap.expired), 0);
	pthread_barrier_destroy(&after);
	free(j.again);
	sf_call_free(c, N);
	sf_call_free(&f, 1);
	free(ref);
}
END_TEST

/* A follower whose signal handler jumps out of its wait leaves the flight
 * (under ASan a reference left behind is a leak) and gets back the deferred
 * cancellation it had (the wait runs asynchronously cancellable); the
 * leader and the flight are unaffected, and the thread can look up again. */
START_TEST(jumped_out_follower_leaves_cleanly)
{
	setenv("SFSHIM_WAIT_MS", "0", 1);
	install_jump_handler(SIGUSR1);
	char *ref = sf_lookup_text(libc_gai, "multi.test", NULL, &h_canon);
	fake.sf_fake_gate_close();
	struct sf_call lead = { .node = "multi.test", .hints = &h_canon };
	sf_call_start(&lead);
	ck_assert_uint_eq(fake.sf_fake_wait_parked(1, LIMIT_MS), 1);
	pthread_barrier_t after;
	pthread_barrier_init(&after, NULL, 2);
	struct jumper j = { .node = "multi.test", .after = &after };
	ck_assert_int_eq(pthread_create(&j.tid, NULL, jumper_main, &j), 0);
	ck_assert_uint_eq(logcap_wait_joined(1), 1);
	ck_assert_int_eq(pthread_kill(j.tid, SIGUSR1), 0);
	fake.sf_fake_gate_open();
	sf_call_join(&lead);
	ck_assert_str_eq(lead.text, ref);
	pthread_barrier_wait(&after); /* the jumper looks up once more */
	ck_assert_int_eq(pthread_join(j.tid, NULL), 0);
	ck_assert(j.jumped);
	ck_assert_int_eq(j.canceltype, PTHREAD_CANCEL_DEFERRED);
	ck_assert_str_eq(j.again, ref);
	ck_assert_uint_eq(fake.sf_fake_calls(), 2);
	pthread_barrier_destroy(&after);
	free(j.again);
	sf_call_free(&lead, 1);
	free(ref);
}
END_TEST

/* The scenario: a 1 s resolver, an alarm at 200 ms as the timeout,
 * SFSHIM_WAIT_MS=3000 (then 0: no limit, where joining the abandoned
 * flight hung for ever).  The later lookup of the same name starts a
 * flight of its own: it neither joins the abandoned one nor waits. */
START_TEST(alarm_out_of_lookup_later_lookups_do_not_wait)
{
	setenv("SFSHIM_WAIT_MS", _i ? "0" : "3000", 1);
	install_jump_handler(SIGALRM);
	char *ref = sf_lookup_text(libc_gai, "multi.test", NULL, &h_canon);
	/* Everything the shim resolves once is resolved before the alarm. */
	free(sf_lookup_text(NULL, "other.test", NULL, &h_canon));
	fake.sf_fake_set_delay_ms(1000);
	struct jumper j = { .node = "multi.test", .alarm_ms = 200 };
	ck_assert_int_eq(pthread_create(&j.tid, NULL, jumper_main, &j), 0);
	ck_assert_int_eq(pthread_join(j.tid, NULL), 0);
	ck_assert(j.jumped);
	fake.sf_fake_set_delay_ms(0);
	char *later = sf_lookup_text(NULL, "multi.test", NULL, &h_canon);
	ck_assert_str_eq(later, ref);
	ck_assert_uint_eq(logcap_get(&logcap.joined), 0);
	ck_assert_uint_eq(logcap_get(&logcap.expired), 0);
	ck_assert_uint_eq(fake.sf_fake_calls_for("multi.test"), 2);
	free(later);
	free(ref);
}
END_TEST

/* ---- namespaces (issue 7, defect 6) ------------------------------------- */

/* A thread in a mount namespace of its own, with another /etc/hosts, asks
 * for a name while the host namespace's flight for it is running: it must
 * make its own call and get its own /etc/hosts's answer.  unshare is
 * called the ordinary way, so that the shim's hook sees it. */
struct ns_thread {
	pthread_t tid;
	pthread_barrier_t *ready, *go;
	char hosts[64];
	char *ref;  /* glibc's answer in its namespace */
	char *text; /* the shim's */
};

static void *ns_thread_main(void *p)
{
	struct ns_thread *t = p;
	sf_must(unshare(CLONE_NEWNS) == 0);
	sf_must(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0);
	sf_must(mount(t->hosts, "/etc/hosts", NULL, MS_BIND, NULL) == 0);
	t->ref = sf_lookup_text(libc_gai, "multi.test", NULL, &h_canon);
	pthread_barrier_wait(t->ready);
	pthread_barrier_wait(t->go);
	t->text = sf_lookup_text(NULL, "multi.test", NULL, &h_canon);
	return NULL;
}

START_TEST(other_mount_namespace_gets_its_own_answer)
{
	char *ref = sf_lookup_text(libc_gai, "multi.test", NULL, &h_canon);
	pthread_barrier_t ready, go;
	pthread_barrier_init(&ready, NULL, 2);
	pthread_barrier_init(&go, NULL, 2);
	struct ns_thread t = { .ready = &ready, .go = &go };
	snprintf(t.hosts, sizeof(t.hosts), "/tmp/sfshim-ns-hosts.%d",
	         (int)getpid());
	FILE *f = fopen(t.hosts, "w");
	ck_assert_ptr_nonnull(f);
	fputs("127.0.0.1 localhost\n192.0.2.99 multi.test\n", f);
	fclose(f);
	ck_assert_int_eq(pthread_create(&t.tid, NULL, ns_thread_main, &t), 0);
	pthread_barrier_wait(&ready);
	ck_assert_str_ne(t.ref, ref); /* the two worlds do differ */

	/* The host namespace's flight, held in the fake. */
	fake.sf_fake_gate_close();
	struct sf_call host = { .node = "multi.test", .hints = &h_canon };
	sf_call_start(&host);
	ck_assert_uint_eq(fake.sf_fake_wait_parked(1, LIMIT_MS), 1);
	/* The other namespace's caller does not join it: it parks too. */
	pthread_barrier_wait(&go);
	ck_assert_uint_eq(fake.sf_fake_wait_parked(2, LIMIT_MS), 2);
	fake.sf_fake_gate_open();
	sf_call_join(&host);
	ck_assert_int_eq(pthread_join(t.tid, NULL), 0);
	ck_assert_str_eq(host.text, ref);
	ck_assert_str_eq(t.text, t.ref);
	ck_assert_uint_eq(fake.sf_fake_calls(), 2);
	ck_assert_uint_eq(logcap_get(&logcap.joined), 0);

	/* Callers in one namespace still coalesce once the flag is up. */
	struct group g = G("multi.test", NULL, &h_canon, 8, true);
	g.ref = strdup(ref);
	burst(&g, 1);
	assert_answers_are_ref(&g, 1);
	groups_free(&g, 1);
	unlink(t.hosts);
	free(t.ref);
	free(t.text);
	sf_call_free(&host, 1);
	pthread_barrier_destroy(&ready);
	pthread_barrier_destroy(&go);
	free(ref);
}
END_TEST

/* ---- errors on request, memory (issue 7, defects 9 and 10) -------------- */

/* Eight callers get EAI_AGAIN: one lookup shared by all of them by default;
 * with SFSHIM_RETRY_ERRORS=1 the error is not shared and each caller looks
 * up itself: eight lookups. */
START_TEST(retry_errors_applies_to_dns)
{
	enum { N = 8 };
	if (_i)
		setenv("SFSHIM_RETRY_ERRORS", "1", 1);
	else
		unsetenv("SFSHIM_RETRY_ERRORS");
	fake.sf_fake_set_error(EAI_AGAIN, 0);
	struct sf_call c[N];
	fake.sf_fake_gate_close();
	for (int i = 0; i < N; i++) {
		c[i] = (struct sf_call){ .node = "multi.test",
			                 .hints = &h_canon };
		sf_call_start(&c[i]);
	}
	ck_assert_uint_eq(fake.sf_fake_wait_parked(1, LIMIT_MS), 1);
	ck_assert_uint_eq(logcap_wait_joined(N - 1), N - 1);
	fake.sf_fake_gate_open();
	for (int i = 0; i < N; i++) {
		sf_call_join(&c[i]);
		ck_assert_int_eq(c[i].rc, EAI_AGAIN);
	}
	ck_assert_uint_eq(fake.sf_fake_calls_for("multi.test"), _i ? N : 1);
	sf_call_free(c, N);
	unsetenv("SFSHIM_RETRY_ERRORS");
}
END_TEST

/* Run with libsf_failalloc.so preloaded after the shim (10-dns-fake.sh):
 * the followers' threads cannot allocate in the shim, so none can take its
 * copy of the shared answer.  Each makes its own call instead, and gets
 * the real answer, never an EAI_MEMORY its own call would not give. */
typedef void failalloc_arm_fn(int);
static failalloc_arm_fn *failalloc_arm;

static void *armed_call_main(void *p)
{
	failalloc_arm(1);
	return sf_call_main(p);
}

START_TEST(follower_short_of_memory_calls_alone)
{
	enum { N = 6 };
	int (*active)(void) =
	        (int (*)(void))dlsym(RTLD_DEFAULT, "sf_failalloc_active");
	unsigned long (*nfailed)(void) = (unsigned long (*)(void))dlsym(
	        RTLD_DEFAULT, "sf_failalloc_failed");
	failalloc_arm = (failalloc_arm_fn *)dlsym(RTLD_DEFAULT,
	                                          "sf_failalloc_arm_thread");
	ck_assert_msg(active && nfailed && failalloc_arm && active(),
	              "libsf_failalloc.so is not preloaded after the shim");
	char *ref = sf_lookup_text(libc_gai, "multi.test", NULL, &h_canon);
	struct sf_call lead = { .node = "multi.test", .hints = &h_canon };
	struct sf_call c[N];
	fake.sf_fake_gate_close();
	sf_call_start(&lead);
	ck_assert_uint_eq(fake.sf_fake_wait_parked(1, LIMIT_MS), 1);
	for (int i = 0; i < N; i++) {
		c[i] = (struct sf_call){ .node = "multi.test",
			                 .hints = &h_canon };
		ck_assert_int_eq(pthread_create(&c[i].tid, NULL,
		                                armed_call_main, &c[i]),
		                 0);
	}
	ck_assert_uint_eq(logcap_wait_joined(N), N);
	fake.sf_fake_gate_open();
	sf_call_join(&lead);
	ck_assert_str_eq(lead.text, ref);
	for (int i = 0; i < N; i++) {
		sf_call_join(&c[i]);
		ck_assert_str_eq(c[i].text, ref);
	}
	ck_assert_uint_ge(nfailed(), N);
	ck_assert_uint_eq(fake.sf_fake_calls(), 1 + N);
	sf_call_free(c, N);
	sf_call_free(&lead, 1);
	free(ref);
}
END_TEST

/* ---- runner ------------------------------------------------------------ */

int main(void)
{
	if (getenv("SF_TEST_CTOR"))
		return ctor_status;
	Suite *s = suite_create("dns_fake");
	TCase *tc = tcase_create("dns_fake");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	/* Configuration tests first: had the runner's configuration leaked
	 * into the forks, the coalescing tests after them would fail. */
	tcase_add_test(tc, disabled_passes_everything_through);
	tcase_add_test(tc, excluded_hosts_pass_through);
	tcase_add_test(tc, include_list_limits_coalescing);
	tcase_add_test(tc, exclude_wins_over_include);
	tcase_add_test(tc, same_name_50_threads_one_call);
	tcase_add_test(tc, same_name_null_hints_one_call);
	tcase_add_test(tc, different_hints_are_separate_calls);
	tcase_add_test(tc, null_and_empty_service_are_distinct);
	tcase_add_test(tc, distinct_names_one_call_each);
	tcase_add_test(tc, numeric_hosts_pass_through);
	tcase_add_test(tc, eai_again_is_shared);
	tcase_add_test(tc, eai_noname_is_shared);
	tcase_add_test(tc, eai_system_shares_errno);
	tcase_add_test(tc, nested_call_goes_straight_through);
	tcase_add_test(tc, follower_deadline_makes_own_call);
	tcase_add_test(tc, cancelled_leader_promotes_one_follower);
	tcase_add_test(tc, cancelled_follower_leaves_cleanly);
	tcase_add_test(tc, fork_during_flight_child_resolves_at_once);
	tcase_add_test(tc, calls_before_main_work);
	suite_add_tcase(s, tc);
	/* Tests whose failure is a hang: a shorter limit. */
	TCase *hang = tcase_create("dns_fake_no_hang");
	tcase_add_checked_fixture(hang, setup, teardown);
	tcase_set_timeout(hang, 30);
	tcase_add_loop_test(hang, jumped_out_leader_releases_followers, 0, 2);
	tcase_add_loop_test(hang, alarm_out_of_lookup_later_lookups_do_not_wait,
	                    0, 2);
	tcase_add_test(hang, jumped_out_follower_leaves_cleanly);
	tcase_add_test(hang, other_mount_namespace_gets_its_own_answer);
	tcase_add_loop_test(hang, retry_errors_applies_to_dns, 0, 2);
	suite_add_tcase(s, hang);
	/* Only with the failing allocator preloaded (10-dns-fake.sh runs the
	 * binary once more with it, CK_RUN_CASE=dns_fake_memory). */
	const char *only = getenv("CK_RUN_CASE");
	if (only && strcmp(only, "dns_fake_memory") == 0 &&
	    !dlsym(RTLD_DEFAULT, "sf_failalloc_active")) {
		fprintf(stderr, "libsf_failalloc.so is not preloaded\n");
		return 1;
	}
	if (dlsym(RTLD_DEFAULT, "sf_failalloc_active")) {
		TCase *mem = tcase_create("dns_fake_memory");
		tcase_add_checked_fixture(mem, setup, teardown);
		tcase_set_timeout(mem, 30);
		tcase_add_test(mem, follower_short_of_memory_calls_alone);
		suite_add_tcase(s, mem);
	}
	int failed = sf_run_suite(s);
	return failed ? 1 : 0;
}
