/* test_curl_share.c - easy handles attached to libcurl share handles
 * (CURLOPT_SHARE), under LD_PRELOAD, against the HTTP fixture.
 *
 * Run by tests/integration/42-curl-share.sh, like test_curl.c (see there for
 * how bursts are made deterministic: gates in the origin, "joined flight"
 * lines of the shim's debug log, the origin's request log).
 *
 * A share that holds only the DNS cache, TLS sessions, the connection pool
 * and the PSL (and cookies while the handle's cookie engine is off) does
 * not change what a transfer sends or gets: such handles coalesce.  Cookies
 * with the engine on, a share the shim did not see created, or an HSTS
 * cache that may hold entries: the handle makes its own request.  The
 * curl_share_* calls return exactly what libcurl returns. */
#define SF_HTTP_ID_PREFIX "s"
#include "sf_http_util.h"

#include <curl/curl.h>

#include <sys/wait.h>

#define N 8

/* ---- one share for many threads, with the locks libcurl asks for ------ */

static pthread_mutex_t locks[CURL_LOCK_DATA_LAST];

static void lock_cb(CURL *h, curl_lock_data d, curl_lock_access a, void *u)
{
	(void)h, (void)a, (void)u;
	pthread_mutex_lock(&locks[d]);
}

static void unlock_cb(CURL *h, curl_lock_data d, void *u)
{
	(void)h, (void)u;
	pthread_mutex_unlock(&locks[d]);
}

/* A share of the given data types (a list ended by -1), with locks. */
static CURLSH *share_of(int first, ...)
{
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&locks[i], NULL);
	CURLSH *sh = curl_share_init();
	ck_assert_ptr_nonnull(sh);
	ck_assert_int_eq(curl_share_setopt(sh, CURLSHOPT_LOCKFUNC, lock_cb),
	                 CURLSHE_OK);
	ck_assert_int_eq(curl_share_setopt(sh, CURLSHOPT_UNLOCKFUNC, unlock_cb),
	                 CURLSHE_OK);
	va_list ap;
	va_start(ap, first);
	for (int t = first; t >= 0; t = va_arg(ap, int))
		ck_assert_int_eq(curl_share_setopt(sh, CURLSHOPT_SHARE, t),
		                 CURLSHE_OK);
	va_end(ap);
	return sh;
}

/* ---- transfers ---------------------------------------------------------- */

struct xfer {
	const char *url;
	CURLSH *share;
	void (*configure)(CURL *h); /* more options, or NULL */
	pthread_barrier_t *barrier;
	pthread_t tid;
	CURL *h;
	CURLcode rc;
	char *body;
	size_t len;
};

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nmemb;
	x->body = realloc(x->body, x->len + n + 1);
	sf_must(x->body != NULL);
	memcpy(x->body + x->len, p, n);
	x->len += n;
	x->body[x->len] = '\0';
	return n;
}

static void set_common(struct xfer *x, CURL *h)
{
	curl_easy_setopt(h, CURLOPT_URL, x->url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
}

static void *xfer_main(void *arg)
{
	struct xfer *x = arg;
	if (!x->h) {
		x->h = curl_easy_init();
		sf_must(x->h != NULL);
		set_common(x, x->h);
		if (x->share)
			sf_must(curl_easy_setopt(x->h, CURLOPT_SHARE,
			                         x->share) == CURLE_OK);
		if (x->configure)
			x->configure(x->h);
	}
	if (x->barrier)
		pthread_barrier_wait(x->barrier);
	x->rc = curl_easy_perform(x->h);
	return NULL;
}

static void start(struct xfer *x)
{
	ck_assert_int_eq(pthread_create(&x->tid, NULL, xfer_main, x), 0);
}

static void start_together(struct xfer *x, size_t n, pthread_barrier_t *b)
{
	pthread_barrier_init(b, NULL, (unsigned)n);
	for (size_t i = 0; i < n; i++) {
		x[i].barrier = b;
		start(&x[i]);
	}
}

/* N threads on one URL through one share handle, started together. */
static void start_n(struct xfer *x, const char *u, CURLSH *sh,
                    void (*configure)(CURL *), pthread_barrier_t *b)
{
	for (size_t i = 0; i < N; i++) {
		x[i].url = u;
		x[i].share = sh;
		x[i].configure = configure;
	}
	start_together(x, N, b);
}

static void join_all(struct xfer *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(pthread_join(x[i].tid, NULL), 0);
}

static void xfers_free(struct xfer *x, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (x[i].h)
			curl_easy_cleanup(x[i].h);
		free(x[i].body);
	}
}

