/* test_flight.c - the singleflight core (shim/sf_flight.h).
 *
 * Every test asserts exact outcomes: how many real calls were made, which
 * path each caller took, and that what followers read is byte for byte what
 * the call produced.  Threads are synchronised with barriers, a gate (mutex
 * + condvar) that blocks the leader's call until the test opens it, and
 * spinning on conditions the core exposes (sf_group_followers); never with
 * sleeps.  Only the deadline test lets real time pass, and there the leader
 * is held on the gate until the test releases it. */
#include "core/sf_flight.h"
#include "sf_unit_main.h"

#include <check.h>
#include <netdb.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef __SANITIZE_ADDRESS__
/* Cancelling a thread inside a C pthread_cleanup_push region unwinds with
 * glibc's internal longjmp, which ASan does not see: stale stack redzones
 * then give a false stack-buffer-overflow (or a CHECK failure) inside
 * __asan_handle_no_return's own sigaltstack call (google/sanitizers#1399,
 * #1010).  With the fake stack, instrumented locals live off the real stack,
 * so no stale redzones remain, and use-after-return is checked as a bonus. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "detect_stack_use_after_return=1";
}
#endif

/* ---- a fake call and the state it records ------------------------------- */

/* What one call produces: its number tells whose answer a caller holds. */
struct answer {
	int err;
	unsigned call_no;
	char text[48];
};

static struct world {
	sf_group *g;
	const char *key;
	size_t keylen;
	_Atomic unsigned calls, shares, takes, dtors, follows;
	unsigned block_calls;    /* calls numbered <= this wait at the gate */
	unsigned wait_followers; /* call #1 returns once this many joined */
	int err;                 /* the error code each call reports */
	pthread_mutex_t mu;      /* the gate */
	pthread_cond_t cv;
	bool open;
	_Atomic unsigned in_gate; /* calls that reached the gate */
	unsigned own_upto;        /* calls numbered <= this fail on their own */
	bool retry;               /* sf_do's retry_errors */
	bool take_fails;          /* followers cannot take their copy */
} W;

static void unlock_mu(void *m)
{
	pthread_mutex_unlock(m);
}

static void t_call(void *arg, void *out)
{
	(void)arg;
	struct answer *a = out;
	unsigned n = atomic_fetch_add(&W.calls, 1) + 1;
	memset(a, 0, sizeof(*a));
	a->err = W.err;
	a->call_no = n;
	snprintf(a->text, sizeof(a->text), "%s#%u", W.key, n);
	if (n == 1 && W.wait_followers)
		while (sf_group_followers(W.g, W.key, W.keylen) <
		       W.wait_followers)
			sched_yield();
	if (n <= W.block_calls) {
		/* pthread_cond_wait is a cancellation point; the handler gives
		 * the re-acquired mutex back before sf_do's handler runs. */
		pthread_mutex_lock(&W.mu);
		atomic_fetch_add(&W.in_gate, 1);
		pthread_cleanup_push(unlock_mu, &W.mu);
		while (!W.open)
			pthread_cond_wait(&W.cv, &W.mu);
		pthread_cleanup_pop(1);
	}
}

static void t_on_follow(void *arg)
{
	(void)arg;
	atomic_fetch_add(&W.follows, 1);
}

static void *t_share(const void *out)
{
	struct answer *r = malloc(sizeof(*r));
	if (r) {
		memcpy(r, out, sizeof(*r));
		atomic_fetch_add(&W.shares, 1);
	}
	return r;
}

static bool t_take(const void *result, void *out)
{
	if (W.take_fails)
		return false;
	memcpy(out, result, sizeof(struct answer));
	atomic_fetch_add(&W.takes, 1);
	return true;
}

static enum sf_result t_judge(const void *out)
{
	const struct answer *a = out;
	if (a->call_no <= W.own_upto)
		return SF_RESULT_OWN;
	return a->err ? SF_RESULT_ERROR : SF_RESULT_OK;
}

static void t_dtor(void *result)
{
	atomic_fetch_add(&W.dtors, 1);
	free(result);
}

static const struct sf_do_ops OPS = {
	.call = t_call,
	.on_follow = t_on_follow,
	.judge = t_judge,
	.share = t_share,
	.take = t_take,
	.dtor = t_dtor,
};

/* Opens the gate: every blocked call returns. */
static void gate_open(void)
{
	pthread_mutex_lock(&W.mu);
	W.open = true;
	pthread_cond_broadcast(&W.cv);
	pthread_mutex_unlock(&W.mu);
}

/* Returns once n calls sleep in pthread_cond_wait: a call counts itself
 * under the mutex and only releases it by waiting, so taking the mutex
 * after the count is reached proves they are asleep (holding no lock). */
static void wait_in_gate(unsigned n)
{
	while (atomic_load(&W.in_gate) < n)
		sched_yield();
	pthread_mutex_lock(&W.mu);
	pthread_mutex_unlock(&W.mu);
}

static void wait_followers(unsigned n)
{
	while (sf_group_followers(W.g, W.key, W.keylen) != n)
		sched_yield();
}

static struct timespec in_ms(long ms)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

