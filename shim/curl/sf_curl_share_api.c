/* sf_curl_share_api.c - the interposed curl_share_* functions.
 *
 * They only watch: every call reaches the library that created the share
 * (the caller's when the shim did not see it created), with its argument
 * as passed, and returns exactly what that library returns.  What libcurl
 * accepted is recorded (sf_curl_share.h) so that a handle attached to a
 * share that holds nothing harmful still coalesces.  One exported set per
 * libcurl flavour, as for curl_easy_* (sf_curl_api.c). */
#include "common/sf_config.h"
#include "common/sf_export.h"
#include "common/sf_real.h"
#include "curl/sf_curl_share.h"

#include <stdarg.h>

static CURLSH *do_share_init(const struct sf_curl_real *api)
{
	if (!api->share_init)
		return NULL; /* what curl_share_init says when it cannot */
	sf_curl_share_creating_enter();
	CURLSH *sh = api->share_init();
	sf_curl_share_creating_leave();
	if (sh && sf_config()->curl)
		sf_curl_share_add(sh, api);
	return sh;
}

/* CURLSHOPT_SHARE and UNSHARE take an int, the lock functions a function
 * pointer, USERDATA a pointer.  An option this shim does not know goes on
 * as one pointer-sized value (the x86-64 and AArch64 calling conventions
 * pass an int in the low half of the same register); the share is then
 * never trusted again. */
static CURLSHcode do_share_setopt(const struct sf_curl_real *api, CURLSH *sh,
                                  CURLSHoption opt, va_list ap)
{
	api = sf_curl_share_owner(sh, api);
	if (!api->share_setopt)
		return CURLSHE_INVALID;
	CURLSHcode rc;
	long arg = 0;
	switch (opt) {
	case CURLSHOPT_SHARE:
	case CURLSHOPT_UNSHARE: {
		int type = va_arg(ap, int);
		rc = api->share_setopt(sh, opt, type);
		arg = type;
		break;
	}
	case CURLSHOPT_LOCKFUNC:
	case CURLSHOPT_UNLOCKFUNC: {
		void (*fn)(void) = va_arg(ap, void (*)(void));
		rc = api->share_setopt(sh, opt, fn);
		break;
	}
	default: {
		void *p = va_arg(ap, void *);
		rc = api->share_setopt(sh, opt, p);
		break;
	}
	}
	sf_curl_share_setopt_done(sh, opt, arg, rc);
	return rc;
}

static CURLSHcode do_share_cleanup(const struct sf_curl_real *api, CURLSH *sh)
{
	api = sf_curl_share_owner(sh, api);
	if (!api->share_cleanup)
		return CURLSHE_INVALID;
	/* The record goes only if libcurl freed the share: a share still in
	 * use (CURLSHE_IN_USE) stays what it was. */
	struct sf_curl_share *s = sf_curl_share_cleanup_begin(sh);
	CURLSHcode rc = api->share_cleanup(sh);
	sf_curl_share_cleanup_done(s, rc);
	return rc;
}

#define SF_SHARE_WRAPPERS(tag, FLAVOUR, at_version)                          \
	SF_EXPORT CURLSH *sf_##tag##_share_init(void)                        \
	{                                                                    \
		return do_share_init(sf_real_curl(FLAVOUR));                 \
	}                                                                    \
	SF_EXPORT CURLSHcode sf_##tag##_share_setopt(CURLSH *sh,             \
	                                             CURLSHoption opt, ...)  \
	{                                                                    \
		va_list ap;                                                  \
		va_start(ap, opt);                                           \
		CURLSHcode rc =                                              \
		        do_share_setopt(sf_real_curl(FLAVOUR), sh, opt, ap); \
		va_end(ap);                                                  \
		return rc;                                                   \
	}                                                                    \
	SF_EXPORT CURLSHcode sf_##tag##_share_cleanup(CURLSH *sh)            \
	{                                                                    \
		return do_share_cleanup(sf_real_curl(FLAVOUR), sh);          \
	}                                                                    \
	SF_SYMVER(sf_##tag##_share_init, "curl_share_init" at_version);      \
	SF_SYMVER(sf_##tag##_share_setopt, "curl_share_setopt" at_version);  \
	SF_SYMVER(sf_##tag##_share_cleanup, "curl_share_cleanup" at_version)

SF_SHARE_WRAPPERS(openssl, SF_CURL_OPENSSL, "@@CURL_OPENSSL_4");
SF_SHARE_WRAPPERS(gnutls, SF_CURL_GNUTLS, "@CURL_GNUTLS_3");
