/* sf_curl_remote.h - what the two sides of curl flights across processes
 * share (the bridge and global leader in sf_curl_remote.c, the global
 * follower in sf_curl_xfollow.c).  Private to shim/curl/. */
#ifndef SF_CURL_REMOTE_H
#define SF_CURL_REMOTE_H

#include "core/sf_xflight.h"
#include "curl/sf_curl_xfer.h"
#include "curl/sf_curl_xfile.h"

#define SF_XNAME_MAX 96

/* A leader of the scope's flight: the first, or a follower that took over
 * (then its file is the one it read). */
struct sf_curl_xlead {
	struct sf_xtable *t;
	struct sf_xticket tk;
	unsigned slot, gen;
	uint32_t epoch;
	struct sf_xfile *file; /* NULL: none could be made */
	bool sealed;           /* somebody follows: the file is written whole */
	bool ended;            /* finished or abandoned: the ticket is gone */
	const char *url;
	char name[SF_XNAME_MAX];
};

/* The flight's file name (sf_scope_file_name), "" when none; removing it. */
void sf_curl_xname(char *buf, unsigned slot, unsigned gen);
void sf_curl_xunlink(const char *name);

/* Cancellation off (returns the old state) and back: see sf_curl_remote.c
 * for where and why. */
int sf_curl_no_cancel(void);
void sf_curl_re_cancel(int old);

/* Leads f, and the scope's flight x, which sf_curl_lead() ends. */
CURLcode sf_curl_lead_x(struct sf_curl_xfer *p, sf_flight *f,
                        struct sf_curl_xlead *x);

/* The process's leader follows the scope's flight tk (another process
 * leads): replays its file into f and to its program; may end up leading,
 * or fetching alone. */
CURLcode sf_curl_xfollow(struct sf_curl_xfer *p, sf_flight *f,
                         struct sf_xtable *t, const struct sf_xticket *tk);

#endif
