/* sf_addrinfo.h - copies of getaddrinfo results that the real freeaddrinfo
 * can release. */
#ifndef SF_ADDRINFO_H
#define SF_ADDRINFO_H

#include <netdb.h>

/* A deep copy in glibc's layout: each node one malloc block holding the
 * struct and its address, the canonical name a separate string.  Same
 * order, flags and names.  NULL when src is NULL or memory is short. */
struct addrinfo *sf_addrinfo_copy(const struct addrinfo *src);

/* Frees a list built by sf_addrinfo_copy (what glibc's freeaddrinfo does). */
void sf_addrinfo_free(struct addrinfo *list);

#endif
