/* sf_preload_util.h - helpers for the tests that run under LD_PRELOAD.
 *
 *  - the shim's log captured through a pipe on fd 2, with waits (no sleep)
 *    for a number of "joined flight" lines: the shim prints one per
 *    follower once it is registered, so "n lines" means "n followers are
 *    waiting on the flight";
 *  - glibc's own getaddrinfo, reached behind the shim for reference answers;
 *  - a canonical text form of a getaddrinfo answer, so that answers can be
 *    compared byte for byte (and across processes);
 *  - threads that each make one getaddrinfo call, and bursts of them held
 *    on libsf_fakeres.so's gate until every follower has joined. */
#ifndef SF_PRELOAD_UTIL_H
#define SF_PRELOAD_UTIL_H

#define SF_FAKE_LOADER
#include "../fixtures/sf_fakeres.h"

#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define SF_WAIT_LIMIT_MS 30000u /* a condition that never comes fails */

/* For code that runs on callers' threads or before main, where check's
 * assertions cannot report. */
#define sf_must(cond)                                                   \
	do {                                                            \
		if (!(cond)) {                                          \
			fprintf(stderr, "%s:%d: %s failed\n", __FILE__, \
			        __LINE__, #cond);                       \
			abort();                                        \
		}                                                       \
	} while (0)

/* ---- the shim's log ---------------------------------------------------- */

struct sf_logcap {
	int saved_fd2; /* the real stderr, -1 when not capturing */
	int rd;
	pthread_t reader;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned joined;    /* "joined flight" lines */
	unsigned took_over; /* "leader gone, took over" */
	unsigned expired;   /* "waited past SFSHIM_WAIT_MS" */
	unsigned lines;
};
static struct sf_logcap logcap
        __attribute__((unused)) = { .saved_fd2 = -1,
	                            .lock = PTHREAD_MUTEX_INITIALIZER,
	                            .cond = PTHREAD_COND_INITIALIZER };

/* Lines of the shim's debug chatter are counted and dropped; every other
 * line (sanitizer reports, shim errors) goes on to the real stderr. */
static inline void logcap_line(const char *line, size_t n)
{
	bool shim = strstr(line, "sfshim[") != NULL;
	pthread_mutex_lock(&logcap.lock);
	logcap.lines++;
	if (shim && strstr(line, ": joined flight"))
		logcap.joined++;
	if (shim && strstr(line, "leader gone, took over"))
		logcap.took_over++;
	if (shim && strstr(line, "waited past SFSHIM_WAIT_MS"))
		logcap.expired++;
	pthread_cond_broadcast(&logcap.cond);
	pthread_mutex_unlock(&logcap.lock);
	bool chatter = shim && (strstr(line, ": joined flight") ||
	                        strstr(line, ": shared (rc=") ||
	                        strstr(line, "leader gone, took over") ||
	                        strstr(line, "waited past SFSHIM_WAIT_MS"));
	if (!chatter && getenv("SF_TEST_QUIET_LOG") == NULL) {
		struct iovec v[2] = { { (void *)line, n }, { "\n", 1 } };
		ssize_t w = writev(logcap.saved_fd2, v, 2);
		(void)w;
	}
}

static inline void *logcap_main(void *unused)
{
	(void)unused;
	char buf[8192];
	size_t have = 0;
	for (;;) {
		ssize_t r = read(logcap.rd, buf + have, sizeof(buf) - 1 - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		have += (size_t)r;
		buf[have] = '\0';
		char *start = buf, *nl;
		while ((nl = memchr(start, '\n',
		                    have - (size_t)(start - buf)))) {
			*nl = '\0';
			logcap_line(start, (size_t)(nl - start));
			start = nl + 1;
		}
		have -= (size_t)(start - buf);
		memmove(buf, start, have);
		if (have == sizeof(buf) - 1) { /* a line too long: pass it on */
			buf[have] = '\0';
			logcap_line(buf, have);
			have = 0;
		}
	}
	close(logcap.rd);
	return NULL;
}

/* fd 2 becomes a pipe read by a thread of ours.  Returns 0 or -1 (usable
 * outside a test, e.g. in a constructor). */
static inline int logcap_try_start(void)
{
	int p[2];
	if (pipe(p) != 0)
		return -1;
	logcap.saved_fd2 = dup(2);
	if (logcap.saved_fd2 < 0 || dup2(p[1], 2) < 0)
		return -1;
	close(p[1]);
	logcap.rd = p[0];
	logcap.joined = logcap.took_over = logcap.expired = logcap.lines = 0;
	return pthread_create(&logcap.reader, NULL, logcap_main, NULL) == 0
	               ? 0
	               : -1;
}

static inline void logcap_start(void)
{
	ck_assert_int_eq(logcap_try_start(), 0);
}

/* Puts the real stderr back (so that reports at exit are seen) and waits
 * for the reader to drain the pipe. */
static inline void logcap_stop(void)
{
	if (logcap.saved_fd2 < 0)
		return;
	dup2(logcap.saved_fd2, 2);
	pthread_join(logcap.reader, NULL);
	close(logcap.saved_fd2);
	logcap.saved_fd2 = -1;
}

static inline void abs_deadline_ms(struct timespec *dl, unsigned ms)
{
	clock_gettime(CLOCK_REALTIME, dl);
	dl->tv_sec += ms / 1000;
	dl->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (dl->tv_nsec >= 1000000000L) {
		dl->tv_sec++;
		dl->tv_nsec -= 1000000000L;
	}
}

/* Waits until *counter (one of logcap's) reaches n; returns its value
 * (less than n only past SF_WAIT_LIMIT_MS). */
static inline unsigned logcap_wait_for(const unsigned *counter, unsigned n)
{
	struct timespec dl;
	abs_deadline_ms(&dl, SF_WAIT_LIMIT_MS);
	pthread_mutex_lock(&logcap.lock);
	while (*counter < n &&
	       pthread_cond_timedwait(&logcap.cond, &logcap.lock, &dl) == 0)
		;
	unsigned got = *counter;
	pthread_mutex_unlock(&logcap.lock);
	return got;
}

/* At least n "joined flight" lines / "waited past" lines seen. */
static inline unsigned logcap_wait_joined(unsigned n)
{
	return logcap_wait_for(&logcap.joined, n);
}

static inline unsigned logcap_wait_expired(unsigned n)
{
	return logcap_wait_for(&logcap.expired, n);
}

static inline unsigned logcap_get(const unsigned *counter)
{
	pthread_mutex_lock(&logcap.lock);
	unsigned v = *counter;
	pthread_mutex_unlock(&logcap.lock);
	return v;
}

/* ---- glibc behind the shim -------------------------------------------- */

typedef int sf_gai_fn(const char *, const char *, const struct addrinfo *,
                      struct addrinfo **);

/* glibc's own getaddrinfo: looked up in libc.so.6 itself, so neither the
 * shim nor the fake is in the way. */
static inline sf_gai_fn *libc_getaddrinfo(void)
{
	void *libc = dlopen("libc.so.6", RTLD_NOLOAD | RTLD_LAZY);
	ck_assert_ptr_nonnull(libc);
	sf_gai_fn *f = (sf_gai_fn *)dlsym(libc, "getaddrinfo");
	ck_assert_ptr_nonnull(f);
	dlclose(libc);
	return f;
}

/* The shim's own getaddrinfo, or NULL when libsfshim.so is not loaded.
 *
 * Why not just call getaddrinfo: under TSan the call lands first in TSan's
 * interceptor, which brackets the real call with ThreadIgnoreBegin/End, so
 * that nothing the shim does inside would be race-checked, and a thread
 * cancelled inside it ends "with ignores enabled" (a TSan report).  Calling
 * the shim's entry point directly keeps its memory accesses checked; the
 * shim still reaches the next getaddrinfo through RTLD_NEXT. */
static inline int sf_find_shim_cb(struct dl_phdr_info *info, size_t size,
                                  void *out)
{
	(void)size;
	if (info->dlpi_name && strstr(info->dlpi_name, "/libsfshim.so")) {
		*(const char **)out = info->dlpi_name;
		return 1;
	}
	return 0;
}

static inline sf_gai_fn *shim_getaddrinfo(void)
{
	const char *path = NULL;
	if (!dl_iterate_phdr(sf_find_shim_cb, &path))
		return NULL;
	void *h = dlopen(path, RTLD_NOLOAD | RTLD_LAZY);
	if (!h)
		return NULL;
	sf_gai_fn *f = (sf_gai_fn *)dlsym(h, "getaddrinfo");
	dlclose(h); /* still loaded: it was preloaded */
	return f;
}

/* What sf_call uses when its fn is NULL: set it to shim_getaddrinfo();
 * NULL means plain getaddrinfo (through any interceptor). */
static sf_gai_fn *sf_default_gai __attribute__((unused));

/* ---- answers as text --------------------------------------------------- */

/* "rc=R" [" errno=E" for EAI_SYSTEM], then per node
 * " {flags,family,socktype,protocol,addrlen,HEXADDR,canon}" in list order:
 * equal strings mean byte-identical answers. */
static inline char *sf_ai_text(int rc, int err, const struct addrinfo *ai)
{
	size_t cap = 256, len = 0;
	char *s = malloc(cap);
	sf_must(s != NULL);
	s[0] = '\0';
#define APPEND(...)                                                        \
	do {                                                               \
		for (;;) {                                                 \
			int k = snprintf(s + len, cap - len, __VA_ARGS__); \
			sf_must(k >= 0);                                   \
			if ((size_t)k < cap - len) {                       \
				len += (size_t)k;                          \
				break;                                     \
			}                                                  \
			cap *= 2;                                          \
			s = realloc(s, cap);                               \
			sf_must(s != NULL);                                \
		}                                                          \
	} while (0)
	APPEND("rc=%d", rc);
	if (rc == EAI_SYSTEM)
		APPEND(" errno=%d", err);
	for (; rc == 0 && ai; ai = ai->ai_next) {
		APPEND(" {%d,%d,%d,%d,%u,", ai->ai_flags, ai->ai_family,
		       ai->ai_socktype, ai->ai_protocol,
		       (unsigned)ai->ai_addrlen);
		const unsigned char *b = (const unsigned char *)ai->ai_addr;
		for (socklen_t i = 0; b && i < ai->ai_addrlen; i++)
			APPEND("%02x", b[i]);
		APPEND(",%s}", ai->ai_canonname ? ai->ai_canonname : "(null)");
	}
#undef APPEND
	return s;
}

/* ---- threads that each make one call ----------------------------------- */

struct sf_call {
	const char *node, *service;
	const struct addrinfo *hints; /* NULL: no hints */
	sf_gai_fn *fn;                /* NULL: getaddrinfo (through the shim) */
	int rc, err;
	char *text; /* sf_ai_text of the answer */
	pthread_t tid;
	bool returned;
};

static inline void *sf_call_main(void *p)
{
	struct sf_call *c = p;
	struct addrinfo *res = NULL;
	sf_gai_fn *fn = c->fn            ? c->fn
	                : sf_default_gai ? sf_default_gai
	                                 : getaddrinfo;
	errno = 0;
	c->rc = fn(c->node, c->service, c->hints, &res);
	c->err = errno;
	c->text = sf_ai_text(c->rc, c->err, res);
	if (c->rc == 0)
		freeaddrinfo(res); /* glibc's: the shim does not hook it */
	c->returned = true;
	return NULL;
}

static inline void sf_call_start(struct sf_call *c)
{
	ck_assert_int_eq(pthread_create(&c->tid, NULL, sf_call_main, c), 0);
}

static inline void sf_call_join(struct sf_call *c)
{
	ck_assert_int_eq(pthread_join(c->tid, NULL), 0);
}

static inline void sf_call_free(struct sf_call *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(c[i].text);
		c[i].text = NULL;
	}
}

/* One call on this thread, as text. */
static inline char *sf_lookup_text(sf_gai_fn *fn, const char *node,
                                   const char *service,
                                   const struct addrinfo *hints)
{
	struct sf_call c = {
		.node = node, .service = service, .hints = hints, .fn = fn
	};
	sf_call_main(&c);
	return c.text;
}

/* ---- bursts against the stand-in resolver ------------------------------ */

static struct sf_fake_api fake __attribute__((unused));
static sf_gai_fn *libc_gai __attribute__((unused));

/* ---- bursts ------------------------------------------------------------ */

/* n callers of one (node, service, hints); coalesce: whether the shim is
 * expected to merge them into one call. */
struct group {
	const char *node, *service;
	const struct addrinfo *hints;
	unsigned n;
	bool coalesce;
	struct sf_call *calls;
	char *ref; /* glibc's own answer (malloc'd), NULL: burst() takes it */
};
#define G(node_, service_, hints_, n_, coalesce_) \
	((struct group){ .node = (node_),         \
	                 .service = (service_),   \
	                 .hints = (hints_),       \
	                 .n = (n_),               \
	                 .coalesce = (coalesce_) })

/* Starts every caller with the gate closed, waits until each is parked in
 * the fake or registered as a follower, opens the gate, joins them all.
 * Asserts the number of upstream calls and of followers. */
static inline void burst(struct group *g, size_t ng)
{
	unsigned parked = 0, joined = 0;
	unsigned long before = fake.sf_fake_calls();
	unsigned joined_before = logcap_get(&logcap.joined);
	for (size_t i = 0; i < ng; i++) {
		if (!g[i].ref) /* glibc's answer, in this process */
			g[i].ref = sf_lookup_text(libc_gai, g[i].node,
			                          g[i].service, g[i].hints);
		g[i].calls = calloc(g[i].n, sizeof(struct sf_call));
		ck_assert_ptr_nonnull(g[i].calls);
		parked += g[i].coalesce ? 1 : g[i].n;
		joined += g[i].coalesce ? g[i].n - 1 : 0;
	}
	fake.sf_fake_gate_close();
	for (size_t i = 0; i < ng; i++) {
		for (unsigned j = 0; j < g[i].n; j++) {
			struct sf_call *c = &g[i].calls[j];
			c->node = g[i].node;
			c->service = g[i].service;
			c->hints = g[i].hints;
			sf_call_start(c);
		}
	}
	ck_assert_uint_eq(fake.sf_fake_wait_parked(parked, SF_WAIT_LIMIT_MS),
	                  parked);
	ck_assert_uint_eq(logcap_wait_joined(joined_before + joined),
	                  joined_before + joined);
	fake.sf_fake_gate_open();
	for (size_t i = 0; i < ng; i++)
		for (unsigned j = 0; j < g[i].n; j++)
			sf_call_join(&g[i].calls[j]);
	ck_assert_uint_eq(fake.sf_fake_calls() - before, parked);
	ck_assert_uint_eq(logcap_get(&logcap.joined) - joined_before, joined);
}

static inline void groups_free(struct group *g, size_t ng)
{
	for (size_t i = 0; i < ng; i++) {
		sf_call_free(g[i].calls, g[i].n);
		free(g[i].calls);
		free(g[i].ref);
	}
}

/* Every caller got glibc's answer, byte for byte. */
static inline void assert_answers_are_ref(const struct group *g, size_t ng)
{
	for (size_t i = 0; i < ng; i++)
		for (unsigned j = 0; j < g[i].n; j++)
			ck_assert_msg(strcmp(g[i].calls[j].text, g[i].ref) == 0,
			              "%s/%s caller %u:\n got %s\nwant %s",
			              g[i].node,
			              g[i].service ? g[i].service : "(null)", j,
			              g[i].calls[j].text, g[i].ref);
}

/* Runs suite s with a fresh process, and so a fresh shim that reads the
 * environment anew, per test; returns how many tests failed. */
static inline int sf_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed;
}

#endif
