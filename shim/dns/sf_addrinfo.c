/* sf_addrinfo.c - addrinfo lists in glibc's memory layout.
 *
 * glibc allocates each node as malloc(sizeof(struct addrinfo) + addrlen)
 * with ai_addr pointing just past the struct, strdup()s ai_canonname, and
 * its freeaddrinfo() frees exactly those two blocks per node.  Building
 * copies the same way lets every caller hand its copy to the real
 * freeaddrinfo, so the shim need not hook it.  (musl frees differently,
 * which is why the DNS hook only runs over glibc.) */
#include "dns/sf_addrinfo.h"

#include <stdlib.h>
#include <string.h>

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
