/* sf_scope.c - the shared table of a scope, and its body directory.
 *
 * Where: $XDG_RUNTIME_DIR when it is a directory of this user with mode
 * 0700 (nobody else can even look), else /dev/shm.  What: one file per
 * user, scope, namespaces and layout, named in the clear so that two of
 * them can never collide the way hashes could:
 *
 *     sfshim-UID-SCOPE-NETNS-MNTNS-PIDNS-vLAYOUT        the table
 *     sfshim-UID-SCOPE-NETNS-MNTNS-PIDNS-vLAYOUT.d/     body files (curl)
 *
 * (the namespaces as the inode numbers of /proc/self/ns/{net,mnt,pid}).
 * In /dev/shm the name is predictable: another user can plant a file or a
 * symbolic link there first.  That is why nothing is ever created under the
 * final name: the table is built under a fresh exclusive name, complete,
 * then hard-linked into place (link(2) never replaces anything), and an
 * existing object is used only after fstat(2) of the descriptor shows this
 * user's regular file with mode 0600 and the right size, and the core
 * recognises the table in it.  Whatever fails, one line on stderr and
 * per-process mode: coalescing is an optimisation, never a reason to fail
 * or to trust somebody else's memory. */
#include "common/sf_scope.h"

#include "common/sf_config.h"
#include "common/sf_log.h"
#include "core/sf_xflight.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SHM_DIR "/dev/shm"

static struct {
	sf_xtable *table;
	uid_t euid;              /* the user the table belongs to */
	char base[PATH_MAX];     /* the directory holding it */
	char name[NAME_MAX - 8]; /* its name (".d", ".tmp..." appended) */
} scope;
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static int dir_fd = -1;
static pthread_once_t dir_once = PTHREAD_ONCE_INIT;

/* Set once the pthread_once above is over: the fast path, no system
 * call. */
static _Atomic bool table_done, dir_done;

/* The first calls' pthread_once(once, fn), then *done for the later ones
 * (the callers test it first: one load on every lookup).
 *  - Every signal is blocked meanwhile: a signal handler that siglongjmps
 *    out of getaddrinfo (alarm() as a resolver timeout) must never jump
 *    out of fn, or the once would stay "in progress" for good and the next
 *    call, in any thread, would wait on it forever.  Blocked signals
 *    arrive when the mask is restored, after the once is over.
 *  - errno is kept: fn opens, creates and logs, and a hook's caller may
 *    read errno after getaddrinfo or curl_easy_perform. */
static void once_quietly(pthread_once_t *once, void (*fn)(void),
                         _Atomic bool *done)
{
	int e = errno;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pthread_once(once, fn);
	atomic_store_explicit(done, true, memory_order_release);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = e;
}

/* XDG_RUNTIME_DIR as the environment held it when the library was loaded:
 * php-fpm clears its workers' environment (clear_env) before they run, and
 * a worker must find the same table as its siblings. */
static char *xdg_at_load;

__attribute__((constructor)) static void scope_snapshot(void)
{
	const char *v = secure_getenv("XDG_RUNTIME_DIR");
	xdg_at_load = v ? strdup(v) : NULL;
}

/* ---- naming ------------------------------------------------------------ */

static bool ns_inode(const char *which, unsigned long long *ino)
{
	char path[64];
	struct stat st;
	snprintf(path, sizeof(path), "/proc/self/ns/%s", which);
	if (stat(path, &st) != 0)
		return false;
	*ino = (unsigned long long)st.st_ino;
	return true;
}

/* A directory of this user that nobody else may enter. */
static bool private_dir(int fd, uid_t euid)
{
	struct stat st;
	return fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) &&
	       st.st_uid == euid && (st.st_mode & 07777) == 0700;
}

/* Chooses the directory (scope.base) and the name (scope.name).  false
 * (with one line) when the namespaces cannot be read. */
static bool choose_place(const char *name, uid_t euid)
{
	unsigned long long net, mnt, pid;
	if (!ns_inode("net", &net) || !ns_inode("mnt", &mnt) ||
	    !ns_inode("pid", &pid)) {
		sf_log(SF_LOG_ERROR,
		       "SFSHIM_SCOPE=%s: cannot read /proc/self/ns (%m); "
		       "coalescing within this process only",
		       name);
		return false;
	}
	snprintf(scope.base, sizeof(scope.base), "%s", SHM_DIR);
	const char *x = xdg_at_load;
	if (x && x[0] == '/' && strlen(x) < sizeof(scope.base)) {
		int fd = open(x, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			if (private_dir(fd, euid))
				snprintf(scope.base, sizeof(scope.base), "%s",
				         x);
			close(fd);
		}
	}
	int n = snprintf(scope.name, sizeof(scope.name),
	                 "sfshim-%u-%s-%llu-%llu-%llu-v%d", (unsigned)euid,
	                 name, net, mnt, pid, SF_XLAYOUT);
	return n > 0 && (size_t)n < sizeof(scope.name);
}

