/* sf_trace.c - the ring of recent calls and the trace document.
 *
 * Recording must be safe from any thread at any time, including while the
 * exit handler reads the ring: each slot is a tiny seqlock.  A writer
 * claims an index with one atomic add, then the slot itself with a CAS to
 * "busy" (two writers a whole ring apart never mix their fields: the one
 * that finds the slot busy drops its event), fills it and publishes its
 * index; a reader keeps a slot only if it saw the same published index
 * before and after copying it.  Every field is an atomic
 * word, so even a writer lapping a reader is no data race; fields are
 * stored with release and loaded with acquire (plain moves on x86) instead
 * of fences, which ThreadSanitizer cannot follow: a reader that saw a newer
 * field then sees at least that writer's "busy" mark. */
#include "common/sf_trace.h"

#include "common/sf_config.h"
#include "common/sf_json.h"
#include "common/sf_log.h"
#include "common/sf_text.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

bool sf_trace_on;

#define LABEL_WORDS (SF_TRACE_LABEL / 8)

#define SLOT_BUSY UINT64_MAX

struct slot {
	_Atomic uint64_t seq; /* index + 1 once complete, SLOT_BUSY while
	                       * a writer fills it, 0 never written */
	_Atomic uint64_t t0, t1, flight, replay;
	_Atomic uint64_t meta; /* tid << 16 | api << 8 | what */
	_Atomic uint64_t label[LABEL_WORDS];
};

static struct slot *ring;
static uint64_t ring_cap;
static _Atomic uint64_t ring_head;
static _Atomic uint64_t ring_lost; /* calls not recorded: slot was busy */
static char *trace_path;           /* as configured; "%p" becomes the pid */
static pid_t owner;                /* the process that configured it */
static bool stats_timed;           /* JSON stats want waited/saved */

static __thread pid_t my_tid __attribute__((tls_model("initial-exec")));

static const char *const path_names[SF_PATH_COUNT] = {
	[SF_PATH_LEADER] = "leader",     [SF_PATH_PROMOTED] = "promoted",
	[SF_PATH_FOLLOWER] = "follower", [SF_PATH_EXPIRED] = "expired",
	[SF_PATH_RETRIED] = "retried",   [SF_PATH_FALLBACK] = "fallback",
	[SF_PATH_ALONE] = "alone",
};

static const char *const pass_names[SF_PASS_COUNT] = {
	[SF_PASS_DISABLED] = "disabled",
	[SF_PASS_FILTERED] = "filtered",
	[SF_PASS_NUMERIC] = "numeric",
	[SF_PASS_UNSUPPORTED] = "unsupported",
	[SF_PASS_REENTRANT] = "reentrant",
	[SF_PASS_NOFLIGHT] = "noflight",
};

const char *sf_trace_path_name(enum sf_path p)
{
	return (unsigned)p < SF_PATH_COUNT ? path_names[p] : "unknown";
}

const char *sf_trace_pass_name(enum sf_pass why)
{
	return (unsigned)why < SF_PASS_COUNT ? pass_names[why] : "unknown";
}

/* ---- redaction (see sf_trace.h) --------------------------------------- */

size_t sf_redact_label(char *out, size_t cap, const char *label)
{
	if (!cap)
		return 0;
	if (!label)
		label = "";
	return sf_text_clean(out, cap, label, strlen(label));
}

/* ---- recording --------------------------------------------------------- */

static pid_t thread_id(void)
{
	if (!my_tid)
		my_tid = gettid();
	return my_tid;
}

