/* bench_curl - NTHREADS threads GET one URL with libcurl's easy interface,
 * released together by a barrier; run by scripts/bench_curl.sh, with and
 * without sfshim preloaded.
 *
 * usage: bench_curl [-m] [-u] [-x fetch|handles|threads] URL NTHREADS
 *   -m  sample /proc/self/smaps every 5 ms and report the breakdown of the
 *       sample with the largest resident set (see below)
 *   -u  every thread GETs its own URL (URL&t=I): nothing to coalesce
 *   -x  what each thread does (default fetch): "handles" creates and sets
 *       up its easy handle, waits at the barrier and cleans up without a
 *       transfer; "threads" only waits at the barrier.  They separate what
 *       a thread, and a thread with an easy handle, cost by themselves.
 *
 * Prints one line of key=value pairs:
 *   threads ok        transfers that returned CURLE_OK with status 200 and
 *                     a body of the expected /bytes/N pattern
 *   bytes             body bytes of the first thread
 *   direct replayed   transfers whose first write callback had a libcurl
 *                     object on its stack (the transfer ran in libcurl: the
 *                     shim's leader, or every thread without the shim) /
 *                     did not (the shim replayed a leader's data)
 *   wall_ms           barrier release to the last thread's return
 *   ttfb_direct_ms    first body byte after the thread's own release, over
 *   ttfb_replay_med_ms ttfb_replay_max_ms   direct / replayed transfers
 *   ttfb_direct_med_ms ttfb_direct_max_ms
 *   done_med_ms done_max_ms   perform() return times
 *   base_rss_kb       VmRSS after curl_global_init, before any thread
 *   hwm_kb            VmHWM at the end (peak resident set)
 *   maxrss_kb         getrusage(RUSAGE_SELF).ru_maxrss
 * and with -m, for the largest sample: smaps_rss_kb and its parts
 *   file_kb (mapped files: libraries), heap_kb ([heap]: main arena),
 *   arena_kb (anonymous mappings starting on a 64 MiB boundary: glibc's
 *   per-thread malloc arenas), stack_kb (anonymous ~8 MiB mappings: thread
 *   stacks of the default size), other_kb (other anonymous: mmap'd malloc chunks
 *   and the rest), nthreads. */
#include "sf_bench.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <execinfo.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static const char ALPHABET[] = "0123456789abcdefghijklmnopqrstuvwxyz";
static char pattern[65536 + 36];

struct job {
	char url[1024];
	pthread_barrier_t *start;
	uint64_t t0, first, done;
	size_t bytes;
	int bad_body, direct, rc;
	long code;
};

static int libcurl_on_stack(void)
{
	void *frames[64];
	int n = backtrace(frames, 64);
	for (int i = 0; i < n; i++) {
		Dl_info di;
		if (!dladdr(frames[i], &di) || !di.dli_fname)
			continue;
		const char *base = strrchr(di.dli_fname, '/');
		base = base ? base + 1 : di.dli_fname;
		if (strncmp(base, "libcurl", 7) == 0)
			return 1;
	}
	return 0;
}

/* Bodies are discarded, only checked against /bytes/N's pattern, so that
 * the resident set measures the transfers, not 100 copies of the body. */
static size_t on_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct job *j = arg;
	size_t n = size * nmemb;
	if (!j->first) {
		j->first = now_ns();
		j->direct = libcurl_on_stack();
	}
	for (size_t off = 0; off < n;) {
		size_t k = n - off > 65536 ? 65536 : n - off;
		if (memcmp(p + off, pattern + (j->bytes + off) % 36, k))
			j->bad_body = 1;
		off += k;
	}
	j->bytes += n;
	return n;
}

enum mode { FETCH, HANDLES, THREADS };
static enum mode mode = FETCH;

