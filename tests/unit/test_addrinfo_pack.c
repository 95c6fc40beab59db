/* test_addrinfo_pack.c - getaddrinfo answers packed for another process.
 *
 * A follower in another process rebuilds its own list from the packed
 * bytes: every field, address and canonical name, in order, in glibc's
 * layout so that the real freeaddrinfo frees it (ASan: a wrong layout is a
 * bad free or a leak).  Answers over the bound are not packed; bytes that
 * are not a packed answer (any truncation, bad lengths, trailing bytes)
 * are refused without allocating anything. */
#include "core/sf_xflight.h"
#include "dns/sf_addrinfo.h"
#include "sf_unit_addrinfo.h"
#include "sf_unit_main.h"

#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static unsigned char buf[SF_XRESULT_MAX];

/* Round trip of glibc's own answers, with and without a canonical name;
 * the copy is released by glibc's freeaddrinfo. */
START_TEST(test_round_trip)
{
	for (int canon = 0; canon < 2; canon++) {
		struct addrinfo *src =
		        resolve(nodes[_i], canon ? AI_CANONNAME : 0);
		size_t n = sf_addrinfo_pack(buf, sizeof(buf), 0, 0, src);
		ck_assert_uint_gt(n, 0);
		int rc = -1, err = -1;
		struct addrinfo *cp = NULL;
		ck_assert_int_eq(sf_addrinfo_unpack(buf, n, &rc, &err, &cp), 0);
		ck_assert_int_eq(rc, 0);
		ck_assert_int_eq(err, 0);
		ck_assert_ptr_nonnull(cp);
		assert_same_nodes(src, cp, false);
		ck_assert_int_eq(canon, cp->ai_canonname != NULL);
		freeaddrinfo(src);
		freeaddrinfo(cp);
	}
}
END_TEST

/* A failure travels as its code and errno, with no list (even if the
 * caller passed one along by mistake). */
START_TEST(test_errors)
{
	static const int codes[][2] = { { EAI_NONAME, 0 },
		                        { EAI_AGAIN, 0 },
		                        { EAI_FAIL, 0 },
		                        { EAI_SYSTEM, ECONNREFUSED } };
	struct addrinfo *stray = resolve("127.0.0.1", 0);
	for (size_t i = 0; i < sizeof(codes) / sizeof(*codes); i++) {
		size_t n = sf_addrinfo_pack(buf, sizeof(buf), codes[i][0],
		                            codes[i][1], stray);
		ck_assert_uint_eq(n, 16);
		int rc = 0, err = 0;
		struct addrinfo *cp = (struct addrinfo *)1;
		ck_assert_int_eq(sf_addrinfo_unpack(buf, n, &rc, &err, &cp), 0);
		ck_assert_int_eq(rc, codes[i][0]);
		ck_assert_int_eq(err, codes[i][1]);
		ck_assert_ptr_null(cp);
	}
	freeaddrinfo(stray);
}
END_TEST

/* Nodes made by hand: no address, an empty name, names on later nodes,
 * an address of the largest size. */
START_TEST(test_odd_nodes)
{
	struct sockaddr_storage ss;
	memset(&ss, 0xa5, sizeof(ss));
	struct addrinfo c = { .ai_family = AF_INET6,
		              .ai_addrlen = sizeof(ss),
		              .ai_addr = (struct sockaddr *)&ss,
		              .ai_canonname = (char *)"late.example" };
	struct addrinfo b = { .ai_flags = AI_CANONNAME,
		              .ai_canonname = (char *)"",
		              .ai_next = &c };
	struct addrinfo a = {
		.ai_flags = -1, .ai_protocol = 6, .ai_addrlen = 3, .ai_next = &b
	};
	size_t n = sf_addrinfo_pack(buf, sizeof(buf), 0, 0, &a);
	ck_assert_uint_gt(n, 0);
	int rc, err;
	struct addrinfo *cp;
	ck_assert_int_eq(sf_addrinfo_unpack(buf, n, &rc, &err, &cp), 0);
	assert_same_nodes(&a, cp, false);
	freeaddrinfo(cp);
}
END_TEST

/* Larger than the bound: not packed; exactly at the bound: packed. */
START_TEST(test_bound)
{
	enum { N = 400 };
	static struct addrinfo v[N];
	static struct sockaddr_in6 s6[N];
	for (int i = 0; i < N; i++) {
		s6[i].sin6_family = AF_INET6;
		s6[i].sin6_port = htons((uint16_t)i);
		v[i] = (struct addrinfo){ .ai_family = AF_INET6,
			                  .ai_addrlen = sizeof(s6[i]),
			                  .ai_addr = (struct sockaddr *)&s6[i],
			                  .ai_next = i + 1 < N ? &v[i + 1]
			                                       : NULL };
	}
	ck_assert_uint_eq(sf_addrinfo_pack(buf, sizeof(buf), 0, 0, v), 0);
	/* Find the longest list that fits, and check it round-trips. */
	int fit = N;
	while (fit > 0) {
		v[fit - 1].ai_next = NULL;
		if (sf_addrinfo_pack(buf, sizeof(buf), 0, 0, v))
			break;
		fit--;
	}
	ck_assert_int_gt(fit, 100);
	size_t n = sf_addrinfo_pack(buf, sizeof(buf), 0, 0, v);
	ck_assert_uint_le(n, sizeof(buf));
	ck_assert_uint_gt(n + 16 + sizeof(s6[0]) + 28, sizeof(buf) - 1);
	int rc, err;
	struct addrinfo *cp;
	ck_assert_int_eq(sf_addrinfo_unpack(buf, n, &rc, &err, &cp), 0);
	assert_same_nodes(v, cp, false);
	freeaddrinfo(cp);
	/* A buffer one byte short refuses it. */
	ck_assert_uint_eq(sf_addrinfo_pack(buf, n - 1, 0, 0, v), 0);
}
END_TEST

