/* bench_dns - measurements behind scripts/bench.sh (not a test).
 *
 *   bench_dns latency NAME ROUNDS ITERS
 *       ROUNDS x ITERS calls of getaddrinfo(NAME, "443", AF_INET/STREAM) +
 *       freeaddrinfo on one thread; prints "ns_per_call MEDIAN MIN" over the
 *       rounds.  Run under LD_PRELOAD with and without the shim in front of
 *       libbench_res.so (a zero-latency stand-in): the difference is what
 *       the shim adds per call.
 *
 *   bench_dns burst THREADS DELAY_MS REPS
 *       Needs the shim and libbench_res.so with BENCH_RES_DELAY_MS=DELAY_MS.
 *       Per repetition, two measurements on fresh threads:
 *       floor: THREADS threads parked on one futex word, woken by a single
 *              FUTEX_WAKE(INT_MAX); each records CLOCK_MONOTONIC when it
 *              runs again, relative to the timestamp taken just before the
 *              broadcast;
 *       shim:  THREADS threads released together call getaddrinfo on one
 *              name; the stand-in stamps the moment its (leader's) call
 *              returns; each follower records when its getaddrinfo
 *              returned, relative to that stamp.
 *       Prints one line per measurement: upstream calls, followers, median
 *       and slowest wake-up in microseconds. */
#include "sf_bench.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void futex_wait(_Atomic uint32_t *w, uint32_t v)
{
	while (atomic_load(w) == v)
		syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0);
}

