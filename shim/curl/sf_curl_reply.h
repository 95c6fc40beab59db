/* sf_curl_reply.h - one HTTP response as every sharer of a flight sees it.
 *
 * While the leader downloads, its callbacks' data is appended as records
 * (a header line, a body piece: sf_curl_response.h owns their format) to a
 * stream that followers replay through their own callbacks.  When the transfer ends, the leader adds its result
 * code, error text, the getinfo answers and the parsed headers of its
 * handle, so that a follower's handle can answer curl_easy_getinfo and
 * curl_easy_header as if it had made the transfer. */
#ifndef SF_CURL_REPLY_H
#define SF_CURL_REPLY_H

#include "common/sf_real.h"
#include "core/sf_stream.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define SF_INFO_SLOTS 64 /* CURLINFO numbers below this are snapshot */
enum {
	SF_INFO_STRING,
	SF_INFO_LONG,
	SF_INFO_DOUBLE,
	SF_INFO_OFF,
	SF_INFO_TYPES
};

struct sf_curl_hdr {
	char *name, *value;
	unsigned int type; /* CURLH_* origin bit(s) as libcurl reported them */
	int request;
};

/* The leader's getinfo answers. */
struct sf_curl_infos {
	unsigned char have[SF_INFO_TYPES][SF_INFO_SLOTS];
	char *str[SF_INFO_SLOTS];
	long lng[SF_INFO_SLOTS];
	double dbl[SF_INFO_SLOTS];
	curl_off_t off[SF_INFO_SLOTS];
};

struct sf_curl_reply {
	_Atomic unsigned refs;
	sf_stream *stream;

	/* Final facts, written before the flight is finished. */
	CURLcode code;
	char errmsg[CURL_ERROR_SIZE];
	bool retry; /* SFSHIM_RETRY_ERRORS: followers make their own calls */
	struct sf_curl_infos *info; /* copied only when somebody follows */
	struct sf_curl_hdr *hdrs;
	size_t nhdrs;
	int requests;    /* index of the last request, as libcurl counts */
	bool header_api; /* the leader's libcurl has curl_easy_header */

	/* A follower's own view mid-transfer (no stream): the header lines
	 * it was given (sf_curl_reply_add_line) and what getinfo answers in
	 * its callbacks.  Kept on the handle, not on the follower's stack, so
	 * that a callback that jumps out leaves nothing dangling. */
	size_t hcap;
	long live_status; /* of the latest status line, 0 before one */
	long live_code;
	curl_off_t live_length, live_size;
};

struct sf_curl_reply *sf_curl_reply_new(size_t spill_bytes);
void sf_curl_reply_ref(struct sf_curl_reply *r);
void sf_curl_reply_unref(struct sf_curl_reply *r); /* NULL is fine */

/* Leader, after its perform: copy getinfo answers and headers of easy.
 * -1 when memory ran short (the copy is then incomplete). */
int sf_curl_reply_snapshot(struct sf_curl_reply *r,
                           const struct sf_curl_real *api, CURL *easy);

/* A follower's view of the headers it was given so far, for the header
 * API inside its callbacks: no stream, no getinfo answers. */
struct sf_curl_reply *sf_curl_reply_new_live(bool header_api);
/* Adds one header line as libcurl's header API lists it; -1 when memory is
 * short. */
int sf_curl_reply_add_line(struct sf_curl_reply *r, const char *line, size_t n);

/* Index of a CURLINFO's type in have[], or -1 for the types not kept. */
int sf_curl_info_type(CURLINFO info);

/* curl_easy_header / curl_easy_nextheader over the snapshot, with libcurl's
 * rules; hout is the caller handle's storage for the answer. */
CURLHcode sf_curl_reply_header(const struct sf_curl_reply *r,
                               struct curl_header *hout, const char *name,
                               size_t index, unsigned int type, int request,
                               struct curl_header **out);
struct curl_header *sf_curl_reply_nextheader(const struct sf_curl_reply *r,
                                             struct curl_header *hout,
                                             unsigned int type, int request,
                                             struct curl_header *prev);

#endif
