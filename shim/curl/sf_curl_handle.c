/* sf_curl_handle.c - the table of known easy handles and their options. */
#include "curl/sf_curl_handle.h"

#include "curl/sf_curl_opts.h"
#include "curl/sf_curl_reply.h"
#include "curl/sf_curl_share.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define SHARDS 64

/* Records survive fork (the child owns copies of the same handles), so the
 * locks are taken around fork and released on both sides, which leaves
 * every chain consistent in the child. */
static struct shard {
	pthread_mutex_t lock;
	struct sf_curl_handle *head;
} shards[SHARDS] = { [0 ... SHARDS - 1] = { PTHREAD_MUTEX_INITIALIZER, NULL } };

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void lock_all(void)
{
	for (int i = 0; i < SHARDS; i++)
		pthread_mutex_lock(&shards[i].lock);
}

static void unlock_all(void)
{
	for (int i = SHARDS - 1; i >= 0; i--)
		pthread_mutex_unlock(&shards[i].lock);
}

static void register_atfork(void)
{
	pthread_atfork(lock_all, unlock_all, unlock_all);
}

static struct shard *shard_of(const void *easy)
{
	uintptr_t x = (uintptr_t)easy;
	x ^= x >> 17;
	x *= 0x9e3779b97f4a7c15u;
	return &shards[(x >> 58) & (SHARDS - 1)];
}

struct sf_curl_handle *sf_curl_handle_find(CURL *easy)
{
	if (!easy)
		return NULL;
	struct shard *s = shard_of(easy);
	pthread_mutex_lock(&s->lock);
	struct sf_curl_handle *r = s->head;
	while (r && r->easy != easy)
		r = r->next;
	pthread_mutex_unlock(&s->lock);
	return r;
}

struct sf_curl_handle *sf_curl_handle_add(CURL *easy,
                                          const struct sf_curl_real *api)
{
	pthread_once(&atfork_once, register_atfork);
	struct sf_curl_handle *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->easy = easy;
	r->api = api;
	sf_curl_method_init(&r->method);
	struct shard *s = shard_of(easy);
	pthread_mutex_lock(&s->lock);
	/* A stale record for a recycled address (a handle freed behind the
	 * shim's back) must not shadow the new one. */
	for (struct sf_curl_handle **p = &s->head; *p; p = &(*p)->next) {
		if ((*p)->easy == easy) {
			struct sf_curl_handle *old = *p;
			*p = old->next;
			sf_curl_handle_clear(old);
			sf_curl_share_easy_detach(old);
			free(old);
			break;
		}
	}
	r->next = s->head;
	s->head = r;
	pthread_mutex_unlock(&s->lock);
	return r;
}