static bool reached(const struct timespec *t)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > t->tv_sec ||
	       (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

/* One sf_do caller on its own thread; the main thread asserts. */
struct caller {
	pthread_t t;
	pthread_barrier_t *start;
	uint64_t wait_ns;
	enum sf_path path;
	struct sf_do_info info;
	struct answer out;
};

static void *caller_main(void *p)
{
	struct caller *c = p;
	if (c->start)
		pthread_barrier_wait(c->start);
	c->path = sf_do(W.g, W.key, W.keylen, &OPS, NULL, &c->out, c->wait_ns,
	                W.retry, &c->info);
	return NULL;
}

static void start(struct caller *c)
{
	ck_assert_int_eq(pthread_create(&c->t, NULL, caller_main, c), 0);
}

static void finish(struct caller *c)
{
	void *ret;
	ck_assert_int_eq(pthread_join(c->t, &ret), 0);
	ck_assert_ptr_null(ret);
}

static void setup(void)
{
	memset(&W, 0, sizeof(W));
	W.g = sf_group_new();
	ck_assert_ptr_nonnull(W.g);
	W.key = "www.example.org";
	W.keylen = strlen(W.key);
	pthread_mutex_init(&W.mu, NULL);
	pthread_cond_init(&W.cv, NULL);
}

static void teardown(void)
{
	sf_group_free(W.g);
	pthread_cond_destroy(&W.cv);
	pthread_mutex_destroy(&W.mu);
}

/* n callers released together; call #1 waits until the other n-1 joined,
 * so every caller is in the same flight.  Returns the leader's index. */
static unsigned run_together(struct caller *c, unsigned n)
{
	pthread_barrier_t b;
	pthread_barrier_init(&b, NULL, n);
	W.wait_followers = n - 1;
	for (unsigned i = 0; i < n; i++) {
		c[i].start = &b;
		start(&c[i]);
	}
	unsigned leader = n, leaders = 0;
	for (unsigned i = 0; i < n; i++) {
		finish(&c[i]);
		if (c[i].path == SF_PATH_LEADER) {
			leader = i;
			leaders++;
		}
	}
	pthread_barrier_destroy(&b);
	ck_assert_uint_eq(leaders, 1);
	return leader;
}

/* ---- sf_do -------------------------------------------------------------- */

/* A follower gets its own copy of the leader's answer, built once by share()
 * and destroyed once, after the last reader. */
START_TEST(test_value_delivered)
{
	struct caller c[2] = { 0 };
	unsigned l = run_together(c, 2), f = 1 - l;
	ck_assert_uint_eq(atomic_load(&W.calls), 1);
	ck_assert_int_eq(c[f].path, SF_PATH_FOLLOWER);
	ck_assert_uint_eq(c[l].out.call_no, 1);
	ck_assert_mem_eq(&c[f].out, &c[l].out, sizeof(struct answer));
	ck_assert(c[l].info.shared && c[f].info.shared);
	ck_assert_uint_eq(c[l].info.followers, 1);
	ck_assert_uint_eq(atomic_load(&W.follows), 1);
	ck_assert_uint_eq(atomic_load(&W.shares), 1);
	ck_assert_uint_eq(atomic_load(&W.takes), 1);
	ck_assert_uint_eq(atomic_load(&W.dtors), 1);
}
END_TEST

/* Go shares errors: an answer carrying an error code reaches every
 * follower unchanged (whether to retry is the hooks' business). */
START_TEST(test_error_delivered)
{
	struct caller c[4] = { 0 };
	W.err = EAI_AGAIN;
	unsigned l = run_together(c, 4);
	ck_assert_uint_eq(atomic_load(&W.calls), 1);
	ck_assert_int_ne(c[l].out.err, 0);
	ck_assert_int_eq(c[l].out.err, W.err);
	for (unsigned i = 0; i < 4; i++) {
		if (i == l)
			continue;
		ck_assert_int_eq(c[i].path, SF_PATH_FOLLOWER);
		ck_assert_int_eq(c[i].out.err, c[l].out.err);
		ck_assert_mem_eq(&c[i].out, &c[l].out, sizeof(struct answer));
	}
}
END_TEST

/* Duplicate suppression, exactly: 128 callers, one call. */
START_TEST(test_exactly_once_128)
{
	enum { N = 128 };
	static struct caller c[N];
	memset(c, 0, sizeof(c));
	unsigned l = run_together(c, N);
	unsigned followers = 0;
	ck_assert_uint_eq(atomic_load(&W.calls), 1);
	for (unsigned i = 0; i < N; i++) {
		ck_assert(c[i].info.shared);
		if (i == l)
			continue;
		ck_assert_int_eq(c[i].path, SF_PATH_FOLLOWER);
		ck_assert_mem_eq(&c[i].out, &c[l].out, sizeof(struct answer));
		followers++;
	}
	ck_assert_uint_eq(followers, N - 1);
	ck_assert_uint_eq(c[l].info.followers, N - 1);
	ck_assert_uint_eq(atomic_load(&W.follows), N - 1);
	ck_assert_uint_eq(atomic_load(&W.shares), 1);
	ck_assert_uint_eq(atomic_load(&W.takes), N - 1);
	ck_assert_uint_eq(atomic_load(&W.dtors), 1);
}
END_TEST

/* Every caller of one flight reports the same non-zero serial; the next
 * flight for the same key, and flights started on other threads, get new
 * ones (traces draw leader-to-follower arrows from it). */
START_TEST(test_flight_ids)
{
	enum { N = 8 };
	struct caller c[N] = { 0 };
	run_together(c, N);
	uint64_t id = c[0].info.flight;
	ck_assert_uint_ne(id, 0);
	for (unsigned i = 1; i < N; i++)
		ck_assert_uint_eq(c[i].info.flight, id);

	struct caller d[N] = { 0 };
	atomic_store(&W.calls,
	             0); /* the next call #1 waits for its followers */
	run_together(d, N);
	ck_assert_uint_ne(d[0].info.flight, 0);
	ck_assert_uint_ne(d[0].info.flight, id);
	for (unsigned i = 1; i < N; i++)
		ck_assert_uint_eq(d[i].info.flight, d[0].info.flight);

	/* Directly: one thread's flights, one after another. */
	bool leader;
	sf_flight *f = sf_join(W.g, "a", 1, &leader);
	ck_assert(leader);
	uint64_t a = sf_flight_id(f);
	bool fl;
	sf_flight *g = sf_join(W.g, "a", 1, &fl);
	ck_assert(!fl && g == f);
	ck_assert_uint_eq(sf_flight_id(g), a);
	sf_flight_leave(g);
	sf_flight_finish(f, NULL, NULL);
	f = sf_join(W.g, "a", 1, &leader);
	ck_assert(leader);
	ck_assert_uint_ne(sf_flight_id(f), 0);
	ck_assert_uint_ne(sf_flight_id(f), a);
	ck_assert_uint_ne(sf_flight_id(f), id);
	sf_flight_finish(f, NULL, NULL);

	/* No flight: no serial. */
	struct caller e = { 0 };
	W.keylen = SF_KEY_MAX + 1;
	char *big = calloc(1, W.keylen);
	ck_assert_ptr_nonnull(big);
	W.key = big;
	start(&e);
	finish(&e);
	ck_assert_int_eq(e.path, SF_PATH_ALONE);
	ck_assert_uint_eq(e.info.flight, 0);
	free(big);
}
END_TEST

/* After sf_forget a newcomer leads a second flight while the first
 * flight's follower still gets the first answer. */
START_TEST(test_forget_mid_flight)
{
	struct caller a = { 0 }, b = { 0 }, c = { 0 };
	W.block_calls = 1;
	start(&a);
	wait_in_gate(1);
	start(&b);
	wait_followers(1);
	sf_forget(W.g, W.key, W.keylen);
	ck_assert_uint_eq(sf_group_followers(W.g, W.key, W.keylen), 0);
	c.path = sf_do(W.g, W.key, W.keylen, &OPS, NULL, &c.out, 0, false,
	               &c.info);
	ck_assert_int_eq(c.path, SF_PATH_LEADER);
	ck_assert_uint_eq(c.out.call_no, 2);
	ck_assert(!c.info.shared);
	gate_open();
	finish(&a);
	finish(&b);
	ck_assert_int_eq(a.path, SF_PATH_LEADER);
	ck_assert_uint_eq(a.out.call_no, 1);
	ck_assert_uint_eq(a.info.followers, 1);
	ck_assert_int_eq(b.path, SF_PATH_FOLLOWER);
	ck_assert_mem_eq(&b.out, &a.out, sizeof(struct answer));
	ck_assert_uint_eq(atomic_load(&W.calls), 2);
}
END_TEST

/* A caller alone is not "shared", and no copy is built for nobody. */
START_TEST(test_lone_caller_not_shared)
{
	struct answer out;
	struct sf_do_info info = { .shared = true, .followers = 99 };
	enum sf_path p =
	        sf_do(W.g, W.key, W.keylen, &OPS, NULL, &out, 0, false, &info);
	ck_assert_int_eq(p, SF_PATH_LEADER);
	ck_assert(!info.shared);
	ck_assert_uint_eq(info.followers, 0);
	ck_assert_uint_eq(out.call_no, 1);
	ck_assert_uint_eq(atomic_load(&W.calls), 1);
	ck_assert_uint_eq(atomic_load(&W.shares), 0);
	ck_assert_uint_eq(atomic_load(&W.follows), 0);
}
END_TEST

/* A follower whose deadline passes makes its own call; the blocked leader
 * is released only afterwards and still finishes normally. */
START_TEST(test_follower_deadline)
{
	struct caller a = { 0 };
	W.block_calls = 1;
	start(&a);
	wait_in_gate(1);
	struct timespec dl = in_ms(50); /* no later than sf_do's own */
	struct answer out;
	struct sf_do_info info;
	enum sf_path p = sf_do(W.g, W.key, W.keylen, &OPS, NULL, &out,
	                       50 * 1000000u, false, &info);
	ck_assert_int_eq(p, SF_PATH_EXPIRED);
	ck_assert(reached(&dl));
	ck_assert_uint_eq(atomic_load(&W.follows), 1); /* it did join first */
	ck_assert_uint_eq(atomic_load(&W.calls), 2);
	ck_assert_uint_eq(out.call_no, 2);
	ck_assert(!info.shared);
	gate_open();
	finish(&a);
	ck_assert_int_eq(a.path, SF_PATH_LEADER);
	ck_assert_uint_eq(a.out.call_no, 1);
	ck_assert_uint_eq(a.info.followers, 1);
	ck_assert_uint_eq(atomic_load(&W.calls), 2);
	ck_assert_uint_eq(atomic_load(&W.takes), 0);
	ck_assert_uint_eq(atomic_load(&W.dtors), atomic_load(&W.shares));
}
END_TEST

/* A leader cancelled inside call() hands the flight to exactly one
 * follower, whose answer reaches the rest; nobody is left waiting. */
START_TEST(test_leader_cancel_promotes)
{
	enum { N = 8 };
	struct caller a = { 0 }, c[N];
	memset(c, 0, sizeof(c));
	W.block_calls = 1;
	start(&a);
	wait_in_gate(1);
	for (unsigned i = 0; i < N; i++)
		start(&c[i]);
	wait_followers(N);
	ck_assert_int_eq(pthread_cancel(a.t), 0);
	void *ret;
	ck_assert_int_eq(pthread_join(a.t, &ret), 0);
	ck_assert_ptr_eq(ret, PTHREAD_CANCELED);
	unsigned promoted = N, nfollow = 0;
	for (unsigned i = 0; i < N; i++) {
		finish(&c[i]); /* a stranded follower would hang here */
		if (c[i].path == SF_PATH_PROMOTED) {
			ck_assert_uint_eq(promoted, N);
			promoted = i;
		} else {
			ck_assert_int_eq(c[i].path, SF_PATH_FOLLOWER);
			nfollow++;
		}
	}
	ck_assert_uint_lt(promoted, N);
	ck_assert_uint_eq(nfollow, N - 1);
	ck_assert_uint_eq(atomic_load(&W.calls), 2);
	ck_assert_uint_eq(c[promoted].out.call_no, 2);
	ck_assert(c[promoted].info.shared);
	for (unsigned i = 0; i < N; i++)
		ck_assert_mem_eq(&c[i].out, &c[promoted].out,
		                 sizeof(struct answer));
	ck_assert_uint_eq(atomic_load(&W.takes), N - 1);
	ck_assert_uint_eq(atomic_load(&W.shares), 1);
	ck_assert_uint_eq(atomic_load(&W.dtors), 1);
	ck_assert_uint_eq(sf_group_followers(W.g, W.key, W.keylen), 0);
}
END_TEST

/* A follower cancelled while waiting drops its reference: the flight
 * finishes, its result is destroyed (it would leak otherwise, which ASan
 * reports), and the key is free for a new flight. */
START_TEST(test_follower_cancel_leaves)
{
	struct caller a = { 0 }, b = { 0 };
	W.block_calls = 1;
	start(&a);
	wait_in_gate(1);
	start(&b);
	wait_followers(1);
	ck_assert_int_eq(pthread_cancel(b.t), 0);
	void *ret;
	ck_assert_int_eq(pthread_join(b.t, &ret), 0);
	ck_assert_ptr_eq(ret, PTHREAD_CANCELED);
	gate_open();
	finish(&a);
	ck_assert_int_eq(a.path, SF_PATH_LEADER);
	ck_assert_uint_eq(a.info.followers, 1);
	ck_assert_uint_eq(atomic_load(&W.shares), 1);
	ck_assert_uint_eq(atomic_load(&W.takes), 0);
	ck_assert_uint_eq(atomic_load(&W.dtors), 1);
	struct answer out;
	ck_assert_int_eq(sf_do(W.g, W.key, W.keylen, &OPS, NULL, &out, 0, false,
	                       NULL),
	                 SF_PATH_LEADER);
	ck_assert_uint_eq(atomic_load(&W.calls), 2);
}
END_TEST

/* fork() while another thread leads key K (asleep on the gate, holding no
 * lock): the child starts with an empty group, so its own call for K leads
 * at once.  Had it joined the parent's flight, which never ends in the
 * child, the 1 s deadline would make it SF_PATH_EXPIRED. */
START_TEST(test_fork_child_leads)
{
	struct caller a = { 0 };
	W.block_calls = 1;
	start(&a);
	wait_in_gate(1);
	pid_t pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		struct answer out;
		struct sf_do_info info;
		enum sf_path p = sf_do(W.g, W.key, W.keylen, &OPS, NULL, &out,
		                       1000 * 1000000u, false, &info);
		/* _exit: no atexit work (leak checks) in a copy of a process
		 * whose other threads are gone. */
		if (p != SF_PATH_LEADER)
			_exit(10 + (int)p);
		if (out.call_no != 2 || info.shared ||
		    atomic_load(&W.calls) != 2)
			_exit(20);
		_exit(0);
	}
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st));
	ck_assert_int_eq(WEXITSTATUS(st), 0);
	gate_open();
	finish(&a);
	ck_assert_int_eq(a.path, SF_PATH_LEADER);
	ck_assert_uint_eq(atomic_load(&W.calls), 1);
}
END_TEST

