/* sf_got.c - the GOT patcher (see sf_got.h).
 *
 * ELF only, 64-bit x86 relocations (RELA).  What is read comes from the
 * object's dynamic section as the loader left it: glibc relocates some
 * d_ptr values in place (DT_SYMTAB, DT_STRTAB, DT_JMPREL...) and not others
 * (DT_VERNEED, DT_VERDEF), and leaves a read-only dynamic section alone, so
 * every pointer is taken as absolute when it falls inside the object's
 * mapping and as relative to the load address otherwise. */
#include "dl/sf_got.h"

#include "common/sf_log.h"

#include <elf.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__x86_64__)
#define SF_R_JUMP_SLOT R_X86_64_JUMP_SLOT
#define SF_R_GLOB_DAT R_X86_64_GLOB_DAT
#endif

bool sf_got_names_libcurl(const char *soname)
{
	return strncmp(soname, "libcurl", 7) == 0 &&
	       (soname[7] == '.' || soname[7] == '-');
}

struct obj {
	const struct dl_phdr_info *info;
	uintptr_t lo, hi; /* the mapping */
	const char *strtab;
	size_t strsz;
	const ElfW(Sym) * symtab;
	const ElfW(Rela) * rela, *jmprel;
	size_t relasz, jmprelsz;
	const ElfW(Half) * versym;
	const ElfW(Verneed) * verneed;
	const ElfW(Verdef) * verdef;
	size_t verneednum, verdefnum;
	bool is_curl, uses_curl;
	uintptr_t relro_lo, relro_hi; /* what the loader made read-only */
};

static uintptr_t dptr(const struct obj *o, uintptr_t v)
{
	if (v >= o->lo && v < o->hi)
		return v;
	return o->info->dlpi_addr + v;
}

static const char *str(const struct obj *o, size_t off)
{
	return off < o->strsz ? o->strtab + off : NULL;
}

/* Reads what the patcher needs; false when the object is of no interest or
 * not understood (then it is left alone). */
static bool parse(struct obj *o, const struct dl_phdr_info *info)
{
	*o = (struct obj){ .info = info, .lo = UINTPTR_MAX };
	const ElfW(Dyn) *dyn = NULL;
	long page = sysconf(_SC_PAGESIZE);
	if (page <= 0)
		return false;
	for (size_t i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t a = info->dlpi_addr + ph->p_vaddr;
		if (ph->p_type == PT_LOAD) {
			if (a < o->lo)
				o->lo = a;
			if (a + ph->p_memsz > o->hi)
				o->hi = a + ph->p_memsz;
		} else if (ph->p_type == PT_DYNAMIC) {
			dyn = (const ElfW(Dyn) *)a;
		} else if (ph->p_type == PT_GNU_RELRO) {
			/* The loader's rounding (_dl_protect_relro): both
			 * ends down to a page. */
			o->relro_lo = a & ~((uintptr_t)page - 1);
			o->relro_hi = (a + ph->p_memsz) &
			              ~((uintptr_t)page - 1);
		}
	}
	if (!dyn || o->lo >= o->hi)
		return false;
	uintptr_t strtab = 0, symtab = 0, rela = 0, jmprel = 0, versym = 0,
	          verneed = 0, verdef = 0;
	long pltrel = DT_RELA;
	for (const ElfW(Dyn) *d = dyn; d->d_tag != DT_NULL; d++) {
		switch (d->d_tag) {
		case DT_STRTAB:
			strtab = d->d_un.d_ptr;
			break;
		case DT_STRSZ:
			o->strsz = d->d_un.d_val;
			break;
		case DT_SYMTAB:
			symtab = d->d_un.d_ptr;
			break;
		case DT_RELA:
			rela = d->d_un.d_ptr;
			break;
		case DT_RELASZ:
			o->relasz = d->d_un.d_val;
			break;
		case DT_JMPREL:
			jmprel = d->d_un.d_ptr;
			break;
		case DT_PLTRELSZ:
			o->jmprelsz = d->d_un.d_val;
			break;
		case DT_PLTREL:
			pltrel = (long)d->d_un.d_val;
			break;
		case DT_VERSYM:
			versym = d->d_un.d_ptr;
			break;
		case DT_VERNEED:
			verneed = d->d_un.d_ptr;
			break;
		case DT_VERNEEDNUM:
			o->verneednum = d->d_un.d_val;
			break;
		case DT_VERDEF:
			verdef = d->d_un.d_ptr;
			break;
		case DT_VERDEFNUM:
			o->verdefnum = d->d_un.d_val;
			break;
		default:
			break;
		}
	}
	if (!strtab || !symtab || pltrel != DT_RELA)
		return false;
	o->strtab = (const char *)dptr(o, strtab);
	o->symtab = (const ElfW(Sym) *)dptr(o, symtab);
	o->rela = rela ? (const ElfW(Rela) *)dptr(o, rela) : NULL;
	o->jmprel = jmprel ? (const ElfW(Rela) *)dptr(o, jmprel) : NULL;
	o->versym = versym ? (const ElfW(Half) *)dptr(o, versym) : NULL;
	o->verneed = verneed ? (const ElfW(Verneed) *)dptr(o, verneed) : NULL;
	o->verdef = verdef ? (const ElfW(Verdef) *)dptr(o, verdef) : NULL;
	for (const ElfW(Dyn) *d = dyn; d->d_tag != DT_NULL; d++) {
		const char *s = str(o, d->d_un.d_val);
		if (!s)
			continue;
		if (d->d_tag == DT_SONAME && sf_got_names_libcurl(s))
			o->is_curl = true;
		else if (d->d_tag == DT_NEEDED && sf_got_names_libcurl(s))
			o->uses_curl = true;
	}
	return true;
}

