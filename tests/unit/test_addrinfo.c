/* test_addrinfo.c - sf_addrinfo_copy against lists made by glibc itself.
 *
 * The copy must be deep, keep the order and every field, and use glibc's
 * layout (ai_addr right after the node) so that the real freeaddrinfo
 * releases it: under ASan a wrong layout or a shared pointer shows up as a
 * bad free, a double free or a leak. */
#include "dns/sf_addrinfo.h"
#include "sf_unit_addrinfo.h"
#include "sf_unit_main.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Same fields node for node, and no memory shared with the source. */
static void assert_same_list(const struct addrinfo *src,
                             const struct addrinfo *cp)
{
	assert_same_nodes(src, cp, true);
}

/* One loop iteration per input. */
START_TEST(test_copy_of_glibc_list)
{
	struct addrinfo *src = resolve(nodes[_i], AI_CANONNAME);
	/* glibc: several nodes (one per socket type), name on the first. */
	ck_assert_uint_gt(length(src), 1);
	ck_assert_ptr_nonnull(src->ai_canonname);
	for (struct addrinfo *p = src->ai_next; p; p = p->ai_next)
		ck_assert_ptr_null(p->ai_canonname);

	struct addrinfo *a = sf_addrinfo_copy(src);
	struct addrinfo *b = sf_addrinfo_copy(src);
	ck_assert_ptr_nonnull(a);
	assert_same_list(src, a);
	assert_same_list(a, b);
	/* Deep: with the source gone, the copies are intact (ASan reports a
	 * use after free otherwise), and each is released by glibc itself. */
	freeaddrinfo(src);
	assert_same_list(a, b);
	ck_assert_uint_gt(length(a), 1);
	ck_assert_ptr_nonnull(a->ai_canonname);
	for (struct addrinfo *p = a->ai_next; p; p = p->ai_next)
		ck_assert_ptr_null(p->ai_canonname);
	freeaddrinfo(a);
	freeaddrinfo(b);
}
END_TEST

/* Order across families is kept, and a name is copied wherever it is:
 * two glibc lists chained (v4 then v6) are copied as one. */
START_TEST(test_copy_keeps_order_and_names)
{
	struct addrinfo *v4 = resolve("127.0.0.1", AI_CANONNAME),
	                *v6 = resolve("::1", AI_CANONNAME);
	struct addrinfo *last = v4;
	while (last->ai_next)
		last = last->ai_next;
	last->ai_next = v6;
	struct addrinfo *cp = sf_addrinfo_copy(v4);
	assert_same_list(v4, cp);
	unsigned n4 = 0;
	struct addrinfo *p = cp;
	for (; p && p->ai_family == AF_INET; p = p->ai_next)
		n4++;
	ck_assert_uint_eq(n4, length(v4) - length(v6));
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(p->ai_canonname, v6->ai_canonname);
	last->ai_next = NULL;
	freeaddrinfo(v4);
	freeaddrinfo(v6);
	freeaddrinfo(cp);
}
END_TEST

START_TEST(test_copy_null)
{
	ck_assert_ptr_null(sf_addrinfo_copy(NULL));
}
END_TEST

/* sf_addrinfo_free releases a copy just as freeaddrinfo does. */
START_TEST(test_sf_free)
{
	struct addrinfo *src = resolve("localhost", AI_CANONNAME);
	struct addrinfo *cp = sf_addrinfo_copy(src);
	assert_same_list(src, cp);
	sf_addrinfo_free(cp);
	sf_addrinfo_free(NULL);
	freeaddrinfo(src);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("addrinfo");
	TCase *tc = tcase_create("copy");
	tcase_add_loop_test(tc, test_copy_of_glibc_list, 0,
	                    sizeof(nodes) / sizeof(*nodes));
	tcase_add_test(tc, test_copy_keeps_order_and_names);
	tcase_add_test(tc, test_copy_null);
	tcase_add_test(tc, test_sf_free);
	suite_add_tcase(s, tc);
	return sf_unit_run(s);
}
