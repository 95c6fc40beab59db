/* sf_curl_perform.h - curl_easy_perform on a handle the shim knows. */
#ifndef SF_CURL_PERFORM_H
#define SF_CURL_PERFORM_H

#include "curl/sf_curl_handle.h"

/* Coalesces the transfer with identical concurrent ones when it may, and
 * otherwise performs it untouched. */
CURLcode sf_curl_perform(struct sf_curl_handle *h);

#endif
