/* sf_curl_xfile.c - the response file's writer and reader (format in
 * sf_curl_xfile.h). */
#include "curl/sf_curl_xfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define REC_HEAD 5
#define MAGIC "SFXC"
#define VERSION 2u
/* Larger than any record a leader writes (a header line is at most
 * libcurl's 100 KiB, a body piece CURL_MAX_WRITE_SIZE): anything longer
 * is not one of ours. */
#define REC_MAX ((size_t)1 << 20)

/* The shared header: plain words and atomics only, no pointers. */
struct sf_xfile_head {
	char magic[4];
	uint32_t version;
	_Atomic uint64_t cur; /* epoch << shift | where it starts */
	_Atomic int32_t pid;  /* the current leader */
	uint32_t pad;
	_Atomic uint64_t start;   /* its process start time */
	_Atomic uint32_t counted; /* followers done with the name */
	_Atomic uint32_t total;   /* followers at the end, valid when done */
	_Atomic uint32_t done;    /* the flight finished */
	uint32_t reserved[5];
};
_Static_assert(sizeof(struct sf_xfile_head) == SF_XFILE_HEAD,
               "the header's size is part of the format");

void sf_xfile_init(struct sf_xfile *x)
{
	memset(x, 0, sizeof(*x));
	x->fd = -1;
}