static char *url(const char *fmt, const char *id)
{
	char *path, *u;
	sf_must(asprintf(&path, fmt, id, id) >= 0);
	sf_must(asprintf(&u, "http://127.0.0.1:%d%s", srv_port, path) >= 0);
	free(path);
	return u;
}

static unsigned joined(void)
{
	return logcap_get(&logcap.joined);
}

/* n threads, one share, one URL at once: one origin request, the same
 * bytes for all. */
static void one_request_for_all(CURLSH *sh, const char *path_fmt,
                                const char *want_body,
                                void (*configure)(CURL *))
{
	char *id = new_id();
	char *u = url(path_fmt, id);
	struct xfer x[N] = { 0 };
	pthread_barrier_t b;
	start_n(x, u, sh, configure, &b);
	ck_assert_uint_eq(logcap_wait_joined(N - 1), N - 1);
	open_gate(id);
	join_all(x, N);
	pthread_barrier_destroy(&b);

	ck_assert_uint_eq(count_requests(id), 1);
	ck_assert_uint_eq(joined(), N - 1);
	for (size_t i = 0; i < N; i++) {
		ck_assert_msg(x[i].rc == CURLE_OK, "[%zu] rc %d", i, x[i].rc);
		ck_assert_uint_eq(x[i].len, x[0].len);
		ck_assert(memcmp(x[i].body, x[0].body, x[0].len) == 0);
	}
	if (want_body)
		ck_assert_str_eq(x[0].body, want_body);
	xfers_free(x, N);
	free(u);
	free(id);
}

/* n threads, one share, one URL at once: each makes its own request. */
static void each_its_own_request(CURLSH *sh, void (*configure)(CURL *))
{
	char *id = new_id();
	char *u = url("/text?id=%s&gate=%s", id);
	struct xfer x[N] = { 0 };
	pthread_barrier_t b;
	start_n(x, u, sh, configure, &b);
	/* All held at the gate: a merged pair would leave fewer. */
	ck_assert_uint_eq(wait_requests(id, N), N);
	open_gate(id);
	join_all(x, N);
	pthread_barrier_destroy(&b);
	ck_assert_uint_eq(count_requests(id), N);
	ck_assert_uint_eq(joined(), 0);
	for (size_t i = 0; i < N; i++) {
		ck_assert_msg(x[i].rc == CURLE_OK, "[%zu] rc %d", i, x[i].rc);
		ck_assert_str_eq(x[i].body, "hello from sf_httpd\n");
	}
	xfers_free(x, N);
	free(u);
	free(id);
}

/* ---- tests -------------------------------------------------------------- */

/* The common threaded-client share: DNS, TLS sessions, connections. */
START_TEST(dns_ssl_connect_share_coalesces)
{
	CURLSH *sh = share_of(CURL_LOCK_DATA_DNS, CURL_LOCK_DATA_SSL_SESSION,
	                      CURL_LOCK_DATA_CONNECT, -1);
	one_request_for_all(sh, "/bytes/100000?id=%s&gate=%s", NULL, NULL);
	ck_assert_int_eq(curl_share_cleanup(sh), CURLSHE_OK);
}
END_TEST

/* Cookies shared, but no handle turns its cookie engine on: libcurl never
 * reads or fills the jar, so no Cookie header and one request. */
START_TEST(cookie_share_engine_off_coalesces)
{
	CURLSH *sh = share_of(CURL_LOCK_DATA_COOKIE, CURL_LOCK_DATA_DNS, -1);
	one_request_for_all(sh, "/cookie?id=%s&gate=%s", "none\n", NULL);
	ck_assert_int_eq(curl_share_cleanup(sh), CURLSHE_OK);
}
END_TEST

static void cookie_engine_on(CURL *h)
{
	curl_easy_setopt(h, CURLOPT_COOKIEFILE, "");
}

static void cookie_jar_on(CURL *h)
{
	curl_easy_setopt(h, CURLOPT_COOKIEJAR, "/dev/null");
}

