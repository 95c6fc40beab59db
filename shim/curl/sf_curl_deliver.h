/* sf_curl_deliver.h - hands header lines and body data to a handle's own
 * callbacks, following libcurl's rules.  (What a program already has
 * across hand-overs is the cursor's business: sf_curl_response.h.)
 *
 * libcurl's rules (NOTES.md): the body goes to WRITEFUNCTION, or fwrite to
 * WRITEDATA (stdout when unset), at most CURL_MAX_WRITE_SIZE bytes a call;
 * a header line goes first to the write callback when CURLOPT_HEADER is 1
 * (in CURL_MAX_WRITE_SIZE pieces, like body data), then whole to
 * HEADERFUNCTION, or, when only HEADERDATA is set, to the write function
 * with HEADERDATA. */
#ifndef SF_CURL_DELIVER_H
#define SF_CURL_DELIVER_H

#include "curl/sf_curl_handle.h"

#include <stdbool.h>

struct sf_delivery {
	curl_write_callback write_fn; /* NULL: fwrite */
	void *write_data;
	curl_write_callback header_fn;
	void *header_data;
	bool include_header;
	bool noprogress;
	curl_xferinfo_callback xferinfo;
	curl_progress_callback progress;
	void *progress_data;
	char *errbuf;
	struct sf_curl_limits lim; /* the caller's own, 0: none */

	/* What the program was given, for progress, timeouts and the
	 * answers getinfo gives mid-transfer. */
	size_t body_done;
	curl_off_t content_length; /* of the latest response, -1 unknown */
	long response_code;        /* of the latest status line */
	bool paused;               /* a callback returned PAUSE */
	const char *failure;       /* libcurl's text for the failure */
};

/* Decodes the handle's recorded delivery options. */
void sf_delivery_init(struct sf_delivery *d, const struct sf_curl_handle *h);

/* Returns CURLE_OK, or CURLE_WRITE_ERROR with d->failure set (d->paused
 * when the callback asked to pause). */
CURLcode sf_deliver_header(struct sf_delivery *d, const char *line, size_t len);
CURLcode sf_deliver_body(struct sf_delivery *d, const char *data, size_t len);

/* The progress callback, if the handle asked for one: non-zero aborts. */
int sf_deliver_progress(struct sf_delivery *d, curl_off_t dltotal,
                        curl_off_t dlnow);

/* Writes libcurl's message for code into the handle's ERRORBUFFER. */
void sf_delivery_error(struct sf_delivery *d, const char *msg);

/* CURLE_OPERATION_TIMEDOUT with libcurl's text, elapsed_ms after the
 * caller's own call. */
CURLcode sf_delivery_timed_out(struct sf_delivery *d, long elapsed_ms);

#endif
