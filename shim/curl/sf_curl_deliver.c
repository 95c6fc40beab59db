/* sf_curl_deliver.c - libcurl's callback rules, replayed. */
#include "curl/sf_curl_deliver.h"

#include "curl/sf_curl_opts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const union sf_curl_optval *val(const struct sf_curl_handle *h,
                                       CURLoption id)
{
	const struct sf_curl_opt *o = sf_curl_handle_get(h, id);
	return o ? &o->v : NULL;
}

void sf_delivery_init(struct sf_delivery *d, const struct sf_curl_handle *h)
{
	const union sf_curl_optval *v;
	memset(d, 0, sizeof(*d));
	d->content_length = -1;
	d->noprogress = true;
	if ((v = val(h, CURLOPT_WRITEFUNCTION)))
		d->write_fn = (curl_write_callback)v->p;
	d->write_data = (v = val(h, CURLOPT_WRITEDATA)) ? v->p : stdout;
	if ((v = val(h, CURLOPT_HEADERFUNCTION)))
		d->header_fn = (curl_write_callback)v->p;
	if ((v = val(h, CURLOPT_HEADERDATA)))
		d->header_data = v->p;
	if ((v = val(h, CURLOPT_HEADER)))
		d->include_header = v->l != 0;
	if ((v = val(h, CURLOPT_NOPROGRESS)))
		d->noprogress = v->l != 0;
	if ((v = val(h, CURLOPT_XFERINFOFUNCTION)))
		d->xferinfo = (curl_xferinfo_callback)v->p;
	if ((v = val(h, CURLOPT_PROGRESSFUNCTION)))
		d->progress = (curl_progress_callback)v->p;
	if ((v = val(h, CURLOPT_XFERINFODATA))) /* same id as PROGRESSDATA */
		d->progress_data = v->p;
	if ((v = val(h, CURLOPT_ERRORBUFFER)))
		d->errbuf = v->p;
	sf_curl_handle_limits(h, &d->lim);
}

static size_t call_write(curl_write_callback fn, const char *p, size_t n,
                         void *data)
{
	if (fn)
		return fn((char *)p, 1, n, data);
	return fwrite(p, 1, n, data);
}

static CURLcode written(struct sf_delivery *d, size_t got, size_t want,
                        const char *msg)
{
	if (got == want)
		return CURLE_OK;
	d->paused = got == CURL_WRITEFUNC_PAUSE;
	d->failure = msg;
	return CURLE_WRITE_ERROR;
}

/* A decimal number at p; header data is not NUL-terminated. */
static long long number_at(const char *p, size_t n)
{
	char digits[24];
	size_t k = 0;
	while (n && (*p == ' ' || *p == '\t'))
		p++, n--;
	while (k < n && k < sizeof(digits) - 1 && p[k] >= '0' && p[k] <= '9') {
		digits[k] = p[k];
		k++;
	}
	digits[k] = '\0';
	return k ? strtoll(digits, NULL, 10) : -1;
}

/* The status line and "Content-Length: 123" of the latest response feed
 * progress totals and getinfo, mid-transfer and after a follower's own
 * failure. */
static void track_length(struct sf_delivery *d, const char *line, size_t len)
{
	static const char cl[] = "content-length:";
	if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
		const char *sp = memchr(line, ' ', len);
		long long code = sp ? number_at(sp, len - (size_t)(sp - line))
		                    : -1;
		d->content_length = -1;
		d->response_code = code > 0 ? (long)code : 0;
	} else if (len > sizeof(cl) - 1 &&
	           strncasecmp(line, cl, sizeof(cl) - 1) == 0) {
		d->content_length = number_at(line + sizeof(cl) - 1,
		                              len - (sizeof(cl) - 1));
	}
}

CURLcode sf_deliver_header(struct sf_delivery *d, const char *line, size_t len)
{
	track_length(d, line, len);
	CURLcode rc = CURLE_OK;
	/* With CURLOPT_HEADER, libcurl's write callback gets header data in
	 * CURL_MAX_WRITE_SIZE pieces, like body data; the header callback
	 * gets each line whole. */
	for (size_t off = 0;
	     d->include_header && off < len && rc == CURLE_OK;) {
		size_t n = len - off > CURL_MAX_WRITE_SIZE ? CURL_MAX_WRITE_SIZE
		                                           : len - off;
		rc = written(d,
		             call_write(d->write_fn, line + off, n,
		                        d->write_data),
		             n, "Failure writing output to destination");
		off += n;
	}
	if (rc == CURLE_OK && d->header_fn)
		rc = written(d,
		             d->header_fn((char *)line, 1, len, d->header_data),
		             len, "Failed writing header");
	else if (rc == CURLE_OK && d->header_data)
		rc = written(d,
		             call_write(d->write_fn, line, len, d->header_data),
		             len, "Failed writing header");
	return rc;
}

CURLcode sf_deliver_body(struct sf_delivery *d, const char *data, size_t len)
{
	while (len) {
		size_t n = len > CURL_MAX_WRITE_SIZE ? CURL_MAX_WRITE_SIZE
		                                     : len;
		CURLcode rc = written(
		        d, call_write(d->write_fn, data, n, d->write_data), n,
		        "Failure writing output to destination");
		if (rc != CURLE_OK)
			return rc;
		d->body_done += n;
		data += n;
		len -= n;
	}
	return CURLE_OK;
}

int sf_deliver_progress(struct sf_delivery *d, curl_off_t dltotal,
                        curl_off_t dlnow)
{
	int rc = 0;
	if (d->noprogress)
		return 0;
	if (d->xferinfo)
		rc = d->xferinfo(d->progress_data, dltotal, dlnow, 0, 0);
	else if (d->progress)
		rc = d->progress(d->progress_data, (double)dltotal,
		                 (double)dlnow, 0, 0);
	/* "Draw your own meter": a follower has none to draw, but it is
	 * no abort. */
	return rc == CURL_PROGRESSFUNC_CONTINUE ? 0 : rc;
}

void sf_delivery_error(struct sf_delivery *d, const char *msg)
{
	if (d->errbuf)
		snprintf(d->errbuf, CURL_ERROR_SIZE, "%s", msg);
}

CURLcode sf_delivery_timed_out(struct sf_delivery *d, long ms)
{
	char msg[CURL_ERROR_SIZE];
	if (d->content_length >= 0)
		snprintf(
		        msg, sizeof(msg),
		        "Operation timed out after %ld milliseconds with %zu out "
		        "of %lld bytes received",
		        ms, d->body_done, (long long)d->content_length);
	else
		snprintf(msg, sizeof(msg),
		         "Operation timed out after %ld milliseconds with %zu "
		         "bytes received",
		         ms, d->body_done);
	sf_delivery_error(d, msg);
	return CURLE_OPERATION_TIMEDOUT;
}
