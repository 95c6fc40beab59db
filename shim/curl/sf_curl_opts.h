/* sf_curl_opts.h - how the shim treats each curl_easy_setopt option. */
#ifndef SF_CURL_OPTS_H
#define SF_CURL_OPTS_H

#include <curl/curl.h>
#include <stddef.h>

/* The one argument's type, as the option id implies (see NOTES.md). */
enum sf_curl_optkind {
	SF_OPTK_LONG,   /* long */
	SF_OPTK_STRING, /* char *, copied by libcurl: the shim copies it too */
	SF_OPTK_SLIST,  /* struct curl_slist *: read at perform time */
	SF_OPTK_PTR,    /* any other object pointer, kept as is */
	SF_OPTK_FUNC,   /* function pointer */
	SF_OPTK_OFF,    /* curl_off_t */
	SF_OPTK_BLOB,   /* struct curl_blob *, copied by libcurl and the shim */
};

enum sf_curl_optclass {
	SF_OPTC_KEY,      /* shapes the request or response: part of the key */
	SF_OPTC_IGNORE,   /* harmless to differ between sharers */
	SF_OPTC_DELIVERY, /* how this handle receives the response */
	SF_OPTC_METHOD,   /* sets the request method: only GET coalesces */
	SF_OPTC_PASS,  /* side effects: a handle with it set passes through */
	SF_OPTC_SHARE, /* CURLOPT_SHARE: judged by what the share holds
	                  (curl/sf_curl_share.h) */
};

struct sf_curl_opt_info {
	CURLoption id;
	unsigned char kind, cls;
	const char *name;  /* "CURLOPT_SHARE": for logs and the stats */
	const char *cause; /* "CURLOPT_SHARE set": why a call passed through */
};

extern const struct sf_curl_opt_info sf_curl_opt_table[];
extern const size_t sf_curl_opt_table_len;

/* The row for id, or NULL for an option this shim does not know. */
const struct sf_curl_opt_info *sf_curl_opt_lookup(CURLoption id);

/* The argument kind for any id, known or not, from its numeric range.  For
 * an unknown id only the size of the argument may be relied on: never
 * dereference it. */
enum sf_curl_optkind sf_curl_opt_kind_of(CURLoption id);

#endif
