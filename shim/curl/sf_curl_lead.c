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
#include "core/sf_clock.h"
#include "core/sf_leave.h"
#include "curl/sf_curl_reply.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The leader's side of a transfer, reached from libcurl's callbacks. */
struct lead {
	struct sf_curl_xfer *p;
	sf_flight *f;                /* NULL once detached, or alone */
	struct sf_curl_reply *reply; /* what this leader records into */
	bool own_failure;            /* the program's callback refused */
	bool diverged;  /* the response differs from what the program has */
	bool sealed;    /* no one may join any more */
	size_t charged; /* bytes counted in lone_bytes */
	char errbuf[CURL_ERROR_SIZE];
};

/* The leader stops sharing: followers get a new leader. */
static void detach(struct lead *l)
{
	if (l->f)
		sf_flight_abandon(l->f);
	l->f = NULL;
}

/* Its failure is its own: other processes get a new leader too. */
static void detach_all(struct lead *l)
{
	detach(l);
	if (l->p->x)
		sf_curl_xlead_abandon(l->p->x);
}

/* Memory held, process-wide, by replies nobody follows yet.  A burst of
 * distinct URLs must not cost a reply's worth of memory each: past the
 * budget, a transfer that nobody has joined stops being stored, and so does
 * one whose reply outgrows LONE_STORE (a lone large download is never
 * copied).  Callers arriving later start a flight of their own.  Once
 * someone follows, the reply is kept whole for them. */
#define LONE_BUDGET_SPILLS 4
static _Atomic size_t lone_bytes;

static void unstore(struct lead *l)
{
	atomic_fetch_sub_explicit(&lone_bytes, l->charged,
	                          memory_order_relaxed);
	l->charged = 0;
}

/* What a lone transfer stores for a late joiner: its header block and the
 * start of its body (the stream's small first chunk).  A small response is
 * joinable to its end; a large one until its body starts to stream, which is
 * when a herd has joined in practice.  Past this, or past the budget, a
 * transfer nobody joined stops being stored and stops taking joiners (they
 * start a flight of their own), so a lone download is never copied. */
#define LONE_STORE ((size_t)4 * 1024)

/* Decides whether the next n bytes are stored.  A transfer that somebody
 * follows is stored whole; a lone one only within LONE_STORE and the
 * process-wide budget, after which it is sealed and, if nobody joined in
 * the meantime, stops sharing. */
