/* sf_got.h - points call sites of freshly loaded objects at the shim.
 *
 * An object loaded with RTLD_DEEPBIND binds its references to its own
 * dependencies first: PHP's curl.so reaches libcurl directly, and libcurl
 * (a dependency loaded by that same dlopen) reaches libc's getaddrinfo
 * directly, while in any other process both would bind to the preloaded
 * shim.  After such a dlopen has returned, the patcher rewrites the
 * object's GOT slots (JUMP_SLOT and GLOB_DAT relocations) of the symbols
 * the shim interposes so that they hold what they would have held without
 * RTLD_DEEPBIND: the shim's wrapper, which forwards to the very function
 * the slot held. */
#ifndef SF_GOT_H
#define SF_GOT_H

#include "dl/sf_dl_snap.h"

#include <stdbool.h>
#include <stddef.h>

/* Which objects a route applies to. */
enum sf_got_group {
	SF_GOT_CURL, /* objects that are libcurl or name it in DT_NEEDED */
	SF_GOT_DNS,  /* libcurl itself only (its own resolver calls) */
};

struct sf_got_route {
	const char *name;
	/* The reference's version: NULL matches unversioned references
	 * only, "*" any version. */
	const char *version;
	void *real;    /* a slot is rewritten only while it holds this... */
	void *wrapper; /* ...and then holds this */
	/* A lazily bound JUMP_SLOT (still pointing into its own object's
	 * PLT) would resolve to `real`: rewriting it now is what binding
	 * without RTLD_DEEPBIND would have done. */
	bool lazy_ok;
	enum sf_got_group group;
};

struct sf_got_job {
	const struct sf_dl_snap *only; /* the objects to rewrite */
	const struct sf_got_route *routes;
	size_t nroutes;
	unsigned objects, slots; /* what was rewritten */
};

/* The objects that one dlopen added: those not in `before` that the object
 * whose dynamic section is at root_dyn (the one dlopen returned) needs,
 * directly or not, and root itself.  *uses_curl: one of them is libcurl or
 * names it in DT_NEEDED.  False (mine empty) when memory ran out. */
bool sf_got_loaded_by(const struct sf_dl_snap *before, uintptr_t root_dyn,
                      struct sf_dl_snap *mine, bool *uses_curl);

/* Rewrites the slots of the objects in job->only.  Per object
 * and group it is all or nothing: if one slot of an interposed symbol holds
 * anything but the route's real function (or its wrapper already, or an
 * unresolved lazy stub when lazy_ok), or its
 * page cannot be made writable, none of that group's slots change.
 * Runs inside dl_iterate_phdr: the loader's write lock keeps objects from
 * being unloaded and serialises two patchers; no dl* call is made. */
void sf_got_route_new(struct sf_got_job *job);

/* "libcurl.so.4", "libcurl-gnutls.so.4", ...: a libcurl by its file name. */
bool sf_got_names_libcurl(const char *soname);

#endif
