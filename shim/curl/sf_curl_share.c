/* sf_curl_share.c - the table of known share handles and the verdict on a
 * handle attached to one (see sf_curl_share.h for the rules). */
#include "curl/sf_curl_share.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* The data types whose sharing the verdict knows (curl/curl.h). */
#define BIT(t) (1u << (t))
#define KNOWN_DATA                                                       \
	(BIT(CURL_LOCK_DATA_COOKIE) | BIT(CURL_LOCK_DATA_DNS) |          \
	 BIT(CURL_LOCK_DATA_SSL_SESSION) | BIT(CURL_LOCK_DATA_CONNECT) | \
	 BIT(CURL_LOCK_DATA_PSL) | BIT(CURL_LOCK_DATA_HSTS))

struct sf_curl_share {
	CURLSH *sh;
	const struct sf_curl_real *api; /* the library that created it */
	atomic_uint refs;               /* the table's, plus one per handle */
	/* Written by curl_share_setopt (only while no handle is attached,
	 * libcurl's rule) and read at perform: atomics, no lock. */
	atomic_uint data;       /* CURLSHOPT_SHARE types in 0..31 */
	atomic_bool strange;    /* a type beyond 31, or an unknown option */
	atomic_bool hsts_dirty; /* the HSTS cache may hold an entry */
	atomic_bool dead;       /* curl_share_cleanup freed it */
	struct sf_curl_share *next;
};

/* Shares are few (one per program, or per thread pool): one list. */
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sf_curl_share *table;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* The list survives fork (the child owns copies of the same shares). */
static void lock_table(void)
{
	pthread_mutex_lock(&table_lock);
}

static void unlock_table(void)
{
	pthread_mutex_unlock(&table_lock);
}

static void register_atfork(void)
{
	pthread_atfork(lock_table, unlock_table, unlock_table);
}

static __thread int creating __attribute__((tls_model("initial-exec")));

void sf_curl_share_creating_enter(void)
{
	creating++;
}

void sf_curl_share_creating_leave(void)
{
	creating--;
}

bool sf_curl_share_creating(void)
{
	return creating != 0;
}

/* Drops n references at once (one atomic step, so the record is freed
 * exactly once, by whoever drops the last). */
static void unref_n(struct sf_curl_share *s, unsigned n)
{
	if (s &&
	    atomic_fetch_sub_explicit(&s->refs, n, memory_order_acq_rel) == n)
		free(s);
}

static void unref(struct sf_curl_share *s)
{
	unref_n(s, 1);
}

/* The live record of sh with a reference taken, or NULL. */
static struct sf_curl_share *find_ref(CURLSH *sh)
{
	if (!sh)
		return NULL;
	pthread_mutex_lock(&table_lock);
	struct sf_curl_share *s = table;
	while (s && s->sh != sh)
		s = s->next;
	if (s)
		atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	pthread_mutex_unlock(&table_lock);
	return s;
}

/* Unlinks s if it is still listed; true when it was (the caller then owns
 * the table's reference). */
static bool unlink_share(struct sf_curl_share *s)
{
	bool found = false;
	for (struct sf_curl_share **p = &table; *p; p = &(*p)->next) {
		if (*p == s) {
			*p = s->next;
			found = true;
			break;
		}
	}
	if (found)
		atomic_store(&s->dead, true);
	return found;
}

void sf_curl_share_add(CURLSH *sh, const struct sf_curl_real *api)
{
	pthread_once(&atfork_once, register_atfork);
	struct sf_curl_share *s = calloc(1, sizeof(*s));
	if (!s)
		return; /* unknown: its handles pass through */
	s->sh = sh;
	s->api = api;
	atomic_init(&s->refs, 1);
	/* curl_share_init shares the share lock itself (no data). */
	atomic_init(&s->data, BIT(CURL_LOCK_DATA_SHARE));
	pthread_mutex_lock(&table_lock);
	/* A record for a recycled address (a share freed behind the shim's
	 * back) must not shadow the new one. */
	struct sf_curl_share *old = table;
	while (old && old->sh != sh)
		old = old->next;
	if (old && !unlink_share(old))
		old = NULL;
	s->next = table;
	table = s;
	pthread_mutex_unlock(&table_lock);
	unref(old);
}

