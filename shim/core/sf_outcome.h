/* sf_outcome.h - the rules every hook shares, kept in one place.
 *
 *  - Which results may be shared.  A hook only says what kind of result its
 *    leader got; this file decides what followers do with it.
 *  - What a call's path counts as in the stats.  A hook reports the path a
 *    call took; this file says which counters that bumps.
 *
 * Knows nothing of DNS or curl. */
#ifndef SF_OUTCOME_H
#define SF_OUTCOME_H

#include <stdbool.h>

/* What the leader's call came to, as the hook judges it. */
enum sf_result {
	SF_RESULT_OK,    /* an answer */
	SF_RESULT_ERROR, /* the upstream's own "no": NXDOMAIN, refused
	                  * connection, HTTP error with FAILONERROR.  Any
	                  * caller asking now would get it too. */
	SF_RESULT_OWN,   /* the leader's own failure: its memory, its
	                  * descriptors, its callback, its deadline, its
	                  * thread.  Says nothing about the followers' calls. */
};

/* What followers do with a leader's result. */
enum sf_share {
	SF_SHARE_RESULT,   /* every follower takes it */
	SF_SHARE_NOTHING,  /* each follower makes its own call */
	SF_SHARE_HANDOVER, /* one follower becomes the leader; the rest
	                    * keep following it */
};

/* Go shares every error; beneath a program that never asked for sharing,
 * a failure that is the leader's own is never passed on, and with
 * SFSHIM_RETRY_ERRORS the upstream's errors are not either.  A leader's own
 * failure hands the flight over rather than scattering the followers: one
 * of them asks on behalf of the rest. */
static inline enum sf_share sf_share_rule(enum sf_result r, bool retry_errors)
{
	switch (r) {
	case SF_RESULT_OK:
		return SF_SHARE_RESULT;
	case SF_RESULT_ERROR:
		return retry_errors ? SF_SHARE_NOTHING : SF_SHARE_RESULT;
	default:
		return SF_SHARE_HANDOVER;
	}
}

/* The path one coalescing call took (sf_do() returns it; hooks with a
 * protocol of their own report it the same way). */
enum sf_path {
	SF_PATH_LEADER,   /* made the call */
	SF_PATH_PROMOTED, /* followed, then made the call when the leader quit */
	SF_PATH_FOLLOWER, /* got the leader's answer */
	SF_PATH_EXPIRED,  /* waited past its limit, then called alone */
	SF_PATH_RETRIED,  /* the leader's error was not shared: called alone */
	SF_PATH_FALLBACK, /* joined, but could not get its copy of the answer
	                   * (memory, descriptors, disk): called alone */
	SF_PATH_ALONE,    /* no flight could be made: a plain call */
	SF_PATH_COUNT
};

/* Counters of coalescing calls (pass-throughs are counted by cause). */
enum sf_stat {
	SF_STAT_LEADERS,    /* calls that started a flight and made the call */
	SF_STAT_FOLLOWERS,  /* calls that joined a running flight */
	SF_STAT_PROMOTIONS, /* followers that took over from a failed leader */
	SF_STAT_EXPIRED,    /* followers that waited past the deadline */
	SF_STAT_RETRIED,    /* followers that called alone after an error */
	SF_STAT_FALLBACKS, /* followers that called alone, short of resources */
	SF_STAT_COUNT
};

#define SF_STAT_BIT(s) (1u << (s))

/* The counters one call on path p bumps, as a mask of SF_STAT_BIT()s.
 * SF_PATH_ALONE bumps none here: it is a pass-through (no flight). */
unsigned sf_path_stats(enum sf_path p);

/* Calls avoided, from counters indexed by enum sf_stat: every follower
 * that got the leader's answer (one that ended up making its own call
 * saved nothing). */
static inline unsigned long sf_stats_saved(const unsigned long *s)
{
	return s[SF_STAT_FOLLOWERS] - s[SF_STAT_PROMOTIONS] -
	       s[SF_STAT_EXPIRED] - s[SF_STAT_RETRIED] - s[SF_STAT_FALLBACKS];
}

/* Whether a call on path p got the leader's answer without asking itself. */
static inline bool sf_path_saved(enum sf_path p)
{
	return p == SF_PATH_FOLLOWER;
}

#endif
