/* sf_curl_remote.c - curl flights across the processes of a scope: the
 * bridge between a process's own flight (core/sf_flight.h) and the
 * scope's (core/sf_xflight.h).
 *
 * Threads of one process coalesce in-process as without a scope; only the
 * process's leader joins the scope's flight for the request:
 *  - as the global leader it performs, and its records (sf_curl_xfile.h)
 *    go to a file of the scope directory as well as to its own flight; the
 *    byte count, published with sf_xnotify(), is the progress other
 *    processes wait on (its top bits carry the leader's epoch);
 *  - as a global follower it does not perform: it reads the leader's file
 *    as it grows and feeds each record to its own flight and, through its
 *    cursor, to its program: its in-process followers and its program see
 *    the transfer as if it were its own; getinfo and the header API answer
 *    from the final records.
 * The rules are those of in-process followers (README, "libcurl"): a dead
 * leader process (SF_XWAIT_PROMOTED) makes this one perform, publishing a
 * new file that every reader reads from its start, comparing what its
 * program has; a stalled or lost flight, or an unreadable file, makes it
 * fetch alone with the same comparison; a changed response fails with
 * CURLE_RECV_ERROR naming sfshim.
 *
 * Files: created by a leader at its first record (O_EXCL, 0600, no
 * symlink), named after the flight's slot and generation; removed by
 * whoever finds the flight over after leaving it (leader after its finish,
 * each follower after its leave), by a leader that quits (its successor
 * writes a new file under the same name), and, for processes killed before
 * they could, by sf_scope_sweep(). */
#include "curl/sf_curl_xfer.h"

#include "common/sf_log.h"
#include "common/sf_scope.h"
#include "common/sf_stats.h"
#include "core/sf_clock.h"
#include "core/sf_leave.h"
#include "core/sf_xflight.h"
#include "curl/sf_curl_xfile.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Progress = epoch << EPOCH_SHIFT | bytes written: monotonic across
 * leaders, since each new leader's epoch is one more. */
#define EPOCH_SHIFT 40
#define LEN_MASK (((uint64_t)1 << EPOCH_SHIFT) - 1)

/* As in-process (sf_curl_lead.c): a transfer nobody follows is written
 * only this far; past it, unless somebody in another process joined, the
 * scope's flight ends, so that a lone download is never copied. */
#define X_LONE_STORE ((size_t)4 * 1024)

#define NAME_MAX_X 96

struct sf_curl_xlead {
	struct sf_xtable *t;
	struct sf_xticket tk;
	unsigned slot, gen;
	uint32_t epoch;
	struct sf_xfile_writer w;
	bool tried;  /* the file was created (or could not be) */
	bool sealed; /* somebody follows: the file is written whole */
	bool ended;  /* finished or abandoned: the ticket is gone */
	const char *url;
	char name[NAME_MAX_X];
};

static uint64_t progress_of(uint32_t epoch, uint64_t len)
{
	return (uint64_t)epoch << EPOCH_SHIFT | len;
}

static void file_name(char *buf, unsigned slot, unsigned gen)
{
	if (sf_scope_file_name(buf, NAME_MAX_X, slot, gen) <= 0)
		buf[0] = '\0';
}

/* The flight is over for everyone (no reader is left): its file goes. */
static void drop_if_over(struct sf_xtable *t, unsigned slot, unsigned gen,
                         const char *name)
{
	int dfd = sf_scope_dirfd();
	if (name[0] && dfd >= 0 && !sf_xflight_current(t, slot, gen))
		unlinkat(dfd, name, 0);
}

static void unlink_name(const char *name)
{
	int dfd = sf_scope_dirfd();
	if (name[0] && dfd >= 0)
		unlinkat(dfd, name, 0);
}

/* ---- the global leader ------------------------------------------------ */

static int create_file(struct sf_curl_xlead *x)
{
	int dfd = sf_scope_dirfd();
	file_name(x->name, x->slot, x->gen);
	if (dfd < 0 || !x->name[0])
		return -1;
	/* The name is this flight's: what is there is a dead leader's file
	 * of this flight (its readers hold it open), or a leftover. */
	unlinkat(dfd, x->name, 0);
	if (sf_xfile_create(&x->w, dfd, x->name, x->epoch) == 0)
		return 0;
	sf_scope_sweep();
	unlinkat(dfd, x->name, 0);
	return sf_xfile_create(&x->w, dfd, x->name, x->epoch);
}

/* Other processes' followers make their own calls (with what their
 * programs have compared): the file cannot be written. */
