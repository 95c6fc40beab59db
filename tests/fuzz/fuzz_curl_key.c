/* fuzz_curl_key.c - the curl request key (sf_curl_key_build).
 *
 * Property: the same request always gets the same key, and different
 * requests never do.  The input scripts two handles: A gets a list of
 * setopt calls; B gets A's calls, each kept, dropped or made with another
 * value, then a few more.  A model kept here, from
 * the calls alone, says whether A and B ask for the same thing: the last
 * value of every option that the option table classes as part of the
 * request (SF_OPTC_KEY), strings, blobs and slists by content, and the
 * library flavour.  When both handles may coalesce, equal keys must mean
 * equal models, and equal models equal keys.  Building a key twice must
 * give the same bytes.
 *
 * Thin on purpose: the record is driven only through sf_curl_handle_set and
 * sf_curl_handle_clear, and the handle through its public fields (easy,
 * api), so that a rewrite of how options are recorded needs changes in
 * set_option() and new_handle() only.  The method derivation has its own
 * harness slot (see tests/fuzz/README.md): here method options only decide
 * whether a handle coalesces. */
#include "common/sf_log.h"
#include "curl/sf_curl_handle.h"
#include "curl/sf_curl_key.h"
#include "curl/sf_curl_opts.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAXCALLS 48
#define MAXSLIST 4

struct input {
	const uint8_t *p;
	size_t n;
};

static uint8_t take(struct input *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

/* One setopt call, with every value it points to owned here (slists stay
 * alive until the keys are built, as a program keeps them). */
struct call {
	CURLoption id;
	unsigned char kind;
	union sf_curl_optval v;
	char str[40];
	uint8_t blob[16];
	struct curl_slist nodes[MAXSLIST];
	char items[MAXSLIST][12];
};

static struct sf_curl_real apis[2] = { { .flavour = SF_CURL_OPENSSL },
	                               { .flavour = SF_CURL_GNUTLS } };
static int dummy_objects[3];

static CURLoption pick_id(struct input *in)
{
	uint8_t sel = take(in);
	if (sel == 255) /* an id the table does not know */
		return (CURLoption)(take(in) | take(in) << 8) +
		       10000 * (sel % 5);
	if (sel < 64)
		return CURLOPT_URL; /* keep URLs common: most keys need one */
	return sf_curl_opt_table[(sel + 256u * take(in)) % sf_curl_opt_table_len]
	        .id;
}

/* A value for c's option, from the input. */
static void fill_value(struct call *c, struct input *in)
{
	CURLoption id = c->id;
	memset(c, 0, sizeof(*c));
	c->id = id;
	c->kind = (unsigned char)sf_curl_opt_kind_of(c->id);
	uint8_t b = take(in);
	switch (c->kind) {
	case SF_OPTK_LONG:
		c->v.l = b < 128 ? b % 3 : (long)(b | take(in) << 8);
		break;
	case SF_OPTK_OFF:
		c->v.o = b % 4;
		break;
	case SF_OPTK_STRING: {
		if (b == 0) {
			c->v.s = NULL;
			break;
		}
		size_t n = 0;
		if (c->id == CURLOPT_URL && b & 1) {
			memcpy(c->str, "http://h/", 9);
			n = 9;
		}
		size_t extra = take(in) % 8;
		for (size_t k = 0; k < extra && n < sizeof(c->str) - 1; k++)
			c->str[n++] = (char)("ab/?&=:@"[take(in) % 8]);
		c->str[n] = '\0';
		c->v.s = c->str;
		break;
	}
	case SF_OPTK_BLOB:
		/* sf_curl_handle_set takes the blob's data and length. */
		if (b & 1) {
			c->v.blob.len = take(in) % sizeof(c->blob);
			for (size_t k = 0; k < c->v.blob.len; k++)
				c->blob[k] = take(in) % 3;
			c->v.blob.data = c->blob;
		}
		break;
	case SF_OPTK_SLIST: {
		size_t n = b % (MAXSLIST + 1);
		for (size_t k = 0; k < n; k++) {
			snprintf(c->items[k], sizeof(c->items[k]), "H%u: %u",
			         take(in) % 3, take(in) % 3);
			c->nodes[k].data = c->items[k];
			c->nodes[k].next = k + 1 < n ? &c->nodes[k + 1] : NULL;
		}
		c->v.p = n ? &c->nodes[0] : NULL;
		break;
	}
	default: /* PTR, FUNC: a few distinct addresses, or NULL */
		c->v.p = b % 4 ? &dummy_objects[b % 3] : NULL;
		break;
	}
}

static void fill_call(struct call *c, struct input *in)
{
	c->id = pick_id(in);
	fill_value(c, in);
}

/* After a struct copy from src, point c's values into c's own storage
 * (a copy made with fill_call already does). */
static void fix_pointers(struct call *c, const struct call *src)
{
	if (c->kind == SF_OPTK_STRING && c->v.s == src->str)
		c->v.s = c->str;
	if (c->kind == SF_OPTK_BLOB && c->v.blob.data == src->blob)
		c->v.blob.data = c->blob;
	if (c->kind == SF_OPTK_SLIST && c->v.p == (void *)&src->nodes[0]) {
		c->v.p = &c->nodes[0];
		for (size_t k = 0; k < MAXSLIST; k++) {
			if (src->nodes[k].data)
				c->nodes[k].data = c->items[k];
			if (src->nodes[k].next)
				c->nodes[k].next = &c->nodes[k + 1];
		}
	}
}

/* ---- the record (adapt here if recording changes) ---------------------- */

static struct sf_curl_handle *new_handle(int flavour)
{
	struct sf_curl_handle *h = calloc(1, sizeof(*h));
	if (!h)
		abort();
	h->easy = h; /* any unique address */
	h->api = &apis[flavour];
	return h;
}

static void set_option(struct sf_curl_handle *h, const struct call *c)
{
	sf_curl_handle_set(h, c->id, c->kind, c->v);
}

static void free_handle(struct sf_curl_handle *h)
{
	sf_curl_handle_clear(h);
	free(h);
}

/* ---- the model --------------------------------------------------------- */

/* The last call per option id among calls[0..n) that is part of the
 * request, or NULL. */
static const struct call *last_of(const struct call *calls, size_t n,
                                  CURLoption id)
{
	const struct call *r = NULL;
	for (size_t i = 0; i < n; i++)
		if (calls[i].id == id)
			r = &calls[i];
	return r;
}

static int same_value(const struct call *a, const struct call *b)
{
	switch (a->kind) {
	case SF_OPTK_LONG:
		return a->v.l == b->v.l;
	case SF_OPTK_OFF:
		return a->v.o == b->v.o;
	case SF_OPTK_STRING:
		if (!a->v.s || !b->v.s)
			return !a->v.s && !b->v.s;
		return strcmp(a->v.s, b->v.s) == 0;
	case SF_OPTK_BLOB:
		if (!a->v.blob.data || !b->v.blob.data)
			return !a->v.blob.data && !b->v.blob.data;
		return a->v.blob.len == b->v.blob.len &&
		       memcmp(a->v.blob.data, b->v.blob.data, a->v.blob.len) ==
		               0;
	case SF_OPTK_SLIST: {
		const struct curl_slist *x = a->v.p, *y = b->v.p;
		for (; x && y; x = x->next, y = y->next)
			if (strcmp(x->data, y->data) != 0)
				return 0;
		return !x && !y;
	}
	default:
		return a->v.p == b->v.p;
	}
}

/* Same request: every request-shaping option has the same last value (or
 * is unset in both). */
static int same_request(const struct call *ca, size_t na, const struct call *cb,
                        size_t nb)
{
	for (size_t t = 0; t < sf_curl_opt_table_len; t++) {
		if (sf_curl_opt_table[t].cls != SF_OPTC_KEY)
			continue;
		CURLoption id = sf_curl_opt_table[t].id;
		const struct call *a = last_of(ca, na, id);
		const struct call *b = last_of(cb, nb, id);
		if (!a || !b) {
			if (a || b)
				return 0;
			continue;
		}
		if (!same_value(a, b))
			return 0;
	}
	return 1;
}

/* ---- the property ------------------------------------------------------ */

static struct sf_config config;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (fd >= 0)
		sf_log_set_fd(fd);
	return 0;
}

