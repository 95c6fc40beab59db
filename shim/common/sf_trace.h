/* sf_trace.h - timing of hooked calls: the flight trace (SFSHIM_TRACE) and
 * the time figures of the JSON stats (SFSHIM_STATS=json:PATH).
 *
 * Each hook calls sf_trace_begin() once where a call starts and
 * sf_trace_path() or sf_trace_pass() once where it ends, when the path the
 * call took (or why it passed through) is known.  With neither variable
 * set, begin is one test of a global flag that never changes, predicted not
 * taken, and returns 0; the end tests that local 0.  Nothing else runs.
 *
 * The trace keeps the most recent SFSHIM_TRACE_EVENTS calls (default
 * 65536) in a ring allocated once, about 100 bytes per event, and writes
 * them at exit as Chrome trace-event JSON (Perfetto, chrome://tracing). */
#ifndef SF_TRACE_H
#define SF_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/sf_stats.h"
#include "core/sf_clock.h"
#include "core/sf_outcome.h"

struct sf_config;

/* Set once, with the process configuration: calls are to be timed. */
extern bool sf_trace_on;

#define SF_TRACE_EVENTS_DEFAULT 65536u
#define SF_TRACE_EVENTS_MIN 16u
#define SF_TRACE_EVENTS_MAX (1u << 24)

/* Bytes of a key kept per event (redacted, then cut). */
#define SF_TRACE_LABEL 64

/* A call's start: 0 when nothing is timed. */
static inline uint64_t sf_trace_begin(void)
{
	return __builtin_expect(sf_trace_on, 0) ? sf_now_ns() : 0;
}

/* what: an enum sf_path, or SF_TRACE_PASS(why) for a pass-through. */
#define SF_TRACE_PASS(why) ((int)SF_PATH_COUNT + (int)(why))
/* replay_ns: when a follower's replay of its leader's response began
 * (sf_now_ns(); 0: not a replaying follower).  The trace shows the replay
 * as a slice of its own inside the call's. */
void sf_trace_end_replay(uint64_t t0, enum sf_api api, int what,
                         uint64_t flight, const char *label,
                         uint64_t replay_ns);

static inline void sf_trace_end(uint64_t t0, enum sf_api api, int what,
                                uint64_t flight, const char *label)
{
	sf_trace_end_replay(t0, api, what, flight, label, 0);
}

/* A coalescing call ended on path p, in flight (sf_flight_id(), 0: none). */
static inline void sf_trace_path(uint64_t t0, enum sf_api api, enum sf_path p,
                                 uint64_t flight, const char *label)
{
	if (__builtin_expect(t0 != 0, 0))
		sf_trace_end(t0, api, (int)p, flight, label);
}

/* A follower ended on path p after replaying the leader's response from
 * replay_ns on (0: nothing replayed): curl followers stream. */
static inline void sf_trace_path_replay(uint64_t t0, enum sf_api api,
                                        enum sf_path p, uint64_t flight,
                                        const char *label, uint64_t replay_ns)
{
	if (__builtin_expect(t0 != 0, 0))
		sf_trace_end_replay(t0, api, (int)p, flight, label, replay_ns);
}

/* A call passed through for reason why. */
static inline void sf_trace_pass(uint64_t t0, enum sf_api api, enum sf_pass why,
                                 const char *label)
{
	if (__builtin_expect(t0 != 0, 0))
		sf_trace_end(t0, api, SF_TRACE_PASS(why), 0, label);
}

/* Called once by the process configuration's loader. */
void sf_trace_configure(const struct sf_config *c);

/* Writes the trace document held now to fd (at exit; tests); false if a
 * write failed. */
bool sf_trace_write(int fd);

/* Names used in the trace and the JSON stats. */
const char *sf_trace_path_name(enum sf_path p);
const char *sf_trace_pass_name(enum sf_pass why);

/* A key as it may be shown, in the trace and the JSON stats: common's
 * sf_text_clean() (a URL's user information, query and fragment become
 * "[redacted]", control characters are escaped), applied to libcurl's
 * scheme-less URLs ("user:pw@host/x?tok") too.  Writes at most cap bytes,
 * NUL included, and returns the length. */
size_t sf_redact_label(char *out, size_t cap, const char *label);

#endif