/* The version a symbol's reference asks for (or its definition carries),
 * NULL when unversioned. */
static const char *version_of(const struct obj *o, size_t symidx)
{
	if (!o->versym)
		return NULL;
	ElfW(Half) vi = o->versym[symidx] & 0x7fff;
	if (vi <= 1) /* VER_NDX_LOCAL, VER_NDX_GLOBAL */
		return NULL;
	const char *p = (const char *)o->verneed;
	for (size_t i = 0; p && i < o->verneednum; i++) {
		const ElfW(Verneed) *vn = (const ElfW(Verneed) *)p;
		const char *a = p + vn->vn_aux;
		for (size_t j = 0; j < vn->vn_cnt; j++) {
			const ElfW(Vernaux) *va = (const ElfW(Vernaux) *)a;
			if (va->vna_other == vi)
				return str(o, va->vna_name);
			if (!va->vna_next)
				break;
			a += va->vna_next;
		}
		if (!vn->vn_next)
			break;
		p += vn->vn_next;
	}
	p = (const char *)o->verdef;
	for (size_t i = 0; p && i < o->verdefnum; i++) {
		const ElfW(Verdef) *vd = (const ElfW(Verdef) *)p;
		if (vd->vd_ndx == vi && vd->vd_cnt > 0) {
			const ElfW(Verdaux) *va =
			        (const ElfW(Verdaux) *)(p + vd->vd_aux);
			return str(o, va->vda_name);
		}
		if (!vd->vd_next)
			break;
		p += vd->vd_next;
	}
	return NULL;
}

static bool version_matches(const char *want, const char *have)
{
	if (want && strcmp(want, "*") == 0)
		return true;
	if (!want || !have)
		return !want && !have;
	return strcmp(want, have) == 0;
}

static bool group_applies(const struct obj *o, enum sf_got_group g)
{
	return g == SF_GOT_CURL ? o->is_curl || o->uses_curl : o->is_curl;
}

/* A slot may be written if it lies in a writable segment. */
static bool writable(const struct obj *o, uintptr_t slot)
{
	const struct dl_phdr_info *info = o->info;
	for (size_t i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t a = info->dlpi_addr + ph->p_vaddr;
		if (ph->p_type == PT_LOAD && slot >= a &&
		    slot + sizeof(void *) <= a + ph->p_memsz)
			return (ph->p_flags & PF_W) != 0;
	}
	return false;
}

enum pass { CHECK, WRITE };

/* One pass over the object's JUMP_SLOT and GLOB_DAT relocations for one
 * group.  CHECK: false if any slot of an interposed symbol is not in a
 * state the route expects; *in_relro tells whether a slot lies in the
 * read-only part.  WRITE: rewrites, counting into *count. */
