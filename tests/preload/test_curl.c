/* test_curl.c - the libcurl hook against the HTTP fixture, under LD_PRELOAD.
 *
 * Run by tests/integration/30-curl.sh as
 *     SF_HTTP_PORT=... SF_HTTPD_LOG=... LD_PRELOAD="[sanitizer runtime] libsfshim.so"
 * with tests/fixtures/sf_httpd listening on 127.0.0.1 (in a private network
 * namespace).  The fixture appends
 * one "METHOD TARGET" line per request to SF_HTTPD_LOG, so the number of
 * requests that reached the origin is the number of lines naming a burst's
 * unique id.
 *
 * Determinism without sleeping:
 *  - every URL carries gate=NAME: the origin holds its response until
 *    GET /_open?gate=NAME, which the test sends on a raw socket (libcurl
 *    itself is intercepted);
 *  - the shim runs with SFSHIM_LOG=debug and fd 2 is captured through a
 *    pipe (sf_preload_util.h): it prints "URL: joined flight" once per
 *    registered follower, so the test opens the gate only when all the
 *    followers it expects are waiting, and the counts asserted are exact;
 *  - "this thread is the leader" is arranged by starting it alone and
 *    waiting (inotify, no polling) until its request is in the origin's log:
 *    the shim joins the flight before making the request.
 *
 * The shim reads its configuration once per process.  Check runs each test
 * in a fresh fork (CK_FORK, forced in main) of a runner that never calls
 * libcurl's easy API, so a test that setenv()s SFSHIM_* before its first
 * curl_easy_init gets that configuration; env_is_read_per_test checks it.
 *
 * Timeouts: CK_DEFAULT_TIMEOUT is set by the script (sanitizers are slow).
 * SF_TEST_ONLY=name[,name] runs only the named tests. */
#define SF_HTTP_ID_PREFIX "p"
#include "sf_http_util.h"

#include <curl/curl.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <sched.h>
#include <setjmp.h>
#include <sys/socket.h>
#include <sys/stat.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

#define N_SAME 20 /* the main coalescing burst */
#define N 8       /* the other bursts */
#define N_BIG_FOLLOWERS (SANITIZED ? 10 : 50)

/* /bytes/N bodies from sf_httpd: byte i is ALPHABET[i % 36]. */
static const char ALPHABET[] = "0123456789abcdefghijklmnopqrstuvwxyz";

/* ---- growing buffers ------------------------------------------------------ */

struct sbuf {
	char *p; /* NUL-terminated */
	size_t len, cap;
};

static void sbuf_add(struct sbuf *b, const void *data, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = realloc(b->p, cap);
		sf_must(b->p != NULL);
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sbuf_printf(struct sbuf *b, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static void sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
	char *s;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	sf_must(n >= 0);
	sbuf_add(b, s, (size_t)n);
	free(s);
}

static const char *sbuf_str(const struct sbuf *b)
{
	return b->p ? b->p : "";
}

/* ---- the origin --------------------------------------------------------- */

/* "http://127.0.0.1:PORT" + the formatted path; free() it. */
static char *url(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *url(const char *fmt, ...)
{
	struct sbuf b = { 0 };
	char *path;
	va_list ap;
	va_start(ap, fmt);
	sf_must(vasprintf(&path, fmt, ap) >= 0);
	va_end(ap);
	sbuf_printf(&b, "http://127.0.0.1:%d%s", srv_port, path);
	free(path);
	return b.p;
}

/* A port on 127.0.0.1 where nothing listens. */
static int closed_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET,
		                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* ---- one transfer on its own thread ------------------------------------ */

struct xfer;
/* Where a callback's data goes when the same function serves WRITEDATA and
 * HEADERDATA (see header_data_goes_to_write_function). */
struct sink {
	struct xfer *x;
	bool header;
};

struct xfer {
	/* What to do, set before the thread starts. */
	const char *url;
	void (*configure)(struct xfer *x, CURL *h); /* more options, or NULL */
	const char *arg;   /* for configure: a header, a cookie... */
	size_t fail_after; /* the write callback refuses past this many
	                           body bytes (0: never) */
	bool pattern;      /* the body is /bytes/N: check it, keep a hash */
	bool plain;        /* no WRITEFUNCTION/HEADERFUNCTION of ours */
	bool spill_probe;  /* look for the shim's spill file mid-body */
	bool any_version;  /* pattern with ver=1: the first byte tells
	                           which version, the rest must match it */
	/* Called in the write callback before a piece is taken (scripted
	 * hand-overs); the piece is refused if it returns false. */
	bool (*on_piece)(struct xfer *x, size_t len);
	void (*on_line)(struct xfer *x); /* in the header callback */
	pthread_barrier_t *barrier;

	/* What happened. */
	pthread_t tid;
	pid_t ostid; /* the kernel's id of its thread */
	CURL *h;
	CURLcode rc;
	char errbuf[CURL_ERROR_SIZE];
	struct sbuf hdr;  /* header lines as the header callback got them */
	unsigned nhdr;    /* header callback calls */
	struct sbuf body; /* unless pattern */
	size_t body_len, bad_bytes, max_write;
	uint64_t hash; /* FNV-1a of the body */
	uint64_t t_start, t_first_body, t_end;
	int progress_calls;
	bool saw_spill;
	unsigned shift;      /* any_version: the version seen */
	size_t max_hdr_line; /* longest header callback call */
	unsigned pieces;     /* write callback calls */
	/* Mid-transfer answers, read in the first write callback call. */
	bool mid_seen;
	long mid_code;
	char mid_type[64], mid_hdr[64];
	curl_off_t mid_clen;

	/* Answers read on the thread right after perform. */
	char *info;     /* getinfo answers that every sharer must share */
	char *hapi;     /* the header API's view of the response */
	char *xfixture; /* curl_easy_header(X-Fixture) value */
	double total_time;
	void *priv; /* CURLINFO_PRIVATE */

	/* For configure functions. */
	struct curl_slist *slist;
	CURLSH *share;
	FILE *wfile, *hfile;
	size_t put_off;
	struct sink sink_body, sink_hdr;
};

static uint64_t fnv(uint64_t h, const char *p, size_t n)
{
	if (!h)
		h = 14695981039346656037u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 1099511628211u;
	return h;
}

/* Is the shim's spill file (an unlinked file in our TMPDIR) open? */
static bool spill_file_open(void)
{
	const char *dir = getenv("TMPDIR");
	DIR *d = opendir("/proc/self/fd");
	bool found = false;
	struct dirent *e;
	while (dir && d && !found && (e = readdir(d))) {
		char link[300], target[PATH_MAX];
		snprintf(link, sizeof(link), "/proc/self/fd/%s", e->d_name);
		ssize_t n = readlink(link, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		found = strncmp(target, dir, strlen(dir)) == 0 &&
		        strstr(target, "(deleted)") != NULL;
	}
	if (d)
		closedir(d);
	return found;
}

/* Scripted sequences wait for other transfers' progress on this. */
static pthread_mutex_t prog_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t prog_cv = PTHREAD_COND_INITIALIZER;

/* Waits until *v >= n (read under prog_mu); false past the limit. */
static bool prog_wait(const volatile size_t *v, size_t n)
{
	struct timespec dl;
	abs_deadline_ms(&dl, SF_WAIT_LIMIT_MS);
	pthread_mutex_lock(&prog_mu);
	int rc = 0;
	while (*v < n && rc == 0)
		rc = pthread_cond_timedwait(&prog_cv, &prog_mu, &dl);
	bool ok = *v >= n;
	pthread_mutex_unlock(&prog_mu);
	return ok;
}

static void take_body(struct xfer *x, const char *p, size_t len)
{
	if (x->any_version && !x->body_len && len) {
		const char *c = strchr(ALPHABET, p[0]);
		x->shift = c ? (unsigned)(c - ALPHABET) : 0;
	}
	if (x->pattern) {
		for (size_t i = 0; i < len; i++)
			x->bad_bytes +=
			        p[i] !=
			        ALPHABET[(x->body_len + i + x->shift) % 36];
	} else {
		sbuf_add(&x->body, p, len);
	}
	x->hash = fnv(x->hash, p, len);
	x->body_len += len;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * nmemb;
	if (!x->t_first_body && len)
		x->t_first_body = now_ns();
	if (len > x->max_write)
		x->max_write = len;
	if (!x->mid_seen) {
		/* libcurl answers these mid-transfer, inside its callbacks. */
		char *ct = NULL;
		struct curl_header *hh = NULL;
		x->mid_seen = true;
		curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->mid_code);
		curl_easy_getinfo(x->h, CURLINFO_CONTENT_TYPE, &ct);
		snprintf(x->mid_type, sizeof(x->mid_type), "%s",
		         ct ? ct : "(null)");
		curl_easy_getinfo(x->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
		                  &x->mid_clen);
		snprintf(x->mid_hdr, sizeof(x->mid_hdr), "%s",
		         curl_easy_header(x->h, "Content-Type", 0, CURLH_HEADER,
		                          -1, &hh) == CURLHE_OK &&
		                         hh
		                 ? hh->value
		                 : "(missing)");
	}
	if (x->on_piece && !x->on_piece(x, len))
		return len - 1;
	if (x->fail_after && x->body_len + len > x->fail_after)
		return len - 1; /* short: libcurl's CURLE_WRITE_ERROR */
	if (x->spill_probe && x->body_len < (2u << 20) &&
	    x->body_len + len >= (2u << 20))
		x->saw_spill = spill_file_open();
	pthread_mutex_lock(&prog_mu);
	take_body(x, p, len);
	x->pieces++;
	pthread_cond_broadcast(&prog_cv);
	pthread_mutex_unlock(&prog_mu);
	return len;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	if (x->on_line)
		x->on_line(x);
	x->nhdr++;
	if (size * nmemb > x->max_hdr_line)
		x->max_hdr_line = size * nmemb;
	sbuf_add(&x->hdr, p, size * nmemb);
	return size * nmemb;
}

/* The getinfo answers that a follower must share with its leader, as text:
 * equal strings mean equal answers. */
static char *info_text(CURL *h)
{
	long code = -1, hsize = -1, redirs = -1, version = -1, port = -1;
	char *ctype = NULL, *eurl = NULL, *method = NULL, *ip = NULL,
	     *scheme = NULL;
	curl_off_t size = -2, clen = -2;
	int rc[12] = {
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code),
		curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ctype),
		curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &eurl),
		curl_easy_getinfo(h, CURLINFO_EFFECTIVE_METHOD, &method),
		curl_easy_getinfo(h, CURLINFO_SIZE_DOWNLOAD_T, &size),
		curl_easy_getinfo(h, CURLINFO_HEADER_SIZE, &hsize),
		curl_easy_getinfo(h, CURLINFO_REDIRECT_COUNT, &redirs),
		curl_easy_getinfo(h, CURLINFO_HTTP_VERSION, &version),
		curl_easy_getinfo(h, CURLINFO_PRIMARY_IP, &ip),
		curl_easy_getinfo(h, CURLINFO_PRIMARY_PORT, &port),
		curl_easy_getinfo(h, CURLINFO_SCHEME, &scheme),
		curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &clen),
	};
	struct sbuf b = { 0 };
	sbuf_printf(&b, "rcs=");
	for (int i = 0; i < 12; i++)
		sbuf_printf(&b, "%d,", rc[i]);
	sbuf_printf(&b,
	            " code=%ld type=%s url=%s method=%s size=%" PRId64
	            " header_size=%ld redirects=%ld version=%ld ip=%s port=%ld"
	            " scheme=%s length=%" PRId64,
	            code, ctype ? ctype : "(null)", eurl ? eurl : "(null)",
	            method ? method : "(null)", (int64_t)size, hsize, redirs,
	            version, ip ? ip : "(null)", port,
	            scheme ? scheme : "(null)", (int64_t)clen);
	return b.p;
}

/* What curl_easy_header / curl_easy_nextheader say, for every request of
 * the transfer (one per redirect hop) and for the default (-1, the last). */
static char *header_api_text(CURL *h, char **xfixture)
{
	struct sbuf b = { 0 };
	struct curl_header *hh = NULL;
	CURLHcode rc =
	        curl_easy_header(h, "X-Fixture", 0, CURLH_HEADER, -1, &hh);
	*xfixture = strdup(rc == CURLHE_OK && hh ? hh->value : "(missing)");
	sbuf_printf(&b, "X-Fixture: rc=%d\n", (int)rc);
	long redirs = 0;
	curl_easy_getinfo(h, CURLINFO_REDIRECT_COUNT, &redirs);
	for (int req = -1; req <= redirs; req++) {
		for (struct curl_header *p =
		             curl_easy_nextheader(h, CURLH_HEADER, req, NULL);
		     p; p = curl_easy_nextheader(h, CURLH_HEADER, req, p))
			sbuf_printf(&b, "[%d] %s: %s (%zu/%zu, %#x)\n", req,
			            p->name, p->value, p->index, p->amount,
			            p->origin);
	}
	return b.p;
}

