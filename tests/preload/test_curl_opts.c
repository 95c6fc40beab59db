/* test_curl_opts.c - option semantics of the libcurl hook, under LD_PRELOAD.
 *
 * Run by tests/integration/33-curl-opts.sh with tests/fixtures/sf_httpd on
 * 127.0.0.1 (SF_HTTP_PORT, SF_HTTPD_LOG) and the shim preloaded; SFSHIM_LOG
 * is debug and fd 2 is captured (sf_preload_util.h) so that the test waits
 * for "joined flight" lines instead of sleeping.
 *
 *  - setopt order: the last setopt wins across TIMEOUT / TIMEOUT_MS, and
 *    HTTPGET=1 after NOBODY or POST makes a reused handle a GET again
 *    (issue 6, defect 4);
 *  - a NULL MIMEPOST or HTTPPOST still sends a POST, never coalesced with
 *    GETs (issue 7, defect 5; the full table is test_curl_method.c);
 *  - an option id no table knows reaches libcurl untouched, its answer
 *    comes back, and the handle never coalesces (issue 7, defect 8).
 *
 * A follower's deadline is exercised with the origin's delay=MS (the
 * origin answers that late), never with a sleep in the test.
 * SF_TEST_ONLY=name[,name] runs only the named tests. */
#define SF_HTTP_ID_PREFIX "o"
#include "sf_http_util.h"

#include <curl/curl.h>

#define N 6

/* ---- one transfer per thread ------------------------------------------- */

struct xfer {
	char url[256];
	void (*configure)(struct xfer *x, CURL *h);
	CURL *h; /* when set before start: a reused handle */
	pthread_barrier_t *barrier;
	pthread_t tid;
	CURLcode rc;
	char errbuf[CURL_ERROR_SIZE];
	size_t body_len;
	char method[32]; /* X-Method of /method */
	uint64_t t_start, t_end;
};

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
	(void)p;
	((struct xfer *)arg)->body_len += size * nmemb;
	return size * nmemb;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nmemb;
	if (n > 10 && strncasecmp(p, "X-Method: ", 10) == 0)
		snprintf(x->method, sizeof(x->method), "%.*s",
		         (int)strcspn(p + 10, "\r\n"), p + 10);
	return n;
}

static size_t on_read(char *p, size_t size, size_t nmemb, void *arg)
{
	(void)p;
	(void)size;
	(void)nmemb;
	(void)arg;
	return 0;
}

static void *xfer_main(void *arg)
{
	struct xfer *x = arg;
	CURL *h = x->h ? x->h : (x->h = curl_easy_init());
	sf_must(h != NULL);
	curl_easy_setopt(h, CURLOPT_URL, x->url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
	if (x->configure)
		x->configure(x, h);
	if (x->barrier)
		pthread_barrier_wait(x->barrier);
	x->t_start = now_ns();
	x->rc = curl_easy_perform(h);
	x->t_end = now_ns();
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

static void join(struct xfer *x)
{
	ck_assert_int_eq(pthread_join(x->tid, NULL), 0);
}

static void cleanup(struct xfer *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (x[i].h)
			curl_easy_cleanup(x[i].h);
}

/* Every x[i].url: the origin, then fmt with id twice (id=..., gate=...). */
static void set_url(struct xfer *x, size_t n, const char *fmt, const char *id)
{
	for (size_t i = 0; i < n; i++) {
		int k = snprintf(x[i].url, sizeof(x[i].url),
		                 "http://127.0.0.1:%d", srv_port);
		snprintf(x[i].url + k, sizeof(x[i].url) - (size_t)k, fmt, id,
		         id);
	}
}

/* ---- setopt order: timeouts --------------------------------------------- */

static void opt_ms300_then_0(struct xfer *x, CURL *h)
{
	(void)x;
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 300L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 0L); /* last: no limit */
}

static void opt_ms100_then_30s(struct xfer *x, CURL *h)
{
	(void)x;
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 100L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L); /* last: 30 s */
}

static void opt_30s_then_ms100(struct xfer *x, CURL *h)
{
	(void)x;
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 100L); /* last: 100 ms */
}

static void opt_dup_of_ms100_then_30s(struct xfer *x, CURL *h)
{
	/* The order survives curl_easy_duphandle: the dup is what performs. */
	opt_ms100_then_30s(x, h);
	CURL *d = curl_easy_duphandle(h);
	sf_must(d != NULL);
	curl_easy_cleanup(h);
	x->h = d;
}

static const struct timeout_case {
	const char *name;
	void (*configure)(struct xfer *x, CURL *h);
	bool times_out; /* the follower's own limit (100 or 300 ms) applies */
} timeout_cases[] = {
	{ "TIMEOUT_MS=300, TIMEOUT=0", opt_ms300_then_0, false },
	{ "TIMEOUT_MS=100, TIMEOUT=30", opt_ms100_then_30s, false },
	{ "TIMEOUT=30, TIMEOUT_MS=100", opt_30s_then_ms100, true },
	{ "dup of TIMEOUT_MS=100, TIMEOUT=30", opt_dup_of_ms100_then_30s,
	  false },
};

