/* sf_curl_xfile.h - a flight's response in a file of the scope directory,
 * for followers in other processes (sf_curl_remote.c drives it).
 *
 * One file per flight of the scope's table, named after its slot and
 * generation.  It starts with a header that every process holding the file
 * maps (MAP_SHARED), then records, appended by one leader at a time:
 * the records of an in-process generation (sf_curl_response.h: a type
 * byte, a 32-bit length, the data): header lines and body pieces as the
 * leader's libcurl delivered them, then the final facts a follower's handle
 * answers from (result code and error text, getinfo answers, the header
 * API's list), then an end record.
 *
 * Leaders come in epochs: a follower that takes over from a dead (or
 * failed) leader appends its own response after whatever its predecessor
 * wrote, from the start of a new epoch whose offset the header publishes;
 * readers start the new epoch from there and compare (sf_curl_response.h).
 * A record is written whole before the byte count covering it is published
 * (sf_xnotify), and readers read only up to the published count: a leader
 * killed halfway through a record leaves bytes nobody reads.  No record is
 * trusted beyond its bounds.
 *
 * The header also counts the processes done with the file's name: a
 * follower is counted once it holds the file open, or when it leaves
 * without having opened it.  The file is unlinked as soon as the flight is
 * finished and every follower is counted (by whichever of the leader and
 * the followers sees that last): nothing is left behind, and the bytes stay
 * readable through the descriptors held. */
#ifndef SF_CURL_XFILE_H
#define SF_CURL_XFILE_H

#include "core/sf_xflight.h"
#include "curl/sf_curl_reply.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SF_XFILE_HEAD 64
/* A published position: epoch << SF_XFILE_EPOCH_SHIFT | offset. */
#define SF_XFILE_EPOCH_SHIFT 40
#define SF_XFILE_OFF_MASK (((uint64_t)1 << SF_XFILE_EPOCH_SHIFT) - 1)

/* Record types beyond SF_REC_HEADER ('H') and SF_REC_BODY ('B'). */
enum {
	SF_XREC_CODE = 'C',     /* i32 code, u8 retry, error text */
	SF_XREC_INFO = 'I',     /* u8 type, u8 number, the value */
	SF_XREC_HDR = 'X',      /* u32 origin, i32 request, name NUL value */
	SF_XREC_REQUESTS = 'R', /* i32 requests, u8 header_api */
	SF_XREC_END = 'E',      /* nothing follows in this epoch */
};

struct sf_xfile_head;

/* One process's hold on a flight's file, as reader and (leading) writer. */
struct sf_xfile {
	int fd; /* -1: not open */
	struct sf_xfile_head *h;
	/* reading */
	uint32_t epoch; /* the epoch being read */
	uint64_t pos;   /* its next record */
	unsigned char *buf;
	size_t cap;
	/* writing */
	uint64_t len;
	bool failed;  /* a write failed: nothing more is published */
	bool counted; /* this process is counted as done with the name */
};

void sf_xfile_init(struct sf_xfile *x);

/* Opens name in dirfd (never through a symlink), creating it (0600) when
 * create is set and it is not there.  1: open; 0: not there (or its header
 * not written yet): try later; -1: unusable. */
int sf_xfile_open(struct sf_xfile *x, int dirfd, const char *name, bool create);

/* Closes and frees; the file stays (see sf_xfile_count). */
void sf_xfile_close(struct sf_xfile *x);

/* ---- writing (the leader) ---------------------------------------------- */

/* Starts epoch at the file's end, led by owner.  Returns the position to
 * publish (epoch and offset), 0 when it cannot. */
uint64_t sf_xfile_begin(struct sf_xfile *x, uint32_t epoch,
                        const struct sf_xowner *owner);

/* Appends one record; -1 (x->failed) when it could not be written whole. */
int sf_xfile_put(struct sf_xfile *x, unsigned char type, const void *data,
                 size_t len);

/* Appends the final records: code, retry and error text, then the
 * snapshot's getinfo answers and header list (snap may be NULL: none),
 * then the end record. */
int sf_xfile_put_final(struct sf_xfile *x, CURLcode code, const char *errmsg,
                       bool retry, const struct sf_curl_reply *snap);

/* ---- reading ----------------------------------------------------------- */

/* The epoch being written and where it starts (epoch << shift | offset). */
uint64_t sf_xfile_current(const struct sf_xfile *x);

/* Reads epoch from its start: where the header says it starts, if that is
 * the header's current epoch.  False otherwise (try again later). */
bool sf_xfile_seek_epoch(struct sf_xfile *x, uint32_t epoch);

/* The next record wholly within the first avail bytes of the file: 1 with
 * *type, *data (valid until the next call) and *len; 0 when none is
 * published yet; -1 on a read error or a malformed record. */
int sf_xfile_next(struct sf_xfile *x, uint64_t avail, unsigned char *type,
                  const unsigned char **data, size_t *len);

/* Applies a final record to r (code, errmsg, retry, info, hdrs,
 * requests, header_api).  0, or -1 when malformed or memory is short. */
int sf_xfile_apply_final(struct sf_curl_reply *r, unsigned char type,
                         const unsigned char *data, size_t len);

/* ---- the name's life -------------------------------------------------- */

/* A follower is done with the name (it holds the file open, or leaves
 * without it): counts it once.  True when the name may go now. */
bool sf_xfile_count(struct sf_xfile *x);

/* The leader at the end: followers is the flight's final number of
 * followers.  True when the name may go now. */
bool sf_xfile_finish(struct sf_xfile *x, unsigned followers);

/* Every one of followers is counted already. */
bool sf_xfile_all_counted(const struct sf_xfile *x, unsigned followers);

/* Whether the response file name in dirfd belongs to a leader that is
 * gone (killed, or exited): nobody waits for its bytes by name then. */
bool sf_xfile_orphaned(int dirfd, const char *name);

#endif
