/* sf_curl_xfile.h - a response in a file of the scope directory, for
 * followers in other processes (sf_curl_remote.c drives it).
 *
 * The records are those of an in-process generation (sf_curl_response.h:
 * a type byte, a 32-bit length, the data): header lines and body pieces as
 * the leader's libcurl delivered them, then the final facts a follower's
 * handle answers from (result code and error text, getinfo answers, the
 * header API's list), then an end record.  The file starts with a header
 * naming its epoch: the leader's number within the flight (a leader that
 * took over from a dead one writes epoch + 1 under the same name), so a
 * reader always knows which response it reads.
 *
 * The writer is the leader alone; a record is written whole before the
 * byte count covering it is published (sf_xnotify), and readers read only
 * up to the published count, so they never see a record cut short.  No
 * record is trusted beyond its bounds: a reader checks every length
 * against what was published and what it can hold. */
#ifndef SF_CURL_XFILE_H
#define SF_CURL_XFILE_H

#include "curl/sf_curl_reply.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SF_XFILE_HEAD 16 /* magic, version, epoch */

/* Record types beyond SF_REC_HEADER ('H') and SF_REC_BODY ('B'). */
enum {
	SF_XREC_CODE = 'C', /* i32 code, u8 retry, error text */
	SF_XREC_INFO = 'I', /* u8 type, u8 number, the value */
	SF_XREC_HDR = 'X',  /* u32 origin, i32 request, name NUL value */
	SF_XREC_REQUESTS = 'R' /* i32 requests, u8 header_api */,
	SF_XREC_END = 'E', /* nothing follows */
};

struct sf_xfile_writer {
	int fd; /* -1: none */
	uint64_t len;
	bool failed; /* a write failed: nothing more is published */
};

/* Creates name in dirfd exclusively (0600, never through a symlink) and
 * writes its header.  0, or -1 with errno (EEXIST when it exists). */
int sf_xfile_create(struct sf_xfile_writer *w, int dirfd, const char *name,
                    uint32_t epoch);

/* Appends one record; -1 (w->failed) when it could not be written whole. */
int sf_xfile_put(struct sf_xfile_writer *w, unsigned char type,
                 const void *data, size_t len);

/* Appends the final records: code, retry and error text, then the
 * snapshot's getinfo answers and header list (snap may be NULL: no
 * answers), then the end record. */
int sf_xfile_put_final(struct sf_xfile_writer *w, CURLcode code,
                       const char *errmsg, bool retry,
                       const struct sf_curl_reply *snap);

void sf_xfile_close(struct sf_xfile_writer *w);

struct sf_xfile_reader {
	int fd; /* -1: not open */
	uint32_t epoch;
	uint64_t pos; /* the next record */
	unsigned char *buf;
	size_t cap;
};

void sf_xfile_reader_init(struct sf_xfile_reader *r);

/* Opens name (read-only, no symlink) and reads its header.  1: open;
 * 0: not there yet (no file, or its header not written yet: try later);
 * -1: unreadable or not a response file. */
int sf_xfile_open(struct sf_xfile_reader *r, int dirfd, const char *name);

/* The next record wholly within the first avail bytes of the file: 1 with
 * *type, *data (valid until the next call) and *len; 0 when none is
 * published yet; -1 on a read error or a malformed record. */
int sf_xfile_next(struct sf_xfile_reader *r, uint64_t avail,
                  unsigned char *type, const unsigned char **data, size_t *len);

void sf_xfile_reader_close(struct sf_xfile_reader *r);

/* Applies a final record to r (code, errmsg, retry, info, hdrs,
 * requests, header_api).  0, or -1 when malformed or memory is short. */
int sf_xfile_apply_final(struct sf_curl_reply *r, unsigned char type,
                         const unsigned char *data, size_t len);

#endif
