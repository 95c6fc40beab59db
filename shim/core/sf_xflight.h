/* sf_xflight.h - singleflight across processes, in one shared table.
 *
 * The same flight semantics as sf_flight.h (join, follow with a deadline,
 * hand over when a leader quits), for callers in different processes.  The
 * table lives in a shared mapping the caller provides (common/sf_scope.c
 * creates and checks the object); the core knows nothing of files, DNS or
 * curl: a key is a byte string, a result a bounded byte string, progress a
 * 64-bit number the leader publishes (for instance bytes written to a file
 * named after the ticket).
 *
 * Rules that hold whatever a process does, including dying at any
 * instruction (kill -9):
 *  - no pointers in the mapping: slots are found by index;
 *  - one robust, process-shared mutex guards the table; a process that dies
 *    holding it leaves it to the next locker with EOWNERDEAD, which repairs
 *    the table (a half-claimed slot is freed, a half-written result is never
 *    published: a slot's state word is written last);
 *  - every flight records its leader as pid + process start time (clock
 *    ticks since boot, /proc/PID/stat), so a reused pid is never taken for
 *    the leader; a follower that finds its leader gone (dead, zombie or
 *    reused pid) within its wait takes the flight over;
 *  - followers sleep on a shared futex word of the slot; the leader wakes
 *    them with one FUTEX_WAKE; a sleeping follower checks its leader's life
 *    every SF_XLIVENESS_MS, so it notices a dead leader promptly;
 *  - a slot is reused only after its flight ended; a follower that comes
 *    back to a reused slot (its generation changed) gets SF_XWAIT_LOST and
 *    makes its own call: never another flight's result.
 *
 * Thread-safe; a ticket belongs to one thread.  Cancellation: sf_xwait() is
 * not a cancellation point (the hook decides). */
#ifndef SF_XFLIGHT_H
#define SF_XFLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* Bump whenever the shared layout changes: part of the object's name and
 * checked in its header, so two layouts never share.  Overridable
 * (-DSF_XLAYOUT=2) only so that a test can build a second library and show
 * that two versions side by side never share. */
#ifndef SF_XLAYOUT
#define SF_XLAYOUT 1
#endif

#define SF_XKEY_MAX ((size_t)4096)    /* longer keys stay per-process */
#define SF_XRESULT_MAX ((size_t)8192) /* larger results are not shared */
#define SF_XSLOTS 128                 /* flights in flight at once */
#define SF_XLIVENESS_MS 10            /* how often a sleeper checks */

/* sf_xwait() is no cancellation point (a thread must never be cancelled
 * inside the table's lock): a hook whose wait must be one sleeps at most
 * this long per call and looks at its thread's cancellation in between. */
#define SF_XCANCEL_SLICE_NS ((uint64_t)50 * 1000000u)

typedef struct sf_xtable sf_xtable;

/* Bytes the shared object must have. */
size_t sf_xtable_bytes(void);

/* Formats fresh, zero-filled memory of sf_xtable_bytes() as an empty
 * table (before anyone else can see it).  0, or -1 with errno. */
int sf_xtable_format(void *mem, size_t len);

/* A process-local handle on a mapped table: NULL (errno EINVAL) when the
 * memory is not a table of this layout. */
sf_xtable *sf_xtable_open(void *mem, size_t len);
void sf_xtable_close(sf_xtable *t); /* does not unmap */

/* Who leads: a process identity pid reuse cannot fool. */
struct sf_xowner {
	int32_t pid;
	uint64_t start; /* start time in clock ticks since boot */
};
/* The calling process's identity (recomputed after fork: a
 * pthread_atfork child handler; a child made without fork(), e.g. by a raw
 * clone, keeps its parent's). */
struct sf_xowner sf_xowner_self(void);
/* False when o's process has exited (zombie included) or its pid now
 * names another process.  A zombie main thread whose process still has
 * live threads is alive.  Without /proc, kill(2) alone decides. */
bool sf_xowner_alive(const struct sf_xowner *o);

/* A caller's hold on one flight: plain values, no pointers. */
struct sf_xticket {
	uint32_t slot;
	uint32_t gen;  /* the slot's generation when joined */
	uint32_t seen; /* the slot's progress sequence last seen */
	bool leader;
	struct sf_xowner lead; /* the leader when last seen */
	uint64_t checked;      /* when the leader's life was last checked
	                        * (CLOCK_MONOTONIC ns; sf_xwait's own) */
};

enum sf_xrole {
	SF_XROLE_LEADER,   /* make the call, then sf_xfinish/sf_xabandon */
	SF_XROLE_FOLLOWER, /* sf_xwait, then sf_xresult / sf_xleave */
	SF_XROLE_NONE,     /* no flight (key too long, table full or
	                    * broken): make the call per-process */
};
/* A running flight of key (full key compare) is joined as FOLLOWER; a
 * leaderless one (abandoned, or repaired after its leader died
 * publishing) is taken over as LEADER; a finished one is never joined: a
 * new flight starts in a free slot, else in the slot that finished
 * longest ago, else in one whose leader is dead.  NONE leaves tk->slot ==
 * SF_XSLOTS (also when the lock could not be had within its bound).  One
 * uncontended lock, no system call: with sf_xfinish, the lone leader's
 * whole cost (about 45 ns). */
enum sf_xrole sf_xjoin(sf_xtable *t, const void *key, size_t keylen,
                       struct sf_xticket *tk);

