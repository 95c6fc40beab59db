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
 *  - as a global follower (sf_curl_xfollow.c) it does not perform: it
 *    reads the leader's file as it grows and feeds each record to its own
 *    flight and, through its cursor, to its program: its in-process
 *    followers and its program see the transfer as if it were its own;
 *    getinfo and the header API answer from the final records.
 * The rules are those of in-process followers (README, "libcurl"): a dead
 * leader process (SF_XWAIT_PROMOTED) makes this one perform, appending a
 * new epoch to the file that every reader reads from its start, comparing
 * what its program has; a stalled or lost flight, or an unreadable file,
 * makes it fetch alone with the same comparison; a changed response fails
 * with CURLE_RECV_ERROR naming sfshim.
 *
 * Files (sf_curl_xfile.h): one per flight, named after its slot and
 * generation, created by the first leader when it joins (O_EXCL, 0600, no
 * symlink); a leader that takes over appends its epoch to the same file.
 * The name goes as soon as the flight is over and every follower holds
 * the file open or has left; files of leaders that were killed are removed
 * by a later leader of the scope, and by sf_scope_sweep() at attach. */
#include "curl/sf_curl_remote.h"

#include "common/sf_log.h"
#include "common/sf_scope.h"
#include "common/sf_stats.h"
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

/* The orphan sweep runs at a process's first leader, then every so many. */
#define SWEEP_EVERY 64

/* Between joining a flight and the guarded parts that release it however
 * they are left (core/sf_leave.h), and while ending it, nothing may be a
 * cancellation point: opening, closing and logging are, and a thread
 * cancelled there would strand the flight's followers. */
int sf_curl_no_cancel(void)
{
	int old;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
	return old;
}

void sf_curl_re_cancel(int old)
{
	pthread_setcancelstate(old, NULL);
}

void sf_curl_xname(char *buf, unsigned slot, unsigned gen)
{
	if (sf_scope_file_name(buf, SF_XNAME_MAX, slot, gen) <= 0)
		buf[0] = '\0';
}

void sf_curl_xunlink(const char *name)
{
	int dfd = sf_scope_dirfd();
	if (name[0] && dfd >= 0)
		unlinkat(dfd, name, 0);
}

/* Exactly the names sf_scope_file_name() makes: the two numbers in it,
 * formatted again, give it back. */
static bool response_name(const char *s)
{
	char again[SF_XNAME_MAX], *end;
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
		sf_curl_xunlink(x->name);
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
			sf_curl_xunlink(x->name);
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
	int cs = sf_curl_no_cancel();
	/* Reached on the jump path too (a signal handler's siglongjmp out of
	 * the transfer, maybe out of sf_xnotify with the table locked): the
	 * lock is released first, else every process of the scope would wait
	 * the lock's bound on every call from now on.  Nothing otherwise. */
	sf_xtable_left(x->t);
	/* One of its followers takes over and appends to the file; should
	 * none (all left), the last of them to be counted removes it. */
	unsigned n = sf_xfollowers(x->t, &x->tk, NULL);
	sf_xabandon(x->t, &x->tk);
	ended(x, n);
	sf_curl_re_cancel(cs);
}

