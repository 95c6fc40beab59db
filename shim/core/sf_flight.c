/* sf_flight.c - the singleflight core: a sharded table of running flights.
 *
 * Locking: each shard has a mutex that guards its chain, membership
 * (joining, leaving before the end, sealing) and nothing else.  No code runs
 * under it but list and counter updates, so a hook never calls out of the
 * shim with a lock held.  Results are published with a release store to the
 * flight's state word and read after an acquire load of it, so that after
 * the wake-up followers read the result without any lock. */
#include "core/sf_flight.h"

#include "core/sf_clock.h"
#include "core/sf_futex.h"
#include "core/sf_leave.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SF_SHARDS 64 /* power of two */

/* The state word: phase in the low two bits, an event count above them.
 * Every publication adds SF_EVENT so that a follower sleeping on an older
 * value is never left asleep by a change it did not see. */
#define SF_PHASE_MASK 3u
#define SF_RUNNING 0u
#define SF_DONE 1u
#define SF_LEADERLESS 2u
#define SF_EVENT 4u

struct sf_shard {
	pthread_mutex_t lock;
	struct sf_flight *head;
} __attribute__((aligned(64)));

struct sf_group {
	struct sf_shard shards[SF_SHARDS];
	struct sf_group *next; /* every group, for the fork handler */
};

struct sf_flight {
	_Atomic uint32_t word; /* futex word: phase | events */
	_Atomic uint32_t refs; /* leader + followers still attached */
	_Atomic uint32_t followers;
	_Atomic uint32_t promotions;
	uint64_t id;            /* sf_flight_id(), set at creation */
	bool sealed;            /* leader's: no longer in the table */
	struct sf_flight *next; /* shard chain, under the shard lock */
	struct sf_shard *shard;
	void *result;
	void (*dtor)(void *);
	void (*user_cleanup)(void *);
	uint64_t hash;
	size_t keylen;
	unsigned char user[SF_USER_SIZE] __attribute__((aligned(16)));
	unsigned char key[];
};

/* ---- fork handling: the child starts with empty groups ---------------- */

static pthread_mutex_t groups_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sf_group *groups;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* Only the forking thread lives on in the child.  Flights that other
 * threads led or waited for will never end there, so the child forgets them
 * all (their memory belonged to threads that do not exist) and re-creates
 * every lock, which may have been held at the moment of the fork.  A flight
 * the forking thread itself takes part in stays valid: unregistering it finds
 * nothing to unlink. */
static void atfork_child(void)
{
	pthread_mutex_init(&groups_lock, NULL);
	for (struct sf_group *g = groups; g; g = g->next) {
		for (int i = 0; i < SF_SHARDS; i++) {
			pthread_mutex_init(&g->shards[i].lock, NULL);
			g->shards[i].head = NULL;
		}
	}
}

static void register_atfork(void)
{
	pthread_atfork(NULL, NULL, atfork_child);
}

sf_group *sf_group_new(void)
{
	pthread_once(&atfork_once, register_atfork);
	sf_group *g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	for (int i = 0; i < SF_SHARDS; i++)
		pthread_mutex_init(&g->shards[i].lock, NULL);
	pthread_mutex_lock(&groups_lock);
	g->next = groups;
	groups = g;
	pthread_mutex_unlock(&groups_lock);
	return g;
}

void sf_group_free(sf_group *g)
{
	if (!g)
		return;
	pthread_mutex_lock(&groups_lock);
	for (struct sf_group **p = &groups; *p; p = &(*p)->next) {
		if (*p == g) {
			*p = g->next;
			break;
		}
	}
	pthread_mutex_unlock(&groups_lock);
	for (int i = 0; i < SF_SHARDS; i++)
		pthread_mutex_destroy(&g->shards[i].lock);
	free(g);
}

/* ---- the table --------------------------------------------------------- */

/* Sixteen bytes a step in two independent lanes (so the multiplies
 * overlap), then a final mix; the shard index takes the high bits.
 * Hashing is on every call's path and keys are tens of bytes.  Not meant to
 * resist chosen keys: the chains it feeds hold only running flights. */