void sf_curl_handle_remove(CURL *easy)
{
	if (!easy)
		return;
	struct shard *s = shard_of(easy);
	struct sf_curl_handle *r = NULL;
	pthread_mutex_lock(&s->lock);
	for (struct sf_curl_handle **p = &s->head; *p; p = &(*p)->next) {
		if ((*p)->easy == easy) {
			r = *p;
			*p = r->next;
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
	if (r) {
		sf_curl_handle_clear(r);
		sf_curl_share_easy_detach(r);
		free(r);
	}
}

/* ---- options ----------------------------------------------------------- */

static void free_value(struct sf_curl_opt *o)
{
	if (o->kind == SF_OPTK_STRING)
		free(o->v.s);
	else if (o->kind == SF_OPTK_BLOB)
		free(o->v.blob.data);
}

/* Deep copy of a value: strings and blobs are owned. */
static int copy_value(unsigned char kind, union sf_curl_optval *dst,
                      union sf_curl_optval src)
{
	*dst = src;
	if (kind == SF_OPTK_STRING && src.s) {
		if (!(dst->s = strdup(src.s)))
			return -1;
	} else if (kind == SF_OPTK_BLOB && src.blob.data) {
		if (!(dst->blob.data = malloc(src.blob.len ? src.blob.len : 1)))
			return -1;
		memcpy(dst->blob.data, src.blob.data, src.blob.len);
	}
	return 0;
}

static size_t position(const struct sf_curl_handle *r, CURLoption id)
{
	size_t lo = 0, hi = r->nopts;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (r->opts[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct sf_curl_opt *sf_curl_handle_get(const struct sf_curl_handle *r,
                                             CURLoption id)
{
	size_t i = position(r, id);
	return i < r->nopts && r->opts[i].id == id ? &r->opts[i] : NULL;
}

bool sf_curl_opt_is_set(const struct sf_curl_opt *o)
{
	switch (o->kind) {
	case SF_OPTK_LONG:
		return o->v.l != 0;
	case SF_OPTK_OFF:
		return o->v.o != 0;
	case SF_OPTK_STRING:
		return o->v.s != NULL;
	case SF_OPTK_BLOB:
		return o->v.blob.data != NULL;
	default:
		return o->v.p != NULL;
	}
}

bool sf_curl_handle_is_set(const struct sf_curl_handle *h, CURLoption id)
{
	const struct sf_curl_opt *o = sf_curl_handle_get(h, id);
	return o && sf_curl_opt_is_set(o);
}

/* Stores one value with its sequence number; false when memory is short
 * (the handle is then marked unrecorded). */
static bool store(struct sf_curl_handle *r, CURLoption id, unsigned char kind,
                  union sf_curl_optval v, uint32_t seq)
{
	union sf_curl_optval copy;
	if (copy_value(kind, &copy, v) < 0) {
		r->unrecorded = true;
		return false;
	}
	size_t i = position(r, id);
	if (i < r->nopts && r->opts[i].id == id) {
		free_value(&r->opts[i]);
		r->opts[i].kind = kind;
		r->opts[i].v = copy;
		r->opts[i].seq = seq;
		return true;
	}
	if (r->nopts == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 16;
		struct sf_curl_opt *n = realloc(r->opts, cap * sizeof(*n));
		if (!n) {
			struct sf_curl_opt tmp = { id, kind, 0, copy };
			free_value(&tmp);
			r->unrecorded = true;
			return false;
		}
		r->opts = n;
		r->cap = cap;
	}
	memmove(&r->opts[i + 1], &r->opts[i],
	        (r->nopts - i) * sizeof(r->opts[0]));
	r->opts[i] = (struct sf_curl_opt){ id, kind, seq, copy };
	r->nopts++;
	return true;
}

void sf_curl_handle_set(struct sf_curl_handle *r, CURLoption id,
                        unsigned char kind, union sf_curl_optval v)
{
	if (!sf_curl_opt_lookup(id)) {
		/* Its argument's meaning is unknown: keep nothing of it. */
		r->unknown = true;
		return;
	}
	/* The method follows every accepted call, even one whose value
	 * could not be stored: a handle marked unrecorded never coalesces,
	 * but its method stays libcurl's. */
	sf_curl_method_apply(&r->method, id, kind == SF_OPTK_LONG ? v.l : 0,
	                     kind == SF_OPTK_LONG ? NULL : v.p);
	/* 2^32 setopt calls on one handle without a reset: from then on
	 * order is unknown, so stop coalescing rather than wrap. */
	if (r->seq == UINT32_MAX) {
		r->unrecorded = true;
		return;
	}
	store(r, id, kind, v, ++r->seq);
}

void sf_curl_handle_forget_reply(struct sf_curl_handle *r)
{
	sf_curl_reply_unref(r->reply);
	r->reply = NULL;
	r->own_answers = false;
	memset(r->hout, 0, sizeof(r->hout));
}

void sf_curl_handle_clear(struct sf_curl_handle *r)
{
	for (size_t i = 0; i < r->nopts; i++)
		free_value(&r->opts[i]);
	free(r->opts);
	r->opts = NULL;
	r->nopts = r->cap = 0;
	r->seq = 0;
	r->unrecorded = false;
	r->unknown = false;
	sf_curl_method_init(&r->method);
	sf_curl_handle_forget_reply(r);
}

void sf_curl_handle_copy_opts(struct sf_curl_handle *dst,
                              const struct sf_curl_handle *src)
{
	/* State, order and values as they are: replaying the values in id
	 * order would change the method. */
	dst->unrecorded = src->unrecorded;
	dst->unknown = src->unknown;
	dst->method = src->method;
	dst->seq = src->seq;
	sf_curl_share_easy_dup(dst, src);
	for (size_t i = 0; i < src->nopts; i++)
		store(dst, src->opts[i].id, src->opts[i].kind, src->opts[i].v,
		      src->opts[i].seq);
}

static long opt_long(const struct sf_curl_handle *r, CURLoption id)
{
	const struct sf_curl_opt *o = sf_curl_handle_get(r, id);
	return o ? o->v.l : 0;
}

/* A pair of options that write one libcurl field: the later setopt wins.
 * libcurl refuses negative seconds (never recorded) and reads the _MS
 * value as unsigned, capped at UINT_MAX. */
static long ms_pair(const struct sf_curl_handle *r, CURLoption secs,
                    CURLoption ms)
{
	const struct sf_curl_opt *s = sf_curl_handle_get(r, secs);
	const struct sf_curl_opt *m = sf_curl_handle_get(r, ms);
	if (s && (!m || s->seq > m->seq))
		return s->v.l * 1000;
	if (!m)
		return 0;
	unsigned long u = (unsigned long)m->v.l;
	return u > UINT_MAX ? (long)UINT_MAX : (long)u;
}

void sf_curl_handle_limits(const struct sf_curl_handle *r,
                           struct sf_curl_limits *out)
{
	out->timeout_ms = ms_pair(r, CURLOPT_TIMEOUT, CURLOPT_TIMEOUT_MS);
	out->connect_timeout_ms =
	        ms_pair(r, CURLOPT_CONNECTTIMEOUT, CURLOPT_CONNECTTIMEOUT_MS);
	out->low_speed_limit = opt_long(r, CURLOPT_LOW_SPEED_LIMIT);
	out->low_speed_time = opt_long(r, CURLOPT_LOW_SPEED_TIME);
}