static void *xfer_main(void *arg)
{
	struct xfer *x = arg;
	/* Only the perform may be cancelled (leader_cancelled_promotes...). */
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
	__atomic_store_n(&x->ostid, gettid(), __ATOMIC_RELEASE);
	CURL *h = x->h = curl_easy_init();
	sf_must(h != NULL);
	curl_easy_setopt(h, CURLOPT_URL, x->url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	if (!x->plain) {
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
		curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
		curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
	}
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(h, CURLOPT_PRIVATE, x);
	if (x->configure)
		x->configure(x, h);
	if (x->barrier)
		pthread_barrier_wait(x->barrier);

	x->t_start = now_ns();
	pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
	x->rc = curl_easy_perform(h);
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
	x->t_end = now_ns();

	x->info = info_text(h);
	x->hapi = header_api_text(h, &x->xfixture);
	curl_easy_getinfo(h, CURLINFO_TOTAL_TIME, &x->total_time);
	curl_easy_getinfo(h, CURLINFO_PRIVATE, &x->priv);
	return NULL;
}

static void start(struct xfer *x)
{
	ck_assert_int_eq(pthread_create(&x->tid, NULL, xfer_main, x), 0);
}

/* Starts n transfers that call curl_easy_perform at the same moment. */
static void start_together(struct xfer *x, size_t n)
{
	pthread_barrier_t *b = malloc(sizeof(*b));
	sf_must(b != NULL);
	pthread_barrier_init(b, NULL, (unsigned)n);
	for (size_t i = 0; i < n; i++) {
		x[i].barrier = b;
		start(&x[i]);
	}
}

/* Starts x alone and returns once its request reached the origin: x is
 * then the leader of the flight for its URL (the shim joins before making
 * the request), and whoever starts later follows it. */
static void start_leader(struct xfer *x, const char *id)
{
	start(x);
	ck_assert_uint_eq(wait_requests(id, 1), 1);
}

static void join(struct xfer *x)
{
	void *ret;
	ck_assert_int_eq(pthread_join(x->tid, &ret), 0);
	ck_assert_ptr_eq(ret, NULL);
}

static void join_all(struct xfer *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		join(&x[i]);
}

static struct xfer *xfers(size_t n, const char *u)
{
	struct xfer *x = calloc(n, sizeof(*x));
	sf_must(x != NULL);
	for (size_t i = 0; i < n; i++)
		x[i].url = u;
	return x;
}

/* n transfers of the /bytes/N body u, each checking it (pattern). */
static struct xfer *pattern_xfers(size_t n, const char *u)
{
	struct xfer *x = xfers(n, u);
	for (size_t i = 0; i < n; i++)
		x[i].pattern = true;
	return x;
}

static void xfers_free(struct xfer *x, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (x[i].h)
			curl_easy_cleanup(x[i].h);
		if (x[i].share)
			curl_share_cleanup(x[i].share);
		curl_slist_free_all(x[i].slist);
		if (x[i].wfile)
			fclose(x[i].wfile);
		if (x[i].hfile)
			fclose(x[i].hfile);
		if (x[i].barrier &&
		    (i == 0 || x[i].barrier != x[i - 1].barrier)) {
			pthread_barrier_destroy(x[i].barrier);
			free(x[i].barrier);
		}
		free(x[i].hdr.p);
		free(x[i].body.p);
		free(x[i].info);
		free(x[i].hapi);
		free(x[i].xfixture);
	}
	free(x);
}

/* ---- assertions ---------------------------------------------------------- */

/* Followers joined so far in this test (every test is a fresh process). */
static unsigned joined(void)
{
	return logcap_get(&logcap.joined);
}

static void wait_joined(unsigned n)
{
	ck_assert_uint_eq(logcap_wait_joined(n), n);
}

/* x[0] becomes the leader (its request reached the origin), then x[1..n)
 * start together and the test waits until n - 1 "joined flight" lines
 * have been seen in all. */
static void start_leader_and_followers(struct xfer *x, size_t n, const char *id)
{
	start_leader(&x[0], id);
	start_together(x + 1, n - 1);
	wait_joined((unsigned)(n - 1));
}

/* x[i] saw exactly what x[ref] saw: result, error text, every header line
 * in order, the body, the getinfo answers and the header API. */
static void assert_same_as(const struct xfer *x, size_t i, size_t ref)
{
	const struct xfer *a = &x[i], *r = &x[ref];
	ck_assert_msg(a->rc == r->rc, "[%zu] rc %d, [%zu] rc %d", i, a->rc, ref,
	              r->rc);
	ck_assert_msg(strcmp(a->errbuf, r->errbuf) == 0,
	              "[%zu] errbuf '%s', [%zu] '%s'", i, a->errbuf, ref,
	              r->errbuf);
	ck_assert_msg(a->nhdr == r->nhdr && a->hdr.len == r->hdr.len &&
	                      memcmp(sbuf_str(&a->hdr), sbuf_str(&r->hdr),
	                             a->hdr.len) == 0,
	              "[%zu] headers differ from [%zu]:\n%s---\n%s", i, ref,
	              sbuf_str(&a->hdr), sbuf_str(&r->hdr));
	ck_assert_msg(a->body_len == r->body_len && a->hash == r->hash &&
	                      a->body.len == r->body.len &&
	                      memcmp(sbuf_str(&a->body), sbuf_str(&r->body),
	                             a->body.len) == 0,
	              "[%zu] body (%zu bytes) differs from [%zu] (%zu bytes)",
	              i, a->body_len, ref, r->body_len);
	ck_assert_msg(strcmp(a->info, r->info) == 0,
	              "[%zu] getinfo: %s\n[%zu] getinfo: %s", i, a->info, ref,
	              r->info);
	ck_assert_msg(strcmp(a->hapi, r->hapi) == 0,
	              "[%zu] header API:\n%s[%zu] header API:\n%s", i, a->hapi,
	              ref, r->hapi);
}

/* What holds for every handle, leader or follower: its own PRIVATE, its
 * own (non-zero) time, libcurl's write size limit. */
static void assert_own(const struct xfer *x, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		ck_assert_msg(x[i].priv == &x[i],
		              "[%zu] CURLINFO_PRIVATE is not its own", i);
		/* Its own: within its own perform, not the leader's (which
		 * started earlier in the leader-first tests). */
		double own = (double)(x[i].t_end - x[i].t_start) / 1e9;
		ck_assert_msg(x[i].total_time > 0 &&
		                      x[i].total_time <= own + 0.001,
		              "[%zu] TOTAL_TIME %f, its perform took %f", i,
		              x[i].total_time, own);
		ck_assert_msg(x[i].max_write <= CURL_MAX_WRITE_SIZE,
		              "[%zu] a write of %zu bytes", i, x[i].max_write);
	}
}

static void assert_pattern_body(const struct xfer *x, size_t i, size_t len)
{
	ck_assert_msg(x[i].rc == CURLE_OK, "[%zu] rc %d (%s)", i, x[i].rc,
	              x[i].errbuf);
	ck_assert_msg(x[i].body_len == len, "[%zu] %zu body bytes, want %zu", i,
	              x[i].body_len, len);
	ck_assert_msg(x[i].bad_bytes == 0, "[%zu] %zu wrong body bytes", i,
	              x[i].bad_bytes);
}

static void assert_info_has(const struct xfer *x, size_t i, const char *what)
{
	/* Case-blind: CURLINFO_SCHEME is "HTTP" in 7.x, "http" in 8.x. */
	ck_assert_msg(strcasestr(x[i].info, what),
	              "[%zu] getinfo lacks '%s': %s", i, what, x[i].info);
}

/* ---- fixture ------------------------------------------------------------- */

static void setup(void)
{
	const char *port = getenv("SF_HTTP_PORT");
	srv_log = getenv("SF_HTTPD_LOG");
	ck_assert_msg(port && srv_log,
	              "SF_HTTP_PORT / SF_HTTPD_LOG not set (see 30-curl.sh)");
	srv_port = atoi(port);

	/* The shim must be what the test's calls reach. */
	Dl_info di;
	void *perform = dlsym(RTLD_DEFAULT, "curl_easy_perform");
	ck_assert_msg(perform && dladdr(perform, &di) && di.dli_fname &&
	                      strstr(di.dli_fname, "libsfshim.so"),
	              "libsfshim.so is not preloaded (see 30-curl.sh)");

	/* Defaults for every test; a test may change them before its first
	 * curl_easy_init (the shim reads them at that moment). */
	setenv("SFSHIM_LOG", "debug", 1);
	unsetenv("SFSHIM_CURL");
	unsetenv("SFSHIM_URL_INCLUDE");
	unsetenv("SFSHIM_URL_EXCLUDE");
	unsetenv("SFSHIM_WAIT_MS");
	unsetenv("SFSHIM_RETRY_ERRORS");
	unsetenv("SFSHIM_SPILL");
	unsetenv("SFSHIM_STATS");
	logcap_start();
}

static void teardown(void)
{
	logcap_stop();
}

/* ---- coalescing ---------------------------------------------------------- */

/* N_SAME threads, one URL: one request, and every handle looks as if it
 * had made it. */
START_TEST(same_url_one_request)
{
	char *id = new_id();
	char *u = url("/bytes/100000?id=%s&gate=%s", id, id);
	struct xfer *x = pattern_xfers(N_SAME, u);

	start_together(x, N_SAME);
	wait_joined(N_SAME - 1); /* everybody but the leader waits */
	open_gate(id);
	join_all(x, N_SAME);

	ck_assert_uint_eq(count_requests(id), 1);
	ck_assert_uint_eq(joined(), N_SAME - 1);
	for (size_t i = 0; i < N_SAME; i++) {
		assert_pattern_body(x, i, 100000);
		assert_same_as(x, i, 0);
		ck_assert_str_eq(x[i].xfixture, "sf_httpd");
	}
	assert_own(x, N_SAME);
	/* ...and the shared answers are the right ones. */
	ck_assert_uint_eq(x[0].nhdr, 5); /* status, 3 fields, blank line */
	ck_assert_str_eq(x[0].hdr.p,
	                 "HTTP/1.1 200 OK\r\n"
	                 "Content-Type: application/octet-stream\r\n"
	                 "Content-Length: 100000\r\n"
	                 "X-Fixture: sf_httpd\r\n\r\n");
	assert_info_has(
	        x, 0,
	        " code=200 type=application/octet-stream url=http://127.0.0.1:");
	assert_info_has(x, 0, " method=GET size=100000 ");
	assert_info_has(x, 0, " redirects=0 version=2 ip=127.0.0.1 ");
	assert_info_has(x, 0, " scheme=HTTP length=100000");
	ck_assert_ptr_nonnull(strstr(x[0].hapi, "[-1] X-Fixture: sf_httpd"));
	xfers_free(x, N_SAME);
	free(u);
	free(id);
}
END_TEST

/* Four URLs, five threads each, all at once: one request per URL. */
START_TEST(distinct_urls_one_request_each)
{
	enum { URLS = 4, PER = 5 };
	char *gate = new_id(), *ids[URLS], *urls[URLS];
	struct xfer *x = xfers(URLS * PER, NULL);
	for (size_t k = 0; k < URLS; k++) {
		ids[k] = new_id();
		urls[k] = url("/bytes/%zu?id=%s&gate=%s", 1000 * (k + 1),
		              ids[k], gate);
		for (size_t j = 0; j < PER; j++) {
			x[k * PER + j].url = urls[k];
			x[k * PER + j].pattern = true;
		}
	}
	start_together(x, URLS * PER);
	wait_joined(URLS * (PER - 1));
	open_gate(gate);
	join_all(x, URLS * PER);

	ck_assert_uint_eq(joined(), URLS * (PER - 1));
	for (size_t k = 0; k < URLS; k++) {
		ck_assert_uint_eq(count_requests(ids[k]), 1);
		for (size_t j = 0; j < PER; j++) {
			assert_pattern_body(x, k * PER + j, 1000 * (k + 1));
			assert_same_as(x, k * PER + j, k * PER);
		}
		free(ids[k]);
		free(urls[k]);
	}
	assert_own(x, URLS * PER);
	xfers_free(x, URLS * PER);
	free(gate);
}
END_TEST

/* ---- what keeps requests apart -------------------------------------------- */

