/* sf_curl_lead.c - the leader: performs the real transfer and records it.
 *
 * The shim's write and header callbacks stand in for the program's on the
 * leader's handle during its perform: they append each piece to the
 * flight's reply and then hand it to the program's own callbacks, so that
 * program sees exactly what it would without the shim. */
#include "curl/sf_curl_xfer.h"

#include "common/sf_guard.h"
#include "common/sf_log.h"
#include "common/sf_stats.h"
#include "core/sf_leave.h"
#include "curl/sf_curl_reply.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* Replies of one flight, by generation: the flight keeps a reference to
 * each until it is freed, so a follower can read any of them without a
 * reference of its own.  A flight whose leaders fail more often than this
 * stops publishing; its followers then fetch alone. */
#define MAX_GENERATIONS 6

struct flight_replies {
	_Atomic(struct sf_curl_reply *) gen[MAX_GENERATIONS];
	_Atomic unsigned count;
};
_Static_assert(sizeof(struct flight_replies) <= SF_USER_SIZE,
               "flight scratch space too small");

static void release_replies(void *user)
{
	struct flight_replies *fr = user;
	unsigned n = atomic_load_explicit(&fr->count, memory_order_acquire);
	for (unsigned i = 0; i < n; i++)
		sf_curl_reply_unref(atomic_load_explicit(&fr->gen[i],
		                                         memory_order_relaxed));
}

/* Leader: makes r the flight's current reply.  False when the flight has
 * had too many leaders already. */
static bool publish_reply(sf_flight *f, struct sf_curl_reply *r)
{
	struct flight_replies *fr = sf_flight_user(f);
	unsigned n = atomic_load_explicit(&fr->count, memory_order_relaxed);
	if (n == MAX_GENERATIONS)
		return false;
	sf_curl_reply_ref(r);
	atomic_store_explicit(&fr->gen[n], r, memory_order_relaxed);
	atomic_store_explicit(&fr->count, n + 1, memory_order_release);
	sf_flight_set_cleanup(f, release_replies);
	sf_flight_notify(f);
	return true;
}

struct sf_curl_reply *sf_curl_current_reply(sf_flight *f)
{
	struct flight_replies *fr = sf_flight_user(f);
	unsigned n = atomic_load_explicit(&fr->count, memory_order_acquire);
	return n ? atomic_load_explicit(&fr->gen[n - 1], memory_order_relaxed)
	         : NULL;
}

/* The leader's side of a transfer, reached from libcurl's callbacks. */
struct lead {
	struct sf_curl_xfer *p;
	sf_flight *f;                /* NULL once detached, or alone */
	struct sf_curl_reply *reply; /* what this leader records into */
	bool own_failure;            /* the program's callback refused */
	bool sealed;                 /* no one may join any more */
	size_t charged;              /* bytes counted in lone_bytes */
	char errbuf[CURL_ERROR_SIZE];
};

/* The leader stops sharing: followers get a new leader. */
static void detach(struct lead *l)
{
	if (l->f)
		sf_flight_abandon(l->f);
	l->f = NULL;
}

/* Memory held, process-wide, by replies nobody follows yet, and how much
 * of it one reply may take.  A burst of distinct URLs must not cost a
 * reply's worth of memory each: past the budget, a transfer that nobody
 * has joined stops being stored, and so does one whose reply outgrows
 * SFSHIM_SPILL (a lone large download is never copied to a temporary
 * file).  Callers arriving later start a flight of their own.  Once
 * someone follows, the reply is kept whole for them. */
#define LONE_BUDGET_SPILLS 4
static _Atomic size_t lone_bytes;

static void unstore(struct lead *l)
{
	atomic_fetch_sub_explicit(&lone_bytes, l->charged,
	                          memory_order_relaxed);
	l->charged = 0;
}

