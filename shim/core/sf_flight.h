/* sf_flight.h - the singleflight core.
 *
 * Go's x/sync/singleflight, made right for code that runs beneath programs
 * that never asked for it.  Callers that ask for the same key while a flight
 * for it is running join that flight instead of making their own call.  The
 * core knows nothing of DNS or curl: a key is a byte string, a result is an
 * opaque pointer with a destructor, and a streaming leader signals progress
 * with sf_flight_notify().
 *
 * Differences from Go, each one needed beneath an unmodified program:
 *  - a follower waits with a deadline and, past it, makes its own call;
 *  - a leader that ends without a result (cancelled thread, an error that is
 *    its own) hands the flight to one follower instead of stranding them;
 *  - after fork() the child starts with an empty group.
 *
 * Life of a flight: sf_join() returns it with one reference held for the
 * caller.  The leader ends with sf_flight_finish() or sf_flight_abandon();
 * every follower ends with sf_flight_leave().  The last reference frees the
 * flight and calls the result's destructor. */
#ifndef SF_FLIGHT_H
#define SF_FLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/sf_outcome.h"

typedef struct sf_group sf_group;
typedef struct sf_flight sf_flight;

/* Largest key the core accepts; longer keys make sf_join() return NULL and
 * the caller pass its call through.  (An HTTP request's key holds its URL
 * and headers.) */
#define SF_KEY_MAX ((size_t)64 * 1024)

/* Bytes of per-flight scratch space a hook may use through sf_flight_user().
 * Zero-filled when the flight is created. */
#define SF_USER_SIZE 64

sf_group *sf_group_new(void);
/* Frees an idle group (tests only: hooks use one group for the process). */
void sf_group_free(sf_group *g);

/* Joins the flight for key or starts one.  *leader tells the caller's role.
 * Returns NULL (caller must pass through) when the key is too long or memory
 * is short. */
sf_flight *sf_join(sf_group *g, const void *key, size_t keylen, bool *leader);

/* Later callers of key start a new flight; joined callers are unaffected. */
void sf_forget(sf_group *g, const void *key, size_t keylen);

/* Leader: publish partial progress (a streaming result grew). */
void sf_flight_notify(sf_flight *f);

/* Leader: publish the result and wake every follower.  result may be NULL;
 * dtor (may be NULL) runs when the last reference goes.  Drops the leader's
 * reference: f must not be used afterwards. */
void sf_flight_finish(sf_flight *f, void *result, void (*dtor)(void *));

/* Leader: end without a result.  One waiting follower becomes the leader;
 * with none, the flight is unregistered so the next caller starts afresh.
 * Drops the leader's reference. */
void sf_flight_abandon(sf_flight *f);

enum sf_wait {
	SF_WAIT_DONE,     /* sf_flight_result() is final */
	SF_WAIT_PROGRESS, /* the leader notified, or a new leader took over */
	SF_WAIT_PROMOTED, /* the caller is now the leader */
	SF_WAIT_TIMEOUT,  /* deadline passed: leave and make your own call */
};

/* Follower: waits until something newer than *cursor happened (start with
 * *cursor = 0).  abs_deadline is CLOCK_MONOTONIC, NULL for none.  A
 * cancellation point: a cancelled follower leaves the flight cleanly. */
enum sf_wait sf_flight_wait(sf_flight *f, uint32_t *cursor,
                            const struct timespec *abs_deadline);

/* Follower: drop the reference (after DONE, or to give up waiting). */
void sf_flight_leave(sf_flight *f);

/* The published result: valid after SF_WAIT_DONE until sf_flight_leave(). */
void *sf_flight_result(const sf_flight *f);

/* Followers joined so far (Go's `shared` is this > 0 for the leader, always
 * true for a follower).  Final once the flight is finished. */
unsigned sf_flight_followers(const sf_flight *f);

/* The flight's serial: non-zero, unique within the process (a new flight
 * for the same key gets a new one), the same for its leader and every
 * follower.  Lets traces draw an arrow from a leader to its followers. */
uint64_t sf_flight_id(const sf_flight *f);

/* Leaders so far minus one: how many times a follower was promoted. */
unsigned sf_flight_promotions(const sf_flight *f);

/* Hook-owned scratch space of SF_USER_SIZE bytes, zero at creation. */
void *sf_flight_user(sf_flight *f);

/* Leader: fn(user) runs when the flight is freed, to release what the
 * scratch space holds. */
void sf_flight_set_cleanup(sf_flight *f, void (*fn)(void *user));

/* Followers of the flight now registered for key (0 if none): lets tests
 * and diagnostics see who is waiting. */
unsigned sf_group_followers(sf_group *g, const void *key, size_t keylen);

/* The key as joined. */
const void *sf_flight_key(const sf_flight *f, size_t *keylen);

/* Leader: stop new callers from joining and return the final number of
 * followers, so that a leader builds a shared copy of its answer only when
 * somebody will read it.  Optional: finish and abandon seal too. */
unsigned sf_flight_seal(sf_flight *f);

/* One-call form (Go's Do) for answers produced all at once.
 *  call(arg, out): make the real call, leaving the caller's own answer in out;
 *  judge(out):     what kind of result the leader got (sf_outcome.h); with
 *                  retry_errors, sf_share_rule() decides what followers do
 *                  with it.  Optional: NULL means every result is shared;
 *  share(out):     build the result followers read from the leader's answer
 *                  (called only when there are followers; NULL if memory is
 *                  short, and then the followers make their own calls);
 *  take(result, out): give a follower its own answer from the result; false
 *                  when it cannot (memory), and then the follower makes its
 *                  own call rather than fail where its call might not.
 * A follower that waited wait_ns (0: no limit) without an answer, or a
 * caller for whom no flight can be made, calls call() itself; the clock is
 * read only by followers.  A leader cancelled inside call(), or whose
 * result is its own failure, hands the flight to one follower.  Returns the
 * path the caller took; info (may be NULL) tells whether the answer reached
 * more than one caller (Go's `shared`) and, for a leader, how many
 * followers it had. */
struct sf_do_ops {
	void (*call)(void *arg, void *out);
	/* optional: call() was left without returning (a longjmp out of it,
	 * or the thread's cancellation; core/sf_leave.h): undo what call()
	 * set up, such as a re-entrancy depth.  A leader's flight is handed
	 * over by sf_do() itself. */
	void (*left)(void *arg);
	void (*on_follow)(void *arg); /* optional: joined as a follower */
	enum sf_result (*judge)(const void *out);
	void *(*share)(const void *out);
	bool (*take)(const void *result, void *out);
	void (*dtor)(void *result);
};
struct sf_do_info {
	bool shared;
	unsigned followers;
	uint64_t flight; /* sf_flight_id() of the flight joined, 0 if none */
};
enum sf_path sf_do(sf_group *g, const void *key, size_t keylen,
                   const struct sf_do_ops *ops, void *arg, void *out,
                   uint64_t wait_ns, bool retry_errors,
                   struct sf_do_info *info);

#endif