/* ---- the table --------------------------------------------------------- */

static void refuse(const char *why)
{
	sf_log(SF_LOG_ERROR,
	       "SFSHIM_SCOPE=%s: %s/%s %s: not shared, coalescing within "
	       "this process only",
	       sf_config()->scope, scope.base, scope.name, why);
}

/* Maps fd (size bytes) and formats it; NULL (errno) on failure. */
static void *map(int fd, size_t size)
{
	void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	return mem == MAP_FAILED ? NULL : mem;
}

/* Builds a complete table under an exclusive temporary name and links it
 * into place.  Returns the mapping, or NULL with errno: EEXIST when
 * somebody else's object (table or not) got there first. */
static void *create(int base, size_t size)
{
	char tmp[NAME_MAX + 1];
	int fd = -1;
	for (int attempt = 0; fd < 0 && attempt < 8; attempt++) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		snprintf(tmp, sizeof(tmp), "%s.tmp.%d.%ld", scope.name,
		         (int)getpid(), ts.tv_nsec + attempt);
		fd = openat(base, tmp,
		            O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		            0600);
		if (fd < 0 && errno != EEXIST)
			return NULL;
	}
	if (fd < 0)
		return NULL;
	void *mem = NULL;
	/* The umask may have taken bits away; 0600 exactly is what the
	 * others check.  posix_fallocate, not ftruncate: a full tmpfs must
	 * fail here, not with SIGBUS when a page is first touched. */
	int e = fchmod(fd, 0600) == 0 ? posix_fallocate(fd, 0, (off_t)size)
	                              : errno;
	if (e == 0 && (mem = map(fd, size)) &&
	    sf_xtable_format(mem, size) == 0 &&
	    linkat(base, tmp, base, scope.name, 0) == 0) {
		unlinkat(base, tmp, 0);
		close(fd);
		return mem;
	}
	int err = e ? e : errno;
	if (mem)
		munmap(mem, size);
	unlinkat(base, tmp, 0);
	close(fd);
	errno = err;
	return NULL;
}

/* Opens the object somebody made, after checking whose it is.  NULL with
 * errno ENOENT (gone: create it), or NULL after one line. */
static void *open_existing(int base, size_t size)
{
	int fd =
	        openat(base, scope.name,
	               O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT)
			return NULL;
		refuse(errno == ELOOP ? "is a symbolic link"
		                      : "cannot be opened");
		errno = EPERM;
		return NULL;
	}
	struct stat st;
	const char *bad = NULL;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		bad = "is not a regular file";
	else if (st.st_uid != scope.euid)
		bad = "belongs to another user";
	else if ((st.st_mode & 07777) != 0600)
		bad = "does not have mode 0600";
	else if ((size_t)st.st_size != size)
		bad = "has the wrong size";
	void *mem = bad ? NULL : map(fd, size);
	close(fd);
	if (!bad && !mem)
		bad = "cannot be mapped";
	if (bad) {
		refuse(bad);
		errno = EPERM;
		return NULL;
	}
	return mem;
}

static void attach(void)
{
	/* Cancellation inside pthread_once would run this again later, with
	 * a descriptor or a temporary file left behind. */
	int oldstate;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &oldstate);
	const char *name = sf_config()->scope;
	scope.euid = geteuid();
	size_t size = sf_xtable_bytes();
	int base = -1;
	void *mem = NULL;
	if (!name || !choose_place(name, scope.euid))
		goto out;
	base = open(scope.base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (base < 0) {
		refuse("cannot be made here");
		goto out;
	}
	/* Somebody else's object makes create() fail with EEXIST; one that
	 * vanished between the two makes open_existing() say ENOENT. */
	bool said = false; /* one line at most */
	for (int round = 0; !mem && round < 3; round++) {
		mem = open_existing(base, size);
		if (mem || errno != ENOENT) {
			said = !mem; /* open_existing() said why */
			break;
		}
		mem = create(base, size);
		if (!mem && errno != EEXIST)
			break;
	}
	if (!mem && !said)
		refuse("cannot be created");
	if (mem) {
		scope.table = sf_xtable_open(mem, size);
		if (!scope.table) {
			refuse("is not a table of this version");
			munmap(mem, size);
		} else {
			sf_log(SF_LOG_INFO,
			       "SFSHIM_SCOPE=%s: shared table %s/%s", name,
			       scope.base, scope.name);
		}
	}
out:
	if (base >= 0)
		close(base);
	pthread_setcancelstate(oldstate, NULL);
}

