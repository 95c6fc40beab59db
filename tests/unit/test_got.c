/* test_got.c - the GOT patcher (shim/dl/sf_got.c) on real objects, without
 * RTLD_DEEPBIND (which the sanitizer runtimes refuse) so that it also runs
 * under ASan and TSan: the patcher only looks at which objects are new and
 * what their slots hold, not at how they were loaded.
 *
 *  - libcurl-gnutls.so.4 (full RELRO, BIND_NOW): its getaddrinfo slot is
 *    pointed at a fake; a transfer then resolves through the fake, and the
 *    object's mappings have the same protections afterwards as before;
 *  - the binding fixture (links libcurl.so.4): all or nothing (one slot in
 *    an unexpected state: none changes), versions (a route for another
 *    flavour's version leaves the slots alone), lazily bound slots (only
 *    with lazy_ok);
 *  - which objects a dlopen added: the new members of its DT_NEEDED
 *    closure, never an object loaded before, nor one another dlopen added
 *    meanwhile. */
#include "dl/sf_dl_snap.h"
#include "dl/sf_got.h"
#include "sf_unit_main.h"

#include <check.h>
#include <curl/curl.h>
#include <dlfcn.h>
#include <link.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../fixtures/sf_binding.h"

static atomic_int gai_calls, init_calls;

static int fake_gai(const char *node, const char *service,
                    const struct addrinfo *hints, struct addrinfo **res)
{
	(void)node;
	(void)service;
	(void)hints;
	*res = NULL;
	atomic_fetch_add(&gai_calls, 1);
	return EAI_NONAME;
}

static CURL *fake_init(void)
{
	atomic_fetch_add(&init_calls, 1);
	return NULL;
}

static void fake_cleanup(CURL *h)
{
	(void)h;
}

/* The lines of /proc/self/maps that name `what`: addresses and modes. */
static char *maps_of(const char *what)
{
	FILE *f = fopen("/proc/self/maps", "r");
	ck_assert_ptr_nonnull(f);
	size_t cap = 1 << 16, len = 0;
	char *out = calloc(1, cap), line[512];
	ck_assert_ptr_nonnull(out);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, what)) {
			size_t n = strlen(line);
			ck_assert_uint_lt(len + n, cap);
			memcpy(out + len, line, n + 1);
			len += n;
		}
	fclose(f);
	return out;
}

/* The objects that loading h added since before (sf_got_loaded_by). */
static struct sf_dl_snap added(const struct sf_dl_snap *before, void *h,
                               bool *uses_curl)
{
	struct link_map *lm = NULL;
	ck_assert_int_eq(dlinfo(h, RTLD_DI_LINKMAP, &lm), 0);
	struct sf_dl_snap mine;
	ck_assert(sf_got_loaded_by(before, (uintptr_t)lm->l_ld, &mine,
	                           uses_curl));
	return mine;
}

START_TEST(dns_route_in_full_relro_libcurl)
{
	if (dlopen("libcurl-gnutls.so.4", RTLD_NOLOAD | RTLD_LAZY))
		ck_abort_msg("libcurl-gnutls.so.4 is loaded already");
	struct sf_dl_snap before;
	ck_assert(sf_dl_snap_take(&before));
	void *h = dlopen("libcurl-gnutls.so.4", RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		sf_dl_snap_free(&before);
		fprintf(stderr, "test_got: no libcurl-gnutls.so.4, skipped\n");
		return;
	}
	char *maps_before = maps_of("libcurl-gnutls");
	struct sf_got_route r = {
		.name = "getaddrinfo",
		.version = "*",
		.real = dlsym(RTLD_DEFAULT, "getaddrinfo"),
		.wrapper = (void *)fake_gai,
		.group = SF_GOT_DNS,
	};
	ck_assert_ptr_nonnull(r.real);
	bool uses_curl;
	struct sf_dl_snap mine = added(&before, h, &uses_curl);
	ck_assert(uses_curl);
	ck_assert_uint_ge(mine.n, 1);
	struct sf_got_job job = { .only = &mine, .routes = &r, .nroutes = 1 };
	sf_got_route_new(&job);
	ck_assert_uint_eq(job.objects, 1);
	ck_assert_uint_ge(job.slots, 1);
	char *maps_after = maps_of("libcurl-gnutls");
	ck_assert_str_eq(maps_before, maps_after);

	/* Patched again: nothing left to do (the slots hold the wrapper). */
	job.objects = job.slots = 0;
	sf_got_route_new(&job);
	ck_assert_uint_eq(job.slots, 0);

	CURL *(*init)(void) = (CURL * (*)(void)) dlsym(h, "curl_easy_init");
	CURLcode (*setopt)(CURL *, CURLoption, ...) =
	        (CURLcode(*)(CURL *, CURLoption, ...))dlsym(h,
	                                                    "curl_easy_setopt");
	CURLcode (*perform)(CURL *) =
	        (CURLcode(*)(CURL *))dlsym(h, "curl_easy_perform");
	void (*cleanup)(CURL *) =
	        (void (*)(CURL *))dlsym(h, "curl_easy_cleanup");
	ck_assert(init && setopt && perform && cleanup);
	CURL *e = init();
	ck_assert_ptr_nonnull(e);
	setopt(e, CURLOPT_URL, "http://sfshim-got.invalid/");
	setopt(e, CURLOPT_NOSIGNAL, 1L);
	ck_assert_int_eq(perform(e), CURLE_COULDNT_RESOLVE_HOST);
	cleanup(e);
	ck_assert_int_ge(atomic_load(&gai_calls), 1);
	free(maps_before);
	free(maps_after);
	sf_dl_snap_free(&mine);
	sf_dl_snap_free(&before);
}
END_TEST