/* ---- many keys ---------------------------------------------------------- */

enum { MK_THREADS = 8, MK_KEYS = 2000 };

static void mk_call(void *arg, void *out)
{
	struct answer *a = out;
	atomic_fetch_add(&W.calls, 1);
	memset(a, 0, sizeof(*a));
	snprintf(a->text, sizeof(a->text), "%s", (const char *)arg);
}

static const struct sf_do_ops MK_OPS = {
	.call = mk_call,
	.share = t_share,
	.take = t_take,
	.dtor = t_dtor,
};

struct mk_thread {
	pthread_t t;
	unsigned idx;
	pthread_barrier_t *start;
	unsigned paths[SF_PATH_EXPIRED + 1];
	unsigned wrong;
};

/* Every thread walks all keys from a different offset, so flights for the
 * same key overlap across threads while different keys share shards. */
static void *mk_main(void *p)
{
	struct mk_thread *m = p;
	pthread_barrier_wait(m->start);
	for (unsigned i = 0; i < MK_KEYS; i++) {
		char key[32];
		unsigned k = (i + m->idx * (MK_KEYS / MK_THREADS)) % MK_KEYS;
		int len = snprintf(key, sizeof(key), "host-%u.example", k);
		struct answer out;
		enum sf_path path = sf_do(W.g, key, (size_t)len, &MK_OPS, key,
		                          &out, 0, false, NULL);
		m->paths[path]++;
		if (strcmp(out.text, key) != 0)
			m->wrong++;
	}
	return NULL;
}

