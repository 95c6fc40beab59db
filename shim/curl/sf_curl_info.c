/* sf_curl_info.c - the leader's transfer facts, the follower's own times.
 *
 * A follower answers what the transfer was (status, type, URLs, sizes,
 * address, version...) from the leader's snapshot, but its times are its
 * own: total time is how long its perform took, the start-transfer time is
 * when its first byte arrived, and the earlier phases are the leader's,
 * never later than that. */
#include "curl/sf_curl_info.h"

#include "curl/sf_curl_reply.h"

#include <string.h>
#include <strings.h>

enum time_kind { T_NONE, T_TOTAL, T_START, T_PHASE, T_REDIRECT, T_SPEED };

/* CURLINFO numbers of times (DOUBLE seconds and their OFF_T microsecond
 * twins) and speeds. */
static enum time_kind time_kind(CURLINFO info)
{
	switch (info) {
	case CURLINFO_TOTAL_TIME:
	case CURLINFO_TOTAL_TIME_T:
		return T_TOTAL;
	case CURLINFO_STARTTRANSFER_TIME:
	case CURLINFO_STARTTRANSFER_TIME_T:
		return T_START;
	case CURLINFO_NAMELOOKUP_TIME:
	case CURLINFO_NAMELOOKUP_TIME_T:
	case CURLINFO_CONNECT_TIME:
	case CURLINFO_CONNECT_TIME_T:
	case CURLINFO_APPCONNECT_TIME:
	case CURLINFO_APPCONNECT_TIME_T:
	case CURLINFO_PRETRANSFER_TIME:
	case CURLINFO_PRETRANSFER_TIME_T:
		return T_PHASE;
	case CURLINFO_REDIRECT_TIME:
	case CURLINFO_REDIRECT_TIME_T:
		return T_REDIRECT;
	case CURLINFO_SPEED_DOWNLOAD:
	case CURLINFO_SPEED_DOWNLOAD_T:
		return T_SPEED;
	default:
		return T_NONE;
	}
}

static bool per_handle(CURLINFO info)
{
	switch (info) {
	case CURLINFO_PRIVATE:
	case CURLINFO_LASTSOCKET:
	case CURLINFO_ACTIVESOCKET:
	case CURLINFO_COOKIELIST:
	case CURLINFO_CERTINFO:
	case CURLINFO_TLS_SESSION:
	case CURLINFO_TLS_SSL_PTR:
	case CURLINFO_SSL_ENGINES:
		return true;
	default:
		return false;
	}
}

