/* sf_curl_response.c - generations, records and the follower cursor: the
 * whole of the byte-exactness rule (sf_curl_response.h) lives here. */
#include "curl/sf_curl_response.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- generations ------------------------------------------------------- */

/* Replies of one flight, by generation, in the flight's scratch space: the
 * flight holds a reference to each until it is freed, so that a follower
 * reads any of them without a reference of its own.  A flight whose
 * leaders fail more often than this ends for its followers, who then make
 * their own calls. */
#define MAX_GENERATIONS 6

struct generations {
	_Atomic(struct sf_curl_reply *) gen[MAX_GENERATIONS];
	_Atomic unsigned count;
};
_Static_assert(sizeof(struct generations) <= SF_USER_SIZE,
               "flight scratch space too small");

static void release_generations(void *user)
{
	struct generations *g = user;
	unsigned n = atomic_load_explicit(&g->count, memory_order_acquire);
	for (unsigned i = 0; i < n; i++)
		sf_curl_reply_unref(
		        atomic_load_explicit(&g->gen[i], memory_order_relaxed));
}

bool sf_curl_response_publish(sf_flight *f, struct sf_curl_reply *r)
{
	struct generations *g = sf_flight_user(f);
	unsigned n = atomic_load_explicit(&g->count, memory_order_relaxed);
	if (n == MAX_GENERATIONS)
		return false;
	sf_curl_reply_ref(r);
	atomic_store_explicit(&g->gen[n], r, memory_order_relaxed);
	atomic_store_explicit(&g->count, n + 1, memory_order_release);
	sf_flight_set_cleanup(f, release_generations);
	sf_flight_notify(f);
	return true;
}

struct sf_curl_reply *sf_curl_response_newest(sf_flight *f)
{
	struct generations *g = sf_flight_user(f);
	unsigned n = atomic_load_explicit(&g->count, memory_order_acquire);
	return n ? atomic_load_explicit(&g->gen[n - 1], memory_order_relaxed)
	         : NULL;
}

/* ---- records: a type byte, a 32-bit length, the data ------------------- */

#define REC_HEAD 5

int sf_curl_response_record(struct sf_curl_reply *r, enum sf_curl_rec type,
                            const void *data, size_t len)
{
	unsigned char head[REC_HEAD] = { (unsigned char)type };
	uint32_t n = (uint32_t)len;
	if (len > UINT32_MAX)
		return -1;
	memcpy(head + 1, &n, sizeof(n));
	/* Readers take a record only once all of it is published, so a
	 * record cut short by a failed append is never read. */
	if (sf_stream_append(r->stream, head, sizeof(head)) < 0)
		return -1;
	return len ? sf_stream_append(r->stream, data, len) : 0;
}

static bool read_exact(const sf_stream *s, size_t off, void *buf, size_t n)
{
	unsigned char *p = buf;
	while (n) {
		ssize_t k = sf_stream_read(s, off, p, n);
		if (k <= 0)
			return false;
		p += k;
		off += (size_t)k;
		n -= (size_t)k;
	}
	return true;
}

bool sf_curl_response_next(const struct sf_curl_reply *r, size_t *pos,
                           enum sf_curl_rec *type, size_t *data_at, size_t *len)
{
	size_t avail = sf_stream_length(r->stream);
	unsigned char head[REC_HEAD];
	uint32_t n;
	if (avail < *pos || avail - *pos < REC_HEAD ||
	    !read_exact(r->stream, *pos, head, sizeof(head)))
		return false;
	memcpy(&n, head + 1, sizeof(n));
	if (avail - *pos - REC_HEAD < n)
		return false; /* the rest is on its way */
	*type = (enum sf_curl_rec)head[0];
	*data_at = *pos + REC_HEAD;
	*len = n;
	*pos = *data_at + n;
	return true;
}

/* ---- the cursor -------------------------------------------------------- */

void sf_curl_cursor_init(struct sf_curl_cursor *c)
{
	memset(c, 0, sizeof(*c));
}

void sf_curl_cursor_free(struct sf_curl_cursor *c)
{
	sf_curl_reply_unref(c->base);
	c->base = NULL;
}

void sf_curl_cursor_restart(struct sf_curl_cursor *c)
{
	c->seen_h = c->seen_b = 0;
	c->h_pos = c->b_pos = c->b_used = 0;
}

/* Compares n bytes at p with the base's bytes at off, a piece at a time
 * (no allocation: this runs when memory may be short).  Not inlined: its
 * buffer stays off the stack of every delivery. */
__attribute__((noinline)) static bool same_bytes(const sf_stream *s, size_t off,
                                                 const char *p, size_t n)
{
	char buf[1024];
	while (n) {
		size_t k = n < sizeof(buf) ? n : sizeof(buf);
		if (!read_exact(s, off, buf, k) || memcmp(buf, p, k) != 0)
			return false;
		off += k;
		p += k;
		n -= k;
	}
	return true;
}

static bool is_date(const char *line, size_t n)
{
	return n >= 5 && strncasecmp(line, "date:", 5) == 0;
}

/* The next record of type t in the base at or after *pos. */
static bool base_next(struct sf_curl_cursor *c, size_t *pos, enum sf_curl_rec t,
                      size_t *at, size_t *len)
{
	enum sf_curl_rec type;
	while (sf_curl_response_next(c->base, pos, &type, at, len))
		if (type == t)
			return true;
	return false;
}

static long diverge(struct sf_curl_cursor *c)
{
	c->diverged = true;
	return -1;
}

