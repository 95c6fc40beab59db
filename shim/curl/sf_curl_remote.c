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
 * Files (sf_curl_xfile.h): one per flight, named after its slot and
 * generation, created by the first leader when it joins (O_EXCL, 0600, no
 * symlink); a leader that takes over appends its epoch to the same file.
 * The name goes as soon as the flight is over and every follower holds
 * the file open or has left; files of leaders that were killed are removed
 * by the next leader of the scope, and by sf_scope_sweep() at attach. */
#include "curl/sf_curl_xfer.h"

#include "common/sf_log.h"
#include "common/sf_scope.h"
#include "common/sf_stats.h"
#include "core/sf_clock.h"
#include "core/sf_leave.h"
#include "core/sf_xflight.h"
#include "curl/sf_curl_xfile.h"

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Progress is a position in the file (sf_curl_xfile.h): the epoch in
 * the top bits, so it grows across leaders too. */

/* As in-process (sf_curl_lead.c): a transfer nobody follows is written
 * only this far; past it, unless somebody in another process joined, the
 * scope's flight ends, so that a lone download is never copied. */
#define X_LONE_STORE ((size_t)4 * 1024)

#define NAME_MAX_X 96

/* The orphan sweep runs at a process's first leader, then every so many. */
#define SWEEP_EVERY 64

struct sf_curl_xlead {
	struct sf_xtable *t;
	struct sf_xticket tk;
	unsigned slot, gen;
	uint32_t epoch;
	struct sf_xfile *file; /* NULL: none could be made */
	bool sealed;           /* somebody follows: the file is written whole */
	bool ended;            /* finished or abandoned: the ticket is gone */
	const char *url;
	char name[NAME_MAX_X];
};

static void file_name(char *buf, unsigned slot, unsigned gen)
{
	if (sf_scope_file_name(buf, NAME_MAX_X, slot, gen) <= 0)
		buf[0] = '\0';
}

static void unlink_name(const char *name)
{
	int dfd = sf_scope_dirfd();
	if (name[0] && dfd >= 0)
		unlinkat(dfd, name, 0);
}

/* Exactly the names sf_scope_file_name() makes: the two numbers in it,
 * formatted again, give it back. */
static bool response_name(const char *s)
{
	char again[NAME_MAX_X], *end;
	const char *d = strpbrk(s, "0123456789");
	if (!d)
		return false;
	unsigned long slot = strtoul(d, &end, 10);
	if (*end != '-' || end[1] < '0' || end[1] > '9')
		return false;
	unsigned long gen = strtoul(end + 1, &end, 10);
	return !*end && slot <= UINT_MAX && gen <= UINT_MAX &&
	       sf_scope_file_name(again, sizeof(again), (unsigned)slot,
	                          (unsigned)gen) > 0 &&
	       strcmp(again, s) == 0;
}

/* Files of leaders killed (or exited) before their names could go: nobody
 * waits for their bytes by name (a follower that holds one open keeps
 * reading it, and one that takes over appends through its descriptor). */
static void sweep_orphans(void)
{
	static _Atomic unsigned runs;
	if (atomic_fetch_add_explicit(&runs, 1, memory_order_relaxed) %
	    SWEEP_EVERY)
		return;
	int dfd = sf_scope_dirfd();
	int fd = dfd >= 0 ? openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
	                  : -1;
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	struct dirent *e;
	while ((e = readdir(d)))
		if (response_name(e->d_name) &&
		    sf_xfile_orphaned(dfd, e->d_name))
			unlinkat(dfd, e->d_name, 0);
	closedir(d);
}

/* ---- the global leader ------------------------------------------------ */

/* Starts writing its epoch; without a file, the others fetch alone. */
static void begin(struct sf_curl_xlead *x)
{
	struct sf_xowner me = sf_xowner_self();
	uint64_t at = x->file ? sf_xfile_begin(x->file, x->epoch, &me) : 0;
	if (!at) {
		x->file = NULL;
		return;
	}
	sf_xnotify(x->t, &x->tk, at);
}

static uint64_t position(const struct sf_curl_xlead *x)
{
	return (uint64_t)x->epoch << SF_XFILE_EPOCH_SHIFT | x->file->len;
}

/* The flight ends (with the result or without): the name goes now if
 * every follower is counted, else with the last of them. */
static void ended(struct sf_curl_xlead *x, unsigned followers)
{
	x->ended = true;
	if (x->file && sf_xfile_finish(x->file, followers))
		unlink_name(x->name);
	if (x->file)
		sf_xfile_close(x->file);
	x->file = NULL;
}

/* Other processes' followers make their own calls (with what their
 * programs have compared): the file cannot be written. */
static void end_unshared(struct sf_curl_xlead *x)
{
	sf_xfinish(x->t, &x->tk, NULL, 0);
	ended(x, sf_xfollowers(x->t, &x->tk, NULL));
}