struct sf_xtable *sf_scope_table(void)
{
	/* No euid check per call (a system call on every lookup): a process
	 * that attached and then became another user keeps its writable
	 * mapping anyway, whatever this returned.  README: a master that drops
	 * privileges in its workers attaches only if it resolves before the
	 * fork, and then its workers share with it by design. */
	if (!atomic_load_explicit(&table_done, memory_order_acquire))
		once_quietly(&table_once, attach, &table_done);
	return scope.table;
}

/* ---- the body directory ------------------------------------------------ */

static void open_dir(void)
{
	int oldstate;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &oldstate);
	if (!sf_scope_table())
		goto out;
	char dname[NAME_MAX + 1];
	snprintf(dname, sizeof(dname), "%s.d", scope.name);
	int base = open(scope.base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (base < 0)
		goto out;
	bool made = mkdirat(base, dname, 0700) == 0;
	int fd = openat(base, dname,
	                O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int err = errno;
	close(base);
	/* Made here: the umask may have taken bits away. */
	if (fd >= 0 && made) {
		struct stat st;
		if (fstat(fd, &st) == 0 && st.st_uid == scope.euid)
			fchmod(fd, 0700);
	}
	if (fd < 0 || !private_dir(fd, scope.euid)) {
		sf_log(SF_LOG_ERROR,
		       "SFSHIM_SCOPE=%s: %s/%s %s: response bodies not "
		       "shared across processes",
		       sf_config()->scope, scope.base, dname,
		       fd < 0 && (err == ELOOP || err == ENOTDIR)
		               ? "is a symbolic link or not a directory"
		       : fd < 0 ? "cannot be opened"
		                : "is not a 0700 directory of this user");
		if (fd >= 0)
			close(fd);
		goto out;
	}
	dir_fd = fd;
	/* The first process of the scope to look cleans up after processes
	 * that were killed before they could. */
	sf_scope_sweep();
out:
	pthread_setcancelstate(oldstate, NULL);
}

int sf_scope_dirfd(void)
{
	if (!atomic_load_explicit(&dir_done, memory_order_acquire))
		once_quietly(&dir_once, open_dir, &dir_done);
	return dir_fd;
}

int sf_scope_file_name(char *buf, size_t n, unsigned slot, unsigned gen)
{
	int len = snprintf(buf, n, "b-%u-%u", slot, gen);
	return len > 0 && (size_t)len < n ? len : -1;
}

/* A decimal number up to UINT_MAX; *end is where it stopped. */
static bool number(const char *s, unsigned *v, const char **end)
{
	unsigned long long x = 0;
	const char *p = s;
	for (; *p >= '0' && *p <= '9' && x <= UINT_MAX; p++)
		x = x * 10 + (unsigned)(*p - '0');
	*end = p;
	*v = (unsigned)x;
	return p > s && x <= UINT_MAX;
}

/* Exactly what sf_scope_file_name writes, nothing else ("b-01-2" is not):
 * the sweep never touches a file it did not name. */
static bool parse_file_name(const char *s, unsigned *slot, unsigned *gen)
{
	char again[32];
	const char *p;
	if (strncmp(s, "b-", 2) != 0 || !number(s + 2, slot, &p) || *p != '-' ||
	    !number(p + 1, gen, &p) || *p)
		return false;
	return sf_scope_file_name(again, sizeof(again), *slot, *gen) > 0 &&
	       strcmp(again, s) == 0;
}

void sf_scope_sweep(void)
{
	sf_xtable *t = sf_scope_table();
	int fd = dir_fd;
	if (!t || fd < 0)
		return;
	int saved = errno; /* as in once_quietly() */
	int oldstate;
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &oldstate);
	int dup_fd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
	if (!d && dup_fd >= 0)
		close(dup_fd);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		unsigned slot, gen;
		if (parse_file_name(e->d_name, &slot, &gen) &&
		    !sf_xflight_current(t, slot, gen))
			unlinkat(fd, e->d_name, 0);
	}
	if (d)
		closedir(d);
	pthread_setcancelstate(oldstate, NULL);
	errno = saved;
}
