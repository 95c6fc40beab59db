/* sf_addrinfo.h - copies of getaddrinfo results that the real freeaddrinfo
 * can release. */
#ifndef SF_ADDRINFO_H
#define SF_ADDRINFO_H

#include <netdb.h>
#include <stddef.h>

/* A deep copy in glibc's layout: each node one malloc block holding the
 * struct and its address, the canonical name a separate string.  Same
 * order, flags and names.  NULL when src is NULL or memory is short. */
struct addrinfo *sf_addrinfo_copy(const struct addrinfo *src);

/* Frees a list built by sf_addrinfo_copy (what glibc's freeaddrinfo does). */
void sf_addrinfo_free(struct addrinfo *list);

/* ---- answers that cross processes ------------------------------------ */

/* Packs a whole getaddrinfo answer (its return code, errno for EAI_SYSTEM,
 * the list when rc is 0) into plain bytes for another process: no
 * pointers, every node's fields, address and canonical name, in order.
 * Returns the length, or 0 when it does not fit in cap (the answer is then
 * not shared: followers make their own calls). */
size_t sf_addrinfo_pack(void *buf, size_t cap, int rc, int err,
                        const struct addrinfo *list);

/* The reverse: *list becomes the caller's own copy in glibc's layout (the
 * real freeaddrinfo frees it; NULL when rc is not 0).  Returns 0, or -1
 * with errno EINVAL (not a packed answer: wrong size, bad lengths) or
 * ENOMEM, and then nothing is allocated. */
int sf_addrinfo_unpack(const void *buf, size_t len, int *rc, int *err,
                       struct addrinfo **list);

#endif
