/* sf_curl_info.h - curl_easy_getinfo and the header API for a handle whose
 * last perform was answered from another handle's transfer. */
#ifndef SF_CURL_INFO_H
#define SF_CURL_INFO_H

#include "curl/sf_curl_handle.h"

#include <stdbool.h>

/* Answers info for h from its reply into out (the caller's pointer).
 * False when the answer must come from the real handle: no reply, or an
 * info that describes the handle rather than the transfer. */
bool sf_curl_info_answer(struct sf_curl_handle *h, CURLINFO info, void *out,
                         CURLcode *rc);

#endif
