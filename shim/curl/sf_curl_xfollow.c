/* sf_curl_xfollow.c - the global follower: a process's leader whose
 * request another process of the scope leads reads that process's response
 * file as it grows and feeds it, record by record, into its own flight and,
 * through its cursor, to its program (sf_curl_remote.c has the bridge and
 * the leader's side; README, "libcurl", the rules). */
#include "curl/sf_curl_remote.h"

#include "common/sf_log.h"
#include "common/sf_scope.h"
#include "common/sf_stats.h"
#include "core/sf_clock.h"
#include "core/sf_leave.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum xoutcome { X_DONE, X_OWN, X_PROMOTED, X_EXPIRED, X_SHORT, X_RETRY };

struct xfollow {
	struct sf_curl_xfer *p;
	sf_flight *f; /* this process's flight, which it leads */
	struct sf_xtable *t;
	struct sf_xticket tk;
	unsigned slot, gen;
	char name[SF_XNAME_MAX];
	struct sf_xfile xf;
	struct sf_curl_reply *gen_r; /* f's generation it records into */
	bool final;                  /* the end record was read */
	bool xheld;                  /* still holds its ticket */
	bool xleading;               /* promoted: the ticket leads */
	bool fheld;                  /* still leads f */
	enum xoutcome o;
	CURLcode code;
};

/* f's followers make their own calls (memory short): f is ended. */
static void unshare_local(struct xfollow *w)
{
	if (w->fheld)
		sf_flight_finish(w->f, NULL, NULL);
	w->fheld = false;
	sf_curl_reply_unref(w->gen_r);
	w->gen_r = NULL;
}

/* A new response (another leader's file) starts: f gets a new generation,
 * which its followers read from its start. */
static void new_generation(struct xfollow *w)
{
	sf_curl_reply_unref(w->gen_r);
	w->gen_r = NULL;
	if (!w->fheld)
		return;
	struct sf_curl_reply *r = sf_curl_reply_new(w->p->cfg->spill_bytes);
	if (!r || !sf_curl_response_publish(w->f, r)) {
		sf_curl_reply_unref(r);
		unshare_local(w);
		return;
	}
	w->gen_r = r;
}

static enum sf_curl_fed drain(struct xfollow *w, uint64_t avail)
{
	struct sf_curl_xfer *p = w->p;
	unsigned char type;
	const unsigned char *data;
	size_t len;
	int k;
	while ((k = sf_xfile_next(&w->xf, avail, &type, &data, &len)) > 0) {
		if (w->final)
			return SF_UNREADABLE; /* nothing follows the end */
		if (type == SF_REC_HEADER || type == SF_REC_BODY) {
			enum sf_curl_rec t = (enum sf_curl_rec)type;
			if (w->gen_r) {
				if (sf_curl_response_record(w->gen_r, t, data,
				                            len) < 0)
					unshare_local(w);
				else
					sf_flight_notify(w->f);
			}
			enum sf_curl_fed fed = sf_curl_cursor_feed(
			        &p->cur, t, (const char *)data, len, w->gen_r,
			        sf_curl_follow_give, p);
			if (fed != SF_FED)
				return fed;
		} else if (type == SF_XREC_END) {
			w->final = true;
		} else if (!w->gen_r || sf_xfile_apply_final(w->gen_r, type,
		                                             data, len) < 0) {
			return SF_UNREADABLE;
		}
	}
	return k < 0 ? SF_UNREADABLE : SF_FED;
}

/* Where the flight's response is now: the published count, or, once
 * finished, the final length.  False when there is nothing to read. */
static bool where(struct xfollow *w, enum sf_xwait ev, uint64_t *epoch,
                  uint64_t *avail)
{
	if (ev == SF_XWAIT_DONE) {
		uint64_t blob[2];
		if (sf_xresult(w->t, &w->tk, blob, sizeof(blob)) !=
		    (ssize_t)sizeof(blob))
			return false;
		*epoch = blob[0];
		*avail = blob[1];
		return true;
	}
	uint64_t pr = sf_xprogress(w->t, &w->tk);
	*epoch = pr >> SF_XFILE_EPOCH_SHIFT;
	*avail = pr & SF_XFILE_OFF_MASK;
	return true;
}

/* Opens the flight's file if it is not open yet: once it is, this process
 * is counted among those that no longer need its name. */
static int open_file(struct xfollow *w, int dfd)
{
	if (w->xf.fd >= 0)
		return 1;
	int o = sf_xfile_open(&w->xf, dfd, w->name, false);
	if (o > 0 && sf_xfile_count(&w->xf))
		sf_curl_xunlink(w->name);
	return o;
}