START_TEST(test_many_keys)
{
	struct mk_thread m[MK_THREADS];
	pthread_barrier_t b;
	memset(m, 0, sizeof(m));
	pthread_barrier_init(&b, NULL, MK_THREADS);
	for (unsigned i = 0; i < MK_THREADS; i++) {
		m[i].idx = i;
		m[i].start = &b;
		ck_assert_int_eq(pthread_create(&m[i].t, NULL, mk_main, &m[i]),
		                 0);
	}
	unsigned paths[SF_PATH_EXPIRED + 1] = { 0 };
	for (unsigned i = 0; i < MK_THREADS; i++) {
		ck_assert_int_eq(pthread_join(m[i].t, NULL), 0);
		ck_assert_uint_eq(m[i].wrong, 0);
		for (unsigned p = 0; p <= SF_PATH_EXPIRED; p++)
			paths[p] += m[i].paths[p];
	}
	pthread_barrier_destroy(&b);
	ck_assert_uint_eq(paths[SF_PATH_LEADER] + paths[SF_PATH_FOLLOWER],
	                  MK_THREADS * MK_KEYS);
	ck_assert_uint_eq(atomic_load(&W.calls), paths[SF_PATH_LEADER]);
	ck_assert_uint_eq(atomic_load(&W.takes), paths[SF_PATH_FOLLOWER]);
	ck_assert_uint_eq(atomic_load(&W.dtors), atomic_load(&W.shares));
	/* Every flight is over and unregistered (ASan would report any left
	 * behind when the group is freed). */
	ck_assert_uint_eq(sf_group_followers(W.g, "host-0.example", 14), 0);
}
END_TEST

