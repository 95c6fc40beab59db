/* sf_dns_cross.c - getaddrinfo across the processes of a scope (see
 * sf_dns_cross.h). */
#include "dns/sf_dns_cross.h"

#include "common/sf_log.h"
#include "common/sf_stats.h"
#include "core/sf_clock.h"
#include "dns/sf_addrinfo.h"

#include <pthread.h>
#include <string.h>

enum { HELD_NONE, HELD_LEADER, HELD_FOLLOWER };

/* A cancelled follower leaves at the next SF_XCANCEL_SLICE_NS, through
 * sf_dns_cross_left(). */

static void call_alone(struct sf_dns_cross *x, struct sf_dns_answer *a)
{
	x->real(x->arg, a);
}

/* The leader's end: the shared rule decides, and the flight ends with the
 * packed answer, with none, or is handed over.  The ticket is marked free
 * before it is given back, so that a jump out of the table's code never
 * gives it back twice. */
static void lead_finish(struct sf_dns_cross *x, const struct sf_dns_answer *a)
{
	unsigned remote = 0;
	unsigned followers = sf_xfollowers(x->t, &x->tk, &remote);
	x->held = HELD_NONE;
	switch (sf_share_rule(x->judge(a), x->retry_errors)) {
	case SF_SHARE_RESULT: {
		/* Nobody to read it: no packing (the common case of a lone
		 * lookup).  One who joins in the next instants finds no
		 * answer and calls alone: what it would have done without the
		 * library. */
		if (!followers) {
			sf_xfinish(x->t, &x->tk, NULL, 0);
			break;
		}
		unsigned char buf[SF_XRESULT_MAX];
		size_t n = sf_addrinfo_pack(buf, sizeof(buf), a->rc, a->err,
		                            a->list);
		/* Too large to pack: followers call alone. */
		sf_xfinish(x->t, &x->tk, n ? buf : NULL, n);
		if (n)
			x->served += remote;
		break;
	}
	case SF_SHARE_NOTHING:
		sf_xfinish(x->t, &x->tk, NULL, 0);
		break;
	default:
		sf_xabandon(x->t, &x->tk);
		break;
	}
}

/* Waits in slices (SF_XCANCEL_SLICE_NS) until something final happens or the
 * caller's deadline passes. */
static enum sf_xwait follow(struct sf_dns_cross *x, uint64_t now, uint64_t end)
{
	for (;;) {
		uint64_t until = end > now && end - now > SF_XCANCEL_SLICE_NS
		                         ? now + SF_XCANCEL_SLICE_NS
		                         : end;
		struct timespec ts = sf_ns_to_timespec(until);
		enum sf_xwait r = sf_xwait(x->t, &x->tk, &ts);
		if (r == SF_XWAIT_PROGRESS)
			continue;
		if (r != SF_XWAIT_TIMEOUT || until == end)
			return r;
		pthread_testcancel();
		now = sf_now_ns();
		if (now >= end)
			return SF_XWAIT_TIMEOUT;
	}
}

/* After DONE: the leader's packed answer, as the caller's own list, if the
 * caller's own rule shares it too (its SFSHIM_RETRY_ERRORS may differ from
 * the leader's).  false: make the call alone. */
static bool take(struct sf_dns_cross *x, struct sf_dns_answer *a)
{
	unsigned char buf[SF_XRESULT_MAX];
	ssize_t n = sf_xresult(x->t, &x->tk, buf, sizeof(buf));
	x->held = HELD_NONE;
	sf_xleave(x->t, &x->tk);
	struct sf_dns_answer got = { 0 };
	if (n < 0 ||
	    sf_addrinfo_unpack(buf, (size_t)n, &got.rc, &got.err, &got.list))
		return false;
	if (sf_share_rule(x->judge(&got), x->retry_errors) != SF_SHARE_RESULT) {
		sf_addrinfo_free(got.list);
		return false;
	}
	*a = got;
	return true;
}

/* The caller's own limit holds across both waits: a caller that already
 * waited in-process has only what is left of SFSHIM_WAIT_MS for the
 * table. */
static uint64_t deadline(const struct sf_dns_cross *x, uint64_t now)
{
	if (!x->wait_ns)
		return UINT64_MAX;
	return (x->start_ns ? x->start_ns : now) + x->wait_ns;
}

void sf_dns_cross_call(struct sf_dns_cross *x, const void *xkey, size_t xlen,
                       struct sf_dns_answer *a)
{
	enum sf_xrole role;
	x->held = HELD_NONE;
	/* Past its limit already (it waited in-process, then expired): the
	 * caller may not wait again, and does not join. */
	if (x->start_ns && x->wait_ns && sf_now_ns() >= deadline(x, 0)) {
		call_alone(x, a);
		return;
	}
	role = sf_xjoin(x->t, xkey, xlen, &x->tk); /* NONE: key too long */
	if (role == SF_XROLE_NONE) {
		call_alone(x, a);
		return;
	}
	if (role == SF_XROLE_FOLLOWER) {
		x->held = HELD_FOLLOWER;
		sf_log(SF_LOG_DEBUG,
		       "getaddrinfo %s: joined flight of another process",
		       x->node);
		uint64_t now = sf_now_ns();
		switch (follow(x, now, deadline(x, now))) {
		case SF_XWAIT_DONE:
			if (take(x, a)) {
				x->answered = true;
				return;
			}
			x->alone = true;
			call_alone(x, a);
			return;
		case SF_XWAIT_PROMOTED:
			x->promoted = true;
			sf_log(SF_LOG_INFO,
			       "getaddrinfo %s: leader process gone, took over",
			       x->node);
			break;
		default: /* TIMEOUT, LOST */
			x->held = HELD_NONE;
			sf_xleave(x->t, &x->tk);
			x->alone = true;
			call_alone(x, a);
			return;
		}
	}
	x->held = HELD_LEADER;
	x->led = true;
	x->real(x->arg, a);
	lead_finish(x, a);
}

void sf_dns_cross_left(struct sf_dns_cross *x)
{
	int held = x->held;
	x->held = HELD_NONE;
	/* A jump out of the table's code itself (sf_xjoin, a finish): the
	 * lock it held is released first, else every process of the scope
	 * would wait the lock's bound on every call from now on. */
	sf_xtable_left(x->t);
	if (held == HELD_LEADER)
		sf_xabandon(x->t, &x->tk);
	else if (held == HELD_FOLLOWER)
		sf_xleave(x->t, &x->tk);
}

void sf_dns_cross_count(const struct sf_dns_cross *x)
{
	sf_count_cross(SF_API_DNS, SF_XSTAT_LED, x->led);
	sf_count_cross(SF_API_DNS, SF_XSTAT_ANSWERED, x->answered);
	sf_count_cross(SF_API_DNS, SF_XSTAT_PROMOTED, x->promoted);
	sf_count_cross(SF_API_DNS, SF_XSTAT_ALONE, x->alone);
	sf_count_cross(SF_API_DNS, SF_XSTAT_SERVED, x->served);
}