static void opt_header(struct xfer *x, CURL *h)
{
	x->slist = curl_slist_append(NULL, x->arg);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->slist);
}

static void opt_cookie(struct xfer *x, CURL *h)
{
	curl_easy_setopt(h, CURLOPT_COOKIE, x->arg);
}

static void opt_userpwd(struct xfer *x, CURL *h)
{
	curl_easy_setopt(h, CURLOPT_USERPWD, x->arg);
}

/* Two groups that differ in one option: each group is one request, and
 * /echo shows each thread what its own request carried. */
static const struct split_case {
	const char *name;
	void (*configure)(struct xfer *, CURL *);
	const char *arg[2];  /* the option's value per group */
	const char *sent[2]; /* the request line /echo must show for it */
} split_cases[] = {
	{ "HTTPHEADER",
	  opt_header,
	  { "Authorization: Bearer token-a", "Authorization: Bearer token-b" },
	  { "\r\nAuthorization: Bearer token-a\r\n",
	    "\r\nAuthorization: Bearer token-b\r\n" } },
	{ "COOKIE",
	  opt_cookie,
	  { "flavour=a", "flavour=b" },
	  { "\r\nCookie: flavour=a\r\n", "\r\nCookie: flavour=b\r\n" } },
	{ "USERPWD",
	  opt_userpwd,
	  { "alice:one", "bob:two" },
	  { "\r\nAuthorization: Basic YWxpY2U6b25l\r\n",
	    "\r\nAuthorization: Basic Ym9iOnR3bw==\r\n" } },
};

START_TEST(differing_option_splits_requests)
{
	const struct split_case *c = &split_cases[_i];
	enum { PER = N / 2 };
	char *id = new_id();
	char *u = url("/echo?id=%s&gate=%s", id, id);
	struct xfer *x = xfers(2 * PER, u);
	for (size_t i = 0; i < 2 * PER; i++) {
		x[i].configure = c->configure;
		x[i].arg = c->arg[i / PER];
	}
	start_together(x, 2 * PER);
	wait_joined(2 * (PER - 1));
	open_gate(id);
	join_all(x, 2 * PER);

	ck_assert_msg(count_requests(id) == 2, "%s: %u requests", c->name,
	              count_requests(id));
	ck_assert_uint_eq(joined(), 2 * (PER - 1));
	for (size_t i = 0; i < 2 * PER; i++) {
		size_t g = i / PER;
		ck_assert_msg(x[i].rc == CURLE_OK, "%s [%zu] rc %d", c->name, i,
		              x[i].rc);
		ck_assert_msg(strstr(sbuf_str(&x[i].body), c->sent[g]) &&
		                      !strstr(sbuf_str(&x[i].body),
		                              c->sent[1 - g]),
		              "%s [%zu] got another's response:\n%s", c->name,
		              i, sbuf_str(&x[i].body));
		assert_same_as(x, i, g * PER);
	}
	assert_own(x, 2 * PER);
	xfers_free(x, 2 * PER);
	free(u);
	free(id);
}
END_TEST

static void opt_post(struct xfer *x, CURL *h)
{
	(void)x;
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, "a=1");
}

static size_t read_put_body(char *buf, size_t size, size_t nmemb, void *arg)
{
	static const char data[] = "put body\n";
	struct xfer *x = arg;
	size_t n = sizeof(data) - 1 - x->put_off;
	if (n > size * nmemb)
		n = size * nmemb;
	memcpy(buf, data + x->put_off, n);
	x->put_off += n;
	return n;
}

static void opt_put(struct xfer *x, CURL *h)
{
	curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(h, CURLOPT_READFUNCTION, read_put_body);
	curl_easy_setopt(h, CURLOPT_READDATA, x);
	curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)9);
}

static void opt_head(struct xfer *x, CURL *h)
{
	(void)x;
	curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
}

static void opt_custom(struct xfer *x, CURL *h)
{
	(void)x;
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
}

static void opt_cookie_engine(struct xfer *x, CURL *h)
{
	(void)x;
	curl_easy_setopt(h, CURLOPT_COOKIEFILE, "");
}

static void opt_share_hsts_follow(struct xfer *x, CURL *h)
{
	/* One share per handle: nothing shared across threads, no locks
	 * needed.  A shared HSTS cache with a handle that follows redirects
	 * (it may learn an entry over https): see test_curl_share.c for the
	 * harmless shares, which coalesce. */
	x->share = curl_share_init();
	sf_must(x->share != NULL);
	sf_must(curl_share_setopt(x->share, CURLSHOPT_SHARE,
	                          CURL_LOCK_DATA_HSTS) == CURLSHE_OK);
	curl_easy_setopt(h, CURLOPT_SHARE, x->share);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
}

/* Requests the shim must never merge: each of N concurrent ones reaches the
 * origin.  All are held at the gate, so a merged pair would leave fewer
 * than N requests waiting there. */
static const struct pass_case {
	const char *name, *method;
	void (*configure)(struct xfer *, CURL *);
} pass_cases[] = {
	{ "POST", "POST", opt_post },
	{ "PUT", "PUT", opt_put },
	{ "HEAD", "HEAD", opt_head },
	{ "CUSTOMREQUEST", "DELETE", opt_custom },
	{ "COOKIEFILE \"\"", "GET", opt_cookie_engine },
	{ "SHARE (HSTS, FOLLOWLOCATION)", "GET", opt_share_hsts_follow },
};

START_TEST(passes_through)
{
	const struct pass_case *c = &pass_cases[_i];
	char *id = new_id();
	char *u = url("/text?id=%s&gate=%s", id, id);
	char *line;
	sf_must(asprintf(&line, "%s /text?id=%s&", c->method, id) >= 0);
	struct xfer *x = xfers(N, u);
	for (size_t i = 0; i < N; i++)
		x[i].configure = c->configure;
	start_together(x, N);
	ck_assert_msg(wait_requests(line, N) == N,
	              "%s: %u of %d requests reached the origin", c->name,
	              count_requests(line), N);
	open_gate(id);
	join_all(x, N);

	ck_assert_uint_eq(count_requests(id), N);
	ck_assert_uint_eq(joined(), 0);
	for (size_t i = 0; i < N; i++) {
		ck_assert_msg(x[i].rc == CURLE_OK, "%s [%zu] rc %d (%s)",
		              c->name, i, x[i].rc, x[i].errbuf);
		assert_info_has(x, i, " code=200 ");
		ck_assert_str_eq(sbuf_str(&x[i].body),
		                 strcmp(c->method, "HEAD")
		                         ? "hello from sf_httpd\n"
		                         : "");
	}
	xfers_free(x, N);
	free(line);
	free(u);
	free(id);
}
END_TEST

/* ---- errors -------------------------------------------------------------- */

static void opt_failonerror(struct xfer *x, CURL *h)
{
	(void)x;
	curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
}

static const struct status_case {
	int code;
	bool failonerror;
} status_cases[] = {
	{ 404, false }, { 500, false }, { 404, true }, { 500, true }
};

/* An HTTP error is a response like any other: shared by every thread,
 * with or without FAILONERROR. */
START_TEST(http_errors_are_shared)
{
	const struct status_case *c = &status_cases[_i];
	char *id = new_id();
	char *u = url("/status/%d?id=%s&gate=%s", c->code, id, id);
	struct xfer *x = xfers(N, u);
	for (size_t i = 0; i < N; i++)
		x[i].configure = c->failonerror ? opt_failonerror : NULL;
	start_together(x, N);
	wait_joined(N - 1);
	open_gate(id);
	join_all(x, N);

	ck_assert_uint_eq(count_requests(id), 1);
	char want_err[64], want_body[64], want_code[32];
	snprintf(want_err, sizeof(want_err),
	         "The requested URL returned error: %d", c->code);
	snprintf(want_body, sizeof(want_body), "status %d\n", c->code);
	snprintf(want_code, sizeof(want_code), " code=%d ", c->code);
	for (size_t i = 0; i < N; i++) {
		if (c->failonerror) {
			ck_assert_int_eq(x[i].rc, CURLE_HTTP_RETURNED_ERROR);
			ck_assert_str_eq(x[i].errbuf, want_err);
		} else {
			ck_assert_int_eq(x[i].rc, CURLE_OK);
			ck_assert_str_eq(x[i].errbuf, "");
			ck_assert_str_eq(sbuf_str(&x[i].body), want_body);
		}
		assert_info_has(x, i, want_code);
		assert_same_as(x, i, 0);
	}
	assert_own(x, N);
	xfers_free(x, N);
	free(u);
	free(id);
}
END_TEST

/* The leader of the refused-connection burst holds in its progress callback
 * (which libcurl calls before connecting) until every follower has joined:
 * a refused connect is too quick for the followers to catch otherwise. */
static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool entered, released;
} hold = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false };

static int hold_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut,
                         curl_off_t un)
{
	(void)arg, (void)dt, (void)dn, (void)ut, (void)un;
	pthread_mutex_lock(&hold.lock);
	hold.entered = true;
	pthread_cond_broadcast(&hold.cond);
	while (!hold.released)
		pthread_cond_wait(&hold.cond, &hold.lock);
	pthread_mutex_unlock(&hold.lock);
	return 0;
}

static void opt_hold(struct xfer *x, CURL *h)
{
	(void)x;
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, hold_progress);
}

START_TEST(connection_refused_is_shared)
{
	int port = closed_port();
	struct sbuf u = { 0 };
	sbuf_printf(&u, "http://127.0.0.1:%d/text", port);
	struct xfer *x = xfers(N, u.p);
	x[0].configure = opt_hold;
	start(&x[0]);
	pthread_mutex_lock(&hold.lock);
	while (!hold.entered)
		pthread_cond_wait(&hold.cond, &hold.lock);
	pthread_mutex_unlock(&hold.lock);
	start_together(x + 1, N - 1);
	wait_joined(N - 1);
	pthread_mutex_lock(&hold.lock);
	hold.released = true;
	pthread_cond_broadcast(&hold.cond);
	pthread_mutex_unlock(&hold.lock);
	join_all(x, N);

	char want[96];
	snprintf(want, sizeof(want),
	         "Failed to connect to 127.0.0.1 port %d after ", port);
	for (size_t i = 0; i < N; i++) {
		ck_assert_int_eq(x[i].rc, CURLE_COULDNT_CONNECT);
		ck_assert_msg(strncmp(x[i].errbuf, want, strlen(want)) == 0,
		              "[%zu] errbuf '%s'", i, x[i].errbuf);
		assert_same_as(x, i, 0);
	}
	ck_assert_uint_eq(joined(), N - 1);
	xfers_free(x, N);
	free(u.p);
}
END_TEST

static void opt_follow(struct xfer *x, CURL *h)
{
	(void)x;
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
}

/* A redirect chain is one transfer: one request per hop in all, and every
 * handle sees the headers of each response. */
START_TEST(redirect_chain_is_shared)
{
	char *id = new_id();
	char *u = url("/redirect/3?id=%s&gate=%s", id, id);
	struct xfer *x = xfers(N, u);
	for (size_t i = 0; i < N; i++)
		x[i].configure = opt_follow;
	start_together(x, N);
	wait_joined(N - 1);
	open_gate(id);
	join_all(x, N);

	ck_assert_uint_eq(count_requests(id), 1); /* /redirect/3 */
	ck_assert_uint_eq(count_requests("GET /redirect/"), 4); /* 3, 2, 1, 0 */
	for (size_t i = 0; i < N; i++) {
		ck_assert_int_eq(x[i].rc, CURLE_OK);
		ck_assert_str_eq(sbuf_str(&x[i].body), "redirected\n");
		assert_info_has(x, i, " code=200 ");
		assert_info_has(x, i, "/redirect/0 method=GET");
		assert_info_has(x, i, " redirects=3 ");
		assert_same_as(x, i, 0);
	}
	/* Four responses' headers: three 302s, then the 200. */
	const char *p = sbuf_str(&x[0].hdr);
	unsigned statuses = 0;
	while ((p = strstr(p, "HTTP/1.1 "))) {
		statuses++;
		p++;
	}
	ck_assert_uint_eq(statuses, 4);
	ck_assert_ptr_nonnull(strstr(x[0].hdr.p, "Location: /redirect/0\r\n"));
	ck_assert_ptr_nonnull(strstr(x[0].hapi, "[0] Location: /redirect/2"));
	ck_assert_ptr_nonnull(strstr(x[0].hapi, "[2] Location: /redirect/0"));
	assert_own(x, N);
	xfers_free(x, N);
	free(u);
	free(id);
}
END_TEST

/* ---- faults of one sharer -------------------------------------------------- */

