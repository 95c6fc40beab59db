/* sf_curl_share.h - what each libcurl share handle shares, and whether a
 * handle attached to one may still coalesce.
 *
 * The curl tool (and many threaded programs) attach every easy handle to a
 * share handle (CURLOPT_SHARE).  What a share holds decides whether the
 * handle's transfer depends on more than its options:
 *  - DNS, SSL_SESSION, CONNECT and PSL caches change how a transfer gets
 *    its bytes, never which bytes: harmless;
 *  - COOKIE: libcurl points the handle at the shared jar at attach time,
 *    but only reads or fills it while the handle's cookie engine is on
 *    (state.cookie_engine, set by COOKIEFILE, COOKIEJAR, COOKIELIST or a
 *    duphandle of a handle that had it): harmless while that is off;
 *  - HSTS: the shared cache is consulted (http:// upgraded to https://)
 *    and filled (Strict-Transport-Security over https) by every attached
 *    handle.  It stays empty, and so harmless, as long as no handle that
 *    was attached to it could have loaded or learnt an entry: none had an
 *    URL other than http://, FOLLOWLOCATION, CURLU or an HSTS option, and
 *    no handle the shim does not track (libcurl's own DoH handles) was
 *    attached.  Otherwise the share is marked and its handles pass through;
 *  - anything else (a newer libcurl's data type, an unknown option): pass.
 *
 * libcurl refuses curl_share_setopt while any handle is attached
 * (CURLSHE_IN_USE), and curl_share_cleanup likewise, so what a share holds
 * cannot change under an attached handle; the shim records only what
 * libcurl accepted.  curl_easy_reset keeps the share, the cookies and the
 * HSTS cache (curl_easy_reset(3)), so the attachment and the engine flags
 * live outside the option record and survive sf_curl_handle_clear.
 * curl_easy_duphandle does not attach the copy to the share.
 *
 * Thread safety: the table of shares is process-wide under one mutex (taken
 * around fork); a handle holds a counted reference to its share's record,
 * so the perform path reads it without any lock. */
#ifndef SF_CURL_SHARE_H
#define SF_CURL_SHARE_H

#include "common/sf_real.h"
#include "curl/sf_curl_handle.h"
#include "curl/sf_curl_opts.h"

#include <stdbool.h>

struct sf_curl_share;

/* Records a share handle that curl_share_init of api returned. */
void sf_curl_share_add(CURLSH *sh, const struct sf_curl_real *api);
/* The library that created sh, or api when the shim did not see it. */
const struct sf_curl_real *sf_curl_share_owner(CURLSH *sh,
                                               const struct sf_curl_real *api);
/* One curl_share_setopt that returned rc (arg: its argument as passed). */
void sf_curl_share_setopt_done(CURLSH *sh, CURLSHoption opt, long arg,
                               CURLSHcode rc);
/* curl_share_cleanup(sh) is about to run / returned rc.  The record is
 * forgotten only when libcurl freed the share. */
struct sf_curl_share *sf_curl_share_cleanup_begin(CURLSH *sh);
void sf_curl_share_cleanup_done(struct sf_curl_share *s, CURLSHcode rc);

/* Inside the real curl_share_init: libcurl 8.x creates an internal easy
 * handle there (through its PLT), which it later frees itself; the easy
 * hook must not record it. */
void sf_curl_share_creating_enter(void);
void sf_curl_share_creating_leave(void);
bool sf_curl_share_creating(void);

/* After curl_easy_setopt(easy, id, v) returned CURLE_OK; h is easy's
 * record, or NULL when the shim does not track easy (only CURLOPT_SHARE
 * matters then: the share is marked, that handle's transfers are unseen). */
void sf_curl_share_easy_setopt(struct sf_curl_handle *h, CURLoption id,
                               unsigned char kind, union sf_curl_optval v);
/* curl_easy_duphandle: dst is not attached; it gets src's engines (an HSTS
 * cache of its own when src had any). */
void sf_curl_share_easy_dup(struct sf_curl_handle *dst,
                            const struct sf_curl_handle *src);
/* curl_easy_cleanup (or the record's end): drops the reference. */
void sf_curl_share_easy_detach(struct sf_curl_handle *h);

/* At perform: NULL when the handle's share and engines allow coalescing,
 * else the cause (fixed words, no value) for the stats. */
const char *sf_curl_share_verdict(const struct sf_curl_handle *h);

#endif