static const char *unset(const char *name)
{
	(void)name;
	return NULL;
}

static struct call ca[MAXCALLS], cb[2 * MAXCALLS];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int loaded;
	if (!loaded) {
		sf_config_load(&config, unset); /* defaults: curl on */
		loaded = 1;
	}
	struct input in = { data, size };
	int fa = take(&in) & 1, fb = take(&in) % 7 == 0 ? !fa : fa;
	size_t na = take(&in) % (MAXCALLS + 1), nb = 0;
	for (size_t i = 0; i < na; i++)
		fill_call(&ca[i], &in);
	/* B: A's calls, each kept, dropped, or made again with another value
	 * of the same option (the near misses), then a few more. */
	for (size_t i = 0; i < na; i++) {
		uint8_t mode = take(&in) % 8;
		if (mode == 6)
			continue;
		cb[nb] = ca[i];
		if (mode == 7)
			fill_value(&cb[nb], &in); /* same option, new value */
		else
			fix_pointers(&cb[nb], &ca[i]);
		nb++;
	}
	for (size_t extra = take(&in) % 4; extra; extra--)
		fill_call(&cb[nb++], &in);

	struct sf_curl_handle *a = new_handle(fa), *b = new_handle(fb);
	for (size_t i = 0; i < na; i++)
		set_option(a, &ca[i]);
	for (size_t i = 0; i < nb; i++)
		set_option(b, &cb[i]);

	struct sf_curl_key ka = { 0 }, ka2 = { 0 }, kb = { 0 };
	enum sf_pass pa = sf_curl_key_build(a, &config, &ka);
	enum sf_pass pa2 = sf_curl_key_build(a, &config, &ka2);
	enum sf_pass pb = sf_curl_key_build(b, &config, &kb);
	if (pa != pa2)
		abort();
	if (pa == SF_PASS_COUNT &&
	    (ka.len != ka2.len || memcmp(ka.bytes, ka2.bytes, ka.len) != 0)) {
		fprintf(stderr, "the same handle got two keys\n");
		abort();
	}
	if (pa == SF_PASS_COUNT && pb == SF_PASS_COUNT) {
		int same_key = ka.len == kb.len &&
		               memcmp(ka.bytes, kb.bytes, ka.len) == 0;
		int same = fa == fb && same_request(ca, na, cb, nb);
		if (same_key && !same) {
			fprintf(stderr, "different requests share a key\n");
			abort();
		}
		if (!same_key && same) {
			fprintf(stderr, "the same request got two keys\n");
			abort();
		}
	}
	if (pa == SF_PASS_COUNT) {
		sf_curl_key_free(&ka);
		sf_curl_key_free(&ka2);
	}
	if (pb == SF_PASS_COUNT)
		sf_curl_key_free(&kb);
	free_handle(a);
	free_handle(b);
	return 0;
}
