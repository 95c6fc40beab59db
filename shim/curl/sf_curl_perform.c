/* sf_curl_perform.c - curl_easy_perform as leader, follower, or alone:
 * decides whether a perform may coalesce and which role it takes. */
#include "curl/sf_curl_perform.h"

#include "common/sf_guard.h"
#include "common/sf_stats.h"
#include "common/sf_trace.h"
#include "core/sf_clock.h"
#include "curl/sf_curl_xfer.h"

#include <pthread.h>

static sf_group *group;
static pthread_once_t group_once = PTHREAD_ONCE_INIT;

static void make_group(void)
{
	group = sf_group_new();
}

CURLcode sf_curl_perform(struct sf_curl_handle *h)
{
	sf_curl_handle_forget_reply(h);
	h->first_byte_ns = h->total_ns = 0;

	struct sf_curl_xfer p = { .h = h, .api = h->api, .cfg = sf_config() };
	uint64_t t0 = sf_trace_begin();
	enum sf_pass why = sf_guard_active()
	                           ? SF_PASS_REENTRANT
	                           : sf_curl_key_build(h, p.cfg, &p.key);
	pthread_once(&group_once, make_group);
	sf_flight *f = NULL;
	bool leader = false;
	if (why == SF_PASS_COUNT &&
	    !(f = sf_join(group, p.key.bytes, p.key.len, &leader)))
		why = SF_PASS_NOFLIGHT;
	if (why != SF_PASS_COUNT) {
		sf_count_pass(SF_API_CURL, why);
		sf_curl_key_free(&p.key);
		const struct sf_curl_opt *url =
		        sf_curl_handle_get(h, CURLOPT_URL);
		CURLcode rc = sf_curl_alone(&p);
		sf_trace_pass(t0, SF_API_CURL, why, url ? url->v.s : NULL);
		return rc;
	}
	uint64_t flight = sf_flight_id(f); /* f may be gone by the end */

	sf_delivery_init(&p.d, h);
	sf_curl_cursor_init(&p.cur);
	p.start_ns = sf_now_ns();
	CURLcode code;
	if (leader) {
		p.path = SF_PATH_LEADER;
		code = sf_curl_bridge(&p, f);
	} else {
		/* Its log line too is inside the follower's guard: write(2)
		 * is a cancellation point, and the flight is held already. */
		p.path = SF_PATH_FOLLOWER;
		code = sf_curl_follow(&p, f);
	}
	sf_count_path(SF_API_CURL, p.path);
	/* A follower streams: from its first byte on it was replaying. */
	sf_trace_path_replay(t0, SF_API_CURL, p.path, flight, p.key.url,
	                     p.path == SF_PATH_FOLLOWER && h->first_byte_ns
	                             ? p.start_ns + h->first_byte_ns
	                             : 0);
	sf_curl_cursor_free(&p.cur);
	sf_curl_key_free(&p.key);
	return code;
}
