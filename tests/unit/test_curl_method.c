/* test_curl_method.c - the shim's method derivation against the real
 * libcurl (issue 7, defect 5).
 *
 * Every method option (POST, POSTFIELDS, COPYPOSTFIELDS, MIMEPOST,
 * HTTPPOST, UPLOAD, NOBODY, HTTPGET, CUSTOMREQUEST, PUT), with the values
 * that matter (0/1, NULL/non-NULL), alone, in every ordered pair and in
 * ordered triples of the values that interact most, is set on a real easy
 * handle (reset between runs, as a program reusing one would) and mirrored
 * into the shim's record of that handle exactly as the setopt hook does.
 * The request then goes to tests/fixtures/sf_httpd's /method route, which
 * answers with the method it received and how a body was framed.  For each
 * sequence:
 *  - the verb the shim derives under the running libcurl's rules is the
 *    one the origin received (which rules, sf_curl_method.h: the first
 *    sequence, UPLOAD=1 then POSTFIELDS=NULL, tells them apart, since a
 *    patched 7.88.1 follows 8.x's);
 *  - the shim calls it a GET (the only method that may coalesce) only if
 *    the origin got a GET without a body;
 *  - the key builder accepts the handle exactly when it is such a GET.
 *
 * Not preloaded: the test links the shim's objects (not its exported
 * wrappers) and libcurl.  Run by tests/integration/31-curl-method.sh, with
 * SF_HTTP_PORT naming the fixture; run a second time against libcurl 8.14
 * by scripts/curl8-check.sh. */
#include "common/sf_config.h"
#include "curl/sf_curl_handle.h"
#include "curl/sf_curl_key.h"
#include "curl/sf_curl_method.h"
#include "curl/sf_curl_opts.h"
#include "sf_unit_main.h"

#include <check.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct setting {
	const char *label;
	CURLoption id;
	long l;  /* LONG options */
	int ptr; /* pointer options: "=0" NULL, "=1" a real object */
};

#define L(opt, v)                                \
	{                                        \
#opt "=" #v, CURLOPT_##opt, v, 0 \
	}
#define P(opt, has)                                  \
	{                                            \
#opt "=" #has, CURLOPT_##opt, 0, has \
	}

static const struct setting settings[] = {
	L(POST, 0),
	L(POST, 1),
	P(POSTFIELDS, 1),
	P(POSTFIELDS, 0),
	P(COPYPOSTFIELDS, 1),
	P(COPYPOSTFIELDS, 0),
	P(MIMEPOST, 1),
	P(MIMEPOST, 0),
	P(HTTPPOST, 1),
	P(HTTPPOST, 0),
	L(UPLOAD, 0),
	L(UPLOAD, 1),
	L(NOBODY, 0),
	L(NOBODY, 1),
	L(HTTPGET, 0),
	L(HTTPGET, 1),
	P(CUSTOMREQUEST, 1),
	P(CUSTOMREQUEST, 0),
	L(PUT, 0),
	L(PUT, 1),
};
#define NSET (sizeof(settings) / sizeof(settings[0]))

/* The values whose interplay differs between libcurl versions or depends
 * on state (the 7.x upload flag, NOBODY=0 reading the request kind): every
 * ordered triple of these runs too. */
static const size_t triple_set[] = { 0, 1, 3, 7, 10, 11, 12, 13, 15, 17 };
#define NTRIPLE (sizeof(triple_set) / sizeof(triple_set[0]))

static const struct sf_curl_real fake_api = { .flavour = SF_CURL_OPENSSL };

static CURL *easy;
static struct sf_curl_handle *rec;
static curl_mime *mime;
static struct curl_httppost *form;
static struct curl_slist *no_expect;
static char url[128];
static enum sf_curl_rules rules;

struct seen {
	char method[64], body[64];
};

static size_t on_header(char *p, size_t size, size_t nmemb, void *arg)
{
	struct seen *s = arg;
	size_t n = size * nmemb;
	char line[256];
	size_t k = n < sizeof(line) - 1 ? n : sizeof(line) - 1;
	memcpy(line, p, k);
	line[k] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	if (strncasecmp(line, "X-Method: ", 10) == 0)
		snprintf(s->method, sizeof(s->method), "%.60s", line + 10);
	else if (strncasecmp(line, "X-Body: ", 8) == 0)
		snprintf(s->body, sizeof(s->body), "%.60s", line + 8);
	return n;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *arg)
{
	(void)p;
	(void)arg;
	return size * nmemb;
}

