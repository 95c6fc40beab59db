/* sf_curl_perform.c - curl_easy_perform as leader, follower, or alone.
 *
 * The leader performs the real transfer with the shim's write and header
 * callbacks on its handle: they append each piece to the flight's reply
 * and then hand it to the program's own callbacks, so its program sees
 * exactly what it would without the shim.  Followers replay the reply
 * through their own callbacks while the leader is still downloading.
 *
 * Failures that are the leader's own (its callback refused data or paused,
 * its timeout, its progress callback, its thread cancelled) are never
 * shared: the leader abandons the flight and a follower is promoted.  The
 * promoted follower performs the request itself into a new reply; every
 * follower resumes from that reply after what it already delivered. */
#include "sf_curl_perform.h"

#include "sf_clock.h"
#include "sf_config.h"
#include "sf_curl_deliver.h"
#include "sf_curl_key.h"
#include "sf_curl_reply.h"
#include "sf_flight.h"
#include "sf_guard.h"
#include "sf_log.h"
#include "sf_stats.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
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

static struct sf_curl_reply *current_reply(sf_flight *f)
{
	struct flight_replies *fr = sf_flight_user(f);
	unsigned n = atomic_load_explicit(&fr->count, memory_order_acquire);
	return n ? atomic_load_explicit(&fr->gen[n - 1], memory_order_relaxed)
	         : NULL;
}

/* ---- one perform ---------------------------------------------------------- */

struct perform {
	struct sf_curl_handle *h;
	const struct sf_curl_real *api;
	const struct sf_config *cfg;
	struct sf_curl_key key;
	struct sf_delivery d; /* the program's own callbacks */
	bool promoted;        /* joined as a follower, now leads */
	uint64_t start_ns;
};

/* The leader's side of a transfer, reached from libcurl's callbacks. */
struct lead {
	struct perform *p;
	sf_flight *f;                /* NULL once detached, or alone */
	struct sf_curl_reply *reply; /* what this leader records into */
	bool own_failure;            /* the program's callback refused */
	bool abandoned;
	bool sealed;                 /* no one may join any more */
	char errbuf[CURL_ERROR_SIZE];
};

/* The leader stops sharing: followers get a new leader. */
static void detach(struct lead *l)
{
	if (!l->f)
		return;
	if (!l->abandoned) {
		sf_flight_abandon(l->f);
		l->abandoned = true;
	}
	l->f = NULL;
}

/* A transfer nobody has joined by the time its reply outgrows
 * SFSHIM_SPILL stops being stored: a lone large download must not be
 * copied to a temporary file.  Callers arriving later start a flight of
 * their own.  Once someone follows, the reply is kept whole for them. */