void sf_trace_end_replay(uint64_t t0, enum sf_api api, int what,
                         uint64_t flight, const char *label, uint64_t replay_ns)
{
	int saved = errno; /* the host sees errno as the call left it */
	uint64_t t1 = sf_now_ns();
	if (stats_timed && what < (int)SF_PATH_COUNT)
		sf_stats_timed(api, (enum sf_path)what, flight, t1 - t0);
	if (ring) {
		char text[SF_TRACE_LABEL] = { 0 };
		sf_redact_label(text, sizeof(text), label);
		uint64_t words[LABEL_WORDS];
		memcpy(words, text, sizeof(words));
		uint64_t i = atomic_fetch_add_explicit(&ring_head, 1,
		                                       memory_order_relaxed);
		struct slot *s = &ring[i % ring_cap];
		uint64_t cur =
		        atomic_load_explicit(&s->seq, memory_order_relaxed);
		/* Claim the slot; if another writer holds it (the ring wrapped
		 * around while it writes), this call is not recorded. */
		if (cur == SLOT_BUSY ||
		    !atomic_compare_exchange_strong_explicit(
		            &s->seq, &cur, SLOT_BUSY, memory_order_acquire,
		            memory_order_relaxed)) {
			atomic_fetch_add_explicit(&ring_lost, 1,
			                          memory_order_relaxed);
			errno = saved;
			return;
		}
		atomic_store_explicit(&s->t0, t0, memory_order_release);
		atomic_store_explicit(&s->t1, t1, memory_order_release);
		atomic_store_explicit(&s->flight, flight, memory_order_release);
		atomic_store_explicit(
		        &s->replay,
		        replay_ns >= t0 && replay_ns <= t1 ? replay_ns : 0,
		        memory_order_release);
		atomic_store_explicit(&s->meta,
		                      (uint64_t)(uint32_t)thread_id() << 16 |
		                              (uint64_t)api << 8 |
		                              (uint64_t)(what & 0xff),
		                      memory_order_release);
		for (int w = 0; w < LABEL_WORDS; w++)
			atomic_store_explicit(&s->label[w], words[w],
			                      memory_order_release);
		atomic_store_explicit(&s->seq, i + 1, memory_order_release);
	}
	errno = saved;
}

/* ---- configuration and process life ------------------------------------ */

static void atfork_child(void)
{
	/* The child's only thread has a new id, and the parent's calls are
	 * the parent's to report. */
	my_tid = 0;
	if (ring) {
		atomic_store(&ring_head, 0);
		atomic_store(&ring_lost, 0);
		for (uint64_t i = 0; i < ring_cap; i++)
			atomic_store_explicit(&ring[i].seq, 0,
			                      memory_order_relaxed);
	}
}

void sf_trace_configure(const struct sf_config *c)
{
	stats_timed = c->stats && strncmp(c->stats, "json:", 5) == 0;
	if (c->trace) {
		ring_cap = c->trace_events;
		ring = calloc(ring_cap, sizeof(*ring));
		trace_path = strdup(c->trace);
		if (!ring || !trace_path) {
			free(ring);
			free(trace_path);
			ring = NULL;
			trace_path = NULL;
			sf_log(SF_LOG_ERROR,
			       "SFSHIM_TRACE: no memory for %llu events; "
			       "not tracing",
			       (unsigned long long)ring_cap);
		} else {
			owner = getpid();
			pthread_atfork(NULL, NULL, atfork_child);
		}
	}
	sf_trace_on = stats_timed || ring;
}

/* ---- the document ------------------------------------------------------ */

struct event {
	uint64_t t0, t1, flight, replay;
	pid_t tid;
	enum sf_api api;
	int what;
	char label[SF_TRACE_LABEL + 1];
};