static enum xoutcome xloop(struct xfollow *w, CURLcode *code)
{
	struct sf_curl_xfer *p = w->p;
	/* Its wait without progress starts here (a follower promoted in its
	 * own process waited with progress so far). */
	struct sf_curl_pace pace;
	sf_curl_pace_start(&pace, p, sf_now_ns());
	int dfd = sf_scope_dirfd();
	if (dfd < 0 || !w->name[0])
		return X_SHORT;
	open_file(w, dfd); /* as soon as it exists */
	for (;;) {
		uint64_t until = 0;
		/* sf_xwait() is no cancellation point: a cancelled thread
		 * notices within a slice. */
		switch (sf_curl_pace_check(&pace, p, sf_now_ns(),
		                           SF_XCANCEL_SLICE_NS, &until, code)) {
		case SF_STEP_ON:
			break;
		case SF_STEP_EXPIRED:
			return X_EXPIRED;
		default:
			return X_OWN;
		}
		struct timespec ts = sf_ns_to_timespec(until);

		enum sf_xwait ev = sf_xwait(w->t, &w->tk, &ts);
		if (ev == SF_XWAIT_PROMOTED) {
			w->xleading = true; /* before any cancellation point */
			return X_PROMOTED;
		}
		if (ev == SF_XWAIT_LOST)
			return X_SHORT;
		/* As an in-process follower's wait, a cancellation point. */
		pthread_testcancel();
		sf_curl_pace_woke(&pace, ev == SF_XWAIT_TIMEOUT);
		if (ev == SF_XWAIT_TIMEOUT)
			continue;
		uint64_t epoch, avail;
		if (!where(w, ev, &epoch, &avail))
			return X_SHORT;
		int o = open_file(w, dfd);
		if (o < 0)
			return X_SHORT;
		if (o > 0 && w->xf.epoch != epoch) {
			/* Another leader's response: read from its start. */
			if (!sf_xfile_seek_epoch(&w->xf, (uint32_t)epoch))
				o = 0; /* its own progress will come */
			else {
				new_generation(w);
				sf_curl_cursor_restart(&p->cur);
				w->final = false;
			}
		}
		if (o == 0) {
			if (ev == SF_XWAIT_DONE)
				return X_SHORT;
			continue;
		}
		size_t had = p->cur.hdrs + p->cur.body;
		switch (sf_curl_follow_fed(p, drain(w, avail), code)) {
		case SF_STEP_ON:
			break;
		case SF_STEP_SHORT:
			return X_SHORT;
		default:
			return X_OWN;
		}
		sf_curl_pace_fed(&pace, p->cur.hdrs + p->cur.body != had);
		if (ev != SF_XWAIT_DONE)
			continue;
		if (!w->final || !w->gen_r)
			return X_SHORT;
		switch (sf_curl_follow_end(p, w->gen_r, code)) {
		case SF_STEP_RETRY:
			return X_RETRY;
		case SF_STEP_DONE:
			return X_DONE;
		default:
			return X_OWN;
		}
	}
}

/* Gives its ticket back; counted as done with the name (the file's
 * leader could not tell when it left). */
static void leave_x(struct xfollow *w)
{
	if (!w->xheld)
		return;
	w->xheld = false;
	sf_xleave(w->t, &w->tk);
	int dfd = sf_scope_dirfd();
	if (dfd >= 0)
		open_file(w, dfd);
	sf_xfile_close(&w->xf);
}

/* Left without returning (cancelled, or a jump out of a callback): the
 * ticket and this process's flight are handed on, nothing stays open. */
static void xfollow_left(void *arg)
{
	struct xfollow *w = arg;
	struct sf_curl_xfer *p = w->p;
	/* A jump out of the table's code (sf_xwait taking over, a notify
	 * once leading) releases the lock first (sf_curl_xlead_abandon). */
	sf_xtable_left(w->t);
	sf_curl_live_end(p);
	if (w->xheld && w->xleading) {
		/* Counted as a follower, and holds no file of its own yet. */
		w->xheld = false;
		sf_xabandon(w->t, &w->tk);
		int dfd = sf_scope_dirfd();
		if (dfd >= 0)
			open_file(w, dfd);
	}
	leave_x(w);
	sf_xfile_close(&w->xf);
	if (w->fheld)
		sf_flight_abandon(w->f);
	w->fheld = false;
	sf_curl_reply_unref(w->gen_r);
	w->gen_r = NULL;
	sf_curl_cursor_free(&p->cur);
	sf_curl_key_free(&p->key);
}

