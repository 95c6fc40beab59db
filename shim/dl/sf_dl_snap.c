/* sf_dl_snap.c - the set of objects loaded before a dlopen. */
#include "dl/sf_dl_snap.h"

#include <stdlib.h>

uintptr_t sf_dl_dynamic_of(const struct dl_phdr_info *info)
{
	for (size_t i = 0; i < info->dlpi_phnum; i++)
		if (info->dlpi_phdr[i].p_type == PT_DYNAMIC)
			return info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
	return 0;
}

/* Runs under the loader's lock: memory only, no dl* call. */
static int add_one(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	struct sf_dl_snap *s = arg;
	uintptr_t dyn = sf_dl_dynamic_of(info);
	if (!dyn)
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		uintptr_t *d = realloc(s->dyn, cap * sizeof(*d));
		if (!d)
			return 1; /* stop: the caller sees the failure */
		s->dyn = d;
		s->cap = cap;
	}
	s->dyn[s->n++] = dyn;
	return 0;
}

static int cmp(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
	return (x > y) - (x < y);
}

bool sf_dl_snap_take(struct sf_dl_snap *s)
{
	*s = (struct sf_dl_snap){ 0 };
	if (dl_iterate_phdr(add_one, s) != 0) {
		sf_dl_snap_free(s);
		return false;
	}
	sf_dl_snap_sort(s);
	return true;
}

void sf_dl_snap_sort(struct sf_dl_snap *s)
{
	if (s->n)
		qsort(s->dyn, s->n, sizeof(*s->dyn), cmp);
}

bool sf_dl_snap_has(const struct sf_dl_snap *s, uintptr_t dyn)
{
	return s->n &&
	       bsearch(&dyn, s->dyn, s->n, sizeof(*s->dyn), cmp) != NULL;
}

void sf_dl_snap_free(struct sf_dl_snap *s)
{
	free(s->dyn);
	*s = (struct sf_dl_snap){ 0 };
}