/* Leader: publishes progress (monotonic) and wakes sleepers if any.  Each
 * call is an event (followers get PROGRESS) even when progress did not
 * grow.  With no follower attached, the progress is only stored (no lock,
 * no event: who joins later reads it with sf_xprogress).  Ignored when
 * the caller no longer leads the flight. */
void sf_xnotify(sf_xtable *t, struct sf_xticket *tk, uint64_t progress);

/* Leader: ends the flight with result (len <= SF_XRESULT_MAX), or with no
 * result (result NULL: every follower makes its own call).  A result over
 * the bound is published as no result.  With no follower attached the
 * result is not copied and the lock not taken (a follower attaching at
 * that instant gets DONE without a result and calls alone).  Drops the
 * ticket: tk->leader becomes false, tk->slot and tk->gen stay readable
 * (sf_xfollowers, sf_xflight_current, file names).  Ignored when the
 * caller no longer leads (taken for dead, or its slot reclaimed).  No
 * system call unless a follower sleeps. */
void sf_xfinish(sf_xtable *t, struct sf_xticket *tk, const void *result,
                size_t len);

/* Leader: ends without a result and hands the flight to one follower (the
 * next to wake gets SF_XWAIT_PROMOTED, or a newcomer of the key leads it);
 * with none attached, frees the slot.  Drops the ticket as sf_xfinish
 * does. */
void sf_xabandon(sf_xtable *t, struct sf_xticket *tk);

enum sf_xwait {
	SF_XWAIT_DONE,     /* finished: sf_xresult() */
	SF_XWAIT_PROGRESS, /* new progress, or a new leader (tk->lead) */
	SF_XWAIT_PROMOTED, /* the caller leads now (tk->leader is true) */
	SF_XWAIT_TIMEOUT,  /* abs_deadline passed: sf_xleave, call alone */
	SF_XWAIT_LOST,     /* the flight is gone: sf_xleave, call alone */
};
/* Follower: waits for something newer than tk->seen.  abs_deadline is
 * CLOCK_MONOTONIC, NULL for none (one out of range is clamped).  EINTR is
 * retried.  Every SF_XLIVENESS_MS (counted in tk->checked, so neither
 * signals nor short slices put it off) it checks the leader's life; when
 * it is dead (or the flight leaderless) exactly one follower takes over
 * under the lock (PROMOTED), the others get PROGRESS with tk->lead the new
 * leader.  Takes no lock otherwise; preserves errno.  On a ticket that
 * leads: PROMOTED. */
enum sf_xwait sf_xwait(sf_xtable *t, struct sf_xticket *tk,
                       const struct timespec *abs_deadline);

/* The progress published so far (0 when lost). */
uint64_t sf_xprogress(sf_xtable *t, const struct sf_xticket *tk);

/* Follower after DONE: copies the result into buf (cap bytes); returns its
 * length, or -1 when there is none (no result, larger than cap, or the slot
 * was reused: call alone). */
ssize_t sf_xresult(sf_xtable *t, const struct sf_xticket *tk, void *buf,
                   size_t cap);

/* Follower: drops the ticket (after DONE, or to give up); lock-free; sets
 * tk->slot to SF_XSLOTS.  On a ticket that leads, sf_xabandon(). */
void sf_xleave(sf_xtable *t, struct sf_xticket *tk);

/* Followers that joined the flight so far, and how many of them belong to
 * other processes than the leader's (the stats' "crossed" count; the
 * leader of the moment each joined).  0 when the slot was reused. */
unsigned sf_xfollowers(sf_xtable *t, const struct sf_xticket *tk,
                       unsigned *remote);

/* Whether the flight in slot with generation gen still runs or still holds
 * a result someone may read (the slot was not freed or reused since): lets
 * a sweeper tell leftovers of killed processes from files in use. */
bool sf_xflight_current(sf_xtable *t, unsigned slot, unsigned gen);

/* The calling thread left the table's code without returning (a signal
 * handler's siglongjmp out of it: the hooks call this on that way out):
 * if it still holds t's lock, the table is repaired as after a holder's
 * death and the lock released.  Otherwise nothing.  For the jump path
 * only: never while the thread's own table code may still run. */
void sf_xtable_left(sf_xtable *t);

/* ---- tests only ------------------------------------------------------ */

/* Takes and drops the table lock, so a test can die holding it. */
void sf_xtable_lock_for_test(sf_xtable *t);
void sf_xtable_unlock_for_test(sf_xtable *t);

/* How long a caller waits for the table lock before it gives up (join:
 * SF_XROLE_NONE; finish, abandon, notify: nothing published): 1 s, or ms
 * (0: back to the default).  A lock held that long has a holder that is
 * stopped, not dead (the dead one's lock is recovered at once). */
void sf_xtable_lock_bound_for_test(unsigned ms);

/* Calls fn (NULL: none) halfway through claiming a slot (its key half
 * written), halfway through publishing a result (half its words written,
 * or before "no result" is recorded), or right after the result's state
 * word, before the table's bookkeeping: a test kills the process there.
 * With the table lock held, except for a lone leader's finish (no
 * follower attached), which takes no lock.  Process-wide; not thread-safe
 * to change while flights run. */
enum sf_xhook { SF_XHOOK_CLAIM, SF_XHOOK_PUBLISH, SF_XHOOK_PUBLISHED };
void sf_xtable_hook_for_test(void (*fn)(enum sf_xhook where));

#endif