static void futex_wake_all(_Atomic uint32_t *w)
{
	syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* ---- latency ----------------------------------------------------------- */

static int latency(const char *name, int rounds, long iters)
{
	struct addrinfo h = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res;
	uint64_t *per = calloc((size_t)rounds, sizeof(*per));
	for (long i = 0; i < iters; i++) { /* warm-up: first-use setup, caches */
		if (getaddrinfo(name, "443", &h, &res) != 0)
			return 1;
		freeaddrinfo(res);
	}
	for (int r = 0; r < rounds; r++) {
		uint64_t t0 = now_ns();
		for (long i = 0; i < iters; i++) {
			if (getaddrinfo(name, "443", &h, &res) != 0)
				return 1;
			freeaddrinfo(res);
		}
		per[r] = (now_ns() - t0) * 1000 / (uint64_t)iters; /* ps per call */
	}
	qsort(per, (size_t)rounds, sizeof(*per), cmp_u64);
	printf("ns_per_call %.1f %.1f\n", per[rounds / 2] / 1000.0, per[0] / 1000.0);
	free(per);
	return 0;
}

/* ---- burst ------------------------------------------------------------- */

struct res_api {
	unsigned long (*calls)(void);
	unsigned long (*calls_here)(void);
	uint64_t (*returned_ns)(unsigned long);
	void (*reset)(void);
};
static struct res_api res;

static _Atomic uint32_t go, leave;
static _Atomic unsigned arrived, measured;
static _Atomic uint64_t bcast_ns;
static const char *burst_name = "burst.bench.invalid";
static int warm_malloc;

struct slot {
	uint64_t woke_ns;
	int upstream; /* this thread's call reached the stand-in */
	int rc;
};

/* Threads stay until every one has its timestamp: thread exits (stack
 * unmapping, the mm lock) must not disturb the measurement. */
static void hold(void)
{
	atomic_fetch_add(&measured, 1);
	futex_wait(&leave, 0);
}

static void *floor_main(void *p)
{
	struct slot *s = p;
	atomic_fetch_add(&arrived, 1);
	futex_wait(&go, 0);
	s->woke_ns = now_ns();
	hold();
	return NULL;
}

static void *shim_main(void *p)
{
	struct slot *s = p;
	struct addrinfo h = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *ai;
	if (warm_malloc) /* a thread's first malloc sets up its tcache and arena */
		free(malloc(64));
	atomic_fetch_add(&arrived, 1);
	futex_wait(&go, 0);
	s->rc = getaddrinfo(burst_name, "443", &h, &ai);
	s->woke_ns = now_ns();
	s->upstream = res.calls_here() != 0;
	hold();
	if (s->rc == 0)
		freeaddrinfo(ai);
	return NULL;
}

static void run_threads(int n, void *(*fn)(void *), struct slot *s, unsigned settle_ms)
{
	pthread_t *t = calloc((size_t)n, sizeof(*t));
	pthread_attr_t a;
	pthread_attr_init(&a);
	pthread_attr_setstacksize(&a, 256 * 1024);
	atomic_store(&go, 0);
	atomic_store(&leave, 0);
	atomic_store(&arrived, 0);
	atomic_store(&measured, 0);
	for (int i = 0; i < n; i++) {
		if (pthread_create(&t[i], &a, fn, &s[i]) != 0) {
			perror("pthread_create");
			exit(1);
		}
	}
	while (atomic_load(&arrived) < (unsigned)n)
		sleep_ms(1);
	sleep_ms(settle_ms); /* let the last ones reach FUTEX_WAIT */
	atomic_store(&bcast_ns, now_ns());
	atomic_store(&go, 1);
	futex_wake_all(&go);
	while (atomic_load(&measured) < (unsigned)n)
		sleep_ms(1);
	atomic_store(&leave, 1);
	futex_wake_all(&leave);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	pthread_attr_destroy(&a);
	free(t);
}

static void report(const char *what, unsigned long upstream, uint64_t *lat, int n)
{
	qsort(lat, (size_t)n, sizeof(*lat), cmp_u64);
	if (getenv("BENCH_DECILES") && n >= 10) {
		printf("%s deciles_us", what);
		for (int d = 0; d <= 10; d++)
			printf(" %.0f", lat[d == 10 ? n - 1 : d * n / 10] / 1000.0);
		printf("\n");
	}
	printf("%s upstream %lu followers %d median_us %.1f slowest_us %.1f\n", what,
	       upstream, n, n ? lat[n / 2] / 1000.0 : 0, n ? lat[n - 1] / 1000.0 : 0);
}

static int burst(int n, unsigned delay_ms, int reps)
{
	warm_malloc = getenv("BENCH_COLD_MALLOC") == NULL;
	*(void **)&res.calls = dlsym(RTLD_DEFAULT, "bench_res_calls");
	*(void **)&res.calls_here = dlsym(RTLD_DEFAULT, "bench_res_calls_here");
	*(void **)&res.returned_ns = dlsym(RTLD_DEFAULT, "bench_res_returned_ns");
	*(void **)&res.reset = dlsym(RTLD_DEFAULT, "bench_res_reset");
	if (!res.calls || !res.calls_here || !res.returned_ns || !res.reset) {
		fprintf(stderr, "bench_dns: libbench_res.so is not preloaded\n");
		return 1;
	}
	struct slot *s = calloc((size_t)n, sizeof(*s));
	uint64_t *lat = calloc((size_t)n, sizeof(*lat));
	for (int r = 0; r < reps; r++) {
		/* floor */
		memset(s, 0, (size_t)n * sizeof(*s));
		run_threads(n, floor_main, s, delay_ms);
		for (int i = 0; i < n; i++)
			lat[i] = s[i].woke_ns - atomic_load(&bcast_ns);
		report("floor", 0, lat, n);

		/* shim followers */
		memset(s, 0, (size_t)n * sizeof(*s));
		res.reset();
		run_threads(n, shim_main, s, 5);
		unsigned long up = res.calls();
		uint64_t *ret = calloc(up ? up : 1, sizeof(*ret));
		for (unsigned long k = 0; k < up; k++)
			ret[k] = res.returned_ns(k);
		qsort(ret, up, sizeof(*ret), cmp_u64);
		int m = 0;
		for (int i = 0; i < n; i++) {
			if (s[i].rc != 0) {
				fprintf(stderr, "bench_dns: getaddrinfo failed: %d\n", s[i].rc);
				return 1;
			}
			if (s[i].upstream)
				continue;
			/* the leader whose return came last before this wake-up */
			uint64_t base = 0;
			for (unsigned long k = 0; k < up; k++)
				if (ret[k] && ret[k] <= s[i].woke_ns)
					base = ret[k];
			lat[m++] = s[i].woke_ns - base;
		}
		report("shim", up, lat, m);
		free(ret);
	}
	free(s);
	free(lat);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "latency") == 0)
		return latency(argv[2], atoi(argv[3]), atol(argv[4]));
	if (argc == 5 && strcmp(argv[1], "burst") == 0)
		return burst(atoi(argv[2]), (unsigned)atoi(argv[3]), atoi(argv[4]));
	fprintf(stderr, "usage: bench_dns latency NAME ROUNDS ITERS\n"
	                "       bench_dns burst THREADS DELAY_MS REPS\n");
	return 2;
}
