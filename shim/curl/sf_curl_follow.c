/* sf_curl_follow.c - a follower replays the flight's response through its
 * own callbacks, while the leader is still downloading, and answers its
 * own progress callback and limits: TIMEOUT, LOW_SPEED_*, and
 * SFSHIM_WAIT_MS, which bounds every wait without progress from the
 * leader (so that no cycle through the program's locks can hang it). */
#include "curl/sf_curl_xfer.h"

#include "common/sf_log.h"
#include "common/sf_stats.h"
#include "core/sf_clock.h"
#include "core/sf_leave.h"
#include "curl/sf_curl_info.h"
#include "curl/sf_curl_reply.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum outcome { FOLLOWED, PROMOTED, ALONE_EXPIRED, ALONE_RETRY, ALONE_SHORT };

struct follow {
	struct sf_curl_xfer *p;
	sf_flight *f;
	struct sf_curl_reader rd; /* the generation being read */
	enum outcome o;
	CURLcode code; /* when FOLLOWED */
	bool left;     /* the follower's reference is given back */
	bool leading;  /* promoted: holds the leader's reference instead */
};

/* The header API inside the program's callbacks answers from the lines it
 * was given so far (h->reply, until the replay ends). */
void sf_curl_live_start(struct sf_curl_xfer *p)
{
	struct sf_curl_reply *r =
	        sf_curl_reply_new_live(p->api->easy_header != NULL);
	if (r)
		p->h->reply = r;
}

bool sf_curl_live(const struct sf_curl_xfer *p)
{
	return p->h->reply && !p->h->reply->stream;
}

void sf_curl_live_end(struct sf_curl_xfer *p)
{
	sf_curl_handle_forget_reply(p->h);
}

static void leave(struct follow *w)
{
	if (!w->left)
		sf_flight_leave(w->f);
	w->left = true;
}

/* The follower part was left without returning: its thread was cancelled
 * (in a wait, in the log's write(2), in one of the program's callbacks), or
 * the program jumped out of its own callback or a signal handler.  Whatever
 * it holds goes: its place in the flight (a promoted follower hands the
 * flight on, so nobody waits for a leader that is gone), the live view on
 * the handle (its next perform starts clean), the reader, cursor and key.
 * The program's options were never changed on a follower's handle, and the
 * re-entrancy depth never raised, so they need nothing. */
static void follow_left(void *arg)
{
	struct follow *w = arg;
	/* A signal handler may have jumped out of the futex wait, which
	 * runs with asynchronous cancellation (sf_flight_wait). */
	pthread_setcanceltype(PTHREAD_CANCEL_DEFERRED, NULL);
	sf_curl_live_end(w->p);
	if (w->leading && !w->left)
		sf_flight_abandon(w->f);
	else
		leave(w);
	w->left = true;
	sf_curl_reader_free(&w->rd);
	sf_curl_cursor_free(&w->p->cur);
	sf_curl_key_free(&w->p->key);
}

/* The cursor's way to the program's callbacks. */
bool sf_curl_follow_give(void *ctx, enum sf_curl_rec type, const char *data,
                         size_t n)
{
	struct sf_curl_xfer *p = ctx;
	struct sf_curl_reply *live = sf_curl_live(p) ? p->h->reply : NULL;
	if (type == SF_REC_HEADER && live)
		sf_curl_reply_add_line(live, data, n);
	CURLcode rc = type == SF_REC_HEADER ? sf_deliver_header(&p->d, data, n)
	                                    : sf_deliver_body(&p->d, data, n);
	if (live)
		live->live_size = (curl_off_t)p->d.body_done;
	if (!p->h->first_byte_ns)
		p->h->first_byte_ns = sf_now_ns() - p->start_ns;
	return rc == CURLE_OK;
}

static CURLcode fail(struct sf_curl_xfer *p, CURLcode code, const char *msg)
{
	sf_delivery_error(&p->d, msg);
	return code;
}

static uint64_t earliest(uint64_t a, uint64_t b)
{
	return !a ? b : !b ? a : a < b ? a : b;
}

#define SECOND 1000000000u

/* libcurl's LOW_SPEED_LIMIT/LOW_SPEED_TIME, measured on what this
 * follower's program receives, once a second. */
static bool too_slow(struct sf_curl_xfer *p, struct sf_curl_speed *s,
                     uint64_t now)
{
	const struct sf_curl_limits *lim = &p->d.lim;
	if (lim->low_speed_limit <= 0 || lim->low_speed_time <= 0 ||
	    now < s->next)
		return false;
	uint64_t span = now - s->at;
	double bps =
	        span ? (double)(p->d.body_done - s->bytes) * 1e9 / (double)span
	             : 0;
	if (bps >= (double)lim->low_speed_limit)
		s->slow_since = 0;
	else if (!s->slow_since)
		s->slow_since = s->at;
	s->at = now;
	s->next = now + SECOND;
	s->bytes = p->d.body_done;
	return s->slow_since &&
	       now - s->slow_since >= (uint64_t)lim->low_speed_time * SECOND;
}

