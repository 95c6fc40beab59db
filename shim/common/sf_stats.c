/* sf_stats.c - counters, the busiest keys, and the exit summary. */
#include "common/sf_stats.h"

#include "common/sf_config.h"
#include "common/sf_json.h"
#include "common/sf_log.h"
#include "common/sf_text.h"
#include "common/sf_trace.h"
#include "common/sf_version.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct sf_stats sf_stats;

/* Busiest keys: a small table updated only when a flight that had
 * followers ends, so its lock is off every hot path.  When full, the entry
 * with the fewest followers gives way (space-saving heavy hitters). */
#define BUSY_SLOTS 16
#define BUSY_SHOWN 5
#define LABEL_MAX 160

struct busy {
	char label[LABEL_MAX];
	enum sf_api api;
	unsigned long flights, followers;
};
static struct busy busiest[BUSY_SLOTS];
static pthread_mutex_t busy_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const api_names[SF_API_COUNT] = { "dns", "curl" };

/* Flights that had followers, per API (for the JSON stats). */
static _Atomic unsigned long shared_flights[SF_API_COUNT];

/* Labels are stored already cleaned (sf_text.h): the table never holds a
 * URL's credentials or query, so nothing later can print them. */
void sf_stats_flight(enum sf_api api, const char *raw, unsigned followers)
{
	if (followers)
		atomic_fetch_add_explicit(&shared_flights[api], 1,
		                          memory_order_relaxed);
	if (!followers || !raw)
		return;
	char label[LABEL_MAX];
	sf_redact_label(label, sizeof(label), raw); /* sf_text_clean, and
	                                              * scheme-less URLs too */
	pthread_mutex_lock(&busy_lock);
	struct busy *slot = NULL, *least = &busiest[0];
	for (int i = 0; i < BUSY_SLOTS; i++) {
		struct busy *b = &busiest[i];
		if (b->flights && b->api == api &&
		    strncmp(b->label, label, LABEL_MAX - 1) == 0) {
			slot = b;
			break;
		}
		if (b->followers < least->followers)
			least = b;
	}
	if (!slot) {
		slot = least;
		unsigned long base =
		        slot->followers; /* space-saving overestimate */
		memset(slot, 0, sizeof(*slot));
		snprintf(slot->label, LABEL_MAX, "%s", label);
		slot->api = api;
		slot->followers = base;
	}
	slot->flights++;
	slot->followers += followers;
	pthread_mutex_unlock(&busy_lock);
}

/* Pass-through causes, one small table per API: a slot is claimed with a
 * compare-and-swap of its name pointer, so exactly one caller sees a cause
 * first and logs it, and no caller ever waits.  The names are static
 * strings compared by content.  A full table counts the rest as "other". */
#define CAUSE_SLOTS 32
#define CAUSE_SHOWN 5

struct cause {
	_Atomic(const char *) name;
	_Atomic unsigned long count;
};
static struct cause causes[SF_API_COUNT][CAUSE_SLOTS];
static _Atomic unsigned long causes_other[SF_API_COUNT];

static const char *const pass_names[SF_PASS_COUNT] = {
	"disabled",    "filtered",  "numeric",
	"unsupported", "reentrant", "noflight",
};

void sf_stats_pass_cause(enum sf_api api, enum sf_pass why, const char *cause)
{
	if (!cause || (unsigned)api >= SF_API_COUNT ||
	    (unsigned)why >= SF_PASS_COUNT)
		return;
	for (int i = 0; i < CAUSE_SLOTS; i++) {
		struct cause *c = &causes[api][i];
		const char *n =
		        atomic_load_explicit(&c->name, memory_order_acquire);
		if (!n && atomic_compare_exchange_strong(&c->name, &n, cause)) {
			atomic_fetch_add_explicit(&c->count, 1,
			                          memory_order_relaxed);
			sf_log(SF_LOG_INFO, "%s: %s: passing through (%s)",
			       api_names[api], cause, pass_names[why]);
			return;
		}
		/* n is the slot's name now (the failed exchange loaded it);
		 * the same literal usually comes back at the same address. */
		if (n == cause || strcmp(n, cause) == 0) {
			atomic_fetch_add_explicit(&c->count, 1,
			                          memory_order_relaxed);
			return;
		}
	}
	atomic_fetch_add_explicit(&causes_other[api], 1, memory_order_relaxed);
}