/* ---- the low-level API ---------------------------------------------------- */

/* Thread state from /proc: 'S' once the follower sleeps in the futex. */
static char thread_state(pid_t tid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	FILE *fp = fopen(path, "r");
	if (!fp)
		return '?';
	size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	char *rp = strrchr(buf, ')');
	return rp && rp[1] == ' ' ? rp[2] : '?';
}

struct streamer {
	pthread_t t;
	_Atomic pid_t tid;
	_Atomic int stage; /* 1: joined and about to wait, 2: first wait done */
	bool leader;
	enum sf_wait w1, w2;
	void *result;
	unsigned followers, promotions;
};

static void *stream_follower(void *p)
{
	struct streamer *s = p;
	sf_flight *f = sf_join(W.g, W.key, W.keylen, &s->leader);
	uint32_t cursor = 0;
	atomic_store(&s->tid, (pid_t)syscall(SYS_gettid));
	atomic_store(&s->stage, 1);
	s->w1 = sf_flight_wait(f, &cursor, NULL);
	atomic_store(&s->stage, 2);
	s->w2 = sf_flight_wait(f, &cursor, NULL);
	s->result = sf_flight_result(f);
	s->followers = sf_flight_followers(f);
	s->promotions = sf_flight_promotions(f);
	sf_flight_leave(f);
	return NULL;
}

/* A streaming leader's notify wakes a sleeping follower with PROGRESS;
 * finish then gives DONE and the published result. */