static bool walk(const struct obj *o, const struct sf_got_job *job,
                 enum sf_got_group g, enum pass pass, bool *in_relro,
                 unsigned *count)
{
	const ElfW(Rela) * tabs[2] = { o->rela, o->jmprel };
	size_t sizes[2] = { o->relasz, o->jmprelsz };
	for (int t = 0; t < 2; t++) {
		if (!tabs[t])
			continue;
		size_t n = sizes[t] / sizeof(ElfW(Rela));
		for (size_t i = 0; i < n; i++) {
			const ElfW(Rela) *r = &tabs[t][i];
			unsigned long type = ELF64_R_TYPE(r->r_info);
			if (type != SF_R_JUMP_SLOT && type != SF_R_GLOB_DAT)
				continue;
			size_t symidx = ELF64_R_SYM(r->r_info);
			const char *name = str(o, o->symtab[symidx].st_name);
			if (!name || !*name)
				continue;
			const char *ver = NULL;
			bool ver_read = false, named = false;
			const struct sf_got_route *hit = NULL;
			for (size_t k = 0; k < job->nroutes; k++) {
				const struct sf_got_route *rt = &job->routes[k];
				if (rt->group != g ||
				    strcmp(rt->name, name) != 0)
					continue;
				named = true;
				if (!ver_read) {
					ver = version_of(o, symidx);
					ver_read = true;
				}
				if (version_matches(rt->version, ver)) {
					hit = rt;
					break;
				}
			}
			if (!named)
				continue;
			uintptr_t slot = o->info->dlpi_addr + r->r_offset;
			void **p = (void **)slot;
			/* An interposed name in a version no wrapper stands
			 * for (a newer libcurl's): that version is simply not
			 * ours. */
			if (!hit)
				continue;
			void *cur = __atomic_load_n(p, __ATOMIC_RELAXED);
			bool lazy = type == SF_R_JUMP_SLOT && hit->lazy_ok &&
			            (uintptr_t)cur >= o->lo &&
			            (uintptr_t)cur < o->hi;
			if (pass == CHECK) {
				if (!writable(o, slot) ||
				    (cur != hit->real && cur != hit->wrapper &&
				     !lazy))
					return false;
				if (slot >= o->relro_lo && slot < o->relro_hi)
					*in_relro = true;
			} else if (cur == hit->real || lazy) {
				/* One aligned store: a thread calling through
				 * the slot now sees the old or the new
				 * target, both valid. */
				__atomic_store_n(p, hit->wrapper,
				                 __ATOMIC_RELEASE);
				(*count)++;
			}
		}
	}
	return true;
}

static void route_group(const struct obj *o, struct sf_got_job *job,
                        enum sf_got_group g, unsigned *count)
{
	bool in_relro = false;
	if (!walk(o, job, g, CHECK, &in_relro, NULL)) {
		sf_log(SF_LOG_INFO,
		       "dl: %s: a call site is not bound as expected; its %s "
		       "calls are left as they are",
		       o->info->dlpi_name,
		       g == SF_GOT_CURL ? "libcurl" : "getaddrinfo");
		return;
	}
	size_t len = o->relro_hi - o->relro_lo;
	if (in_relro &&
	    mprotect((void *)o->relro_lo, len, PROT_READ | PROT_WRITE) != 0) {
		sf_log(SF_LOG_INFO,
		       "dl: %s: cannot make its relocations writable; its "
		       "calls are left as they are",
		       o->info->dlpi_name);
		return;
	}
	walk(o, job, g, WRITE, NULL, count);
	if (in_relro && mprotect((void *)o->relro_lo, len, PROT_READ) != 0)
		sf_log(SF_LOG_ERROR,
		       "dl: %s: could not make its relocations read-only "
		       "again",
		       o->info->dlpi_name);
}

/* ---- which objects one dlopen added ---------------------------------- */

struct newobj {
	uintptr_t dyn;
	char *soname, *path; /* copies: a stranger may be unloaded meanwhile */
	char **needed;
	size_t nneeded;
	bool is_curl, uses_curl, mine;
};

struct census {
	const struct sf_dl_snap *before;
	struct newobj *o;
	size_t n, cap;
	bool failed;
};

static char *dup_str(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Pass 1, under the loader's lock: names only, no dl* call. */
static int count_new(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	struct census *c = arg;
	struct obj o;
	uintptr_t dyn = sf_dl_dynamic_of(info);
	if (!dyn || sf_dl_snap_has(c->before, dyn) || !parse(&o, info))
		return 0;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		struct newobj *no = realloc(c->o, cap * sizeof(*no));
		if (!no) {
			c->failed = true;
			return 1;
		}
		c->o = no;
		c->cap = cap;
	}
	struct newobj *e = &c->o[c->n++];
	*e = (struct newobj){ .dyn = dyn,
		              .is_curl = o.is_curl,
		              .uses_curl = o.uses_curl };
	e->path = dup_str(info->dlpi_name);
	const ElfW(Dyn) *d = (const ElfW(Dyn) *)dyn;
	size_t nneeded = 0;
	for (const ElfW(Dyn) *x = d; x->d_tag != DT_NULL; x++)
		nneeded += x->d_tag == DT_NEEDED;
	e->needed = nneeded ? calloc(nneeded, sizeof(char *)) : NULL;
	if (!e->path || (nneeded && !e->needed)) {
		c->failed = true;
		return 1;
	}
	for (const ElfW(Dyn) *x = d; x->d_tag != DT_NULL; x++) {
		const char *name = str(&o, x->d_un.d_val);
		if (!name)
			continue;
		if (x->d_tag == DT_SONAME && !e->soname)
			e->soname = dup_str(name);
		else if (x->d_tag == DT_NEEDED && e->nneeded < nneeded &&
		         !(e->needed[e->nneeded++] = dup_str(name))) {
			c->failed = true;
			return 1;
		}
	}
	return 0;
}

