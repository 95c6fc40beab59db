/* sf_curl_xfer.h - one curl_easy_perform on a known handle, and the
 * pieces that carry it out: the leader (sf_curl_lead.c) performs and
 * records, followers (sf_curl_follow.c) replay, sf_curl_perform.c decides;
 * sf_curl_response.h owns the shared response and the cursor.
 *
 * Failures that are the leader's own (its callback refused data or paused,
 * its timeout, its progress callback, its thread cancelled) are never
 * shared: the leader abandons the flight and a follower is promoted.  The
 * promoted follower performs the request itself into a new generation;
 * every follower reads that one from its start, through its cursor. */
#ifndef SF_CURL_XFER_H
#define SF_CURL_XFER_H

#include "common/sf_config.h"
#include "core/sf_flight.h"
#include "curl/sf_curl_deliver.h"
#include "curl/sf_curl_key.h"
#include "curl/sf_curl_response.h"

struct sf_curl_xfer {
	struct sf_curl_handle *h;
	const struct sf_curl_real *api;
	const struct sf_config *cfg;
	struct sf_curl_key key;
	struct sf_delivery d;      /* the program's own callbacks */
	struct sf_curl_cursor cur; /* what the program was given */
	bool promoted;             /* joined as a follower, now leads */
	bool late;         /* followed first: its own limits are partly spent */
	enum sf_path path; /* what the call counts as (sf_outcome.h) */
	uint64_t start_ns;
	/* Leading across processes too: the scope's flight, whose file
	 * gets the response's records (sf_curl_remote.c). */
	struct sf_curl_xlead *x;
};

/* Performs the request for real.  With a flight f, records the reply for
 * its followers and finishes or abandons f; without one (a follower
 * fetching alone after partly delivering), only what the program does not
 * have yet reaches it, once the overlap compared equal. */
CURLcode sf_curl_lead(struct sf_curl_xfer *p, sf_flight *f);

/* Leads flight f of this process: in a scope (common/sf_scope.h) it first
 * joins the scope's flight for the request, and either leads it too (the
 * response also goes to a file for other processes), or follows the
 * process that leads it, replaying that process's file through f as if it
 * were this process's own transfer (sf_curl_remote.c). */
CURLcode sf_curl_bridge(struct sf_curl_xfer *p, sf_flight *f);

/* The global leader's side (sf_curl_remote.c), called by sf_curl_lead()
 * when p->x is set: each record as it is received; a failure of its own
 * (the scope's flight goes to one of its followers); the end, with the
 * answers its followers need (snap: a snapshot of the handle, or NULL to
 * take one from easy when somebody follows). */
void sf_curl_xlead_record(struct sf_curl_xlead *x, enum sf_curl_rec type,
                          const void *data, size_t n);
void sf_curl_xlead_abandon(struct sf_curl_xlead *x);
void sf_curl_xlead_finish(struct sf_curl_xlead *x, CURLcode code,
                          const char *errmsg, bool retry,
                          const struct sf_curl_real *api, CURL *easy,
                          const struct sf_curl_reply *snap);

/* A follower's ways to its program, shared by the in-process follower
 * (sf_curl_follow.c) and the follower of another process's file: the header
 * API's live view in callbacks, delivery through the cursor, and libcurl's
 * LOW_SPEED check. */
void sf_curl_live_start(struct sf_curl_xfer *p);
bool sf_curl_live(const struct sf_curl_xfer *p);
void sf_curl_live_end(struct sf_curl_xfer *p);
bool sf_curl_follow_give(void *ctx, enum sf_curl_rec type, const char *data,
                         size_t n);

/* What a follower's wait comes to, step by step: carry on; *code set, the
 * program's own outcome; fetch alone (the response unreadable, or waited
 * past SFSHIM_WAIT_MS); the leader asks for a retry; done, *code set. */
enum sf_curl_step {
	SF_STEP_ON,
	SF_STEP_OWN,
	SF_STEP_SHORT,
	SF_STEP_EXPIRED,
	SF_STEP_RETRY,
	SF_STEP_DONE
};

/* The program's limits both followers keep while they wait: its progress
 * callback, CURLOPT_TIMEOUT_MS, LOW_SPEED_LIMIT/TIME, and SFSHIM_WAIT_MS
 * (counted from last, when the leader last moved on). */
struct sf_curl_speed {
	uint64_t at, next, slow_since;
	size_t bytes;
};
struct sf_curl_pace {
	uint64_t wait, last, own, tick;
	bool progress, slow_check, idle;
	struct sf_curl_speed speed;
};
void sf_curl_pace_start(struct sf_curl_pace *c, struct sf_curl_xfer *p,
                        uint64_t last);
/* Before each wait, at now: SF_STEP_ON with *until (0: no limit; slice, if
 * not 0, caps the wait at now + slice), SF_STEP_OWN or SF_STEP_EXPIRED. */
enum sf_curl_step sf_curl_pace_check(struct sf_curl_pace *c,
                                     struct sf_curl_xfer *p, uint64_t now,
                                     uint64_t slice, uint64_t *until,
                                     CURLcode *code);
/* After each wait: idle, it found nothing new. */
void sf_curl_pace_woke(struct sf_curl_pace *c, bool idle);
/* After each drain: moved, the program got something (progress is due). */
void sf_curl_pace_fed(struct sf_curl_pace *c, bool moved);
/* What a drain's result means: SF_STEP_ON, SF_STEP_OWN or SF_STEP_SHORT. */
enum sf_curl_step sf_curl_follow_fed(struct sf_curl_xfer *p,
                                     enum sf_curl_fed fed, CURLcode *code);
/* The leader's final reply r, all of it read: SF_STEP_RETRY, SF_STEP_OWN
 * (what the program got differs) or SF_STEP_DONE with r's code. */
enum sf_curl_step sf_curl_follow_end(struct sf_curl_xfer *p,
                                     const struct sf_curl_reply *r,
                                     CURLcode *code);

/* A perform outside any flight. */
CURLcode sf_curl_alone(struct sf_curl_xfer *p);

/* Follows flight f: replays its reply through the program's callbacks; may
 * end up leading or fetching alone. */
CURLcode sf_curl_follow(struct sf_curl_xfer *p, sf_flight *f);

#endif