/* "sfshim[pid]: curl: passthrough causes: CURLOPT_SHARE set=3 ..." */
static int report_causes(char *line, size_t size, int pid, int api)
{
	struct {
		const char *name;
		unsigned long count;
	} top[CAUSE_SLOTS];
	int n = 0;
	for (int i = 0; i < CAUSE_SLOTS; i++) {
		top[n].name = atomic_load_explicit(&causes[api][i].name,
		                                   memory_order_acquire);
		top[n].count = atomic_load_explicit(&causes[api][i].count,
		                                    memory_order_relaxed);
		if (top[n].name && top[n].count)
			n++;
	}
	unsigned long other = atomic_load(&causes_other[api]);
	if (!n && !other)
		return 0;
	size_t len = (size_t)snprintf(
	        line, size, "sfshim[%d]: %s: passthrough causes:", pid,
	        api_names[api]);
	for (int shown = 0; shown < CAUSE_SHOWN && len < size; shown++) {
		int best = -1;
		for (int i = 0; i < n; i++)
			if (top[i].count &&
			    (best < 0 || top[i].count > top[best].count))
				best = i;
		if (best < 0)
			break;
		len += (size_t)snprintf(line + len, size - len, "%s %s=%lu",
		                        shown ? "," : "", top[best].name,
		                        top[best].count);
		top[best].count = 0;
	}
	if (other && len < size)
		len += (size_t)snprintf(line + len, size - len, "%s other=%lu",
		                        n ? "," : "", other);
	/* A truncated list still ends as one line. */
	len = len < size - 1 ? len : size - 2;
	line[len] = '\n';
	return (int)len + 1;
}

static void put(int fd, const char *line, int n)
{
	if (n <= 0)
		return;
	ssize_t w = write(fd, line, (size_t)n);
	(void)w;
}

/* One API's counters as read for a report, and what follows from them. */
struct totals {
	unsigned long stat[SF_STAT_COUNT], pass[SF_PASS_COUNT];
	unsigned long passed, calls, saved;
	unsigned long dedup; /* saved / (leaders + followers), in 1/10000 */
};

/* In integers: %f would follow the host's LC_NUMERIC ("0,95"). */
static void totals_of(int a, struct totals *t)
{
	t->passed = 0;
	for (int i = 0; i < SF_STAT_COUNT; i++)
		t->stat[i] = atomic_load(&sf_stats.stat[a][i]);
	for (int i = 0; i < SF_PASS_COUNT; i++)
		t->passed += t->pass[i] = atomic_load(&sf_stats.pass[a][i]);
	unsigned long joined =
	        t->stat[SF_STAT_LEADERS] + t->stat[SF_STAT_FOLLOWERS];
	t->calls = joined + t->passed;
	t->saved = sf_stats_saved(t->stat);
	t->dedup = joined ? (unsigned long)((unsigned long long)t->saved *
	                                    10000 / joined)
	                  : 0;
}