const struct sf_curl_real *sf_curl_share_owner(CURLSH *sh,
                                               const struct sf_curl_real *api)
{
	struct sf_curl_share *s = find_ref(sh);
	if (!s)
		return api;
	api = s->api;
	unref(s);
	return api;
}

void sf_curl_share_setopt_done(CURLSH *sh, CURLSHoption opt, long arg,
                               CURLSHcode rc)
{
	if (rc != CURLSHE_OK)
		return; /* refused: libcurl changed nothing we rely on */
	struct sf_curl_share *s = find_ref(sh);
	if (!s)
		return;
	switch (opt) {
	case CURLSHOPT_SHARE:
	case CURLSHOPT_UNSHARE:
		/* An int, passed as such; types past 31 are not libcurl's. */
		if ((int)arg < 0 || (int)arg > 31)
			atomic_store(&s->strange, true);
		else if (opt == CURLSHOPT_SHARE)
			atomic_fetch_or(&s->data, BIT((int)arg));
		else
			atomic_fetch_and(&s->data, ~BIT((int)arg));
		break;
	case CURLSHOPT_LOCKFUNC:
	case CURLSHOPT_UNLOCKFUNC:
	case CURLSHOPT_USERDATA:
		break; /* how sharers lock: no effect on any transfer's bytes */
	default:
		atomic_store(&s->strange, true);
		break;
	}
	unref(s);
}

struct sf_curl_share *sf_curl_share_cleanup_begin(CURLSH *sh)
{
	return find_ref(sh);
}

void sf_curl_share_cleanup_done(struct sf_curl_share *s, CURLSHcode rc)
{
	if (!s)
		return;
	bool owned = false;
	if (rc == CURLSHE_OK) {
		/* Freed by libcurl: the address may come back from the next
		 * curl_share_init, which replaces any record still listed. */
		pthread_mutex_lock(&table_lock);
		owned = unlink_share(s);
		pthread_mutex_unlock(&table_lock);
	}
	/* The caller's reference, and the table's if it was listed. */
	unref_n(s, owned ? 2 : 1);
}

/* ---- easy handles ------------------------------------------------------ */

/* Could a transfer of h load an entry into the HSTS cache it uses, or
 * learn one: anything but a plain http:// URL without redirects, or an
 * HSTS option of its own. */
static bool hsts_risky(const struct sf_curl_handle *h)
{
	const struct sf_curl_opt *url = sf_curl_handle_get(h, CURLOPT_URL);
	if (url && url->v.s && strncasecmp(url->v.s, "http://", 7) != 0)
		return true;
	return h->hsts_engine ||
	       sf_curl_handle_is_set(h, CURLOPT_FOLLOWLOCATION) ||
	       sf_curl_handle_is_set(h, CURLOPT_CURLU) ||
	       sf_curl_handle_get(h, CURLOPT_HSTS) ||
	       sf_curl_handle_get(h, CURLOPT_HSTS_CTRL) ||
	       sf_curl_handle_is_set(h, CURLOPT_HSTSREADFUNCTION) ||
	       sf_curl_handle_is_set(h, CURLOPT_HSTSWRITEFUNCTION);
}

static bool shares(const struct sf_curl_share *s, curl_lock_data t)
{
	return (atomic_load_explicit(&s->data, memory_order_relaxed) &
	        BIT(t)) != 0;
}

static void check_hsts(const struct sf_curl_handle *h)
{
	struct sf_curl_share *s = h->share;
	if (s && shares(s, CURL_LOCK_DATA_HSTS) && hsts_risky(h))
		atomic_store(&s->hsts_dirty, true);
}

static void attach(struct sf_curl_handle *h, CURLSH *sh)
{
	struct sf_curl_share *old = h->share;
	h->share = find_ref(sh);
	h->share_foreign = sh && !h->share;
	unref(old);
}