START_TEST(test_stream_notify_then_done)
{
	bool leader;
	sf_flight *f = sf_join(W.g, W.key, W.keylen, &leader);
	ck_assert_ptr_nonnull(f);
	ck_assert(leader);
	struct streamer s = { 0 };
	ck_assert_int_eq(pthread_create(&s.t, NULL, stream_follower, &s), 0);
	while (atomic_load(&s.stage) < 1 ||
	       thread_state(atomic_load(&s.tid)) != 'S')
		sched_yield();
	ck_assert_uint_eq(atomic_load(&s.stage), 1); /* no event yet: asleep */
	ck_assert_uint_eq(sf_flight_followers(f), 1);
	sf_flight_notify(f);
	while (atomic_load(&s.stage) < 2)
		sched_yield();
	ck_assert_int_eq(s.w1, SF_WAIT_PROGRESS);
	struct answer *r = malloc(sizeof(*r));
	ck_assert_ptr_nonnull(r);
	sf_flight_finish(f, r, t_dtor);
	ck_assert_int_eq(pthread_join(s.t, NULL), 0);
	ck_assert(!s.leader);
	ck_assert_int_eq(s.w2, SF_WAIT_DONE);
	ck_assert_ptr_eq(s.result, r);
	ck_assert_uint_eq(s.followers, 1);
	ck_assert_uint_eq(s.promotions, 0);
	ck_assert_uint_eq(atomic_load(&W.dtors), 1);
}
END_TEST

/* The cursor: a wait returns only for events newer than the caller saw,
 * and a deadline with nothing new gives TIMEOUT.  One thread holds both
 * roles, so nothing here depends on scheduling. */
START_TEST(test_wait_cursor_and_timeout)
{
	bool l1, l2;
	sf_flight *lead = sf_join(W.g, W.key, W.keylen, &l1);
	sf_flight *fol = sf_join(W.g, W.key, W.keylen, &l2);
	ck_assert(l1 && !l2);
	ck_assert_ptr_eq(lead, fol);
	uint32_t cursor = 0;
	struct timespec dl = in_ms(20);
	ck_assert_int_eq(sf_flight_wait(fol, &cursor, &dl), SF_WAIT_TIMEOUT);
	ck_assert(reached(&dl));
	sf_flight_notify(lead);
	dl = in_ms(20);
	ck_assert_int_eq(sf_flight_wait(fol, &cursor, &dl), SF_WAIT_PROGRESS);
	ck_assert_int_eq(sf_flight_wait(fol, &cursor, &dl), SF_WAIT_TIMEOUT);
	sf_flight_finish(lead, NULL, NULL);
	ck_assert_int_eq(sf_flight_wait(fol, &cursor, NULL), SF_WAIT_DONE);
	ck_assert_ptr_null(sf_flight_result(fol));
	sf_flight_leave(fol);
}
END_TEST

/* A leader that notifies before anyone follows makes no wake-up call, and a
 * follower joining later still sees the progress at once. */
START_TEST(test_notify_before_followers)
{
	bool l1, l2;
	sf_flight *lead = sf_join(W.g, W.key, W.keylen, &l1);
	sf_flight_notify(lead);
	sf_flight_notify(lead);
	sf_flight *fol = sf_join(W.g, W.key, W.keylen, &l2);
	ck_assert(l1 && !l2);
	uint32_t cursor = 0;
	struct timespec dl = in_ms(1000);
	ck_assert_int_eq(sf_flight_wait(fol, &cursor, &dl), SF_WAIT_PROGRESS);
	ck_assert(!reached(&dl));
	sf_flight_finish(lead, NULL, NULL);
	ck_assert_int_eq(sf_flight_wait(fol, &cursor, NULL), SF_WAIT_DONE);
	sf_flight_leave(fol);
}
END_TEST

struct waiter {
	pthread_t t;
	enum sf_wait last;
	void *result;
	unsigned followers, promotions;
};

/* Waits to the end; if promoted, publishes its own result as the leader. */
static void *waiter_main(void *p)
{
	struct waiter *w = p;
	bool leader;
	sf_flight *f = sf_join(W.g, W.key, W.keylen, &leader);
	uint32_t cursor = 0;
	do
		w->last = sf_flight_wait(f, &cursor, NULL);
	while (w->last == SF_WAIT_PROGRESS);
	w->followers = sf_flight_followers(f);
	w->promotions = sf_flight_promotions(f);
	if (w->last == SF_WAIT_PROMOTED) {
		w->result = malloc(sizeof(struct answer));
		sf_flight_finish(f, w->result, t_dtor);
	} else {
		w->result = sf_flight_result(f);
		sf_flight_leave(f);
	}
	return NULL;
}

/* Abandon with two waiters: exactly one is promoted and leads, the other
 * gets the promoted leader's result; promotions counts it. */
