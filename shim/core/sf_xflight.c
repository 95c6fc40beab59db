/* sf_xflight.c - singleflight across processes, in one shared table.
 *
 * The table is one block of shared memory: a header (the robust lock, a
 * journal, bitmaps and hash hints) and SF_XSLOTS fixed-size slots.  No
 * pointers: slots are found by index.
 *
 * What the lock guards and what it does not:
 *  - under the lock: claiming a slot, joining (follower counts), promotion,
 *    publishing a result, the bitmaps/hints and the journal;
 *  - without it: a follower's sleep and wake-up (the slot's state word, a
 *    futex), reading a published result (the generation is checked after
 *    the copy, seqlock-style), leaving (one compare-and-swap on the word
 *    that packs generation and attached followers), and a leader's notify
 *    and finish while no follower is attached (leads_alone).
 *  So the lone leader pays one uncontended lock/unlock pair (its join) and
 *  no system call, and woken followers never queue on the lock.
 *
 * Dying at any instruction: every change made under the lock that spans
 * more than one word either ends with the write of the slot's state word
 * (so until then readers see the old state), or is announced in the
 * journal first (claiming a slot, publishing a result).  The next locker
 * gets EOWNERDEAD and repair() undoes a half-made claim, turns a half-made
 * publication into a leaderless flight (one follower takes it over; no
 * partial result is ever marked done), and rebuilds the bitmaps and hints
 * from the slots' state words.  Repair is idempotent: if the repairer dies
 * too, the mutex stays inconsistent and the next locker repairs again. */
#include "core/sf_xflight.h"

#include "core/sf_clock.h"
#include "core/sf_futex.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define XMAGIC 0x73667874626c3031ull /* "sfxtbl01" */

/* A slot's state word: the phase in the low two bits, XWAITERS, and an
 * event count above them.  Every change adds XEVENT, so a sleeper never
 * misses one.  Changes are made under the lock, or by a lone leader
 * (leads_alone), except XWAITERS: a follower sets it before it sleeps, and
 * the next change clears it and wakes the word.  So the leader makes the FUTEX_WAKE system call only
 * when someone sleeps, and the bit a killed sleeper leaves costs one
 * needless wake at most. */
#define XPH_MASK 3u
#define XFREE 0u
#define XRUNNING 1u
#define XDONE 2u
#define XLEADERLESS 3u
#define XWAITERS 4u
#define XLOW 7u
#define XEVENT 8u

#define XNORESULT UINT32_MAX
#define XWORDS (SF_XRESULT_MAX / 8)
#define XBITS ((SF_XSLOTS + 63) / 64)

/* The journal's operations. */
#define XOP_NONE 0u
#define XOP_CLAIM 1u
#define XOP_PUBLISH 2u

struct xslot {
	_Atomic uint32_t state;   /* futex word; written last */
	_Atomic uint64_t gen_att; /* generation << 32 | attached followers */
	_Atomic uint64_t progress;
	_Atomic uint64_t lead_start;
	_Atomic int32_t lead_pid;
	_Atomic uint32_t followers; /* joined so far */
	_Atomic uint32_t remote;    /* of them, from another process */
	_Atomic uint32_t resultlen; /* XNORESULT: none */
	uint32_t keylen;            /* under the lock, like key and hash */
	uint64_t hash;
	unsigned char key[SF_XKEY_MAX];
	/* Words, read without the lock while a reused slot may be written:
	 * atomic accesses keep that a checked race, not undefined. */
	_Atomic uint64_t result[XWORDS];
} __attribute__((aligned(64)));

struct sf_xtable {
	/* First: the one member that wants its own cache line. */
	pthread_mutex_t lock __attribute__((aligned(64)));
	/* What the table is, set once by sf_xtable_format (magic last) and
	 * checked by sf_xtable_open. */
	uint64_t magic;
	uint64_t bytes;
	uint32_t layout;
	uint32_t nslots;
	uint32_t ptrsize;
	uint32_t mutexsize;
	uint32_t slotsize;
	/* The rest: under the lock.  The journal says what the lock holder
	 * is doing to which slot; everything else is derived from the slots'
	 * state words and rebuilt by repair(). */
	uint32_t op; /* XOP_* */
	uint32_t op_slot;
	/* The DONE slots in finishing order, oldest first (indices;
	 * SF_XSLOTS ends the list): reusing the oldest costs no scan. */
	uint16_t old_head, old_tail;
	uint64_t clock;       /* finish stamps */
	uint64_t busy[XBITS]; /* RUNNING or LEADERLESS: hint holds the hash */
	uint64_t done[XBITS]; /* DONE: in the list, stamp says when */
	uint64_t hint[SF_XSLOTS];
	uint64_t stamp[SF_XSLOTS];
	uint16_t old_prev[SF_XSLOTS], old_next[SF_XSLOTS];
	struct xslot slots[SF_XSLOTS];
};

static void (*test_hook)(enum sf_xhook where);

/* ---- the table --------------------------------------------------------- */

size_t sf_xtable_bytes(void)
{
	return sizeof(struct sf_xtable);
}

