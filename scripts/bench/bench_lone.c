/* bench_lone - the lone path: one thread, one reused easy handle, N
 * sequential GETs of one URL (nobody ever joins a flight); run by
 * scripts/bench_curl.sh with and without sfshim preloaded.
 *
 * usage: bench_lone URL N
 * Prints: us_per_req=MEAN cpu_us_per_req=MEAN bytes=BODY_BYTES_OF_LAST ok=N_OK
 * (after N/10 + 1 warm-up requests that are not timed).  cpu_us_per_req is
 * this process's user + system time: what the shim adds to the client, less
 * disturbed by other load on the machine than the wall time. */
#include "sf_bench.h"

#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static size_t sink(char *p, size_t size, size_t nmemb, void *arg)
{
	(void)p;
	*(size_t *)arg += size * nmemb;
	return size * nmemb;
}

static uint64_t cpu_ns(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) *
	               1000000000u +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) *
	               1000u;
}

int main(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	long n = atol(argv[2]);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	CURL *h = curl_easy_init();
	size_t bytes = 0;
	curl_easy_setopt(h, CURLOPT_URL, argv[1]);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &bytes);
	long ok = 0;
	uint64_t t0 = 0, c0 = 0;
	for (long i = -(n / 10 + 1); i < n; i++) {
		if (i == 0) {
			t0 = now_ns();
			c0 = cpu_ns();
		}
		bytes = 0;
		ok += curl_easy_perform(h) == CURLE_OK && i >= 0;
	}
	uint64_t t = now_ns() - t0, c = cpu_ns() - c0;
	printf("us_per_req=%.1f cpu_us_per_req=%.1f bytes=%zu ok=%ld\n",
	       (double)t / 1e3 / (double)n, (double)c / 1e3 / (double)n, bytes,
	       ok);
	curl_easy_cleanup(h);
	curl_global_cleanup();
	return ok == n ? 0 : 1;
}
