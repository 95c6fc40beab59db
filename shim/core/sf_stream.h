/* sf_stream.h - an append-only byte log with one writer and many readers.
 *
 * A streaming leader appends; followers read what is published so far,
 * without locks, while the leader goes on.  The first spill_bytes live in
 * memory; the rest goes to an unlinked temporary file, so a large response
 * is held once, and mostly outside the heap, however many read it.  Knows
 * nothing of what the bytes mean. */
#ifndef SF_STREAM_H
#define SF_STREAM_H

#include <stddef.h>
#include <sys/types.h>

typedef struct sf_stream sf_stream;

sf_stream *sf_stream_new(size_t spill_bytes);
void sf_stream_free(sf_stream *s);

/* Writer only: appends n bytes and publishes them.  Returns 0, or -1 with
 * errno set (no memory, no temporary file); the stream is then unusable
 * for further appends but what was published stays readable. */
int sf_stream_append(sf_stream *s, const void *data, size_t n);

/* Readers: bytes published so far. */
size_t sf_stream_length(const sf_stream *s);

/* Copies up to n published bytes from offset off into buf; returns how many
 * (0 at the end of what is published), or -1 on a read error. */
ssize_t sf_stream_read(const sf_stream *s, size_t off, void *buf, size_t n);

/* Readers: a pointer to published bytes at off that are held in memory,
 * with *n set to how many are contiguous there; NULL when off lies in the
 * spill file or is not published yet.  Lets readers deliver without
 * copying. */
const void *sf_stream_peek(const sf_stream *s, size_t off, size_t *n);

#endif
