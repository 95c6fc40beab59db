/* sf_json.h - building JSON text without stdio or surprises.
 *
 * A writer appends to a caller's buffer.  With an fd it flushes the buffer
 * there whenever it fills (large documents: the trace); without one the
 * buffer is the whole document (one write(2) later: the JSON stats line),
 * and `full` tells that something did not fit. */
#ifndef SF_JSON_H
#define SF_JSON_H

#include <stdbool.h>
#include <stddef.h>

struct sf_json {
	char *buf;
	size_t len, cap;
	int fd;      /* -1: no flushing */
	bool full;   /* (no fd) text was dropped for lack of room */
	bool failed; /* (fd) a write failed */
};

void sf_json_init(struct sf_json *j, char *buf, size_t cap, int fd);
void sf_json_raw(struct sf_json *j, const char *s, size_t n);
void sf_json_puts(struct sf_json *j, const char *s);
void sf_json_printf(struct sf_json *j, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
/* s as a JSON string, quotes included: '"', '\\' and control characters
 * escaped, and every byte outside ASCII written as \u00XX, so that the
 * output is valid (ASCII) JSON whatever bytes s holds.  NULL is null. */
void sf_json_str(struct sf_json *j, const char *s);
/* Writes what is buffered (with an fd); false if any write failed. */
bool sf_json_flush(struct sf_json *j);

#endif