/* The leader's own write callback refuses mid-body: its failure is its
 * own, a follower takes over (a second request), and every follower still
 * gets the whole body, once. */
START_TEST(leader_short_write_is_its_own)
{
	char *id = new_id();
	char *u = url("/bytes/300000?id=%s&gate=%s", id, id);
	struct xfer *x = pattern_xfers(N, u);
	x[0].fail_after = 100000;
	start_leader_and_followers(x, N, id);
	open_gate(id);
	join_all(x, N);

	ck_assert_int_eq(x[0].rc, CURLE_WRITE_ERROR);
	ck_assert_str_eq(x[0].errbuf, "Failure writing output to destination");
	ck_assert_uint_le(x[0].body_len, 100000);
	ck_assert_uint_eq(count_requests(id), 2);
	for (size_t i = 1; i < N; i++) {
		assert_pattern_body(x, i, 300000);
		assert_same_as(x, i, 1);
	}
	assert_own(x, N);
	xfers_free(x, N);
	free(u);
	free(id);
}
END_TEST

/* A follower's write callback refuses: that follower alone fails. */
START_TEST(follower_short_write_is_its_own)
{
	char *id = new_id();
	char *u = url("/bytes/300000?id=%s&gate=%s", id, id);
	struct xfer *x = pattern_xfers(N, u);
	x[1].fail_after = 100000;
	start_leader_and_followers(x, N, id);
	open_gate(id);
	join_all(x, N);

	ck_assert_int_eq(x[1].rc, CURLE_WRITE_ERROR);
	ck_assert_str_eq(x[1].errbuf, "Failure writing output to destination");
	ck_assert_uint_le(x[1].body_len, 100000);
	ck_assert_uint_eq(count_requests(id), 1);
	for (size_t i = 0; i < N; i++) {
		if (i == 1)
			continue;
		assert_pattern_body(x, i, 300000);
		assert_same_as(x, i, 0);
	}
	/* x[1]'s getinfo: see follower_own_failure_answers_getinfo. */
	assert_own(x, 1);
	assert_own(x + 2, N - 2);
	xfers_free(x, N);
	free(u);
	free(id);
}
END_TEST

static void opt_timeout_200ms(struct xfer *x, CURL *h)
{
	(void)x;
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 200L);
}

/* A follower's own CURLOPT_TIMEOUT_MS ends its wait, and only its own. */
START_TEST(follower_timeout_is_its_own)
{
	char *id = new_id();
	char *u = url("/bytes/50000?id=%s&gate=%s", id, id);
	struct xfer *x = pattern_xfers(N, u);
	x[1].configure = opt_timeout_200ms;
	start_leader_and_followers(x, N, id);
	join(&x[1]); /* times out while the origin still holds the response */
	open_gate(id);
	for (size_t i = 0; i < N; i++)
		if (i != 1)
			join(&x[i]);

	ck_assert_int_eq(x[1].rc, CURLE_OPERATION_TIMEDOUT);
	ck_assert_msg(strncmp(x[1].errbuf, "Operation timed out after ", 26) ==
	                      0,
	              "errbuf '%s'", x[1].errbuf);
	ck_assert_uint_ge(x[1].t_end - x[1].t_start, 200000000u);
	ck_assert_uint_eq(x[1].body_len, 0);
	ck_assert_uint_eq(count_requests(id), 1);
	for (size_t i = 0; i < N; i++) {
		if (i == 1)
			continue;
		assert_pattern_body(x, i, 50000);
		assert_same_as(x, i, 0);
	}
	/* x[1]'s getinfo: see follower_own_failure_answers_getinfo. */
	assert_own(x, 1);
	assert_own(x + 2, N - 2);
	xfers_free(x, N);
	free(u);
	free(id);
}
END_TEST

/* Aborts on its second call: proof that it is called again while the
 * follower waits (libcurl calls it at least once a second). */
static int abort_progress(void *arg, curl_off_t dt, curl_off_t dn,
                          curl_off_t ut, curl_off_t un)
{
	(void)dt, (void)dn, (void)ut, (void)un;
	struct xfer *x = arg;
	return ++x->progress_calls >= 2;
}

static void opt_abort_progress(struct xfer *x, CURL *h)
{
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, abort_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
}

START_TEST(follower_progress_abort_is_its_own)
{
	char *id = new_id();
	char *u = url("/bytes/50000?id=%s&gate=%s", id, id);
	struct xfer *x = pattern_xfers(N, u);
	x[1].configure = opt_abort_progress;
	start_leader_and_followers(x, N, id);
	join(&x[1]); /* aborts while the origin still holds the response */
	open_gate(id);
	for (size_t i = 0; i < N; i++)
		if (i != 1)
			join(&x[i]);

	ck_assert_int_eq(x[1].rc, CURLE_ABORTED_BY_CALLBACK);
	ck_assert_str_eq(x[1].errbuf, "Callback aborted");
	ck_assert_int_eq(x[1].progress_calls, 2);
	ck_assert_uint_eq(x[1].body_len, 0);
	ck_assert_uint_eq(count_requests(id), 1);
	for (size_t i = 0; i < N; i++) {
		if (i == 1)
			continue;
		assert_pattern_body(x, i, 50000);
		assert_same_as(x, i, 0);
	}
	/* x[1]'s getinfo: see follower_own_failure_answers_getinfo. */
	assert_own(x, 1);
	assert_own(x + 2, N - 2);
	xfers_free(x, N);
	free(u);
	free(id);
}
END_TEST

/* A follower that fails on its own still answers getinfo about its own
 * perform, as libcurl does for a transfer that timed out or whose write
 * callback refused: its own TOTAL_TIME, its URL, and (after a refused
 * write) the status of the response it was receiving.  Checked against
 * libcurl 7.88 without the shim: rc=28 total=0.200 url=URL code=0, and
 * rc=23 code=200 url=URL. */
static const struct own_failure_case {
	const char *name;
	void (*configure)(struct xfer *, CURL *);
	size_t fail_after;
	CURLcode rc;
	long code;
} own_failure_cases[] = {
	{ "TIMEOUT_MS=200", opt_timeout_200ms, 0, CURLE_OPERATION_TIMEDOUT, 0 },
	{ "short write", NULL, 10000, CURLE_WRITE_ERROR, 200 },
};

START_TEST(follower_own_failure_answers_getinfo)
{
	const struct own_failure_case *c = &own_failure_cases[_i];
	char *id = new_id();
	char *u = url("/bytes/50000?id=%s&gate=%s", id, id);
	struct xfer *x = xfers(2, u);
	x[1].configure = c->configure;
	x[1].fail_after = c->fail_after;
	start_leader(&x[0], id);
	start(&x[1]);
	wait_joined(1);
	if (c->configure)
		join(&x[1]); /* the timeout: while the response is held */
	open_gate(id);
	join(&x[0]);
	if (!c->configure)
		join(&x[1]);

	ck_assert_int_eq(x[1].rc, c->rc);
	char want[128];
	snprintf(want, sizeof(want), " code=%ld ", c->code);
	assert_info_has(x, 1, want);
	snprintf(want, sizeof(want), " url=%s ", u);
	assert_info_has(x, 1, want);
	ck_assert_msg(x[1].total_time > 0, "%s: TOTAL_TIME %f", c->name,
	              x[1].total_time);
	xfers_free(x, 2);
	free(u);
	free(id);
}
END_TEST

/* The leader's thread is cancelled while the origin holds the response: a
 * follower is promoted and makes the request again (also held, so the
 * promotion is seen at the origin before the gate opens); every other
 * follower gets the full response from it. */
START_TEST(leader_cancelled_promotes_a_follower)
{
	char *id = new_id();
	char *u = url("/bytes/200000?id=%s&gate=%s", id, id);
	struct xfer *x = pattern_xfers(N, u);
	start_leader_and_followers(x, N, id);
	ck_assert_int_eq(pthread_cancel(x[0].tid), 0);
	void *ret;
	ck_assert_int_eq(pthread_join(x[0].tid, &ret), 0);
	ck_assert_ptr_eq(ret, PTHREAD_CANCELED);
	ck_assert_uint_eq(wait_requests(id, 2),
	                  2); /* the promoted follower's */
	open_gate(id);
	join_all(x + 1, N - 1);

	ck_assert_uint_eq(count_requests(id), 2);
	ck_assert_uint_eq(joined(), N - 1);
	for (size_t i = 1; i < N; i++) {
		assert_pattern_body(x, i, 200000);
		assert_same_as(x, i, 1);
	}
	assert_own(x + 1, N - 1);
	xfers_free(x, N); /* curl_easy_cleanup of the cancelled handle too */
	free(u);
	free(id);
}
END_TEST

/* A follower's thread is cancelled while it waits: it leaves the flight,
 * and the others are unaffected. */
START_TEST(follower_cancelled_leaves_quietly)
{
	char *id = new_id();
	char *u = url("/bytes/100000?id=%s&gate=%s", id, id);
	struct xfer *x = pattern_xfers(N, u);
	start_leader_and_followers(x, N, id);
	ck_assert_int_eq(pthread_cancel(x[1].tid), 0);
	void *ret;
	ck_assert_int_eq(pthread_join(x[1].tid, &ret), 0);
	ck_assert_ptr_eq(ret, PTHREAD_CANCELED);
	open_gate(id);
	join(&x[0]);
	join_all(x + 2, N - 2);

	ck_assert_uint_eq(count_requests(id), 1);
	for (size_t i = 0; i < N; i++) {
		if (i == 1)
			continue;
		assert_pattern_body(x, i, 100000);
		assert_same_as(x, i, 0);
	}
	assert_own(x, 1);
	assert_own(x + 2, N - 2);
	xfers_free(x, N);
	free(u);
	free(id);
}
END_TEST

/* SFSHIM_RETRY_ERRORS=1: an error result is not shared, every follower
 * makes its own request. */
START_TEST(retry_errors_makes_own_requests)
{
	setenv("SFSHIM_RETRY_ERRORS", "1", 1);
	char *id = new_id();
	char *u = url("/status/500?id=%s&gate=%s", id, id);
	struct xfer *x = xfers(N, u);
	for (size_t i = 0; i < N; i++)
		x[i].configure = opt_failonerror;
	start_together(x, N);
	wait_joined(N - 1);
	open_gate(id);
	join_all(x, N);

	ck_assert_uint_eq(count_requests(id), N);
	for (size_t i = 0; i < N; i++) {
		ck_assert_int_eq(x[i].rc, CURLE_HTTP_RETURNED_ERROR);
		ck_assert_str_eq(x[i].errbuf,
		                 "The requested URL returned error: 500");
		assert_info_has(x, i, " code=500 ");
		assert_same_as(x, i, 0);
	}
	assert_own(x, N);
	xfers_free(x, N);
	free(u);
	free(id);
}
END_TEST

/* ---- libcurl's default delivery ------------------------------------------ */

static void slurp(FILE *f, struct sbuf *b)
{
	char buf[65536];
	size_t n;
	ck_assert_int_eq(fflush(f), 0);
	rewind(f);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		sbuf_add(b, buf, n);
}

static void opt_files(struct xfer *x, CURL *h)
{
	x->wfile = tmpfile();
	x->hfile = tmpfile();
	sf_must(x->wfile && x->hfile);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x->wfile);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x->hfile);
}

/* No callbacks at all: the body is fwrite()n to WRITEDATA, the headers to
 * HEADERDATA, for followers as for the leader. */
START_TEST(default_fwrite_to_files)
{
	char *id = new_id();
	char *u = url("/bytes/200000?id=%s&gate=%s", id, id);
	struct xfer *x = xfers(N, u);
	for (size_t i = 0; i < N; i++) {
		x[i].plain = true;
		x[i].configure = opt_files;
	}
	start_together(x, N);
	wait_joined(N - 1);
	open_gate(id);
	join_all(x, N);

	ck_assert_uint_eq(count_requests(id), 1);
	for (size_t i = 0; i < N; i++) {
		slurp(x[i].wfile, &x[i].body);
		slurp(x[i].hfile, &x[i].hdr);
		x[i].body_len = x[i].body.len;
		ck_assert_int_eq(x[i].rc, CURLE_OK);
		ck_assert_uint_eq(x[i].body.len, 200000);
		for (size_t k = 0; k < x[i].body.len; k++)
			x[i].bad_bytes += x[i].body.p[k] != ALPHABET[k % 36];
		ck_assert_uint_eq(x[i].bad_bytes, 0);
		ck_assert_str_eq(x[i].hdr.p,
		                 "HTTP/1.1 200 OK\r\n"
		                 "Content-Type: application/octet-stream\r\n"
		                 "Content-Length: 200000\r\n"
		                 "X-Fixture: sf_httpd\r\n\r\n");
		assert_same_as(x, i, 0);
	}
	xfers_free(x, N);
	free(u);
	free(id);
}
END_TEST

