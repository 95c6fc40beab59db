/* sf_addrinfo.c - addrinfo lists in glibc's memory layout.
 *
 * glibc allocates each node as malloc(sizeof(struct addrinfo) + addrlen)
 * with ai_addr pointing just past the struct, strdup()s ai_canonname, and
 * its freeaddrinfo() frees exactly those two blocks per node.  Building
 * copies the same way lets every caller hand its copy to the real
 * freeaddrinfo, so the shim need not hook it.  (musl frees differently,
 * which is why the DNS hook only runs over glibc.) */
#include "dns/sf_addrinfo.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

void sf_addrinfo_free(struct addrinfo *list)
{
	while (list) {
		struct addrinfo *next = list->ai_next;
		free(list->ai_canonname);
		free(list);
		list = next;
	}
}

struct addrinfo *sf_addrinfo_copy(const struct addrinfo *src)
{
	struct addrinfo *head = NULL, **tail = &head;
	for (; src; src = src->ai_next) {
		size_t addrlen = src->ai_addr ? src->ai_addrlen : 0;
		struct addrinfo *n = malloc(sizeof(*n) + addrlen);
		if (!n)
			goto oom;
		*n = *src;
		n->ai_next = NULL;
		n->ai_canonname = NULL;
		n->ai_addr = src->ai_addr ? (struct sockaddr *)(n + 1) : NULL;
		if (addrlen)
			memcpy(n + 1, src->ai_addr, addrlen);
		*tail = n;
		tail = &n->ai_next;
		if (src->ai_canonname &&
		    !(n->ai_canonname = strdup(src->ai_canonname)))
			goto oom;
	}
	return head;
oom:
	sf_addrinfo_free(head);
	return NULL;
}

/* ---- packed answers ---------------------------------------------------- */

/* Layout (native byte order: both ends are processes of one machine):
 *   header: magic, rc, errno, node count                  4 x 32 bits
 *   node:   flags, family, socktype, protocol, addrlen,
 *           address present (0/1), canonname length
 *           (NO_NAME: NULL)                               7 x 32 bits
 *           then the address (addrlen bytes when present)
 *           then the name (its length, no NUL)
 * Read with memcpy: the bytes may sit at any alignment. */
#define PACK_MAGIC 0x53464131u /* "SFA1" */
#define NO_NAME UINT32_MAX

struct packer {
	unsigned char *p;
	size_t len, cap;
	bool full;
};

static void put(struct packer *k, const void *v, size_t n)
{
	if (!n) /* v may be NULL then: memcpy wants a pointer anyway */
		return;
	if (k->full || n > k->cap - k->len) {
		k->full = true;
		return;
	}
	memcpy(k->p + k->len, v, n);
	k->len += n;
}

static void put32(struct packer *k, uint32_t v)
{
	put(k, &v, sizeof(v));
}

/* The least address length a node of family may carry (pack and unpack
 * hold to it alike). */
static size_t min_addrlen(int family)
{
	switch (family) {
	case AF_INET:
		return sizeof(struct sockaddr_in);
	case AF_INET6:
		return sizeof(struct sockaddr_in6);
	default:
		return sizeof(sa_family_t);
	}
}

size_t sf_addrinfo_pack(void *buf, size_t cap, int rc, int err,
                        const struct addrinfo *list)
{
	struct packer k = { buf, 0, cap, false };
	uint32_t count = 0;
	if (rc != 0)
		list = NULL;
	for (const struct addrinfo *a = list; a; a = a->ai_next)
		count++;
	put32(&k, PACK_MAGIC);
	put32(&k, (uint32_t)rc);
	put32(&k, (uint32_t)err);
	put32(&k, count);
	for (const struct addrinfo *a = list; a && !k.full; a = a->ai_next) {
		size_t nl = a->ai_canonname ? strlen(a->ai_canonname) : 0;
		/* What unpacking refuses is not packed: followers then
		 * call alone rather than fail to read the answer. */
		if (a->ai_addrlen > sizeof(struct sockaddr_storage) ||
		    (a->ai_addr && a->ai_addrlen < min_addrlen(a->ai_family)) ||
		    nl >= NO_NAME)
			return 0;
		put32(&k, (uint32_t)a->ai_flags);
		put32(&k, (uint32_t)a->ai_family);
		put32(&k, (uint32_t)a->ai_socktype);
		put32(&k, (uint32_t)a->ai_protocol);
		put32(&k, (uint32_t)a->ai_addrlen);
		put32(&k, a->ai_addr != NULL);
		put32(&k, a->ai_canonname ? (uint32_t)nl : NO_NAME);
		if (a->ai_addr)
			put(&k, a->ai_addr, a->ai_addrlen);
		put(&k, a->ai_canonname, nl);
	}
	return k.full ? 0 : k.len;
}

struct reader {
	const unsigned char *p;
	size_t len, off;
};

static bool get(struct reader *r, void *v, size_t n)
{
	if (n > r->len - r->off)
		return false;
	memcpy(v, r->p + r->off, n);
	r->off += n;
	return true;
}

int sf_addrinfo_unpack(const void *buf, size_t len, int *rc, int *err,
                       struct addrinfo **list)
{
	struct reader r = { buf, len, 0 };
	uint32_t h[4];
	struct addrinfo *head = NULL, **tail = &head;
	int fail = EINVAL;
	*list = NULL;
	if (!get(&r, h, sizeof(h)) || h[0] != PACK_MAGIC ||
	    (h[1] != 0 && h[3] != 0))
		goto bad;
	for (uint32_t i = 0; i < h[3]; i++) {
		uint32_t f[7];
		if (!get(&r, f, sizeof(f)) ||
		    f[4] > sizeof(struct sockaddr_storage) || f[5] > 1)
			goto bad;
		size_t addrlen = f[5] ? f[4] : 0;
		/* The bytes come from another process (maybe a buggy one):
		 * an address shorter than its family's sockaddr would have
		 * the host read past the block (sin_addr of a 0-byte
		 * AF_INET address).  glibc never makes one. */
		if (f[5] && addrlen < min_addrlen((int)f[1]))
			goto bad;
		struct addrinfo *n = malloc(sizeof(*n) + addrlen);
		if (!n) {
			fail = ENOMEM;
			goto bad;
		}
		memset(n, 0, sizeof(*n));
		*tail = n;
		tail = &n->ai_next;
		n->ai_flags = (int)f[0];
		n->ai_family = (int)f[1];
		n->ai_socktype = (int)f[2];
		n->ai_protocol = (int)f[3];
		n->ai_addrlen = (socklen_t)f[4];
		n->ai_addr = f[5] ? (struct sockaddr *)(n + 1) : NULL;
		if (!get(&r, n + 1, addrlen))
			goto bad;
		if (f[6] != NO_NAME) {
			if (f[6] > r.len - r.off ||
			    memchr(r.p + r.off, '\0', f[6]))
				goto bad;
			if (!(n->ai_canonname = malloc((size_t)f[6] + 1))) {
				fail = ENOMEM;
				goto bad;
			}
			get(&r, n->ai_canonname, f[6]);
			n->ai_canonname[f[6]] = '\0';
		}
	}
	if (r.off != len)
		goto bad;
	*rc = (int)h[1];
	*err = (int)h[2];
	*list = head;
	return 0;
bad:
	sf_addrinfo_free(head);
	errno = fail;
	return -1;
}
