/* sf_xowner.c - who leads a cross-process flight: pid + start time.
 *
 * A pid alone can be reused by the time a follower looks; the start time
 * (field 22 of /proc/PID/stat, clock ticks since boot) cannot be, for a
 * given pid.  The caller's own identity is read once and cached; a
 * pthread_atfork child handler forgets it, since a fork child is another
 * process.  Reading /proc happens with cancellation disabled: the core is
 * no cancellation point. */
#include "core/sf_xflight.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static _Atomic int32_t self_pid; /* 0: not known (yet, or since fork) */
static _Atomic uint64_t self_start;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* The child of a fork is another process: forget the parent's identity.
 * (Only the forking thread lives on, and it is not computing it.) */
static void xatfork_child(void)
{
	atomic_store_explicit(&self_pid, 0, memory_order_relaxed);
}

static void register_atfork(void)
{
	pthread_atfork(NULL, NULL, xatfork_child);
}

/* Reads /proc/PID/NAME into buf (NUL-terminated).  open/read/close are
 * cancellation points: cancellation is held off, the core is not one.
 * false with errno on failure. */
static bool read_proc(int32_t pid, const char *name, char *buf, size_t size)
{
	char path[48];
	int old;
	/* Signals too: a handler's siglongjmp out of here (alarm() as a
	 * resolver timeout, while a follower checks its leader every few
	 * ms) would leave the descriptor open and the thread uncancellable
	 * for good.  Two system calls next to the three of the read. */
	sigset_t all, oldmask;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &oldmask);
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	ssize_t n = -1;
	if (fd >= 0) {
		do
			n = read(fd, buf, size - 1);
		while (n < 0 && errno == EINTR);
		int e = errno;
		close(fd);
		errno = e;
	}
	pthread_setcancelstate(old, NULL);
	int e = errno;
	pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
	errno = e;
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return true;
}

static bool parse_u64(const char *p, uint64_t *out)
{
	uint64_t v = 0;
	if (*p < '0' || *p > '9') {
		errno = EINVAL;
		return false;
	}
	for (; *p >= '0' && *p <= '9'; p++)
		v = v * 10 + (uint64_t)(*p - '0');
	*out = v;
	return true;
}

/* The state letter (field 3) and the start time (field 22) of
 * /proc/PID/stat. */
static bool read_stat(int32_t pid, char *state, uint64_t *start)
{
	char buf[1024];
	if (!read_proc(pid, "stat", buf, sizeof(buf)))
		return false;
	/* The command name (field 2) may hold spaces and parentheses: the
	 * fields that follow start after its last ')'. */
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || !p[2]) {
		errno = EINVAL;
		return false;
	}
	p += 2;
	*state = *p;
	/* Field 3 is the state; field 22 is 19 spaces further. */
	for (int field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		if (!p) {
			errno = EINVAL;
			return false;
		}
		p++;
	}
	return parse_u64(p, start);
}

/* A zombie thread-group leader may still have live threads (its main
 * thread called pthread_exit): the process lives while "Threads:" in
 * /proc/PID/status is above 1. */
static bool zombie_has_threads(int32_t pid)
{
	char buf[2048];
	uint64_t n;
	const char *p;
	return read_proc(pid, "status", buf, sizeof(buf)) &&
	       (p = strstr(buf, "\nThreads:")) != NULL &&
	       parse_u64(p + 9 + strspn(p + 9, " \t"), &n) && n > 1;
}

/* The first call, and the first after a fork: out of line, so that the
 * cached path below needs no stack frame (with it inline, gcc built the
 * result on the stack, a 4-byte store read back as 8 bytes: a failed
 * store forwarding, about 10 ns, twice on the lone leader's path). */
__attribute__((noinline, cold)) static struct sf_xowner compute_self(void)
{
	struct sf_xowner me;
	int e = errno;
	pthread_once(&atfork_once, register_atfork);
	char st;
	me.pid = (int32_t)getpid();
	if (!read_stat(me.pid, &st, &me.start))
		me.start = 0; /* no /proc: the pid alone */
	atomic_store_explicit(&self_start, me.start, memory_order_relaxed);
	atomic_store_explicit(&self_pid, me.pid, memory_order_release);
	errno = e;
	return me;
}

struct sf_xowner sf_xowner_self(void)
{
	int32_t pid = atomic_load_explicit(&self_pid, memory_order_acquire);
	if (__builtin_expect(pid == 0, 0))
		return compute_self();
	return (struct sf_xowner){
		.pid = pid,
		.start =
		        atomic_load_explicit(&self_start, memory_order_relaxed),
	};
}

bool sf_xowner_alive(const struct sf_xowner *o)
{
	if (!o || o->pid <= 0)
		return false;
	struct sf_xowner me = sf_xowner_self();
	if (o->pid == me.pid)
		return o->start == me.start;
	int e = errno;
	bool alive;
	char st;
	uint64_t start;
	if (kill(o->pid, 0) != 0 && errno == ESRCH)
		alive = false;
	else if (!read_stat(o->pid, &st, &start))
		/* No /proc (or it just went): kill(2) said the pid exists,
		 * and the next check will tell. */
		alive = true;
	else
		/* Another start time: the pid names another process now. */
		alive = start == o->start && st != 'X' && st != 'x' &&
		        (st != 'Z' || zombie_has_threads(o->pid));
	errno = e;
	return alive;
}
