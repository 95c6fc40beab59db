/* sf_stream.c - memory chunks first, then an unlinked temporary file.
 *
 * Publication is one release store of the length after the bytes are in
 * place (memcpy into a chunk, or a completed write(2) to the file); readers
 * load it with acquire and only touch bytes below it.  The chunk table is
 * sized once for spill_bytes, so it never moves under a reader.  The first
 * chunk is small: most streams are short (a header block, a small body),
 * and a 64 KiB allocation for each would cost more than the copy. */
#include "core/sf_stream.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIRST ((size_t)4 * 1024)  /* chunk 0 */
#define CHUNK ((size_t)64 * 1024) /* every later chunk */

/* Chunk i holds [start_of(i), start_of(i) + size_of(i)). */
static size_t start_of(size_t i)
{
	return i ? FIRST + (i - 1) * CHUNK : 0;
}

static size_t size_of(size_t i)
{
	return i ? CHUNK : FIRST;
}

static size_t chunk_of(size_t off)
{
	return off < FIRST ? 0 : 1 + (off - FIRST) / CHUNK;
}

struct sf_stream {
	_Atomic size_t len; /* published bytes */
	size_t mem_cap;     /* bytes kept in memory: whole chunks */
	size_t nchunks;
	int fd;     /* spill file, -1 until needed */
	int broken; /* writer only */
	unsigned char *chunk[];
};

sf_stream *sf_stream_new(size_t spill_bytes)
{
	size_t nchunks =
	        !spill_bytes ? 0
	        : spill_bytes <= FIRST
	                ? 1
	                : 1 + (spill_bytes - FIRST + CHUNK - 1) / CHUNK;
	sf_stream *s = calloc(1, sizeof(*s) + nchunks * sizeof(s->chunk[0]));
	if (!s)
		return NULL;
	s->nchunks = nchunks;
	s->mem_cap = start_of(nchunks);
	s->fd = -1;
	return s;
}

void sf_stream_free(sf_stream *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->nchunks; i++)
		free(s->chunk[i]);
	if (s->fd >= 0)
		close(s->fd);
	free(s);
}

/* O_TMPFILE never has a name; where the file system lacks it, a named file
 * is unlinked at once.  O_CLOEXEC: a program that forks and execs must not
 * inherit it. */
static int open_spill(void)
{
	const char *dir = secure_getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	char path[4096];
	int n = snprintf(path, sizeof(path), "%s/sfshim-XXXXXX", dir);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -1;
	fd = mkostemp(path, O_CLOEXEC);
	if (fd >= 0)
		unlink(path);
	return fd;
}

static int write_all(int fd, const unsigned char *p, size_t n, off_t off)
{
	while (n) {
		ssize_t w = pwrite(fd, p, n, off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

int sf_stream_append(sf_stream *s, const void *data, size_t n)
{
	const unsigned char *p = data;
	size_t len = atomic_load_explicit(&s->len, memory_order_relaxed);
	if (s->broken) {
		errno = EIO;
		return -1;
	}
	while (n && len < s->mem_cap) {
		size_t i = chunk_of(len), at = len - start_of(i);
		if (!s->chunk[i] && !(s->chunk[i] = malloc(size_of(i))))
			goto fail;
		size_t k = size_of(i) - at < n ? size_of(i) - at : n;
		memcpy(s->chunk[i] + at, p, k);
		p += k;
		n -= k;
		len += k;
		/* Publish chunk by chunk: readers need not wait for the rest. */
		atomic_store_explicit(&s->len, len, memory_order_release);
	}
	if (n) {
		if (s->fd < 0 && (s->fd = open_spill()) < 0)
			goto fail;
		if (write_all(s->fd, p, n, (off_t)(len - s->mem_cap)) < 0)
			goto fail;
		atomic_store_explicit(&s->len, len + n, memory_order_release);
	}
	return 0;
fail:
	s->broken = 1;
	return -1;
}

size_t sf_stream_length(const sf_stream *s)
{
	return atomic_load_explicit(&s->len, memory_order_acquire);
}

ssize_t sf_stream_read(const sf_stream *s, size_t off, void *buf, size_t n)
{
	size_t len = sf_stream_length(s);
	if (off >= len || !n)
		return 0;
	if (n > len - off)
		n = len - off;
	if (off < s->mem_cap) {
		size_t i = chunk_of(off), at = off - start_of(i);
		size_t k = size_of(i) - at < n ? size_of(i) - at : n;
		memcpy(buf, s->chunk[i] + at, k);
		return (ssize_t)k;
	}
	for (;;) {
		ssize_t r = pread(s->fd, buf, n, (off_t)(off - s->mem_cap));
		if (r >= 0 || errno != EINTR)
			return r;
	}
}

const void *sf_stream_peek(const sf_stream *s, size_t off, size_t *n)
{
	size_t len = sf_stream_length(s);
	if (off >= len || off >= s->mem_cap)
		return NULL;
	size_t i = chunk_of(off), at = off - start_of(i), k = size_of(i) - at;
	if (k > len - off)
		k = len - off;
	*n = k;
	return s->chunk[i] + at;
}