static uint64_t key_hash(const unsigned char *k, size_t n)
{
	const uint64_t m1 = 0x9e3779b97f4a7c15u, m2 = 0xc2b2ae3d27d4eb4fu;
	const unsigned char *end = k + n;
	uint64_t a = n * m1, b = ~n * m2, w1, w2;
	for (; end - k >= 16; k += 16) {
		memcpy(&w1, k, 8);
		memcpy(&w2, k + 8, 8);
		a = (a ^ w1) * m1;
		b = (b ^ w2) * m2;
	}
	if (end - k > 8) {
		memcpy(&w1, k, 8);
		a = (a ^ w1) * m1;
	}
	if (n >= 8) {
		/* The last 8 bytes, overlapping what came before: fixed-size
		 * loads only (a variable-length memcpy is a library call). */
		memcpy(&w2, end - 8, 8);
		b = (b ^ w2) * m2;
	} else {
		for (w2 = 0; k < end; k++)
			w2 = w2 << 8 | *k;
		b = (b ^ w2) * m2;
	}
	uint64_t h = a ^ (b >> 29) ^ (b << 35);
	h ^= h >> 32;
	h *= 0xff51afd7ed558ccdu;
	h ^= h >> 33;
	return h;
}

static struct sf_shard *shard_of(sf_group *g, uint64_t h)
{
	return &g->shards[h >> 58 & (SF_SHARDS - 1)];
}

/* Caller holds the shard lock.  Unlinking a flight that is not in the chain
 * (forgotten, or dropped by the fork handler) does nothing. */
static void unlink_locked(sf_flight *f)
{
	for (sf_flight **p = &f->shard->head; *p; p = &(*p)->next) {
		if (*p == f) {
			*p = f->next;
			f->next = NULL;
			return;
		}
	}
}

/* Most flights end as they began: one caller and a short key.  Each thread
 * keeps the memory of the last such flight it freed for the next one it
 * starts, which saves a malloc and a free on every uncontended call.  The
 * key's destructor frees a thread's spare when the thread exits. */
#define SMALL_KEY 192
static __thread sf_flight *spare __attribute__((tls_model("initial-exec")));
static __thread bool spare_registered
        __attribute__((tls_model("initial-exec")));
static pthread_key_t spare_key;
static pthread_once_t spare_once = PTHREAD_ONCE_INIT;

static void spare_at_thread_exit(void *unused)
{
	(void)unused;
	free(spare);
	spare = NULL;
	spare_registered = false; /* a later destructor may free another */
}

static void make_spare_key(void)
{
	pthread_key_create(&spare_key, spare_at_thread_exit);
}

static sf_flight *flight_alloc(size_t keylen)
{
	if (keylen > SMALL_KEY)
		return malloc(sizeof(sf_flight) + keylen);
	sf_flight *f = spare;
	spare = NULL;
	return f ? f : malloc(sizeof(sf_flight) + SMALL_KEY);
}

static void flight_free(sf_flight *f)
{
	if (f->dtor && f->result)
		f->dtor(f->result);
	if (f->user_cleanup)
		f->user_cleanup(f->user);
	if (f->keylen > SMALL_KEY || spare) {
		free(f);
		return;
	}
	if (!spare_registered) {
		pthread_once(&spare_once, make_spare_key);
		/* Any non-NULL value makes the destructor run. */
		spare_registered = pthread_setspecific(spare_key, &spare) == 0;
		if (!spare_registered) {
			free(f);
			return;
		}
	}
	spare = f;
}

static void unref(sf_flight *f)
{
	if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1)
		flight_free(f);
}

/* Flight serials: each thread hands out ids from a block of 2^32 of its
 * own, so that starting a flight costs no shared atomic; a thread takes a
 * new block (one atomic add) when it starts its first flight or runs out. */
static _Atomic uint64_t id_blocks;
static __thread uint64_t id_block __attribute__((tls_model("initial-exec")));
static __thread uint32_t id_low __attribute__((tls_model("initial-exec")));

