/* test_scope.c - the scope's body directory: names, the sweep, refusals.
 *
 * (The table itself, its refusals and sharing across processes and users
 * are tested with real processes in tests/integration/80-scope-dns.sh.)
 * Each test runs in its own forked process (check's default), with a scope
 * name of its own in /dev/shm, removed at the end. */
#include "common/sf_scope.h"
#include "core/sf_xflight.h"

#define SF_UNIT_LOGBUF_SIZE 8192
#include "sf_unit_log.h"
#include "sf_unit_main.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

static void use_scope(const char *what)
{
	char name[64];
	snprintf(name, sizeof(name), "unit-%s-%d", what, (int)getpid());
	ck_assert_int_eq(setenv("SFSHIM_SCOPE", name, 1), 0);
}

/* The table's path, from the process's own mappings.  The process that
 * created the table mapped it under its temporary name, which the kernel
 * still shows (".tmp.PID.N (deleted)"). */
static void table_path(char *out, size_t n)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[PATH_MAX + 128];
	out[0] = '\0';
	ck_assert_ptr_nonnull(f);
	while (fgets(line, sizeof(line), f)) {
		char *p = strstr(line, "/sfshim-");
		if (p && getenv("SFSHIM_SCOPE") &&
		    strstr(p, getenv("SFSHIM_SCOPE"))) {
			p = strchr(line, '/');
			p[strcspn(p, "\n")] = '\0';
			char *tmp = strstr(p, ".tmp.");
			if (tmp)
				*tmp = '\0';
			snprintf(out, n, "%s", p);
		}
	}
	fclose(f);
	ck_assert_msg(out[0], "no table mapped");
}

