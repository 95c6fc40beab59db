/* sf_real.h - the one place that finds the real functions behind the hooks.
 *
 * Symbols are resolved lazily on first use, never in a constructor: dlsym
 * may allocate, and allocators or sanitizers preloaded beside the shim have
 * deadlocked in one-time initialisation when it ran too early.  A function
 * that cannot be found is NULL; callers fail the call the way the API fails
 * and never call through NULL. */
#ifndef SF_REAL_H
#define SF_REAL_H

#include <curl/curl.h>
#include <netdb.h>
#include <stdbool.h>

typedef int sf_getaddrinfo_fn(const char *, const char *,
                              const struct addrinfo *, struct addrinfo **);

/* The next getaddrinfo after the shim, or NULL. */
sf_getaddrinfo_fn *sf_real_getaddrinfo(void);

/* The next unshare and setns (the namespace hooks in sf_ns.c), or NULL:
 * the hooks then make the system call themselves. */
typedef int sf_unshare_fn(int);
typedef int sf_setns_fn(int, int);
sf_unshare_fn *sf_real_unshare(void);
sf_setns_fn *sf_real_setns(void);

/* True when the libc below is glibc, whose freeaddrinfo releases lists that
 * the shim builds (see sf_addrinfo.c).  Elsewhere the DNS hook only passes
 * calls through. */
bool sf_real_libc_is_glibc(void);

/* Debian ships libcurl in flavours with distinct symbol versions, and one
 * process may load two.  The shim exports a set of wrappers per flavour so
 * that each caller reaches the library it was linked against. */
enum sf_curl_flavour { SF_CURL_OPENSSL, SF_CURL_GNUTLS, SF_CURL_FLAVOURS };

struct sf_curl_real {
	enum sf_curl_flavour flavour;
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_perform)(CURL *);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	void (*easy_reset)(CURL *);
	CURL *(*easy_duphandle)(CURL *);
	void (*easy_cleanup)(CURL *);
	CURLHcode (*easy_header)(CURL *, const char *, size_t, unsigned int,
	                         int, struct curl_header **);
	struct curl_header *(*easy_nextheader)(CURL *, unsigned int, int,
	                                       struct curl_header *);
	/* The share interface (curl/sf_curl_share.h): not needed for a
	 * complete table, NULL when missing. */
	CURLSH *(*share_init)(void);
	CURLSHcode (*share_setopt)(CURLSH *, CURLSHoption, ...);
	CURLSHcode (*share_cleanup)(CURLSH *);
};

/* The real functions of one flavour.  Never NULL; members are NULL when the
 * library (or that function in an older library) is not loaded.  Lookup is
 * retried until found, since a binding may dlopen libcurl late. */
const struct sf_curl_real *sf_real_curl(enum sf_curl_flavour flavour);

#endif