/* Every truncation of a packed answer, and trailing bytes, are refused,
 * with nothing allocated (LSan would see a leak). */
START_TEST(test_truncated)
{
	struct addrinfo *src = resolve("localhost", AI_CANONNAME);
	size_t n = sf_addrinfo_pack(buf, sizeof(buf) - 1, 0, 0, src);
	ck_assert_uint_gt(n, 16);
	for (size_t cut = 0; cut < n; cut++) {
		int rc = 7, err = 7;
		struct addrinfo *cp = (struct addrinfo *)1;
		errno = 0;
		ck_assert_int_eq(sf_addrinfo_unpack(buf, cut, &rc, &err, &cp),
		                 -1);
		ck_assert_int_eq(errno, EINVAL);
		ck_assert_ptr_null(cp);
		ck_assert_int_eq(rc, 7);
	}
	buf[n] = 0;
	struct addrinfo *cp;
	int rc, err;
	ck_assert_int_eq(sf_addrinfo_unpack(buf, n + 1, &rc, &err, &cp), -1);
	freeaddrinfo(src);
}
END_TEST

/* Field by field corruption: a bad magic, a list with a failure code, an
 * address longer than any sockaddr, a presence flag that is not 0/1, a
 * name with a NUL in it or longer than what follows. */
START_TEST(test_corrupt)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct addrinfo a = { .ai_family = AF_INET,
		              .ai_addrlen = sizeof(sin),
		              .ai_addr = (struct sockaddr *)&sin,
		              .ai_canonname = (char *)"abc" };
	size_t n = sf_addrinfo_pack(buf, sizeof(buf), 0, 0, &a);
	ck_assert_uint_eq(n, 16 + 28 + sizeof(sin) + 3);
	/* offsets: header 0..15, node fields 16..43 (addrlen at 32,
	 * present at 36, name length at 40), address, name. */
	static const struct {
		size_t off;
		uint32_t v;
	} bad[] = { { 0, 0x53464132u }, { 4, EAI_NONAME }, { 12, 2 },
		    { 32, 129 },        { 36, 2 },         { 40, 4 },
		    { 40, 1000000 } };
	unsigned char copy[sizeof(buf)];
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		memcpy(copy, buf, n);
		memcpy(copy + bad[i].off, &bad[i].v, 4);
		int rc, err;
		struct addrinfo *cp;
		ck_assert_msg(sf_addrinfo_unpack(copy, n, &rc, &err, &cp) == -1,
		              "corruption %zu accepted", i);
	}
	/* An address shorter than its family's sockaddr (here 2 bytes of
	 * an AF_INET one, then AF_INET6 with a sockaddr_in): the host would
	 * read sin_addr past the block. */
	static const struct {
		uint32_t family, addrlen;
	} shortaddr[] = { { AF_INET, 2 },
		          { AF_INET6, sizeof(struct sockaddr_in) },
		          { AF_UNIX, 1 } };
	for (size_t i = 0; i < sizeof(shortaddr) / sizeof(*shortaddr); i++) {
		struct addrinfo s = a;
		s.ai_family = (int)shortaddr[i].family;
		s.ai_addrlen = shortaddr[i].addrlen;
		/* Never packed (a follower would only fail to read it)... */
		ck_assert_uint_eq(
		        sf_addrinfo_pack(copy, sizeof(copy), 0, 0, &s), 0);
		/* ...and refused when another process wrote it anyway: the
		 * intact header and fields with family and addrlen changed,
		 * then that many address bytes and the name. */
		size_t m = 16 + 28;
		memcpy(copy, buf, m);
		memcpy(copy + 20, &shortaddr[i].family, 4);
		memcpy(copy + 32, &shortaddr[i].addrlen, 4);
		memcpy(copy + m, &sin, shortaddr[i].addrlen);
		m += shortaddr[i].addrlen;
		memcpy(copy + m, "abc", 3);
		m += 3;
		int rc, err;
		struct addrinfo *cp;
		errno = 0;
		ck_assert_msg(sf_addrinfo_unpack(copy, m, &rc, &err, &cp) == -1,
		              "short address %zu accepted", i);
		ck_assert_int_eq(errno, EINVAL);
	}
	memcpy(copy, buf, n);
	copy[n - 2] = '\0';
	int rc, err;
	struct addrinfo *cp;
	ck_assert_int_eq(sf_addrinfo_unpack(copy, n, &rc, &err, &cp), -1);
	/* The intact bytes still unpack. */
	ck_assert_int_eq(sf_addrinfo_unpack(buf, n, &rc, &err, &cp), 0);
	assert_same_nodes(&a, cp, false);
	freeaddrinfo(cp);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("addrinfo_pack");
	TCase *tc = tcase_create("pack");
	tcase_add_loop_test(tc, test_round_trip, 0,
	                    sizeof(nodes) / sizeof(*nodes));
	tcase_add_test(tc, test_errors);
	tcase_add_test(tc, test_odd_nodes);
	tcase_add_test(tc, test_bound);
	tcase_add_test(tc, test_truncated);
	tcase_add_test(tc, test_corrupt);
	suite_add_tcase(s, tc);
	return sf_unit_run(s);
}