/* The events in the ring now, oldest first; *dropped: older ones lost. */
static struct event *collect(size_t *n, uint64_t *dropped)
{
	uint64_t head = atomic_load_explicit(&ring_head, memory_order_acquire);
	uint64_t first = head > ring_cap ? head - ring_cap : 0;
	*dropped = first;
	*n = 0;
	struct event *ev = malloc((size_t)(head - first + 1) * sizeof(*ev));
	if (!ev)
		return NULL;
	for (uint64_t i = first; i < head; i++) {
		struct slot *s = &ring[i % ring_cap];
		uint64_t s1 =
		        atomic_load_explicit(&s->seq, memory_order_acquire);
		if (s1 != i + 1)
			continue; /* being written, or overwritten already */
		struct event *e = &ev[*n];
		e->t0 = atomic_load_explicit(&s->t0, memory_order_acquire);
		e->t1 = atomic_load_explicit(&s->t1, memory_order_acquire);
		e->flight =
		        atomic_load_explicit(&s->flight, memory_order_acquire);
		e->replay =
		        atomic_load_explicit(&s->replay, memory_order_acquire);
		uint64_t meta =
		        atomic_load_explicit(&s->meta, memory_order_acquire);
		uint64_t words[LABEL_WORDS];
		for (int w = 0; w < LABEL_WORDS; w++)
			words[w] = atomic_load_explicit(&s->label[w],
			                                memory_order_acquire);
		if (atomic_load_explicit(&s->seq, memory_order_relaxed) != s1)
			continue;
		e->tid = (pid_t)(meta >> 16);
		e->api = (enum sf_api)(meta >> 8 & 0xff);
		e->what = (int)(meta & 0xff);
		memcpy(e->label, words, SF_TRACE_LABEL);
		e->label[SF_TRACE_LABEL] = '\0';
		if (e->api >= SF_API_COUNT ||
		    e->what >= SF_TRACE_PASS(SF_PASS_COUNT))
			continue;
		(*n)++;
	}
	return ev;
}

static const char *const api_calls[SF_API_COUNT] = { "getaddrinfo",
	                                             "curl_easy_perform" };
static const char *const api_cats[SF_API_COUNT] = { "dns", "curl" };

/* What each kind of slice stands for, shown in the viewer's details. */
static const char *did(enum sf_api api, int what)
{
	switch (what) {
	case SF_PATH_LEADER:
		return "made the call for its flight";
	case SF_PATH_PROMOTED:
		return "followed, then made the call when its leader quit";
	case SF_PATH_FOLLOWER:
		return api == SF_API_CURL
		               ? "waited for the leader and replayed its "
		                 "response"
		               : "waited for the leader and took a copy of "
		                 "its answer";
	case SF_PATH_EXPIRED:
		return "waited past SFSHIM_WAIT_MS, then called alone";
	case SF_PATH_RETRIED:
		return "the leader's error was not shared: called alone";
	case SF_PATH_FALLBACK:
		return "could not take its copy: called alone";
	default:
		return "passed through to the real function";
	}
}

/* Microseconds with three decimals, as the format wants. */
static void put_us(struct sf_json *j, const char *name, uint64_t ns)
{
	sf_json_printf(j, ",\"%s\":%llu.%03llu", name,
	               (unsigned long long)(ns / 1000),
	               (unsigned long long)(ns % 1000));
}

static void put_slice(struct sf_json *j, int pid, const struct event *e)
{
	bool pass = e->what >= (int)SF_PATH_COUNT;
	const char *kind = pass ? "pass-through"
	                        : sf_trace_path_name((enum sf_path)e->what);
	char name[96];
	snprintf(name, sizeof(name), "%s %s", api_calls[e->api], kind);
	sf_json_printf(j, ",\n{\"ph\":\"X\",\"pid\":%d,\"tid\":%d", pid,
	               (int)e->tid);
	sf_json_puts(j, ",\"cat\":");
	sf_json_str(j, api_cats[e->api]);
	sf_json_puts(j, ",\"name\":");
	sf_json_str(j, name);
	put_us(j, "ts", e->t0);
	put_us(j, "dur", e->t1 - e->t0);
	sf_json_puts(j, ",\"args\":{\"key\":");
	sf_json_str(j, e->label);
	sf_json_puts(j, ",\"path\":");
	sf_json_str(j, pass ? "passthrough" : kind);
	if (pass) {
		sf_json_puts(j, ",\"cause\":");
		sf_json_str(j, sf_trace_pass_name((enum sf_pass)(
		                       e->what - SF_PATH_COUNT)));
	}
	if (e->flight)
		sf_json_printf(j, ",\"flight\":\"%llx\"",
		               (unsigned long long)e->flight);
	sf_json_puts(j, ",\"did\":");
	sf_json_str(j, did(e->api, e->what));
	sf_json_puts(j, "}}");
	if (!e->replay)
		return;
	/* The replay, nested in the call's slice on the same thread (its own
	 * category: the call is still one slice of its API). */
	sf_json_printf(j, ",\n{\"ph\":\"X\",\"pid\":%d,\"tid\":%d", pid,
	               (int)e->tid);
	sf_json_puts(j, ",\"cat\":\"replay\",\"name\":");
	snprintf(name, sizeof(name), "%s replay", api_calls[e->api]);
	sf_json_str(j, name);
	put_us(j, "ts", e->replay);
	put_us(j, "dur", e->t1 - e->replay);
	sf_json_puts(j, ",\"args\":{\"key\":");
	sf_json_str(j, e->label);
	sf_json_printf(j, ",\"flight\":\"%llx\"",
	               (unsigned long long)e->flight);
	sf_json_puts(j, ",\"did\":\"handed the leader's response to the "
	                "program's callbacks as it arrived\"}}");
}