/* The same share with the cookie engine on: the shared jar is read and
 * filled by each transfer, so each makes its own request. */
START_TEST(cookie_share_engine_on_passes)
{
	CURLSH *sh = share_of(CURL_LOCK_DATA_COOKIE, CURL_LOCK_DATA_DNS, -1);
	each_its_own_request(sh, cookie_engine_on);
	ck_assert_int_eq(curl_share_cleanup(sh), CURLSHE_OK);
}
END_TEST

/* curl_easy_reset keeps the share, its jar and the cookie engine
 * (curl_easy_reset(3)): a reset handle still sends the shared cookie, so
 * it must not follow a handle that sends none. */
START_TEST(cookie_engine_survives_reset)
{
	CURLSH *sh = share_of(CURL_LOCK_DATA_COOKIE, -1);
	char *id1 = new_id(), *id2 = new_id();
	char *u1 = url("/cookie?id=%s&x=%s", id1);
	char *u2 = url("/cookie?id=%s&gate=%s", id2);

	/* r fills the shared jar (Set-Cookie: sid=abc123), then is reset.
	 * COOKIEJAR turns the engine on (COOKIEFILE would too, but libcurl
	 * 7.88 leaks its file list on curl_easy_reset); reset forgets the
	 * jar's file name, so nothing is written. */
	struct xfer r = { .url = u1, .share = sh, .configure = cookie_jar_on };
	start(&r);
	join_all(&r, 1);
	ck_assert_int_eq(r.rc, CURLE_OK);
	curl_easy_reset(r.h);
	free(r.body);
	r.body = NULL;
	r.len = 0;
	r.url = u2;
	set_common(&r, r.h);

	/* l, a plain handle, leads /cookie for id2 (its request is at the
	 * gate), then r starts. */
	struct xfer l = { .url = u2 };
	start(&l);
	ck_assert_uint_eq(wait_requests(id2, 1), 1);
	start(&r);
	ck_assert_msg(wait_requests(id2, 2) == 2,
	              "the reset handle did not make its own request");
	open_gate(id2);
	join_all(&l, 1);
	join_all(&r, 1);
	ck_assert_int_eq(l.rc, CURLE_OK);
	ck_assert_int_eq(r.rc, CURLE_OK);
	ck_assert_str_eq(l.body, "none\n");
	ck_assert_str_eq(r.body, "sid=abc123\n");
	ck_assert_uint_eq(joined(), 0);
	xfers_free(&l, 1);
	xfers_free(&r, 1);
	ck_assert_int_eq(curl_share_cleanup(sh), CURLSHE_OK);
	free(u1);
	free(u2);
	free(id1);
	free(id2);
}
END_TEST

static void follow(CURL *h)
{
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
}

/* An HSTS cache shared with handles that may learn an entry (they follow
 * redirects, which may lead to https): their transfers, and from then on
 * every transfer on that share, depend on that cache.  They coalesce with
 * each other (the leader consults and fills the cache they all use), never
 * with a handle of another share or of none. */
START_TEST(hsts_share_in_use_stays_in_its_share)
{
	CURLSH *sh = share_of(CURL_LOCK_DATA_HSTS, CURL_LOCK_DATA_DNS, -1);
	one_request_for_all(sh, "/text?id=%s&gate=%s", "hello from sf_httpd\n",
	                    follow);
	ck_assert_uint_eq(joined(), N - 1);

	/* a (on the marked share) leads; b (a fresh HSTS share, nothing in
	 * it) must not join a, c (no share) joins b. */
	CURLSH *clean = curl_share_init();
	ck_assert_ptr_nonnull(clean);
	ck_assert_int_eq(curl_share_setopt(clean, CURLSHOPT_SHARE,
	                                   CURL_LOCK_DATA_HSTS),
	                 CURLSHE_OK);
	char *id = new_id();
	char *u = url("/text?id=%s&gate=%s", id);
	struct xfer x[3] = { { .url = u, .share = sh },
		             { .url = u, .share = clean },
		             { .url = u } };
	start(&x[0]);
	ck_assert_uint_eq(wait_requests(id, 1), 1);
	start(&x[1]);
	ck_assert_msg(wait_requests(id, 2) == 2,
	              "a handle of another share joined the marked share's");
	start(&x[2]);
	ck_assert_uint_eq(logcap_wait_joined(N), N);
	open_gate(id);
	join_all(x, 3);
	ck_assert_uint_eq(count_requests(id), 2);
	ck_assert_uint_eq(joined(), N);
	for (size_t i = 0; i < 3; i++) {
		ck_assert_int_eq(x[i].rc, CURLE_OK);
		ck_assert_str_eq(x[i].body, "hello from sf_httpd\n");
	}
	xfers_free(x, 3);
	ck_assert_int_eq(curl_share_cleanup(sh), CURLSHE_OK);
	ck_assert_int_eq(curl_share_cleanup(clean), CURLSHE_OK);
	free(u);
	free(id);
}
END_TEST