static int pwrite_all(int fd, const void *data, size_t n, uint64_t off)
{
	const unsigned char *p = data;
	while (n) {
		ssize_t k = pwrite(fd, p, n, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			if (k == 0)
				errno = ENOSPC;
			return -1;
		}
		p += k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
	return 0;
}

static int read_at(int fd, void *buf, size_t n, uint64_t off)
{
	unsigned char *p = buf;
	while (n) {
		ssize_t k = pread(fd, p, n, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
	return 0;
}

/* A new file: its header written whole before anyone may use it (readers
 * take a shorter file for one not there yet). */
static int create(int dirfd, const char *name)
{
	int fd = openat(dirfd, name,
	                O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	                0600);
	if (fd < 0)
		return -1;
	struct sf_xfile_head h;
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, MAGIC, 4);
	h.version = VERSION;
	if (pwrite_all(fd, &h, sizeof(h), 0) < 0) {
		int err = errno;
		close(fd);
		unlinkat(dirfd, name, 0);
		errno = err;
		return -1;
	}
	return fd;
}

/* 1: a response file of this format, 0: too short yet, -1: not one. */
static int check_head(int fd)
{
	struct stat st;
	struct sf_xfile_head h;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_uid != geteuid())
		return -1;
	if (st.st_size < (off_t)sizeof(h))
		return 0;
	if (read_at(fd, &h, sizeof(h), 0) < 0)
		return -1;
	return memcmp(h.magic, MAGIC, 4) == 0 && h.version == VERSION ? 1 : -1;
}

int sf_xfile_open(struct sf_xfile *x, int dirfd, const char *name,
                  bool create_it)
{
	if (x->fd >= 0)
		return 1;
	int fd = openat(dirfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && create_it) {
		fd = create(dirfd, name);
		if (fd < 0 && errno == EEXIST) /* made just now by another */
			fd = openat(dirfd, name,
			            O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	int ok = check_head(fd);
	void *h = ok > 0 ? mmap(NULL, SF_XFILE_HEAD, PROT_READ | PROT_WRITE,
	                        MAP_SHARED, fd, 0)
	                 : MAP_FAILED;
	if (h == MAP_FAILED) {
		close(fd);
		return ok < 0 ? -1 : ok == 0 ? 0 : -1;
	}
	x->fd = fd;
	x->h = h;
	x->epoch = UINT32_MAX; /* no epoch being read yet */
	x->pos = 0;
	return 1;
}

void sf_xfile_close(struct sf_xfile *x)
{
	if (x->h)
		munmap(x->h, SF_XFILE_HEAD);
	if (x->fd >= 0)
		close(x->fd);
	free(x->buf);
	bool counted = x->counted;
	sf_xfile_init(x);
	x->counted = counted;
}

/* ---- writing ----------------------------------------------------------- */

uint64_t sf_xfile_begin(struct sf_xfile *x, uint32_t epoch,
                        const struct sf_xowner *owner)
{
	struct stat st;
	if (x->fd < 0 || fstat(x->fd, &st) < 0 ||
	    (uint64_t)st.st_size > SF_XFILE_OFF_MASK)
		return 0;
	x->len = (uint64_t)st.st_size;
	x->failed = false;
	uint64_t at = (uint64_t)epoch << SF_XFILE_EPOCH_SHIFT | x->len;
	/* Running again (a leader that gave up ended it for the count). */
	atomic_store_explicit(&x->h->done, 0, memory_order_seq_cst);
	atomic_store_explicit(&x->h->start, owner->start, memory_order_relaxed);
	atomic_store_explicit(&x->h->pid, owner->pid, memory_order_relaxed);
	atomic_store_explicit(&x->h->cur, at, memory_order_release);
	return at;
}

int sf_xfile_put(struct sf_xfile *x, unsigned char type, const void *data,
                 size_t len)
{
	if (x->fd < 0 || x->failed || len > REC_MAX ||
	    x->len + REC_HEAD + len > SF_XFILE_OFF_MASK)
		goto fail;
	unsigned char head[REC_HEAD] = { type };
	uint32_t n = (uint32_t)len;
	memcpy(head + 1, &n, sizeof(n));
	if (pwrite_all(x->fd, head, sizeof(head), x->len) < 0 ||
	    (len && pwrite_all(x->fd, data, len, x->len + REC_HEAD) < 0))
		goto fail;
	x->len += REC_HEAD + len;
	return 0;
fail:
	x->failed = true;
	return -1;
}

/* ---- the final records ------------------------------------------------ */

static int put_info(struct sf_xfile *w, const struct sf_curl_infos *in, int t,
                    int n)
{
	unsigned char rec[2 + CURL_ERROR_SIZE * 16];
	size_t len = 2;
	rec[0] = (unsigned char)t;
	rec[1] = (unsigned char)n;
	switch (t) {
	case SF_INFO_STRING: {
		/* A NULL string (no answer: "none") is kept apart from "". */
		const char *s = in->str[n];
		size_t k = s ? strlen(s) : 0;
		if (k > sizeof(rec) - 3)
			return 0; /* not kept: answered as unknown */
		rec[len++] = s != NULL;
		memcpy(rec + len, s ? s : "", k);
		len += k;
		break;
	}
	case SF_INFO_LONG: {
		int64_t v = in->lng[n];
		memcpy(rec + len, &v, 8);
		len += 8;
		break;
	}
	case SF_INFO_DOUBLE:
		memcpy(rec + len, &in->dbl[n], sizeof(double));
		len += sizeof(double);
		break;
	default: {
		int64_t v = in->off[n];
		memcpy(rec + len, &v, 8);
		len += 8;
		break;
	}
	}
	return sf_xfile_put(w, SF_XREC_INFO, rec, len);
}

static int put_hdr(struct sf_xfile *w, const struct sf_curl_hdr *h)
{
	size_t nl = strlen(h->name), vl = strlen(h->value);
	if (nl + vl + 9 > REC_MAX)
		return -1;
	unsigned char *rec = malloc(nl + vl + 9);
	if (!rec)
		return -1;
	uint32_t type = h->type;
	int32_t req = h->request;
	memcpy(rec, &type, 4);
	memcpy(rec + 4, &req, 4);
	memcpy(rec + 8, h->name, nl + 1);
	memcpy(rec + 9 + nl, h->value, vl);
	int rc = sf_xfile_put(w, SF_XREC_HDR, rec, nl + vl + 9);
	free(rec);
	return rc;
}

int sf_xfile_put_final(struct sf_xfile *w, CURLcode code, const char *errmsg,
                       bool retry, const struct sf_curl_reply *snap)
{
	unsigned char rec[5 + CURL_ERROR_SIZE];
	int32_t c = (int32_t)code;
	size_t el = strnlen(errmsg ? errmsg : "", CURL_ERROR_SIZE - 1);
	memcpy(rec, &c, 4);
	rec[4] = retry;
	memcpy(rec + 5, errmsg ? errmsg : "", el);
	if (sf_xfile_put(w, SF_XREC_CODE, rec, 5 + el) < 0)
		return -1;
	if (snap) {
		unsigned char req[5];
		int32_t r = snap->requests;
		memcpy(req, &r, 4);
		req[4] = snap->header_api;
		if (sf_xfile_put(w, SF_XREC_REQUESTS, req, sizeof(req)) < 0)
			return -1;
		for (size_t i = 0; i < snap->nhdrs; i++)
			if (put_hdr(w, &snap->hdrs[i]) < 0)
				return -1;
		for (int t = 0; snap->info && t < SF_INFO_TYPES; t++)
			for (int n = 0; n < SF_INFO_SLOTS; n++)
				if (snap->info->have[t][n] &&
				    put_info(w, snap->info, t, n) < 0)
					return -1;
	}
	return sf_xfile_put(w, SF_XREC_END, NULL, 0);
}

/* ---- reading ----------------------------------------------------------- */

uint64_t sf_xfile_current(const struct sf_xfile *x)
{
	return x->h ? atomic_load_explicit(&x->h->cur, memory_order_acquire)
	            : 0;
}

bool sf_xfile_seek_epoch(struct sf_xfile *x, uint32_t epoch)
{
	uint64_t cur = sf_xfile_current(x);
	if (!x->h || cur >> SF_XFILE_EPOCH_SHIFT != epoch ||
	    (cur & SF_XFILE_OFF_MASK) < SF_XFILE_HEAD)
		return false;
	x->epoch = epoch;
	x->pos = cur & SF_XFILE_OFF_MASK;
	return true;
}

int sf_xfile_next(struct sf_xfile *x, uint64_t avail, unsigned char *type,
                  const unsigned char **data, size_t *len)
{
	unsigned char head[REC_HEAD];
	uint32_t n;
	if (x->fd < 0 || x->pos < SF_XFILE_HEAD)
		return -1;
	if (avail < x->pos || avail - x->pos < REC_HEAD)
		return 0;
	if (read_at(x->fd, head, REC_HEAD, x->pos) < 0)
		return -1;
	memcpy(&n, head + 1, 4);
	if (n > REC_MAX)
		return -1;
	if (avail - x->pos - REC_HEAD < n)
		return 0; /* the rest is on its way */
	if (n > x->cap) {
		unsigned char *b = realloc(x->buf, n);
		if (!b)
			return -1;
		x->buf = b;
		x->cap = n;
	}
	if (n && read_at(x->fd, x->buf, n, x->pos + REC_HEAD) < 0)
		return -1;
	*type = head[0];
	*data = n ? x->buf : (const unsigned char *)"";
	*len = n;
	x->pos += REC_HEAD + n;
	return 1;
}

/* ---- the name's life -------------------------------------------------- */

/* Both sides write first, then read the other's word (sequentially
 * consistent): at least one of the leader and the last follower counted
 * sees that the name may go. */
static bool may_go(const struct sf_xfile_head *h)
{
	return atomic_load_explicit(&h->done, memory_order_seq_cst) &&
	       atomic_load_explicit(&h->counted, memory_order_seq_cst) >=
	               atomic_load_explicit(&h->total, memory_order_seq_cst);
}

bool sf_xfile_count(struct sf_xfile *x)
{
	if (!x->h || x->counted)
		return false;
	x->counted = true;
	atomic_fetch_add_explicit(&x->h->counted, 1, memory_order_seq_cst);
	return may_go(x->h);
}

bool sf_xfile_finish(struct sf_xfile *x, unsigned followers)
{
	if (!x->h)
		return false;
	atomic_store_explicit(&x->h->total, followers, memory_order_seq_cst);
	atomic_store_explicit(&x->h->done, 1, memory_order_seq_cst);
	return may_go(x->h);
}

bool sf_xfile_all_counted(const struct sf_xfile *x, unsigned followers)
{
	return x->h && atomic_load_explicit(&x->h->counted,
	                                    memory_order_seq_cst) >= followers;
}

bool sf_xfile_orphaned(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return false;
	struct sf_xfile_head h;
	bool orphan = check_head(fd) > 0 && read_at(fd, &h, sizeof(h), 0) == 0;
	close(fd);
	if (!orphan)
		return false;
	struct sf_xowner o = { .pid = atomic_load(&h.pid),
		               .start = atomic_load(&h.start) };
	/* Created, no leader yet: its creator is about to write one. */
	return o.pid > 0 && !sf_xowner_alive(&o);
}

/* ---- applying the final records --------------------------------------- */

static int apply_info(struct sf_curl_reply *r, const unsigned char *d,
                      size_t len)
{
	if (len < 2 || d[0] >= SF_INFO_TYPES || d[1] >= SF_INFO_SLOTS)
		return -1;
	int t = d[0], n = d[1];
	if (!r->info && !(r->info = calloc(1, sizeof(*r->info))))
		return -1;
	struct sf_curl_infos *in = r->info;
	d += 2;
	len -= 2;
	switch (t) {
	case SF_INFO_STRING:
		if (len < 1)
			return -1;
		free(in->str[n]);
		in->str[n] = NULL;
		if (d[0] &&
		    !(in->str[n] = strndup((const char *)d + 1, len - 1)))
			return -1;
		break;
	case SF_INFO_DOUBLE:
		if (len != sizeof(double))
			return -1;
		memcpy(&in->dbl[n], d, sizeof(double));
		break;
	default: {
		int64_t v;
		if (len != 8)
			return -1;
		memcpy(&v, d, 8);
		if (t == SF_INFO_LONG)
			in->lng[n] = (long)v;
		else
			in->off[n] = (curl_off_t)v;
		break;
	}
	}
	in->have[t][n] = 1;
	return 0;
}

static int apply_hdr(struct sf_curl_reply *r, const unsigned char *d,
                     size_t len)
{
	if (len < 9)
		return -1;
	const char *name = (const char *)d + 8;
	size_t nl = strnlen(name, len - 8);
	if (nl == len - 8)
		return -1; /* no NUL */
	if (r->nhdrs == r->hcap) {
		size_t n = r->hcap ? r->hcap * 2 : 32;
		struct sf_curl_hdr *v = realloc(r->hdrs, n * sizeof(*v));
		if (!v)
			return -1;
		r->hdrs = v;
		r->hcap = n;
	}
	struct sf_curl_hdr *h = &r->hdrs[r->nhdrs];
	uint32_t type;
	int32_t req;
	memcpy(&type, d, 4);
	memcpy(&req, d + 4, 4);
	h->type = type;
	h->request = req;
	h->name = strndup(name, nl);
	h->value = strndup(name + nl + 1, len - 9 - nl);
	if (!h->name || !h->value) {
		free(h->name);
		free(h->value);
		return -1;
	}
	r->nhdrs++;
	return 0;
}

int sf_xfile_apply_final(struct sf_curl_reply *r, unsigned char type,
                         const unsigned char *data, size_t len)
{
	switch (type) {
	case SF_XREC_CODE: {
		int32_t c;
		if (len < 5 || len - 5 >= CURL_ERROR_SIZE)
			return -1;
		memcpy(&c, data, 4);
		r->code = (CURLcode)c;
		r->retry = data[4] != 0;
		memcpy(r->errmsg, data + 5, len - 5);
		r->errmsg[len - 5] = '\0';
		return 0;
	}
	case SF_XREC_REQUESTS: {
		int32_t q;
		if (len != 5)
			return -1;
		memcpy(&q, data, 4);
		if (q < 0)
			return -1;
		r->requests = q;
		r->header_api = data[4] != 0;
		return 0;
	}
	case SF_XREC_HDR:
		return apply_hdr(r, data, len);
	case SF_XREC_INFO:
		return apply_info(r, data, len);
	default:
		return -1;
	}
}