static uint64_t next_flight_id(void)
{
	if (__builtin_expect(!id_block || id_low == UINT32_MAX, 0)) {
		id_block = atomic_fetch_add_explicit(&id_blocks, 1,
		                                     memory_order_relaxed) +
		           1;
		id_low = 0;
	}
	return id_block << 32 | ++id_low;
}

static bool try_promote(sf_flight *f, uint32_t w)
{
	uint32_t next = (w & ~SF_PHASE_MASK) + SF_EVENT;
	if (!atomic_compare_exchange_strong_explicit(&f->word, &w, next,
	                                             memory_order_acq_rel,
	                                             memory_order_acquire))
		return false;
	atomic_fetch_add_explicit(&f->promotions, 1, memory_order_relaxed);
	return true;
}

sf_flight *sf_join(sf_group *g, const void *key, size_t keylen, bool *leader)
{
	if (!g || keylen > SF_KEY_MAX)
		return NULL;
	uint64_t h = key_hash(key, keylen);
	struct sf_shard *s = shard_of(g, h);

	pthread_mutex_lock(&s->lock);
	for (sf_flight *f = s->head; f; f = f->next) {
		if (f->hash != h || f->keylen != keylen ||
		    memcmp(f->key, key, keylen) != 0)
			continue;
		atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
		uint32_t w =
		        atomic_load_explicit(&f->word, memory_order_acquire);
		/* Nobody leads it: the newcomer takes it over, unless a woken
		 * follower promoted itself first (hence the CAS). */
		if ((w & SF_PHASE_MASK) == SF_LEADERLESS && try_promote(f, w)) {
			pthread_mutex_unlock(&s->lock);
			*leader = true;
			return f;
		}
		/* seq_cst: pairs with sf_flight_notify(), which skips the
		 * wake-up while nobody follows (see there). */
		atomic_fetch_add_explicit(&f->followers, 1,
		                          memory_order_seq_cst);
		pthread_mutex_unlock(&s->lock);
		*leader = false;
		return f;
	}
	/* Allocating under the lock keeps join atomic; it happens once per
	 * flight, never per follower, and is mostly the thread's spare.  Only
	 * the header and scratch space need zeros, not the key. */
	sf_flight *f = flight_alloc(keylen);
	if (f) {
		/* Field by field: a memset of the whole header compiles to a
		 * slow "rep stos" on this hot path. */
		atomic_init(&f->word, 0);
		atomic_init(&f->refs, 1);
		atomic_init(&f->followers, 0);
		atomic_init(&f->promotions, 0);
		f->id = next_flight_id();
		f->sealed = false;
		f->result = NULL;
		f->dtor = NULL;
		f->user_cleanup = NULL;
		memset(f->user, 0, sizeof(f->user));
		f->shard = s;
		f->hash = h;
		f->keylen = keylen;
		memcpy(f->key, key, keylen);
		f->next = s->head;
		s->head = f;
	}
	pthread_mutex_unlock(&s->lock);
	*leader = true;
	return f;
}