int sf_xtable_format(void *mem, size_t len)
{
	if (!mem || len < sizeof(struct sf_xtable) || (uintptr_t)mem % 64) {
		errno = EINVAL;
		return -1;
	}
	struct sf_xtable *t = mem;
	pthread_mutexattr_t a;
	int r = pthread_mutexattr_init(&a);
	if (!r)
		r = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	if (!r)
		r = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	/* A thread that asks again while it holds the lock (a signal handler
	 * calling into the shim) gets EDEADLK at once, not a wait to the
	 * bound. */
	if (!r)
		r = pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
	if (!r)
		r = pthread_mutex_init(&t->lock, &a);
	pthread_mutexattr_destroy(&a);
	if (r) {
		errno = r;
		return -1;
	}
	t->layout = SF_XLAYOUT;
	t->nslots = SF_XSLOTS;
	t->bytes = sizeof(*t);
	t->ptrsize = sizeof(void *);
	t->mutexsize = sizeof(pthread_mutex_t);
	t->slotsize = sizeof(struct xslot);
	t->old_head = t->old_tail = SF_XSLOTS;
	for (unsigned i = 0; i < SF_XSLOTS; i++)
		atomic_store_explicit(&t->slots[i].resultlen, XNORESULT,
		                      memory_order_relaxed);
	t->magic = XMAGIC;
	return 0;
}

sf_xtable *sf_xtable_open(void *mem, size_t len)
{
	struct sf_xtable *t = mem;
	if (!t || (uintptr_t)mem % 64 || len < sizeof(*t) ||
	    t->magic != XMAGIC || t->layout != SF_XLAYOUT ||
	    t->nslots != SF_XSLOTS || t->bytes != sizeof(*t) ||
	    t->ptrsize != sizeof(void *) ||
	    t->mutexsize != sizeof(pthread_mutex_t) ||
	    t->slotsize != sizeof(struct xslot)) {
		errno = EINVAL;
		return NULL;
	}
	/* The identity's fork handler must be in place before any fork. */
	sf_xowner_self();
	return t;
}

void sf_xtable_close(sf_xtable *t)
{
	(void)t; /* the handle is the mapping: nothing of the process's own */
}

static inline void bit_set(uint64_t *m, unsigned i)
{
	m[i / 64] |= 1ull << (i % 64);
}

static inline void bit_clear(uint64_t *m, unsigned i)
{
	m[i / 64] &= ~(1ull << (i % 64));
}

/* The two halves of gen_att (generation << 32 | attached followers). */
static inline uint32_t att_gen(uint64_t v)
{
	return (uint32_t)(v >> 32);
}

static inline uint32_t att_count(uint64_t v)
{
	return (uint32_t)v;
}

static inline uint32_t gen_of(const struct xslot *s)
{
	return (uint32_t)(atomic_load_explicit(&s->gen_att,
	                                       memory_order_acquire) >>
	                  32);
}

/* Under the lock: a new phase and event in one exchange, which also clears
 * XWAITERS.  Returns whether someone was asleep: the caller wakes the word
 * once it has dropped the lock.  Only a follower's XWAITERS changes the
 * word without the lock, so the exchange loses nothing, and a follower
 * that sets it after the exchange fails its compare-and-swap and sees the
 * new state instead of sleeping. */
static inline bool set_state(struct xslot *s, uint32_t phase, uint32_t *out)
{
	uint32_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
	uint32_t next = ((st & ~XLOW) + XEVENT) | phase;
	uint32_t prev =
	        atomic_exchange_explicit(&s->state, next, memory_order_seq_cst);
	if (out)
		*out = next;
	return prev & XWAITERS;
}

/* The same for a word nobody can be setting XWAITERS on (followers set it
 * only on a RUNNING word, with a compare-and-swap that fails once the word
 * changed): a plain store, cheaper than the exchange on the lone leader's
 * path. */
static inline void set_state_quiet(struct xslot *s, uint32_t phase)
{
	uint32_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
	atomic_store_explicit(&s->state, ((st & ~XLOW) + XEVENT) | phase,
	                      memory_order_release);
}

static inline struct sf_xowner lead_of(const struct xslot *s)
{
	struct sf_xowner o;
	o.pid = atomic_load_explicit(&s->lead_pid, memory_order_relaxed);
	o.start = atomic_load_explicit(&s->lead_start, memory_order_relaxed);
	return o;
}

static inline void set_lead(struct xslot *s, struct sf_xowner o)
{
	atomic_store_explicit(&s->lead_pid, o.pid, memory_order_relaxed);
	atomic_store_explicit(&s->lead_start, o.start, memory_order_relaxed);
}

static inline bool same_owner(struct sf_xowner a, struct sf_xowner b)
{
	return a.pid == b.pid && a.start == b.start;
}

