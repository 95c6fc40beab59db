/* sf_text.c - redaction of URL secrets and escaping of control characters
 * (see sf_text.h).  Runs only when something is printed, never on a hot
 * path; a single pass with no allocation, safe in any thread. */
#include "common/sf_text.h"

#include <stdbool.h>
#include <string.h>

struct out {
	char *p;
	size_t len, cap; /* cap excludes the terminating NUL */
	bool full;       /* truncated: nothing more is written */
};

static void put(struct out *o, const char *s, size_t n)
{
	if (o->full || o->len + n > o->cap) {
		o->full = true; /* truncated: never half an escape */
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void put_char(struct out *o, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";
	char e[4] = { '\\', 0, 0, 0 };
	switch (c) {
	case '\n':
		e[1] = 'n';
		put(o, e, 2);
		return;
	case '\r':
		e[1] = 'r';
		put(o, e, 2);
		return;
	case '\t':
		e[1] = 't';
		put(o, e, 2);
		return;
	case '\\':
		e[1] = '\\';
		put(o, e, 2);
		return;
	default:
		break;
	}
	if (c < 0x20 || c == 0x7f) {
		e[1] = 'x';
		e[2] = hex[c >> 4];
		e[3] = hex[c & 15];
		put(o, e, 4);
		return;
	}
	put(o, (const char *)&c, 1);
}

static bool scheme_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
}

/* Where a URL printed inside a message ends: white space, quotes, angle
 * brackets, control characters, or ": " (the log's own "%s: text"). */
static bool url_end(const char *s, size_t i, size_t n)
{
	unsigned char c = (unsigned char)s[i];
	if (c <= ' ' || c == 0x7f || c == '"' || c == '\'' || c == '<' ||
	    c == '>' || c == '`')
		return true;
	return c == ':' && (i + 1 == n || s[i + 1] == ' ');
}

/* libcurl also takes URLs without a scheme ("user:pw@host/x?tok"): a word
 * that starts at s[i] and holds '@', '?' or '#' (which host names, numbers
 * and the library's own words never do) but no "://" is cleaned as one. */
static bool bare_url_at(const char *s, size_t i, size_t n)
{
	if (i > 0 && !url_end(s, i - 1, n) && s[i - 1] != '=')
		return false; /* not the start of a word */
	bool marked = false;
	for (size_t j = i; j < n && !url_end(s, j, n); j++) {
		if (s[j] == ':' && j + 2 < n && s[j + 1] == '/' &&
		    s[j + 2] == '/')
			return false; /* has a scheme: cleaned at its "://" */
		marked = marked || s[j] == '@' || s[j] == '?' || s[j] == '#';
	}
	return marked;
}

/* Copies the URL whose authority starts at src[i] (after "://" when
 * scheme is set, which is copied too) with its secrets redacted, and
 * returns the index after it. */
static size_t put_url_rest(struct out *o, const char *s, size_t i, size_t n,
                           bool scheme)
{
	if (scheme) {
		put(o, "://", 3);
		i += 3;
	}
	/* Authority: up to the first '/', '?' or '#'; userinfo is what comes
	 * before its last '@'. */
	size_t a = i, at = (size_t)-1;
	while (i < n && !url_end(s, i, n) && s[i] != '/' && s[i] != '?' &&
	       s[i] != '#') {
		if (s[i] == '@')
			at = i;
		i++;
	}
	if (at != (size_t)-1) {
		put(o, SF_TEXT_REDACTED "@", sizeof(SF_TEXT_REDACTED));
		a = at + 1;
	}
	for (; a < i; a++)
		put_char(o, (unsigned char)s[a]);
	while (i < n && !url_end(s, i, n) && s[i] != '?' && s[i] != '#')
		put_char(o, (unsigned char)s[i++]);
	if (i < n && s[i] == '?') {
		put(o, "?" SF_TEXT_REDACTED, sizeof(SF_TEXT_REDACTED));
		while (i < n && !url_end(s, i, n) && s[i] != '#')
			i++;
	}
	if (i < n && s[i] == '#') {
		put(o, "#" SF_TEXT_REDACTED, sizeof(SF_TEXT_REDACTED));
		while (i < n && !url_end(s, i, n))
			i++;
	}
	return i;
}

size_t sf_text_clean(char *dst, size_t cap, const char *src, size_t n)
{
	struct out o = { dst, 0, cap - 1, false };
	size_t i = 0;
	while (i < n) {
		if (src[i] == ':' && i + 2 < n && src[i + 1] == '/' &&
		    src[i + 2] == '/' && i > 0 &&
		    scheme_char((unsigned char)src[i - 1])) {
			i = put_url_rest(&o, src, i, n, true);
			continue;
		}
		if (bare_url_at(src, i, n)) {
			i = put_url_rest(&o, src, i, n, false);
			continue;
		}
		put_char(&o, (unsigned char)src[i++]);
	}
	dst[o.len] = '\0';
	return o.len;
}