static bool worth_storing(struct lead *l, size_t n)
{
	if (l->sealed || sf_flight_followers(l->f))
		return true;
	size_t spill = l->p->cfg->spill_bytes;
	if (sf_stream_length(l->reply->stream) + n <= spill) {
		size_t was = atomic_fetch_add_explicit(&lone_bytes, n,
		                                       memory_order_relaxed);
		if (was + n <= LONE_BUDGET_SPILLS * spill) {
			l->charged += n;
			return true;
		}
		atomic_fetch_sub_explicit(&lone_bytes, n, memory_order_relaxed);
	}
	l->sealed = true;
	if (sf_flight_seal(l->f))
		return true; /* one joined just now */
	detach(l);
	sf_curl_reply_unref(l->reply);
	l->reply = NULL;
	return false;
}

static void record(struct lead *l, enum sf_curl_rec type, const char *p,
                   size_t n)
{
	if (!l->f || !worth_storing(l, SF_REC_HDRLEN + n))
		return;
	if (sf_curl_reply_append(l->reply, type, p, n) < 0) {
		sf_log(SF_LOG_ERROR,
		       "cannot store the response of %s (%m); "
		       "its followers fetch it themselves",
		       l->p->key.url);
		detach(l);
		return;
	}
	sf_flight_notify(l->f);
}

static size_t own_result(struct lead *l, CURLcode rc, size_t n)
{
	if (rc == CURLE_OK)
		return n;
	l->own_failure = true;
	detach(l);
	return l->p->d.paused ? CURL_WRITEFUNC_PAUSE : 0;
}

static size_t lead_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct lead *l = arg;
	size_t n = size * nmemb;
	record(l, SF_REC_BODY, ptr, n);
	return own_result(l, sf_deliver_body(&l->p->d, ptr, n), n);
}

static size_t lead_header(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct lead *l = arg;
	size_t n = size * nmemb;
	record(l, SF_REC_HEADER, ptr, n);
	return own_result(l, sf_deliver_header(&l->p->d, ptr, n), n);
}

static void set_ptr(const struct sf_curl_xfer *p, CURLoption opt, void *v)
{
	p->api->easy_setopt(p->h->easy, opt, v);
}

/* The shim's callbacks in place of the program's, for this perform only.
 * CURLOPT_HEADER is turned off so that the write callback sees only body
 * data; the shim hands header lines to the program's write callback
 * itself, in libcurl's order. */
static void install(struct lead *l)
{
	const struct sf_curl_xfer *p = l->p;
	set_ptr(p, CURLOPT_WRITEFUNCTION, (void *)lead_write);
	set_ptr(p, CURLOPT_WRITEDATA, l);
	set_ptr(p, CURLOPT_HEADERFUNCTION, (void *)lead_header);
	set_ptr(p, CURLOPT_HEADERDATA, l);
	set_ptr(p, CURLOPT_ERRORBUFFER, l->errbuf);
	p->api->easy_setopt(p->h->easy, CURLOPT_HEADER, 0L);
}

static void *recorded_ptr(const struct sf_curl_xfer *p, CURLoption opt,
                          void *dflt)
{
	const struct sf_curl_opt *o = sf_curl_handle_get(p->h, opt);
	return o ? o->v.p : dflt;
}

/* Puts back what the program set (or libcurl's defaults). */
static void restore(const struct sf_curl_xfer *p)
{
	set_ptr(p, CURLOPT_WRITEFUNCTION,
	        recorded_ptr(p, CURLOPT_WRITEFUNCTION, NULL));
	set_ptr(p, CURLOPT_WRITEDATA,
	        recorded_ptr(p, CURLOPT_WRITEDATA, stdout));
	set_ptr(p, CURLOPT_HEADERFUNCTION,
	        recorded_ptr(p, CURLOPT_HEADERFUNCTION, NULL));
	set_ptr(p, CURLOPT_HEADERDATA,
	        recorded_ptr(p, CURLOPT_HEADERDATA, NULL));
	set_ptr(p, CURLOPT_ERRORBUFFER,
	        recorded_ptr(p, CURLOPT_ERRORBUFFER, NULL));
	p->api->easy_setopt(p->h->easy, CURLOPT_HEADER,
	                    p->d.include_header ? 1L : 0L);
}

