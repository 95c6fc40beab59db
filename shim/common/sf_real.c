/* sf_real.c - real-symbol table (cf. cwrap's socket_wrapper). */
#include "common/sf_real.h"

#include "common/sf_guard.h"

#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

/* ---- libc -------------------------------------------------------------- */

static sf_getaddrinfo_fn *real_getaddrinfo;
static sf_unshare_fn *real_unshare;
static sf_setns_fn *real_setns;
static bool libc_is_glibc;
static pthread_once_t libc_once = PTHREAD_ONCE_INIT;

static void resolve_libc(void)
{
	/* dlsym may allocate; whatever it calls must not come back into a
	 * flight, so the guard is held. */
	sf_guard_enter();
	real_getaddrinfo = (sf_getaddrinfo_fn *)dlsym(RTLD_NEXT, "getaddrinfo");
	libc_is_glibc = dlsym(RTLD_NEXT, "gnu_get_libc_version") != NULL;
	real_unshare = (sf_unshare_fn *)dlsym(RTLD_NEXT, "unshare");
	real_setns = (sf_setns_fn *)dlsym(RTLD_NEXT, "setns");
	sf_guard_leave();
}

sf_getaddrinfo_fn *sf_real_getaddrinfo(void)
{
	pthread_once(&libc_once, resolve_libc);
	return real_getaddrinfo;
}

sf_unshare_fn *sf_real_unshare(void)
{
	pthread_once(&libc_once, resolve_libc);
	return real_unshare;
}

sf_setns_fn *sf_real_setns(void)
{
	pthread_once(&libc_once, resolve_libc);
	return real_setns;
}

bool sf_real_libc_is_glibc(void)
{
	pthread_once(&libc_once, resolve_libc);
	return libc_is_glibc;
}

/* ---- libcurl ----------------------------------------------------------- */

static const struct {
	const char *soname;
	const char *version;
} flavours[SF_CURL_FLAVOURS] = {
	[SF_CURL_OPENSSL] = { "libcurl.so.4", "CURL_OPENSSL_4" },
	[SF_CURL_GNUTLS] = { "libcurl-gnutls.so.4", "CURL_GNUTLS_3" },
};

static struct sf_curl_real tables[SF_CURL_FLAVOURS];
static _Atomic(const struct sf_curl_real *) resolved[SF_CURL_FLAVOURS];
static _Atomic int claimed[SF_CURL_FLAVOURS];
static const struct sf_curl_real missing; /* every member NULL */

/* RTLD_NEXT only searches the global scope; a libcurl that a language
 * binding loaded with RTLD_LOCAL is found through its soname instead
 * (RTLD_NOLOAD: never load a library the program did not load).  The
 * default (OpenSSL) flavour also takes unversioned definitions, for
 * callers that bound without a version. */
static void *find(enum sf_curl_flavour fl, void *lib, const char *name)
{
	void *p = dlvsym(RTLD_NEXT, name, flavours[fl].version);
	if (!p && lib)
		p = dlvsym(lib, name, flavours[fl].version);
	if (!p && fl == SF_CURL_OPENSSL) {
		p = dlsym(RTLD_NEXT, name);
		if (!p && lib)
			p = dlsym(lib, name);
	}
	return p;
}

static bool resolve_curl(enum sf_curl_flavour fl, struct sf_curl_real *t)
{
	/* The reference taken by RTLD_NOLOAD is kept on purpose: the pointers
	 * cached below must not outlive the library. */
	void *lib = dlopen(flavours[fl].soname, RTLD_NOLOAD | RTLD_LAZY);
	t->flavour = fl;
#define SF_FIND(member, name) *(void **)&t->member = find(fl, lib, name)
	SF_FIND(easy_init, "curl_easy_init");
	SF_FIND(easy_setopt, "curl_easy_setopt");
	SF_FIND(easy_perform, "curl_easy_perform");
	SF_FIND(easy_getinfo, "curl_easy_getinfo");
	SF_FIND(easy_reset, "curl_easy_reset");
	SF_FIND(easy_duphandle, "curl_easy_duphandle");
	SF_FIND(easy_cleanup, "curl_easy_cleanup");
	SF_FIND(easy_header, "curl_easy_header"); /* 7.83 and later */
	SF_FIND(easy_nextheader, "curl_easy_nextheader");
	SF_FIND(share_init, "curl_share_init");
	SF_FIND(share_setopt, "curl_share_setopt");
	SF_FIND(share_cleanup, "curl_share_cleanup");
#undef SF_FIND
	return t->easy_init && t->easy_setopt && t->easy_perform &&
	       t->easy_getinfo && t->easy_reset && t->easy_duphandle &&
	       t->easy_cleanup;
}

/* No lock is held while dlopen/dlsym run (they take the loader's lock, and
 * a library constructor holding that lock may itself call into curl).  The
 * first thread to resolve a complete table publishes it; others use it. */
const struct sf_curl_real *sf_real_curl(enum sf_curl_flavour fl)
{
	const struct sf_curl_real *t =
	        atomic_load_explicit(&resolved[fl], memory_order_acquire);
	if (__builtin_expect(t != NULL, 1))
		return t;
	struct sf_curl_real local = { 0 };
	sf_guard_enter();
	bool complete = resolve_curl(fl, &local);
	sf_guard_leave();
	if (!complete)
		return &missing;
	int expected = 0;
	if (atomic_compare_exchange_strong(&claimed[fl], &expected, 1)) {
		tables[fl] = local;
		atomic_store_explicit(&resolved[fl], &tables[fl],
		                      memory_order_release);
		return &tables[fl];
	}
	/* Another thread is storing the same pointers: a struct copy away. */
	while (!(t = atomic_load_explicit(&resolved[fl], memory_order_acquire)))
		sched_yield();
	return t;
}