static void *fetch(void *arg)
{
	struct job *j = arg;
	if (mode == THREADS) {
		pthread_barrier_wait(j->start);
		pthread_barrier_wait(j->start);
		return NULL;
	}
	CURL *h = curl_easy_init();
	if (h) {
		curl_easy_setopt(h, CURLOPT_URL, j->url);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, j);
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	}
	pthread_barrier_wait(j->start);
	if (mode == HANDLES) {
		pthread_barrier_wait(j->start); /* all handles exist at once */
		curl_easy_cleanup(h);
		return NULL;
	}
	j->t0 = now_ns();
	j->rc = h ? (int)curl_easy_perform(h) : -1;
	j->done = now_ns();
	if (h) {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &j->code);
		curl_easy_cleanup(h);
	}
	return NULL;
}

/* ---- memory ----------------------------------------------------------- */

static long status_kb(const char *key)
{
	char buf[4096];
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	char *p = strstr(buf, key);
	return p ? strtol(p + strlen(key) + 1, NULL, 10) : -1;
}

enum { M_FILE, M_HEAP, M_ARENA, M_STACK, M_OTHER, M_N };
struct smaps {
	long part[M_N], total, threads;
};

/* One pass over /proc/self/smaps, no malloc (the sampler must not disturb
 * the arenas it measures). */
static void read_smaps(struct smaps *s)
{
	static char buf[1 << 16];
	static char line[512];
	memset(s, 0, sizeof(*s));
	int fd = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	size_t ll = 0;
	int cls = M_OTHER;
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] != '\n') {
				if (ll < sizeof(line) - 1)
					line[ll++] = buf[i];
				continue;
			}
			line[ll] = '\0';
			ll = 0;
			unsigned long lo, hi;
			char perms[8];
			int off = 0;
			if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &lo, &hi, perms, &off) >= 3 &&
			    strchr(line, '-') && off > 0) {
				const char *path = line + off;
				unsigned long size = hi - lo;
				if (path[0] == '/')
					cls = M_FILE;
				else if (strcmp(path, "[heap]") == 0)
					cls = M_HEAP;
				else if (path[0] == '[')
					cls = M_OTHER;
				else if (lo % (64ul << 20) == 0)
					cls = M_ARENA;
				else if (size + (64ul << 10) >= (8ul << 20) &&
				         size <= (8ul << 20) + (64ul << 10))
					cls = M_STACK; /* 8 MiB minus the guard page */
				else
					cls = M_OTHER;
			} else if (strncmp(line, "Rss:", 4) == 0) {
				long kb = strtol(line + 4, NULL, 10);
				s->part[cls] += kb;
				s->total += kb;
			}
		}
	}
	close(fd);
	s->threads = status_kb("Threads:");
}

static atomic_int sampling;
static struct smaps peak;

