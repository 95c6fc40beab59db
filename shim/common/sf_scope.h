/* sf_scope.h - SFSHIM_SCOPE: processes that share one flight table.
 *
 * Processes of one user with the same scope name, in the same network,
 * mount and pid namespaces, share one table (core/sf_xflight.h) in a
 * shared-memory object private to the user.  Its name is derived from the
 * uid, the scope, those namespaces and SF_XLAYOUT.  It is created
 * exclusively with mode 0600 (built under a temporary name, then linked
 * into place, so nobody sees it half-made) and never opened through a
 * symlink; an existing object is used only when it belongs to this user,
 * has mode 0600 and the right size and layout.  Anything else gets one line
 * on stderr and per-process mode (sf_scope_table() returns NULL).
 *
 * Response bodies (curl) go to files in a per-user 0700 directory of the
 * scope, opened relative to sf_scope_dirfd(). */
#ifndef SF_SCOPE_H
#define SF_SCOPE_H

#include <stdbool.h>
#include <stddef.h>

struct sf_xtable;

/* The longest scope name. */
#define SF_SCOPE_NAME_MAX 64

/* Whether s is a valid scope name: 1-64 of [A-Za-z0-9._-].  (Defined in
 * sf_config.c, which validates SFSHIM_SCOPE.) */
bool sf_scope_name_ok(const char *s);

/* The process's table, attached on first use (pthread_once; a fork child
 * keeps the parent's mapping), or NULL: no scope set, or refused. */
struct sf_xtable *sf_scope_table(void);

/* The scope's per-user 0700 directory (an O_DIRECTORY descriptor, opened
 * with O_NOFOLLOW and checked for owner and mode), -1 when unavailable. */
int sf_scope_dirfd(void);

/* Removes files in the scope directory left by processes killed before
 * they could (named by sf_scope_file_name; kept while their flight runs). */
void sf_scope_sweep(void);

/* The name, relative to sf_scope_dirfd(), of the body file of the flight
 * in slot/gen of the table.  Returns the length written (< n). */
int sf_scope_file_name(char *buf, size_t n, unsigned slot, unsigned gen);

#endif