static size_t on_sink(char *p, size_t size, size_t nmemb, void *arg)
{
	struct sink *s = arg;
	if (s->header)
		return on_header(p, size, nmemb, s->x);
	return on_body(p, size, nmemb, s->x);
}

static void opt_sinks(struct xfer *x, CURL *h)
{
	x->sink_body = (struct sink){ x, false };
	x->sink_hdr = (struct sink){ x, true };
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_sink);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &x->sink_body);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &x->sink_hdr);
}

/* HEADERDATA without HEADERFUNCTION: libcurl hands header lines to the
 * WRITEFUNCTION, with HEADERDATA as its pointer. */
START_TEST(header_data_goes_to_write_function)
{
	char *id = new_id();
	char *u = url("/bytes/50000?id=%s&gate=%s", id, id);
	struct xfer *x = xfers(N, u);
	for (size_t i = 0; i < N; i++) {
		x[i].plain = true;
		x[i].pattern = true;
		x[i].configure = opt_sinks;
	}
	start_together(x, N);
	wait_joined(N - 1);
	open_gate(id);
	join_all(x, N);

	ck_assert_uint_eq(count_requests(id), 1);
	for (size_t i = 0; i < N; i++) {
		assert_pattern_body(x, i, 50000);
		ck_assert_uint_eq(x[i].nhdr, 5);
		ck_assert_str_eq(x[i].hdr.p,
		                 "HTTP/1.1 200 OK\r\n"
		                 "Content-Type: application/octet-stream\r\n"
		                 "Content-Length: 50000\r\n"
		                 "X-Fixture: sf_httpd\r\n\r\n");
		assert_same_as(x, i, 0);
	}
	assert_own(x, N);
	xfers_free(x, N);
	free(u);
	free(id);
}
END_TEST

static void opt_include_header(struct xfer *x, CURL *h)
{
	(void)x;
	curl_easy_setopt(h, CURLOPT_HEADER, 1L);
}

/* CURLOPT_HEADER=1: the write callback gets the header lines, then the
 * body; the header callback still gets the lines too. */
START_TEST(include_header_in_body)
{
	char *id = new_id();
	char *u = url("/bytes/100000?id=%s&gate=%s", id, id);
	struct xfer *x = xfers(N, u);
	for (size_t i = 0; i < N; i++)
		x[i].configure = opt_include_header;
	start_together(x, N);
	wait_joined(N - 1);
	open_gate(id);
	join_all(x, N);

	ck_assert_uint_eq(count_requests(id), 1);
	for (size_t i = 0; i < N; i++) {
		ck_assert_int_eq(x[i].rc, CURLE_OK);
		size_t hl = x[i].hdr.len;
		ck_assert_uint_eq(x[i].body.len, hl + 100000);
		ck_assert_msg(
		        memcmp(x[i].body.p, x[i].hdr.p, hl) == 0,
		        "[%zu] the write callback did not start with the headers",
		        i);
		for (size_t k = 0; k < 100000; k++)
			x[i].bad_bytes += x[i].body.p[hl + k] !=
			                  ALPHABET[k % 36];
		ck_assert_uint_eq(x[i].bad_bytes, 0);
		assert_same_as(x, i, 0);
	}
	assert_own(x, N);
	xfers_free(x, N);
	free(u);
	free(id);
}
END_TEST

/* ---- large and slow bodies ------------------------------------------------ */

/* 10 MB to 1 + N_BIG_FOLLOWERS handles: one request, identical bodies; with
 * SFSHIM_SPILL=256k most of the shared copy lives in the spill file. */
START_TEST(big_body_spills_to_file)
{
	enum { LEN = 10 * 1024 * 1024, NT = 1 + N_BIG_FOLLOWERS };
	char dir[] = "/tmp/sfshim-spill.XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	setenv("TMPDIR", dir, 1); /* where the shim makes its spill file */
	setenv("SFSHIM_SPILL", "256k", 1);
	char *id = new_id();
	char *u = url("/bytes/%d?id=%s&gate=%s", LEN, id, id);
	struct xfer *x = pattern_xfers(NT, u);
	start_leader(&x[0], id);
	x[1].spill_probe = true; /* a follower, 2 MB in */
	start_together(x + 1, NT - 1);
	wait_joined(NT - 1);
	open_gate(id);
	join_all(x, NT);

	ck_assert_uint_eq(count_requests(id), 1);
	for (size_t i = 0; i < NT; i++) {
		assert_pattern_body(x, i, LEN);
		assert_same_as(x, i, 0);
	}
	ck_assert_msg(x[1].saw_spill,
	              "no spill file in %s while followers read", dir);
	assert_own(x, NT);
	xfers_free(x, NT);
	ck_assert_int_eq(rmdir(dir), 0); /* and nothing left behind */
	free(u);
	free(id);
}
END_TEST

/* A slow response (16 KiB every 20 ms): followers get body bytes while the
 * leader is still downloading, not after. */
START_TEST(followers_stream_before_leader_ends)
{
	char *id = new_id();
	char *u = url("/bytes/1048576?id=%s&gate=%s&chunk=16384&interval=20",
	              id, id);
	struct xfer *x = pattern_xfers(N, u);
	start_leader_and_followers(x, N, id);
	open_gate(id);
	join_all(x, N);

	ck_assert_uint_eq(count_requests(id), 1);
	for (size_t i = 0; i < N; i++) {
		assert_pattern_body(x, i, 1048576);
		assert_same_as(x, i, 0);
		ck_assert_msg(
		        x[i].t_first_body < x[0].t_end,
		        "[%zu] first byte %.3f s after the leader finished", i,
		        (double)(x[i].t_first_body - x[0].t_end) / 1e9);
	}
	assert_own(x, N);
	xfers_free(x, N);
	free(u);
	free(id);
}
END_TEST

/* ---- configuration ------------------------------------------------------ */

/* SFSHIM_CURL=0 set by this test before its first libcurl call switches
 * coalescing off for this test only: the same burst as same_url_one_request
 * makes N requests.  (The tests after this one coalesce again: each runs in
 * a new process, which reads the environment afresh.) */
START_TEST(env_is_read_per_test)
{
	setenv("SFSHIM_CURL", "0", 1);
	char *id = new_id();
	char *u = url("/bytes/1000?id=%s&gate=%s", id, id);
	struct xfer *x = pattern_xfers(N, u);
	start_together(x, N);
	ck_assert_uint_eq(wait_requests(id, N), N);
	open_gate(id);
	join_all(x, N);

	ck_assert_uint_eq(count_requests(id), N);
	ck_assert_uint_eq(joined(), 0);
	for (size_t i = 0; i < N; i++) {
		assert_pattern_body(x, i, 1000);
		ck_assert_ptr_eq(x[i].priv, &x[i]);
	}
	xfers_free(x, N);
	free(u);
	free(id);
}
END_TEST

/* URL filters: a URL matching SFSHIM_URL_EXCLUDE makes N requests even
 * though it also matches SFSHIM_URL_INCLUDE (exclude wins); another URL
 * matching the include list still coalesces, in the same process. */
START_TEST(url_filters)
{
	setenv("SFSHIM_URL_INCLUDE", "HTTP://127.0.0.1:*/bytes/*", 1);
	setenv("SFSHIM_URL_EXCLUDE", "*nocoalesce*", 1);
	char *id = new_id();
	char *u = url("/bytes/1000?id=%s&gate=%s&k=nocoalesce", id, id);
	struct xfer *x = xfers(N, u);
	start_together(x, N);
	ck_assert_uint_eq(wait_requests(id, N), N);
	open_gate(id);
	join_all(x, N);
	ck_assert_uint_eq(count_requests(id), N);
	ck_assert_uint_eq(joined(), 0);
	xfers_free(x, N);
	free(u);
	free(id);

	id = new_id();
	u = url("/bytes/1000?id=%s&gate=%s", id, id);
	x = xfers(N, u);
	start_together(x, N);
	wait_joined(N - 1);
	open_gate(id);
	join_all(x, N);
	ck_assert_uint_eq(count_requests(id), 1);
	for (size_t i = 0; i < N; i++)
		assert_same_as(x, i, 0);
	xfers_free(x, N);
	free(u);
	free(id);
}
END_TEST

/* ---- a leader that jumps out (issue 7, defect 7) ------------------------ */

/* The leader's write callback siglongjmps out of curl_easy_perform: its
 * flight must be handed over at once (SFSHIM_WAIT_MS=0: no deadline would
 * ever free a follower of a stranded flight; the test's timeout would), and
 * the thread's re-entrancy guard put back, so that it leads again later. */
static __thread sigjmp_buf *curl_jump;

static size_t jump_body(char *p, size_t size, size_t nmemb, void *arg)
{
	(void)p;
	(void)arg;
	if (curl_jump)
		siglongjmp(*curl_jump, 1);
	return size * nmemb;
}

struct curl_jumper {
	pthread_t tid;
	const char *url;
	bool jumped;
	pthread_barrier_t *after; /* then: perform again as again */
	struct xfer *again;
};

static void *curl_jumper_main(void *p)
{
	struct curl_jumper *j = p;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
	static __thread CURL *h; /* lives across the jump */
	h = curl_easy_init();
	sf_must(h != NULL);
	curl_easy_setopt(h, CURLOPT_URL, j->url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, jump_body);
	sigjmp_buf env;
	if (sigsetjmp(env, 1) == 0) {
		curl_jump = &env;
		curl_easy_perform(h);
	} else {
		j->jumped = true;
	}
	curl_jump = NULL;
	curl_easy_cleanup(h);
	pthread_barrier_wait(j->after);
	xfer_main(j->again);
	return NULL;
}

START_TEST(leader_jumping_out_of_callback_releases_followers)
{
	setenv("SFSHIM_WAIT_MS", "0", 1);
	char *id = new_id();
	char *u = url("/bytes/200000?id=%s&gate=%s", id, id);
	struct xfer *x = pattern_xfers(N, u);
	char *id2 = new_id();
	char *u2 = url("/bytes/1000?id=%s&gate=%s", id2, id2);
	struct xfer *y = xfers(2, u2);
	y[0].pattern = y[1].pattern = true;
	pthread_barrier_t after;
	pthread_barrier_init(&after, NULL, 2);
	struct curl_jumper j = { .url = u, .after = &after, .again = &y[0] };

	ck_assert_int_eq(pthread_create(&j.tid, NULL, curl_jumper_main, &j), 0);
	ck_assert_uint_eq(wait_requests(id, 1), 1);
	start_together(x, N);
	wait_joined(N);
	open_gate(id); /* the leader's first body bytes: it jumps */
	join_all(x, N);
	for (size_t i = 0; i < N; i++)
		assert_pattern_body(x, i, 200000);
	ck_assert_uint_eq(count_requests(id), 2); /* the promoted follower's */
	ck_assert_uint_eq(logcap_wait_for(&logcap.took_over, 1), 1);

	/* The thread that jumped leads the next flight, and is followed. */
	pthread_barrier_wait(&after);
	ck_assert_uint_eq(wait_requests(id2, 1), 1);
	start(&y[1]);
	wait_joined(N + 1);
	open_gate(id2);
	ck_assert_int_eq(pthread_join(j.tid, NULL), 0);
	join(&y[1]);
	ck_assert(j.jumped);
	assert_pattern_body(y, 0, 1000);
	assert_pattern_body(y, 1, 1000);
	ck_assert_uint_eq(count_requests(id2), 1);
	pthread_barrier_destroy(&after);
	xfers_free(y, 2);
	xfers_free(x, N);
	free(u2);
	free(id2);
	free(u);
	free(id);
}
END_TEST

/* ---- a follower left anywhere (cancelled, or jumping out) --------------- */

/* The kernel's thread id of x's thread, once it runs (0 before). */
static pid_t xfer_ostid(const struct xfer *x)
{
	return __atomic_load_n(&x->ostid, __ATOMIC_ACQUIRE);
}

/* Is thread tid of this process inside write(2) on fd 2?  (The kernel's
 * view: /proc/.../syscall reads "1 0x2 ..." while it is blocked there.) */
static bool in_write_to_fd2(pid_t tid)
{
	char path[64], buf[256];
	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	bool yes = fgets(buf, sizeof(buf), f) && strncmp(buf, "1 0x2 ", 6) == 0;
	fclose(f);
	return yes;
}

