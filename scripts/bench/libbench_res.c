/* libbench_res.so - the stand-in resolver behind the shim in scripts/bench.sh.
 *
 * getaddrinfo answers at once (or after BENCH_RES_DELAY_MS) with one fixed
 * node in glibc's layout: one malloc block holding the struct and its
 * sockaddr_in, no canonical name, so glibc's freeaddrinfo releases it.  It
 * counts calls and remembers when each of the first calls returned, and
 * which threads made them, for the burst measurement. */
#include "sf_bench.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXPORT __attribute__((visibility("default")))
#define RETURNS 4096

static unsigned delay_ms;
static _Atomic unsigned long calls;
static _Atomic uint64_t returned_ns[RETURNS];
static __thread unsigned long calls_here __attribute__((tls_model("initial-exec")));

__attribute__((constructor)) static void init(void)
{
	const char *d = getenv("BENCH_RES_DELAY_MS");
	delay_ms = d ? (unsigned)atoi(d) : 0;
}

EXPORT int getaddrinfo(const char *node, const char *service,
                       const struct addrinfo *hints, struct addrinfo **res)
{
	(void)node;
	(void)service;
	(void)hints;
	unsigned long i = atomic_fetch_add_explicit(&calls, 1, memory_order_relaxed);
	calls_here++;
	if (delay_ms) {
		struct timespec ts = { delay_ms / 1000, (long)(delay_ms % 1000) * 1000000L };
		while (nanosleep(&ts, &ts) != 0)
			;
	}
	struct addrinfo *ai = malloc(sizeof(*ai) + sizeof(struct sockaddr_in));
	if (!ai)
		return EAI_MEMORY;
	struct sockaddr_in *sin = (struct sockaddr_in *)(ai + 1);
	memset(ai, 0, sizeof(*ai) + sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(443);
	sin->sin_addr.s_addr = htonl(0xc0000201); /* 192.0.2.1 */
	ai->ai_family = AF_INET;
	ai->ai_socktype = SOCK_STREAM;
	ai->ai_protocol = IPPROTO_TCP;
	ai->ai_addrlen = sizeof(*sin);
	ai->ai_addr = (struct sockaddr *)sin;
	*res = ai;
	if (delay_ms && i < RETURNS)
		atomic_store_explicit(&returned_ns[i], now_ns(), memory_order_relaxed);
	return 0;
}

EXPORT unsigned long bench_res_calls(void)
{
	return atomic_load(&calls);
}

EXPORT unsigned long bench_res_calls_here(void)
{
	return calls_here;
}

EXPORT uint64_t bench_res_returned_ns(unsigned long i)
{
	return i < RETURNS ? atomic_load(&returned_ns[i]) : 0;
}

EXPORT void bench_res_reset(void)
{
	atomic_store(&calls, 0);
	for (int i = 0; i < RETURNS; i++)
		atomic_store(&returned_ns[i], 0);
}