static void finish_x(struct sf_curl_xlead *x, CURLcode code, const char *errmsg,
                     bool retry, const struct sf_curl_real *api, CURL *easy,
                     const struct sf_curl_reply *snap)
{
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

void sf_curl_xlead_finish(struct sf_curl_xlead *x, CURLcode code,
                          const char *errmsg, bool retry,
                          const struct sf_curl_real *api, CURL *easy,
                          const struct sf_curl_reply *snap)
{
	if (x->ended)
		return;
	int cs = sf_curl_no_cancel();
	finish_x(x, code, errmsg, retry, api, easy, snap);
	sf_curl_re_cancel(cs);
}

/* Leads f, and the scope's flight x, which sf_curl_lead() ends. */
CURLcode sf_curl_lead_x(struct sf_curl_xfer *p, sf_flight *f,
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

/* ---- the bridge ------------------------------------------------------- */

/* The libcurl build behind api, by the real path of its file: found once
 * per flavour (a libcurl, once loaded, stays), without a lock (a caller
 * that finds another one writing uses its own copy). */
#define LIB_NONE 0
#define LIB_WRITING 1
#define LIB_READY 2
static char lib_path[SF_CURL_FLAVOURS][PATH_MAX];
static _Atomic int lib_state[SF_CURL_FLAVOURS];

static const char *lib_of(const struct sf_curl_real *api, char *own)
{
	unsigned fl = (unsigned)api->flavour;
	if (fl < SF_CURL_FLAVOURS &&
	    atomic_load_explicit(&lib_state[fl], memory_order_acquire) ==
	            LIB_READY)
		return lib_path[fl];
	Dl_info di;
	own[0] = '\0';
	if (!api->easy_perform || !dladdr((void *)api->easy_perform, &di) ||
	    !di.dli_fname)
		return own; /* not kept: it may be found later */
	if (!realpath(di.dli_fname, own))
		snprintf(own, PATH_MAX, "%s", di.dli_fname);
	int none = LIB_NONE;
	if (fl < SF_CURL_FLAVOURS &&
	    atomic_compare_exchange_strong(&lib_state[fl], &none,
	                                   LIB_WRITING)) {
		memcpy(lib_path[fl], own, PATH_MAX);
		atomic_store_explicit(&lib_state[fl], LIB_READY,
		                      memory_order_release);
	}
	return own;
}

/* The scope's key: the libcurl build that answers (processes may load
 * different ones), then the process's own key (which holds no address
 * of this process). */
static unsigned char *scope_key(const struct sf_curl_xfer *p, size_t *len)
{
	static const char tag[] = "sfshim-curl-x1";
	char own[PATH_MAX];
	const char *lib = lib_of(p->api, own);
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
	int cs = sf_curl_no_cancel(); /* it holds f, and soon a ticket */
	struct sf_xtable *t = f ? sf_scope_table() : NULL;
	if (!t || sf_scope_dirfd() < 0) { /* no place for responses */
		sf_curl_re_cancel(cs);
		return sf_curl_lead(p, f);
	}
	size_t klen = 0;
	unsigned char *k = scope_key(p, &klen);
	struct sf_xticket tk;
	enum sf_xrole role = k ? sf_xjoin(t, k, klen, &tk) : SF_XROLE_NONE;
	free(k);
	if (role != SF_XROLE_LEADER) {
		sf_curl_re_cancel(cs);
		return role == SF_XROLE_FOLLOWER ? sf_curl_xfollow(p, f, t, &tk)
		                                 : sf_curl_lead(p, f);
	}
	struct sf_curl_xlead x = { .t = t,
		                   .tk = tk,
		                   .slot = tk.slot,
		                   .gen = tk.gen,
		                   .url = p->key.url };
	sf_curl_xname(x.name, x.slot, x.gen);
	/* The file exists before anyone can wait for it.  What has its name
	 * is left over from an earlier table: this flight's is new. */
	struct sf_xfile xf;
	sf_xfile_init(&xf);
	int dfd = sf_scope_dirfd();
	if (dfd >= 0 && x.name[0]) {
		sweep_orphans();
		if (sf_xfile_create(&xf, dfd, x.name) > 0)
			x.file = &xf;
		else
			sf_log(SF_LOG_INFO,
			       "%s: cannot create the response file (%m); "
			       "other processes fetch it themselves",
			       p->key.url);
	}
	sf_log(SF_LOG_DEBUG, "%s: leading flight across processes", p->key.url);
	sf_count_cross(SF_API_CURL, SF_XSTAT_LED, 1);
	sf_curl_re_cancel(cs);
	CURLcode code = sf_curl_lead_x(p, f, &x);
	cs = sf_curl_no_cancel();
	sf_xfile_close(&xf);
	sf_curl_re_cancel(cs);
	return code;
}
