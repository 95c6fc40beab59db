/* sf_curl_opts.c - option lookup over the sorted table. */
#include "curl/sf_curl_opts.h"

const struct sf_curl_opt_info *sf_curl_opt_lookup(CURLoption id)
{
	size_t lo = 0, hi = sf_curl_opt_table_len;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (sf_curl_opt_table[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < sf_curl_opt_table_len && sf_curl_opt_table[lo].id == id)
		return &sf_curl_opt_table[lo];
	return NULL;
}

enum sf_curl_optkind sf_curl_opt_kind_of(CURLoption id)
{
	const struct sf_curl_opt_info *o = sf_curl_opt_lookup(id);
	if (o)
		return o->kind;
	if (id < CURLOPTTYPE_OBJECTPOINT)
		return SF_OPTK_LONG;
	if (id < CURLOPTTYPE_FUNCTIONPOINT)
		return SF_OPTK_PTR;
	if (id < CURLOPTTYPE_OFF_T)
		return SF_OPTK_FUNC;
	if (id < CURLOPTTYPE_BLOB)
		return SF_OPTK_OFF;
	return SF_OPTK_BLOB;
}
