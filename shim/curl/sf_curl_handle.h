/* sf_curl_handle.h - what the shim knows about each easy handle it saw
 * created.
 *
 * libcurl has no API to read options back, so every curl_easy_setopt on a
 * known handle is recorded here (latest value per option, sorted by id,
 * each with the sequence number of the setopt that set it, so that related
 * options resolve as in libcurl: the last setopt wins), and reset,
 * duphandle and cleanup are mirrored.  The method is mirrored call by call
 * (sf_curl_method.h): it depends on more than the last value of each
 * option.  Handles the shim did not
 * see created (libcurl's internal ones) have no record and pass through.
 * A handle is used by one thread at a time (libcurl's rule), so a record
 * needs no lock of its own; only the table does. */
#ifndef SF_CURL_HANDLE_H
#define SF_CURL_HANDLE_H

#include "common/sf_real.h"
#include "curl/sf_curl_method.h"

#include <stdbool.h>
#include <stdint.h>

struct sf_curl_reply;

union sf_curl_optval {
	long l;
	char *s; /* owned copy (NULL allowed) */
	void *p; /* slist, object or function pointer, kept as is */
	curl_off_t o;
	struct {
		void *data; /* owned copy; NULL when the blob pointer was NULL */
		size_t len;
	} blob;
};

struct sf_curl_opt {
	CURLoption id;
	unsigned char kind; /* enum sf_curl_optkind */
	uint32_t seq;       /* when it was last set: larger is later */
	union sf_curl_optval v;
};

struct sf_curl_handle {
	CURL *easy;
	const struct sf_curl_real *api; /* the library that created it */
	struct sf_curl_opt *opts;       /* sorted by id */
	size_t nopts, cap;
	uint32_t seq;    /* setopt calls recorded so far */
	bool unrecorded; /* an option could not be recorded: never coalesce */
	bool unknown;    /* an option id the table lacks was set: likewise */
	struct sf_curl_method method; /* as libcurl derives it, call by call */

	/* What curl_easy_reset keeps (curl/sf_curl_share.h): the attached
	 * share (a counted reference; NULL when none or foreign), and whether
	 * libcurl's cookie engine or an HSTS cache of the handle's own may be
	 * on.  The engine flags never go back to false: libcurl's own state
	 * does not always either. */
	struct sf_curl_share *share;
	bool share_foreign; /* attached to a share the shim did not see made */
	bool cookie_engine, hsts_engine;

	/* After a perform answered from another transfer, getinfo and the
	 * header API answer from this reply, until the next perform, reset or
	 * cleanup. */
	struct sf_curl_reply *reply;
	bool own_answers;                 /* times/sizes below are valid */
	uint64_t total_ns, first_byte_ns; /* this handle's own times */
	long size_download;
	long response_code; /* last status line it received (no reply) */
	struct curl_header hout[2]; /* curl_easy_header, curl_easy_nextheader */

	struct sf_curl_handle *next; /* table chain */
};

/* The record of easy, or NULL when the shim did not see it created. */
struct sf_curl_handle *sf_curl_handle_find(CURL *easy);
/* Adds a record; NULL when memory is short (the handle then passes
 * through for good). */
struct sf_curl_handle *sf_curl_handle_add(CURL *easy,
                                          const struct sf_curl_real *api);
/* Forgets easy and frees its record. */
void sf_curl_handle_remove(CURL *easy);

/* Records one setopt that libcurl accepted; kind as decoded by
 * sf_curl_opt_kind_of.  An id the option table lacks is not stored: it
 * marks the handle unknown. */
void sf_curl_handle_set(struct sf_curl_handle *r, CURLoption id,
                        unsigned char kind, union sf_curl_optval v);
/* The recorded option, or NULL when never set since creation/reset. */
const struct sf_curl_opt *sf_curl_handle_get(const struct sf_curl_handle *r,
                                             CURLoption id);
/* Whether a recorded option's value is anything but 0 or NULL. */
bool sf_curl_opt_is_set(const struct sf_curl_opt *o);
/* Whether h's option id is recorded with such a value. */
bool sf_curl_handle_is_set(const struct sf_curl_handle *h, CURLoption id);
/* A caller's own limits, as libcurl derives them from the options set on
 * the handle: TIMEOUT and TIMEOUT_MS (CONNECTTIMEOUT and its _MS form)
 * write one field, so the later setopt of the two wins, whatever its value
 * (TIMEOUT=0 after TIMEOUT_MS=300 means no limit).  Zero means no limit. */
struct sf_curl_limits {
	long timeout_ms;         /* TIMEOUT / TIMEOUT_MS */
	long connect_timeout_ms; /* CONNECTTIMEOUT / CONNECTTIMEOUT_MS */
	long low_speed_limit;    /* LOW_SPEED_LIMIT, bytes per second */
	long low_speed_time;     /* LOW_SPEED_TIME, seconds */
};
void sf_curl_handle_limits(const struct sf_curl_handle *r,
                           struct sf_curl_limits *out);

/* Back to a fresh handle's state (curl_easy_reset). */
void sf_curl_handle_clear(struct sf_curl_handle *r);
/* dst gets src's options (curl_easy_duphandle). */
void sf_curl_handle_copy_opts(struct sf_curl_handle *dst,
                              const struct sf_curl_handle *src);
/* Drops the answers of the last followed perform. */
void sf_curl_handle_forget_reply(struct sf_curl_handle *r);

#endif