/* A time in nanoseconds from the leader's answer (either type). */
static uint64_t leader_ns(const struct sf_curl_reply *r, int t, int n)
{
	const struct sf_curl_infos *in = r->info;
	if (!in || !in->have[t][n])
		return 0;
	if (t == SF_INFO_DOUBLE)
		return in->dbl[n] > 0 ? (uint64_t)(in->dbl[n] * 1e9) : 0;
	return in->off[n] > 0 ? (uint64_t)in->off[n] * 1000u : 0;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* A follower that failed on its own has no reply: it answers what it saw
 * itself, and libcurl's untouched handle the rest. */
static bool own_answer(const struct sf_curl_handle *h, CURLINFO info, void *out)
{
	uint64_t start = h->first_byte_ns ? h->first_byte_ns : h->total_ns;
	switch (info) {
	case CURLINFO_RESPONSE_CODE:
		*(long *)out = h->response_code;
		return true;
	case CURLINFO_SIZE_DOWNLOAD:
		*(double *)out = (double)h->size_download;
		return true;
	case CURLINFO_SIZE_DOWNLOAD_T:
		*(curl_off_t *)out = h->size_download;
		return true;
	case CURLINFO_TOTAL_TIME:
		*(double *)out = (double)h->total_ns / 1e9;
		return true;
	case CURLINFO_TOTAL_TIME_T:
		*(curl_off_t *)out = (curl_off_t)(h->total_ns / 1000u);
		return true;
	case CURLINFO_STARTTRANSFER_TIME:
		*(double *)out = (double)start / 1e9;
		return true;
	case CURLINFO_STARTTRANSFER_TIME_T:
		*(curl_off_t *)out = (curl_off_t)(start / 1000u);
		return true;
	default:
		return false;
	}
}

/* The latest response's Content-Type among the lines given so far (the
 * follower's live view), as libcurl keeps it. */
static const char *live_type(const struct sf_curl_reply *r)
{
	const char *type = NULL;
	for (size_t i = 0; r && i < r->nhdrs; i++)
		if (r->hdrs[i].request == r->requests &&
		    strcasecmp(r->hdrs[i].name, "content-type") == 0)
			type = r->hdrs[i].value;
	return type;
}

/* Mid-transfer: what the program was given so far. */
static bool live_answer(const struct sf_curl_reply *r, CURLINFO info, void *out)
{
	switch (info) {
	case CURLINFO_RESPONSE_CODE:
		*(long *)out = r->live_code;
		return true;
	case CURLINFO_CONTENT_TYPE:
		*(const char **)out = live_type(r);
		return true;
	case CURLINFO_CONTENT_LENGTH_DOWNLOAD_T:
		*(curl_off_t *)out = r->live_length;
		return true;
	case CURLINFO_CONTENT_LENGTH_DOWNLOAD:
		*(double *)out = (double)r->live_length;
		return true;
	case CURLINFO_SIZE_DOWNLOAD_T:
		*(curl_off_t *)out = r->live_size;
		return true;
	case CURLINFO_SIZE_DOWNLOAD:
		*(double *)out = (double)r->live_size;
		return true;
	default:
		return false;
	}
}

bool sf_curl_info_answer(struct sf_curl_handle *h, CURLINFO info, void *out,
                         CURLcode *rc)
{
	const struct sf_curl_reply *r = h->reply;
	if (r && !r->stream) {
		/* A follower mid-transfer: the rest is the handle's own
		 * answer. */
		*rc = CURLE_OK;
		return out && live_answer(r, info, out);
	}
	int t = sf_curl_info_type(info);
	int n = (int)(info & CURLINFO_MASK);
	if (!out || per_handle(info) || t < 0 || n >= SF_INFO_SLOTS)
		return false;
	if (!r) {
		*rc = CURLE_OK;
		return h->own_answers && own_answer(h, info, out);
	}
	const struct sf_curl_infos *in = r->info;
	if (!in || !in->have[t][n]) {
		*rc = CURLE_UNKNOWN_OPTION; /* what the leader's libcurl said */
		return true;
	}
	*rc = CURLE_OK;
	uint64_t total = h->total_ns;
	uint64_t start = h->first_byte_ns ? h->first_byte_ns : total;
	uint64_t ns = 0;
	enum time_kind k = time_kind(info);
	switch (k) {
	case T_TOTAL:
		ns = total;
		break;
	case T_START:
		ns = start;
		break;
	case T_PHASE:
		ns = min_u64(leader_ns(r, t, n), start);
		break;
	case T_REDIRECT:
		ns = min_u64(leader_ns(r, t, n), total);
		break;
	case T_SPEED:
		break;
	case T_NONE:
		switch (t) {
		case SF_INFO_STRING:
			*(char **)out = in->str[n];
			break;
		case SF_INFO_LONG:
			*(long *)out = in->lng[n];
			break;
		case SF_INFO_DOUBLE:
			*(double *)out = in->dbl[n];
			break;
		default:
			*(curl_off_t *)out = in->off[n];
			break;
		}
		return true;
	}
	if (k == T_SPEED) {
		/* Bytes per second over this follower's own time. */
		double secs = (double)total / 1e9;
		double speed = secs > 0 ? (double)h->size_download / secs : 0;
		if (t == SF_INFO_DOUBLE)
			*(double *)out = speed;
		else
			*(curl_off_t *)out = (curl_off_t)speed;
		return true;
	}
	if (t == SF_INFO_DOUBLE)
		*(double *)out = (double)ns / 1e9;
	else
		*(curl_off_t *)out = (curl_off_t)(ns / 1000u);
	return true;
}