/* Bodies (PUT, POST with NULL fields) are read from here: none. */
static size_t on_read(char *p, size_t size, size_t nmemb, void *arg)
{
	(void)p;
	(void)size;
	(void)nmemb;
	(void)arg;
	return 0;
}

/* What the setopt hook does: the real call, then the record if accepted. */
static CURLcode set_long(CURLoption id, long v)
{
	CURLcode rc = curl_easy_setopt(easy, id, v);
	if (rc == CURLE_OK)
		sf_curl_handle_set(rec, id, SF_OPTK_LONG,
		                   (union sf_curl_optval){ .l = v });
	return rc;
}

static CURLcode set_ptr(CURLoption id, void *v)
{
	CURLcode rc = curl_easy_setopt(easy, id, v);
	if (rc == CURLE_OK)
		sf_curl_handle_set(rec, id, sf_curl_opt_kind_of(id),
		                   (union sf_curl_optval){ .p = v });
	return rc;
}

static CURLcode apply(const struct setting *s)
{
	if (s->id < CURLOPTTYPE_OBJECTPOINT)
		return set_long(s->id, s->l);
	void *obj = NULL;
	if (s->ptr) {
		switch (s->id) {
		case CURLOPT_MIMEPOST:
			obj = mime;
			break;
		case CURLOPT_HTTPPOST:
			obj = form;
			break;
		case CURLOPT_CUSTOMREQUEST:
			obj = "PATCH";
			break;
		default:
			obj = "x"; /* POSTFIELDS, COPYPOSTFIELDS */
		}
	}
	return set_ptr(s->id, obj);
}

static void label_of(char *out, size_t size, const size_t *seq, size_t n)
{
	size_t len = 0;
	out[0] = '\0';
	for (size_t i = 0; i < n && len < size; i++)
		len += (size_t)snprintf(out + len, size - len, "%s%s",
		                        i ? ", " : "", settings[seq[i]].label);
}

static unsigned runs, failures;
static bool quiet; /* while probing which rules apply */

/* One sequence: returns false (and prints why) when the shim got it wrong. */
static bool run(const size_t *seq, size_t n)
{
	char label[256];
	label_of(label, sizeof(label), seq, n);
	if (getenv("SF_VERBOSE"))
		fprintf(stderr, "%s\n", label);
	curl_easy_reset(easy);
	sf_curl_handle_clear(rec);
	/* A MIME structure is not rewound by curl_easy_reset (7.88 then
	 * never sends its body again): one per run. */
	ck_assert_ptr_nonnull(mime = curl_mime_init(easy));
	curl_mimepart *part = curl_mime_addpart(mime);
	curl_mime_name(part, "f");
	curl_mime_data(part, "v", CURL_ZERO_TERMINATED);
	ck_assert_int_eq(set_ptr(CURLOPT_URL, url), CURLE_OK);
	set_ptr(CURLOPT_READFUNCTION, (void *)on_read);
	set_ptr(CURLOPT_WRITEFUNCTION, (void *)on_body);
	set_ptr(CURLOPT_HEADERFUNCTION, (void *)on_header);
	struct seen seen = { "", "" };
	set_ptr(CURLOPT_HEADERDATA, &seen);
	set_ptr(CURLOPT_HTTPHEADER, no_expect);
	set_long(CURLOPT_NOSIGNAL, 1);
	set_long(CURLOPT_VERBOSE, getenv("SF_VERBOSE") != NULL);
	for (size_t i = 0; i < n; i++) {
		CURLcode rc = apply(&settings[seq[i]]);
		ck_assert_msg(rc == CURLE_OK, "%s: setopt %s: %d", label,
		              settings[seq[i]].label, rc);
	}

	enum sf_curl_verb verb = sf_curl_method_verb(&rec->method, rules);
	bool is_get = sf_curl_method_is_get(&rec->method);
	struct sf_curl_key key = { 0 };
	enum sf_pass why = sf_curl_key_build(rec, sf_config(), &key);
	sf_curl_key_free(&key);

	CURLcode rc = curl_easy_perform(easy);
	runs++;
	curl_easy_setopt(easy, CURLOPT_MIMEPOST, NULL); /* before freeing it */
	curl_mime_free(mime);
	ck_assert_msg(rc == CURLE_OK, "%s: perform: %s", label,
	              curl_easy_strerror(rc));
	ck_assert_msg(seen.method[0], "%s: no X-Method from the origin", label);

	const char *want = verb == SF_VERB_CUSTOM ? "PATCH"
	                                          : sf_curl_verb_name(verb);
	bool ok = strcmp(want, seen.method) == 0;
	if (!ok && !quiet)
		fprintf(stderr, "%s: libcurl sent %s, the shim says %s\n",
		        label, seen.method, want);
	if (is_get &&
	    (strcmp(seen.method, "GET") || strcmp(seen.body, "none"))) {
		fprintf(stderr, "%s: shim says GET, origin got %s (body %s)\n",
		        label, seen.method, seen.body);
		ok = false;
	}
	if ((why == SF_PASS_COUNT) != is_get) {
		fprintf(stderr, "%s: key builder says %d, GET is %d\n", label,
		        (int)why, is_get);
		ok = false;
	}
	failures += !ok;
	return ok;
}