static char binding[4096], plugin[4096];

/* Loads the binding afresh, routes, returns the job's slot count and
 * leaves the handle in *out. */
static unsigned load_and_route(int mode, const struct sf_got_route *routes,
                               size_t n, void **out)
{
	struct sf_dl_snap before;
	ck_assert(sf_dl_snap_take(&before));
	void *h = dlopen(binding, mode | RTLD_LOCAL);
	ck_assert_msg(h != NULL, "%s", dlerror());
	bool uses_curl;
	struct sf_dl_snap mine = added(&before, h, &uses_curl);
	ck_assert(uses_curl);
	struct sf_got_job job = { .only = &mine,
		                  .routes = routes,
		                  .nroutes = n };
	sf_got_route_new(&job);
	sf_dl_snap_free(&mine);
	sf_dl_snap_free(&before);
	*out = h;
	return job.slots;
}

/* Runs one transfer through the binding: with curl_easy_init routed to
 * fake_init it fails with "no handle" (-1). */
static int binding_rc(void *h)
{
	binding_fetch_many_fn *many =
	        (binding_fetch_many_fn *)dlsym(h, "binding_fetch_many");
	ck_assert_ptr_nonnull(many);
	struct binding_result r[1];
	memset(r, 0, sizeof(r));
	many("http://127.0.0.1:1/", 1, r);
	return r[0].rc;
}

static void routes_for(struct sf_got_route r[2], const char *version)
{
	r[0] = (struct sf_got_route){
		.name = "curl_easy_init",
		.version = version,
		.real = dlvsym(RTLD_DEFAULT, "curl_easy_init",
		               "CURL_OPENSSL_4"),
		.wrapper = (void *)fake_init,
		.group = SF_GOT_CURL,
	};
	r[1] = (struct sf_got_route){
		.name = "curl_easy_cleanup",
		.version = version,
		.real = dlvsym(RTLD_DEFAULT, "curl_easy_cleanup",
		               "CURL_OPENSSL_4"),
		.wrapper = (void *)fake_cleanup,
		.group = SF_GOT_CURL,
	};
	ck_assert(r[0].real && r[1].real);
}

START_TEST(binding_all_or_nothing)
{
	struct sf_got_route r[2];
	void *h;
	routes_for(r, "CURL_OPENSSL_4");
	void *right = r[1].real;
	r[1].real = (void *)fake_cleanup; /* not what the slot holds */
	ck_assert_uint_eq(load_and_route(RTLD_NOW, r, 2, &h), 0);
	int before = atomic_load(&init_calls);
	ck_assert_int_ne(binding_rc(h), -1); /* libcurl's own init ran */
	ck_assert_int_eq(atomic_load(&init_calls), before);
	dlclose(h);

	r[1].real = right;
	ck_assert_uint_ge(load_and_route(RTLD_NOW, r, 2, &h), 2);
	ck_assert_int_eq(binding_rc(h), -1);
	ck_assert_int_eq(atomic_load(&init_calls), before + 1);
	dlclose(h);
}
END_TEST

START_TEST(binding_other_version_left_alone)
{
	struct sf_got_route r[2];
	void *h;
	routes_for(r, "CURL_GNUTLS_3");
	ck_assert_uint_eq(load_and_route(RTLD_NOW, r, 2, &h), 0);
	routes_for(r, NULL); /* unversioned references only */
	dlclose(h);
	ck_assert_uint_eq(load_and_route(RTLD_NOW, r, 2, &h), 0);
	dlclose(h);
}
END_TEST