/* glibc's own test for "this loaded object answers to that DT_NEEDED
 * name": its soname, or the name it was opened under. */
static bool answers_to(const struct newobj *e, const char *name)
{
	if (e->soname && strcmp(e->soname, name) == 0)
		return true;
	if (strchr(name, '/'))
		return strcmp(e->path, name) == 0;
	const char *base = strrchr(e->path, '/');
	return strcmp(base ? base + 1 : e->path, name) == 0;
}

static void census_free(struct census *c)
{
	for (size_t i = 0; i < c->n; i++) {
		free(c->o[i].soname);
		free(c->o[i].path);
		for (size_t k = 0; k < c->o[i].nneeded; k++)
			free(c->o[i].needed[k]);
		free(c->o[i].needed);
	}
	free(c->o);
}

bool sf_got_loaded_by(const struct sf_dl_snap *before, uintptr_t root_dyn,
                      struct sf_dl_snap *mine, bool *uses_curl)
{
	*mine = (struct sf_dl_snap){ 0 };
	*uses_curl = false;
#ifdef SF_R_JUMP_SLOT
	struct census c = { .before = before };
	dl_iterate_phdr(count_new, &c);
	bool ok = !c.failed;
	/* The DT_NEEDED closure of the root among the new objects: what
	 * this dlopen added (and what a load that completed before it did).
	 * Never an object that a later dlopen in another thread is still
	 * relocating: it cannot answer to a name this load has resolved. */
	for (size_t i = 0; ok && i < c.n; i++)
		c.o[i].mine = c.o[i].dyn == root_dyn;
	for (bool grew = true; ok && grew;) {
		grew = false;
		for (size_t i = 0; i < c.n; i++) {
			if (!c.o[i].mine)
				continue;
			for (size_t k = 0; k < c.o[i].nneeded; k++) {
				if (!c.o[i].needed[k])
					continue;
				for (size_t j = 0; j < c.n; j++)
					if (!c.o[j].mine &&
					    answers_to(&c.o[j],
					               c.o[i].needed[k])) {
						c.o[j].mine = true;
						grew = true;
					}
			}
		}
	}
	for (size_t i = 0; ok && i < c.n; i++) {
		if (!c.o[i].mine)
			continue;
		if (mine->n == mine->cap) {
			size_t cap = mine->cap ? mine->cap * 2 : 16;
			uintptr_t *d = realloc(mine->dyn, cap * sizeof(*d));
			if (!d) {
				ok = false;
				break;
			}
			mine->dyn = d;
			mine->cap = cap;
		}
		mine->dyn[mine->n++] = c.o[i].dyn;
		*uses_curl = *uses_curl || c.o[i].is_curl || c.o[i].uses_curl;
	}
	census_free(&c);
	if (!ok) {
		sf_dl_snap_free(mine);
		*uses_curl = false;
		return false;
	}
	sf_dl_snap_sort(mine);
	return true;
#else
	(void)before;
	(void)root_dyn;
	return false;
#endif
}

#ifdef SF_R_JUMP_SLOT
static int route_one(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	struct sf_got_job *job = arg;
	struct obj o;
	if (!sf_dl_snap_has(job->only, sf_dl_dynamic_of(info)) ||
	    !parse(&o, info))
		return 0;
	unsigned count = 0;
	if (group_applies(&o, SF_GOT_CURL))
		route_group(&o, job, SF_GOT_CURL, &count);
	if (group_applies(&o, SF_GOT_DNS))
		route_group(&o, job, SF_GOT_DNS, &count);
	if (count) {
		job->objects++;
		job->slots += count;
		sf_log(SF_LOG_DEBUG,
		       "dl: %s: %u call site(s) routed through the shim "
		       "(loaded with RTLD_DEEPBIND)",
		       info->dlpi_name, count);
	}
	return 0;
}
#endif

void sf_got_route_new(struct sf_got_job *job)
{
#ifdef SF_R_JUMP_SLOT
	dl_iterate_phdr(route_one, job);
#else
	(void)job;
#endif
}