/* Flow events bind to the slice open on their thread at their moment, and
 * viewers take a flow's start before its end.  The end: just before the
 * follower's slice ends (its release).  The start: just before the
 * leader's slice ends, or earlier if the follower was back first (the
 * answer is published inside the leader's call, before it returns). */
static uint64_t flow_end_ts(const struct event *f)
{
	return f->t1 - f->t0 >= 2 ? f->t1 - 1 : f->t0;
}

static uint64_t flow_start_ts(const struct event *l, const struct event *f)
{
	uint64_t t = l->t1 - 1;
	if (flow_end_ts(f) - 1 < t)
		t = flow_end_ts(f) - 1;
	return t < l->t0 ? l->t0 : t;
}

static void put_flow(struct sf_json *j, int pid, const char *ph,
                     unsigned long id, pid_t tid, uint64_t ts)
{
	sf_json_printf(j,
	               ",\n{\"ph\":\"%s\",%s\"cat\":\"flight\",\"name\":"
	               "\"answer\",\"id\":%lu,\"pid\":%d,\"tid\":%d",
	               ph, ph[0] == 'f' ? "\"bp\":\"e\"," : "", id, pid,
	               (int)tid);
	put_us(j, "ts", ts);
	sf_json_puts(j, "}");
}

static bool is_lead(int what)
{
	return what == SF_PATH_LEADER || what == SF_PATH_PROMOTED;
}

/* An arrow from the call that produced each flight's answer (its leader,
 * or the follower promoted last) to every follower that got it.  A flight
 * whose leader left the ring has no arrows. */
static unsigned long put_flows(struct sf_json *j, int pid,
                               const struct event *ev, size_t n)
{
	size_t cap = 16;
	while (cap < 2 * n)
		cap <<= 1;
	size_t *tab = calloc(cap, sizeof(*tab)); /* event index + 1 */
	if (!tab)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (!ev[i].flight || !is_lead(ev[i].what))
			continue;
		size_t h = (size_t)(ev[i].flight * 0x9e3779b97f4a7c15u) &
		           (cap - 1);
		while (tab[h] && ev[tab[h] - 1].flight != ev[i].flight)
			h = (h + 1) & (cap - 1);
		if (!tab[h] || ev[tab[h] - 1].t1 < ev[i].t1)
			tab[h] = i + 1;
	}
	unsigned long arrows = 0;
	for (size_t i = 0; i < n; i++) {
		if (!ev[i].flight || ev[i].what != SF_PATH_FOLLOWER)
			continue;
		size_t h = (size_t)(ev[i].flight * 0x9e3779b97f4a7c15u) &
		           (cap - 1);
		while (tab[h] && ev[tab[h] - 1].flight != ev[i].flight)
			h = (h + 1) & (cap - 1);
		if (!tab[h])
			continue;
		const struct event *l = &ev[tab[h] - 1];
		arrows++;
		put_flow(j, pid, "s", arrows, l->tid, flow_start_ts(l, &ev[i]));
		put_flow(j, pid, "f", arrows, ev[i].tid, flow_end_ts(&ev[i]));
	}
	free(tab);
	return arrows;
}

