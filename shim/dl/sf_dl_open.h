/* sf_dl_open.h - the interposed dlopen (sf_dl_entry.c is its entry point,
 * sf_dl_open.c does the work).
 *
 * glibc's dlopen takes its caller from its return address: the caller's
 * RUNPATH/RPATH for a bare name, its directory for $ORIGIN, its namespace.
 * A C wrapper would make the shim that caller.  So the entry point is a
 * few instructions of assembly that jump to the real dlopen with the
 * caller's return address in place; only a call that sf_dl_deep_wanted()
 * accepts is made from C, and for those the caller provably makes no
 * difference (see there). */
#ifndef SF_DL_OPEN_H
#define SF_DL_OPEN_H

typedef void *sf_dlopen_fn(const char *, int);

/* The real dlopen, or NULL; resolved once. */
sf_dlopen_fn *sf_dl_resolve(void);

/* Called by the entry for RTLD_DEEPBIND calls only, with the caller's
 * return address: non-zero when the call is to be made by
 * sf_dl_deep_open, zero when the entry is to jump to the real dlopen. */
int sf_dl_deep_wanted(const char *file, int mode, const void *caller);

/* dlopen(file, mode), then the new objects' call sites of interposed
 * symbols are routed through the shim (dl/sf_got.h). */
void *sf_dl_deep_open(const char *file, int mode);

#endif
