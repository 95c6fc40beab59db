/* sf_text.h - makes text safe to print: the one place that decides what of
 * a URL or a configuration value may leave the process.
 *
 * Everything the shim prints or writes (log lines, the stats summary) goes
 * through sf_text_clean(), so no call site has to remember:
 *  - URLs lose their secrets: "scheme://user:pw@host/p?q#f" becomes
 *    "scheme://[redacted]@host/p?[redacted]#[redacted]" (userinfo, query and
 *    fragment carry passwords and tokens; scheme, host and path are what an
 *    operator needs to recognise the request);
 *  - control characters are escaped ("\n", "\t", "\x1b"), and so is the
 *    backslash, so that a value can never forge a second line or a
 *    terminal sequence. */
#ifndef SF_TEXT_H
#define SF_TEXT_H

#include <stddef.h>

/* What replaces a URL's userinfo, query and fragment. */
#define SF_TEXT_REDACTED "[redacted]"

/* Writes src[0..n) to dst (capacity cap > 0) with URL secrets redacted and
 * control characters escaped; always NUL-terminates, truncating whole
 * escapes only.  Returns the length written. */
size_t sf_text_clean(char *dst, size_t cap, const char *src, size_t n);

#endif
