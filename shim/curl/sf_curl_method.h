/* sf_curl_method.h - the HTTP method a handle will send, derived the way
 * libcurl derives it.
 *
 * libcurl keeps three fields that the method options write (lib/setopt.c):
 * a request kind, a "no body" flag and, before 8.1.0, an "upload" flag.
 * NOBODY=0 reads the request kind, so the result depends on the whole
 * order of setopt calls, not only on the last value of each option: the
 * shim mirrors those fields on every setopt that libcurl accepted, in
 * call order, instead of replaying the recorded values.  At perform,
 * Curl_http_method (lib/http.c) turns the fields into the verb: a custom
 * request string wins, then "no body" (HEAD), then upload (PUT, stock 7.x
 * only, see below), then the request kind.  Only a real GET may
 * coalesce. */
#ifndef SF_CURL_METHOD_H
#define SF_CURL_METHOD_H

#include <curl/curl.h>
#include <stdbool.h>

/* libcurl's request kinds (Curl_HttpReq): the form and MIME posts are kept
 * apart because they are named so in libcurl, but all send "POST". */
enum sf_curl_req {
	SF_REQ_GET,
	SF_REQ_POST,
	SF_REQ_POST_FORM,
	SF_REQ_POST_MIME,
	SF_REQ_PUT,
	SF_REQ_HEAD,
};

struct sf_curl_method {
	unsigned char req; /* enum sf_curl_req */
	bool no_body;      /* NOBODY, cleared by what implies a body */
	bool upload;       /* 7.x's separate upload flag (gone in 8.1.0) */
	bool custom;       /* CUSTOMREQUEST set to a string */
	CURLoption by;     /* the last option that moved it off GET */
};

/* The verb a perform sends. */
enum sf_curl_verb {
	SF_VERB_GET,
	SF_VERB_HEAD,
	SF_VERB_POST,
	SF_VERB_PUT,
	SF_VERB_CUSTOM, /* CUSTOMREQUEST's string, whatever it says */
};

/* Two sets of rules are in the field.  Up to 7.x, UPLOAD kept its own flag
 * that forces PUT over any request kind set later: UPLOAD=1 then
 * POSTFIELDS sends PUT.  curl 8.1.0 dropped the flag (the fix for
 * CVE-2023-28322, which distributions backported into their 7.x, Debian
 * 12's 7.88.1 included): the same calls send POST.  The version number
 * cannot tell a patched 7.88.1 from a stock one. */
enum sf_curl_rules {
	SF_CURL_RULES_UNIFIED,     /* 8.1.0+, or a 7.x with the fix */
	SF_CURL_RULES_UPLOAD_FLAG, /* a stock 7.x */
};

/* A fresh or reset handle: GET. */
void sf_curl_method_init(struct sf_curl_method *m);
/* One setopt that libcurl accepted.  lval is the argument of the LONG
 * options, pval that of the pointer ones; options that do not touch the
 * method are ignored. */
void sf_curl_method_apply(struct sf_curl_method *m, CURLoption id, long lval,
                          const void *pval);
/* The verb a libcurl following rules sends. */
enum sf_curl_verb sf_curl_method_verb(const struct sf_curl_method *m,
                                      enum sf_curl_rules rules);
/* True when a plain GET goes out under either set of rules: the only
 * method that may coalesce.  Where the rules differ, the call passes
 * through (rare: UPLOAD=1 followed by another method option). */
bool sf_curl_method_is_get(const struct sf_curl_method *m);
/* "GET", "HEAD", "POST", "PUT" or "CUSTOM". */
const char *sf_curl_verb_name(enum sf_curl_verb v);

#endif