void sf_stats_report(int fd)
{
	char line[512];
	int pid = (int)getpid();
	put(fd, line,
	    snprintf(line, sizeof(line), "sfshim[%d]: libsfshim %s summary\n",
	             pid, SF_VERSION));
	for (int a = 0; a < SF_API_COUNT; a++) {
		struct totals t;
		totals_of(a, &t);
		const unsigned long *s = t.stat, *p = t.pass;
		int n = snprintf(
		        line, sizeof(line),
		        "sfshim[%d]: %s: calls=%lu leaders=%lu followers=%lu "
		        "promotions=%lu expired=%lu retried=%lu fallbacks=%lu "
		        "passthrough=%lu (disabled=%lu filtered=%lu "
		        "numeric=%lu unsupported=%lu reentrant=%lu "
		        "noflight=%lu) saved=%lu dedup=%lu.%lu%%\n",
		        pid, api_names[a], t.calls, s[SF_STAT_LEADERS],
		        s[SF_STAT_FOLLOWERS], s[SF_STAT_PROMOTIONS],
		        s[SF_STAT_EXPIRED], s[SF_STAT_RETRIED],
		        s[SF_STAT_FALLBACKS], t.passed, p[SF_PASS_DISABLED],
		        p[SF_PASS_FILTERED], p[SF_PASS_NUMERIC],
		        p[SF_PASS_UNSUPPORTED], p[SF_PASS_REENTRANT],
		        p[SF_PASS_NOFLIGHT], t.saved, (t.dedup + 5) / 100,
		        (t.dedup + 5) / 10 % 10);
		put(fd, line, n);
		put(fd, line, report_causes(line, sizeof(line), pid, a));
	}
	/* With a scope: what crossed processes, one line per API. */
	const char *scope = sf_config()->scope;
	for (int a = 0; scope && a < SF_API_COUNT; a++) {
		unsigned long x[SF_XSTAT_COUNT];
		for (int i = 0; i < SF_XSTAT_COUNT; i++)
			x[i] = atomic_load(&sf_stats.cross[a][i]);
		put(fd, line,
		    snprintf(line, sizeof(line),
		             "sfshim[%d]: %s: crossed processes (scope %s): "
		             "led=%lu answered=%lu served=%lu promoted=%lu "
		             "alone=%lu\n",
		             pid, api_names[a], scope, x[SF_XSTAT_LED],
		             x[SF_XSTAT_ANSWERED], x[SF_XSTAT_SERVED],
		             x[SF_XSTAT_PROMOTED], x[SF_XSTAT_ALONE]));
	}
	struct busy top[BUSY_SLOTS];
	pthread_mutex_lock(&busy_lock);
	memcpy(top, busiest, sizeof(top));
	pthread_mutex_unlock(&busy_lock);
	for (int shown = 0; shown < BUSY_SHOWN; shown++) {
		struct busy *best = NULL;
		for (int i = 0; i < BUSY_SLOTS; i++)
			if (top[i].flights &&
			    (!best || top[i].followers > best->followers))
				best = &top[i];
		if (!best)
			break;
		int n = snprintf(
		        line, sizeof(line),
		        "sfshim[%d]: busiest %s %s: flights=%lu followers=%lu\n",
		        pid, api_names[best->api], best->label, best->flights,
		        best->followers);
		put(fd, line, n);
		best->flights = 0;
	}
}

/* ---- JSON stats -------------------------------------------------------- */

/* Time figures, only kept when the JSON stats ask (sf_trace_on). */
static _Atomic uint64_t waited_ns[SF_API_COUNT], saved_ns[SF_API_COUNT];

/* Where a flight's leader and followers meet to compute "saved": one slot
 * per flight serial (direct-mapped; a newer flight takes the slot of an
 * older one, whose late followers then count nothing: an under-estimate,
 * and only when over SAVED_SLOTS flights end within one follower's
 * wake-up). */
#define SAVED_SLOTS 1024
struct meet {
	uint64_t flight;
	uint64_t lead_ns;   /* the leader's call, once it ended */
	unsigned followers; /* followers that ended before it */
	enum sf_api api;
	bool led;
};
static struct meet meets[SAVED_SLOTS];
static pthread_mutex_t meet_lock = PTHREAD_MUTEX_INITIALIZER;

void sf_stats_timed(enum sf_api api, enum sf_path path, uint64_t flight,
                    uint64_t dur_ns)
{
	bool lead = path == SF_PATH_LEADER || path == SF_PATH_PROMOTED;
	if (path == SF_PATH_FOLLOWER)
		atomic_fetch_add_explicit(&waited_ns[api], dur_ns,
		                          memory_order_relaxed);
	else if (!lead)
		return;
	if (!flight)
		return;
	struct meet *m = &meets[(flight * 0x9e3779b97f4a7c15u) >> 54];
	uint64_t saved = 0;
	pthread_mutex_lock(&meet_lock);
	if (m->flight != flight) {
		memset(m, 0, sizeof(*m));
		m->flight = flight;
		m->api = api;
	}
	if (lead) {
		/* A promoted follower ends after the leader it replaced: its
		 * call is the one whose answer later followers get. */
		m->lead_ns = dur_ns;
		m->led = true;
		saved = dur_ns * m->followers;
		m->followers = 0;
	} else if (m->led) {
		saved = m->lead_ns;
	} else {
		m->followers++;
	}
	api = m->api;
	pthread_mutex_unlock(&meet_lock);
	if (saved)
		atomic_fetch_add_explicit(&saved_ns[api], saved,
		                          memory_order_relaxed);
}