/* Makes fd 2 a full pipe (a write(2) to it blocks until the test lets it
 * go) and returns the real one to put back; *pipe_fds gets the pipe. */
static int stderr_blocks(int pipe_fds[2])
{
	ck_assert_int_eq(pipe2(pipe_fds, O_CLOEXEC), 0);
	ck_assert_int_ge(fcntl(pipe_fds[1], F_SETPIPE_SZ, 4096), 4096);
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", pipe_fds[1]);
	/* a description of its own, non-blocking */
	int nb = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	ck_assert_int_ge(nb, 0);
	while (write(nb, "x", 1) == 1)
		;
	ck_assert_int_eq(errno, EAGAIN);
	close(nb);
	int saved = dup(2);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_eq(dup2(pipe_fds[1], 2), 2);
	return saved;
}

static void stderr_back(int saved, int pipe_fds[2])
{
	ck_assert_int_eq(dup2(saved, 2), 2);
	close(saved);
	close(pipe_fds[1]);
	close(pipe_fds[0]);
}

/* A follower's thread is cancelled in the write(2) of its "joined flight"
 * log line: it holds its place in the flight already, and nothing of the
 * follower's own was set up yet.  fd 2 is a full pipe, so the write blocks;
 * the test sees the follower blocked there (the only write to fd 2 on its
 * way) and cancels it.  It leaves the flight and frees its key (under ASan:
 * no leak report), the leader and later callers of the URL are unaffected. */
START_TEST(follower_cancelled_in_its_join_log_line)
{
	char *id = new_id();
	char *u = url("/bytes/100000?id=%s&gate=%s", id, id);
	struct xfer *x = pattern_xfers(3, u);
	start_leader(&x[0], id);

	int pipe_fds[2];
	int saved = stderr_blocks(pipe_fds);
	start(&x[1]);
	uint64_t limit = now_ns() + (uint64_t)SF_WAIT_LIMIT_MS * 1000000u;
	bool blocked = false;
	while (!blocked && now_ns() < limit) {
		pid_t tid = xfer_ostid(&x[1]);
		blocked = tid && in_write_to_fd2(tid);
		if (!blocked)
			sched_yield();
	}
	ck_assert_int_eq(pthread_cancel(x[1].tid), 0);
	void *ret;
	ck_assert_int_eq(pthread_join(x[1].tid, &ret), 0);
	stderr_back(saved, pipe_fds);
	ck_assert_msg(blocked, "the follower never wrote its join line");
	ck_assert_ptr_eq(ret, PTHREAD_CANCELED);

	open_gate(id);
	join(&x[0]);
	assert_pattern_body(x, 0, 100000);
	ck_assert_uint_eq(count_requests(id), 1);
	start(&x[2]); /* a later caller: its own flight, at once */
	join(&x[2]);
	assert_pattern_body(x, 2, 100000);
	ck_assert_uint_eq(count_requests(id), 2);
	xfers_free(x, 3);
	free(u);
	free(id);
}
END_TEST

/* A follower's own callback (write, header or progress) siglongjmps out
 * of curl_easy_perform while the flight is replayed to it: it gives back
 * its place in the flight and everything it held (under ASan: no leak
 * report), the leader and the other followers get the whole response with
 * one request, and its handle works for the next perform, which follows
 * another flight as usual (options, mid-transfer view and re-entrancy
 * depth all right). */
enum jump_at { JUMP_BODY, JUMP_HEADER, JUMP_PROGRESS };

static size_t jump_header(char *p, size_t size, size_t nmemb, void *arg)
{
	(void)p;
	(void)arg;
	if (curl_jump)
		siglongjmp(*curl_jump, 1);
	return size * nmemb;
}

static size_t discard(char *p, size_t size, size_t nmemb, void *arg)
{
	(void)p;
	(void)arg;
	return size * nmemb;
}

static int jump_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut,
                         curl_off_t un)
{
	(void)arg;
	(void)dt;
	(void)dn;
	(void)ut;
	(void)un;
	if (curl_jump)
		siglongjmp(*curl_jump, 1);
	return 0;
}

struct follower_jumper {
	pthread_t tid;
	const char *url;
	enum jump_at at;
	bool jumped;
	pthread_barrier_t *after; /* then: perform again->url, same handle */
	struct xfer *again;
};

static void *follower_jumper_main(void *p)
{
	struct follower_jumper *j = p;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
	static __thread CURL *h; /* lives across the jump */
	h = curl_easy_init();
	sf_must(h != NULL);
	curl_easy_setopt(h, CURLOPT_URL, j->url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION,
	                 j->at == JUMP_BODY ? jump_body : discard);
	if (j->at == JUMP_HEADER)
		curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, jump_header);
	if (j->at == JUMP_PROGRESS) {
		curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, jump_progress);
	}
	sigjmp_buf env;
	if (sigsetjmp(env, 1) == 0) {
		curl_jump = &env;
		curl_easy_perform(h);
	} else {
		j->jumped = true;
	}
	curl_jump = NULL;
	pthread_barrier_wait(j->after);

	/* The same handle, another URL, the test's own callbacks. */
	struct xfer *x = j->again;
	x->h = h;
	curl_easy_setopt(h, CURLOPT_URL, x->url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(h, CURLOPT_PRIVATE, x);
	x->t_start = now_ns();
	x->rc = curl_easy_perform(h);
	x->t_end = now_ns();
	x->info = info_text(h);
	x->hapi = header_api_text(h, &x->xfixture);
	curl_easy_getinfo(h, CURLINFO_TOTAL_TIME, &x->total_time);
	curl_easy_getinfo(h, CURLINFO_PRIVATE, &x->priv);
	return NULL;
}

START_TEST(follower_jumping_out_of_callback_releases_all)
{
	static const enum jump_at at[] = { JUMP_BODY, JUMP_HEADER,
		                           JUMP_PROGRESS };
	char *id = new_id(), *id2 = new_id();
	char *u = url("/bytes/200000?id=%s&gate=%s", id, id);
	char *u2 = url("/bytes/1000?id=%s&gate=%s", id2, id2);
	struct xfer *x = xfers(N, u), *y = xfers(2, u2), *z = xfers(1, u);
	for (size_t i = 0; i < N; i++)
		x[i].pattern = true;
	y[0].pattern = y[1].pattern = z[0].pattern = true;
	pthread_barrier_t after;
	pthread_barrier_init(&after, NULL, 2);
	struct follower_jumper j = {
		.url = u, .at = at[_i], .after = &after, .again = &y[1]
	};

	start_leader(&y[0], id2); /* the flight the jumper follows next */
	start_leader(&x[0], id);
	start_together(x + 1, N - 1);
	ck_assert_int_eq(pthread_create(&j.tid, NULL, follower_jumper_main, &j),
	                 0);
	wait_joined(N); /* N - 1 followers and the jumper */
	open_gate(id);
	join_all(x, N);
	ck_assert_uint_eq(count_requests(id), 1);
	for (size_t i = 0; i < N; i++) {
		assert_pattern_body(x, i, 200000);
		assert_same_as(x, i, 0);
	}
	assert_own(x, N);

	/* The jumper's handle, performed again, follows y[0]. */
	pthread_barrier_wait(&after);
	wait_joined(N + 1);
	open_gate(id2);
	ck_assert_int_eq(pthread_join(j.tid, NULL), 0);
	join(&y[0]);
	ck_assert(j.jumped);
	assert_pattern_body(y, 0, 1000);
	assert_pattern_body(y, 1, 1000);
	assert_same_as(y, 1, 0);
	assert_own(y, 2);
	ck_assert_uint_eq(count_requests(id2), 1);

	/* A later caller of the first URL gets it, on its own. */
	start(&z[0]);
	join(&z[0]);
	assert_pattern_body(z, 0, 200000);
	ck_assert_uint_eq(count_requests(id), 2);
	pthread_barrier_destroy(&after);
	xfers_free(z, 1);
	xfers_free(y, 2);
	xfers_free(x, N);
	free(u2);
	free(u);
	free(id2);
	free(id);
}
END_TEST

/* The leader's own failure (its progress callback aborts once body data
 * came) hands the flight over; its thread is then cancelled in the
 * write(2) of its "handing over" log line (fd 2 a full pipe, the leader
 * seen blocked there).  The flight was handed over before that line: one
 * follower is promoted and the others get the response from it, without
 * waiting out SFSHIM_WAIT_MS and fetching alone. */
static int abort_on_body(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut,
                         curl_off_t un)
{
	(void)arg, (void)dt, (void)ut, (void)un;
	return dn > 0;
}

static void opt_abort_on_body(struct xfer *x, CURL *h)
{
	(void)x;
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, abort_on_body);
}

START_TEST(leader_cancelled_in_its_handover_log_line)
{
	char *id = new_id();
	char *u = url("/bytes/100000?id=%s&gate=%s", id, id);
	struct xfer *x = pattern_xfers(N, u);
	x[0].configure = opt_abort_on_body;
	start_leader_and_followers(x, N, id);

	int pipe_fds[2];
	int saved = stderr_blocks(pipe_fds);
	open_gate(id);
	uint64_t limit = now_ns() + (uint64_t)SF_WAIT_LIMIT_MS * 1000000u;
	bool blocked = false;
	while (!blocked && now_ns() < limit) {
		blocked = in_write_to_fd2(xfer_ostid(&x[0]));
		if (!blocked)
			sched_yield();
	}
	ck_assert_int_eq(pthread_cancel(x[0].tid), 0);
	void *ret;
	ck_assert_int_eq(pthread_join(x[0].tid, &ret), 0);
	/* Lets the promoted follower's "took over" line through. */
	ck_assert_int_eq(dup2(saved, 2), 2);
	char junk[4096];
	ck_assert_int_gt(read(pipe_fds[0], junk, sizeof(junk)), 0);
	join_all(x + 1, N - 1);
	close(saved);
	close(pipe_fds[1]);
	close(pipe_fds[0]);
	ck_assert_msg(blocked, "the leader never wrote its hand-over line");
	ck_assert_ptr_eq(ret, PTHREAD_CANCELED);

	ck_assert_uint_eq(count_requests(id), 2); /* the promoted follower's */
	ck_assert_uint_eq(logcap_get(&logcap.expired), 0);
	for (size_t i = 1; i < N; i++) {
		assert_pattern_body(x, i, 100000);
		assert_same_as(x, i, 1);
	}
	assert_own(x + 1, N - 1);
	xfers_free(x, N);
	free(u);
	free(id);
}
END_TEST

/* The leader's thread is cancelled while the origin holds the response,
 * and the follower promoted in its place is cancelled in the write(2) of
 * its "took over" log line (fd 2 a full pipe; the test finds the follower
 * blocked there): it still held the flight, as its new leader, and hands
 * it on.  Another follower is promoted and everybody left gets the
 * response from it, without waiting out SFSHIM_WAIT_MS. */
START_TEST(promoted_follower_cancelled_in_its_log_line)
{
	char *id = new_id();
	char *u = url("/bytes/100000?id=%s&gate=%s", id, id);
	struct xfer *x = pattern_xfers(N, u);
	start_leader_and_followers(x, N, id);

	int pipe_fds[2];
	int saved = stderr_blocks(pipe_fds);
	ck_assert_int_eq(pthread_cancel(x[0].tid), 0);
	void *ret;
	ck_assert_int_eq(pthread_join(x[0].tid, &ret), 0);
	ck_assert_ptr_eq(ret, PTHREAD_CANCELED);
	uint64_t limit = now_ns() + (uint64_t)SF_WAIT_LIMIT_MS * 1000000u;
	size_t promoted = 0;
	while (!promoted && now_ns() < limit) {
		for (size_t i = 1; i < N && !promoted; i++)
			if (in_write_to_fd2(xfer_ostid(&x[i])))
				promoted = i;
		if (!promoted)
			sched_yield();
	}
	if (promoted) {
		ck_assert_int_eq(pthread_cancel(x[promoted].tid), 0);
		ck_assert_int_eq(pthread_join(x[promoted].tid, &ret), 0);
	}
	/* Lets the next promoted follower's "took over" line through. */
	ck_assert_int_eq(dup2(saved, 2), 2);
	char junk[4096];
	ck_assert_int_gt(read(pipe_fds[0], junk, sizeof(junk)), 0);
	ck_assert_msg(promoted, "no follower wrote its took-over line");
	ck_assert_ptr_eq(ret, PTHREAD_CANCELED);
	ck_assert_uint_eq(wait_requests(id, 2), 2); /* the next one's */
	open_gate(id);
	for (size_t i = 1; i < N; i++)
		if (i != promoted)
			join(&x[i]);
	close(saved);
	close(pipe_fds[1]);
	close(pipe_fds[0]);

	ck_assert_uint_eq(count_requests(id), 2);
	ck_assert_uint_eq(logcap_get(&logcap.expired), 0);
	size_t ref = promoted == 1 ? 2 : 1;
	for (size_t i = 1; i < N; i++) {
		if (i == promoted)
			continue;
		assert_pattern_body(x, i, 100000);
		assert_same_as(x, i, ref);
	}
	xfers_free(x, N);
	free(u);
	free(id);
}
END_TEST