/* The curl tool's share (COOKIE, DNS, SSL_SESSION, CONNECT, PSL, HSTS)
 * with plain http:// GETs: harmless, one request. */
START_TEST(tool_share_coalesces)
{
	CURLSH *sh = share_of(CURL_LOCK_DATA_COOKIE, CURL_LOCK_DATA_DNS,
	                      CURL_LOCK_DATA_SSL_SESSION,
	                      CURL_LOCK_DATA_CONNECT, CURL_LOCK_DATA_PSL,
	                      CURL_LOCK_DATA_HSTS, -1);
	one_request_for_all(sh, "/text?id=%s&gate=%s", "hello from sf_httpd\n",
	                    NULL);
	ck_assert_int_eq(curl_share_cleanup(sh), CURLSHE_OK);
}
END_TEST

/* libcurl's own curl_share_init, behind the shim: a share it never saw. */
static CURLSH *foreign_share(void)
{
	void *lib = dlopen("libcurl.so.4", RTLD_NOLOAD | RTLD_LAZY);
	ck_assert_ptr_nonnull(lib);
	CURLSH *(*real_init)(void) = (CURLSH * (*)(void))
	        dlvsym(lib, "curl_share_init", "CURL_OPENSSL_4");
	ck_assert_ptr_nonnull(real_init);
	CURLSH *sh = real_init();
	dlclose(lib);
	ck_assert_ptr_nonnull(sh);
	return sh;
}

/* A share the shim did not see created: passed to libcurl untouched, its
 * handles make their own requests. */
START_TEST(unknown_share_passes)
{
	CURLSH *sh = foreign_share();
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&locks[i], NULL);
	ck_assert_int_eq(curl_share_setopt(sh, CURLSHOPT_LOCKFUNC, lock_cb),
	                 CURLSHE_OK);
	ck_assert_int_eq(curl_share_setopt(sh, CURLSHOPT_UNLOCKFUNC, unlock_cb),
	                 CURLSHE_OK);
	ck_assert_int_eq(curl_share_setopt(sh, CURLSHOPT_SHARE,
	                                   CURL_LOCK_DATA_DNS),
	                 CURLSHE_OK);
	each_its_own_request(sh, NULL);
	ck_assert_int_eq(curl_share_cleanup(sh), CURLSHE_OK);
}
END_TEST

/* curl_share_cleanup of a share still in use returns CURLSHE_IN_USE and
 * changes nothing: its handles keep coalescing.  Every curl_share_* answer
 * is libcurl's own. */
START_TEST(share_api_answers_are_libcurls)
{
	ck_assert_int_eq(curl_share_cleanup(NULL), CURLSHE_INVALID);
	ck_assert_int_eq(curl_share_setopt(NULL, CURLSHOPT_SHARE,
	                                   CURL_LOCK_DATA_DNS),
	                 CURLSHE_INVALID);
	CURLSH *sh = share_of(CURL_LOCK_DATA_DNS, -1);
	ck_assert_int_eq(curl_share_setopt(sh, CURLSHOPT_SHARE, 99),
	                 CURLSHE_BAD_OPTION);
	ck_assert_int_eq(curl_share_setopt(sh, (CURLSHoption)77, NULL),
	                 CURLSHE_BAD_OPTION);
	ck_assert_int_eq(curl_share_setopt(sh, CURLSHOPT_USERDATA, NULL),
	                 CURLSHE_OK);

	CURL *h = curl_easy_init();
	ck_assert_ptr_nonnull(h);
	ck_assert_int_eq(curl_easy_setopt(h, CURLOPT_SHARE, sh), CURLE_OK);
	ck_assert_int_eq(curl_share_cleanup(sh), CURLSHE_IN_USE);
	ck_assert_int_eq(curl_share_setopt(sh, CURLSHOPT_SHARE,
	                                   CURL_LOCK_DATA_COOKIE),
	                 CURLSHE_IN_USE);
	one_request_for_all(sh, "/text?id=%s&gate=%s", "hello from sf_httpd\n",
	                    NULL);
	/* Detached, it may change and go. */
	ck_assert_int_eq(curl_easy_setopt(h, CURLOPT_SHARE, NULL), CURLE_OK);
	ck_assert_int_eq(curl_share_setopt(sh, CURLSHOPT_UNSHARE,
	                                   CURL_LOCK_DATA_DNS),
	                 CURLSHE_OK);
	ck_assert_int_eq(curl_share_cleanup(sh), CURLSHE_OK);
	curl_easy_cleanup(h);
}
END_TEST