/* A leader holds the flight while the origin takes 700 ms to answer; the
 * follower's limit is whatever libcurl would make of its setopt order. */
START_TEST(follower_timeout_is_the_last_setopt)
{
	const struct timeout_case *c = &timeout_cases[_i];
	char *id = new_id();
	struct xfer x[2] = { 0 };
	set_url(x, 2, "/bytes/1000?id=%s&delay=700&x=%s", id);
	x[1].configure = c->configure;
	if (c->configure == opt_dup_of_ms100_then_30s) {
		/* configure runs on the thread: set the dup up front */
		x[1].h = curl_easy_init();
		x[1].configure = NULL;
		curl_easy_setopt(x[1].h, CURLOPT_URL, x[1].url);
		opt_dup_of_ms100_then_30s(&x[1], x[1].h);
	}
	start(&x[0]);
	ck_assert_uint_eq(wait_requests(id, 1), 1);
	start(&x[1]);
	ck_assert_uint_eq(logcap_wait_joined(1), 1);
	join(&x[0]);
	join(&x[1]);
	ck_assert_int_eq(x[0].rc, CURLE_OK);
	if (c->times_out) {
		ck_assert_msg(x[1].rc == CURLE_OPERATION_TIMEDOUT,
		              "%s: rc %d (%s)", c->name, x[1].rc, x[1].errbuf);
	} else {
		ck_assert_msg(x[1].rc == CURLE_OK, "%s: rc %d (%s)", c->name,
		              x[1].rc, x[1].errbuf);
		ck_assert_uint_eq(x[1].body_len, 1000);
	}
	ck_assert_uint_eq(count_requests(id), 1);
	cleanup(x, 2);
	free(id);
}
END_TEST

/* ---- setopt order: the method on a reused handle ------------------------ */

static void opt_nobody(struct xfer *x, CURL *h)
{
	(void)x;
	curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
}

static void opt_post(struct xfer *x, CURL *h)
{
	(void)x;
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, "a=1");
}

static void opt_upload(struct xfer *x, CURL *h)
{
	(void)x;
	curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(h, CURLOPT_INFILESIZE, 0L);
}

static void opt_httpget(struct xfer *x, CURL *h)
{
	(void)x;
	curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
}

static const struct reuse_case {
	const char *method;
	void (*before)(struct xfer *x, CURL *h);
} reuse_cases[] = {
	{ "HEAD", opt_nobody },
	{ "POST", opt_post },
	{ "PUT", opt_upload },
};

/* Each handle first makes its own HEAD/POST/PUT, then HTTPGET=1 and a burst
 * of GETs of one URL: one GET reaches the origin. */
START_TEST(httpget_after_other_method_coalesces)
{
	const struct reuse_case *c = &reuse_cases[_i];
	char *id = new_id();
	struct xfer x[N] = { 0 };
	set_url(x, N, "/method?id=%s&x=%s", id);
	for (size_t i = 0; i < N; i++) {
		x[i].configure = c->before;
		start(&x[i]);
		join(&x[i]);
		ck_assert_int_eq(x[i].rc, CURLE_OK);
		ck_assert_str_eq(x[i].method, c->method);
	}
	ck_assert_uint_eq(count_method_requests(c->method, id), N);
	char *gid = new_id();
	set_url(x, N, "/method?id=%s&gate=%s", gid);
	for (size_t i = 0; i < N; i++) {
		x[i].configure = opt_httpget;
		x[i].method[0] = '\0';
	}
	start(&x[0]);
	ck_assert_uint_eq(wait_requests(gid, 1), 1);
	pthread_barrier_t b;
	start_together(x + 1, N - 1, &b);
	ck_assert_uint_eq(logcap_wait_joined(N - 1), N - 1);
	open_gate(gid);
	for (size_t i = 0; i < N; i++) {
		join(&x[i]);
		ck_assert_int_eq(x[i].rc, CURLE_OK);
		ck_assert_str_eq(x[i].method, "GET");
	}
	ck_assert_uint_eq(count_method_requests("GET", gid), 1);
	pthread_barrier_destroy(&b);
	cleanup(x, N);
	free(gid);
	free(id);
}
END_TEST

/* ---- a NULL form or MIME post is still a POST ---------------------------- */

static void opt_null_mimepost(struct xfer *x, CURL *h)
{
	(void)x;
	curl_easy_setopt(h, CURLOPT_MIMEPOST, NULL);
}

static void opt_null_httppost(struct xfer *x, CURL *h)
{
	(void)x;
	curl_easy_setopt(h, CURLOPT_HTTPPOST, NULL);
}

static void (*const null_post_cases[])(struct xfer *, CURL *) = {
	opt_null_mimepost,
	opt_null_httppost,
};