START_TEST(binding_lazy_slots)
{
	struct sf_got_route r[2];
	void *h;
	routes_for(r, "CURL_OPENSSL_4");
	/* Unresolved lazy stubs are in no state the routes know. */
	ck_assert_uint_eq(load_and_route(RTLD_LAZY, r, 2, &h), 0);
	dlclose(h);
	r[0].lazy_ok = r[1].lazy_ok = true;
	ck_assert_uint_ge(load_and_route(RTLD_LAZY, r, 2, &h), 2);
	int before = atomic_load(&init_calls);
	ck_assert_int_eq(binding_rc(h), -1);
	ck_assert_int_eq(atomic_load(&init_calls), before + 1);
	dlclose(h);
}
END_TEST

/* Only what the dlopen added counts: not an object loaded before the
 * snapshot, not one loaded since by another dlopen (in a program, maybe
 * another thread's, still being relocated). */
START_TEST(only_what_the_load_added)
{
	struct sf_got_route r[2];
	routes_for(r, "CURL_OPENSSL_4");
	void *h = dlopen(binding, RTLD_NOW | RTLD_LOCAL);
	ck_assert_ptr_nonnull(h);
	struct sf_dl_snap now;
	ck_assert(sf_dl_snap_take(&now));
	bool uses_curl = true;
	struct sf_dl_snap mine = added(&now, h, &uses_curl);
	ck_assert_uint_eq(mine.n, 0);
	ck_assert(!uses_curl);
	struct sf_got_job job = { .only = &mine, .routes = r, .nroutes = 2 };
	sf_got_route_new(&job);
	ck_assert_uint_eq(job.slots, 0);
	sf_dl_snap_free(&mine);
	sf_dl_snap_free(&now);
	dlclose(h);

	ck_assert(sf_dl_snap_take(&now));
	void *other = dlopen(plugin, RTLD_NOW | RTLD_LOCAL);
	ck_assert_msg(other != NULL, "%s", dlerror());
	h = dlopen(binding, RTLD_NOW | RTLD_LOCAL);
	ck_assert_ptr_nonnull(h);
	mine = added(&now, h, &uses_curl);
	ck_assert(uses_curl);
	ck_assert_uint_eq(mine.n, 1); /* the binding: libcurl was there */
	struct link_map *lm = NULL, *olm = NULL;
	ck_assert_int_eq(dlinfo(h, RTLD_DI_LINKMAP, &lm), 0);
	ck_assert_int_eq(dlinfo(other, RTLD_DI_LINKMAP, &olm), 0);
	ck_assert(sf_dl_snap_has(&mine, (uintptr_t)lm->l_ld));
	ck_assert(!sf_dl_snap_has(&mine, (uintptr_t)olm->l_ld));
	sf_dl_snap_free(&mine);
	sf_dl_snap_free(&now);
	dlclose(h);
	dlclose(other);
}
END_TEST

START_TEST(names_libcurl)
{
	ck_assert(sf_got_names_libcurl("libcurl.so.4"));
	ck_assert(sf_got_names_libcurl("libcurl-gnutls.so.4"));
	ck_assert(sf_got_names_libcurl("libcurl-nss.so.4"));
	ck_assert(!sf_got_names_libcurl("libcurlpp.so.1"));
	ck_assert(!sf_got_names_libcurl("libc.so.6"));
	ck_assert(!sf_got_names_libcurl("libcurl"));
}
END_TEST

int main(void)
{
	const char *b = getenv("B");
	snprintf(binding, sizeof(binding), "%s/tests/libsf_binding_openssl.so",
	         b ? b : "build");
	snprintf(plugin, sizeof(plugin), "%s/tests/rpath/libsf_rpath_plugin.so",
	         b ? b : "build");
	/* The binding's libcurl, loaded before any snapshot: its functions
	 * are the routes' real ones, and it is never a new object. */
	if (!dlopen("libcurl.so.4", RTLD_NOW | RTLD_GLOBAL)) {
		fprintf(stderr, "test_got: %s\n", dlerror());
		return 1;
	}
	Suite *s = suite_create("got");
	TCase *tc = tcase_create("got");
	tcase_add_test(tc, dns_route_in_full_relro_libcurl);
	tcase_add_test(tc, binding_all_or_nothing);
	tcase_add_test(tc, binding_other_version_left_alone);
	tcase_add_test(tc, binding_lazy_slots);
	tcase_add_test(tc, only_what_the_load_added);
	tcase_add_test(tc, names_libcurl);
	suite_add_tcase(s, tc);
	return sf_unit_run(s);
}