/* ---- namespaces (issue 7, defect 6) ------------------------------------- */

/* A thread that moved to a network namespace of its own (unshare, called
 * the ordinary way so that the shim sees it) asks for the URL whose flight
 * the host namespace is running: 127.0.0.1 there is another loopback (down,
 * no origin), so its own request fails to connect.  Joining the host's
 * flight would have given it the host's response instead. */
static void *netns_main(void *p)
{
	struct xfer *x = p;
	sf_must(unshare(CLONE_NEWNET) == 0);
	return xfer_main(x);
}

START_TEST(other_network_namespace_gets_its_own_response)
{
	char *id = new_id();
	char *u = url("/bytes/1000?id=%s&gate=%s", id, id);
	struct xfer *x = xfers(2, u);
	x[0].pattern = x[1].pattern = true;
	start_leader(&x[0], id);
	ck_assert_int_eq(pthread_create(&x[1].tid, NULL, netns_main, &x[1]), 0);
	join(&x[1]); /* before the gate opens: it never waited on the host */
	ck_assert_msg(x[1].rc == CURLE_COULDNT_CONNECT, "rc %d (%s)", x[1].rc,
	              x[1].errbuf);
	ck_assert_uint_eq(x[1].body_len, 0);
	open_gate(id);
	join(&x[0]);
	assert_pattern_body(x, 0, 1000);
	ck_assert_uint_eq(count_requests(id), 1);
	ck_assert_uint_eq(joined(), 0);
	xfers_free(x, 2);
	free(u);
	free(id);
}
END_TEST

/* ---- hand-overs: every byte right, every deadline kept --------------------- */

/* The shared response cannot be stored (no temporary directory, a body
 * larger than SFSHIM_SPILL): every caller still gets the body exactly
 * once, headers included (defect: prefixes delivered two or three times). */
START_TEST(storage_failure_never_duplicates)
{
	setenv("TMPDIR", "/nonexistent-sfshim-tmp", 1);
	setenv("SFSHIM_SPILL", "65536", 1);
	char *id = new_id();
	char *u = url("/bytes/1048576?id=%s&gate=%s&chunk=16384", id, id);
	struct xfer *x = pattern_xfers(N_SAME, u);
	start_leader(&x[0], id);
	start_together(x + 1, N_SAME - 1);
	wait_joined(N_SAME - 1);
	open_gate(id);
	join_all(x, N_SAME);
	for (size_t i = 0; i < N_SAME; i++) {
		assert_pattern_body(x, i, 1048576);
		ck_assert_msg(x[i].nhdr == x[0].nhdr &&
		                      x[i].hdr.len == x[0].hdr.len &&
		                      memcmp(x[i].hdr.p, x[0].hdr.p,
		                             x[0].hdr.len) == 0,
		              "[%zu] headers:\n%s---\n%s", i,
		              sbuf_str(&x[i].hdr), sbuf_str(&x[0].hdr));
	}
	xfers_free(x, N_SAME);
	free(u);
	free(id);
}
END_TEST

static struct xfer *script_peer;  /* the transfer a hold waits for */
static size_t script_until;       /* ... until it has this many bytes */
static volatile size_t script_go; /* released holds: 1 */
static volatile size_t holding;   /* a hold is waiting */

/* The leader refuses when its follower has delivered something. */
static bool fail_when_peer_has_bytes(struct xfer *x, size_t len)
{
	if (x->body_len + len <= x->fail_after)
		return true;
	ck_assert(prog_wait(&script_peer->body_len, script_until));
	ck_assert(prog_wait(&holding, 1));
	return false;
}

/* Holds in the second piece until released. */
static bool hold_second_piece(struct xfer *x, size_t len)
{
	(void)len;
	if (x->pieces != 1)
		return true;
	pthread_mutex_lock(&prog_mu);
	holding = 1;
	pthread_cond_broadcast(&prog_cv);
	pthread_mutex_unlock(&prog_mu);
	ck_assert(prog_wait(&script_go, 1));
	return true;
}

static void release_holds(void)
{
	pthread_mutex_lock(&prog_mu);
	script_go = 1;
	pthread_cond_broadcast(&prog_cv);
	pthread_mutex_unlock(&prog_mu);
}

/* The leader fails on its own; the promoted follower's request gets a
 * different body (the resource changed).  The follower had part of the old
 * one: it must not get the rest of the new one with success (defect:
 * spliced bodies). */
START_TEST(changed_response_never_spliced)
{
	char *id = new_id();
	char *u = url("/bytes/300000?id=%s&gate=%s&chunk=16384&ver=1", id, id);
	struct xfer *x = xfers(2, u);
	for (size_t i = 0; i < 2; i++)
		x[i].pattern = x[i].any_version = true;
	x[0].fail_after = 100000;
	x[0].on_piece = fail_when_peer_has_bytes;
	script_peer = &x[1];
	script_until = 1;
	holding = 1;
	start_leader(&x[0], id);
	start(&x[1]);
	wait_joined(1);
	open_gate(id);
	join_all(x, 2);

	ck_assert_int_eq(x[0].rc, CURLE_WRITE_ERROR);
	ck_assert_uint_eq(count_requests(id), 2);
	ck_assert_msg(x[1].rc != CURLE_OK, "spliced: rc 0, %zu bytes",
	              x[1].body_len);
	ck_assert_msg(strstr(x[1].errbuf, "sfshim") != NULL, "errbuf '%s'",
	              x[1].errbuf);
	ck_assert_uint_eq(x[1].bad_bytes, 0);
	ck_assert_uint_lt(x[1].body_len, 300000);
	xfers_free(x, 2);
	free(u);
	free(id);
}
END_TEST

/* Two leaders fail on their own, one after the other, while a follower is
 * behind (held in its write callback): it still gets every byte once. */
START_TEST(successive_handovers_deliver_once)
{
	char *id = new_id();
	char *u = url("/bytes/300000?id=%s&gate=%s&chunk=16384", id, id);
	struct xfer *x = pattern_xfers(3, u);
	x[0].fail_after = 50000;
	x[0].on_piece = fail_when_peer_has_bytes;
	x[1].fail_after = 150000;
	x[2].on_piece = hold_second_piece;
	script_peer = &x[2];
	script_until = 1;
	start_leader(&x[0], id);
	start_together(x + 1, 2);
	wait_joined(2);
	open_gate(id);
	join(&x[0]);
	join(&x[1]);
	release_holds();
	join(&x[2]);

	ck_assert_int_eq(x[0].rc, CURLE_WRITE_ERROR);
	ck_assert_int_eq(x[1].rc, CURLE_WRITE_ERROR);
	assert_pattern_body(x, 2, 300000);
	ck_assert_uint_eq(count_requests(id), 3);
	xfers_free(x, 3);
	free(u);
	free(id);
}
END_TEST

static void opt_timeout_600ms(struct xfer *x, CURL *h)
{
	(void)x;
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 600L);
}

/* A follower that waited past SFSHIM_WAIT_MS and then asks alone is still
 * bound by its own timeout, counted from its own call (defect: the timeout
 * restarted at the hand-over). */
START_TEST(deadline_spans_the_handover)
{
	setenv("SFSHIM_WAIT_MS", "300", 1);
	char *id = new_id();
	char *u = url("/bytes/5000?id=%s&gate=%s", id, id);
	struct xfer *x = xfers(2, u);
	x[1].configure = opt_timeout_600ms;
	start_leader(&x[0], id);
	start(&x[1]);
	join(&x[1]); /* the origin holds both requests */
	open_gate(id);
	join(&x[0]);

	ck_assert_int_eq(x[1].rc, CURLE_OPERATION_TIMEDOUT);
	uint64_t ms = (x[1].t_end - x[1].t_start) / 1000000u;
	ck_assert_uint_ge(ms, 500); /* libcurl's timer may fire a ms early */
	/* Without the rule: 300 ms of waiting plus a full 600 ms. */
	ck_assert_msg(ms < 850, "perform took %" PRIu64 " ms", ms);
	long said = -1;
	ck_assert_msg(sscanf(x[1].errbuf,
	                     "Operation timed out after %ld milliseconds",
	                     &said) == 1 &&
	                      said >= 600 && (uint64_t)said <= ms + 5,
	              "errbuf '%s' (took %" PRIu64 " ms)", x[1].errbuf, ms);
	ck_assert_int_eq(x[0].rc, CURLE_OK);
	xfers_free(x, 2);
	free(u);
	free(id);
}
END_TEST

/* Aborts the leader's transfer (its own failure) at its first progress
 * call after 400 ms. */
static int abort_after_400ms(void *arg, curl_off_t dt, curl_off_t dn,
                             curl_off_t ut, curl_off_t un)
{
	struct xfer *x = arg;
	(void)dt, (void)dn, (void)ut, (void)un;
	return now_ns() - x->t_start >= 400000000u;
}

static void opt_abort_after_400ms(struct xfer *x, CURL *h)
{
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, abort_after_400ms);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
}

static void opt_timeout_1500ms(struct xfer *x, CURL *h)
{
	(void)x;
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 1500L);
}

/* A promoted follower's request gets what is left of its own timeout
 * (defect: it started again at the hand-over). */
START_TEST(promoted_follower_keeps_its_deadline)
{
	char *id = new_id();
	char *u = url("/bytes/5000?id=%s&gate=%s", id, id);
	struct xfer *x = xfers(2, u);
	x[0].configure = opt_abort_after_400ms;
	x[1].configure = opt_timeout_1500ms;
	start_leader(&x[0], id);
	start(&x[1]);
	wait_joined(1);
	join_all(x, 2); /* the origin holds every request */
	open_gate(id);

	ck_assert_int_eq(x[0].rc, CURLE_ABORTED_BY_CALLBACK);
	ck_assert_uint_eq(count_requests(id), 2); /* x[1] was promoted */
	ck_assert_int_eq(x[1].rc, CURLE_OPERATION_TIMEDOUT);
	uint64_t ms = (x[1].t_end - x[1].t_start) / 1000000u;
	/* Without the rule: at least 400 ms of following plus 1500 ms. */
	ck_assert_msg(ms >= 1400 && ms < 1800, "perform took %" PRIu64 " ms",
	              ms);
	long said = -1;
	ck_assert_msg(sscanf(x[1].errbuf,
	                     "Operation timed out after %ld milliseconds",
	                     &said) == 1 &&
	                      said >= 1500 && (uint64_t)said <= ms + 5,
	              "errbuf '%s' (took %" PRIu64 " ms)", x[1].errbuf, ms);
	xfers_free(x, 2);
	free(u);
	free(id);
}
END_TEST

/* A lock cycle through the program: the leader's write callback takes a
 * mutex that the follower's thread holds around its perform.  Without the
 * shim this program works; with it, SFSHIM_WAIT_MS must bound the
 * follower's wait without progress even after its first byte. */
static pthread_mutex_t cycle_mu = PTHREAD_MUTEX_INITIALIZER;

static bool lock_on_second_piece(struct xfer *x, size_t len)
{
	(void)len;
	if (x->pieces == 1) {
		pthread_mutex_lock(&cycle_mu);
		pthread_mutex_unlock(&cycle_mu);
	}
	return true;
}

static void *locked_xfer_main(void *arg)
{
	pthread_mutex_lock(&cycle_mu);
	xfer_main(arg);
	pthread_mutex_unlock(&cycle_mu);
	return NULL;
}

START_TEST(wait_limit_applies_after_first_byte)
{
	setenv("SFSHIM_WAIT_MS", "300", 1);
	char *id = new_id();
	char *u = url("/bytes/100000?id=%s&gate=%s&chunk=16384", id, id);
	struct xfer *x = pattern_xfers(2, u);
	x[0].on_piece = lock_on_second_piece;
	start_leader(&x[0], id);
	ck_assert_int_eq(
	        pthread_create(&x[1].tid, NULL, locked_xfer_main, &x[1]), 0);
	wait_joined(1);
	open_gate(id);
	join_all(x, 2);
	assert_pattern_body(x, 0, 100000);
	assert_pattern_body(x, 1, 100000);
	ck_assert_uint_eq(count_requests(id), 2);
	xfers_free(x, 2);
	free(u);
	free(id);
}
END_TEST

