/* sf_config.c - environment parsing and the host/URL filters. */
#include "common/sf_config.h"

#include "common/sf_log.h"
#include "common/sf_scope.h"
#include "common/sf_trace.h"
#include "common/sf_version.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- globs ------------------------------------------------------------- */

static unsigned char fold(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* `*` matches any run, `?` one byte, everything else itself, ignoring ASCII
 * case.  Iterative, with one backtrack point: linear for the patterns people
 * write, and no recursion a hostile pattern could exhaust. */
bool sf_glob_match(const char *pattern, const char *subject)
{
	const unsigned char *p = (const unsigned char *)pattern;
	const unsigned char *s = (const unsigned char *)subject;
	const unsigned char *star = NULL, *resume = NULL;
	while (*s) {
		if (*p == '*') {
			star = ++p;
			resume = s;
		} else if (*p && (*p == '?' || fold(*p) == fold(*s))) {
			p++;
			s++;
		} else if (star) {
			p = star;
			s = ++resume;
		} else {
			return false;
		}
	}
	while (*p == '*')
		p++;
	return *p == '\0';
}

/* Case-insensitive equality of n bytes. */
static bool same_folded(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fold((unsigned char)a[i]) != fold((unsigned char)b[i]))
			return false;
	return true;
}

static bool any_match(char *const *pats, const size_t *tails, size_t n,
                      const char *subject, size_t len)
{
	for (size_t i = 0; i < n; i++) {
		size_t t = tails ? tails[i] : 0;
		if (t ? len >= t && same_folded(subject + len - t, pats[i] + 1,
		                                t)
		      : sf_glob_match(pats[i], subject))
			return true;
	}
	return false;
}

bool sf_filter_allows(const struct sf_filter *f, const char *subject)
{
	if (!f->n_include && !f->n_exclude)
		return true;
	size_t len = strlen(subject);
	if (f->n_exclude &&
	    any_match(f->exclude, f->exclude_tail, f->n_exclude, subject, len))
		return false;
	return f->n_include == 0 || any_match(f->include, f->include_tail,
	                                      f->n_include, subject, len);
}

/* The suffix lengths of "*literal" patterns (0 for the others). */
static size_t *tails_of(char *const *pats, size_t n)
{
	size_t *t = n ? calloc(n, sizeof(*t)) : NULL;
	for (size_t i = 0; t && i < n; i++)
		if (pats[i][0] == '*' && pats[i][1] &&
		    !strpbrk(pats[i] + 1, "*?"))
			t[i] = strlen(pats[i] + 1);
	return t;
}

/* Splits "a, b,,c" into trimmed, non-empty patterns. */
static void parse_list(const char *value, char ***out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (!value)
		return;
	size_t cap = 1;
	for (const char *q = value; *q; q++)
		cap += *q == ',';
	char **v = calloc(cap, sizeof(*v));
	if (!v)
		return;
	const char *q = value;
	while (*q) {
		const char *end = strchr(q, ',');
		if (!end)
			end = q + strlen(q);
		const char *a = q, *b = end;
		while (a < b && (*a == ' ' || *a == '\t'))
			a++;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
			b--;
		if (b > a) {
			char *pat = strndup(a, (size_t)(b - a));
			if (pat)
				v[(*n)++] = pat;
		}
		q = *end ? end + 1 : end;
	}
	*out = v;
}

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* ---- scalar values ----------------------------------------------------- */

static bool parse_bool(const char *name, const char *v, bool def)
{
	if (!v || !*v)
		return def;
	static const char *const yes[] = { "1", "yes", "on", "true" };
	static const char *const no[] = { "0", "no", "off", "false" };
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return true;
		if (strcasecmp(v, no[i]) == 0)
			return false;
	}
	sf_log(SF_LOG_ERROR,
	       "%s='%s' is not a boolean (1/0, yes/no, on/off, true/false); "
	       "assuming %d",
	       name, v, def);
	return def;
}

/* A non-negative integer with an optional binary suffix (k, m, g). */
static bool parse_number(const char *v, bool suffixes, uint64_t *out)
{
	errno = 0;
	char *end;
	if (*v == '-' || *v == '+' || *v == ' ')
		return false;
	unsigned long long x = strtoull(v, &end, 10);
	if (errno || end == v)
		return false;
	unsigned shift = 0;
	if (suffixes && *end) {
		switch (fold((unsigned char)*end)) {
		case 'k':
			shift = 10;
			break;
		case 'm':
			shift = 20;
			break;
		case 'g':
			shift = 30;
			break;
		default:
			return false;
		}
		end++;
		if (fold((unsigned char)*end) == 'i') /* 8Mi, 8MiB */
			end++;
		if (fold((unsigned char)*end) == 'b') /* 8MB */
			end++;
	}
	if (*end || x > (UINT64_MAX >> shift))
		return false;
	*out = (uint64_t)x << shift;
	return true;
}