static bool store_next(struct lead *l, size_t n)
{
	if (l->sealed || sf_flight_followers(l->f))
		return true;
	size_t spill = l->p->cfg->spill_bytes;
	size_t cap = spill < LONE_STORE ? spill : LONE_STORE;
	if (sf_stream_length(l->reply->stream) + n <= cap) {
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

/* The response cannot be stored (memory, disk): the flight ends for its
 * followers, who make their own calls from what they have (no result),
 * while this leader's transfer goes on for its own program. */
static void end_unstored(struct lead *l)
{
	sf_log(SF_LOG_ERROR,
	       "cannot store the response of %s (%m); "
	       "its followers fetch it themselves",
	       l->p->key.url);
	sf_flight_finish(l->f, NULL, NULL);
	l->f = NULL;
}

static void record(struct lead *l, enum sf_curl_rec type, const char *p,
                   size_t n)
{
	if (l->p->x)
		sf_curl_xlead_record(l->p->x, type, p, n);
	if (!l->f || !store_next(l, n + 8))
		return;
	if (sf_curl_response_record(l->reply, type, p, n) < 0) {
		end_unstored(l);
		return;
	}
	sf_flight_notify(l->f);
}

static size_t own_result(struct lead *l, CURLcode rc, size_t n)
{
	if (rc == CURLE_OK)
		return n;
	l->own_failure = true;
	detach_all(l);
	return l->p->d.paused && !l->diverged ? CURL_WRITEFUNC_PAUSE : 0;
}

/* The cursor's way to the program's callbacks. */
static bool give_program(void *ctx, enum sf_curl_rec type, const char *data,
                         size_t n)
{
	struct sf_curl_xfer *p = ctx;
	CURLcode rc = type == SF_REC_HEADER ? sf_deliver_header(&p->d, data, n)
	                                    : sf_deliver_body(&p->d, data, n);
	return rc == CURLE_OK;
}

/* Hands a piece to the program, through its cursor: what it already has
 * (after a hand-over) is compared, not delivered again. */
static size_t give(struct lead *l, enum sf_curl_rec type, char *ptr, size_t n)
{
	switch (sf_curl_cursor_feed(&l->p->cur, type, ptr, n, NULL,
	                            give_program, l->p)) {
	case SF_FED:
		return n;
	case SF_DIVERGED:
		l->diverged = true;
		return own_result(l, CURLE_RECV_ERROR, n);
	default:
		return own_result(l, CURLE_WRITE_ERROR, n);
	}
}

static size_t lead_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct lead *l = arg;
	size_t n = size * nmemb;
	record(l, SF_REC_BODY, ptr, n);
	return give(l, SF_REC_BODY, ptr, n);
}

static size_t lead_header(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct lead *l = arg;
	size_t n = size * nmemb;
	record(l, SF_REC_HEADER, ptr, n);
	return give(l, SF_REC_HEADER, ptr, n);
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

/* Puts back what the program set (or libcurl's defaults), as
 * sf_delivery_init() read them from the handle's record. */
static void restore(const struct sf_curl_xfer *p)
{
	const struct sf_delivery *d = &p->d;
	set_ptr(p, CURLOPT_WRITEFUNCTION, (void *)d->write_fn);
	set_ptr(p, CURLOPT_WRITEDATA, d->write_data);
	set_ptr(p, CURLOPT_HEADERFUNCTION, (void *)d->header_fn);
	set_ptr(p, CURLOPT_HEADERDATA, d->header_data);
	set_ptr(p, CURLOPT_ERRORBUFFER, d->errbuf);
	p->api->easy_setopt(p->h->easy, CURLOPT_HEADER,
	                    d->include_header ? 1L : 0L);
}

static void lead_cleanup(void *arg)
{
	struct lead *l = arg;
	sf_guard_leave();
	detach_all(l);
	restore(l->p);
	if (l->p->late && l->p->d.lim.timeout_ms > 0)
		l->p->api->easy_setopt(l->p->h->easy, CURLOPT_TIMEOUT_MS,
		                       l->p->d.lim.timeout_ms);
	sf_curl_cursor_free(&l->p->cur);
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

/* A plain perform left without returning puts the guard back. */
static void alone_left(void *arg)
{
	struct perform *x = arg;
	sf_guard_restore(x->depth);
}

static long elapsed_ms(const struct sf_curl_xfer *p)
{
	return (long)((sf_now_ns() - p->start_ns) / 1000000u);
}

/* A caller that followed first has spent part of its own timeout: its
 * request gets what is left, so that the limit counts from its own call
 * across any number of hand-overs.  -1: nothing is left. */
static int spend_timeout(const struct sf_curl_xfer *p)
{
	long limit = p->d.lim.timeout_ms;
	if (!p->late || limit <= 0)
		return 0;
	long left = limit - elapsed_ms(p);
	if (left <= 0)
		return -1;
	p->api->easy_setopt(p->h->easy, CURLOPT_TIMEOUT_MS, left);
	return 1;
}

/* libcurl's "... timed out after N milliseconds ..." counts from its own
 * start: the caller's count starts at its own call. */
static void own_elapsed_text(struct sf_curl_xfer *p, char *errbuf)
{
	static const char after[] = " after ";
	char *a = strstr(errbuf, after), *end;
	if (!a)
		return;
	strtol(a + sizeof(after) - 1, &end, 10);
	if (end == a + sizeof(after) - 1 ||
	    strncmp(end, " milliseconds", 13) != 0)
		return;
	/* libcurl's timer may fire a millisecond early: the limit was
	 * reached all the same, and libcurl never reports less. */
	long ms = elapsed_ms(p);
	if (ms < p->d.lim.timeout_ms)
		ms = p->d.lim.timeout_ms;
	char msg[CURL_ERROR_SIZE];
	snprintf(msg, sizeof(msg), "%.*s%ld%s",
	         (int)(a + sizeof(after) - 1 - errbuf), errbuf, ms, end);
	memcpy(errbuf, msg, CURL_ERROR_SIZE);
}

static CURLcode real_perform(struct lead *l)
{
	CURLcode code;
	struct sf_curl_xfer *p = l->p;
	int spent = spend_timeout(p);
	if (spent < 0) { /* spent while following: no request at all */
		code = sf_delivery_timed_out(&p->d, elapsed_ms(p));
		if (p->d.errbuf)
			memcpy(l->errbuf, p->d.errbuf, CURL_ERROR_SIZE);
		return code;
	}
	struct perform x = { p->api, p->h->easy, CURLE_OK, 0 };
	install(l);
	sf_guard_enter();
	/* libcurl waits in poll(), a cancellation point, and a callback may
	 * longjmp out of it: either way lead_cleanup releases the flight. */
	sf_leave_guarded(perform_call, &x, lead_cleanup, l);
	sf_guard_leave();
	code = x.code;
	restore(p);
	if (spent) {
		p->api->easy_setopt(p->h->easy, CURLOPT_TIMEOUT_MS,
		                    p->d.lim.timeout_ms);
		if (code == CURLE_OPERATION_TIMEDOUT)
			own_elapsed_text(p, l->errbuf);
	}
	return code;
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

/* The hand-over's log line runs guarded: write(2) is a cancellation point,
 * and a leader cancelled (or jumped out of a signal handler) there still
 * frees what it and its caller hold.  The flight is handed over already. */
struct handover {
	struct lead *l;
	CURLcode code;
};

static void handover_log(void *arg)
{
	struct handover *ho = arg;
	sf_log(SF_LOG_INFO, "%s: leader failed on its own (%d), handing over",
	       ho->l->p->key.url, (int)ho->code);
}

static void handover_left(void *arg)
{
	struct lead *l = arg;
	unstore(l);
	sf_curl_reply_unref(l->reply);
	l->reply = NULL;
	sf_curl_cursor_free(&l->p->cur);
	sf_curl_key_free(&l->p->key);
}

/* Performs the request for real.  With a flight, records the reply for its
 * followers; without one (a follower fetching alone after partly
 * delivering), its cursor keeps the program's bytes right. */
CURLcode sf_curl_lead(struct sf_curl_xfer *p, sf_flight *f)
{
	struct lead l = { .p = p, .f = f };
	if (f) {
		l.reply = sf_curl_reply_new(p->cfg->spill_bytes);
		if (!l.reply) {
			detach(&l);
		} else if (!sf_curl_response_publish(f, l.reply)) {
			/* Too many leaders: the followers fetch alone. */
			sf_flight_finish(f, NULL, NULL);
			l.f = NULL;
		}
	}
	sf_curl_cursor_restart(&p->cur);
	l.errbuf[0] = '\0';
	if (p->d.errbuf)
		p->d.errbuf[0] = '\0';
	CURLcode code = real_perform(&l);
	if (p->d.errbuf)
		memcpy(p->d.errbuf, l.errbuf, CURL_ERROR_SIZE);
	if (code == CURLE_OK && !sf_curl_cursor_covered(&p->cur))
		l.diverged = true; /* shorter than what the program has */
	if (l.diverged) {
		/* Its own: the response may be right for the others. */
		code = CURLE_RECV_ERROR;
		l.own_failure = true;
		sf_delivery_error(&p->d, SF_CURL_CHANGED_MSG);
	} else if (l.own_failure) {
		/* libcurl's text may name the wrong callback */
		sf_delivery_error(&p->d, p->d.failure);
	}

	enum sf_share rule =
	        l.own_failure
	                ? SF_SHARE_HANDOVER
	                : sf_share_rule(judge(code), p->cfg->retry_errors);
	if (l.f && rule == SF_SHARE_HANDOVER) {
		/* Handed over before the log line: write(2) is a
		 * cancellation point, and a leader cancelled there would
		 * strand its followers. */
		detach_all(&l);
		struct handover ho = { &l, code };
		sf_leave_guarded(handover_log, &ho, handover_left, &l);
	} else if (l.f) {
		/* Seal first: the answers are copied only for followers. */
		unsigned followers = sf_flight_seal(f) - p->promoted;
		struct sf_curl_reply *result = NULL;
		if (followers) {
			sf_stats_flight(SF_API_CURL, p->key.url, followers);
			l.reply->code = code;
			memcpy(l.reply->errmsg, l.errbuf, CURL_ERROR_SIZE);
			l.reply->retry = rule == SF_SHARE_NOTHING;
			/* An incomplete copy would answer wrongly: without
			 * a result, the followers make their own calls. */
			if (sf_curl_reply_snapshot(l.reply, p->api,
			                           p->h->easy) == 0)
				result = l.reply;
		}
		/* The flight's own reference keeps the reply alive. */
		sf_flight_finish(f, result, NULL);
		if (p->x)
			sf_curl_xlead_finish(p->x, code, l.errbuf,
			                     rule == SF_SHARE_NOTHING, p->api,
			                     p->h->easy, result);
	} else if (p->x && rule == SF_SHARE_HANDOVER) {
		sf_curl_xlead_abandon(p->x);
	} else if (p->x) {
		sf_curl_xlead_finish(p->x, code, l.errbuf,
		                     rule == SF_SHARE_NOTHING, p->api,
		                     p->h->easy, NULL);
	}
	unstore(&l);
	sf_curl_reply_unref(l.reply);
	return code;
}

/* A plain perform: the program's callbacks stay in place. */
CURLcode sf_curl_alone(struct sf_curl_xfer *p)
{
	if (p->late)
		return sf_curl_lead(p, NULL);
	struct perform x = { p->api, p->h->easy, CURLE_OK, sf_guard_save() };
	sf_guard_enter();
	sf_leave_guarded(perform_call, &x, alone_left, &x);
	sf_guard_leave();
	return x.code;
}
