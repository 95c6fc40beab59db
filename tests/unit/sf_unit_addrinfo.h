/* sf_unit_addrinfo.h - glibc's own answers and the comparison of a copy
 * with its source, for the tests of the shim's addrinfo copies
 * (test_addrinfo.c: in-process copies, test_addrinfo_pack.c: rebuilt from
 * another process's packed bytes). */
#ifndef SF_UNIT_ADDRINFO_H
#define SF_UNIT_ADDRINFO_H

#include <check.h>
#include <netdb.h>
#include <stdbool.h>
#include <sys/socket.h>

/* Inputs that resolve without the network: numeric, and /etc/hosts. */
static const char *const nodes[] = { "127.0.0.1", "::1", "localhost" };

static struct addrinfo *resolve(const char *node, int flags)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_flags = flags };
	struct addrinfo *res = NULL;
	int rc = getaddrinfo(node, "80", &hints, &res);
	ck_assert_msg(rc == 0, "getaddrinfo(%s): %s", node, gai_strerror(rc));
	ck_assert_ptr_nonnull(res);
	return res;
}

static unsigned length(const struct addrinfo *p)
{
	unsigned n = 0;
	for (; p; p = p->ai_next)
		n++;
	return n;
}

/* Same fields node for node, in glibc's layout (ai_addr right after the
 * node); distinct: no memory shared with the source either. */
static void assert_same_nodes(const struct addrinfo *src,
                              const struct addrinfo *cp, bool distinct)
{
	ck_assert_uint_eq(length(cp), length(src));
	for (; src; src = src->ai_next, cp = cp->ai_next) {
		if (distinct)
			ck_assert_ptr_ne(cp, src);
		ck_assert_int_eq(cp->ai_flags, src->ai_flags);
		ck_assert_int_eq(cp->ai_family, src->ai_family);
		ck_assert_int_eq(cp->ai_socktype, src->ai_socktype);
		ck_assert_int_eq(cp->ai_protocol, src->ai_protocol);
		ck_assert_uint_eq(cp->ai_addrlen, src->ai_addrlen);
		if (src->ai_addr) {
			ck_assert_ptr_eq(cp->ai_addr,
			                 (struct sockaddr *)(cp + 1));
			ck_assert_mem_eq(cp->ai_addr, src->ai_addr,
			                 src->ai_addrlen);
		} else {
			ck_assert_ptr_null(cp->ai_addr);
		}
		if (src->ai_canonname) {
			ck_assert_ptr_nonnull(cp->ai_canonname);
			if (distinct)
				ck_assert_ptr_ne(cp->ai_canonname,
				                 src->ai_canonname);
			ck_assert_str_eq(cp->ai_canonname, src->ai_canonname);
		} else {
			ck_assert_ptr_null(cp->ai_canonname);
		}
	}
}

#endif
