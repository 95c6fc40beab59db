/* sf_curl_method.c - libcurl's method fields, mirrored setopt by setopt.
 *
 * Written from the behaviour of curl 7.88.1 and 8.14.1's lib/setopt.c and
 * Curl_http_method in lib/http.c, and checked against the real library by
 * tests/unit/test_curl_method.c (every option pair, both orders, and the
 * triples where the rules differ). */
#include "curl/sf_curl_method.h"

void sf_curl_method_init(struct sf_curl_method *m)
{
	*m = (struct sf_curl_method){ .req = SF_REQ_GET };
}

/* A request kind that implies a body clears "no body" (libcurl's
 * "this is implied"). */
static void set_req(struct sf_curl_method *m, enum sf_curl_req req, bool body,
                    CURLoption by)
{
	m->req = (unsigned char)req;
	if (body)
		m->no_body = false;
	if (req != SF_REQ_GET)
		m->by = by;
}

void sf_curl_method_apply(struct sf_curl_method *m, CURLoption id, long lval,
                          const void *pval)
{
	switch (id) {
	case CURLOPT_NOBODY:
		m->no_body = lval != 0;
		if (m->no_body) {
			m->req = SF_REQ_HEAD;
			m->by = id;
		} else if (m->req == SF_REQ_HEAD) {
			m->req = SF_REQ_GET;
		}
		break;
	case CURLOPT_UPLOAD:
	case CURLOPT_PUT:
		m->upload = lval != 0;
		if (m->upload)
			set_req(m, SF_REQ_PUT, true, id);
		else
			set_req(m, SF_REQ_GET, false, id);
		break;
	case CURLOPT_POST:
		/* 7.x also clears the upload flag here; 8.x has none. */
		if (lval)
			set_req(m, SF_REQ_POST, true, id);
		else
			set_req(m, SF_REQ_GET, false, id);
		m->upload = false;
		break;
	case CURLOPT_POSTFIELDS:
	case CURLOPT_COPYPOSTFIELDS:
		/* Even NULL: libcurl then reads the body from READFUNCTION.
		 * "No body" is left as it was. */
		set_req(m, SF_REQ_POST, false, id);
		break;
	case CURLOPT_HTTPPOST:
		/* NULL too: the request kind is set whatever the list. */
		set_req(m, SF_REQ_POST_FORM, true, id);
		break;
	case CURLOPT_MIMEPOST:
		/* NULL too (an empty MIME post), once libcurl accepted it. */
		set_req(m, SF_REQ_POST_MIME, true, id);
		break;
	case CURLOPT_HTTPGET:
		/* HTTPGET=0 changes nothing at all. */
		if (lval) {
			set_req(m, SF_REQ_GET, true, id);
			m->upload = false;
		}
		break;
	case CURLOPT_CUSTOMREQUEST:
		/* Only the verb string: the request kind stays. */
		m->custom = pval != NULL;
		if (m->custom)
			m->by = id;
		break;
	default:
		break;
	}
}

enum sf_curl_verb sf_curl_method_verb(const struct sf_curl_method *m,
                                      enum sf_curl_rules rules)
{
	if (m->custom)
		return SF_VERB_CUSTOM;
	if (m->no_body)
		return SF_VERB_HEAD;
	/* 8.1.0 derives upload from the request kind, 7.x kept a flag that
	 * forces PUT over any kind set since. */
	if (rules == SF_CURL_RULES_UPLOAD_FLAG && m->upload)
		return SF_VERB_PUT;
	switch ((enum sf_curl_req)m->req) {
	case SF_REQ_POST:
	case SF_REQ_POST_FORM:
	case SF_REQ_POST_MIME:
		return SF_VERB_POST;
	case SF_REQ_PUT:
		return SF_VERB_PUT;
	case SF_REQ_HEAD:
		return SF_VERB_HEAD;
	case SF_REQ_GET:
	default:
		return SF_VERB_GET;
	}
}

bool sf_curl_method_is_get(const struct sf_curl_method *m)
{
	return sf_curl_method_verb(m, SF_CURL_RULES_UNIFIED) == SF_VERB_GET &&
	       sf_curl_method_verb(m, SF_CURL_RULES_UPLOAD_FLAG) == SF_VERB_GET;
}

const char *sf_curl_verb_name(enum sf_curl_verb v)
{
	static const char *const names[] = { "GET", "HEAD", "POST", "PUT",
		                             "CUSTOM" };
	return (unsigned)v < sizeof(names) / sizeof(names[0]) ? names[v] : "?";
}