long sf_curl_cursor_header(struct sf_curl_cursor *c, const char *line, size_t n)
{
	if (c->diverged)
		return -1;
	if (c->seen_h < c->hdrs) {
		/* A line the program has: it must be the same line (only
		 * the time of the response may differ). */
		size_t at, len;
		c->seen_h++;
		if (!c->base ||
		    !base_next(c, &c->h_pos, SF_REC_HEADER, &at, &len))
			return diverge(c);
		char first[5];
		bool dates = len >= 5 && is_date(line, n) &&
		             read_exact(c->base->stream, at, first, 5) &&
		             is_date(first, 5);
		if (!dates &&
		    (len != n || !same_bytes(c->base->stream, at, line, n)))
			return diverge(c);
		return (long)n;
	}
	/* A new line: the program must have all of this response's body
	 * that came before it, or the order would differ. */
	if (c->seen_b < c->body)
		return diverge(c);
	return 0;
}

long sf_curl_cursor_body(struct sf_curl_cursor *c, const char *data, size_t n)
{
	if (c->diverged)
		return -1;
	size_t had = c->body > c->seen_b ? c->body - c->seen_b : 0;
	if (had > n)
		had = n;
	for (size_t done = 0; done < had;) {
		size_t at, len;
		size_t pos = c->b_pos;
		if (!c->base || !base_next(c, &pos, SF_REC_BODY, &at, &len))
			return diverge(c);
		if (c->b_used == len) { /* this record is used up */
			c->b_pos = pos;
			c->b_used = 0;
			continue;
		}
		size_t k = len - c->b_used;
		if (k > had - done)
			k = had - done;
		if (!same_bytes(c->base->stream, at + c->b_used, data + done,
		                k))
			return diverge(c);
		c->b_used += k;
		done += k;
	}
	c->seen_b += had;
	if (had < n && c->seen_h < c->hdrs)
		return diverge(c); /* new body before lines the program has */
	return (long)had;
}

void sf_curl_cursor_gave(struct sf_curl_cursor *c, enum sf_curl_rec type,
                         size_t n, struct sf_curl_reply *from)
{
	if (type == SF_REC_HEADER) {
		c->hdrs++;
		c->seen_h++;
	} else {
		c->body += n;
		c->seen_b += n;
	}
	/* The overlap is behind: what the program has is now a prefix of
	 * the response it reads (or of a live transfer, which never needs
	 * comparing again). */
	if (from != c->base) {
		if (from)
			sf_curl_reply_ref(from);
		sf_curl_reply_unref(c->base);
		c->base = from;
	}
}

bool sf_curl_cursor_covered(const struct sf_curl_cursor *c)
{
	return !c->diverged && c->seen_h >= c->hdrs && c->seen_b >= c->body;
}

/* ---- driving a cursor ------------------------------------------------ */

enum sf_curl_fed sf_curl_cursor_feed(struct sf_curl_cursor *c,
                                     enum sf_curl_rec type, const char *data,
                                     size_t n, struct sf_curl_reply *from,
                                     sf_curl_give_fn give, void *ctx)
{
	long had = type == SF_REC_HEADER ? sf_curl_cursor_header(c, data, n)
	                                 : sf_curl_cursor_body(c, data, n);
	if (had < 0)
		return SF_DIVERGED;
	if ((size_t)had == n)
		return SF_FED;
	if (!give(ctx, type, data + had, n - (size_t)had))
		return SF_REFUSED;
	sf_curl_cursor_gave(c, type, n - (size_t)had, from);
	return SF_FED;
}

void sf_curl_reader_take(struct sf_curl_reader *rd, struct sf_curl_cursor *c,
                         struct sf_curl_reply *newest)
{
	if (!newest || newest == rd->gen)
		return;
	rd->gen = newest;
	rd->pos = 0;
	sf_curl_cursor_restart(c);
}

/* Bytes copied at a time out of the spill file.  Kept small: with a
 * hundred followers these buffers are most of the shim's memory. */
#define FILE_PIECE 4096

/* n bytes at off: in place where they are contiguous in memory, else
 * copied into the reader's buffer; NULL when that cannot be done. */
static const char *bytes_at(struct sf_curl_reader *rd, size_t off, size_t n)
{
	size_t k;
	if (!n)
		return "";
	const void *p = sf_stream_peek(rd->gen->stream, off, &k);
	if (p && k >= n)
		return p;
	if (n > rd->bufcap) {
		unsigned char *b = realloc(rd->buf, n);
		if (!b)
			return NULL;
		rd->buf = b;
		rd->bufcap = n;
	}
	return read_exact(rd->gen->stream, off, rd->buf, n)
	               ? (const char *)rd->buf
	               : NULL;
}

enum sf_curl_fed sf_curl_reader_drain(struct sf_curl_reader *rd,
                                      struct sf_curl_cursor *c,
                                      sf_curl_give_fn give, void *ctx)
{
	if (!rd->gen)
		return SF_FED;
	enum sf_curl_rec type;
	size_t at, n, pos = rd->pos;
	while (sf_curl_response_next(rd->gen, &pos, &type, &at, &n)) {
		/* A header line whole; a body record a piece at a time. */
		size_t piece = type == SF_REC_HEADER ? n : FILE_PIECE, off = 0;
		do {
			size_t k = n - off < piece ? n - off : piece;
			const char *data = bytes_at(rd, at + off, k);
			if (!data)
				return SF_UNREADABLE;
			enum sf_curl_fed f = sf_curl_cursor_feed(
			        c, type, data, k, rd->gen, give, ctx);
			if (f != SF_FED)
				return f;
			off += k;
		} while (off < n);
		rd->pos = pos;
	}
	return SF_FED;
}

void sf_curl_reader_free(struct sf_curl_reader *rd)
{
	free(rd->buf);
	rd->buf = NULL;
	rd->bufcap = 0;
}
