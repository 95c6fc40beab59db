/* fuzz_stream.c - the append-only stream that holds shared responses.
 *
 * The input scripts appends (sizes and byte seeds) and reads (offsets and
 * lengths) against a stream with a small spill threshold, so that most runs
 * cross from memory chunks into the spill file.  A plain buffer is the
 * reference: after every append the published length is exact, and every
 * read or peek, at any offset and of any length, returns exactly the bytes
 * appended there; at the end the whole stream is read back at every offset
 * around the chunk and spill boundaries. */
#include "core/sf_stream.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOTAL (512u * 1024u)
/* Where sf_stream.c's memory chunks end (a 4 KiB first chunk, then 64 KiB
 * ones): only to look harder there; the property does not depend on it. */
#define FIRST (4u * 1024u)
#define CHUNK (64u * 1024u)

struct input {
	const uint8_t *p;
	size_t n;
};

static uint8_t take(struct input *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static uint32_t take32(struct input *in)
{
	uint32_t v = take(in);
	v |= (uint32_t)take(in) << 8;
	v |= (uint32_t)take(in) << 16;
	return v;
}

static uint8_t ref[MAX_TOTAL];
static uint8_t scratch[MAX_TOTAL];

static void check_read(const sf_stream *s, size_t off, size_t want, size_t len)
{
	/* A read may return fewer bytes than asked (one chunk at most):
	 * loop like the readers do. */
	size_t got = 0;
	while (got < want) {
		ssize_t r =
		        sf_stream_read(s, off + got, scratch + got, want - got);
		if (r < 0)
			abort();
		if (r == 0)
			break;
		got += (size_t)r;
	}
	size_t expect = off >= len ? 0 : (len - off < want ? len - off : want);
	/* ref + off only when bytes came back: off may lie past the end. */
	if (got != expect || (got && memcmp(scratch, ref + off, got) != 0)) {
		fprintf(stderr, "read at %zu of %zu: got %zu, expected %zu\n",
		        off, want, got, expect);
		abort();
	}
	size_t n = 0;
	const uint8_t *p = sf_stream_peek(s, off, &n);
	if (p && (off >= len || n == 0 || n > len - off ||
	          memcmp(p, ref + off, n) != 0))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	/* 0 .. 2 chunks in memory; 0 means everything spills. */
	size_t spill = take32(&in) % (2 * CHUNK + 1);
	sf_stream *s = sf_stream_new(spill);
	if (!s)
		return 0;
	size_t len = 0;
	while (in.n) {
		uint8_t op = take(&in);
		if (op & 1) {
			size_t n = take32(&in) % (op & 2 ? 70000 : 300);
			if (n > MAX_TOTAL - len)
				n = MAX_TOTAL - len;
			uint32_t x = take32(&in) | 1;
			for (size_t k = 0; k < n; k++) {
				x ^= x
				     << 13; /* xorshift: cheap distinct bytes */
				x ^= x >> 17;
				x ^= x << 5;
				ref[len + k] = (uint8_t)x;
			}
			if (sf_stream_append(s, ref + len, n) != 0)
				abort(); /* /tmp is writable here */
			len += n;
			if (sf_stream_length(s) != len)
				abort();
		} else {
			size_t off = len ? take32(&in) % (len + 2) : 0;
			check_read(s, off, take32(&in) % 100000, len);
		}
	}
	/* Every offset near the edges, then a walk in odd steps. */
	const size_t edges[] = {
		0,
		FIRST,
		FIRST + CHUNK,
		FIRST + 2 * CHUNK,
		CHUNK,
		2 * CHUNK,
		spill,
		(spill + CHUNK - 1) / CHUNK * CHUNK,
	};
	for (size_t e = 0; e < sizeof(edges) / sizeof(edges[0]); e++)
		for (size_t off = edges[e] > 64 ? edges[e] - 64 : 0;
		     off < edges[e] + 64 && off <= len; off++)
			check_read(s, off, 200, len);
	for (size_t off = 0; off < len; off += 4099)
		check_read(s, off, len - off, len);
	sf_stream_free(s);
	return 0;
}