static void json_api(struct sf_json *j, int a)
{
	struct totals t;
	totals_of(a, &t);
	const unsigned long *s = t.stat, *p = t.pass;
	unsigned long pass = t.passed;
	sf_json_printf(j,
	               "\"%s\":{\"calls\":%lu,\"flights\":%lu,"
	               "\"flights_shared\":%lu,\"leaders\":%lu,"
	               "\"followers\":%lu,\"promotions\":%lu,",
	               api_names[a], t.calls, s[SF_STAT_LEADERS],
	               atomic_load(&shared_flights[a]), s[SF_STAT_LEADERS],
	               s[SF_STAT_FOLLOWERS], s[SF_STAT_PROMOTIONS]);
	sf_json_printf(j,
	               "\"expired\":%lu,\"retried\":%lu,\"fallbacks\":%lu,"
	               "\"saved_calls\":%lu,\"dedup\":%lu.%04lu,",
	               s[SF_STAT_EXPIRED], s[SF_STAT_RETRIED],
	               s[SF_STAT_FALLBACKS], t.saved, t.dedup / 10000,
	               t.dedup % 10000);
	sf_json_printf(j, "\"passthrough\":{\"total\":%lu", pass);
	for (int i = 0; i < SF_PASS_COUNT; i++)
		sf_json_printf(j, ",\"%s\":%lu", pass_names[i], p[i]);
	/* The causes by option or argument, as the text summary lists them
	 * (fixed names, never a value). */
	sf_json_puts(j, "},\"passthrough_causes\":{");
	int shown = 0;
	for (int i = 0; i < CAUSE_SLOTS; i++) {
		const char *name = atomic_load_explicit(&causes[a][i].name,
		                                        memory_order_acquire);
		unsigned long n = atomic_load_explicit(&causes[a][i].count,
		                                       memory_order_relaxed);
		if (!name || !n)
			continue;
		if (shown++)
			sf_json_puts(j, ",");
		sf_json_str(j, name);
		sf_json_printf(j, ":%lu", n);
	}
	unsigned long other = atomic_load(&causes_other[a]);
	if (other)
		sf_json_printf(j, "%s\"other\":%lu", shown ? "," : "", other);
	sf_json_printf(j, "},\"waited_ns\":%llu,\"saved_ns\":%llu,",
	               (unsigned long long)atomic_load(&waited_ns[a]),
	               (unsigned long long)atomic_load(&saved_ns[a]));
	/* Across processes (all 0 without a scope). */
	sf_json_printf(j,
	               "\"crossed\":{\"led\":%lu,\"answered\":%lu,"
	               "\"served\":%lu,\"promoted\":%lu,\"alone\":%lu}}",
	               atomic_load(&sf_stats.cross[a][SF_XSTAT_LED]),
	               atomic_load(&sf_stats.cross[a][SF_XSTAT_ANSWERED]),
	               atomic_load(&sf_stats.cross[a][SF_XSTAT_SERVED]),
	               atomic_load(&sf_stats.cross[a][SF_XSTAT_PROMOTED]),
	               atomic_load(&sf_stats.cross[a][SF_XSTAT_ALONE]));
}

/* The busiest keys, most followers first, redacted. */
static void json_busiest(struct sf_json *j)
{
	struct busy top[BUSY_SLOTS];
	pthread_mutex_lock(&busy_lock);
	memcpy(top, busiest, sizeof(top));
	pthread_mutex_unlock(&busy_lock);
	sf_json_puts(j, "\"busiest\":[");
	for (int shown = 0; shown < BUSY_SHOWN; shown++) {
		struct busy *best = NULL;
		for (int i = 0; i < BUSY_SLOTS; i++)
			if (top[i].flights &&
			    (!best || top[i].followers > best->followers))
				best = &top[i];
		if (!best)
			break;
		sf_json_printf(j,
		               "%s{\"api\":\"%s\",\"key\":", shown ? "," : "",
		               api_names[best->api]);
		sf_json_str(j, best->label); /* cleaned when stored */
		sf_json_printf(j, ",\"flights\":%lu,\"followers\":%lu}",
		               best->flights, best->followers);
		best->flights = 0;
	}
	sf_json_puts(j, "]");
}

