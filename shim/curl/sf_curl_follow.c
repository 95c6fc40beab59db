/* sf_curl_follow.c - a follower replays the flight's reply through its
 * own callbacks, while the leader is still downloading, and answers its
 * own progress callback, timeout and deadline. */
#include "curl/sf_curl_xfer.h"

#include "common/sf_log.h"
#include "common/sf_stats.h"
#include "core/sf_clock.h"
#include "curl/sf_curl_reply.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct follow {
	struct sf_curl_xfer *p;
	sf_flight *f;
	struct sf_curl_reply *reply; /* the generation being replayed */
	size_t pos;                  /* next record in reply->stream */
	unsigned char *buf;
	size_t bufcap;
	bool left;
};

static void leave(struct follow *w)
{
	if (!w->left)
		sf_flight_leave(w->f);
	w->left = true;
}

static void follow_cleanup(void *arg)
{
	struct follow *w = arg;
	leave(w);
	free(w->buf);
	sf_curl_key_free(&w->p->key);
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
	struct sf_curl_reply *r = sf_curl_current_reply(w->f);
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

/* Bytes a follower copies at a time out of the spill file.  Kept small:
 * with a hundred followers these buffers are most of the shim's memory. */
#define FILE_PIECE 4096

static bool reserve(struct follow *w, size_t n)
{
	if (n <= w->bufcap)
		return true;
	unsigned char *b = realloc(w->buf, n);
	if (!b)
		return false;
	w->buf = b;
	w->bufcap = n;
	return true;
}

/* Hands n body bytes at off to the program: straight from the reply's
 * memory where they are there, through a small buffer from the file. */
static CURLcode deliver_body_at(struct follow *w, size_t off, size_t n)
{
	const sf_stream *s = w->reply->stream;
	while (n) {
		size_t k;
		const void *p = sf_stream_peek(s, off, &k);
		if (!p) {
			k = n < FILE_PIECE ? n : FILE_PIECE;
			if (!reserve(w, FILE_PIECE))
				return CURLE_OUT_OF_MEMORY;
			if (!read_exact(s, off, w->buf, k))
				return CURLE_READ_ERROR;
			p = w->buf;
		}
		if (k > n)
			k = n;
		CURLcode rc = sf_deliver_body(&w->p->d, p, k);
		if (rc != CURLE_OK)
			return rc;
		off += k;
		n -= k;
	}
	return CURLE_OK;
}

/* A header line goes to the program in one piece, as libcurl sends it. */
static CURLcode deliver_header_at(struct follow *w, size_t off, size_t n)
{
	if (!reserve(w, n ? n : 1))
		return CURLE_OUT_OF_MEMORY;
	if (n && !read_exact(w->reply->stream, off, w->buf, n))
		return CURLE_READ_ERROR;
	return sf_deliver_header(&w->p->d, (char *)w->buf, n);
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
		size_t at = w->pos + SF_REC_HDRLEN;
		w->pos = at + n;
		CURLcode rc = head[0] == SF_REC_HEADER
		                      ? deliver_header_at(w, at, n)
		                      : deliver_body_at(w, at, n);
		if (rc != CURLE_OK)
			return rc;
		if (!w->p->h->first_byte_ns)
			w->p->h->first_byte_ns = sf_now_ns() - w->p->start_ns;
		*delivered = true;
	}
}

static CURLcode fail(struct sf_curl_xfer *p, CURLcode code, const char *msg)
{
	sf_delivery_error(&p->d, msg);
	return code;
}

static CURLcode timed_out(struct sf_curl_xfer *p, uint64_t now)
{
	char msg[CURL_ERROR_SIZE];
	long ms = (long)((now - p->start_ns) / 1000000u);
	if (p->d.content_length >= 0)
		snprintf(
		        msg, sizeof(msg),
		        "Operation timed out after %ld milliseconds with %zu out "
		        "of %lld bytes received",
		        ms, p->d.body_done, (long long)p->d.content_length);
	else
		snprintf(
		        msg, sizeof(msg),
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
	struct sf_curl_xfer *p = w->p;
	struct sf_delivery *d = &p->d;
	uint32_t cursor = 0;
	uint64_t stall = p->cfg->wait_ns ? p->start_ns + p->cfg->wait_ns : 0;
	uint64_t own =
	        d->timeout_ms > 0
	                ? p->start_ns + (uint64_t)d->timeout_ms * 1000000u
	                : 0;
	bool progress = !d->noprogress;
	uint64_t tick = 0;
	for (;;) {
		bool fresh = d->headers_done || d->body_done;
		uint64_t now = sf_now_ns();
		if (progress && (!tick || now >= tick)) {
			tick = now +
			       1000000000u; /* libcurl calls it at least 1/s */
			curl_off_t total =
			        d->content_length > 0 ? d->content_length : 0;
			if (sf_deliver_progress(d, total,
			                        (curl_off_t)d->body_done)) {
				*code = fail(p, CURLE_ABORTED_BY_CALLBACK,
				             "Callback aborted");
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
		struct timespec ts = sf_ns_to_timespec(until),
		                *dl = until ? &ts : NULL;

		enum sf_wait ev = sf_flight_wait(w->f, &cursor, dl);
		if (ev == SF_WAIT_PROMOTED)
			return PROMOTED;
		take_newest(w);
		bool delivered;
		CURLcode rc = drain(w, &delivered);
		if (rc != CURLE_OK) {
			*code = rc == CURLE_WRITE_ERROR
			                ? fail(p, rc, d->failure)
			                : fail(p, rc,
			                       "sfshim: cannot read the shared response");
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
			*code = fail(
			        p, CURLE_RECV_ERROR,
			        "sfshim: the response changed between attempts");
			return FOLLOWED;
		}
		*code = final->code;
		if (final->code != CURLE_OK)
			sf_delivery_error(d, final->errmsg);
		sf_curl_reply_ref(final);
		p->h->reply =
		        final; /* getinfo and headers answer from it now */
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

CURLcode sf_curl_follow(struct sf_curl_xfer *p, sf_flight *f)
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
		p->path = SF_PATH_PROMOTED;
		sf_log(SF_LOG_INFO, "%s: leader gone, took over", p->key.url);
		p->promoted = true;
		return sf_curl_lead(p, f);
	case ALONE_EXPIRED:
		p->path = SF_PATH_EXPIRED;
		sf_log(SF_LOG_INFO,
		       "%s: waited past SFSHIM_WAIT_MS, fetching alone",
		       p->key.url);
		return sf_curl_alone(p);
	case ALONE_RETRY:
		p->path = SF_PATH_RETRIED;
		return sf_curl_alone(p);
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
