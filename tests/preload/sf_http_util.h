/* sf_http_util.h - helpers for the preload tests that talk to the HTTP
 * fixture (tests/fixtures/sf_httpd): test_curl.c and test_curl_opts.c.
 *
 *  - srv_port / srv_log: the origin's port and request log, which each
 *    test's main sets from SF_HTTP_PORT and SF_HTTPD_LOG;
 *  - new_id(): a name unique to one burst of one test, used both as a gate
 *    name and as the id=... that marks the burst's requests in the log.
 *    Fixed width, so that no id is a prefix of another; the including file
 *    picks its first letter (SF_HTTP_ID_PREFIX), so that two programs
 *    sharing one origin log never count each other's requests;
 *  - counting the origin's log lines, and waiting for them (inotify, no
 *    polling);
 *  - opening a gate on a raw socket: libcurl is the code under test;
 *  - wanted(): SF_TEST_ONLY=name[,name...] runs only those tests. */
#ifndef SF_HTTP_UTIL_H
#define SF_HTTP_UTIL_H

#include "sf_preload_util.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/socket.h>

#ifndef SF_HTTP_ID_PREFIX
#error "define SF_HTTP_ID_PREFIX (one letter, as a string) before including"
#endif

static int srv_port __attribute__((unused));
static const char *srv_log __attribute__((unused));

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline char *new_id(void)
{
	static unsigned seq;
	char *s;
	sf_must(asprintf(&s, SF_HTTP_ID_PREFIX "%d-%03u", (int)getpid(),
	                 ++seq) >= 0);
	return s;
}

/* Lines of the origin's log containing needle (e.g. "id=p123-001") that
 * start with method (a "METHOD TARGET" line), or with anything when method
 * is NULL. */
static inline unsigned count_method_requests(const char *method,
                                             const char *needle)
{
	FILE *f = fopen(srv_log, "r");
	ck_assert_msg(f != NULL, "cannot read %s", srv_log);
	char line[8192];
	unsigned n = 0;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, needle) != NULL &&
		     (!method || strncmp(line, method, strlen(method)) == 0);
	fclose(f);
	return n;
}

/* Lines of the origin's log containing needle. */
static inline unsigned count_requests(const char *needle)
{
	return count_method_requests(NULL, needle);
}

/* Waits (inotify on the log, no polling) until at least n requests contain
 * needle; returns how many there are (fewer only past SF_WAIT_LIMIT_MS). */
static inline unsigned wait_requests(const char *needle, unsigned n)
{
	int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_ge(inotify_add_watch(fd, srv_log, IN_MODIFY), 0);
	uint64_t limit = now_ns() + (uint64_t)SF_WAIT_LIMIT_MS * 1000000u;
	unsigned got;
	while ((got = count_requests(needle)) < n) {
		uint64_t t = now_ns();
		if (t >= limit)
			break;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		poll(&p, 1, (int)((limit - t) / 1000000u) + 1);
		char ev[4096];
		while (read(fd, ev, sizeof(ev)) > 0)
			;
	}
	close(fd);
	return got;
}

/* GET /_open?gate=NAME on a raw socket: libcurl is the code under test.
 * Reads the whole answer (the origin closes), then wants a 200. */
static inline void open_gate(const char *name)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	struct sockaddr_in a = { .sin_family = AF_INET,
		                 .sin_port = htons((uint16_t)srv_port),
		                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	char req[256];
	int n = snprintf(req, sizeof(req),
	                 "GET /_open?gate=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	                 "Connection: close\r\n\r\n",
	                 name);
	ck_assert_int_eq(write(fd, req, (size_t)n), n);
	char resp[1024];
	size_t got = 0;
	ssize_t r;
	while (got < sizeof(resp) - 1 &&
	       (r = read(fd, resp + got, sizeof(resp) - 1 - got)) > 0)
		got += (size_t)r;
	resp[got] = '\0';
	close(fd);
	ck_assert_msg(strncmp(resp, "HTTP/1.1 200 ", 13) == 0,
	              "opening gate %s: %s", name, resp);
}

/* SF_TEST_ONLY=name[,name...] runs only those tests (when debugging). */
static inline bool wanted(const char *name)
{
	const char *only = getenv("SF_TEST_ONLY");
	if (!only || !*only)
		return true;
	size_t n = strlen(name);
	for (const char *p = only; (p = strstr(p, name)); p += n)
		if ((p == only || p[-1] == ',') &&
		    (p[n] == '\0' || p[n] == ','))
			return true;
	return false;
}

#endif