static void opt_low_speed(struct xfer *x, CURL *h)
{
	(void)x;
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1000L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 1L);
}

/* A follower's own LOW_SPEED_LIMIT/LOW_SPEED_TIME end its wait on a
 * stalled leader, as libcurl would end its own transfer. */
START_TEST(follower_low_speed_limit)
{
	char *id = new_id();
	char *u = url("/bytes/5000?id=%s&gate=%s", id, id);
	struct xfer *x = xfers(2, u);
	x[1].configure = opt_low_speed;
	start_leader(&x[0], id);
	start(&x[1]);
	join(&x[1]);
	open_gate(id);
	join(&x[0]);
	ck_assert_int_eq(x[1].rc, CURLE_OPERATION_TIMEDOUT);
	ck_assert_msg(strncmp(x[1].errbuf, "Operation too slow", 18) == 0,
	              "errbuf '%s'", x[1].errbuf);
	ck_assert_int_eq(x[0].rc, CURLE_OK);
	ck_assert_uint_eq(count_requests(id), 1);
	xfers_free(x, 2);
	free(u);
	free(id);
}
END_TEST

/* A header line longer than CURL_MAX_WRITE_SIZE reaches HEADERFUNCTION in
 * one call, for the leader and its followers, as libcurl passes it. */
START_TEST(long_header_line_is_whole)
{
	char *id = new_id();
	char *u = url("/bytes/1000?id=%s&gate=%s&longhdr=20000", id, id);
	struct xfer *x = xfers(N, u);
	start_leader_and_followers(x, N, id);
	open_gate(id);
	join_all(x, N);
	for (size_t i = 0; i < N; i++) {
		ck_assert_int_eq(x[i].rc, CURLE_OK);
		ck_assert_uint_eq(x[i].max_hdr_line, 20010);
		assert_same_as(x, i, 0);
	}
	xfers_free(x, N);
	free(u);
	free(id);
}
END_TEST

static int continue_progress(void *arg, curl_off_t dt, curl_off_t dn,
                             curl_off_t ut, curl_off_t un)
{
	struct xfer *x = arg;
	(void)dt, (void)dn, (void)ut, (void)un;
	x->progress_calls++;
	return CURL_PROGRESSFUNC_CONTINUE;
}

static void opt_continue_progress(struct xfer *x, CURL *h)
{
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, continue_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
}

/* CURL_PROGRESSFUNC_CONTINUE asks for libcurl's own meter: not an abort. */
START_TEST(progress_continue_is_not_abort)
{
	char *id = new_id();
	char *u = url("/bytes/5000?id=%s&gate=%s", id, id);
	struct xfer *x = xfers(2, u);
	x[1].configure = opt_continue_progress;
	x[1].pattern = x[0].pattern = true;
	start_leader(&x[0], id);
	start(&x[1]);
	wait_joined(1);
	open_gate(id);
	join_all(x, 2);
	ck_assert_int_gt(x[1].progress_calls, 0);
	assert_pattern_body(x, 1, 5000);
	xfers_free(x, 2);
	free(u);
	free(id);
}
END_TEST

/* Inside a follower's write callback, getinfo and the header API answer
 * what libcurl answers there: what the leader's handle said. */
START_TEST(getinfo_inside_follower_callbacks)
{
	char *id = new_id();
	char *u = url("/bytes/50000?id=%s&gate=%s", id, id);
	struct xfer *x = xfers(N, u);
	start_leader_and_followers(x, N, id);
	open_gate(id);
	join_all(x, N);
	ck_assert_int_eq(x[0].mid_code, 200);
	for (size_t i = 0; i < N; i++) {
		ck_assert_int_eq(x[i].rc, CURLE_OK);
		ck_assert_msg(
		        x[i].mid_code == x[0].mid_code &&
		                strcmp(x[i].mid_type, x[0].mid_type) == 0 &&
		                x[i].mid_clen == x[0].mid_clen &&
		                strcmp(x[i].mid_hdr, x[0].mid_hdr) == 0,
		        "[%zu] mid-transfer: %ld %s %" PRId64
		        " %s; leader: %ld %s %" PRId64 " %s",
		        i, x[i].mid_code, x[i].mid_type, (int64_t)x[i].mid_clen,
		        x[i].mid_hdr, x[0].mid_code, x[0].mid_type,
		        (int64_t)x[0].mid_clen, x[0].mid_hdr);
	}
	xfers_free(x, N);
	free(u);
	free(id);
}
END_TEST

/* ---- the shim's own allocations, made to fail ------------------------------ */

/* In the plain build, this program's malloc family comes first in the
 * global scope, so it is what the preloaded shim calls too.  On a thread
 * that armed it, allocations called from libsfshim.so's own code fail;
 * libcurl's and libc's go on.  (Sanitizer builds keep the runtime's
 * allocator: the tests using this are skipped there.) */
#if !SANITIZED
#include <link.h>
#include <stdatomic.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

static uintptr_t shim_lo, shim_hi;
static __thread bool shim_allocs_fail;
static atomic_uint shim_allocs_failed;

static int find_shim(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size, (void)arg;
	if (!info->dlpi_name || !strstr(info->dlpi_name, "libsfshim.so"))
		return 0;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
			continue;
		shim_lo = info->dlpi_addr + ph->p_vaddr;
		shim_hi = shim_lo + ph->p_memsz;
	}
	return 1;
}

static bool fail_here(const void *caller)
{
	if (!shim_allocs_fail || (uintptr_t)caller < shim_lo ||
	    (uintptr_t)caller >= shim_hi)
		return false;
	atomic_fetch_add(&shim_allocs_failed, 1);
	return true;
}

void *malloc(size_t n)
{
	return fail_here(__builtin_return_address(0)) ? NULL : __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
	return fail_here(__builtin_return_address(0)) ? NULL
	                                              : __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
	return fail_here(__builtin_return_address(0)) ? NULL
	                                              : __libc_realloc(p, n);
}

char *strdup(const char *s)
{
	if (fail_here(__builtin_return_address(0)))
		return NULL;
	size_t n = strlen(s) + 1;
	char *d = __libc_malloc(n);
	return d ? memcpy(d, s, n) : NULL;
}

char *strndup(const char *s, size_t max)
{
	if (fail_here(__builtin_return_address(0)))
		return NULL;
	size_t n = strnlen(s, max);
	char *d = __libc_malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

static bool can_fail_shim_allocs(void)
{
	if (!shim_hi)
		dl_iterate_phdr(find_shim, NULL);
	return shim_hi != 0;
}

/* Arms on the follower's first header line: its reads of pieces that
 * straddle the stream's chunks or lie in the spill file need a buffer. */
static void starve_from_first_header(struct xfer *x)
{
	(void)x;
	shim_allocs_fail = true;
}

/* Arms on the leader's last body piece: the shim's copy of its getinfo
 * answers, made after the transfer, cannot be made. */
static bool starve_after_last_piece(struct xfer *x, size_t len)
{
	if (x->body_len + len == x->fail_after)
		shim_allocs_fail = true;
	return true;
}

/* A follower whose buffer for the spill file cannot be allocated makes its
 * own call, and gets what that call gets (defect: CURLE_OUT_OF_MEMORY). */
START_TEST(follower_short_of_memory_fetches_alone)
{
	if (!can_fail_shim_allocs())
		return;
	setenv("SFSHIM_SPILL", "65536", 1);
	char *id = new_id();
	char *u = url("/bytes/300000?id=%s&gate=%s&chunk=16384", id, id);
	struct xfer *x = xfers(2, u);
	x[0].pattern = x[1].pattern = true;
	x[1].on_line = starve_from_first_header;
	start_leader(&x[0], id);
	start(&x[1]);
	wait_joined(1);
	open_gate(id);
	join_all(x, 2);
	ck_assert_uint_gt(atomic_load(&shim_allocs_failed), 0);
	assert_pattern_body(x, 0, 300000);
	assert_pattern_body(x, 1, 300000);
	assert_info_has(x, 1, "type=application/octet-stream");
	ck_assert_uint_eq(count_requests(id), 2);
	xfers_free(x, 2);
	free(u);
	free(id);
}
END_TEST

/* The leader cannot copy its answers for its followers: they make their
 * own calls rather than answer getinfo wrongly (defect: no CONTENT_TYPE). */
START_TEST(leader_short_of_memory_followers_fetch_alone)
{
	if (!can_fail_shim_allocs())
		return;
	char *id = new_id();
	char *u = url("/bytes/20000?id=%s&gate=%s", id, id);
	struct xfer *x = pattern_xfers(N, u);
	x[0].on_piece = starve_after_last_piece;
	x[0].fail_after = 20000; /* never refused: marks the last piece */
	start_leader_and_followers(x, N, id);
	open_gate(id);
	join_all(x, N);
	ck_assert_uint_gt(atomic_load(&shim_allocs_failed), 0);
	for (size_t i = 0; i < N; i++) {
		assert_pattern_body(x, i, 20000);
		assert_info_has(x, i, "type=application/octet-stream");
		assert_same_as(x, i, 0);
	}
	ck_assert_uint_eq(count_requests(id), N);
	xfers_free(x, N);
	free(u);
	free(id);
}
END_TEST
#endif

#define ADD(tc, t)                             \
	do {                                   \
		if (wanted(#t))                \
			tcase_add_test(tc, t); \
	} while (0)
#define ADD_LOOP(tc, t, from, to)                             \
	do {                                                  \
		if (wanted(#t))                               \
			tcase_add_loop_test(tc, t, from, to); \
	} while (0)

int main(void)
{
	/* Before any fork: libcurl's global state, never the easy API (that
	 * would make the shim read its configuration in the runner). */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 2;
	Suite *s = suite_create("curl");
	TCase *tc = tcase_create("curl");
	tcase_add_checked_fixture(tc, setup, teardown);
	ADD(tc, same_url_one_request);
	ADD(tc, url_filters);
	ADD(tc, distinct_urls_one_request_each);
	ADD_LOOP(tc, differing_option_splits_requests, 0,
	         sizeof(split_cases) / sizeof(split_cases[0]));
	ADD_LOOP(tc, passes_through, 0,
	         sizeof(pass_cases) / sizeof(pass_cases[0]));
	ADD_LOOP(tc, http_errors_are_shared, 0,
	         sizeof(status_cases) / sizeof(status_cases[0]));
	ADD(tc, connection_refused_is_shared);
	ADD(tc, redirect_chain_is_shared);
	ADD(tc, env_is_read_per_test);
	ADD(tc, leader_short_write_is_its_own);
	ADD(tc, follower_short_write_is_its_own);
	ADD(tc, follower_timeout_is_its_own);
	ADD(tc, follower_progress_abort_is_its_own);
	ADD_LOOP(tc, follower_own_failure_answers_getinfo, 0,
	         sizeof(own_failure_cases) / sizeof(own_failure_cases[0]));
	ADD(tc, leader_cancelled_promotes_a_follower);
	ADD(tc, follower_cancelled_leaves_quietly);
	ADD(tc, retry_errors_makes_own_requests);
	ADD(tc, default_fwrite_to_files);
	ADD(tc, header_data_goes_to_write_function);
	ADD(tc, include_header_in_body);
	ADD(tc, big_body_spills_to_file);
	ADD(tc, followers_stream_before_leader_ends);
	ADD(tc, leader_jumping_out_of_callback_releases_followers);
	ADD(tc, follower_cancelled_in_its_join_log_line);
	ADD(tc, leader_cancelled_in_its_handover_log_line);
	ADD(tc, promoted_follower_cancelled_in_its_log_line);
	ADD_LOOP(tc, follower_jumping_out_of_callback_releases_all, 0, 3);
	ADD(tc, other_network_namespace_gets_its_own_response);
	ADD(tc, storage_failure_never_duplicates);
	ADD(tc, changed_response_never_spliced);
	ADD(tc, successive_handovers_deliver_once);
	ADD(tc, deadline_spans_the_handover);
	ADD(tc, promoted_follower_keeps_its_deadline);
	ADD(tc, wait_limit_applies_after_first_byte);
	ADD(tc, follower_low_speed_limit);
	ADD(tc, long_header_line_is_whole);
	ADD(tc, progress_continue_is_not_abort);
	ADD(tc, getinfo_inside_follower_callbacks);
#if !SANITIZED
	ADD(tc, follower_short_of_memory_fetches_alone);
	ADD(tc, leader_short_of_memory_followers_fetch_alone);
#endif
	suite_add_tcase(s, tc);
	int failed = sf_run_suite(s);
	curl_global_cleanup();
	return failed ? 1 : 0;
}
