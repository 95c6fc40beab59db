/* sf_futex.h - the futex operations the core needs, and nothing else.
 *
 * Followers sleep directly on a flight's state word and the leader wakes all
 * of them with one FUTEX_WAKE.  Nobody re-takes a lock after the wake-up, so
 * the slowest follower wakes about as fast as a bare broadcast allows (a
 * condition variable would make every follower re-take its mutex). */
#ifndef SF_FUTEX_H
#define SF_FUTEX_H

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Sleeps while *word == expected, until woken or until the absolute
 * CLOCK_MONOTONIC deadline (NULL: no deadline).  Returns 0 when woken or when
 * the word had already changed, ETIMEDOUT past the deadline, EINTR on a
 * signal.  Not a cancellation point by itself: see sf_flight.c. */
static inline int sf_futex_wait(_Atomic uint32_t *word, uint32_t expected,
                                const struct timespec *abs_deadline)
{
	long r = syscall(SYS_futex, (uint32_t *)word,
	                 FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, expected,
	                 abs_deadline, NULL, FUTEX_BITSET_MATCH_ANY);
	if (r == 0)
		return 0;
	return errno == EAGAIN ? 0 : errno;
}

static inline void sf_futex_wake_all(_Atomic uint32_t *word)
{
	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG,
	        INT_MAX, NULL, NULL, 0);
}

/* The same two on a word in memory shared between processes (the
 * cross-process table, core/sf_xflight.c): without FUTEX_PRIVATE_FLAG the
 * kernel keys the wait on the page's backing object, so a sleeper in one
 * process is woken by a wake in another. */
static inline int sf_futex_wait_shared(_Atomic uint32_t *word,
                                       uint32_t expected,
                                       const struct timespec *abs_deadline)
{
	long r = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_BITSET,
	                 expected, abs_deadline, NULL, FUTEX_BITSET_MATCH_ANY);
	if (r == 0)
		return 0;
	return errno == EAGAIN ? 0 : errno;
}

static inline void sf_futex_wake_all_shared(_Atomic uint32_t *word)
{
	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, INT_MAX, NULL, NULL,
	        0);
}

#endif