/* libcurl's error.  Not inlined: the message buffer stays off the stack
 * of the follower's loop, which every program callback runs beneath. */
__attribute__((noinline)) static CURLcode slow_error(struct sf_curl_xfer *p)
{
	char msg[CURL_ERROR_SIZE];
	snprintf(msg, sizeof(msg),
	         "Operation too slow. Less than %ld bytes/sec "
	         "transferred the last %ld seconds",
	         p->d.lim.low_speed_limit, p->d.lim.low_speed_time);
	return fail(p, CURLE_OPERATION_TIMEDOUT, msg);
}

void sf_curl_pace_start(struct sf_curl_pace *c, struct sf_curl_xfer *p,
                        uint64_t last)
{
	const struct sf_delivery *d = &p->d;
	*c = (struct sf_curl_pace){
		.wait = p->cfg->wait_ns,
		.last = last,
		.own = d->lim.timeout_ms > 0
		               ? p->start_ns +
		                         (uint64_t)d->lim.timeout_ms * 1000000u
		               : 0,
		.progress = !d->noprogress,
		.slow_check = d->lim.low_speed_limit > 0 &&
		              d->lim.low_speed_time > 0,
		.speed = { .at = p->start_ns, .next = p->start_ns + SECOND },
	};
}

enum sf_curl_step sf_curl_pace_check(struct sf_curl_pace *c,
                                     struct sf_curl_xfer *p, uint64_t now,
                                     uint64_t slice, uint64_t *until,
                                     CURLcode *code)
{
	struct sf_delivery *d = &p->d;
	if (c->progress && (!c->tick || now >= c->tick)) {
		c->tick = now + SECOND; /* libcurl calls it at least 1/s */
		curl_off_t total = d->content_length > 0 ? d->content_length
		                                         : 0;
		if (sf_deliver_progress(d, total, (curl_off_t)d->body_done)) {
			*code = fail(p, CURLE_ABORTED_BY_CALLBACK,
			             "Callback aborted");
			return SF_STEP_OWN;
		}
	}
	if (c->own && now >= c->own) {
		*code = sf_delivery_timed_out(
		        d, (long)((now - p->start_ns) / 1000000u));
		return SF_STEP_OWN;
	}
	if (c->slow_check && too_slow(p, &c->speed, now)) {
		*code = slow_error(p);
		return SF_STEP_OWN;
	}
	/* Only a wait that found nothing new counts: time spent in the
	 * program's own callbacks is not the leader's stall. */
	if (c->wait && c->idle && now >= c->last + c->wait)
		return SF_STEP_EXPIRED;
	uint64_t t = earliest(c->own, c->wait ? c->last + c->wait : 0);
	t = earliest(t, c->progress ? c->tick : 0);
	t = earliest(t, c->slow_check ? c->speed.next : 0);
	*until = earliest(t, slice ? now + slice : 0);
	return SF_STEP_ON;
}

void sf_curl_pace_woke(struct sf_curl_pace *c, bool idle)
{
	c->idle = idle;
	if (!idle)
		c->last = sf_now_ns(); /* the leader moved on */
}

void sf_curl_pace_fed(struct sf_curl_pace *c, bool moved)
{
	if (moved && c->progress)
		c->tick = 0; /* libcurl reports progress on data too */
}

enum sf_curl_step sf_curl_follow_fed(struct sf_curl_xfer *p,
                                     enum sf_curl_fed fed, CURLcode *code)
{
	switch (fed) {
	case SF_REFUSED:
		*code = fail(p, CURLE_WRITE_ERROR, p->d.failure);
		return SF_STEP_OWN;
	case SF_UNREADABLE:
		return SF_STEP_SHORT;
	case SF_DIVERGED:
		*code = fail(p, CURLE_RECV_ERROR, SF_CURL_CHANGED_MSG);
		return SF_STEP_OWN;
	case SF_FED:
		break;
	}
	return SF_STEP_ON;
}

enum sf_curl_step sf_curl_follow_end(struct sf_curl_xfer *p,
                                     const struct sf_curl_reply *r,
                                     CURLcode *code)
{
	if (r->retry)
		return SF_STEP_RETRY;
	if (!sf_curl_cursor_covered(&p->cur)) {
		*code = fail(p, CURLE_RECV_ERROR, SF_CURL_CHANGED_MSG);
		return SF_STEP_OWN;
	}
	*code = r->code;
	if (r->code != CURLE_OK)
		sf_delivery_error(&p->d, r->errmsg);
	return SF_STEP_DONE;
}

/* The follower's loop.  Returns FOLLOWED with *code set, or what the
 * caller must do next. */