/* A share made before fork is known in the child (a prefork server's
 * workers): the child's threads on it coalesce.  The child's log lines
 * reach this process's log reader through the inherited fd 2.  Not under
 * TSan: it does not let a child of a threaded process start threads
 * (die_after_fork). */
#ifndef __SANITIZE_THREAD__
START_TEST(share_known_after_fork)
{
	CURLSH *sh = share_of(CURL_LOCK_DATA_DNS, CURL_LOCK_DATA_CONNECT, -1);
	char *id = new_id();
	char *u = url("/bytes/50000?id=%s&gate=%s", id);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct xfer x[N] = { 0 };
		pthread_barrier_t b;
		start_n(x, u, sh, NULL, &b);
		join_all(x, N);
		int bad = 0;
		for (size_t i = 0; i < N; i++)
			bad += x[i].rc != CURLE_OK || x[i].len != 50000 ||
			       memcmp(x[i].body, x[0].body, x[0].len) != 0;
		_exit(bad ? 1 : 0);
	}
	ck_assert_uint_eq(logcap_wait_joined(N - 1), N - 1);
	open_gate(id);
	int st = 0;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	              "child: status %#x", st);
	ck_assert_uint_eq(count_requests(id), 1);
	ck_assert_int_eq(curl_share_cleanup(sh), CURLSHE_OK);
	free(u);
	free(id);
}
END_TEST
#endif

static void setup(void)
{
	const char *port = getenv("SF_HTTP_PORT");
	srv_log = getenv("SF_HTTPD_LOG");
	ck_assert_msg(
	        port && srv_log,
	        "SF_HTTP_PORT / SF_HTTPD_LOG not set (see 42-curl-share.sh)");
	srv_port = atoi(port);
	Dl_info di;
	void *sinit = dlsym(RTLD_DEFAULT, "curl_easy_perform");
	ck_assert_msg(sinit && dladdr(sinit, &di) && di.dli_fname &&
	                      strstr(di.dli_fname, "libsfshim.so"),
	              "libsfshim.so is not preloaded (see 42-curl-share.sh)");
	setenv("SFSHIM_LOG", "debug", 1);
	logcap_start();
}

static void teardown(void)
{
	logcap_stop();
}

#define ADD(tc, t)                             \
	do {                                   \
		if (wanted(#t))                \
			tcase_add_test(tc, t); \
	} while (0)

int main(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 2;
	Suite *s = suite_create("curl_share");
	TCase *tc = tcase_create("curl_share");
	tcase_add_checked_fixture(tc, setup, teardown);
	ADD(tc, dns_ssl_connect_share_coalesces);
	ADD(tc, cookie_share_engine_off_coalesces);
	ADD(tc, cookie_share_engine_on_passes);
	ADD(tc, cookie_engine_survives_reset);
	ADD(tc, hsts_share_in_use_stays_in_its_share);
	ADD(tc, tool_share_coalesces);
	ADD(tc, unknown_share_passes);
	ADD(tc, share_api_answers_are_libcurls);
#ifndef __SANITIZE_THREAD__
	ADD(tc, share_known_after_fork);
#endif
	suite_add_tcase(s, tc);
	int failed = sf_run_suite(s);
	curl_global_cleanup();
	return failed ? 1 : 0;
}