void sf_forget(sf_group *g, const void *key, size_t keylen)
{
	if (!g || keylen > SF_KEY_MAX)
		return;
	uint64_t h = key_hash(key, keylen);
	struct sf_shard *s = shard_of(g, h);
	pthread_mutex_lock(&s->lock);
	for (sf_flight **p = &s->head; *p; p = &(*p)->next) {
		sf_flight *f = *p;
		if (f->hash == h && f->keylen == keylen &&
		    memcmp(f->key, key, keylen) == 0) {
			*p = f->next;
			f->next = NULL;
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
}

unsigned sf_group_followers(sf_group *g, const void *key, size_t keylen)
{
	if (!g || keylen > SF_KEY_MAX)
		return 0;
	uint64_t h = key_hash(key, keylen);
	struct sf_shard *s = shard_of(g, h);
	unsigned n = 0;
	pthread_mutex_lock(&s->lock);
	for (sf_flight *f = s->head; f; f = f->next)
		if (f->hash == h && f->keylen == keylen &&
		    memcmp(f->key, key, keylen) == 0)
			n = atomic_load_explicit(&f->followers,
			                         memory_order_relaxed);
	pthread_mutex_unlock(&s->lock);
	return n;
}

unsigned sf_flight_seal(sf_flight *f)
{
	if (!f->sealed) {
		pthread_mutex_lock(&f->shard->lock);
		unlink_locked(f);
		pthread_mutex_unlock(&f->shard->lock);
		f->sealed = true;
	}
	return atomic_load_explicit(&f->followers, memory_order_relaxed);
}

/* ---- leader side ------------------------------------------------------- */

/* A lone leader publishes many times and nobody is asleep on the word: the
 * wake-up system call is made only when somebody follows.  No wake-up is
 * lost: a follower counts itself (seq_cst) before it first reads the word,
 * and here the event is added before the count is read (seq_cst), so either
 * the follower sees this event or this sees the follower. */
void sf_flight_notify(sf_flight *f)
{
	atomic_fetch_add_explicit(&f->word, SF_EVENT, memory_order_seq_cst);
	if (atomic_load_explicit(&f->followers, memory_order_seq_cst))
		sf_futex_wake_all(&f->word);
}

void sf_flight_finish(sf_flight *f, void *result, void (*dtor)(void *))
{
	unsigned followers = sf_flight_seal(f);
	f->result = result;
	f->dtor = dtor;
	uint32_t w = atomic_load_explicit(&f->word, memory_order_relaxed);
	atomic_store_explicit(&f->word,
	                      ((w & ~SF_PHASE_MASK) + SF_EVENT) | SF_DONE,
	                      memory_order_release);
	/* Sealed: the follower count is final, and without followers nobody
	 * can be asleep on the word. */
	if (followers)
		sf_futex_wake_all(&f->word);
	unref(f);
}

void sf_flight_abandon(sf_flight *f)
{
	struct sf_shard *s = f->shard;
	pthread_mutex_lock(&s->lock);
	if (atomic_load_explicit(&f->refs, memory_order_relaxed) == 1) {
		/* Nobody waits: forget the key so the next caller starts anew. */
		unlink_locked(f);
		pthread_mutex_unlock(&s->lock);
		unref(f);
		return;
	}
	uint32_t w = atomic_load_explicit(&f->word, memory_order_relaxed);
	atomic_store_explicit(&f->word,
	                      ((w & ~SF_PHASE_MASK) + SF_EVENT) | SF_LEADERLESS,
	                      memory_order_release);
	atomic_fetch_sub_explicit(&f->refs, 1, memory_order_relaxed);
	/* Wake under the lock: once it is released the last follower may
	 * leave and free the flight. */
	sf_futex_wake_all(&f->word);
	pthread_mutex_unlock(&s->lock);
}

/* ---- follower side ----------------------------------------------------- */

/* A follower's reference is dropped under the shard lock while the flight
 * is not done, so that the last waiter of a leaderless flight unregisters
 * it (no stranded entry); after DONE the flight is out of the table and an
 * atomic decrement is enough, so followers leaving after the wake-up never
 * meet on a lock. */
void sf_flight_leave(sf_flight *f)
{
	if ((atomic_load_explicit(&f->word, memory_order_acquire) &
	     SF_PHASE_MASK) == SF_DONE) {
		unref(f);
		return;
	}
	struct sf_shard *s = f->shard;
	pthread_mutex_lock(&s->lock);
	if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1) {
		unlink_locked(f);
		pthread_mutex_unlock(&s->lock);
		flight_free(f);
		return;
	}
	pthread_mutex_unlock(&s->lock);
}

/* Waiting is a cancellation point, as the call the follower replaces would
 * have been (getaddrinfo is one).  The raw futex system call is not, so
 * cancellation is made asynchronous around that one instruction sequence,
 * which holds no lock and touches no memory: the way glibc made its own
 * blocking calls cancellable before 2.34.  The cleanup handler is the
 * caller's: sf_do() leaves the flight. */
/* Not instrumented by ASan: a cancellation unwinding out of the system
 * call would leave this frame's poisoned stack behind, which trips ASan's
 * own consistency check later (GCC 12's runtime). */
__attribute__((no_sanitize_address)) static int
wait_cancellable(_Atomic uint32_t *word, uint32_t expected,
                 const struct timespec *abs_deadline)
{
	int oldtype;
	/* NOLINTNEXTLINE(cert-pos47-c): deliberate, see above */
	pthread_setcanceltype(PTHREAD_CANCEL_ASYNCHRONOUS, &oldtype);
	int r = sf_futex_wait(word, expected, abs_deadline);
	pthread_setcanceltype(oldtype, NULL);
	return r;
}

enum sf_wait sf_flight_wait(sf_flight *f, uint32_t *cursor,
                            const struct timespec *abs_deadline)
{
	for (;;) {
		uint32_t w =
		        atomic_load_explicit(&f->word, memory_order_acquire);
		switch (w & SF_PHASE_MASK) {
		case SF_DONE:
			*cursor = w;
			return SF_WAIT_DONE;
		case SF_LEADERLESS:
			if (try_promote(f, w)) {
				*cursor = w + SF_EVENT;
				return SF_WAIT_PROMOTED;
			}
			continue;
		default:
			if (w != *cursor) {
				*cursor = w;
				return SF_WAIT_PROGRESS;
			}
		}
		if (wait_cancellable(&f->word, w, abs_deadline) == ETIMEDOUT &&
		    atomic_load_explicit(&f->word, memory_order_acquire) == w)
			return SF_WAIT_TIMEOUT;
	}
}

void *sf_flight_result(const sf_flight *f)
{
	return f->result;
}

unsigned sf_flight_followers(const sf_flight *f)
{
	return atomic_load_explicit(&f->followers, memory_order_relaxed);
}

unsigned sf_flight_promotions(const sf_flight *f)
{
	return atomic_load_explicit(&f->promotions, memory_order_relaxed);
}

uint64_t sf_flight_id(const sf_flight *f)
{
	return f->id;
}

void *sf_flight_user(sf_flight *f)
{
	return f->user;
}

void sf_flight_set_cleanup(sf_flight *f, void (*fn)(void *user))
{
	f->user_cleanup = fn;
}

const void *sf_flight_key(const sf_flight *f, size_t *keylen)
{
	*keylen = f->keylen;
	return f->key;
}

/* ---- Do ---------------------------------------------------------------- */

struct call_ctx {
	sf_flight *f; /* the flight this caller leads, or NULL */
	const struct sf_do_ops *ops;
	void *arg, *out;
};

/* call() was left without returning: its thread was cancelled, or a
 * longjmp (a signal handler's timeout, a callback) took it out.  The hook
 * undoes its own state, and a leader's flight is handed over at once, so
 * that no follower waits for a leader that will never come back and no
 * later caller joins a flight nobody leads. */
static void call_left(void *p)
{
	struct call_ctx *c = p;
	if (c->ops->left)
		c->ops->left(c->arg);
	if (c->f)
		sf_flight_abandon(c->f);
}

static void call_run(void *p)
{
	struct call_ctx *c = p;
	c->ops->call(c->arg, c->out);
}

/* Every call() sf_do() makes, led or alone, runs guarded: one registration
 * per call covers both the hook's state and the flight. */
static void guarded_call(sf_flight *f, const struct sf_do_ops *ops, void *arg,
                         void *out)
{
	struct call_ctx ctx = { .f = f, .ops = ops, .arg = arg, .out = out };
	sf_leave_guarded(call_run, &ctx, call_left, &ctx);
}

struct follow_ctx {
	sf_flight *f;
	const struct timespec *abs_deadline;
	const struct sf_do_ops *ops;
	void *arg;
	enum sf_wait r;
};

/* A follower left its wait without returning: cancelled, or a signal
 * handler jumped out of the futex wait, which runs with asynchronous
 * cancellation (sf_flight_wait): the thread gets its deferred type back. */
static void follow_left(void *p)
{
	struct follow_ctx *c = p;
	pthread_setcanceltype(PTHREAD_CANCEL_DEFERRED, NULL);
	sf_flight_leave(c->f);
}

/* on_follow is inside too: it may log, and write(2) is a cancellation
 * point. */
static void follow_wait(void *p)
{
	struct follow_ctx *c = p;
	if (c->ops->on_follow)
		c->ops->on_follow(c->arg);
	uint32_t cursor = 0;
	do
		c->r = sf_flight_wait(c->f, &cursor, c->abs_deadline);
	while (c->r == SF_WAIT_PROGRESS);
}

/* Waits until the flight is done, the caller is promoted or the deadline
 * passes.  A follower that leaves the wait without returning leaves the
 * flight. */
static enum sf_wait follow(sf_flight *f, uint64_t wait_ns,
                           const struct sf_do_ops *ops, void *arg)
{
	struct timespec deadline;
	struct follow_ctx ctx = { .f = f, .ops = ops, .arg = arg };
	if (wait_ns) {
		deadline = sf_ns_to_timespec(sf_now_ns() + wait_ns);
		ctx.abs_deadline = &deadline;
	}
	sf_leave_guarded(follow_wait, &ctx, follow_left, &ctx);
	return ctx.r;
}

/* What a follower whose leader published no shared answer does: the
 * leader's result was not to be shared (the rule said so), or building the
 * shared copy failed.  Told apart by this marker result. */
static char not_shared;

enum sf_path sf_do(sf_group *g, const void *key, size_t keylen,
                   const struct sf_do_ops *ops, void *arg, void *out,
                   uint64_t wait_ns, bool retry_errors, struct sf_do_info *info)
{
	bool leader, promoted = false;
	struct sf_do_info dummy;
	if (!info)
		info = &dummy;
	info->shared = false;
	info->followers = 0;
	info->flight = 0;
	sf_flight *f = sf_join(g, key, keylen, &leader);
	if (!f) {
		guarded_call(NULL, ops, arg, out);
		return SF_PATH_ALONE;
	}
	info->flight = f->id;
	while (!leader) {
		enum sf_path path;
		switch (follow(f, wait_ns, ops, arg)) {
		case SF_WAIT_DONE: {
			const void *result = sf_flight_result(f);
			if (result && result != &not_shared &&
			    ops->take(result, out)) {
				sf_flight_leave(f);
				info->shared = true;
				return SF_PATH_FOLLOWER;
			}
			path = result == &not_shared ? SF_PATH_RETRIED
			                             : SF_PATH_FALLBACK;
			break;
		}
		case SF_WAIT_PROMOTED:
			promoted = leader = true;
			continue;
		default: /* SF_WAIT_TIMEOUT */
			path = SF_PATH_EXPIRED;
			break;
		}
		sf_flight_leave(f);
		guarded_call(NULL, ops, arg, out);
		return path;
	}

	guarded_call(f, ops, arg, out);
	enum sf_result r = ops->judge ? ops->judge(out) : SF_RESULT_OK;
	enum sf_share rule = sf_share_rule(r, retry_errors);
	if (rule == SF_SHARE_HANDOVER) {
		/* The answer is this caller's own: it keeps it, and one
		 * follower asks again for the others. */
		sf_flight_abandon(f);
		return promoted ? SF_PATH_PROMOTED : SF_PATH_LEADER;
	}
	/* A promoted caller joined as a follower: it is not its own. */
	unsigned followers = sf_flight_seal(f) - promoted;
	void *result = NULL;
	void (*dtor)(void *) = NULL;
	if (followers && rule == SF_SHARE_NOTHING) {
		result = &not_shared;
	} else if (followers) {
		result = ops->share(out);
		dtor = ops->dtor;
	}
	info->shared = (followers > 0 && result != &not_shared) || promoted;
	info->followers = followers;
	sf_flight_finish(f, result, dtor);
	return promoted ? SF_PATH_PROMOTED : SF_PATH_LEADER;
}