void sf_curl_xlead_record(struct sf_curl_xlead *x, enum sf_curl_rec type,
                          const void *data, size_t n)
{
	if (x->ended)
		return;
	if (!x->file) {
		end_unshared(x);
		return;
	}
	if (!x->sealed && x->file->len + 5 + n > X_LONE_STORE) {
		unsigned remote = 0;
		if (!sf_xfollowers(x->t, &x->tk, &remote)) {
			/* Nobody elsewhere: stop sharing across processes. */
			unlink_name(x->name);
			sf_xfile_close(x->file);
			x->file = NULL;
			sf_xabandon(x->t, &x->tk);
			x->ended = true;
			return;
		}
		x->sealed = true;
	}
	if (sf_xfile_put(x->file, (unsigned char)type, data, n) < 0) {
		sf_log(SF_LOG_ERROR,
		       "cannot write the response of %s (%m); "
		       "other processes fetch it themselves",
		       x->url);
		end_unshared(x);
		return;
	}
	sf_xnotify(x->t, &x->tk, position(x));
}

void sf_curl_xlead_abandon(struct sf_curl_xlead *x)
{
	if (x->ended)
		return;
	/* One of its followers takes over and appends to the file; should
	 * none (all left), the last of them to be counted removes it. */
	unsigned n = sf_xfollowers(x->t, &x->tk, NULL);
	sf_xabandon(x->t, &x->tk);
	ended(x, n);
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
	if (!n || !x->file || x->file->failed) {
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
	if (!snap ||
	    sf_xfile_put_final(x->file, code, errmsg, retry, snap) < 0) {
		sf_curl_reply_unref(own);
		end_unshared(x);
		return;
	}
	sf_curl_reply_unref(own);
	uint64_t blob[2] = { x->epoch, x->file->len };
	sf_xnotify(x->t, &x->tk, position(x));
	sf_xfinish(x->t, &x->tk, blob, sizeof(blob));
	/* Final now (nobody joins a finished flight); 0 if the slot went
	 * already: then every follower left. */
	n = sf_xfollowers(x->t, &x->tk, &remote);
	sf_count_cross(SF_API_CURL, SF_XSTAT_SERVED, remote);
	sf_log(SF_LOG_DEBUG, "%s: finished flight across processes (%u)",
	       x->url, n);
	ended(x, n);
}

/* Leads f, and the scope's flight x, which sf_curl_lead() ends. */
static CURLcode lead_x(struct sf_curl_xfer *p, sf_flight *f,
                       struct sf_curl_xlead *x)
{
	begin(x);
	p->x = x;
	CURLcode code = sf_curl_lead(p, f);
	p->x = NULL;
	if (!x->ended) /* a lead left early: sf_curl_lead() ends it */
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
		unlink_name(w->name);
	return o;
}

static enum xoutcome xloop(struct xfollow *w, CURLcode *code)
{
	struct sf_curl_xfer *p = w->p;
	struct sf_delivery *d = &p->d;
	/* Its wait without progress starts here (a follower promoted in its
	 * own process waited with progress so far). */
	uint64_t wait = p->cfg->wait_ns, last = sf_now_ns();
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
	open_file(w, dfd); /* as soon as it exists */
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
	sf_xfile_init(&w.xf);
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
		uint64_t seen = sf_xprogress(t, &w.tk);
		int dfd = sf_scope_dirfd();
		if (w.xf.fd < 0 && dfd >= 0 &&
		    sf_xfile_open(&w.xf, dfd, w.name, true) > 0)
			sf_xfile_count(&w.xf);
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
		CURLcode code = lead_x(p, mine, &x);
		sf_xfile_close(&w.xf);
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
	if (!t || sf_scope_dirfd() < 0) /* no place for responses */
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
	file_name(x.name, x.slot, x.gen);
	/* The file exists before anyone can wait for it.  What has its name
	 * is left over from an earlier table: this flight's is new. */
	struct sf_xfile xf;
	sf_xfile_init(&xf);
	int dfd = sf_scope_dirfd();
	if (dfd >= 0 && x.name[0]) {
		sweep_orphans();
		unlinkat(dfd, x.name, 0);
		if (sf_xfile_open(&xf, dfd, x.name, true) > 0)
			x.file = &xf;
		else
			sf_log(SF_LOG_INFO,
			       "%s: cannot create the response file (%m); "
			       "other processes fetch it themselves",
			       p->key.url);
	}
	sf_log(SF_LOG_DEBUG, "%s: leading flight across processes", p->key.url);
	sf_count_cross(SF_API_CURL, SF_XSTAT_LED, 1);
	CURLcode code = lead_x(p, f, &x);
	sf_xfile_close(&xf);
	return code;
}
