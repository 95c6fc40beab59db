/* sf_curl_key.h - may this perform coalesce, and with which others. */
#ifndef SF_CURL_KEY_H
#define SF_CURL_KEY_H

#include "common/sf_config.h"
#include "common/sf_stats.h"
#include "curl/sf_curl_handle.h"

struct sf_curl_key {
	unsigned char *bytes; /* malloc'd */
	size_t len;
	const char *url; /* the handle's recorded URL (for logs, stats) */
};

/* Returns SF_PASS_COUNT and fills key when the handle's perform may
 * coalesce: a GET over http(s) whose every set option the shim
 * understands.  Otherwise returns why not (key untouched), after naming
 * the option or argument that blocks it with sf_stats_pass_cause.  The key holds
 * the library flavour, the URL and every option that shapes the request or
 * the response, slists and blobs by content as they are now. */
enum sf_pass sf_curl_key_build(const struct sf_curl_handle *h,
                               const struct sf_config *c,
                               struct sf_curl_key *key);
void sf_curl_key_free(struct sf_curl_key *key);

#endif
