/* sf_ns.h - callers in different network or mount namespaces never share.
 *
 * A thread may leave its process's namespaces (unshare(2), setns(2)), and
 * threads it creates later inherit its new ones: then two threads of one
 * process can resolve the same name from different /etc/hosts, or reach
 * different hosts at the same address.  The shim interposes unshare and
 * setns: once any thread of the process has called either, the keys of
 * both hooks end with the calling thread's own network and mount namespace
 * identity, read from /proc/thread-self/ns.  Until then nothing is read or
 * added: no system call on the hot path of the programs that never change
 * namespaces, which is nearly all of them.
 *
 * Not seen: namespace changes made with a raw syscall(SYS_unshare) or with
 * clone(CLONE_VM | CLONE_NEWNET ...) children sharing the memory. */
#ifndef SF_NS_H
#define SF_NS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

/* Bytes sf_ns_identity() may write. */
#define SF_NS_ID_MAX 32

/* Set, never cleared, by the unshare and setns hooks. */
extern atomic_bool sf_ns_changed;

/* Writes the calling thread's namespace identity to id when a namespace
 * change happened in this process and returns its length; 0 when none did
 * (nothing to add); -1 when it cannot be read (the caller passes its call
 * through rather than risk sharing across namespaces). */
int sf_ns_identity_slow(unsigned char id[SF_NS_ID_MAX]);

static inline int sf_ns_identity(unsigned char id[SF_NS_ID_MAX])
{
	if (__builtin_expect(!atomic_load_explicit(&sf_ns_changed,
	                                           memory_order_relaxed),
	                     1))
		return 0;
	return sf_ns_identity_slow(id);
}

#endif
