/* sf_dl_open.c - RTLD_DEEPBIND loads that involve libcurl are routed
 * through the shim (see sf_dl_open.h and sf_got.h). */
#include "dl/sf_dl_open.h"

#include "common/sf_config.h"
#include "common/sf_guard.h"
#include "common/sf_log.h"
#include "common/sf_real.h"
#include "dl/sf_dl_snap.h"
#include "dl/sf_got.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>

/* Read by the entry (sf_dl_entry.c) with one aligned load. */
__attribute__((used)) sf_dlopen_fn *sf_dl_real_dlopen_ptr;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool self_in_base;

static void resolve(void)
{
	sf_guard_enter();
	sf_dlopen_fn *real = (sf_dlopen_fn *)dlsym(RTLD_NEXT, "dlopen");
	/* The shim routes only in the namespace it was preloaded into. */
	Dl_info di;
	struct link_map *lm = NULL;
	Lmid_t id = -1;
	self_in_base =
	        dladdr1((void *)resolve, &di, (void **)&lm, RTLD_DL_LINKMAP) &&
	        lm && dlinfo(lm, RTLD_DI_LMID, &id) == 0 && id == LM_ID_BASE;
	sf_guard_leave();
	__atomic_store_n(&sf_dl_real_dlopen_ptr, real, __ATOMIC_RELEASE);
}

sf_dlopen_fn *sf_dl_resolve(void)
{
	int e = errno;
	pthread_once(&once, resolve);
	errno = e;
	return __atomic_load_n(&sf_dl_real_dlopen_ptr, __ATOMIC_ACQUIRE);
}

/* The caller matters to glibc's dlopen only (elf/dl-open.c,
 * dl_open_worker) for a name without '/' (its RUNPATH/RPATH), a name with
 * '$' (dynamic string tokens such as $ORIGIN) and the namespace to load
 * into (the caller's).  So a path with '/' and no '$', from a caller in the
 * base namespace (where the shim is), loads the same object whoever calls.
 * Anything else goes on untouched and unrouted. */
int sf_dl_deep_wanted(const char *file, int mode, const void *caller)
{
	(void)mode;
	if (!file || !strchr(file, '/') || strchr(file, '$') ||
	    sf_guard_active())
		return 0;
	int e = errno; /* the caller sees errno as dlopen leaves it */
	const struct sf_config *c = sf_config();
	int wanted = 0;
	if ((c->curl || c->dns) && sf_dl_resolve() && self_in_base) {
		Dl_info di;
		struct link_map *lm = NULL;
		/* No object holds the address: glibc takes the main map. */
		Lmid_t id = LM_ID_BASE;
		if (dladdr1(caller, &di, (void **)&lm, RTLD_DL_LINKMAP) && lm &&
		    dlinfo(lm, RTLD_DI_LMID, &id) != 0)
			id = -1;
		wanted = id == LM_ID_BASE;
	}
	errno = e;
	return wanted;
}

/* ---- the routes -------------------------------------------------------- */

static const struct {
	const char *name;
	size_t off;
} curl_syms[] = {
#define SF_SYM(n, m)                                \
	{                                           \
		n, offsetof(struct sf_curl_real, m) \
	}
	SF_SYM("curl_easy_init", easy_init),
	SF_SYM("curl_easy_setopt", easy_setopt),
	SF_SYM("curl_easy_perform", easy_perform),
	SF_SYM("curl_easy_getinfo", easy_getinfo),
	SF_SYM("curl_easy_reset", easy_reset),
	SF_SYM("curl_easy_duphandle", easy_duphandle),
	SF_SYM("curl_easy_cleanup", easy_cleanup),
	SF_SYM("curl_easy_header", easy_header),
	SF_SYM("curl_easy_nextheader", easy_nextheader),
#undef SF_SYM
};
#define N_CURL (sizeof(curl_syms) / sizeof(curl_syms[0]))

static const char *const flavour_version[SF_CURL_FLAVOURS] = {
	[SF_CURL_OPENSSL] = "CURL_OPENSSL_4",
	[SF_CURL_GNUTLS] = "CURL_GNUTLS_3",
};

/* What a reference binds to without RTLD_DEEPBIND (the global scope, the
 * shim first), provided that is the shim's own definition: a program that
 * defines the symbol itself keeps its own. */
static void *shim_wrapper(const char *name, const char *version,
                          const void *self_base)
{
	void *w = version ? dlvsym(RTLD_DEFAULT, name, version)
	                  : dlsym(RTLD_DEFAULT, name);
	Dl_info di;
	if (!w || !dladdr(w, &di) || di.dli_fbase != self_base)
		return NULL;
	return w;
}

/* What an unresolved lazy reference of the loaded objects would bind to:
 * the first definition in the new handle's own scope (RTLD_DEEPBIND puts
 * it first). */
static void *lazy_target(void *h, const char *name, const char *version)
{
	return version ? dlvsym(h, name, version) : dlsym(h, name);
}

/* Interposed names without a member in struct sf_curl_real (the share
 * interface, when the library interposes it): their wrappers forward to
 * the definition in the flavour's libcurl, which is also what the new
 * handle's own scope binds them to. */
