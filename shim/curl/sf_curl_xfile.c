/* sf_curl_xfile.c - the response file's writer and reader (format in
 * sf_curl_xfile.h). */
#include "curl/sf_curl_xfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REC_HEAD 5
#define MAGIC "SFXC"
#define VERSION 1u
/* Larger than any record a leader writes (a header line is at most
 * libcurl's 100 KiB, a body piece CURL_MAX_WRITE_SIZE): anything longer
 * is not one of ours. */
#define REC_MAX ((size_t)1 << 20)

static int write_all(int fd, const void *data, size_t n)
{
	const unsigned char *p = data;
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			if (k == 0)
				errno = ENOSPC;
			return -1;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

int sf_xfile_create(struct sf_xfile_writer *w, int dirfd, const char *name,
                    uint32_t epoch)
{
	w->fd = -1;
	w->len = 0;
	w->failed = false;
	int fd = openat(dirfd, name,
	                O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	                0600);
	if (fd < 0)
		return -1;
	unsigned char head[SF_XFILE_HEAD] = { 0 };
	uint32_t v = VERSION;
	uint64_t e = epoch;
	memcpy(head, MAGIC, 4);
	memcpy(head + 4, &v, 4);
	memcpy(head + 8, &e, 8);
	if (write_all(fd, head, sizeof(head)) < 0) {
		int err = errno;
		close(fd);
		unlinkat(dirfd, name, 0);
		errno = err;
		return -1;
	}
	w->fd = fd;
	w->len = sizeof(head);
	return 0;
}

int sf_xfile_put(struct sf_xfile_writer *w, unsigned char type,
                 const void *data, size_t len)
{
	if (w->fd < 0 || w->failed || len > REC_MAX)
		goto fail;
	unsigned char head[REC_HEAD] = { type };
	uint32_t n = (uint32_t)len;
	memcpy(head + 1, &n, sizeof(n));
	if (write_all(w->fd, head, sizeof(head)) < 0 ||
	    (len && write_all(w->fd, data, len) < 0))
		goto fail;
	w->len += REC_HEAD + len;
	return 0;
fail:
	w->failed = true;
	return -1;
}

void sf_xfile_close(struct sf_xfile_writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
}

/* ---- the final records ------------------------------------------------ */

static int put_info(struct sf_xfile_writer *w, const struct sf_curl_infos *in,
                    int t, int n)
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

static int put_hdr(struct sf_xfile_writer *w, const struct sf_curl_hdr *h)
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

int sf_xfile_put_final(struct sf_xfile_writer *w, CURLcode code,
                       const char *errmsg, bool retry,
                       const struct sf_curl_reply *snap)
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

/* ---- the reader ------------------------------------------------------- */

void sf_xfile_reader_init(struct sf_xfile_reader *r)
{
	memset(r, 0, sizeof(*r));
	r->fd = -1;
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

int sf_xfile_open(struct sf_xfile_reader *r, int dirfd, const char *name)
{
	sf_xfile_reader_close(r);
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	unsigned char head[SF_XFILE_HEAD];
	ssize_t k;
	do
		k = pread(fd, head, sizeof(head), 0);
	while (k < 0 && errno == EINTR);
	if (k != (ssize_t)sizeof(head)) {
		close(fd);
		return k < 0 ? -1 : 0;
	}
	uint32_t v;
	uint64_t e;
	memcpy(&v, head + 4, 4);
	memcpy(&e, head + 8, 8);
	if (memcmp(head, MAGIC, 4) != 0 || v != VERSION || e > UINT32_MAX) {
		close(fd);
		return -1;
	}
	r->fd = fd;
	r->epoch = (uint32_t)e;
	r->pos = SF_XFILE_HEAD;
	return 1;
}

int sf_xfile_next(struct sf_xfile_reader *r, uint64_t avail,
                  unsigned char *type, const unsigned char **data, size_t *len)
{
	unsigned char head[REC_HEAD];
	uint32_t n;
	if (r->fd < 0)
		return -1;
	if (avail < r->pos || avail - r->pos < REC_HEAD)
		return 0;
	if (read_at(r->fd, head, REC_HEAD, r->pos) < 0)
		return -1;
	memcpy(&n, head + 1, 4);
	if (n > REC_MAX)
		return -1;
	if (avail - r->pos - REC_HEAD < n)
		return 0; /* the rest is on its way */
	if (n > r->cap) {
		unsigned char *b = realloc(r->buf, n);
		if (!b)
			return -1;
		r->buf = b;
		r->cap = n;
	}
	if (n && read_at(r->fd, r->buf, n, r->pos + REC_HEAD) < 0)
		return -1;
	*type = head[0];
	*data = n ? r->buf : (const unsigned char *)"";
	*len = n;
	r->pos += REC_HEAD + n;
	return 1;
}

void sf_xfile_reader_close(struct sf_xfile_reader *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	r->pos = 0;
	r->epoch = 0;
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
