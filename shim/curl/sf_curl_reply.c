/* sf_curl_reply.c - the shared response: records, getinfo snapshot, headers. */
#include "curl/sf_curl_reply.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Infos that describe the handle, not the transfer: always asked of the
 * caller's own handle (see sf_curl_info.c), never snapshot. */
#define INFO_PRIVATE_NUM (CURLINFO_PRIVATE & CURLINFO_MASK)
#define INFO_LASTSOCKET_NUM 29 /* CURLINFO_LASTSOCKET, deprecated */

#define ORIGIN_ALL                                                  \
	(CURLH_HEADER | CURLH_TRAILER | CURLH_CONNECT | CURLH_1XX | \
	 CURLH_PSEUDO)

struct sf_curl_reply *sf_curl_reply_new(size_t spill_bytes)
{
	struct sf_curl_reply *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	if (!(r->stream = sf_stream_new(spill_bytes))) {
		free(r);
		return NULL;
	}
	atomic_init(&r->refs, 1);
	return r;
}

void sf_curl_reply_ref(struct sf_curl_reply *r)
{
	atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
}

void sf_curl_reply_unref(struct sf_curl_reply *r)
{
	if (!r ||
	    atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
		return;
	sf_stream_free(r->stream);
	for (int i = 0; r->info && i < SF_INFO_SLOTS; i++)
		free(r->info->str[i]);
	free(r->info);
	for (size_t i = 0; i < r->nhdrs; i++) {
		free(r->hdrs[i].name);
		free(r->hdrs[i].value);
	}
	free(r->hdrs);
	free(r);
}

static int add_header(struct sf_curl_reply *r, size_t *cap,
                      const struct curl_header *h, int request);

struct sf_curl_reply *sf_curl_reply_new_live(bool header_api)
{
	struct sf_curl_reply *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	atomic_init(&r->refs, 1);
	r->header_api = header_api;
	r->live_length = -1;
	return r;
}

int sf_curl_reply_add_line(struct sf_curl_reply *r, const char *line, size_t n)
{
	while (n && (line[n - 1] == '\r' || line[n - 1] == '\n'))
		n--;
	if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
		/* A status line after a final response starts the next
		 * request (a redirect, an auth round); after a 1xx it does
		 * not. */
		if (r->live_status >= 200)
			r->requests++;
		const char *sp = memchr(line, ' ', n);
		long code = sp ? strtol(sp, NULL, 10) : 0;
		r->live_code = code;
		r->live_length = -1;
		r->live_status = code < 100 ? 100 : code;
		return 0;
	}
	/* Before the program's callback sees the line, as libcurl parses
	 * it before calling back. */
	if (n > 15 && strncasecmp(line, "content-length:", 15) == 0) {
		char digits[24];
		size_t k = 0;
		const char *v = line + 15;
		while (v < line + n && (*v == ' ' || *v == '\t'))
			v++;
		while (v + k < line + n && k < sizeof(digits) - 1 &&
		       v[k] >= '0' && v[k] <= '9') {
			digits[k] = v[k];
			k++;
		}
		digits[k] = '\0';
		r->live_length = k ? strtoll(digits, NULL, 10) : -1;
	}
	const char *colon = memchr(line, ':', n);
	if (!colon || line[0] == ' ' || line[0] == '\t')
		return 0; /* the blank line, folded lines */
	const char *v = colon + 1, *end = line + n;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	char *name = strndup(line, (size_t)(colon - line));
	char *value = strndup(v, (size_t)(end - v));
	struct curl_header h = {
		.name = name,
		.value = value,
		.origin = r->live_status < 200 && r->live_status ? CURLH_1XX
		                                                 : CURLH_HEADER,
	};
	int rc = name && value ? add_header(r, &r->hcap, &h, r->requests) : -1;
	free(name);
	free(value);
	return rc;
}

int sf_curl_info_type(CURLINFO info)
{
	switch (info & CURLINFO_TYPEMASK) {
	case CURLINFO_STRING:
		return SF_INFO_STRING;
	case CURLINFO_LONG:
		return SF_INFO_LONG;
	case CURLINFO_DOUBLE:
		return SF_INFO_DOUBLE;
	case CURLINFO_OFF_T:
		return SF_INFO_OFF;
	default:
		return -1;
	}
}

/* Every transfer fact the leader's libcurl answers, whatever its version:
 * unknown numbers just fail with CURLE_UNKNOWN_OPTION and are not kept. */
static int snapshot_infos(struct sf_curl_reply *r,
                          const struct sf_curl_real *api, CURL *easy)
{
	int ret = 0;
	struct sf_curl_infos *in = r->info = calloc(1, sizeof(*r->info));
	if (!in)
		return -1;
	static const CURLINFO base[SF_INFO_TYPES] = {
		CURLINFO_STRING, CURLINFO_LONG, CURLINFO_DOUBLE, CURLINFO_OFF_T
	};
	for (int n = 1; n < SF_INFO_SLOTS; n++) {
		for (int t = 0; t < SF_INFO_TYPES; t++) {
			if ((t == SF_INFO_STRING && n == INFO_PRIVATE_NUM) ||
			    (t == SF_INFO_LONG && n == INFO_LASTSOCKET_NUM))
				continue;
			CURLINFO info = (CURLINFO)(base[t] + n);
			CURLcode rc;
			switch (t) {
			case SF_INFO_STRING: {
				char *s = NULL;
				rc = api->easy_getinfo(easy, info, &s);
				if (rc == CURLE_OK && s &&
				    !(in->str[n] = strdup(s))) {
					rc = CURLE_OUT_OF_MEMORY;
					ret = -1;
				}
				break;
			}
			case SF_INFO_LONG:
				rc = api->easy_getinfo(easy, info, &in->lng[n]);
				break;
			case SF_INFO_DOUBLE:
				rc = api->easy_getinfo(easy, info, &in->dbl[n]);
				break;
			default:
				rc = api->easy_getinfo(easy, info, &in->off[n]);
				break;
			}
			in->have[t][n] = rc == CURLE_OK;
		}
	}
	return ret;
}