static bool worth_storing(struct lead *l, size_t n)
{
	if (l->sealed || sf_stream_length(l->reply->stream) + n <=
	                         l->p->cfg->spill_bytes ||
	    sf_flight_followers(l->f))
		return true;
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
		sf_log(SF_LOG_ERROR, "cannot store the response of %s (%m); "
		       "its followers fetch it themselves", l->p->key.url);
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

static void set_ptr(const struct perform *p, CURLoption opt, void *v)
{
	p->api->easy_setopt(p->h->easy, opt, v);
}

/* The shim's callbacks in place of the program's, for this perform only.
 * CURLOPT_HEADER is turned off so that the write callback sees only body
 * data; the shim hands header lines to the program's write callback
 * itself, in libcurl's order. */
static void install(struct lead *l)
{
	const struct perform *p = l->p;
	set_ptr(p, CURLOPT_WRITEFUNCTION, (void *)lead_write);
	set_ptr(p, CURLOPT_WRITEDATA, l);
	set_ptr(p, CURLOPT_HEADERFUNCTION, (void *)lead_header);
	set_ptr(p, CURLOPT_HEADERDATA, l);
	set_ptr(p, CURLOPT_ERRORBUFFER, l->errbuf);
	p->api->easy_setopt(p->h->easy, CURLOPT_HEADER, 0L);
}

static void *recorded_ptr(const struct perform *p, CURLoption opt, void *dflt)
{
	const struct sf_curl_opt *o = sf_curl_handle_get(p->h, opt);
	return o ? o->v.p : dflt;
}

/* Puts back what the program set (or libcurl's defaults). */
static void restore(const struct perform *p)
{
	set_ptr(p, CURLOPT_WRITEFUNCTION, recorded_ptr(p, CURLOPT_WRITEFUNCTION, NULL));
	set_ptr(p, CURLOPT_WRITEDATA, recorded_ptr(p, CURLOPT_WRITEDATA, stdout));
	set_ptr(p, CURLOPT_HEADERFUNCTION, recorded_ptr(p, CURLOPT_HEADERFUNCTION, NULL));
	set_ptr(p, CURLOPT_HEADERDATA, recorded_ptr(p, CURLOPT_HEADERDATA, NULL));
	set_ptr(p, CURLOPT_ERRORBUFFER, recorded_ptr(p, CURLOPT_ERRORBUFFER, NULL));
	p->api->easy_setopt(p->h->easy, CURLOPT_HEADER, p->d.include_header ? 1L : 0L);
}

static void lead_cleanup(void *arg)
{
	struct lead *l = arg;
	sf_guard_leave();
	detach(l);
	restore(l->p);
	sf_curl_reply_unref(l->reply);
	sf_curl_key_free(&l->p->key);
}

static CURLcode real_perform(struct lead *l)
{
	CURLcode code;
	install(l);
	sf_guard_enter();
	/* libcurl waits in poll(), a cancellation point. */
	pthread_cleanup_push(lead_cleanup, l);
	code = l->p->api->easy_perform(l->p->h->easy);
	pthread_cleanup_pop(0);
	sf_guard_leave();
	restore(l->p);
	return code;
}

/* Errors that belong to this leader alone, never shared. */
static bool own_error(const struct lead *l, CURLcode code)
{
	return l->own_failure || code == CURLE_ABORTED_BY_CALLBACK ||
	       code == CURLE_OPERATION_TIMEDOUT || code == CURLE_OUT_OF_MEMORY;
}

/* Performs the request for real.  With a flight, records the reply for its
 * followers; without one (a follower fetching alone after partly
 * delivering), only skips what the program already has. */
static CURLcode lead(struct perform *p, sf_flight *f)
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
	if (l.own_failure && p->d.failure)
		sf_delivery_error(&p->d, p->d.failure);

	if (l.f && own_error(&l, code)) {
		sf_log(SF_LOG_INFO, "%s: leader failed on its own (%d), "
		       "handing over", p->key.url, (int)code);
		detach(&l);
	} else if (l.f) {
		l.reply->code = code;
		memcpy(l.reply->errmsg, l.errbuf, CURL_ERROR_SIZE);
		l.reply->retry = code != CURLE_OK && p->cfg->retry_errors;
		sf_curl_reply_snapshot(l.reply, p->api, p->h->easy);
		unsigned followers = sf_flight_seal(f) - p->promoted;
		if (followers)
			sf_stats_flight(SF_API_CURL, p->key.url, followers);
		/* The flight's own reference keeps the reply alive. */
		sf_flight_finish(f, l.reply, NULL);
	}
	sf_curl_reply_unref(l.reply);
	return code;
}

/* A plain perform: the program's callbacks stay in place. */
static CURLcode alone(struct perform *p)
{
	if (p->d.skip_headers || p->d.skip_body)
		return lead(p, NULL);
	sf_guard_enter();
	CURLcode code = p->api->easy_perform(p->h->easy);
	sf_guard_leave();
	return code;
}

/* ---- the follower ---------------------------------------------------------- */

struct follow {
	struct perform *p;
	sf_flight *f;
	struct sf_curl_reply *reply; /* the generation being replayed */
	size_t pos;                  /* next record in reply->stream */
	unsigned char *buf;
	size_t bufcap;
	bool left;
};

static void follow_cleanup(void *arg)
{
	struct follow *w = arg;
	if (!w->left)
		sf_flight_leave(w->f);
	free(w->buf);
	sf_curl_key_free(&w->p->key);
}

static void leave(struct follow *w)
{
	if (!w->left)
		sf_flight_leave(w->f);
	w->left = true;
}

/* A new response will be delivered from its start: what the program
 * already has of the previous one is skipped. */
static void resume_from_start(struct sf_delivery *d)
{
	d->skip_headers = d->headers_done;
	d->skip_body = d->body_done;
	d->headers_done = d->body_done = 0;
}

/* Switches to the newest generation of the flight's reply. */
static void take_newest(struct follow *w)
{
	struct sf_curl_reply *r = current_reply(w->f);
	if (!r || r == w->reply)
		return;
	if (w->reply)
		resume_from_start(&w->p->d);
	w->reply = r;
	w->pos = 0;
}

static bool read_exact(const sf_stream *s, size_t off, void *buf, size_t n)
{
	unsigned char *p = buf;
	while (n) {
		ssize_t r = sf_stream_read(s, off, p, n);
		if (r <= 0)
			return false;
		p += r;
		off += (size_t)r;
		n -= (size_t)r;
	}
	return true;
}

/* Delivers every complete record published so far.  *delivered tells
 * whether anything new reached the program. */
