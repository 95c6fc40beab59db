/* sf_curl_api.c - the interposed curl_easy_* functions.
 *
 * Debian's libcurl flavours version their symbols (CURL_OPENSSL_4,
 * CURL_GNUTLS_3) and one process may load both.  The shim exports one set
 * of wrappers per flavour under that flavour's version, so a caller reaches
 * the library it was linked against; a known handle always goes to the
 * library that created it.  The OpenSSL set is also the default for
 * unversioned references.  Handles the shim did not see created (libcurl's
 * own, e.g. for DoH) pass through untouched. */
#include "common/sf_config.h"
#include "common/sf_export.h"
#include "common/sf_real.h"
#include "common/sf_stats.h"
#include "curl/sf_curl_handle.h"
#include "curl/sf_curl_info.h"
#include "curl/sf_curl_opts.h"
#include "curl/sf_curl_perform.h"
#include "curl/sf_curl_reply.h"
#include "curl/sf_curl_share.h"

#include <stdarg.h>

static CURL *do_init(const struct sf_curl_real *api)
{
	if (!api->easy_init)
		return NULL; /* what curl_easy_init says when it cannot */
	CURL *easy = api->easy_init();
	/* Not libcurl 8's own handle inside curl_share_init: it frees that
	 * one without curl_easy_cleanup. */
	if (easy && sf_config()->curl && !sf_curl_share_creating())
		sf_curl_handle_add(easy, api);
	return easy;
}

/* The library that owns easy: its creator when known, else the caller's. */
static const struct sf_curl_real *owner(struct sf_curl_handle *h,
                                        const struct sf_curl_real *api)
{
	return h ? h->api : api;
}

/* Exactly one argument, of the type the option id implies, goes on.  An
 * id the option table lacks (a newer libcurl's, or garbage) reaches libcurl
 * untouched, whatever libcurl says comes back, and the handle never
 * coalesces again: its argument is never looked into. */
static CURLcode do_setopt(const struct sf_curl_real *api, CURL *easy,
                          CURLoption opt, va_list ap)
{
	struct sf_curl_handle *h = sf_curl_handle_find(easy);
	api = owner(h, api);
	if (!api->easy_setopt)
		return CURLE_FAILED_INIT;
	bool known = sf_curl_opt_lookup(opt) != NULL;
	unsigned char kind = sf_curl_opt_kind_of(opt);
	union sf_curl_optval v;
	CURLcode rc;
	switch (kind) {
	case SF_OPTK_LONG:
		v.l = va_arg(ap, long);
		rc = api->easy_setopt(easy, opt, v.l);
		break;
	case SF_OPTK_OFF:
		v.o = va_arg(ap, curl_off_t);
		rc = api->easy_setopt(easy, opt, v.o);
		break;
	case SF_OPTK_BLOB: {
		struct curl_blob *b = va_arg(ap, struct curl_blob *);
		rc = api->easy_setopt(easy, opt, b);
		if (!known) {
			v.p = b; /* maybe not a blob at all: never read */
			break;
		}
		v.blob.data = b ? b->data : NULL;
		v.blob.len = b ? b->len : 0;
		if (b && !b->data)
			kind = SF_OPTK_PTR; /* nothing to copy; still recorded */
		break;
	}
	default: /* strings, slists, objects and functions: one pointer */
		v.p = va_arg(ap, void *);
		rc = api->easy_setopt(easy, opt, v.p);
		break;
	}
	if (!h) {
		if (rc == CURLE_OK && opt == CURLOPT_SHARE)
			sf_curl_share_easy_setopt(NULL, opt, kind, v);
		return rc;
	}
	if (!known)
		h->unknown =
		        true; /* even if refused: libcurl may know better */
	else if (rc == CURLE_OK) { /* what libcurl refused changed nothing */
		sf_curl_handle_set(h, opt, kind, v);
		sf_curl_share_easy_setopt(h, opt, kind, v);
	}
	return rc;
}

static CURLcode do_perform(const struct sf_curl_real *api, CURL *easy)
{
	struct sf_curl_handle *h = sf_curl_handle_find(easy);
	if (h)
		return sf_curl_perform(h);
	if (!api->easy_perform)
		return CURLE_FAILED_INIT;
	if (!sf_config()->curl) {
		sf_count_pass(SF_API_CURL, SF_PASS_DISABLED);
	} else {
		/* not seen created (libcurl's own, or made before the shim) */
		sf_count_pass(SF_API_CURL, SF_PASS_UNSUPPORTED);
		sf_stats_pass_cause(SF_API_CURL, SF_PASS_UNSUPPORTED,
		                    "handle not created through the shim");
	}
	return api->easy_perform(easy);
}

static CURLcode do_getinfo(const struct sf_curl_real *api, CURL *easy,
                           CURLINFO info, void *out)
{
	struct sf_curl_handle *h = sf_curl_handle_find(easy);
	CURLcode rc;
	if (h && sf_curl_info_answer(h, info, out, &rc))
		return rc;
	api = owner(h, api);
	return api->easy_getinfo ? api->easy_getinfo(easy, info, out)
	                         : CURLE_FAILED_INIT;
}

static void do_reset(const struct sf_curl_real *api, CURL *easy)
{
	struct sf_curl_handle *h = sf_curl_handle_find(easy);
	api = owner(h, api);
	if (api->easy_reset)
		api->easy_reset(easy);
	if (h)
		sf_curl_handle_clear(h);
}

static CURL *do_duphandle(const struct sf_curl_real *api, CURL *easy)
{
	struct sf_curl_handle *h = sf_curl_handle_find(easy);
	api = owner(h, api);
	if (!api->easy_duphandle)
		return NULL;
	CURL *dup = api->easy_duphandle(easy);
	struct sf_curl_handle *d;
	if (dup && h && (d = sf_curl_handle_add(dup, api)))
		sf_curl_handle_copy_opts(d, h);
	return dup;
}