static void end_unshared(struct sf_curl_xlead *x)
{
	sf_xfinish(x->t, &x->tk, NULL, 0);
	x->ended = true;
	sf_xfile_close(&x->w);
	drop_if_over(x->t, x->slot, x->gen, x->name);
}

void sf_curl_xlead_record(struct sf_curl_xlead *x, enum sf_curl_rec type,
                          const void *data, size_t n)
{
	if (x->ended)
		return;
	if (!x->tried) {
		x->tried = true;
		if (create_file(x) < 0) {
			sf_log(SF_LOG_INFO,
			       "%s: cannot create the response file (%m); "
			       "other processes fetch it themselves",
			       x->url);
			end_unshared(x);
			return;
		}
	}
	if (!x->sealed && x->w.len + 5 + n > X_LONE_STORE) {
		unsigned remote = 0;
		if (!sf_xfollowers(x->t, &x->tk, &remote)) {
			/* Nobody elsewhere: stop sharing across processes. */
			sf_xfile_close(&x->w);
			unlink_name(x->name);
			sf_xabandon(x->t, &x->tk);
			x->ended = true;
			return;
		}
		x->sealed = true;
	}
	if (x->w.len + 5 + n > LEN_MASK ||
	    sf_xfile_put(&x->w, (unsigned char)type, data, n) < 0) {
		sf_log(SF_LOG_ERROR,
		       "cannot write the response of %s (%m); "
		       "other processes fetch it themselves",
		       x->url);
		end_unshared(x);
		return;
	}
	sf_xnotify(x->t, &x->tk, progress_of(x->epoch, x->w.len));
}

void sf_curl_xlead_abandon(struct sf_curl_xlead *x)
{
	if (x->ended)
		return;
	/* Its successor writes a new file under the same name; readers of
	 * this one keep it open until they switch. */
	sf_xfile_close(&x->w);
	unlink_name(x->name);
	sf_xabandon(x->t, &x->tk);
	x->ended = true;
}

void sf_curl_xlead_finish(struct sf_curl_xlead *x, CURLcode code,
                          const char *errmsg, bool retry,
                          const struct sf_curl_real *api, CURL *easy,
                          const struct sf_curl_reply *snap)
{
	if (x->ended)
		return;
	unsigned remote = 0;
	unsigned n = sf_xfollowers(x->t, &x->tk, &remote);
	if (n && !x->tried) { /* nothing received: an error to share */
		x->tried = true;
		if (create_file(x) < 0)
			x->w.fd = -1;
	}
	if (!n || x->w.fd < 0 || x->w.failed) {
		end_unshared(x);
		return;
	}
	struct sf_curl_reply *own = NULL;
	if (!snap && (own = sf_curl_reply_new_live(false)) &&
	    sf_curl_reply_snapshot(own, api, easy) < 0) {
		sf_curl_reply_unref(own);
		own = NULL;
	}
	if (!snap)
		snap = own;
	if (!snap || sf_xfile_put_final(&x->w, code, errmsg, retry, snap) < 0 ||
	    x->w.len > LEN_MASK) {
		sf_curl_reply_unref(own);
		end_unshared(x);
		return;
	}
	sf_curl_reply_unref(own);
	uint64_t blob[2] = { x->epoch, x->w.len };
	sf_xnotify(x->t, &x->tk, progress_of(x->epoch, x->w.len));
	sf_xfinish(x->t, &x->tk, blob, sizeof(blob));
	x->ended = true;
	sf_count_cross(SF_API_CURL, SF_XSTAT_SERVED, remote);
	sf_xfile_close(&x->w);
	sf_log(SF_LOG_DEBUG, "%s: finished flight across processes (%u)",
	       x->url, n);
	drop_if_over(x->t, x->slot, x->gen, x->name);
}

/* Leads f, and the scope's flight x, which sf_curl_lead() ends. */
static CURLcode lead_x(struct sf_curl_xfer *p, sf_flight *f,
                       struct sf_curl_xlead *x)
{
	x->w.fd = -1;
	p->x = x;
	CURLcode code = sf_curl_lead(p, f);
	p->x = NULL;
	if (!x->ended) /* never happens: sf_curl_lead() ends it */
		sf_curl_xlead_abandon(x);
	return code;
}

/* ---- the global follower ---------------------------------------------- */

enum xoutcome { X_DONE, X_OWN, X_PROMOTED, X_EXPIRED, X_SHORT, X_RETRY };