static int add_header(struct sf_curl_reply *r, size_t *cap,
                      const struct curl_header *h, int request)
{
	if (r->nhdrs == *cap) {
		size_t n = *cap ? *cap * 2 : 32;
		struct sf_curl_hdr *v = realloc(r->hdrs, n * sizeof(*v));
		if (!v)
			return -1;
		r->hdrs = v;
		*cap = n;
	}
	struct sf_curl_hdr *d = &r->hdrs[r->nhdrs];
	d->name = strdup(h->name ? h->name : "");
	d->value = strdup(h->value ? h->value : "");
	d->type = h->origin & ORIGIN_ALL; /* without libcurl's reserved bit */
	d->request = request;
	if (!d->name || !d->value) {
		free(d->name);
		free(d->value);
		return -1;
	}
	r->nhdrs++;
	return 0;
}

static int snapshot_headers(struct sf_curl_reply *r,
                            const struct sf_curl_real *api, CURL *easy)
{
	if (!api->easy_header || !api->easy_nextheader)
		return 0;
	r->header_api = true;
	size_t cap = 0;
	/* libcurl numbers the requests of a transfer (redirects, auth rounds)
	 * from 0; asking for a name nobody sends tells which exist. */
	for (int req = 0;; req++) {
		struct curl_header *h;
		CURLHcode rc =
		        api->easy_header(easy, "", 0, ORIGIN_ALL, req, &h);
		if (rc == CURLHE_NOREQUEST || rc == CURLHE_NOHEADERS ||
		    rc == CURLHE_BAD_ARGUMENT || rc == CURLHE_NOT_BUILT_IN)
			break;
		r->requests = req;
		for (h = api->easy_nextheader(easy, ORIGIN_ALL, req, NULL); h;
		     h = api->easy_nextheader(easy, ORIGIN_ALL, req, h))
			if (add_header(r, &cap, h, req) < 0)
				return -1;
	}
	return 0;
}

int sf_curl_reply_snapshot(struct sf_curl_reply *r,
                           const struct sf_curl_real *api, CURL *easy)
{
	int a = snapshot_infos(r, api, easy);
	int b = snapshot_headers(r, api, easy);
	return a < 0 || b < 0 ? -1 : 0;
}

/* ---- the header API, as libcurl answers it ------------------------------ */

static void fill(struct curl_header *out, const struct sf_curl_hdr *h,
                 size_t index, size_t amount)
{
	out->name = h->name;
	out->value = h->value;
	out->amount = amount;
	out->index = index;
	out->origin = h->type | (1u << 27); /* libcurl sets this reserved bit */
	out->anchor = (void *)h;
}

CURLHcode sf_curl_reply_header(const struct sf_curl_reply *r,
                               struct curl_header *hout, const char *name,
                               size_t index, unsigned int type, int request,
                               struct curl_header **out)
{
	if (!name || !out || type > ORIGIN_ALL || !type || request < -1)
		return CURLHE_BAD_ARGUMENT;
	if (!r->header_api)
		return CURLHE_NOT_BUILT_IN;
	if (!r->nhdrs)
		return CURLHE_NOHEADERS;
	if (request > r->requests)
		return CURLHE_NOREQUEST;
	if (request == -1)
		request = r->requests;
	size_t amount = 0;
	for (size_t i = 0; i < r->nhdrs; i++) {
		const struct sf_curl_hdr *h = &r->hdrs[i];
		amount += strcasecmp(h->name, name) == 0 && (h->type & type) &&
		          h->request == request;
	}
	if (!amount)
		return CURLHE_MISSING;
	if (index >= amount)
		return CURLHE_BADINDEX;
	size_t seen = 0;
	for (size_t i = 0; i < r->nhdrs; i++) {
		const struct sf_curl_hdr *h = &r->hdrs[i];
		if (strcasecmp(h->name, name) == 0 && (h->type & type) &&
		    h->request == request && seen++ == index) {
			fill(hout, h, index, amount);
			*out = hout;
			return CURLHE_OK;
		}
	}
	return CURLHE_MISSING;
}

struct curl_header *sf_curl_reply_nextheader(const struct sf_curl_reply *r,
                                             struct curl_header *hout,
                                             unsigned int type, int request,
                                             struct curl_header *prev)
{
	if (request > r->requests)
		return NULL;
	if (request == -1)
		request = r->requests;
	size_t i = 0;
	if (prev) {
		const struct sf_curl_hdr *p = prev->anchor;
		if (!p || p < r->hdrs || p >= r->hdrs + r->nhdrs)
			return NULL; /* not one of ours: libcurl says "wrong" too */
		i = (size_t)(p - r->hdrs) + 1;
	}
	while (i < r->nhdrs &&
	       !((r->hdrs[i].type & type) && r->hdrs[i].request == request))
		i++;
	if (i >= r->nhdrs)
		return NULL;
	const struct sf_curl_hdr *pick = &r->hdrs[i];
	size_t amount = 0, index = 0;
	for (size_t j = 0; j < r->nhdrs; j++) {
		const struct sf_curl_hdr *c = &r->hdrs[j];
		if (strcasecmp(c->name, pick->name) == 0 &&
		    c->request == request && (c->type & type))
			amount++;
		if (j == i)
			index = amount - 1;
	}
	fill(hout, pick, index, amount);
	return hout;
}