static CURLcode drain(struct follow *w, bool *delivered)
{
	*delivered = false;
	if (!w->reply)
		return CURLE_OK;
	const sf_stream *s = w->reply->stream;
	for (;;) {
		size_t avail = sf_stream_length(s);
		unsigned char head[SF_REC_HDRLEN];
		uint32_t n;
		if (avail - w->pos < SF_REC_HDRLEN)
			return CURLE_OK;
		if (!read_exact(s, w->pos, head, sizeof(head)))
			return CURLE_READ_ERROR;
		memcpy(&n, head + 1, sizeof(n));
		if (avail - w->pos - SF_REC_HDRLEN < n)
			return CURLE_OK; /* the rest is on its way */
		if (n > w->bufcap) {
			unsigned char *b = realloc(w->buf, n);
			if (!b)
				return CURLE_OUT_OF_MEMORY;
			w->buf = b;
			w->bufcap = n;
		}
		if (n && !read_exact(s, w->pos + SF_REC_HDRLEN, w->buf, n))
			return CURLE_READ_ERROR;
		w->pos += SF_REC_HDRLEN + n;
		CURLcode rc = head[0] == SF_REC_HEADER
		                      ? sf_deliver_header(&w->p->d, (char *)w->buf, n)
		                      : sf_deliver_body(&w->p->d, (char *)w->buf, n);
		if (rc != CURLE_OK)
			return rc;
		if (!w->p->h->first_byte_ns)
			w->p->h->first_byte_ns = sf_now_ns() - w->p->start_ns;
		*delivered = true;
	}
}

static CURLcode fail(struct perform *p, CURLcode code, const char *msg)
{
	sf_delivery_error(&p->d, msg);
	return code;
}

static CURLcode timed_out(struct perform *p, uint64_t now)
{
	char msg[CURL_ERROR_SIZE];
	long ms = (long)((now - p->start_ns) / 1000000u);
	if (p->d.content_length >= 0)
		snprintf(msg, sizeof(msg),
		         "Operation timed out after %ld milliseconds with %zu out "
		         "of %lld bytes received",
		         ms, p->d.body_done, (long long)p->d.content_length);
	else
		snprintf(msg, sizeof(msg),
		         "Operation timed out after %ld milliseconds with %zu bytes "
		         "received",
		         ms, p->d.body_done);
	return fail(p, CURLE_OPERATION_TIMEDOUT, msg);
}

static uint64_t earliest(uint64_t a, uint64_t b)
{
	return !a ? b : !b ? a : a < b ? a : b;
}

enum outcome { FOLLOWED, PROMOTED, ALONE_EXPIRED, ALONE_RETRY };

/* The follower's loop.  Returns FOLLOWED with *code set, or what the
 * caller must do next. */
static enum outcome follow_loop(struct follow *w, CURLcode *code)
{
	struct perform *p = w->p;
	struct sf_delivery *d = &p->d;
	uint32_t cursor = 0;
	uint64_t stall = p->cfg->wait_ns ? p->start_ns + p->cfg->wait_ns : 0;
	uint64_t own = d->timeout_ms > 0 ? p->start_ns + (uint64_t)d->timeout_ms * 1000000u : 0;
	bool progress = !d->noprogress;
	uint64_t tick = 0;
	for (;;) {
		bool fresh = d->headers_done || d->body_done;
		uint64_t now = sf_now_ns();
		if (progress && (!tick || now >= tick)) {
			tick = now + 1000000000u; /* libcurl calls it at least 1/s */
			curl_off_t total = d->content_length > 0 ? d->content_length : 0;
			if (sf_deliver_progress(d, total, (curl_off_t)d->body_done)) {
				*code = fail(p, CURLE_ABORTED_BY_CALLBACK, "Callback aborted");
				return FOLLOWED;
			}
		}
		if (own && now >= own) {
			*code = timed_out(p, now);
			return FOLLOWED;
		}
		if (stall && !fresh && now >= stall)
			return ALONE_EXPIRED;
		uint64_t until = earliest(own, fresh ? 0 : stall);
		until = earliest(until, progress ? tick : 0);
		struct timespec ts = sf_ns_to_timespec(until), *dl = until ? &ts : NULL;

		enum sf_wait ev = sf_flight_wait(w->f, &cursor, dl);
		if (ev == SF_WAIT_PROMOTED)
			return PROMOTED;
		take_newest(w);
		bool delivered;
		CURLcode rc = drain(w, &delivered);
		if (rc != CURLE_OK) {
			*code = rc == CURLE_WRITE_ERROR ? fail(p, rc, d->failure)
			                                : fail(p, rc, "sfshim: cannot read the shared response");
			return FOLLOWED;
		}
		if (delivered && progress)
			tick = 0; /* libcurl reports progress on data too */
		if (ev != SF_WAIT_DONE)
			continue;

		struct sf_curl_reply *final = sf_flight_result(w->f);
		if (final->retry)
			return ALONE_RETRY;
		if (d->skip_headers || d->skip_body) {
			/* A later leader got a shorter response than the one this
			 * follower had started to deliver. */
			*code = fail(p, CURLE_RECV_ERROR,
			             "sfshim: the response changed between attempts");
			return FOLLOWED;
		}
		*code = final->code;
		if (final->code != CURLE_OK)
			sf_delivery_error(d, final->errmsg);
		sf_curl_reply_ref(final);
		p->h->reply = final; /* getinfo and headers answer from it now */
		return FOLLOWED;
	}
}