static uint64_t parse_ms(const char *name, const char *v, uint64_t def_ms)
{
	uint64_t ms;
	if (!v || !*v)
		return def_ms;
	if (!parse_number(v, false, &ms) || ms > 86400000u) {
		sf_log(SF_LOG_ERROR,
		       "%s='%s' is not a number of milliseconds (0 to 86400000, "
		       "0 = no limit); assuming %llu",
		       name, v, (unsigned long long)def_ms);
		return def_ms;
	}
	return ms;
}

static size_t parse_size(const char *name, const char *v, size_t def)
{
	uint64_t n;
	if (!v || !*v)
		return def;
	if (!parse_number(v, true, &n) || n > (uint64_t)SIZE_MAX / 2) {
		sf_log(SF_LOG_ERROR,
		       "%s='%s' is not a size in bytes (e.g. 1048576, 512k, 8M); "
		       "assuming %zu",
		       name, v, def);
		return def;
	}
	return (size_t)n;
}

static int parse_level(const char *v)
{
	static const char *const names[] = { "off", "error", "info", "debug" };
	if (!v || !*v)
		return SF_LOG_ERROR;
	for (int i = 0; i < 4; i++)
		if (strcasecmp(v, names[i]) == 0)
			return i;
	if (v[0] >= '0' && v[0] <= '3' && v[1] == '\0')
		return v[0] - '0';
	sf_log(SF_LOG_ERROR,
	       "SFSHIM_LOG='%s' is not one of off, error, info, debug; "
	       "assuming error",
	       v);
	return SF_LOG_ERROR;
}

static char *parse_stats(const char *v)
{
	if (!v || !*v || strcmp(v, "0") == 0 || strcasecmp(v, "off") == 0)
		return NULL;
	if (strcmp(v, "1") == 0 || strcasecmp(v, "stderr") == 0)
		return strdup("stderr");
	if (strncmp(v, "json:", 5) == 0 && !v[5]) {
		sf_log(SF_LOG_ERROR,
		       "SFSHIM_STATS='json:' names no file (json:PATH or "
		       "json:stderr); no stats");
		return NULL;
	}
	return strdup(v);
}

/* SFSHIM_TRACE: a file name; empty, 0 or off: no trace. */
static char *parse_trace(const char *v)
{
	if (!v || !*v || strcmp(v, "0") == 0 || strcasecmp(v, "off") == 0)
		return NULL;
	return strdup(v);
}

static size_t parse_trace_events(const char *v)
{
	uint64_t n;
	if (!v || !*v)
		return SF_TRACE_EVENTS_DEFAULT;
	if (!parse_number(v, true, &n) || n < SF_TRACE_EVENTS_MIN ||
	    n > SF_TRACE_EVENTS_MAX) {
		sf_log(SF_LOG_ERROR,
		       "SFSHIM_TRACE_EVENTS='%s' is not a number of events "
		       "(%u to %u); assuming %u",
		       v, SF_TRACE_EVENTS_MIN, SF_TRACE_EVENTS_MAX,
		       SF_TRACE_EVENTS_DEFAULT);
		return SF_TRACE_EVENTS_DEFAULT;
	}
	return (size_t)n;
}

/* ---- the scope name ---------------------------------------------------- */

/* Declared in sf_scope.h; here so that reading the configuration needs
 * nothing of the shared table.  The name becomes part of a file name:
 * only letters, digits, '.', '_' and '-', never a '/'. */
