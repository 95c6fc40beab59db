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
};

/* Performs the request for real.  With a flight f, records the reply for
 * its followers and finishes or abandons f; without one (a follower
 * fetching alone after partly delivering), only what the program does not
 * have yet reaches it, once the overlap compared equal. */
CURLcode sf_curl_lead(struct sf_curl_xfer *p, sf_flight *f);

/* A perform outside any flight. */
CURLcode sf_curl_alone(struct sf_curl_xfer *p);

/* Follows flight f: replays its reply through the program's callbacks; may
 * end up leading or fetching alone. */
CURLcode sf_curl_follow(struct sf_curl_xfer *p, sf_flight *f);

#endif
