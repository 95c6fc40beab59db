/* sf_ns.c - namespace identity for keys, and the unshare/setns hooks that
 * tell the shim to use it (see sf_ns.h). */
#include "common/sf_ns.h"

#include "common/sf_export.h"
#include "common/sf_real.h"

#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

atomic_bool sf_ns_changed;

/* A namespace is the (device, inode) pair of its nsfs file, stable while
 * the namespace exists. */
static bool ns_of(const char *path, unsigned char *out)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return false;
	uint64_t v[2] = { (uint64_t)st.st_dev, (uint64_t)st.st_ino };
	memcpy(out, v, sizeof(v));
	return true;
}

int sf_ns_identity_slow(unsigned char id[SF_NS_ID_MAX])
{
	if (!ns_of("/proc/thread-self/ns/net", id) ||
	    !ns_of("/proc/thread-self/ns/mnt", id + 16))
		return -1;
	return SF_NS_ID_MAX;
}

/* The flag is set before the call: from then on every key carries its
 * caller's namespaces, whichever side of the change the caller is on. */
SF_EXPORT int unshare(int flags)
{
	if (flags & (CLONE_NEWNET | CLONE_NEWNS))
		atomic_store_explicit(&sf_ns_changed, true,
		                      memory_order_seq_cst);
	sf_unshare_fn *real = sf_real_unshare();
	return real ? real(flags) : (int)syscall(SYS_unshare, flags);
}

SF_EXPORT int setns(int fd, int nstype)
{
	if (nstype == 0 || (nstype & (CLONE_NEWNET | CLONE_NEWNS)))
		atomic_store_explicit(&sf_ns_changed, true,
		                      memory_order_seq_cst);
	sf_setns_fn *real = sf_real_setns();
	return real ? real(fd, nstype) : (int)syscall(SYS_setns, fd, nstype);
}
