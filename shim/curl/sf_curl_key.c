/* sf_curl_key.c - classification of a handle's options and its key. */
#include "curl/sf_curl_key.h"

#include "common/sf_ns.h"
#include "core/sf_flight.h"
#include "curl/sf_curl_opts.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct buf {
	unsigned char *p;
	size_t len, cap;
	bool failed;
};

static void put(struct buf *b, const void *data, size_t n)
{
	if (b->failed)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 512;
		while (cap < b->len + n)
			cap *= 2;
		unsigned char *p = cap > SF_KEY_MAX ? NULL : realloc(b->p, cap);
		if (!p) {
			b->failed = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
}

/* Length-prefixed, so that no two different values encode alike. */
static void put_bytes(struct buf *b, const void *data, size_t n)
{
	uint64_t len = n;
	put(b, &len, sizeof(len));
	put(b, data, n);
}

static void put_value(struct buf *b, const struct sf_curl_opt *o)
{
	uint32_t id = (uint32_t)o->id;
	unsigned char present;
	put(b, &id, sizeof(id));
	switch (o->kind) {
	case SF_OPTK_LONG:
		put(b, &o->v.l, sizeof(o->v.l));
		break;
	case SF_OPTK_OFF:
		put(b, &o->v.o, sizeof(o->v.o));
		break;
	case SF_OPTK_STRING:
		present = o->v.s != NULL;
		put(b, &present, 1);
		if (present)
			put_bytes(b, o->v.s, strlen(o->v.s));
		break;
	case SF_OPTK_BLOB:
		present = o->v.blob.data != NULL;
		put(b, &present, 1);
		if (present)
			put_bytes(b, o->v.blob.data, o->v.blob.len);
		break;
	case SF_OPTK_SLIST: {
		/* The caller may have changed the list since setopt: read it
		 * now, as libcurl is about to. */
		uint64_t n = 0;
		for (const struct curl_slist *l = o->v.p; l; l = l->next)
			n++;
		put(b, &n, sizeof(n));
		for (const struct curl_slist *l = o->v.p; l; l = l->next)
			put_bytes(b, l->data ? l->data : "",
			          l->data ? strlen(l->data) : 0);
		break;
	}
	default: /* PTR and FUNC options never reach the key */
		b->failed = true;
	}
}

static bool is_set(const struct sf_curl_opt *o)
{
	switch (o->kind) {
	case SF_OPTK_LONG:
		return o->v.l != 0;
	case SF_OPTK_OFF:
		return o->v.o != 0;
	case SF_OPTK_STRING:
		return o->v.s != NULL;
	case SF_OPTK_BLOB:
		return o->v.blob.data != NULL;
	default:
		return o->v.p != NULL;
	}
}

/* The method, replayed from the recorded options the way libcurl sets it:
 * only a plain GET may coalesce. */
struct method {
	bool nobody, upload, post, custom;
};

static void apply_method(struct method *m, const struct sf_curl_opt *o)
{
	switch (o->id) {
	case CURLOPT_NOBODY:
		m->nobody = o->v.l != 0;
		break;
	case CURLOPT_UPLOAD:
	case CURLOPT_PUT:
		m->upload = o->v.l != 0;
		break;
	case CURLOPT_POST:
		m->post = o->v.l != 0;
		break;
	case CURLOPT_POSTFIELDS:
	case CURLOPT_COPYPOSTFIELDS:
		m->post = true;
		break; /* even NULL */
	case CURLOPT_HTTPPOST:
	case CURLOPT_MIMEPOST:
		m->post = o->v.p != NULL;
		break;
	case CURLOPT_CUSTOMREQUEST:
		m->custom = o->v.s != NULL;
		break;
	default:
		break;
	}
}

static bool http_url(const char *url)
{
	return url && (strncasecmp(url, "http://", 7) == 0 ||
	               strncasecmp(url, "https://", 8) == 0);
}

enum sf_pass sf_curl_key_build(const struct sf_curl_handle *h,
                               const struct sf_config *c,
                               struct sf_curl_key *key)
{
	if (!c->curl)
		return SF_PASS_DISABLED;
	const struct sf_curl_opt *url = sf_curl_handle_get(h, CURLOPT_URL);
	if (h->unrecorded || !url || !http_url(url->v.s))
		return SF_PASS_UNSUPPORTED;
	if (!sf_filter_allows(&c->urls, url->v.s))
		return SF_PASS_FILTERED;

	struct method m = { 0 };
	bool httpget_last = false;
	for (size_t i = 0; i < h->nopts; i++) {
		const struct sf_curl_opt *o = &h->opts[i];
		const struct sf_curl_opt_info *info = sf_curl_opt_lookup(o->id);
		if (!info)
			return SF_PASS_UNSUPPORTED; /* unknown: never guess */
		if (info->cls == SF_OPTC_PASS && is_set(o))
			return SF_PASS_UNSUPPORTED;
		if (info->cls == SF_OPTC_METHOD)
			apply_method(&m, o);
		if (o->id == CURLOPT_HTTPGET)
			httpget_last = o->v.l != 0;
	}
	/* HTTPGET=1 resets the method; the record keeps no order between
	 * options, so a handle with both HTTPGET and another method option
	 * is left alone rather than guessed. */
	if (httpget_last && (m.nobody || m.upload || m.post))
		return SF_PASS_UNSUPPORTED;
	if (m.nobody || m.upload || m.post || m.custom)
		return SF_PASS_UNSUPPORTED;

	/* Delivery that cannot be replayed: libcurl's own progress meter, and
	 * fwrite to a NULL stream. */
	const struct sf_curl_opt *o;
	bool progress = (o = sf_curl_handle_get(h, CURLOPT_NOPROGRESS)) &&
	                !o->v.l;
	if (progress && !sf_curl_handle_get(h, CURLOPT_XFERINFOFUNCTION) &&
	    !sf_curl_handle_get(h, CURLOPT_PROGRESSFUNCTION))
		return SF_PASS_UNSUPPORTED;
	o = sf_curl_handle_get(h, CURLOPT_WRITEDATA);
	const struct sf_curl_opt *wf =
	        sf_curl_handle_get(h, CURLOPT_WRITEFUNCTION);
	if (o && !o->v.p && (!wf || !wf->v.p))
		return SF_PASS_UNSUPPORTED;

	struct buf b = { 0 };
	static const char tag[] = "curl-easy-get";
	unsigned char flavour = (unsigned char)h->api->flavour;
	put(&b, tag, sizeof(tag));
	put(&b, &flavour, 1);
	for (size_t i = 0; i < h->nopts; i++) {
		const struct sf_curl_opt_info *info =
		        sf_curl_opt_lookup(h->opts[i].id);
		if (info->cls == SF_OPTC_KEY)
			put_value(&b, &h->opts[i]);
	}
	/* Callers in other network or mount namespaces never share. */
	unsigned char ns[SF_NS_ID_MAX];
	int nsl = sf_ns_identity(ns);
	if (nsl > 0)
		put(&b, ns, (size_t)nsl);
	if (b.failed || nsl < 0) {
		free(b.p);
		return nsl < 0 ? SF_PASS_UNSUPPORTED : SF_PASS_NOFLIGHT;
	}
	key->bytes = b.p;
	key->len = b.len;
	key->url = url->v.s;
	return SF_PASS_COUNT;
}

void sf_curl_key_free(struct sf_curl_key *key)
{
	free(key->bytes);
	key->bytes = NULL;
}