static void xfollow_run(void *arg)
{
	struct xfollow *w = arg;
	struct sf_curl_xfer *p = w->p;
	sf_log(SF_LOG_DEBUG, "%s: joined flight across processes", p->key.url);
	if (p->d.errbuf)
		p->d.errbuf[0] = '\0';
	sf_curl_live_start(p);
	w->o = xloop(w, &w->code);
	if (sf_curl_live(p))
		sf_curl_live_end(p);
	switch (w->o) {
	case X_PROMOTED:
		sf_log(SF_LOG_INFO,
		       "%s: leader process gone, took over across processes",
		       p->key.url);
		return;
	case X_EXPIRED:
		leave_x(w);
		sf_log(SF_LOG_INFO,
		       "%s: waited past SFSHIM_WAIT_MS for another process, "
		       "fetching alone",
		       p->key.url);
		return;
	case X_SHORT:
		leave_x(w);
		sf_log(SF_LOG_INFO,
		       "%s: could not read another process's response, "
		       "fetching alone",
		       p->key.url);
		return;
	default:
		leave_x(w);
		return;
	}
}

/* Its own answers when it failed on its own, as an in-process follower. */
static void own_answers(struct sf_curl_xfer *p)
{
	p->h->total_ns = sf_now_ns() - p->start_ns;
	p->h->size_download = (long)p->d.body_done;
	p->h->response_code = p->d.response_code;
	p->h->own_answers = true;
}

CURLcode sf_curl_xfollow(struct sf_curl_xfer *p, sf_flight *f,
                         struct sf_xtable *t, const struct sf_xticket *tk)
{
	struct xfollow w = { .p = p,
		             .f = f,
		             .t = t,
		             .tk = *tk,
		             .slot = tk->slot,
		             .gen = tk->gen,
		             .xheld = true,
		             .fheld = true };
	sf_xfile_init(&w.xf);
	sf_curl_xname(w.name, w.slot, w.gen);
	sf_leave_guarded(xfollow_run, &w, xfollow_left, &w);

	sf_flight *mine = w.fheld ? f : NULL;
	if (w.o != X_DONE && w.o != X_OWN) {
		p->late = true;
		if (w.o == X_RETRY && w.fheld) {
			/* Its followers make their own calls too. */
			sf_flight_finish(f, w.gen_r, NULL);
			mine = NULL;
		}
		sf_curl_reply_unref(w.gen_r);
	}
	/* (A failure of its own is neither.) */
	if (w.o != X_OWN)
		sf_count_cross(SF_API_CURL,
		               w.o == X_PROMOTED ? SF_XSTAT_PROMOTED
		               : w.o == X_DONE   ? SF_XSTAT_ANSWERED
		                                 : SF_XSTAT_ALONE,
		               1);
	switch (w.o) {
	case X_PROMOTED: {
		/* It appends its own epoch to the flight's file. */
		int cs = sf_curl_no_cancel();
		uint64_t seen = sf_xprogress(t, &w.tk);
		int dfd = sf_scope_dirfd();
		if (w.xf.fd < 0 && dfd >= 0) {
			int o = sf_xfile_open(&w.xf, dfd, w.name, true);
			if (o == 0) /* its predecessor died making it */
				o = sf_xfile_create(&w.xf, dfd, w.name);
			if (o > 0)
				sf_xfile_count(&w.xf);
		}
		uint64_t cur = sf_xfile_current(&w.xf);
		if (cur > seen)
			seen = cur;
		struct sf_curl_xlead x = {
			.t = t,
			.tk = w.tk,
			.slot = w.slot,
			.gen = w.gen,
			.epoch = (uint32_t)(seen >> SF_XFILE_EPOCH_SHIFT) + 1,
			.file = w.xf.fd >= 0 ? &w.xf : NULL,
			.url = p->key.url,
		};
		memcpy(x.name, w.name, sizeof(x.name));
		p->path = SF_PATH_PROMOTED;
		sf_curl_re_cancel(cs);
		CURLcode code = sf_curl_lead_x(p, mine, &x);
		cs = sf_curl_no_cancel();
		sf_xfile_close(&w.xf);
		sf_curl_re_cancel(cs);
		return code;
	}
	case X_EXPIRED:
		p->path = SF_PATH_EXPIRED;
		return sf_curl_lead(p, mine);
	case X_SHORT:
		p->path = SF_PATH_FALLBACK;
		return sf_curl_lead(p, mine);
	case X_RETRY:
		p->path = SF_PATH_RETRIED;
		return sf_curl_lead(p, mine);
	case X_OWN:
		/* Its failure is its own: one of its followers takes over. */
		p->path = SF_PATH_FOLLOWER;
		if (w.fheld)
			sf_flight_abandon(f);
		sf_curl_reply_unref(w.gen_r);
		own_answers(p);
		return w.code;
	default:
		break;
	}
	/* Followed: its followers and its handle answer from the reply. */
	p->path = SF_PATH_FOLLOWER;
	if (w.fheld) {
		unsigned followers = sf_flight_seal(f) - p->promoted;
		if (followers)
			sf_stats_flight(SF_API_CURL, p->key.url, followers);
		sf_flight_finish(f, w.gen_r, NULL);
	}
	own_answers(p);
	p->h->reply = w.gen_r; /* its reference moves to the handle */
	return w.code;
}
