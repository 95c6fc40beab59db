/* sf_guard.h - re-entrancy guard.
 *
 * While the shim itself is inside a real libc or libcurl call, any hooked
 * call the same thread makes (an NSS module calling getaddrinfo, libcurl
 * calling its own curl_easy_setopt, a callback that fetches another URL)
 * goes straight to the real function: the shim never waits on a flight from
 * inside its own work.  initial-exec TLS: one %fs-relative load. */
#ifndef SF_GUARD_H
#define SF_GUARD_H

extern __thread int sf_guard_depth __attribute__((tls_model("initial-exec")));

static inline int sf_guard_active(void)
{
	return sf_guard_depth != 0;
}

static inline void sf_guard_enter(void)
{
	sf_guard_depth++;
}

static inline void sf_guard_leave(void)
{
	sf_guard_depth--;
}

/* The depth to put back when a call inside the guard is left without
 * returning (a longjmp out, core/sf_leave.h): else every later call on the
 * thread would pass through as "re-entrant". */
static inline int sf_guard_save(void)
{
	return sf_guard_depth;
}

static inline void sf_guard_restore(int depth)
{
	sf_guard_depth = depth;
}

#endif