size_t sf_stats_json(char *buf, size_t cap)
{
	struct sf_json j;
	sf_json_init(&j, buf, cap, -1);
	char comm[17] = { 0 };
	prctl(PR_GET_NAME, comm, 0, 0, 0);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	sf_json_puts(&j, "{\"sfshim_stats\":1,\"version\":");
	sf_json_str(&j, SF_VERSION);
	sf_json_printf(&j, ",\"pid\":%d,\"comm\":", (int)getpid());
	sf_json_str(&j, comm);
	if (sf_config()->scope) {
		sf_json_puts(&j, ",\"scope\":");
		sf_json_str(&j, sf_config()->scope);
	}
	sf_json_printf(&j, ",\"time\":%lld.%03ld,\"timed\":%s,\"api\":{",
	               (long long)now.tv_sec, now.tv_nsec / 1000000,
	               sf_trace_on ? "true" : "false");
	for (int a = 0; a < SF_API_COUNT; a++) {
		if (a)
			sf_json_puts(&j, ",");
		json_api(&j, a);
	}
	sf_json_puts(&j, "},");
	json_busiest(&j);
	sf_json_puts(&j, "}\n");
	return j.full ? 0 : j.len;
}

bool sf_stats_report_json(int fd)
{
	/* Five keys of at most LABEL_MAX bytes, each byte at worst six
	 * escaped ones, and the counters: well within. */
	char buf[16384];
	size_t n = sf_stats_json(buf, sizeof(buf));
	return n && write(fd, buf, n) == (ssize_t)n;
}

/* ---- process life ------------------------------------------------------ */

/* A child reports what it did itself, and may not inherit a held lock. */
static void atfork_child(void)
{
	memset(&sf_stats, 0, sizeof(sf_stats));
	memset(busiest, 0, sizeof(busiest));
	memset(causes, 0, sizeof(causes));
	memset(causes_other, 0, sizeof(causes_other));
	pthread_mutex_init(&busy_lock, NULL);
	for (int a = 0; a < SF_API_COUNT; a++) {
		atomic_store(&shared_flights[a], 0);
		atomic_store(&waited_ns[a], 0);
		atomic_store(&saved_ns[a], 0);
	}
	memset(meets, 0, sizeof(meets));
	pthread_mutex_init(&meet_lock, NULL);
}

__attribute__((constructor)) static void stats_init(void)
{
	pthread_atfork(NULL, NULL, atfork_child);
}

/* The summary file is opened as a careful root would: never through a
 * symbolic link someone planted (O_NOFOLLOW), never blocking on a FIFO or
 * a device (O_NONBLOCK: the exit must not hang), never kept by a child
 * (O_CLOEXEC), created private (0600), and written only if it is a regular
 * file.  Anything else gets one line and no write. */
static int open_stats_file(const char *path)
{
	int fd = open(path,
	              O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK |
	                      O_CLOEXEC | O_NOCTTY,
	              0600);
	if (fd < 0) {
		if (errno == ELOOP)
			sf_log(SF_LOG_ERROR,
			       "SFSHIM_STATS=%s is a symbolic link: "
			       "not written",
			       path);
		else if (errno == ENXIO)
			sf_log(SF_LOG_ERROR,
			       "SFSHIM_STATS=%s is not a regular file: "
			       "not written",
			       path);
		else
			sf_log(SF_LOG_ERROR, "cannot write stats to %s: %m",
			       path);
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		sf_log(SF_LOG_ERROR,
		       "SFSHIM_STATS=%s is not a regular file: not written",
		       path);
		close(fd);
		return -1;
	}
	return fd;
}

__attribute__((destructor)) static void stats_at_exit(void)
{
	const struct sf_config *c = sf_config();
	if (!c->stats)
		return;
	if (strncmp(c->stats, "json:", 5) == 0) {
		const char *path = c->stats + 5;
		int fd = strcmp(path, "stderr") == 0 ? STDERR_FILENO
		                                     : open_stats_file(path);
		if (fd < 0)
			return;
		if (!sf_stats_report_json(fd))
			sf_log(SF_LOG_ERROR, "cannot write stats to %s: %m",
			       path);
		if (fd != STDERR_FILENO)
			close(fd);
		return;
	}
	if (strcmp(c->stats, "stderr") == 0) {
		sf_stats_report(STDERR_FILENO);
		return;
	}
	int fd = open_stats_file(c->stats);
	if (fd < 0)
		return;
	sf_stats_report(fd);
	close(fd);
}