static bool exists_at(int dirfd, const char *name)
{
	struct stat st;
	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void touch(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
}

/* Removes the table and its directory with whatever is left in it. */
static void cleanup(const char *table)
{
	char d[PATH_MAX + 4];
	snprintf(d, sizeof(d), "%s.d", table);
	DIR *dir = opendir(d);
	struct dirent *e;
	while (dir && (e = readdir(dir)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(dirfd(dir), e->d_name, 0);
	if (dir)
		closedir(dir);
	unlink(d);
	rmdir(d);
	unlink(table);
}

START_TEST(test_file_name)
{
	char buf[32];
	ck_assert_int_eq(sf_scope_file_name(buf, sizeof(buf), 3, 70000), 9);
	ck_assert_str_eq(buf, "b-3-70000");
	ck_assert_int_eq(sf_scope_file_name(buf, 9, 3, 70000), -1);
	ck_assert_int_eq(sf_scope_file_name(buf, 10, 3, 70000), 9);
}
END_TEST

/* The first calls open, create and map (an ENOENT on the way): the
 * caller's errno comes back as it was. */
START_TEST(test_errno_kept)
{
	use_scope("errno");
	errno = EDOM;
	sf_xtable *t = sf_scope_table();
	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(errno, EDOM);
	errno = ERANGE;
	ck_assert_int_ge(sf_scope_dirfd(), 0);
	ck_assert_int_eq(errno, ERANGE);
	errno = EDOM;
	sf_scope_sweep();
	ck_assert_int_eq(errno, EDOM);
	char path[PATH_MAX];
	table_path(path, sizeof(path));
	cleanup(path);
}
END_TEST

/* A signal handler that siglongjmps (alarm() as a resolver timeout)
 * while the first calls attach and open the directory: before, a jump out
 * of the pthread_once left it "in progress" and the next call waited
 * forever (check's timeout fails the test). */
static sigjmp_buf jump_env;

static void jump_out(int sig)
{
	(void)sig;
	siglongjmp(jump_env, 1);
}

START_TEST(test_jump_during_attach)
{
	use_scope("jump");
	struct sigaction sa = { .sa_handler = jump_out };
	sigemptyset(&sa.sa_mask);
	ck_assert_int_eq(sigaction(SIGALRM, &sa, NULL), 0);
	struct itimerval it = { { 0, 20 }, { 0, 20 } };
	ck_assert_int_eq(setitimer(ITIMER_REAL, &it, NULL), 0);
	static sf_xtable *volatile t;
	static volatile int fd = -1;
	sigsetjmp(jump_env, 1);
	if (!t)
		t = sf_scope_table();
	if (fd < 0)
		fd = sf_scope_dirfd();
	struct itimerval off = { { 0, 0 }, { 0, 0 } };
	setitimer(ITIMER_REAL, &off, NULL);
	signal(SIGALRM, SIG_IGN);
	ck_assert_ptr_nonnull(t);
	ck_assert_int_ge(fd, 0);
	char path[PATH_MAX];
	table_path(path, sizeof(path));
	cleanup(path);
}
END_TEST

/* No scope: no table, no directory, the sweep does nothing. */
START_TEST(test_no_scope)
{
	unsetenv("SFSHIM_SCOPE");
	ck_assert_ptr_null(sf_scope_table());
	ck_assert_int_eq(sf_scope_dirfd(), -1);
	sf_scope_sweep();
}
END_TEST

/* The directory is this user's, mode 0700 whatever the umask; the sweep
 * removes exactly the body files of flights no longer current, and
 * nothing it did not name. */
START_TEST(test_sweep)
{
	use_scope("sweep");
	umask(0277); /* the modes must still be 0600 and 0700 */
	sf_xtable *t = sf_scope_table();
	ck_assert_ptr_nonnull(t);
	char table[PATH_MAX];
	table_path(table, sizeof(table));
	struct stat st;
	ck_assert_int_eq(stat(table, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	int d = sf_scope_dirfd();
	ck_assert_int_ge(d, 0);
	ck_assert_int_eq(sf_scope_dirfd(), d);
	ck_assert_int_eq(fstat(d, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0700);
	ck_assert_uint_eq(st.st_uid, geteuid());

	struct sf_xticket tk;
	ck_assert_int_eq(sf_xjoin(t, "k", 1, &tk), SF_XROLE_LEADER);
	char live[32], stale[32];
	sf_scope_file_name(live, sizeof(live), tk.slot, tk.gen);
	sf_scope_file_name(stale, sizeof(stale), (tk.slot + 1) % SF_XSLOTS,
	                   tk.gen + 7);
	touch(d, live);
	touch(d, stale);
	touch(d, "b-1-2x");
	touch(d, "b-01-2");
	touch(d, "other");
	sf_scope_sweep();
	ck_assert(exists_at(d, live));
	ck_assert(!exists_at(d, stale));
	ck_assert(exists_at(d, "b-1-2x"));
	ck_assert(exists_at(d, "b-01-2"));
	ck_assert(exists_at(d, "other"));
	sf_xfinish(t, &tk, NULL, 0);
	cleanup(table);
}
END_TEST

/* The first process to open the directory sweeps what killed processes
 * left: a stale file made before sf_scope_dirfd() is gone after it. */
START_TEST(test_first_open_sweeps)
{
	use_scope("first");
	ck_assert_ptr_nonnull(sf_scope_table());
	char table[PATH_MAX], dir[PATH_MAX + 4], f[PATH_MAX + 32];
	table_path(table, sizeof(table));
	snprintf(dir, sizeof(dir), "%s.d", table);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	snprintf(f, sizeof(f), "%s/b-9-12345", dir);
	int fd = open(f, O_WRONLY | O_CREAT, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_ge(sf_scope_dirfd(), 0);
	ck_assert_int_ne(access(f, F_OK), 0);
	cleanup(table);
}
END_TEST

/* A symbolic link, or a directory with another mode, where the directory
 * should be: refused with one line, -1, nothing created through it. */
START_TEST(test_dir_refused)
{
	setup();
	use_scope(_i ? "mode" : "link");
	ck_assert_ptr_nonnull(sf_scope_table());
	char table[PATH_MAX], dir[PATH_MAX + 4], target[PATH_MAX + 16];
	table_path(table, sizeof(table));
	snprintf(dir, sizeof(dir), "%s.d", table);
	snprintf(target, sizeof(target), "%s.elsewhere", table);
	if (_i) {
		ck_assert_int_eq(mkdir(dir, 0700), 0);
		ck_assert_int_eq(chmod(dir, 0755), 0);
	} else {
		ck_assert_int_eq(symlink(target, dir), 0);
	}
	read_log();
	ck_assert_int_eq(sf_scope_dirfd(), -1);
	ck_assert_int_eq(sf_scope_dirfd(), -1);
	read_log();
	ck_assert_msg(nlines == 1, "%u lines: %s", nlines, logbuf);
	ck_assert_ptr_nonnull(strstr(logbuf, _i ? "is not a 0700 directory"
	                                        : "is a symbolic link"));
	ck_assert_int_ne(access(target, F_OK), 0);
	teardown();
	cleanup(table);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("scope");
	TCase *tc = tcase_create("dir");
	tcase_add_test(tc, test_file_name);
	tcase_add_test(tc, test_no_scope);
	tcase_add_test(tc, test_errno_kept);
	tcase_add_test(tc, test_jump_during_attach);
	tcase_add_test(tc, test_sweep);
	tcase_add_test(tc, test_first_open_sweeps);
	tcase_add_loop_test(tc, test_dir_refused, 0, 2);
	suite_add_tcase(s, tc);
	return sf_unit_run(s);
}