bool sf_trace_write(int fd)
{
	char buf[16384];
	struct sf_json j;
	sf_json_init(&j, buf, sizeof(buf), fd);
	int pid = (int)getpid();
	char comm[17] = { 0 };
	prctl(PR_GET_NAME, comm, 0, 0, 0);
	char title[64];
	snprintf(title, sizeof(title), "sfshim: %s", comm);

	size_t n = 0;
	uint64_t dropped = 0;
	struct event *ev = ring ? collect(&n, &dropped) : NULL;
	sf_json_printf(&j,
	               "{\"traceEvents\":[\n{\"ph\":\"M\",\"pid\":%d,\"tid\":"
	               "0,\"name\":\"process_name\",\"args\":{\"name\":",
	               pid);
	sf_json_str(&j, title);
	sf_json_puts(&j, "}}");
	for (size_t i = 0; i < n; i++)
		put_slice(&j, pid, &ev[i]);
	unsigned long arrows = ev ? put_flows(&j, pid, ev, n) : 0;
	sf_json_printf(&j,
	               "\n],\n\"displayTimeUnit\":\"ms\",\n\"otherData\":{"
	               "\"tool\":\"sfshim\",\"pid\":%d,\"events\":%zu,"
	               "\"dropped\":%llu,\"lost\":%llu,\"capacity\":%llu,"
	               "\"flows\":%lu}}\n",
	               pid, n, (unsigned long long)dropped,
	               (unsigned long long)atomic_load(&ring_lost),
	               (unsigned long long)ring_cap, arrows);
	bool ok = sf_json_flush(&j);
	free(ev);
	return ok;
}

/* trace_path with each "%p" replaced by the pid. */
static bool expand_path(char *out, size_t cap, const char *path)
{
	size_t n = 0;
	for (const char *p = path; *p; p++) {
		char pid[16];
		const char *s = pid;
		if (p[0] == '%' && p[1] == 'p') {
			snprintf(pid, sizeof(pid), "%d", (int)getpid());
			p++;
		} else {
			pid[0] = *p;
			pid[1] = '\0';
		}
		size_t k = strlen(s);
		if (n + k >= cap)
			return false;
		memcpy(out + n, s, k);
		n += k;
	}
	out[n] = '\0';
	return true;
}

/* At exit the process writes its file whole under a temporary name, then
 * renames it over the name asked for: a reader never sees half a document.
 * As the stats file: created private (0600), never through a symbolic link
 * someone planted (the temporary name is created anew, O_EXCL|O_NOFOLLOW;
 * renaming over a link replaces the link), and a name that exists and is
 * neither a regular file nor a link (a FIFO, a device) is left alone.
 * With no call recorded it writes nothing.  A forked child writes only
 * when the name has a "%p" (else the file is its parent's). */
__attribute__((destructor)) static void trace_at_exit(void)
{
	if (!ring || !trace_path)
		return;
	if (getpid() != owner && !strstr(trace_path, "%p"))
		return;
	/* A process that made no hooked call (a wrapper such as timeout or a
	 * shell, which inherited SFSHIM_TRACE) must not replace the trace of
	 * the program it ran with an empty one. */
	if (!atomic_load(&ring_head))
		return;
	int saved = errno;
	char path[4096], tmp[4200];
	struct stat st;
	if (!expand_path(path, sizeof(path), trace_path)) {
		sf_log(SF_LOG_ERROR, "SFSHIM_TRACE: path too long");
		errno = saved;
		return;
	}
	if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode) &&
	    !S_ISLNK(st.st_mode)) {
		sf_log(SF_LOG_ERROR,
		       "SFSHIM_TRACE=%s is not a regular file: not written",
		       path);
		errno = saved;
		return;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid());
	unlink(tmp); /* a stale one, or a planted link: never followed */
	int fd = open(tmp,
	              O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC |
	                      O_NOCTTY,
	              0600);
	if (fd < 0) {
		sf_log(SF_LOG_ERROR, "cannot write trace to %s: %m", tmp);
		errno = saved;
		return;
	}
	bool ok = sf_trace_write(fd);
	if (close(fd) != 0 || !ok || rename(tmp, path) != 0) {
		sf_log(SF_LOG_ERROR, "cannot write trace to %s: %m", path);
		unlink(tmp);
	}
	errno = saved;
}
