/* sf_curl_reply.h - one HTTP response as every sharer of a flight sees it.
 *
 * While the leader downloads, its callbacks' data is appended as records
 * (a header line, a body piece) to a stream that followers replay through
 * their own callbacks.  When the transfer ends, the leader adds its result
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

enum sf_curl_rec { SF_REC_HEADER = 'H', SF_REC_BODY = 'B' };
#define SF_REC_HDRLEN 5 /* type byte + 32-bit length */

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

struct sf_curl_reply {
	_Atomic unsigned refs;
	sf_stream *stream;

	/* Final facts, written before the flight is finished. */
	CURLcode code;
	char errmsg[CURL_ERROR_SIZE];
	bool retry; /* SFSHIM_RETRY_ERRORS: followers make their own calls */
	unsigned char have[SF_INFO_TYPES][SF_INFO_SLOTS];
	char *str[SF_INFO_SLOTS];
	long lng[SF_INFO_SLOTS];
	double dbl[SF_INFO_SLOTS];
	curl_off_t off[SF_INFO_SLOTS];
	struct sf_curl_hdr *hdrs;
	size_t nhdrs;
	int requests;    /* index of the last request, as libcurl counts */
	bool header_api; /* the leader's libcurl has curl_easy_header */
};

struct sf_curl_reply *sf_curl_reply_new(size_t spill_bytes);
void sf_curl_reply_ref(struct sf_curl_reply *r);
void sf_curl_reply_unref(struct sf_curl_reply *r); /* NULL is fine */

/* Leader: append one record; -1 when it could not be stored. */
int sf_curl_reply_append(struct sf_curl_reply *r, enum sf_curl_rec type,
                         const void *data, size_t len);

/* Leader, after its perform: copy getinfo answers and headers of easy. */
void sf_curl_reply_snapshot(struct sf_curl_reply *r,
                            const struct sf_curl_real *api, CURL *easy);

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