void sf_curl_share_easy_setopt(struct sf_curl_handle *h, CURLoption id,
                               unsigned char kind, union sf_curl_optval v)
{
	(void)kind;
	if (!h) {
		/* A handle the shim does not track (libcurl's DoH handles
		 * inherit the share this way): its transfers are unseen. */
		struct sf_curl_share *s;
		if (id == CURLOPT_SHARE && (s = find_ref(v.p))) {
			if (shares(s, CURL_LOCK_DATA_HSTS))
				atomic_store(&s->hsts_dirty, true);
			unref(s);
		}
		return;
	}
	switch (id) {
	case CURLOPT_SHARE:
		attach(h, v.p);
		break;
	/* libcurl's cookie engine: COOKIEFILE (loaded at perform), COOKIEJAR
	 * (even NULL: it initialises the jar), COOKIELIST. */
	case CURLOPT_COOKIEFILE:
	case CURLOPT_COOKIELIST:
		if (v.s)
			h->cookie_engine = true;
		break;
	case CURLOPT_COOKIEJAR:
		h->cookie_engine = true;
		break;
	/* An HSTS cache of the handle's own (or, while attached, the
	 * share's, which check_hsts then marks). */
	case CURLOPT_HSTS:
		h->hsts_engine = true;
		break;
	case CURLOPT_HSTS_CTRL:
		if (v.l & CURLHSTS_ENABLE)
			h->hsts_engine = true;
		break;
	default:
		break;
	}
	check_hsts(h);
}

void sf_curl_share_easy_dup(struct sf_curl_handle *dst,
                            const struct sf_curl_handle *src)
{
	dst->cookie_engine = src->cookie_engine;
	dst->hsts_engine =
	        src->hsts_engine ||
	        (src->share && shares(src->share, CURL_LOCK_DATA_HSTS));
}

void sf_curl_share_easy_detach(struct sf_curl_handle *h)
{
	unref(h->share);
	h->share = NULL;
	h->share_foreign = false;
}

const char *sf_curl_share_verdict(const struct sf_curl_handle *h)
{
	/* Whether the jar is the handle's own or a share's: the transfer
	 * would send and store cookies. */
	if (h->cookie_engine)
		return "cookie engine on";
	if (h->share_foreign)
		return "CURLOPT_SHARE set"; /* as before share handles were known */
	const struct sf_curl_share *s = h->share;
	if (!s) {
		if (h->hsts_engine)
			return "HSTS engine on";
		return NULL;
	}
	if (atomic_load(&s->dead))
		return "CURLOPT_SHARE set"; /* libcurl's view and ours differ */
	unsigned data = atomic_load_explicit(&s->data, memory_order_relaxed);
	if (atomic_load(&s->strange) ||
	    (data & ~(KNOWN_DATA | BIT(CURL_LOCK_DATA_SHARE))))
		return "CURLOPT_SHARE: unknown data shared";
	if (data & BIT(CURL_LOCK_DATA_HSTS)) {
		/* HSTS_CTRL=0 even frees the share's cache in libcurl 7.88;
		 * a file loads into it. */
		if (sf_curl_handle_get(h, CURLOPT_HSTS) ||
		    sf_curl_handle_get(h, CURLOPT_HSTS_CTRL))
			return "HSTS option with a shared HSTS cache";
		/* A cache that may hold entries: sf_curl_share_key_scope. */
	} else if (h->hsts_engine) {
		return "HSTS engine on";
	}
	return NULL;
}

size_t sf_curl_share_key_scope(const struct sf_curl_handle *h,
                               unsigned char out[SF_CURL_SHARE_SCOPE_MAX])
{
	const struct sf_curl_share *s = h->share;
	if (!s || !shares(s, CURL_LOCK_DATA_HSTS) ||
	    !atomic_load(&s->hsts_dirty))
		return 0;
	/* This process's share: a forked child's copy is another cache. */
	pid_t pid = getpid();
	memcpy(out, &pid, sizeof(pid));
	memcpy(out + sizeof(pid), &s->sh, sizeof(s->sh));
	return sizeof(pid) + sizeof(s->sh);
}
