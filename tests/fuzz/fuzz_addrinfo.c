/* fuzz_addrinfo.c - sf_addrinfo_copy against lists built from the input.
 *
 * Source lists are built the way glibc builds them (one block per node with
 * the address right behind the struct, the canonical name a separate
 * string).  The copy must hold the same nodes in the same order, field by
 * field and address byte by byte, in that same layout, share no memory with
 * the source, and be released by libc's own freeaddrinfo (ASan checks every
 * free against what was allocated).  The same holds for a list packed for
 * another process and unpacked (sf_addrinfo_pack/unpack); and the input's
 * own bytes, unpacked as they are, are either refused or make a list that
 * freeaddrinfo releases and that packs back to the same bytes. */
#include "dns/sf_addrinfo.h"

#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct input {
	const uint8_t *p;
	size_t n;
};

static uint8_t take(struct input *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static struct addrinfo *build(struct input *in)
{
	struct addrinfo *head = NULL, **tail = &head;
	unsigned count = take(in) % 9;
	for (unsigned i = 0; i < count; i++) {
		uint8_t shape = take(in);
		size_t addrlen = (shape & 1) ? take(in) % 129 : 0;
		struct addrinfo *a = malloc(sizeof(*a) + addrlen);
		if (!a)
			abort();
		memset(a, 0, sizeof(*a));
		a->ai_flags = (int)(take(in) | take(in) << 8);
		a->ai_family = (int)(int8_t)take(in);
		a->ai_socktype = (int)(int8_t)take(in);
		a->ai_protocol = (int)(int8_t)take(in);
		a->ai_addrlen = (socklen_t)addrlen;
		/* glibc sets ai_addr for every node; a NULL one with a
		 * length is odd input the copy must survive too. */
		if (shape & 1) {
			a->ai_addr = (struct sockaddr *)(a + 1);
			for (size_t k = 0; k < addrlen; k++)
				((uint8_t *)(a + 1))[k] = take(in);
		} else if (shape & 4) {
			a->ai_addrlen = take(in);
		}
		if (shape & 2) {
			size_t len = take(in) % 64;
			char *name = malloc(len + 1);
			if (!name)
				abort();
			for (size_t k = 0; k < len; k++)
				name[k] = (char)(take(in) | 1); /* no NUL */
			name[len] = '\0';
			a->ai_canonname = name;
		}
		*tail = a;
		tail = &a->ai_next;
	}
	return head;
}

static unsigned char packed[8192], again[8192];

/* Arbitrary bytes as a packed answer: refused, or a list that packs back
 * to exactly those bytes. */
static void unpack_raw(const uint8_t *data, size_t size)
{
	int rc, err;
	struct addrinfo *list = NULL;
	if (sf_addrinfo_unpack(data, size, &rc, &err, &list) != 0) {
		if (list)
			abort();
		return;
	}
	size_t n = sf_addrinfo_pack(again, sizeof(again), rc, err, list);
	if (size <= sizeof(again) && (n != size || memcmp(again, data, n)))
		abort();
	freeaddrinfo(list);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unpack_raw(data, size);
	struct input in = { data, size };
	struct addrinfo *src = build(&in);
	struct addrinfo *copy = sf_addrinfo_copy(src);
	/* Through the packed form instead: unpacked, it must be a copy like
	 * any other (checked below in place of the direct copy, on odd
	 * inputs too). */
	size_t pn = sf_addrinfo_pack(packed, sizeof(packed), 0, 0, src);
	if (pn && (size & 1)) {
		int rc, err;
		freeaddrinfo(copy);
		copy = NULL;
		if (sf_addrinfo_unpack(packed, pn, &rc, &err, &copy) != 0 ||
		    rc != 0 || err != 0)
			abort();
	}
	if (!src != !copy)
		abort(); /* memory is plentiful here: NULL only for NULL */
	const struct addrinfo *s = src, *c = copy;
	for (; s && c; s = s->ai_next, c = c->ai_next) {
		if (c == s || c->ai_flags != s->ai_flags ||
		    c->ai_family != s->ai_family ||
		    c->ai_socktype != s->ai_socktype ||
		    c->ai_protocol != s->ai_protocol)
			abort();
		if (s->ai_addr) {
			/* glibc's layout: the address lives in the node's
			 * own block, right behind the struct. */
			if (c->ai_addrlen != s->ai_addrlen ||
			    c->ai_addr != (struct sockaddr *)(c + 1) ||
			    malloc_usable_size((void *)c) <
			            sizeof(*c) + c->ai_addrlen ||
			    memcmp(c->ai_addr, s->ai_addr, s->ai_addrlen) != 0)
				abort();
		} else if (c->ai_addr) {
			abort();
		}
		if (!s->ai_canonname != !c->ai_canonname)
			abort();
		if (s->ai_canonname &&
		    (c->ai_canonname == s->ai_canonname ||
		     strcmp(c->ai_canonname, s->ai_canonname) != 0))
			abort();
	}
	if (s || c)
		abort();    /* different lengths */
	freeaddrinfo(copy); /* libc's: the layout must be exactly glibc's */
	freeaddrinfo(src);
	return 0;
}