/* The follower's wait and replay, leaving the flight if the thread is
 * cancelled (in a wait or in one of the program's callbacks).  Apart from
 * follow() so that no local of the caller lives across the cleanup's
 * setjmp. */
static enum outcome follow_guarded(struct follow *w, CURLcode *code)
{
	enum outcome o;
	pthread_cleanup_push(follow_cleanup, w);
	o = follow_loop(w, code);
	if (o != PROMOTED)
		leave(w);
	pthread_cleanup_pop(0);
	return o;
}

static CURLcode follow(struct perform *p, sf_flight *f)
{
	struct follow w = { .p = p, .f = f };
	CURLcode code = CURLE_OK;
	if (p->d.errbuf)
		p->d.errbuf[0] = '\0'; /* as libcurl does at the start */
	enum outcome o = follow_guarded(&w, &code);
	free(w.buf);

	if (o != FOLLOWED)
		resume_from_start(&p->d);
	switch (o) {
	case PROMOTED:
		sf_count(SF_API_CURL, SF_STAT_PROMOTIONS);
		sf_log(SF_LOG_INFO, "%s: leader gone, taking over", p->key.url);
		p->promoted = true;
		return lead(p, f);
	case ALONE_EXPIRED:
		sf_count(SF_API_CURL, SF_STAT_EXPIRED);
		sf_log(SF_LOG_INFO, "%s: waited past SFSHIM_WAIT_MS, fetching alone",
		       p->key.url);
		return alone(p);
	case ALONE_RETRY:
		sf_count(SF_API_CURL, SF_STAT_RETRIED);
		return alone(p);
	default:
		/* With no reply (this follower failed on its own), getinfo
		 * answers what it saw itself: status, size and times. */
		p->h->total_ns = sf_now_ns() - p->start_ns;
		p->h->size_download = (long)p->d.body_done;
		p->h->response_code = p->d.response_code;
		p->h->own_answers = true;
		return code;
	}
}

/* ---- entry ------------------------------------------------------------------- */

static sf_group *group;
static pthread_once_t group_once = PTHREAD_ONCE_INIT;

static void make_group(void)
{
	group = sf_group_new();
}

CURLcode sf_curl_perform(struct sf_curl_handle *h)
{
	const struct sf_curl_real *api = h->api;
	sf_curl_handle_forget_reply(h);
	h->first_byte_ns = h->total_ns = 0;

	struct perform p = { .h = h, .api = api, .cfg = sf_config() };
	enum sf_pass why = sf_guard_active() ? SF_PASS_REENTRANT
	                                     : sf_curl_key_build(h, p.cfg, &p.key);
	pthread_once(&group_once, make_group);
	sf_flight *f = NULL;
	bool leader = false;
	if (why == SF_PASS_COUNT && !(f = sf_join(group, p.key.bytes, p.key.len, &leader)))
		why = SF_PASS_NOFLIGHT;
	if (why != SF_PASS_COUNT) {
		sf_count_pass(SF_API_CURL, why);
		sf_curl_key_free(&p.key);
		sf_guard_enter();
		CURLcode code = api->easy_perform(h->easy);
		sf_guard_leave();
		return code;
	}

	sf_count(SF_API_CURL, SF_STAT_CALLS);
	sf_delivery_init(&p.d, h);
	p.start_ns = sf_now_ns();
	CURLcode code;
	if (leader) {
		sf_count(SF_API_CURL, SF_STAT_LEADERS);
		code = lead(&p, f);
	} else {
		sf_count(SF_API_CURL, SF_STAT_FOLLOWERS);
		sf_log(SF_LOG_DEBUG, "%s: joined flight", p.key.url);
		code = follow(&p, f);
	}
	sf_curl_key_free(&p.key);
	return code;
}