static void lead_cleanup(void *arg)
{
	struct lead *l = arg;
	sf_guard_leave();
	detach(l);
	restore(l->p);
	sf_curl_reply_unref(l->reply);
	unstore(l);
	sf_curl_key_free(&l->p->key);
}

/* One real perform, run guarded (core/sf_leave.h). */
struct perform {
	const struct sf_curl_real *api;
	CURL *easy;
	CURLcode code;
	int depth;
};

static void perform_call(void *arg)
{
	struct perform *x = arg;
	x->code = x->api->easy_perform(x->easy);
}

static CURLcode real_perform(struct lead *l)
{
	struct perform x = { l->p->api, l->p->h->easy, CURLE_OK, 0 };
	install(l);
	sf_guard_enter();
	/* libcurl waits in poll(), a cancellation point, and a callback may
	 * longjmp out of it: either way lead_cleanup releases the flight. */
	sf_leave_guarded(perform_call, &x, lead_cleanup, l);
	sf_guard_leave();
	restore(l->p);
	return x.code;
}

/* A plain perform left without returning puts the guard back. */
static void alone_left(void *arg)
{
	struct perform *x = arg;
	sf_guard_restore(x->depth);
}

/* Results that belong to this leader alone are its own failures (its
 * progress callback, its timeout, its memory); the rest is the transfer's.
 * (A refusal by the program's own callback already detached the leader.)
 * sf_share_rule() decides what followers do with either. */
static enum sf_result judge(CURLcode code)
{
	if (code == CURLE_OK)
		return SF_RESULT_OK;
	if (code == CURLE_ABORTED_BY_CALLBACK ||
	    code == CURLE_OPERATION_TIMEDOUT || code == CURLE_OUT_OF_MEMORY)
		return SF_RESULT_OWN;
	return SF_RESULT_ERROR;
}

/* Performs the request for real.  With a flight, records the reply for its
 * followers; without one (a follower fetching alone after partly
 * delivering), only skips what the program already has. */
CURLcode sf_curl_lead(struct sf_curl_xfer *p, sf_flight *f)
{
	struct lead l = { .p = p, .f = f };
	if (f) {
		l.reply = sf_curl_reply_new(p->cfg->spill_bytes);
		if (!l.reply || !publish_reply(f, l.reply))
			detach(&l);
	}
	if (p->d.errbuf)
		p->d.errbuf[0] = '\0';
	CURLcode code = real_perform(&l);
	if (p->d.errbuf)
		memcpy(p->d.errbuf, l.errbuf, CURL_ERROR_SIZE);
	if (l.own_failure) /* libcurl's text may name the wrong callback */
		sf_delivery_error(&p->d, p->d.failure);

	enum sf_share rule = sf_share_rule(judge(code), p->cfg->retry_errors);
	if (l.f && rule == SF_SHARE_HANDOVER) {
		sf_log(SF_LOG_INFO,
		       "%s: leader failed on its own (%d), "
		       "handing over",
		       p->key.url, (int)code);
		detach(&l);
	} else if (l.f) {
		l.reply->code = code;
		memcpy(l.reply->errmsg, l.errbuf, CURL_ERROR_SIZE);
		l.reply->retry = rule == SF_SHARE_NOTHING;
		sf_curl_reply_snapshot(l.reply, p->api, p->h->easy);
		unsigned followers = sf_flight_seal(f) - p->promoted;
		if (followers)
			sf_stats_flight(SF_API_CURL, p->key.url, followers);
		/* The flight's own reference keeps the reply alive. */
		sf_flight_finish(f, l.reply, NULL);
	}
	unstore(&l);
	sf_curl_reply_unref(l.reply);
	return code;
}

/* A plain perform: the program's callbacks stay in place. */
CURLcode sf_curl_alone(struct sf_curl_xfer *p)
{
	if (p->d.skip_headers || p->d.skip_body)
		return sf_curl_lead(p, NULL);
	struct perform x = { p->api, p->h->easy, CURLE_OK, sf_guard_save() };
	sf_guard_enter();
	sf_leave_guarded(perform_call, &x, alone_left, &x);
	sf_guard_leave();
	return x.code;
}