START_TEST(test_abandon_promotes_one)
{
	bool leader;
	sf_flight *f = sf_join(W.g, W.key, W.keylen, &leader);
	ck_assert(leader);
	struct waiter w[2] = { 0 };
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(
		        pthread_create(&w[i].t, NULL, waiter_main, &w[i]), 0);
	wait_followers(2);
	ck_assert_uint_eq(sf_flight_promotions(f), 0);
	sf_flight_abandon(f);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_join(w[i].t, NULL), 0);
	int p = w[0].last == SF_WAIT_PROMOTED ? 0 : 1;
	ck_assert_int_eq(w[p].last, SF_WAIT_PROMOTED);
	ck_assert_int_eq(w[1 - p].last, SF_WAIT_DONE);
	ck_assert_ptr_nonnull(w[p].result);
	ck_assert_ptr_eq(w[1 - p].result, w[p].result);
	ck_assert_uint_eq(w[p].promotions, 1);
	ck_assert_uint_eq(w[1 - p].promotions, 1);
	ck_assert_uint_eq(w[p].followers, 2);
	ck_assert_uint_eq(w[1 - p].followers, 2);
	ck_assert_uint_eq(atomic_load(&W.dtors), 1);
	ck_assert_uint_eq(sf_group_followers(W.g, W.key, W.keylen), 0);
}
END_TEST

/* A leader that abandons with nobody waiting unregisters the flight: the
 * next caller leads a new one, which is registered (a third joins it). */
START_TEST(test_abandon_alone_next_leads)
{
	bool leader;
	sf_flight *f = sf_join(W.g, W.key, W.keylen, &leader);
	ck_assert(leader);
	ck_assert_uint_eq(sf_flight_followers(f), 0);
	sf_flight_abandon(f);
	sf_flight *g = sf_join(W.g, W.key, W.keylen, &leader);
	ck_assert_ptr_nonnull(g);
	ck_assert(leader);
	ck_assert_uint_eq(sf_flight_promotions(g), 0);
	sf_flight *h = sf_join(W.g, W.key, W.keylen, &leader);
	ck_assert(!leader);
	ck_assert_ptr_eq(h, g);
	ck_assert_uint_eq(sf_flight_followers(g), 1);
	sf_flight_leave(h);
	sf_flight_finish(g, NULL, NULL);
}
END_TEST

/* The key is kept as joined and the user area starts zeroed. */
START_TEST(test_key_and_user_area)
{
	bool leader;
	sf_flight *f = sf_join(W.g, W.key, W.keylen, &leader);
	size_t len = 0;
	const void *k = sf_flight_key(f, &len);
	ck_assert_uint_eq(len, W.keylen);
	ck_assert_mem_eq(k, W.key, len);
	ck_assert_ptr_ne(k, W.key);
	static const unsigned char zero[SF_USER_SIZE];
	ck_assert_mem_eq(sf_flight_user(f), zero, SF_USER_SIZE);
	sf_flight_finish(f, NULL, NULL);
}
END_TEST

/* SF_KEY_MAX is the largest key accepted; one more byte passes through. */
/* A leader whose call failed on its own (its memory, its deadline) keeps
 * that answer; one follower asks again for the rest, who get its answer. */
START_TEST(test_own_failure_hands_over)
{
	enum { N = 4 };
	struct caller c[N] = { 0 };
	pthread_barrier_t b;
	pthread_barrier_init(&b, NULL, N);
	W.own_upto = 1;
	W.wait_followers = N - 1;
	for (unsigned i = 0; i < N; i++) {
		c[i].start = &b;
		start(&c[i]);
	}
	unsigned paths[SF_PATH_COUNT] = { 0 }, promoted = N;
	for (unsigned i = 0; i < N; i++) {
		finish(&c[i]);
		paths[c[i].path]++;
		if (c[i].path == SF_PATH_PROMOTED)
			promoted = i;
	}
	pthread_barrier_destroy(&b);
	ck_assert_uint_eq(atomic_load(&W.calls), 2);
	ck_assert_uint_eq(paths[SF_PATH_LEADER], 1);
	ck_assert_uint_eq(paths[SF_PATH_PROMOTED], 1);
	ck_assert_uint_eq(paths[SF_PATH_FOLLOWER], N - 2);
	ck_assert_uint_lt(promoted, N);
	ck_assert_uint_eq(c[promoted].info.followers, N - 2);
	for (unsigned i = 0; i < N; i++)
		ck_assert_uint_eq(c[i].out.call_no,
		                  c[i].path == SF_PATH_LEADER ? 1 : 2);
}
END_TEST

/* With retry_errors the upstream's error reaches nobody but the leader:
 * every follower asks itself, and no shared copy is built. */
START_TEST(test_error_not_shared_on_retry)
{
	enum { N = 4 };
	struct caller c[N] = { 0 };
	W.err = EAI_AGAIN;
	W.retry = true;
	unsigned l = run_together(c, N);
	ck_assert_uint_eq(atomic_load(&W.calls), N);
	ck_assert_uint_eq(atomic_load(&W.shares), 0);
	ck_assert_uint_eq(c[l].out.call_no, 1);
	for (unsigned i = 0; i < N; i++) {
		if (i == l)
			continue;
		ck_assert_int_eq(c[i].path, SF_PATH_RETRIED);
		ck_assert_uint_gt(c[i].out.call_no, 1);
		ck_assert(!c[i].info.shared);
	}
}
END_TEST

/* A follower that cannot take its copy makes its own call instead of
 * failing where its own call would not. */
