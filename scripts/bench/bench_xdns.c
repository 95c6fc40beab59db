/* bench_xdns - the cross-process burst behind scripts/bench.sh (not a test).
 *
 *   bench_xdns burst PROCS DELAY_MS REPS
 *       Needs the shim and libbench_res.so preloaded, SFSHIM_SCOPE set and
 *       BENCH_RES_DELAY_MS=DELAY_MS.  The parent resolves a warm-up name
 *       (the library attaches the scope's table), then per repetition forks
 *       PROCS fresh workers twice:
 *       floor: the workers park on one futex word in a shared mapping and
 *              are woken by a single FUTEX_WAKE(INT_MAX); each records
 *              CLOCK_MONOTONIC when it runs again, relative to the
 *              timestamp taken just before the broadcast;
 *       shim:  the workers, released together, call getaddrinfo on one
 *              name (a new one each repetition); the stand-in in the
 *              worker whose call reached it stamps the moment it returned;
 *              every other worker records when its getaddrinfo returned,
 *              relative to that stamp.
 *       Prints one line per measurement: upstream calls (summed over the
 *       workers), followers, median and slowest wake-up in microseconds.
 *       Workers stay alive until every one has its timestamp, so exits do
 *       not disturb the measurement. */
#include "sf_bench.h"

#include <dlfcn.h>
#include <limits.h>
#include <linux/futex.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Shared futexes: no FUTEX_PRIVATE_FLAG, the word is in a shared mapping. */
static void futex_wait(_Atomic uint32_t *w, uint32_t v)
{
	while (atomic_load(w) == v)
		syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT, v, NULL, NULL, 0);
}

static void futex_wake_all(_Atomic uint32_t *w)
{
	syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

struct res_api {
	unsigned long (*calls_here)(void);
	uint64_t (*returned_ns)(unsigned long);
	void (*reset)(void);
};
static struct res_api res;

struct slot {
	uint64_t woke_ns;
	uint64_t returned_ns; /* the stand-in's return, if it was called */
	int upstream;
	int rc;
};

struct shared {
	_Atomic uint32_t go, leave;
	_Atomic unsigned arrived, measured;
	uint64_t bcast_ns;
	struct slot s[];
};
static struct shared *sh;

static void hold(void)
{
	atomic_fetch_add(&sh->measured, 1);
	futex_wait(&sh->leave, 0);
}

static void floor_main(struct slot *s)
{
	atomic_fetch_add(&sh->arrived, 1);
	futex_wait(&sh->go, 0);
	s->woke_ns = now_ns();
	hold();
}

static void shim_main(struct slot *s, const char *name)
{
	struct addrinfo h = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *ai;
	free(malloc(64)); /* the process's first malloc is not measured */
	res.reset();
	unsigned long before = res.calls_here(); /* the parent's warm-up */
	atomic_fetch_add(&sh->arrived, 1);
	futex_wait(&sh->go, 0);
	s->rc = getaddrinfo(name, "443", &h, &ai);
	s->woke_ns = now_ns();
	s->upstream = res.calls_here() != before;
	if (s->upstream)
		s->returned_ns = res.returned_ns(0);
	hold();
	if (s->rc == 0)
		freeaddrinfo(ai);
}

/* Forks n workers running fn, releases them together, waits until each has
 * its timestamp, then lets them go. */
static void run(int n, int shim, const char *name, unsigned settle_ms)
{
	atomic_store(&sh->go, 0);
	atomic_store(&sh->leave, 0);
	atomic_store(&sh->arrived, 0);
	atomic_store(&sh->measured, 0);
	memset(sh->s, 0, (size_t)n * sizeof(struct slot));
	pid_t *pids = calloc((size_t)n, sizeof(*pids));
	for (int i = 0; i < n; i++) {
		pids[i] = fork();
		if (pids[i] < 0) {
			perror("fork");
			exit(1);
		}
		if (pids[i] == 0) {
			if (shim)
				shim_main(&sh->s[i], name);
			else
				floor_main(&sh->s[i]);
			_exit(0);
		}
	}
	while (atomic_load(&sh->arrived) < (unsigned)n)
		sleep_ms(1);
	sleep_ms(settle_ms); /* let the last ones reach FUTEX_WAIT */
	sh->bcast_ns = now_ns();
	atomic_store(&sh->go, 1);
	futex_wake_all(&sh->go);
	while (atomic_load(&sh->measured) < (unsigned)n)
		sleep_ms(1);
	atomic_store(&sh->leave, 1);
	futex_wake_all(&sh->leave);
	for (int i = 0; i < n; i++)
		waitpid(pids[i], NULL, 0);
	free(pids);
}

static void report(const char *what, unsigned long upstream, uint64_t *lat, int n)
{
	qsort(lat, (size_t)n, sizeof(*lat), cmp_u64);
	printf("%s upstream %lu followers %d median_us %.1f slowest_us %.1f\n", what,
	       upstream, n, n ? lat[n / 2] / 1000.0 : 0, n ? lat[n - 1] / 1000.0 : 0);
	fflush(stdout);
}

static int burst(int n, unsigned delay_ms, int reps)
{
	*(void **)&res.calls_here = dlsym(RTLD_DEFAULT, "bench_res_calls_here");
	*(void **)&res.returned_ns = dlsym(RTLD_DEFAULT, "bench_res_returned_ns");
	*(void **)&res.reset = dlsym(RTLD_DEFAULT, "bench_res_reset");
	if (!res.calls_here || !res.returned_ns || !res.reset) {
		fprintf(stderr, "bench_xdns: libbench_res.so is not preloaded\n");
		return 1;
	}
	if (!getenv("SFSHIM_SCOPE")) {
		fprintf(stderr, "bench_xdns: SFSHIM_SCOPE is not set\n");
		return 1;
	}
	sh = mmap(NULL, sizeof(*sh) + (size_t)n * sizeof(struct slot),
	          PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	/* Attach the table in the parent: workers keep its mapping. */
	struct addrinfo h = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *ai;
	if (getaddrinfo("warm.xbench.invalid", "443", &h, &ai) == 0)
		freeaddrinfo(ai);
	uint64_t *lat = calloc((size_t)n, sizeof(*lat));
	for (int r = 0; r < reps; r++) {
		run(n, 0, NULL, delay_ms);
		for (int i = 0; i < n; i++)
			lat[i] = sh->s[i].woke_ns - sh->bcast_ns;
		report("floor", 0, lat, n);

		char name[64];
		snprintf(name, sizeof(name), "burst%d.%d.xbench.invalid", r, (int)getpid());
		run(n, 1, name, 5);
		unsigned long up = 0;
		uint64_t base = 0;
		for (int i = 0; i < n; i++) {
			if (sh->s[i].rc != 0) {
				fprintf(stderr, "bench_xdns: getaddrinfo failed: %d\n",
				        sh->s[i].rc);
				return 1;
			}
			if (sh->s[i].upstream) {
				up++;
				if (sh->s[i].returned_ns > base)
					base = sh->s[i].returned_ns;
			}
		}
		int m = 0;
		for (int i = 0; i < n; i++)
			if (!sh->s[i].upstream)
				lat[m++] = sh->s[i].woke_ns - base;
		report("shim", up, lat, m);
	}
	free(lat);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "burst") == 0)
		return burst(atoi(argv[2]), (unsigned)atoi(argv[3]), atoi(argv[4]));
	fprintf(stderr, "usage: bench_xdns burst PROCS DELAY_MS REPS\n");
	return 2;
}