struct xfollow {
	struct sf_curl_xfer *p;
	sf_flight *f; /* this process's flight, which it leads */
	struct sf_xtable *t;
	struct sf_xticket tk;
	unsigned slot, gen;
	char name[NAME_MAX_X];
	struct sf_xfile_reader rd;
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
	while ((k = sf_xfile_next(&w->rd, avail, &type, &data, &len)) > 0) {
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
	*epoch = pr >> EPOCH_SHIFT;
	*avail = pr & LEN_MASK;
	return true;
}

static enum xoutcome xloop(struct xfollow *w, CURLcode *code)
{
	struct sf_curl_xfer *p = w->p;
	struct sf_delivery *d = &p->d;
	uint64_t wait = p->cfg->wait_ns, last = p->start_ns;
	uint64_t own =
	        d->lim.timeout_ms > 0
	                ? p->start_ns + (uint64_t)d->lim.timeout_ms * 1000000u
	                : 0;
	bool progress = !d->noprogress;
	bool slow_check = d->lim.low_speed_limit > 0 &&
	                  d->lim.low_speed_time > 0;
	struct sf_curl_speed speed = { .at = p->start_ns,
		                       .next = p->start_ns + SECOND };
	uint64_t tick = 0;
	bool idle = false;
	int dfd = sf_scope_dirfd();
	if (dfd < 0 || !w->name[0])
		return X_SHORT;
	for (;;) {
		uint64_t now = sf_now_ns();
		if (progress && (!tick || now >= tick)) {
			tick = now + SECOND;
			curl_off_t total =
			        d->content_length > 0 ? d->content_length : 0;
			if (sf_deliver_progress(d, total,
			                        (curl_off_t)d->body_done)) {
				*code = fail(p, CURLE_ABORTED_BY_CALLBACK,
				             "Callback aborted");
				return X_OWN;
			}
		}
		if (own && now >= own) {
			*code = sf_delivery_timed_out(
			        d, (long)((now - p->start_ns) / 1000000u));
			return X_OWN;
		}
		if (slow_check && sf_curl_too_slow(p, &speed, now)) {
			*code = sf_curl_slow_error(p);
			return X_OWN;
		}
		if (wait && idle && now >= last + wait)
			return X_EXPIRED;
		uint64_t until = earliest(own, wait ? last + wait : 0);
		until = earliest(until, progress ? tick : 0);
		until = earliest(until, slow_check ? speed.next : 0);
		struct timespec ts = sf_ns_to_timespec(until),
		                *dl = until ? &ts : NULL;

		enum sf_xwait ev = sf_xwait(w->t, &w->tk, dl);
		if (ev == SF_XWAIT_PROMOTED) {
			w->xleading = true; /* before any cancellation point */
			return X_PROMOTED;
		}
		if (ev == SF_XWAIT_LOST)
			return X_SHORT;
		/* As an in-process follower's wait, a cancellation point. */
		pthread_testcancel();
		idle = ev == SF_XWAIT_TIMEOUT;
		if (idle)
			continue;
		last = sf_now_ns();
		uint64_t epoch, avail;
		if (!where(w, ev, &epoch, &avail))
			return X_SHORT;
		if (w->rd.fd < 0 || w->rd.epoch != epoch) {
			int o = sf_xfile_open(&w->rd, dfd, w->name);
			if (o < 0)
				return X_SHORT;
			if (o == 0 || w->rd.epoch != epoch) {
				/* Not written yet, or already another
				 * leader's: its own progress will come. */
				sf_xfile_reader_close(&w->rd);
				if (ev == SF_XWAIT_DONE)
					return X_SHORT;
				continue;
			}
			new_generation(w);
			sf_curl_cursor_restart(&p->cur);
			w->final = false;
		}
		size_t had = p->cur.hdrs + p->cur.body;
		switch (drain(w, avail)) {
		case SF_REFUSED:
			*code = fail(p, CURLE_WRITE_ERROR, d->failure);
			return X_OWN;
		case SF_UNREADABLE:
			return X_SHORT;
		case SF_DIVERGED:
			*code = fail(p, CURLE_RECV_ERROR, SF_CURL_CHANGED_MSG);
			return X_OWN;
		case SF_FED:
			break;
		}
		if (p->cur.hdrs + p->cur.body != had && progress)
			tick = 0;
		if (ev != SF_XWAIT_DONE)
			continue;
		if (!w->final || !w->gen_r)
			return X_SHORT;
		if (w->gen_r->retry)
			return X_RETRY;
		if (!sf_curl_cursor_covered(&p->cur)) {
			*code = fail(p, CURLE_RECV_ERROR, SF_CURL_CHANGED_MSG);
			return X_OWN;
		}
		*code = w->gen_r->code;
		if (w->gen_r->code != CURLE_OK)
			sf_delivery_error(d, w->gen_r->errmsg);
		return X_DONE;
	}
}

static void leave_x(struct xfollow *w)
{
	if (!w->xheld)
		return;
	w->xheld = false;
	sf_xleave(w->t, &w->tk);
	drop_if_over(w->t, w->slot, w->gen, w->name);
}

/* Left without returning (cancelled, or a jump out of a callback): the
 * ticket and this process's flight are handed on, nothing stays open. */
static void xfollow_left(void *arg)
{
	struct xfollow *w = arg;
	struct sf_curl_xfer *p = w->p;
	sf_curl_live_end(p);
	if (w->xheld && w->xleading) {
		w->xheld = false;
		sf_xabandon(w->t, &w->tk);
	}
	leave_x(w);
	if (w->fheld)
		sf_flight_abandon(w->f);
	w->fheld = false;
	sf_xfile_reader_close(&w->rd);
	free(w->rd.buf);
	w->rd.buf = NULL;
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
	sf_xfile_reader_close(&w->rd);
	free(w->rd.buf);
	w->rd.buf = NULL;
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

static CURLcode remote_follow(struct sf_curl_xfer *p, sf_flight *f,
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
	sf_xfile_reader_init(&w.rd);
	file_name(w.name, w.slot, w.gen);
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
	sf_count_cross(SF_API_CURL,
	               w.o == X_PROMOTED               ? SF_XSTAT_PROMOTED
	               : w.o == X_DONE || w.o == X_OWN ? SF_XSTAT_ANSWERED
	                                               : SF_XSTAT_ALONE,
	               1);
	switch (w.o) {
	case X_PROMOTED: {
		struct sf_curl_xlead x = {
			.t = t,
			.tk = w.tk,
			.slot = w.slot,
			.gen = w.gen,
			.epoch = (uint32_t)(sf_xprogress(t, &w.tk) >>
			                    EPOCH_SHIFT) +
			         1,
			.url = p->key.url,
		};
		p->path = SF_PATH_PROMOTED;
		return lead_x(p, mine, &x);
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
		if (w.fheld)
			sf_flight_abandon(f);
		sf_curl_reply_unref(w.gen_r);
		own_answers(p);
		return w.code;
	default:
		break;
	}
	/* Followed: its followers and its handle answer from the reply. */
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

/* ---- the bridge ------------------------------------------------------- */

/* The scope's key: the libcurl build that answers (processes may load
 * different ones), then the process's own key (which holds no address
 * of this process). */
static unsigned char *scope_key(const struct sf_curl_xfer *p, size_t *len)
{
	static const char tag[] = "sfshim-curl-x1";
	char lib[PATH_MAX] = "";
	Dl_info di;
	if (p->api->easy_perform && dladdr((void *)p->api->easy_perform, &di) &&
	    di.dli_fname && !realpath(di.dli_fname, lib))
		snprintf(lib, sizeof(lib), "%s", di.dli_fname);
	size_t ll = strlen(lib) + 1;
	*len = sizeof(tag) + ll + p->key.len;
	if (*len > SF_XKEY_MAX)
		return NULL;
	unsigned char *k = malloc(*len);
	if (!k)
		return NULL;
	memcpy(k, tag, sizeof(tag));
	memcpy(k + sizeof(tag), lib, ll);
	memcpy(k + sizeof(tag) + ll, p->key.bytes, p->key.len);
	return k;
}

CURLcode sf_curl_bridge(struct sf_curl_xfer *p, sf_flight *f)
{
	struct sf_xtable *t = f ? sf_scope_table() : NULL;
	if (!t)
		return sf_curl_lead(p, f);
	size_t klen = 0;
	unsigned char *k = scope_key(p, &klen);
	struct sf_xticket tk;
	enum sf_xrole role = k ? sf_xjoin(t, k, klen, &tk) : SF_XROLE_NONE;
	free(k);
	if (role == SF_XROLE_FOLLOWER)
		return remote_follow(p, f, t, &tk);
	if (role != SF_XROLE_LEADER)
		return sf_curl_lead(p, f);
	struct sf_curl_xlead x = { .t = t,
		                   .tk = tk,
		                   .slot = tk.slot,
		                   .gen = tk.gen,
		                   .url = p->key.url };
	sf_log(SF_LOG_DEBUG, "%s: leading flight across processes", p->key.url);
	sf_count_cross(SF_API_CURL, SF_XSTAT_LED, 1);
	return lead_x(p, f, &x);
}
