/* test_curl_handle.c - the per-handle record of setopt calls: the last
 * setopt wins across options that write one libcurl field (TIMEOUT and
 * TIMEOUT_MS, CONNECTTIMEOUT and CONNECTTIMEOUT_MS), as
 * sf_curl_handle_limits reports them, across curl_easy_reset and
 * curl_easy_duphandle (issue 6, defect 4); ids the option table lacks are
 * not stored and mark the handle.  No libcurl call is made: the record is
 * driven as the setopt hook drives it. */
#include "curl/sf_curl_handle.h"
#include "curl/sf_curl_opts.h"
#include "sf_unit_main.h"

#include <check.h>
#include <limits.h>
#include <stdint.h>

static const struct sf_curl_real fake_api = { .flavour = SF_CURL_OPENSSL };

static void set(struct sf_curl_handle *h, CURLoption id, long v)
{
	sf_curl_handle_set(h, id, SF_OPTK_LONG,
	                   (union sf_curl_optval){ .l = v });
}

static long timeout(const struct sf_curl_handle *h)
{
	struct sf_curl_limits lim;
	sf_curl_handle_limits(h, &lim);
	return lim.timeout_ms;
}

static long connect_timeout(const struct sf_curl_handle *h)
{
	struct sf_curl_limits lim;
	sf_curl_handle_limits(h, &lim);
	return lim.connect_timeout_ms;
}

static struct sf_curl_handle *fresh(uintptr_t fake_easy)
{
	struct sf_curl_handle *h =
	        sf_curl_handle_add((CURL *)fake_easy, &fake_api);
	ck_assert_ptr_nonnull(h);
	return h;
}

START_TEST(last_setopt_wins)
{
	struct sf_curl_handle *h = fresh(0x1000);
	ck_assert_int_eq(timeout(h), 0);
	set(h, CURLOPT_TIMEOUT_MS, 300);
	set(h, CURLOPT_TIMEOUT, 0);
	ck_assert_int_eq(timeout(h), 0); /* no limit */
	set(h, CURLOPT_TIMEOUT_MS, 100);
	ck_assert_int_eq(timeout(h), 100);
	set(h, CURLOPT_TIMEOUT, 30);
	ck_assert_int_eq(timeout(h), 30000);
	set(h, CURLOPT_TIMEOUT_MS, 100); /* the same value again: later */
	ck_assert_int_eq(timeout(h), 100);

	set(h, CURLOPT_CONNECTTIMEOUT_MS, 250);
	set(h, CURLOPT_CONNECTTIMEOUT, 2);
	ck_assert_int_eq(connect_timeout(h), 2000);
	set(h, CURLOPT_CONNECTTIMEOUT_MS, 250);
	ck_assert_int_eq(connect_timeout(h), 250);
	ck_assert_int_eq(timeout(h), 100); /* the pairs do not mix */

	/* libcurl reads _MS as unsigned long, capped at UINT_MAX. */
	set(h, CURLOPT_TIMEOUT_MS, -1);
	ck_assert_int_eq(timeout(h), (long)UINT_MAX);

	set(h, CURLOPT_LOW_SPEED_LIMIT, 10);
	set(h, CURLOPT_LOW_SPEED_TIME, 3);
	struct sf_curl_limits lim;
	sf_curl_handle_limits(h, &lim);
	ck_assert_int_eq(lim.low_speed_limit, 10);
	ck_assert_int_eq(lim.low_speed_time, 3);
	sf_curl_handle_remove((CURL *)0x1000);
}
END_TEST

START_TEST(reset_and_duphandle_keep_libcurls_view)
{
	struct sf_curl_handle *h = fresh(0x2000);
	set(h, CURLOPT_TIMEOUT_MS, 100);
	set(h, CURLOPT_TIMEOUT, 30);
	set(h, CURLOPT_NOBODY, 1);
	set(h, CURLOPT_HTTPGET, 1);

	/* A dup has the same options in the same order. */
	struct sf_curl_handle *d = fresh(0x3000);
	sf_curl_handle_copy_opts(d, h);
	ck_assert_int_eq(timeout(d), 30000);
	ck_assert(sf_curl_method_is_get(&d->method));
	set(d, CURLOPT_TIMEOUT_MS, 5); /* later than anything copied */
	ck_assert_int_eq(timeout(d), 5);
	ck_assert_int_eq(timeout(h), 30000);

	/* The copy keeps libcurl's method, not a replay in id order:
	 * NOBODY=1 then POST=0 is still a HEAD (POST=0 only sets GET). */
	struct sf_curl_handle *e = fresh(0x4000);
	set(e, CURLOPT_NOBODY, 1);
	set(e, CURLOPT_POST, 0);
	ck_assert(!sf_curl_method_is_get(&e->method));
	struct sf_curl_handle *f = fresh(0x5000);
	sf_curl_handle_copy_opts(f, e);
	ck_assert(!sf_curl_method_is_get(&f->method));

	sf_curl_handle_clear(h); /* curl_easy_reset */
	ck_assert_int_eq(timeout(h), 0);
	ck_assert(sf_curl_method_is_get(&h->method));
	set(h, CURLOPT_TIMEOUT, 1);
	ck_assert_int_eq(timeout(h), 1000);

	for (uintptr_t a = 0x2000; a <= 0x5000; a += 0x1000)
		sf_curl_handle_remove((CURL *)a);
}
END_TEST

START_TEST(unknown_ids_mark_the_handle)
{
	struct sf_curl_handle *h = fresh(0x6000);
	sf_curl_handle_set(h, (CURLoption)40999, SF_OPTK_PTR,
	                   (union sf_curl_optval){ .p = (void *)1 });
	ck_assert(h->unknown);
	ck_assert_ptr_null(sf_curl_handle_get(h, (CURLoption)40999));
	ck_assert_uint_eq(h->nopts, 0);
	sf_curl_handle_clear(h);
	ck_assert(!h->unknown);
	sf_curl_handle_remove((CURL *)0x6000);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("curl_handle");
	TCase *tc = tcase_create("curl_handle");
	tcase_add_test(tc, last_setopt_wins);
	tcase_add_test(tc, reset_and_duphandle_keep_libcurls_view);
	tcase_add_test(tc, unknown_ids_mark_the_handle);
	suite_add_tcase(s, tc);
	return sf_unit_run(s);
}
