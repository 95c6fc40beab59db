/* sf_curl_key.c - classification of a handle's options and its key. */
#include "curl/sf_curl_key.h"

#include "common/sf_ns.h"
#include "core/sf_flight.h"
#include "curl/sf_curl_opts.h"
#include "curl/sf_curl_share.h"

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

static bool http_url(const char *url)
{
	return url && (strncasecmp(url, "http://", 7) == 0 ||
	               strncasecmp(url, "https://", 8) == 0);
}

/* Why a handle passes through, named for the stats and the log: option
 * names and fixed words only, never a value (a URL, a credential). */
static enum sf_pass pass(enum sf_pass why, const char *cause)
{
	sf_stats_pass_cause(SF_API_CURL, why, cause);
	return why;
}

/* The cause for a method other than GET: the option that set it last. */
static const char *method_cause(const struct sf_curl_method *m)
{
	const struct sf_curl_opt_info *info = sf_curl_opt_lookup(m->by);
	return info ? info->cause : "method not GET";
}

enum sf_pass sf_curl_key_build(const struct sf_curl_handle *h,
                               const struct sf_config *c,
                               struct sf_curl_key *key)
{
	if (!c->curl)
		return SF_PASS_DISABLED;
	if (h->unknown)
		return pass(SF_PASS_UNSUPPORTED, "unknown CURLOPT set");
	if (h->unrecorded)
		return pass(SF_PASS_UNSUPPORTED, "option not recorded");
	const struct sf_curl_opt *url = sf_curl_handle_get(h, CURLOPT_URL);
	if (!url || !url->v.s)
		return pass(SF_PASS_UNSUPPORTED, "CURLOPT_URL not set");
	if (!http_url(url->v.s))
		return pass(SF_PASS_UNSUPPORTED, "URL scheme not http(s)");
	if (!sf_filter_allows(&c->urls, url->v.s))
		return pass(SF_PASS_FILTERED, "URL filter");

	for (size_t i = 0; i < h->nopts; i++) {
		const struct sf_curl_opt *o = &h->opts[i];
		const struct sf_curl_opt_info *info = sf_curl_opt_lookup(o->id);
		if (!info) /* the record keeps known ids only */
			return pass(SF_PASS_UNSUPPORTED, "unknown CURLOPT set");
		if (info->cls == SF_OPTC_PASS && sf_curl_opt_is_set(o))
			return pass(SF_PASS_UNSUPPORTED, info->cause);
	}
	/* The attached share and the cookie/HSTS engines: they outlive the
	 * option record (curl_easy_reset keeps them). */
	const char *share_cause = sf_curl_share_verdict(h);
	if (share_cause)
		return pass(SF_PASS_UNSUPPORTED, share_cause);
	/* libcurl's own derivation, mirrored call by call: only a GET. */
	if (!sf_curl_method_is_get(&h->method))
		return pass(SF_PASS_UNSUPPORTED, method_cause(&h->method));

	/* Delivery that cannot be replayed: libcurl's own progress meter, and
	 * fwrite to a NULL stream. */
	const struct sf_curl_opt *o;
	bool progress = (o = sf_curl_handle_get(h, CURLOPT_NOPROGRESS)) &&
	                !o->v.l;
	if (progress && !sf_curl_handle_get(h, CURLOPT_XFERINFOFUNCTION) &&
	    !sf_curl_handle_get(h, CURLOPT_PROGRESSFUNCTION))
		return pass(SF_PASS_UNSUPPORTED,
		            "CURLOPT_NOPROGRESS=0 without a callback");
	o = sf_curl_handle_get(h, CURLOPT_WRITEDATA);
	const struct sf_curl_opt *wf =
	        sf_curl_handle_get(h, CURLOPT_WRITEFUNCTION);
	if (o && !o->v.p && (!wf || !wf->v.p))
		return pass(SF_PASS_UNSUPPORTED,
		            "CURLOPT_WRITEDATA NULL without a WRITEFUNCTION");

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
	/* A transfer that depends on its share's HSTS cache: that share's
	 * handles only. */
	unsigned char scope[SF_CURL_SHARE_SCOPE_MAX];
	size_t scope_len = sf_curl_share_key_scope(h, scope);
	if (scope_len)
		put(&b, scope, scope_len);
	/* Callers in other network or mount namespaces never share. */
	unsigned char ns[SF_NS_ID_MAX];
	int nsl = sf_ns_identity(ns);
	if (nsl > 0)
		put(&b, ns, (size_t)nsl);
	if (b.failed || nsl < 0) {
		free(b.p);
		return nsl < 0 ? pass(SF_PASS_UNSUPPORTED,
		                      "namespace not readable")
		               : pass(SF_PASS_NOFLIGHT,
		                      "key too large or no memory");
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