/* A GET leads; N-1 handles with a NULL MIMEPOST/HTTPPOST start while it is
 * held: every POST reaches the origin as a POST, none gets the GET's
 * answer. */
START_TEST(null_form_post_is_a_post)
{
	char *id = new_id();
	struct xfer x[N] = { 0 };
	set_url(x, N, "/method?id=%s&gate=%s", id);
	start(&x[0]);
	ck_assert_uint_eq(wait_requests(id, 1), 1);
	for (size_t i = 1; i < N; i++)
		x[i].configure = null_post_cases[_i];
	pthread_barrier_t b;
	start_together(x + 1, N - 1, &b);
	ck_assert_uint_eq(wait_requests(id, N), N);
	open_gate(id);
	for (size_t i = 0; i < N; i++) {
		join(&x[i]);
		ck_assert_int_eq(x[i].rc, CURLE_OK);
		ck_assert_str_eq(x[i].method, i ? "POST" : "GET");
	}
	ck_assert_uint_eq(count_method_requests("POST", id), N - 1);
	ck_assert_uint_eq(count_method_requests("GET", id), 1);
	pthread_barrier_destroy(&b);
	cleanup(x, N);
	free(id);
}
END_TEST

/* ---- option ids nobody knows --------------------------------------------- */

/* One id per argument range, each past anything libcurl defines. */
static const CURLoption unknown_ids[] = { 9999, 19999, 29999, 39999, 40999 };

static void opt_unknown(struct xfer *x, CURL *h)
{
	(void)x;
	/* 1L where libcurl may expect a pointer: the shim must not look. */
	sf_must(curl_easy_setopt(h, (CURLoption)40999, 1L) ==
	        CURLE_UNKNOWN_OPTION);
}

START_TEST(unknown_option_reaches_libcurl)
{
	CURL *h = curl_easy_init();
	ck_assert_ptr_nonnull(h);
	for (size_t i = 0; i < sizeof(unknown_ids) / sizeof(unknown_ids[0]);
	     i++)
		ck_assert_int_eq(curl_easy_setopt(h, unknown_ids[i], 1L),
		                 CURLE_UNKNOWN_OPTION);
	curl_easy_cleanup(h);

	/* Such a handle never coalesces: N GETs of one URL, N requests. */
	char *id = new_id();
	struct xfer x[N] = { 0 };
	set_url(x, N, "/bytes/100?id=%s&gate=%s", id);
	for (size_t i = 0; i < N; i++)
		x[i].configure = opt_unknown;
	pthread_barrier_t b;
	start_together(x, N, &b);
	ck_assert_uint_eq(wait_requests(id, N), N);
	open_gate(id);
	for (size_t i = 0; i < N; i++) {
		join(&x[i]);
		ck_assert_int_eq(x[i].rc, CURLE_OK);
		ck_assert_uint_eq(x[i].body_len, 100);
	}
	ck_assert_uint_eq(count_requests(id), N);
	pthread_barrier_destroy(&b);
	cleanup(x, N);
	free(id);
}
END_TEST

/* ---- fixture ------------------------------------------------------------- */

static void setup(void)
{
	const char *port = getenv("SF_HTTP_PORT");
	srv_log = getenv("SF_HTTPD_LOG");
	ck_assert_msg(port && srv_log, "SF_HTTP_PORT / SF_HTTPD_LOG not set");
	srv_port = atoi(port);
	Dl_info di;
	void *perform = dlsym(RTLD_DEFAULT, "curl_easy_perform");
	ck_assert_msg(perform && dladdr(perform, &di) && di.dli_fname &&
	                      strstr(di.dli_fname, "libsfshim.so"),
	              "libsfshim.so is not preloaded (see 33-curl-opts.sh)");
	setenv("SFSHIM_LOG", "debug", 1);
	unsetenv("SFSHIM_WAIT_MS");
	logcap_start();
}

static void teardown(void)
{
	logcap_stop();
}

#define ADD_LOOP(tc, t, cases)                                                 \
	do {                                                                   \
		if (wanted(#t))                                                \
			tcase_add_loop_test(tc, t, 0,                          \
			                    sizeof(cases) / sizeof(cases[0])); \
	} while (0)

int main(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 2;
	Suite *s = suite_create("curl_opts");
	TCase *tc = tcase_create("curl_opts");
	tcase_add_checked_fixture(tc, setup, teardown);
	ADD_LOOP(tc, follower_timeout_is_the_last_setopt, timeout_cases);
	ADD_LOOP(tc, httpget_after_other_method_coalesces, reuse_cases);
	ADD_LOOP(tc, null_form_post_is_a_post, null_post_cases);
	if (wanted("unknown_option_reaches_libcurl"))
		tcase_add_test(tc, unknown_option_reaches_libcurl);
	suite_add_tcase(s, tc);
	int failed = sf_run_suite(s);
	curl_global_cleanup();
	return failed ? 1 : 0;
}
