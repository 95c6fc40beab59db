/* sf_dns_cross.h - getaddrinfo across the processes of a scope.
 *
 * A bridge between the two kinds of flight: the threads of one process
 * coalesce in-process (core/sf_flight.h) exactly as without a scope, and
 * the call their in-process leader makes goes through the scope's table
 * (core/sf_xflight.h), where the leaders of every process of the scope
 * meet.  So threads and processes mixed make one call.
 *
 *  - global leader: the real call, then the rule of core/sf_outcome.h on
 *    its judged result: shared (packed: sf_addrinfo.h), not shared (every
 *    follower calls alone), or handed over (its own failure);
 *  - global follower: waits within the caller's limit (SFSHIM_WAIT_MS);
 *    takes the packed answer into its own glibc-layout list if its own
 *    rule would share it too, takes over when promoted, and otherwise
 *    (deadline, slot lost, no or too large an answer, memory) makes its own
 *    call.
 * Keys start with "dns" and a NUL, so that they never meet a curl key. */
#ifndef SF_DNS_CROSS_H
#define SF_DNS_CROSS_H

#include "core/sf_outcome.h"
#include "core/sf_xflight.h"

#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>

/* One caller's answer: the return code, errno (EAI_SYSTEM's detail), and
 * its own list (rc 0). */
struct sf_dns_answer {
	int rc;
	int err;
	struct addrinfo *list;
};

struct sf_dns_cross {
	/* set by the caller */
	sf_xtable *t;
	uint64_t wait_ns;  /* 0: as long as the leader runs */
	uint64_t start_ns; /* when the caller started waiting in-process (it
	                    * followed there first), 0: not yet */
	bool retry_errors;
	const char *node; /* for the debug log */
	void (*real)(void *arg, struct sf_dns_answer *a);
	void *arg;
	enum sf_result (*judge)(const struct sf_dns_answer *a);
	/* what happened (for the stats: sf_dns_cross_count) */
	bool led, answered, promoted, alone;
	unsigned served; /* followers in other processes */
	/* the ticket, while held */
	int held;
	struct sf_xticket tk;
};

/* Makes x's call for key through the table, leaving the caller's answer
 * in a. */
void sf_dns_cross_call(struct sf_dns_cross *x, const void *key, size_t keylen,
                       struct sf_dns_answer *a);

/* The call was left without returning (cancelled, or a longjmp out of the
 * real call or the wait): lets go of the ticket (a leader's flight is
 * handed over). */
void sf_dns_cross_left(struct sf_dns_cross *x);

/* Adds what x did to the process's stats. */
void sf_dns_cross_count(const struct sf_dns_cross *x);

#endif