START_TEST(every_method_combination)
{
	const char *port = getenv("SF_HTTP_PORT");
	ck_assert_msg(port != NULL, "SF_HTTP_PORT not set (31-curl-method.sh)");
	snprintf(url, sizeof(url), "http://127.0.0.1:%s/method", port);
	ck_assert_ptr_nonnull(easy = curl_easy_init());
	ck_assert_ptr_nonnull(rec = sf_curl_handle_add(easy, &fake_api));
	struct curl_httppost *last = NULL;
	ck_assert_int_eq(curl_formadd(&form, &last, CURLFORM_COPYNAME, "f",
	                              CURLFORM_COPYCONTENTS, "v", CURLFORM_END),
	                 0);
	no_expect = curl_slist_append(NULL, "Expect:");

	/* Which rules this libcurl follows: UPLOAD=1, POSTFIELDS=NULL is a
	 * PUT with the 7.x upload flag, a POST without. */
	size_t seq[3] = { 11, 3 };
	quiet = true;
	rules = SF_CURL_RULES_UPLOAD_FLAG;
	bool flag = run(seq, 2);
	rules = SF_CURL_RULES_UNIFIED;
	bool unified = run(seq, 2);
	ck_assert_msg(flag != unified, "neither rule set explains UPLOAD=1, "
	                               "POSTFIELDS=NULL");
	rules = flag ? SF_CURL_RULES_UPLOAD_FLAG : SF_CURL_RULES_UNIFIED;
	runs = failures = 0;
	quiet = false;
	fprintf(stderr, "libcurl %s follows the %s rules\n",
	        curl_version_info(CURLVERSION_NOW)->version,
	        flag ? "7.x upload-flag" : "unified (8.1.0+)");

	for (size_t a = 0; a < NSET; a++) {
		seq[0] = a;
		run(seq, 1);
		for (size_t b = 0; b < NSET; b++) {
			seq[1] = b;
			run(seq, 2);
		}
	}
	for (size_t a = 0; a < NTRIPLE; a++)
		for (size_t b = 0; b < NTRIPLE; b++)
			for (size_t c = 0; c < NTRIPLE; c++) {
				seq[0] = triple_set[a];
				seq[1] = triple_set[b];
				seq[2] = triple_set[c];
				run(seq, 3);
			}
	fprintf(stderr, "libcurl %s: %u sequences, %u misclassified\n",
	        curl_version_info(CURLVERSION_NOW)->version, runs, failures);
	ck_assert_uint_eq(runs,
	                  NSET + NSET * NSET + NTRIPLE * NTRIPLE * NTRIPLE);
	ck_assert_uint_eq(failures, 0);

	sf_curl_handle_remove(easy);
	curl_easy_cleanup(easy);
	curl_formfree(form);
	curl_slist_free_all(no_expect);
}
END_TEST

int main(void)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return 2;
	Suite *s = suite_create("curl_method");
	TCase *tc = tcase_create("curl_method");
	tcase_add_test(tc, every_method_combination);
	suite_add_tcase(s, tc);
	int rc = sf_unit_run(s);
	curl_global_cleanup();
	return rc;
}
