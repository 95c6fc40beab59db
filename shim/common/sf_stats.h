/* sf_stats.h - what the shim did and saved, summarised at exit.
 *
 * Counters are relaxed atomics bumped on every hooked call; the summary
 * (SFSHIM_STATS) is written at exit to stderr or appended to a file. */
#ifndef SF_STATS_H
#define SF_STATS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/sf_outcome.h"

enum sf_api { SF_API_DNS, SF_API_CURL, SF_API_COUNT };

/* Why a call went straight to the real function. */
enum sf_pass {
	SF_PASS_DISABLED,    /* switched off in the environment */
	SF_PASS_FILTERED,    /* host or URL excluded / not included */
	SF_PASS_NUMERIC,     /* numeric host: nothing to look up */
	SF_PASS_UNSUPPORTED, /* arguments or options the shim does not coalesce */
	SF_PASS_REENTRANT,   /* made from inside the shim's own work */
	SF_PASS_NOFLIGHT,    /* no flight could be made (memory, key size) */
	SF_PASS_COUNT
};

/* Flights that crossed processes (SFSHIM_SCOPE, common/sf_scope.h).  A
 * process's own leader joins the scope's table on behalf of its threads,
 * so these count table flights, next to the per-process paths above. */
enum sf_xstat {
	SF_XSTAT_LED,      /* calls that led a flight of the scope's table */
	SF_XSTAT_ANSWERED, /* calls answered by another process's flight */
	SF_XSTAT_SERVED,   /* followers in other processes served by this
	                    * process's flights */
	SF_XSTAT_PROMOTED, /* took over a flight whose leader (another
	                    * process) quit or died */
	SF_XSTAT_ALONE,    /* followed another process's flight, then called
	                    * alone: deadline, no shared answer, slot lost */
	SF_XSTAT_COUNT
};

/* Coalescing calls are counted by the path they took, which
 * core/sf_outcome.h maps to counters; calls and savings are derived when the
 * report is written. */
struct sf_stats {
	_Atomic unsigned long stat[SF_API_COUNT][SF_STAT_COUNT];
	_Atomic unsigned long pass[SF_API_COUNT][SF_PASS_COUNT];
	_Atomic unsigned long cross[SF_API_COUNT][SF_XSTAT_COUNT];
};
extern struct sf_stats sf_stats;

static inline void sf_count(enum sf_api api, enum sf_stat s)
{
	atomic_fetch_add_explicit(&sf_stats.stat[api][s], 1,
	                          memory_order_relaxed);
}

static inline void sf_count_pass(enum sf_api api, enum sf_pass why)
{
	atomic_fetch_add_explicit(&sf_stats.pass[api][why], 1,
	                          memory_order_relaxed);
}

/* A cross-process event (n of them: SF_XSTAT_SERVED counts followers);
 * both hooks report through this. */
static inline void sf_count_cross(enum sf_api api, enum sf_xstat s,
                                  unsigned long n)
{
	if (n)
		atomic_fetch_add_explicit(&sf_stats.cross[api][s], n,
		                          memory_order_relaxed);
}

/* One coalescing call on path p (SF_PATH_ALONE: a pass-through for lack of
 * a flight). */
static inline void sf_count_path(enum sf_api api, enum sf_path p)
{
	unsigned mask = sf_path_stats(p);
	if (p == SF_PATH_ALONE)
		sf_count_pass(api, SF_PASS_NOFLIGHT);
	for (int s = 0; mask; s++, mask >>= 1)
		if (mask & 1)
			sf_count(api, (enum sf_stat)s);
}

/* Names why a call passed through, once per call: counted by name in a
 * small fixed table and logged at info the first time the name is seen
 * ("curl: CURLOPT_SHARE set: passing through").  cause must be a string
 * with static storage made of option names and fixed words: never a value,
 * a host or a URL (the log and the stats file must not reveal secrets).
 * The summary lists the most frequent causes per API. */
void sf_stats_pass_cause(enum sf_api api, enum sf_pass why, const char *cause);

/* A finished flight that had followers: feeds the busiest-keys table.
 * label (a host name, a URL) is stored redacted and escaped (sf_text.h). */
void sf_stats_flight(enum sf_api api, const char *label, unsigned followers);

/* Writes the summary to fd: at exit when SFSHIM_STATS asks, and in tests. */
void sf_stats_report(int fd);

/* ---- JSON stats (SFSHIM_STATS=json:PATH) ------------------------------- */

/* A timed coalescing call ended (see common/sf_trace.h): feeds the time
 * figures.  dur_ns is the whole hooked call, entry to return.
 *  - waited: the sum of dur_ns over calls on SF_PATH_FOLLOWER (they waited
 *    for the leader, then took its answer);
 *  - saved: for each such follower, dur_ns of the leader (or promoted
 *    follower) call whose answer it got: the call it did not make.
 * Leaders and followers of one flight meet in a small table keyed by the
 * flight's serial (whichever ends first waits there for the other). */
void sf_stats_timed(enum sf_api api, enum sf_path path, uint64_t flight,
                    uint64_t dur_ns);

/* Builds the JSON object (one line, newline included) in buf; returns its
 * length, 0 if it does not fit. */
size_t sf_stats_json(char *buf, size_t cap);

/* Writes the JSON object with a single write(2) (O_APPEND files: lines
 * from many processes never mix); false if it failed. */
bool sf_stats_report_json(int fd);

#endif