bool sf_scope_name_ok(const char *s)
{
	size_t n = 0;
	if (!s)
		return false;
	for (; s[n]; n++) {
		unsigned char c = (unsigned char)s[n];
		if (n >= SF_SCOPE_NAME_MAX ||
		    !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
	}
	return n > 0;
}

/* SFSHIM_SCOPE: unset or empty is per-process mode, silently; anything
 * that is not a valid name gets one line and per-process mode.  The value
 * is not echoed: it could be anything, of any length. */
static char *parse_scope(const char *v)
{
	if (!v || !*v)
		return NULL;
	if (!sf_scope_name_ok(v)) {
		sf_log(SF_LOG_ERROR,
		       "SFSHIM_SCOPE is not a scope name (1 to %d of A-Z a-z "
		       "0-9 . _ -); coalescing within this process only",
		       SF_SCOPE_NAME_MAX);
		return NULL;
	}
	return strdup(v);
}

void sf_config_load(struct sf_config *c, const char *(*get)(const char *))
{
	memset(c, 0, sizeof(*c));
	/* The level first, so that warnings about the others obey it. */
	c->log_level = parse_level(get("SFSHIM_LOG"));
	sf_log_level = c->log_level;
	c->dns = parse_bool("SFSHIM_DNS", get("SFSHIM_DNS"), true);
	c->curl = parse_bool("SFSHIM_CURL", get("SFSHIM_CURL"), true);
	c->retry_errors = parse_bool("SFSHIM_RETRY_ERRORS",
	                             get("SFSHIM_RETRY_ERRORS"), false);
	c->wait_ns = parse_ms("SFSHIM_WAIT_MS", get("SFSHIM_WAIT_MS"),
	                      SF_DEFAULT_WAIT_MS) *
	             1000000u;
	c->spill_bytes = parse_size("SFSHIM_SPILL", get("SFSHIM_SPILL"),
	                            SF_DEFAULT_SPILL);
	if (c->spill_bytes > SF_SPILL_MAX) {
		sf_log(SF_LOG_ERROR,
		       "SFSHIM_SPILL='%s' is more than the maximum 1G; "
		       "assuming 1G",
		       get("SFSHIM_SPILL"));
		c->spill_bytes = SF_SPILL_MAX;
	}
	c->stats = parse_stats(get("SFSHIM_STATS"));
	c->trace = parse_trace(get("SFSHIM_TRACE"));
	c->trace_events = parse_trace_events(get("SFSHIM_TRACE_EVENTS"));
	c->scope = parse_scope(get("SFSHIM_SCOPE"));
	parse_list(get("SFSHIM_DNS_INCLUDE"), &c->hosts.include,
	           &c->hosts.n_include);
	parse_list(get("SFSHIM_DNS_EXCLUDE"), &c->hosts.exclude,
	           &c->hosts.n_exclude);
	parse_list(get("SFSHIM_URL_INCLUDE"), &c->urls.include,
	           &c->urls.n_include);
	parse_list(get("SFSHIM_URL_EXCLUDE"), &c->urls.exclude,
	           &c->urls.n_exclude);
	c->hosts.include_tail = tails_of(c->hosts.include, c->hosts.n_include);
	c->hosts.exclude_tail = tails_of(c->hosts.exclude, c->hosts.n_exclude);
	c->urls.include_tail = tails_of(c->urls.include, c->urls.n_include);
	c->urls.exclude_tail = tails_of(c->urls.exclude, c->urls.n_exclude);
}

void sf_config_free(struct sf_config *c)
{
	free(c->hosts.include_tail);
	free(c->hosts.exclude_tail);
	free(c->urls.include_tail);
	free(c->urls.exclude_tail);
	free_list(c->hosts.include, c->hosts.n_include);
	free_list(c->hosts.exclude, c->hosts.n_exclude);
	free_list(c->urls.include, c->urls.n_include);
	free_list(c->urls.exclude, c->urls.n_exclude);
	free(c->stats);
	free(c->trace);
	free(c->scope);
	memset(c, 0, sizeof(*c));
}

/* ---- the process configuration ---------------------------------------- */

static struct sf_config process_config;
static pthread_once_t config_once = PTHREAD_ONCE_INIT;

/* The variables, as the environment held them when the library was
 * loaded.  The constructor only reads the environment: no dlsym, no
 * parsing, nothing that could run before the allocator is ready besides
 * one strdup per variable that is set. */
static const char *const names[] = {
	"SFSHIM_LOG",          "SFSHIM_DNS",         "SFSHIM_CURL",
	"SFSHIM_RETRY_ERRORS", "SFSHIM_WAIT_MS",     "SFSHIM_SPILL",
	"SFSHIM_STATS",        "SFSHIM_DNS_INCLUDE", "SFSHIM_DNS_EXCLUDE",
	"SFSHIM_URL_INCLUDE",  "SFSHIM_URL_EXCLUDE", "SFSHIM_SCOPE",
};
#define N_NAMES (sizeof(names) / sizeof(names[0]))
static char *at_load[N_NAMES];

__attribute__((constructor)) static void config_snapshot(void)
{
	for (size_t i = 0; i < N_NAMES; i++) {
		const char *v = secure_getenv(names[i]);
		at_load[i] = v ? strdup(v) : NULL;
	}
}

/* secure_getenv: in a setuid program the shim is not loaded at all, but a
 * process that gained privileges some other way must not be steered by its
 * caller's environment.  A variable the program has unset (or whose whole
 * environment it emptied) keeps its value from load time. */
static const char *env_get(const char *name)
{
	const char *v = secure_getenv(name);
	if (v)
		return v;
	for (size_t i = 0; i < N_NAMES; i++)
		if (strcmp(names[i], name) == 0)
			return at_load[i];
	return NULL;
}

static void load_process_config(void)
{
	sf_config_load(&process_config, env_get);
	sf_log(SF_LOG_INFO,
	       "libsfshim %s loaded: dns=%d curl=%d wait_ms=%llu scope=%s",
	       SF_VERSION, process_config.dns, process_config.curl,
	       (unsigned long long)(process_config.wait_ns / 1000000u),
	       process_config.scope ? process_config.scope : "(none)");
	sf_trace_configure(&process_config);
}

const struct sf_config *sf_config(void)
{
	pthread_once(&config_once, load_process_config);
	return &process_config;
}