static void do_cleanup(const struct sf_curl_real *api, CURL *easy)
{
	struct sf_curl_handle *h = sf_curl_handle_find(easy);
	api = owner(h, api);
	/* Forget first: once freed, the address may be handed out again. */
	sf_curl_handle_remove(easy);
	if (api->easy_cleanup)
		api->easy_cleanup(easy);
}

static CURLHcode do_header(const struct sf_curl_real *api, CURL *easy,
                           const char *name, size_t index, unsigned int origin,
                           int request, struct curl_header **hout)
{
	struct sf_curl_handle *h = sf_curl_handle_find(easy);
	if (h && h->reply)
		return sf_curl_reply_header(h->reply, &h->hout[0], name, index,
		                            origin, request, hout);
	api = owner(h, api);
	return api->easy_header ? api->easy_header(easy, name, index, origin,
	                                           request, hout)
	                        : CURLHE_NOT_BUILT_IN;
}

static struct curl_header *do_nextheader(const struct sf_curl_real *api,
                                         CURL *easy, unsigned int origin,
                                         int request, struct curl_header *prev)
{
	struct sf_curl_handle *h = sf_curl_handle_find(easy);
	if (h && h->reply)
		return sf_curl_reply_nextheader(h->reply, &h->hout[1], origin,
		                                request, prev);
	api = owner(h, api);
	return api->easy_nextheader
	               ? api->easy_nextheader(easy, origin, request, prev)
	               : NULL;
}

/* One exported set per flavour.  The wrappers' own names are made local
 * by shim/sfshim.map; only their versioned aliases are visible. */
#define SF_CURL_WRAPPERS(tag, FLAVOUR, at_version)                             \
	SF_EXPORT CURL *sf_##tag##_easy_init(void)                             \
	{                                                                      \
		return do_init(sf_real_curl(FLAVOUR));                         \
	}                                                                      \
	SF_EXPORT CURLcode sf_##tag##_easy_setopt(CURL *easy, CURLoption opt,  \
	                                          ...)                         \
	{                                                                      \
		va_list ap;                                                    \
		va_start(ap, opt);                                             \
		CURLcode rc = do_setopt(sf_real_curl(FLAVOUR), easy, opt, ap); \
		va_end(ap);                                                    \
		return rc;                                                     \
	}                                                                      \
	SF_EXPORT CURLcode sf_##tag##_easy_perform(CURL *easy)                 \
	{                                                                      \
		return do_perform(sf_real_curl(FLAVOUR), easy);                \
	}                                                                      \
	SF_EXPORT CURLcode sf_##tag##_easy_getinfo(CURL *easy, CURLINFO info,  \
	                                           ...)                        \
	{                                                                      \
		va_list ap;                                                    \
		va_start(ap, info);                                            \
		void *out = va_arg(ap, void *);                                \
		va_end(ap);                                                    \
		return do_getinfo(sf_real_curl(FLAVOUR), easy, info, out);     \
	}                                                                      \
	SF_EXPORT void sf_##tag##_easy_reset(CURL *easy)                       \
	{                                                                      \
		do_reset(sf_real_curl(FLAVOUR), easy);                         \
	}                                                                      \
	SF_EXPORT CURL *sf_##tag##_easy_duphandle(CURL *easy)                  \
	{                                                                      \
		return do_duphandle(sf_real_curl(FLAVOUR), easy);              \
	}                                                                      \
	SF_EXPORT void sf_##tag##_easy_cleanup(CURL *easy)                     \
	{                                                                      \
		do_cleanup(sf_real_curl(FLAVOUR), easy);                       \
	}                                                                      \
	SF_EXPORT CURLHcode sf_##tag##_easy_header(                            \
	        CURL *easy, const char *name, size_t index,                    \
	        unsigned int origin, int request, struct curl_header **hout)   \
	{                                                                      \
		return do_header(sf_real_curl(FLAVOUR), easy, name, index,     \
		                 origin, request, hout);                       \
	}                                                                      \
	SF_EXPORT struct curl_header *sf_##tag##_easy_nextheader(              \
	        CURL *easy, unsigned int origin, int request,                  \
	        struct curl_header *prev)                                      \
	{                                                                      \
		return do_nextheader(sf_real_curl(FLAVOUR), easy, origin,      \
		                     request, prev);                           \
	}                                                                      \
	SF_SYMVER(sf_##tag##_easy_init, "curl_easy_init" at_version);          \
	SF_SYMVER(sf_##tag##_easy_setopt, "curl_easy_setopt" at_version);      \
	SF_SYMVER(sf_##tag##_easy_perform, "curl_easy_perform" at_version);    \
	SF_SYMVER(sf_##tag##_easy_getinfo, "curl_easy_getinfo" at_version);    \
	SF_SYMVER(sf_##tag##_easy_reset, "curl_easy_reset" at_version);        \
	SF_SYMVER(sf_##tag##_easy_duphandle,                                   \
	          "curl_easy_duphandle" at_version);                           \
	SF_SYMVER(sf_##tag##_easy_cleanup, "curl_easy_cleanup" at_version);    \
	SF_SYMVER(sf_##tag##_easy_header, "curl_easy_header" at_version);      \
	SF_SYMVER(sf_##tag##_easy_nextheader, "curl_easy_nextheader" at_version)

SF_CURL_WRAPPERS(openssl, SF_CURL_OPENSSL, "@@CURL_OPENSSL_4");
SF_CURL_WRAPPERS(gnutls, SF_CURL_GNUTLS, "@CURL_GNUTLS_3");