static enum outcome follow_loop(struct follow *w, CURLcode *code)
{
	struct sf_curl_xfer *p = w->p;
	uint32_t cursor = 0;
	struct sf_curl_pace pace;
	sf_curl_pace_start(&pace, p, p->start_ns);
	for (;;) {
		uint64_t until = 0;
		switch (sf_curl_pace_check(&pace, p, sf_now_ns(), 0, &until,
		                           code)) {
		case SF_STEP_ON:
			break;
		case SF_STEP_EXPIRED:
			return ALONE_EXPIRED;
		default:
			return FOLLOWED;
		}
		struct timespec ts = sf_ns_to_timespec(until),
		                *dl = until ? &ts : NULL;

		enum sf_wait ev = sf_flight_wait(w->f, &cursor, dl);
		if (ev == SF_WAIT_PROMOTED) {
			w->leading = true; /* before any cancellation point */
			return PROMOTED;
		}
		sf_curl_pace_woke(&pace, ev == SF_WAIT_TIMEOUT);
		sf_curl_reader_take(&w->rd, &p->cur,
		                    sf_curl_response_newest(w->f));
		size_t had = p->cur.hdrs + p->cur.body;
		switch (sf_curl_follow_fed(
		        p,
		        sf_curl_reader_drain(&w->rd, &p->cur,
		                             sf_curl_follow_give, p),
		        code)) {
		case SF_STEP_ON:
			break;
		case SF_STEP_SHORT:
			return ALONE_SHORT;
		default:
			return FOLLOWED;
		}
		sf_curl_pace_fed(&pace, p->cur.hdrs + p->cur.body != had);
		if (ev != SF_WAIT_DONE)
			continue;

		struct sf_curl_reply *final = sf_flight_result(w->f);
		if (!final)
			return ALONE_SHORT; /* the leader could not share it */
		switch (sf_curl_follow_end(p, final, code)) {
		case SF_STEP_RETRY:
			return ALONE_RETRY;
		case SF_STEP_DONE:
			sf_curl_live_end(p);
			sf_curl_reply_ref(final);
			p->h->reply =
			        final; /* getinfo and headers answer from it */
			return FOLLOWED;
		default:
			return FOLLOWED;
		}
	}
}

/* Everything between joining as a follower and knowing what comes next,
 * log lines included (write(2) is a cancellation point), runs guarded:
 * follow_left() releases what the follower holds however it is left. */
static void follow_run(void *arg)
{
	struct follow *w = arg;
	struct sf_curl_xfer *p = w->p;
	sf_log(SF_LOG_DEBUG, "%s: joined flight", p->key.url);
	if (p->d.errbuf)
		p->d.errbuf[0] = '\0'; /* as libcurl does at the start */
	sf_curl_live_start(p);
	w->o = follow_loop(w, &w->code);
	if (sf_curl_live(p))
		sf_curl_live_end(p);
	sf_curl_reader_free(&w->rd);
	switch (w->o) {
	case PROMOTED:
		/* Still holds the flight, as its leader now. */
		sf_log(SF_LOG_INFO, "%s: leader gone, took over", p->key.url);
		return;
	case ALONE_EXPIRED:
		leave(w);
		sf_log(SF_LOG_INFO,
		       "%s: waited past SFSHIM_WAIT_MS without progress, "
		       "fetching alone",
		       p->key.url);
		return;
	case ALONE_SHORT:
		leave(w);
		sf_log(SF_LOG_INFO,
		       "%s: could not get its copy of the response, "
		       "fetching alone",
		       p->key.url);
		return;
	default:
		leave(w);
		return;
	}
}

CURLcode sf_curl_follow(struct sf_curl_xfer *p, sf_flight *f)
{
	struct follow w = { .p = p, .f = f, .code = CURLE_OK };
	sf_leave_guarded(follow_run, &w, follow_left, &w);

	/* From here the follower holds no flight reference, or (promoted)
	 * sf_curl_lead() owns it, with its own guard. */
	p->late = w.o != FOLLOWED;
	switch (w.o) {
	case PROMOTED:
		p->path = SF_PATH_PROMOTED;
		p->promoted = true;
		return sf_curl_bridge(p, f);
	case ALONE_EXPIRED:
		p->path = SF_PATH_EXPIRED;
		return sf_curl_alone(p);
	case ALONE_RETRY:
		p->path = SF_PATH_RETRIED;
		return sf_curl_alone(p);
	case ALONE_SHORT:
		p->path = SF_PATH_FALLBACK;
		return sf_curl_alone(p);
	default:
		/* With no reply (this follower failed on its own), getinfo
		 * answers what it saw itself: status, size and times. */
		p->h->total_ns = sf_now_ns() - p->start_ns;
		p->h->size_download = (long)p->d.body_done;
		p->h->response_code = p->d.response_code;
		p->h->own_answers = true;
		return w.code;
	}
}
