/* sf_config.h - configuration from the environment, read once.
 *
 * Every variable is optional; a malformed value gets one line on stderr
 * naming the variable, the value and what is assumed instead. */
#ifndef SF_CONFIG_H
#define SF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Comma-separated, case-insensitive globs (`*`, `?`).  A subject passes when
 * no exclude pattern matches and the include list is empty or one of its
 * patterns matches: exclude wins. */
struct sf_filter {
	char **include;
	size_t n_include;
	char **exclude;
	size_t n_exclude;
	/* Per pattern: for "*literal", the literal's length (a suffix test,
	 * the common case, with no backtracking); else 0. */
	size_t *include_tail, *exclude_tail;
};

struct sf_config {
	bool dns;               /* SFSHIM_DNS */
	struct sf_filter hosts; /* SFSHIM_DNS_INCLUDE / SFSHIM_DNS_EXCLUDE */
	bool curl;              /* SFSHIM_CURL */
	struct sf_filter urls;  /* SFSHIM_URL_INCLUDE / SFSHIM_URL_EXCLUDE */
	uint64_t wait_ns;   /* SFSHIM_WAIT_MS, 0: wait as long as the leader */
	bool retry_errors;  /* SFSHIM_RETRY_ERRORS */
	size_t spill_bytes; /* SFSHIM_SPILL */
	int log_level;      /* SFSHIM_LOG */
	char *stats;        /* SFSHIM_STATS: NULL, "stderr" or a path */

	/* SFSHIM_STATS=json:PATH (or json:stderr) keeps "json:PATH" in stats:
	 * JSON Lines.  SFSHIM_TRACE: NULL or a path ("%p": the pid);
	 * SFSHIM_TRACE_EVENTS: the size of the ring of recent calls. */
	char *trace;
	size_t trace_events;

	/* SFSHIM_SCOPE: processes of this user with the same name (in the
	 * same namespaces) coalesce across processes (common/sf_scope.h).
	 * NULL: unset or invalid (one line said so): per-process mode. */
	char *scope;
};

#define SF_DEFAULT_WAIT_MS 30000u
#define SF_DEFAULT_SPILL (256u << 10)
/* The largest SFSHIM_SPILL (1G): a larger value is taken as this, with one
 * line saying so.  Larger buffers only make allocations fail, which would
 * quietly turn curl coalescing off. */
#define SF_SPILL_MAX ((size_t)1 << 30)

/* The process configuration, loaded on first use with secure_getenv.  A
 * variable unset by then takes the value it had when the library was
 * loaded (a constructor keeps a copy): PHP empties its environment before
 * it exits, and the exit summary may be the first use. */
const struct sf_config *sf_config(void);

/* Fills c from get(name) (NULL: unset); warnings go to the log.  Tests call
 * it with their own lookup.  sf_config_free releases what load allocated. */
void sf_config_load(struct sf_config *c, const char *(*get)(const char *));
void sf_config_free(struct sf_config *c);

bool sf_filter_allows(const struct sf_filter *f, const char *subject);
bool sf_glob_match(const char *pattern, const char *subject);

#endif