/* Not meant to resist chosen keys: the hint only saves key compares. */
static uint64_t xhash(const unsigned char *k, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15u ^ n, w;
	for (; n >= 8; n -= 8, k += 8) {
		memcpy(&w, k, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdu;
		h ^= h >> 32;
	}
	w = 0;
	if (n)
		memcpy(&w, k, n);
	h = (h ^ w) * 0xc4ceb9fe1a85ec53u;
	h ^= h >> 29;
	return h | 1; /* never 0 */
}

static inline bool bit_test(const uint64_t *m, unsigned i)
{
	return m[i / 64] >> (i % 64) & 1;
}

/* The list of finished slots: append when a flight finishes, unlink when
 * its slot is claimed again. */
static void old_append(struct sf_xtable *t, unsigned i)
{
	t->old_next[i] = SF_XSLOTS;
	t->old_prev[i] = t->old_tail;
	if (t->old_tail < SF_XSLOTS)
		t->old_next[t->old_tail] = (uint16_t)i;
	else
		t->old_head = (uint16_t)i;
	t->old_tail = (uint16_t)i;
}

static void old_unlink(struct sf_xtable *t, unsigned i)
{
	uint16_t p = t->old_prev[i], n = t->old_next[i];
	if (p < SF_XSLOTS)
		t->old_next[p] = n;
	else
		t->old_head = n;
	if (n < SF_XSLOTS)
		t->old_prev[n] = p;
	else
		t->old_tail = p;
}

/* Rebuilds what the header derives from the slots' state words (and the
 * finish stamps, for the order of finished slots). */
static void rebuild_hints(struct sf_xtable *t)
{
	uint16_t order[SF_XSLOTS];
	unsigned ndone = 0;
	memset(t->busy, 0, sizeof(t->busy));
	memset(t->done, 0, sizeof(t->done));
	for (unsigned i = 0; i < SF_XSLOTS; i++) {
		struct xslot *s = &t->slots[i];
		uint32_t ph =
		        atomic_load_explicit(&s->state, memory_order_relaxed) &
		        XPH_MASK;
		t->hint[i] = 0;
		if (ph == XRUNNING || ph == XLEADERLESS) {
			bit_set(t->busy, i);
			t->hint[i] = s->hash;
		} else if (ph == XDONE) {
			bit_set(t->done, i);
			/* Insertion by stamp: 128 entries, after a crash. */
			unsigned j = ndone++;
			for (; j > 0 && t->stamp[order[j - 1]] > t->stamp[i];
			     j--)
				order[j] = order[j - 1];
			order[j] = (uint16_t)i;
		}
	}
	t->old_head = t->old_tail = SF_XSLOTS;
	for (unsigned j = 0; j < ndone; j++)
		old_append(t, order[j]);
}

/* The lock holder died.  Called with the lock held, before
 * pthread_mutex_consistent(). */
static void repair(struct sf_xtable *t)
{
	if (t->op != XOP_NONE && t->op_slot < SF_XSLOTS) {
		struct xslot *s = &t->slots[t->op_slot];
		uint32_t st =
		        atomic_load_explicit(&s->state, memory_order_relaxed);
		if (t->op == XOP_CLAIM) {
			/* Half-claimed: nobody can have joined it (joining
			 * takes the lock).  A new generation makes followers
			 * of the slot's previous flight lose it too. */
			uint64_t g = atomic_load_explicit(&s->gen_att,
			                                  memory_order_relaxed);
			atomic_store_explicit(&s->resultlen, XNORESULT,
			                      memory_order_relaxed);
			atomic_store_explicit(&s->gen_att,
			                      ((g >> 32) + 1) << 32,
			                      memory_order_relaxed);
			if (set_state(s, XFREE, NULL))
				sf_futex_wake_all_shared(&s->state);
		} else if (t->op == XOP_PUBLISH && (st & XPH_MASK) != XDONE) {
			/* Half-published: the result is void, the leader
			 * dead; one follower takes over. */
			atomic_store_explicit(&s->resultlen, XNORESULT,
			                      memory_order_relaxed);
			set_lead(s, (struct sf_xowner){ 0, 0 });
			if (set_state(s, XLEADERLESS, NULL))
				sf_futex_wake_all_shared(&s->state);
		}
	}
	t->op = XOP_NONE;
	rebuild_hints(t);
	/* Anyone asleep re-reads its slot. */
	for (unsigned i = 0; i < SF_XSLOTS; i++)
		if (atomic_load_explicit(&t->slots[i].state,
		                         memory_order_relaxed) &
		    XWAITERS)
			sf_futex_wake_all_shared(&t->slots[i].state);
}

/* How long a caller waits for the table lock before it gives up and makes
 * its call per-process.  The lock is held for microseconds; only a holder
 * that is stopped (SIGSTOP, a debugger) but not dead keeps it longer, and
 * that must not hang every process of the scope. */
#define XLOCK_BOUND_MS 1000u
static unsigned lock_bound_ms = XLOCK_BOUND_MS;

#if defined(__SANITIZE_THREAD__)
/* TSan's pthread_mutex_timedlock interceptor counts only a 0 return as
 * taking the lock (its lock and trylock ones count EOWNERDEAD too): it is
 * told about an owner-died acquisition by hand. */
void __tsan_mutex_pre_lock(void *addr, unsigned flags);
void __tsan_mutex_post_lock(void *addr, unsigned flags, int recursion);
#define XTSAN_TRY_LOCK (1u << 4) /* __tsan_mutex_try_lock */
#define XTSAN_LOCKED_OWNERDEAD(m)                    \
	(__tsan_mutex_pre_lock((m), XTSAN_TRY_LOCK), \
	 __tsan_mutex_post_lock((m), XTSAN_TRY_LOCK, 0))
#else
#define XTSAN_LOCKED_OWNERDEAD(m) ((void)0)
#endif

/* pthread_mutex_timedlock() takes CLOCK_REALTIME: waits in slices of at
 * most 100 ms and counts the bound on the monotonic clock, so that a clock
 * step neither cuts the wait short nor stretches it. */
static int xlock_slow(struct sf_xtable *t)
{
	uint64_t now = sf_now_ns();
	uint64_t end = now + (uint64_t)lock_bound_ms * 1000000u;
	for (;;) {
		uint64_t slice = end - now < 100000000u ? end - now
		                                        : 100000000u;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t ns = (uint64_t)ts.tv_nsec + slice;
		ts.tv_sec += (time_t)(ns / 1000000000u);
		ts.tv_nsec = (long)(ns % 1000000000u);
		int r = pthread_mutex_timedlock(&t->lock, &ts);
		if (r == EOWNERDEAD)
			XTSAN_LOCKED_OWNERDEAD(&t->lock);
		if (r != ETIMEDOUT)
			return r;
		now = sf_now_ns();
		if (now >= end)
			return ETIMEDOUT;
	}
}

/* The table whose lock this thread holds, if any: a thread that a signal
 * handler's siglongjmp took out of the table's code while it held the lock
 * (the alarm() resolver timeout) never comes back to unlock it, and being
 * alive, leaves no owner-died to recover from.  sf_xtable_left() looks
 * here on that way out.  One TLS store per lock and unlock. */
static __thread struct sf_xtable *lock_held
        __attribute__((tls_model("initial-exec")));

static bool xlock(struct sf_xtable *t)
{
	int r = pthread_mutex_trylock(&t->lock);
	if (__builtin_expect(r == 0, 1)) {
		lock_held = t;
		return true;
	}
	if (r == EBUSY)
		r = xlock_slow(t);
	if (r == 0) {
		lock_held = t;
		return true;
	}
	if (r == EOWNERDEAD) {
		repair(t);
		pthread_mutex_consistent(&t->lock);
		lock_held = t;
		return true;
	}
	return false; /* ETIMEDOUT; ENOTRECOVERABLE is never made here */
}

static void xunlock(struct sf_xtable *t)
{
	lock_held = NULL;
	pthread_mutex_unlock(&t->lock);
}

void sf_xtable_left(sf_xtable *t)
{
	if (!t || lock_held != t)
		return;
	/* The code that held it is gone for good, halfway through whatever
	 * it did: exactly the state a holder killed there leaves, which
	 * repair() undoes (journal, then bitmaps and hints). */
	repair(t);
	xunlock(t);
}

/* Writes n bytes as words; the test hook runs halfway.  Release stores,
 * read by get_words' acquire loads (plain moves on x86): a reader that
 * sees one word of a reused slot's new result also sees the new generation
 * stored before it (at the claim, ordered by the lock), so sf_xresult's
 * generation check after its copy catches every torn copy. */
static void put_words(_Atomic uint64_t *dst, const unsigned char *src, size_t n,
                      enum sf_xhook where)
{
	size_t i = 0, half = n / 16 * 8;
	uint64_t w;
	for (; i + 8 <= n; i += 8) {
		if (i == half && test_hook)
			test_hook(where);
		memcpy(&w, src + i, 8);
		atomic_store_explicit(&dst[i / 8], w, memory_order_release);
	}
	if (i < n) {
		if (i == half && test_hook)
			test_hook(where);
		w = 0;
		memcpy(&w, src + i, n - i);
		atomic_store_explicit(&dst[i / 8], w, memory_order_release);
	}
}

static void get_words(unsigned char *dst, _Atomic uint64_t *src, size_t n)
{
	size_t i = 0;
	uint64_t w;
	for (; i + 8 <= n; i += 8) {
		w = atomic_load_explicit(&src[i / 8], memory_order_acquire);
		memcpy(dst + i, &w, 8);
	}
	if (i < n) {
		w = atomic_load_explicit(&src[i / 8], memory_order_acquire);
		memcpy(dst + i, &w, n - i);
	}
}

/* The slot a new flight takes: a free one, else the one that finished
 * longest ago, else one nobody leads any more (leaderless, or its leader
 * died).  -1 when all run.  Under the lock. */
static int pick_slot(struct sf_xtable *t)
{
	for (unsigned w = 0; w < XBITS; w++) {
		uint64_t used = t->busy[w] | t->done[w];
		if (w == XBITS - 1 && SF_XSLOTS % 64)
			used |= ~0ull << (SF_XSLOTS % 64);
		if (~used)
			return (int)(w * 64 + (unsigned)__builtin_ctzll(~used));
	}
	if (t->old_head < SF_XSLOTS)
		return t->old_head;
	/* Rare (the table is full of running flights): look for flights
	 * nobody leads.  A live follower of one gets SF_XWAIT_LOST and calls
	 * alone: never a wrong result. */
	for (unsigned w = 0; w < XBITS; w++)
		for (uint64_t m = t->busy[w]; m; m &= m - 1) {
			unsigned i = w * 64 + (unsigned)__builtin_ctzll(m);
			struct xslot *s = &t->slots[i];
			uint32_t st = atomic_load_explicit(
			        &s->state, memory_order_relaxed);
			struct sf_xowner o = lead_of(s);
			if ((st & XPH_MASK) == XLEADERLESS ||
			    !sf_xowner_alive(&o))
				return (int)i;
		}
	return -1;
}

static int claim(struct sf_xtable *t, const void *key, size_t keylen,
                 uint64_t h, struct sf_xowner me, bool *wake)
{
	int i = pick_slot(t);
	if (i < 0)
		return -1;
	struct xslot *s = &t->slots[i];
	t->op_slot = (uint32_t)i;
	t->op = XOP_CLAIM;
	uint64_t g = atomic_load_explicit(&s->gen_att, memory_order_relaxed);
	/* Free first, then the generation: whoever looks without the lock
	 * (a sweeper, a follower of the slot's previous flight) sees the old
	 * flight gone and no new one until the state word says RUNNING, even
	 * if this process dies halfway.  Only a running flight (taken from a
	 * dead leader) may have sleepers: they wake to SF_XWAIT_LOST; after
	 * this first change nobody can announce a sleep on the word. */
	if ((atomic_load_explicit(&s->state, memory_order_relaxed) &
	     XPH_MASK) == XRUNNING)
		*wake = set_state(s, XFREE, NULL);
	else
		set_state_quiet(s, XFREE);
	atomic_store_explicit(&s->gen_att, ((g >> 32) + 1) << 32,
	                      memory_order_release);
	/* Release: a lock-free reader that sees one of these new values sees
	 * the new generation too (its check after the read then fails). */
	atomic_store_explicit(&s->progress, 0, memory_order_release);
	atomic_store_explicit(&s->followers, 0, memory_order_release);
	atomic_store_explicit(&s->remote, 0, memory_order_release);
	atomic_store_explicit(&s->resultlen, XNORESULT, memory_order_release);
	set_lead(s, me);
	s->hash = h;
	s->keylen = (uint32_t)keylen;
	if (keylen) {
		size_t half = test_hook ? keylen / 2 : keylen;
		memcpy(s->key, key, half);
		if (test_hook)
			test_hook(SF_XHOOK_CLAIM);
		memcpy(s->key + half, (const unsigned char *)key + half,
		       keylen - half);
	} else if (test_hook) {
		test_hook(SF_XHOOK_CLAIM);
	}
	if (bit_test(t->done, (unsigned)i)) {
		bit_clear(t->done, (unsigned)i);
		old_unlink(t, (unsigned)i);
	}
	bit_set(t->busy, (unsigned)i);
	t->hint[i] = h;
	set_state_quiet(s, XRUNNING);
	t->op = XOP_NONE;
	return i;
}

/* The running flight of key, or -1.  On the way it files the flights that
 * a lone leader ended without the lock (finish_alone): their slots join
 * the finished ones, in the order they are found. */
static int find(struct sf_xtable *t, const void *key, size_t keylen, uint64_t h)
{
	int found = -1;
	for (unsigned w = 0; w < XBITS; w++)
		for (uint64_t m = t->busy[w]; m; m &= m - 1) {
			unsigned i = w * 64 + (unsigned)__builtin_ctzll(m);
			struct xslot *s = &t->slots[i];
			uint32_t ph = atomic_load_explicit(
			                      &s->state, memory_order_relaxed) &
			              XPH_MASK;
			if (ph == XDONE || ph == XFREE) {
				bit_clear(t->busy, i);
				t->hint[i] = 0;
				if (ph == XDONE) {
					t->stamp[i] = ++t->clock;
					bit_set(t->done, i);
					old_append(t, i);
				}
			} else if (found < 0 && t->hint[i] == h &&
			           s->keylen == keylen &&
			           (!keylen ||
			            memcmp(s->key, key, keylen) == 0)) {
				found = (int)i;
			}
		}
	return found;
}

static void ticket_none(struct sf_xticket *tk)
{
	tk->slot = SF_XSLOTS;
	tk->gen = 0;
	tk->seen = 0;
	tk->leader = false;
	tk->lead.pid = 0;
	tk->lead.start = 0;
	tk->checked = 0;
}

/* Under the lock: the caller takes over the flight in slot i. */
static uint32_t promote_locked(struct xslot *s, struct sf_xowner me,
                               bool was_follower, bool *wake)
{
	set_lead(s, me);
	if (was_follower) {
		uint64_t v =
		        atomic_load_explicit(&s->gen_att, memory_order_relaxed);
		if (att_count(v))
			atomic_store_explicit(&s->gen_att, v - 1,
			                      memory_order_relaxed);
	}
	uint32_t next;
	*wake = set_state(s, XRUNNING, &next);
	return next;
}

enum sf_xrole sf_xjoin(sf_xtable *t, const void *key, size_t keylen,
                       struct sf_xticket *tk)
{
	if (!tk)
		return SF_XROLE_NONE;
	ticket_none(tk);
	if (!t || (!key && keylen) || keylen > SF_XKEY_MAX)
		return SF_XROLE_NONE;
	struct sf_xowner me = sf_xowner_self();
	uint64_t h = xhash(key, keylen);
	if (!xlock(t))
		return SF_XROLE_NONE;
	enum sf_xrole role;
	bool wake = false;
	int i = find(t, key, keylen, h);
	struct xslot *s = i >= 0 ? &t->slots[i] : NULL;
	if (s) {
		uint32_t st =
		        atomic_load_explicit(&s->state, memory_order_relaxed);
		tk->slot = (uint32_t)i;
		tk->gen = gen_of(s);
		if ((st & XPH_MASK) == XLEADERLESS) {
			/* Nobody leads it: the newcomer does. */
			tk->seen = promote_locked(s, me, false, &wake);
			tk->leader = true;
			tk->lead = me;
			role = SF_XROLE_LEADER;
		} else {
			atomic_fetch_add_explicit(&s->gen_att, 1,
			                          memory_order_relaxed);
			atomic_fetch_add_explicit(&s->followers, 1,
			                          memory_order_release);
			tk->lead = lead_of(s);
			if (tk->lead.pid != me.pid)
				atomic_fetch_add_explicit(&s->remote, 1,
				                          memory_order_release);
			tk->seen = st & ~XWAITERS;
			tk->checked = sf_now_ns();
			role = SF_XROLE_FOLLOWER;
		}
	} else if ((i = claim(t, key, keylen, h, me, &wake)) >= 0) {
		s = &t->slots[i];
		tk->slot = (uint32_t)i;
		tk->gen = gen_of(s);
		tk->seen =
		        atomic_load_explicit(&s->state, memory_order_relaxed) &
		        ~XWAITERS;
		tk->leader = true;
		tk->lead = me;
		role = SF_XROLE_LEADER;
	} else {
		role = SF_XROLE_NONE; /* every slot runs a live flight */
	}
	xunlock(t);
	if (wake) {
		int e = errno;
		sf_futex_wake_all_shared(&s->state);
		errno = e;
	}
	return role;
}

/* Under the lock: whether the caller still leads tk's flight (a leader
 * taken for dead, or whose slot was reclaimed, no longer does). */
static bool leads(struct xslot *s, const struct sf_xticket *tk,
                  struct sf_xowner me)
{
	uint32_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
	return gen_of(s) == tk->gen && (st & XPH_MASK) == XRUNNING &&
	       same_owner(lead_of(s), me);
}

/* The lock could not be had (its holder is stopped): a leader that cannot
 * publish at least lets its followers know it is gone, without the lock,
 * if it still leads: they find it dead at their next check and, unable to
 * take the flight over either, call alone.  Never left waiting on a
 * leader that has quit. */
static void quit_unlocked(struct xslot *s, const struct sf_xticket *tk,
                          struct sf_xowner me)
{
	int32_t pid = me.pid;
	if (gen_of(s) == tk->gen &&
	    atomic_load_explicit(&s->lead_start, memory_order_relaxed) ==
	            me.start)
		atomic_compare_exchange_strong_explicit(&s->lead_pid, &pid, 0,
		                                        memory_order_relaxed,
		                                        memory_order_relaxed);
}

static void wake_slot(struct xslot *s)
{
	int e = errno;
	sf_futex_wake_all_shared(&s->state);
	errno = e;
}

/* Without the lock: whether the caller leads tk's flight and nobody is
 * attached to it.  Followers attach under the lock, and the lock holders
 * leave a running flight's state word, progress and result to its leader
 * (followers only add XWAITERS, once attached), so the lone leader may
 * then write them alone.  A follower that attaches right after this
 * check is served as if it had come a moment later. */
static bool leads_alone(struct xslot *s, const struct sf_xticket *tk,
                        struct sf_xowner me, uint32_t *st)
{
	uint64_t v = atomic_load_explicit(&s->gen_att, memory_order_acquire);
	if (att_gen(v) != tk->gen || att_count(v))
		return false;
	*st = atomic_load_explicit(&s->state, memory_order_acquire);
	return (*st & XPH_MASK) == XRUNNING && same_owner(lead_of(s), me);
}

static void store_progress(struct xslot *s, uint64_t progress)
{
	if (progress > atomic_load_explicit(&s->progress, memory_order_relaxed))
		atomic_store_explicit(&s->progress, progress,
		                      memory_order_release);
}

void sf_xnotify(sf_xtable *t, struct sf_xticket *tk, uint64_t progress)
{
	if (!t || !tk || !tk->leader || tk->slot >= SF_XSLOTS)
		return;
	struct xslot *s = &t->slots[tk->slot];
	struct sf_xowner me = sf_xowner_self();
	uint32_t st;
	/* Nobody to tell: the progress is stored for whoever joins (it
	 * reads it with sf_xprogress), with no event and no lock. */
	if (leads_alone(s, tk, me, &st)) {
		store_progress(s, progress);
		return;
	}
	if (!xlock(t))
		return;
	bool wake = false;
	if (leads(s, tk, me)) {
		store_progress(s, progress);
		wake = set_state(s, XRUNNING, NULL);
	}
	xunlock(t);
	if (wake)
		wake_slot(s);
}

/* The lone leader's end, without the lock (see leads_alone): no result to
 * write, nobody to wake.  The next sf_xjoin() files the slot among the
 * finished ones (find).  A follower that attaches between the check and
 * the state word gets DONE without a result and calls alone.  false: take
 * the locked path. */
static bool finish_alone(struct xslot *s, const struct sf_xticket *tk,
                         struct sf_xowner me)
{
	uint32_t st;
	if (!leads_alone(s, tk, me, &st))
		return false;
	atomic_store_explicit(&s->resultlen, XNORESULT, memory_order_release);
	if (test_hook)
		test_hook(SF_XHOOK_PUBLISH);
	/* Exchanged: the event count is this leader's alone, but a follower
	 * that attached meanwhile may have set XWAITERS. */
	uint32_t prev = atomic_exchange_explicit(
	        &s->state, ((st & ~XLOW) + XEVENT) | XDONE,
	        memory_order_seq_cst);
	if (test_hook)
		test_hook(SF_XHOOK_PUBLISHED);
	if (prev & XWAITERS)
		wake_slot(s);
	return true;
}

/* A leader ends its lead (sf_xfinish, sf_xabandon): its slot, NULL when
 * tk does not lead.  The ticket stops leading whatever follows. */
static struct xslot *lead_ending(sf_xtable *t, struct sf_xticket *tk,
                                 struct sf_xowner *me)
{
	if (!t || !tk || !tk->leader || tk->slot >= SF_XSLOTS)
		return NULL;
	tk->leader = false;
	*me = sf_xowner_self();
	return &t->slots[tk->slot];
}

/* The lock for a leader's end; without it, the leader quits unlocked (its
 * followers find it gone). */
static bool lead_lock(sf_xtable *t, struct xslot *s,
                      const struct sf_xticket *tk, struct sf_xowner me)
{
	if (xlock(t))
		return true;
	quit_unlocked(s, tk, me);
	return false;
}

static void unlock_wake(sf_xtable *t, struct xslot *s, bool wake)
{
	xunlock(t);
	if (wake)
		wake_slot(s);
}

void sf_xfinish(sf_xtable *t, struct sf_xticket *tk, const void *result,
                size_t len)
{
	struct sf_xowner me;
	struct xslot *s = lead_ending(t, tk, &me);
	if (!s || finish_alone(s, tk, me) || !lead_lock(t, s, tk, me))
		return;
	bool wake = false;
	if (leads(s, tk, me)) {
		unsigned i = tk->slot;
		/* Followers attach under the lock: with none attached, nobody
		 * will read a result, and nobody sleeps (a bit left by one
		 * that has left may go): the lone leader copies nothing and
		 * exchanges nothing. */
		bool alone = !att_count(atomic_load_explicit(
		        &s->gen_att, memory_order_relaxed));
		t->op_slot = i;
		t->op = XOP_PUBLISH;
		if (result && len <= SF_XRESULT_MAX && !alone) {
			put_words(s->result, result, len, SF_XHOOK_PUBLISH);
			atomic_store_explicit(&s->resultlen, (uint32_t)len,
			                      memory_order_release);
		} else {
			if (test_hook)
				test_hook(SF_XHOOK_PUBLISH);
			atomic_store_explicit(&s->resultlen, XNORESULT,
			                      memory_order_release);
		}
		t->stamp[i] = ++t->clock;
		if (alone)
			set_state_quiet(s, XDONE);
		else
			wake = set_state(s, XDONE, NULL);
		if (test_hook)
			test_hook(SF_XHOOK_PUBLISHED);
		bit_clear(t->busy, i);
		bit_set(t->done, i);
		old_append(t, i);
		t->hint[i] = 0;
		t->op = XOP_NONE;
	}
	unlock_wake(t, s, wake);
}

void sf_xabandon(sf_xtable *t, struct sf_xticket *tk)
{
	struct sf_xowner me;
	struct xslot *s = lead_ending(t, tk, &me);
	if (!s || !lead_lock(t, s, tk, me))
		return;
	bool wake = false;
	if (leads(s, tk, me)) {
		unsigned i = tk->slot;
		uint64_t v =
		        atomic_load_explicit(&s->gen_att, memory_order_relaxed);
		if (!att_count(v)) {
			/* Nobody follows: the next caller starts anew. */
			wake = set_state(s, XFREE, NULL);
			bit_clear(t->busy, i);
			t->hint[i] = 0;
		} else {
			set_lead(s, (struct sf_xowner){ 0, 0 });
			wake = set_state(s, XLEADERLESS, NULL);
		}
	}
	unlock_wake(t, s, wake);
}

enum take { TAKE_AGAIN = -1 };

/* A follower found its leader gone (dead identity `dead`, or none): takes
 * the flight over unless another did first. */
static int take_over(struct sf_xtable *t, struct sf_xticket *tk,
                     struct sf_xowner dead)
{
	struct xslot *s = &t->slots[tk->slot];
	struct sf_xowner me = sf_xowner_self();
	if (!xlock(t))
		return SF_XWAIT_LOST;
	uint32_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
	uint32_t ph = st & XPH_MASK;
	if (gen_of(s) != tk->gen || ph == XFREE) {
		xunlock(t);
		return SF_XWAIT_LOST;
	}
	if (ph == XLEADERLESS ||
	    (ph == XRUNNING && same_owner(lead_of(s), dead))) {
		bool wake;
		tk->seen = promote_locked(s, me, true, &wake);
		xunlock(t);
		tk->leader = true;
		tk->lead = me;
		if (wake)
			wake_slot(s);
		return SF_XWAIT_PROMOTED;
	}
	xunlock(t);
	return TAKE_AGAIN; /* done, or someone else leads now */
}

/* A CLOCK_MONOTONIC deadline in ns: none is UINT64_MAX; one out of range
 * is clamped, never wrapped around. */
static uint64_t deadline_ns(const struct timespec *ts)
{
	if (!ts)
		return UINT64_MAX;
	if (ts->tv_sec < 0)
		return 0;
	if ((uint64_t)ts->tv_sec >= UINT64_MAX / 1000000000u - 1)
		return UINT64_MAX;
	uint64_t ns = ts->tv_nsec < 0 ? 0 : (uint64_t)ts->tv_nsec;
	if (ns > 999999999u)
		ns = 999999999u;
	return (uint64_t)ts->tv_sec * 1000000000u + ns;
}

enum sf_xwait sf_xwait(sf_xtable *t, struct sf_xticket *tk,
                       const struct timespec *abs_deadline)
{
	if (!t || !tk || tk->slot >= SF_XSLOTS)
		return SF_XWAIT_LOST;
	if (tk->leader)
		return SF_XWAIT_PROMOTED;
	struct xslot *s = &t->slots[tk->slot];
	uint64_t deadline = deadline_ns(abs_deadline);
	int e = errno;
	const uint64_t period = (uint64_t)SF_XLIVENESS_MS * 1000000u;
	uint64_t now = sf_now_ns();
	int r;
	for (;;) {
		uint32_t st =
		        atomic_load_explicit(&s->state, memory_order_acquire);
		uint32_t ph = st & XPH_MASK;
		if (gen_of(s) != tk->gen || ph == XFREE) {
			r = SF_XWAIT_LOST;
			break;
		}
		if (ph == XDONE) {
			tk->seen = st & ~XWAITERS;
			r = SF_XWAIT_DONE;
			break;
		}
		/* The leader's life is checked once a period, counted in the
		 * ticket: neither signals (EINTR) nor a caller that waits in
		 * short slices put the check off. */
		struct sf_xowner lead = lead_of(s);
		bool dead = false;
		if (ph == XRUNNING && now - tk->checked >= period) {
			tk->checked = now;
			dead = !sf_xowner_alive(&lead);
		}
		if (ph == XLEADERLESS || dead) {
			r = take_over(t, tk, lead);
			if (r != TAKE_AGAIN)
				break;
			now = sf_now_ns();
			continue;
		}
		if ((st & ~XWAITERS) != tk->seen) {
			tk->seen = st & ~XWAITERS;
			tk->lead = lead;
			r = SF_XWAIT_PROGRESS;
			break;
		}
		if (now >= deadline) {
			r = SF_XWAIT_TIMEOUT;
			break;
		}
		uint64_t until = tk->checked + period;
		if (until > deadline)
			until = deadline;
		struct timespec ts = sf_ns_to_timespec(until);
		/* The sleep is announced in the word itself (see set_state):
		 * if a change came first, the compare-and-swap fails and the
		 * loop looks at it. */
		if (!(st & XWAITERS)) {
			if (!atomic_compare_exchange_strong_explicit(
			            &s->state, &st, st | XWAITERS,
			            memory_order_seq_cst,
			            memory_order_relaxed)) {
				now = sf_now_ns();
				continue;
			}
			st |= XWAITERS;
		}
		sf_futex_wait_shared(&s->state, st, &ts);
		now = sf_now_ns();
	}
	errno = e;
	return (enum sf_xwait)r;
}

uint64_t sf_xprogress(sf_xtable *t, const struct sf_xticket *tk)
{
	if (!t || !tk || tk->slot >= SF_XSLOTS)
		return 0;
	struct xslot *s = &t->slots[tk->slot];
	uint64_t p = atomic_load_explicit(&s->progress, memory_order_acquire);
	return gen_of(s) == tk->gen ? p : 0;
}

ssize_t sf_xresult(sf_xtable *t, const struct sf_xticket *tk, void *buf,
                   size_t cap)
{
	if (!t || !tk || tk->slot >= SF_XSLOTS)
		return -1;
	struct xslot *s = &t->slots[tk->slot];
	uint32_t st = atomic_load_explicit(&s->state, memory_order_acquire);
	if ((st & XPH_MASK) != XDONE || gen_of(s) != tk->gen)
		return -1;
	uint32_t len =
	        atomic_load_explicit(&s->resultlen, memory_order_acquire);
	if (len == XNORESULT || len > SF_XRESULT_MAX || len > cap ||
	    (!buf && len))
		return -1;
	get_words(buf, s->result, len);
	/* Seqlock check: if the slot was reused while copying, the copy may
	 * hold another flight's bytes (see put_words). */
	if (gen_of(s) != tk->gen)
		return -1;
	return (ssize_t)len;
}

void sf_xleave(sf_xtable *t, struct sf_xticket *tk)
{
	if (!t || !tk || tk->slot >= SF_XSLOTS)
		return;
	if (tk->leader) {
		sf_xabandon(t, tk);
		return;
	}
	struct xslot *s = &t->slots[tk->slot];
	uint64_t v = atomic_load_explicit(&s->gen_att, memory_order_relaxed);
	while (att_gen(v) == tk->gen && att_count(v) &&
	       !atomic_compare_exchange_weak_explicit(&s->gen_att, &v, v - 1,
	                                              memory_order_relaxed,
	                                              memory_order_relaxed))
		;
	tk->slot = SF_XSLOTS;
}

unsigned sf_xfollowers(sf_xtable *t, const struct sf_xticket *tk,
                       unsigned *remote)
{
	unsigned n = 0, r = 0;
	if (t && tk && tk->slot < SF_XSLOTS) {
		struct xslot *s = &t->slots[tk->slot];
		n = atomic_load_explicit(&s->followers, memory_order_acquire);
		r = atomic_load_explicit(&s->remote, memory_order_acquire);
		if (gen_of(s) != tk->gen)
			n = r = 0;
	}
	if (remote)
		*remote = r;
	return n;
}

bool sf_xflight_current(sf_xtable *t, unsigned slot, unsigned gen)
{
	if (!t || slot >= SF_XSLOTS)
		return false;
	struct xslot *s = &t->slots[slot];
	uint32_t st = atomic_load_explicit(&s->state, memory_order_acquire);
	return (st & XPH_MASK) != XFREE && gen_of(s) == gen;
}

void sf_xtable_lock_for_test(sf_xtable *t)
{
	xlock(t);
}

void sf_xtable_unlock_for_test(sf_xtable *t)
{
	xunlock(t);
}

void sf_xtable_lock_bound_for_test(unsigned ms)
{
	lock_bound_ms = ms ? ms : XLOCK_BOUND_MS;
}

void sf_xtable_hook_for_test(void (*fn)(enum sf_xhook where))
{
	test_hook = fn;
}
