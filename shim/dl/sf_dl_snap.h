/* sf_dl_snap.h - which objects were loaded before a dlopen.
 *
 * An object is named by the address of its dynamic section: unique among
 * the objects mapped at one time, and what dl_iterate_phdr can tell
 * without reaching into the loader's private link_map fields. */
#ifndef SF_DL_SNAP_H
#define SF_DL_SNAP_H

#include <link.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sf_dl_snap {
	uintptr_t *dyn; /* sorted */
	size_t n, cap;
};

/* False (and an empty snapshot) when memory ran out. */
bool sf_dl_snap_take(struct sf_dl_snap *s);
bool sf_dl_snap_has(const struct sf_dl_snap *s, uintptr_t dyn);
void sf_dl_snap_free(struct sf_dl_snap *s);
/* Sorts a set filled by hand, for sf_dl_snap_has. */
void sf_dl_snap_sort(struct sf_dl_snap *s);

/* The dynamic section of the object dl_iterate_phdr describes, or 0. */
uintptr_t sf_dl_dynamic_of(const struct dl_phdr_info *info);

#endif