static void *sampler(void *arg)
{
	(void)arg;
	struct smaps s;
	while (atomic_load(&sampling)) {
		read_smaps(&s);
		if (s.total > peak.total)
			peak = s;
		struct timespec ts = { 0, 5 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static void stats(uint64_t *v, int n, double *med, double *max)
{
	if (n == 0) {
		*med = *max = -1;
		return;
	}
	qsort(v, (size_t)n, sizeof(*v), cmp_u64);
	*med = (n % 2 ? (double)v[n / 2] : ((double)v[n / 2 - 1] + (double)v[n / 2]) / 2) / 1e6;
	*max = (double)v[n - 1] / 1e6;
}

int main(int argc, char **argv)
{
	int smaps = 0, unique = 0, a = 1;
	for (; a < argc && argv[a][0] == '-'; a++) {
		if (strcmp(argv[a], "-m") == 0)
			smaps = 1;
		else if (strcmp(argv[a], "-u") == 0)
			unique = 1;
		else if (strcmp(argv[a], "-x") == 0 && a + 1 < argc) {
			const char *m = argv[++a];
			mode = !strcmp(m, "handles") ? HANDLES
			       : !strcmp(m, "threads") ? THREADS : FETCH;
		} else
			break;
	}
	if (argc - a != 2) {
		fprintf(stderr, "usage: bench_curl [-m] [-u] [-x fetch|handles|threads] URL NTHREADS\n");
		return 2;
	}
	const char *url = argv[a];
	int n = atoi(argv[a + 1]);
	if (n <= 0)
		return 2;
	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = ALPHABET[i % 36];
	curl_global_init(CURL_GLOBAL_DEFAULT);
	long base_rss = status_kb("VmRSS:");

	pthread_t smp;
	if (smaps) {
		atomic_store(&sampling, 1);
		pthread_create(&smp, NULL, sampler, NULL);
	}
	pthread_barrier_t start;
	pthread_barrier_init(&start, NULL, (unsigned)n + 1);
	struct job *jobs = calloc((size_t)n, sizeof(*jobs));
	pthread_t *tids = calloc((size_t)n, sizeof(*tids));
	for (int i = 0; i < n; i++) {
		if (unique)
			snprintf(jobs[i].url, sizeof(jobs[i].url), "%s%ct=%d", url,
			         strchr(url, '?') ? '&' : '?', i);
		else
			snprintf(jobs[i].url, sizeof(jobs[i].url), "%s", url);
		jobs[i].start = &start;
		if (pthread_create(&tids[i], NULL, fetch, &jobs[i])) {
			perror("pthread_create");
			return 2;
		}
	}
	pthread_barrier_wait(&start);
	uint64_t t0 = now_ns();
	if (mode != FETCH) {
		/* Everything exists now: let the sampler see it, then release. */
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		pthread_barrier_wait(&start);
	}
	for (int i = 0; i < n; i++)
		pthread_join(tids[i], NULL);
	uint64_t wall = now_ns() - t0;
	if (smaps) {
		atomic_store(&sampling, 0);
		pthread_join(smp, NULL);
	}

	uint64_t *td = calloc((size_t)n, sizeof(uint64_t));
	uint64_t *tr = calloc((size_t)n, sizeof(uint64_t));
	uint64_t *dn = calloc((size_t)n, sizeof(uint64_t));
	int nd = 0, nr = 0, ok = 0;
	for (int i = 0; i < n; i++) {
		struct job *j = &jobs[i];
		ok += j->rc == 0 && j->code == 200 && !j->bad_body && j->bytes == jobs[0].bytes;
		dn[i] = j->done - j->t0;
		if (!j->first)
			continue;
		if (j->direct)
			td[nd++] = j->first - j->t0;
		else
			tr[nr++] = j->first - j->t0;
	}
	double dmed, dmax, rmed, rmax, cmed, cmax;
	stats(td, nd, &dmed, &dmax);
	stats(tr, nr, &rmed, &rmax);
	stats(dn, n, &cmed, &cmax);
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("threads=%d ok=%d bytes=%zu direct=%d replayed=%d wall_ms=%.1f "
	       "ttfb_direct_med_ms=%.1f ttfb_direct_max_ms=%.1f "
	       "ttfb_replay_med_ms=%.1f ttfb_replay_max_ms=%.1f "
	       "done_med_ms=%.1f done_max_ms=%.1f "
	       "base_rss_kb=%ld hwm_kb=%ld maxrss_kb=%ld",
	       n, ok, jobs[0].bytes, nd, nr, (double)wall / 1e6, dmed, dmax, rmed,
	       rmax, cmed, cmax, base_rss, status_kb("VmHWM:"), ru.ru_maxrss);
	if (smaps)
		printf(" smaps_rss_kb=%ld file_kb=%ld heap_kb=%ld arena_kb=%ld "
		       "stack_kb=%ld other_kb=%ld nthreads=%ld",
		       peak.total, peak.part[M_FILE], peak.part[M_HEAP],
		       peak.part[M_ARENA], peak.part[M_STACK], peak.part[M_OTHER],
		       peak.threads);
	printf("\n");
	free(td);
	free(tr);
	free(dn);
	free(jobs);
	free(tids);
	curl_global_cleanup();
	return mode != FETCH || ok == n ? 0 : 1;
}