START_TEST(test_take_failure_falls_back)
{
	enum { N = 3 };
	struct caller c[N] = { 0 };
	W.take_fails = true;
	unsigned l = run_together(c, N);
	ck_assert_uint_eq(atomic_load(&W.calls), N);
	for (unsigned i = 0; i < N; i++)
		if (i != l) {
			ck_assert_int_eq(c[i].path, SF_PATH_FALLBACK);
			ck_assert_uint_gt(c[i].out.call_no, 1);
		}
}
END_TEST

/* The shared rules, as tables. */
START_TEST(test_outcome_rules)
{
	ck_assert_int_eq(sf_share_rule(SF_RESULT_OK, false), SF_SHARE_RESULT);
	ck_assert_int_eq(sf_share_rule(SF_RESULT_OK, true), SF_SHARE_RESULT);
	ck_assert_int_eq(sf_share_rule(SF_RESULT_ERROR, false),
	                 SF_SHARE_RESULT);
	ck_assert_int_eq(sf_share_rule(SF_RESULT_ERROR, true),
	                 SF_SHARE_NOTHING);
	ck_assert_int_eq(sf_share_rule(SF_RESULT_OWN, false),
	                 SF_SHARE_HANDOVER);
	ck_assert_int_eq(sf_share_rule(SF_RESULT_OWN, true), SF_SHARE_HANDOVER);
	const unsigned F = SF_STAT_BIT(SF_STAT_FOLLOWERS);
	ck_assert_uint_eq(sf_path_stats(SF_PATH_LEADER),
	                  SF_STAT_BIT(SF_STAT_LEADERS));
	ck_assert_uint_eq(sf_path_stats(SF_PATH_FOLLOWER), F);
	ck_assert_uint_eq(sf_path_stats(SF_PATH_PROMOTED),
	                  F | SF_STAT_BIT(SF_STAT_PROMOTIONS));
	ck_assert_uint_eq(sf_path_stats(SF_PATH_EXPIRED),
	                  F | SF_STAT_BIT(SF_STAT_EXPIRED));
	ck_assert_uint_eq(sf_path_stats(SF_PATH_RETRIED),
	                  F | SF_STAT_BIT(SF_STAT_RETRIED));
	ck_assert_uint_eq(sf_path_stats(SF_PATH_FALLBACK),
	                  F | SF_STAT_BIT(SF_STAT_FALLBACKS));
	ck_assert_uint_eq(sf_path_stats(SF_PATH_ALONE), 0);
	ck_assert_uint_eq(sf_path_stats(SF_PATH_COUNT), 0);
	ck_assert(sf_path_saved(SF_PATH_FOLLOWER));
	ck_assert(!sf_path_saved(SF_PATH_FALLBACK));
}
END_TEST

START_TEST(test_key_too_long)
{
	static char key[SF_KEY_MAX + 1];
	memset(key, 'k', sizeof(key));
	bool leader = false;
	sf_flight *f = sf_join(W.g, key, SF_KEY_MAX, &leader);
	ck_assert_ptr_nonnull(f);
	ck_assert(leader);
	sf_flight_finish(f, NULL, NULL);
	ck_assert_ptr_null(sf_join(W.g, key, SF_KEY_MAX + 1, &leader));
	struct answer out;
	struct sf_do_info info = { .shared = true, .followers = 7 };
	ck_assert_int_eq(sf_do(W.g, key, SF_KEY_MAX + 1, &OPS, NULL, &out, 0,
	                       false, &info),
	                 SF_PATH_ALONE);
	ck_assert_uint_eq(atomic_load(&W.calls), 1);
	ck_assert_uint_eq(out.call_no, 1);
	ck_assert(!info.shared);
	ck_assert_uint_eq(info.followers, 0);
	ck_assert_uint_eq(atomic_load(&W.shares), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("flight");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_value_delivered);
	tcase_add_test(tc, test_error_delivered);
	tcase_add_test(tc, test_exactly_once_128);
	tcase_add_test(tc, test_forget_mid_flight);
	tcase_add_test(tc, test_lone_caller_not_shared);
	tcase_add_test(tc, test_follower_deadline);
	tcase_add_test(tc, test_leader_cancel_promotes);
	tcase_add_test(tc, test_follower_cancel_leaves);
	tcase_add_test(tc, test_fork_child_leads);
	tcase_add_test(tc, test_many_keys);
	tcase_add_test(tc, test_stream_notify_then_done);
	tcase_add_test(tc, test_wait_cursor_and_timeout);
	tcase_add_test(tc, test_notify_before_followers);
	tcase_add_test(tc, test_abandon_promotes_one);
	tcase_add_test(tc, test_abandon_alone_next_leads);
	tcase_add_test(tc, test_key_and_user_area);
	tcase_add_test(tc, test_key_too_long);
	tcase_add_test(tc, test_own_failure_hands_over);
	tcase_add_test(tc, test_error_not_shared_on_retry);
	tcase_add_test(tc, test_take_failure_falls_back);
	tcase_add_test(tc, test_outcome_rules);
	tcase_add_test(tc, test_flight_ids);
	suite_add_tcase(s, tc);
	return sf_unit_run(s);
}