static const char *const other_syms[] = {
	"curl_share_init",
	"curl_share_setopt",
	"curl_share_cleanup",
};
#define N_OTHER (sizeof(other_syms) / sizeof(other_syms[0]))

static const char *const flavour_soname[SF_CURL_FLAVOURS] = {
	[SF_CURL_OPENSSL] = "libcurl.so.4",
	[SF_CURL_GNUTLS] = "libcurl-gnutls.so.4",
};

/* The real function behind an interposed name without a sf_curl_real
 * member: the definition the handle's scope finds, if it lies in the
 * flavour's libcurl. */
static void *other_real(void *h, const char *name, const char *v,
                        enum sf_curl_flavour fl)
{
	void *real = lazy_target(h, name, v);
	Dl_info di;
	if (!real || !dladdr(real, &di) || !di.dli_fname)
		return NULL;
	const char *base = strrchr(di.dli_fname, '/');
	base = base ? base + 1 : di.dli_fname;
	return strcmp(base, flavour_soname[fl]) == 0 ? real : NULL;
}

/* Per flavour: the versioned references, and for the default flavour the
 * unversioned ones too, as the version script binds them. */
static size_t curl_routes(struct sf_got_route *out, const void *self_base,
                          void *h)
{
	size_t n = 0;
	for (int fl = 0; fl < SF_CURL_FLAVOURS; fl++) {
		const struct sf_curl_real *api = sf_real_curl(fl);
		for (int unversioned = 0; unversioned < 2; unversioned++) {
			if (unversioned && fl != SF_CURL_OPENSSL)
				continue;
			const char *v = unversioned ? NULL
			                            : flavour_version[fl];
			for (size_t i = 0; i < N_CURL + N_OTHER; i++) {
				const char *name =
				        i < N_CURL ? curl_syms[i].name
				                   : other_syms[i - N_CURL];
				void *w = shim_wrapper(name, v, self_base);
				if (!w)
					continue;
				void *real =
				        i < N_CURL
				                ? *(void *const
				                            *)((const char *)
				                                       api +
				                               curl_syms[i].off)
				                : other_real(h, name, v, fl);
				if (!real)
					continue;
				out[n++] = (struct sf_got_route){
					.name = name,
					.version = v,
					.real = real,
					.wrapper = w,
					.lazy_ok = lazy_target(h, name, v) ==
					           real,
					.group = SF_GOT_CURL,
				};
			}
		}
	}
	return n;
}

static void route(const struct sf_dl_snap *before, void *h)
{
	const struct sf_config *c = sf_config();
	struct link_map *lm = NULL;
	if (dlinfo(h, RTLD_DI_LINKMAP, &lm) != 0 || !lm)
		return;
	/* Cheap first: nothing happens unless the load brought libcurl in
	 * or something that needs it. */
	struct sf_dl_snap mine;
	bool uses_curl;
	if (!sf_got_loaded_by(before, (uintptr_t)lm->l_ld, &mine, &uses_curl))
		return;
	Dl_info di;
	if (!uses_curl || !dladdr((void *)route, &di)) {
		sf_dl_snap_free(&mine);
		return;
	}
	struct sf_got_route
	        routes[SF_CURL_FLAVOURS * (N_CURL + N_OTHER) * 2 + 1];
	size_t n = 0;
	if (c->curl)
		n = curl_routes(routes, di.dli_fbase, h);
	sf_getaddrinfo_fn *gai = sf_real_getaddrinfo();
	void *w = shim_wrapper("getaddrinfo", NULL, di.dli_fbase);
	if (c->dns && gai && w)
		routes[n++] = (struct sf_got_route){
			.name = "getaddrinfo",
			.version = "*",
			.real = (void *)gai,
			.wrapper = w,
			.lazy_ok = lazy_target(h, "getaddrinfo", NULL) ==
			           (void *)gai,
			.group = SF_GOT_DNS,
		};
	if (n) {
		struct sf_got_job job = { .only = &mine,
			                  .routes = routes,
			                  .nroutes = n };
		sf_got_route_new(&job);
	}
	sf_dl_snap_free(&mine);
}

void *sf_dl_deep_open(const char *file, int mode)
{
	sf_dlopen_fn *real = sf_dl_resolve();
	if (!real)
		return NULL; /* sf_dl_deep_wanted said yes: cannot happen */
	/* Nothing below may be cut short by a cancellation: the handle would
	 * leak and slots could stay half-routed. */
	int cs;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cs);
	struct sf_dl_snap before;
	bool have = sf_dl_snap_take(&before);
	void *h = real(file, mode);
	if (h && have) {
		/* The caller sees errno and dlerror() as dlopen left them:
		 * a failed lookup of ours must not show. */
		int e = errno;
		sf_guard_enter();
		route(&before, h);
		sf_guard_leave();
		(void)dlerror();
		errno = e;
	}
	sf_dl_snap_free(&before);
	pthread_setcancelstate(cs, NULL);
	return h;
}
