/* sf_hook_getaddrinfo.c - coalesces concurrent identical getaddrinfo calls.
 *
 * The leader's caller gets the real result itself; when followers joined,
 * the leader also leaves one shared copy from which each follower takes its
 * own (sf_addrinfo.c), so every caller frees its list with the real
 * freeaddrinfo, independently of the others.
 *
 * With a scope (SFSHIM_SCOPE), the in-process leader's call goes through
 * the scope's table, where the leaders of other processes meet
 * (sf_dns_cross.h). */
#include "common/sf_config.h"
#include "common/sf_export.h"
#include "common/sf_guard.h"
#include "common/sf_log.h"
#include "common/sf_ns.h"
#include "common/sf_real.h"
#include "common/sf_scope.h"
#include "common/sf_stats.h"
#include "common/sf_trace.h"
#include "core/sf_clock.h"
#include "core/sf_flight.h"
#include "dns/sf_addrinfo.h"
#include "dns/sf_dns_cross.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- the call and its shared answer ------------------------------------ */

struct gai_call {
	sf_getaddrinfo_fn *real;
	const char *node, *service;
	const struct addrinfo *hints;
	int depth; /* the re-entrancy guard's depth before the real call */
	const void *key; /* for the scope's table */
	size_t keylen;
	struct sf_dns_cross x; /* x.t NULL: no scope */
};

static void gai_real(void *arg, struct sf_dns_answer *a)
{
	struct gai_call *c = arg;
	a->list = NULL;
	a->rc = c->real(c->node, c->service, c->hints, &a->list);
	a->err = errno;
	if (a->rc != 0)
		a->list = NULL; /* glibc leaves *res alone on failure */
}

static void gai_call(void *arg, void *out)
{
	struct gai_call *c = arg;
	struct sf_dns_answer *a = out;
	c->depth = sf_guard_save();
	sf_guard_enter();
	if (c->x.t)
		sf_dns_cross_call(&c->x, c->key, c->keylen, a);
	else
		gai_real(c, a);
	sf_guard_leave();
}

/* getaddrinfo may be a cancellation point, and a program's signal handler
 * may siglongjmp out of it (alarm() as a resolver timeout): sf_do() then
 * calls this, and the guard goes back to where it was (and the flight, if
 * any, is handed over by the core). */
static void gai_left(void *arg)
{
	struct gai_call *c = arg;
	if (c->x.t)
		sf_dns_cross_left(&c->x);
	sf_guard_restore(c->depth);
}

static void *gai_share(const void *out)
{
	const struct sf_dns_answer *a = out;
	struct sf_dns_answer *s = malloc(sizeof(*s));
	if (!s)
		return NULL;
	*s = *a;
	s->list = NULL;
	if (a->rc == 0 && a->list && !(s->list = sf_addrinfo_copy(a->list))) {
		free(s);
		return NULL; /* followers will make their own calls */
	}
	return s;
}

/* A follower short of memory for its copy makes its own call, which might
 * well succeed: never an EAI_MEMORY that its own call would not give. */
static bool gai_take(const void *result, void *out)
{
	const struct sf_dns_answer *s = result;
	struct sf_dns_answer *a = out;
	*a = *s;
	a->list = NULL;
	return !(s->rc == 0 && s->list &&
	         !(a->list = sf_addrinfo_copy(s->list)));
}

/* The resolver's answers (no such name, try again, failure) are what any
 * caller asking now would get; running out of memory or descriptors, or an
 * interrupted call, is the leader's own business. */
static enum sf_result gai_judge_answer(const struct sf_dns_answer *a)
{
	switch (a->rc) {
	case 0:
		return SF_RESULT_OK;
	case EAI_MEMORY:
		return SF_RESULT_OWN;
	case EAI_SYSTEM:
		return a->err == ENOMEM || a->err == EMFILE ||
		                       a->err == ENFILE || a->err == EINTR ||
		                       a->err == ENOBUFS
		               ? SF_RESULT_OWN
		               : SF_RESULT_ERROR;
	default:
		return SF_RESULT_ERROR;
	}
}

static enum sf_result gai_judge(const void *out)
{
	return gai_judge_answer(out);
}

static void gai_dtor(void *result)
{
	struct sf_dns_answer *s = result;
	sf_addrinfo_free(s->list);
	free(s);
}

/* One debug line per joining follower: besides diagnostics, this is what
 * the integration tests watch to know that every follower has joined. */
static void gai_on_follow(void *arg)
{
	struct gai_call *c = arg;
	/* Its limit runs from now, whichever flight it ends up waiting for
	 * (sf_dns_cross.c). */
	if (c->x.t)
		c->x.start_ns = sf_now_ns();
	sf_log(SF_LOG_DEBUG, "getaddrinfo %s: joined flight", c->node);
}

static const struct sf_do_ops gai_ops = {
	.call = gai_call,
	.left = gai_left,
	.on_follow = gai_on_follow,
	.judge = gai_judge,
	.share = gai_share,
	.take = gai_take,
	.dtor = gai_dtor,
};

/* ---- what may coalesce ------------------------------------------------- */

static sf_group *group;
static pthread_once_t group_once = PTHREAD_ONCE_INIT;

static void make_group(void)
{
	group = sf_group_new();
}

/* Hosts that are already addresses resolve without the network: glibc
 * accepts IPv6 literals, possibly with a %scope (the only names with a
 * ':'), and inet_aton's forms ("127.1", "0x7f.0.0.1"), which use digits,
 * dots, 'x' and hex letters only.  Most host names fail that at their
 * second letter, before inet_aton is needed. */
static bool is_numeric_host(const char *node)
{
	for (const char *p = node; *p; p++) {
		unsigned char c = (unsigned char)*p | 0x20; /* ASCII lower */
		if (*p == ':')
			return true;
		if (!((*p >= '0' && *p <= '9') || *p == '.' || c == 'x' ||
		      (c >= 'a' && c <= 'f')))
			return false;
	}
	struct in_addr a4;
	return inet_aton(node, &a4) != 0;
}

/* Host filters see the name without its final dot, as users write it. */
static bool host_allowed(const struct sf_filter *f, const char *node, size_t n)
{
	if (n < 2 || node[n - 1] != '.' || n > NI_MAXHOST)
		return sf_filter_allows(f, node);
	char name[NI_MAXHOST];
	memcpy(name, node, n - 1);
	name[n - 1] = '\0';
	return sf_filter_allows(f, name);
}

/* Returns SF_PASS_COUNT when the call may coalesce, else why it may not,
 * and names the argument in *cause (fixed words, never the host). */
static enum sf_pass classify(const struct sf_config *c, const char *node,
                             size_t nodelen, const struct addrinfo *hints,
                             const char **cause)
{
	if (!host_allowed(&c->hosts, node, nodelen)) {
		*cause = "host filter";
		return SF_PASS_FILTERED;
	}
	if (hints && (hints->ai_flags & AI_NUMERICHOST)) {
		*cause = "AI_NUMERICHOST set";
		return SF_PASS_NUMERIC;
	}
	/* POSIX wants these zero; whatever the libc makes of other values is
	 * its business, not something to share. */
	if (hints && (hints->ai_addrlen || hints->ai_addr ||
	              hints->ai_canonname || hints->ai_next)) {
		*cause = "hints with ai_addr/ai_canonname/ai_next set";
		return SF_PASS_UNSUPPORTED;
	}
	if (is_numeric_host(node)) {
		*cause = "numeric host";
		return SF_PASS_NUMERIC;
	}
	return SF_PASS_COUNT;
}

/* Host names are at most 1025 bytes (NI_MAXHOST); the rest is hints and a
 * service name.  Longer keys pass through. */
#define GAI_KEY_MAX 2048

/* The key: every hints field that changes the answer, then node and
 * service, each with a presence byte so that NULL differs from "", then the
 * caller's namespaces once any thread changed its own (sf_ns.h: another
 * /etc/hosts, another network).  0: no key (pass through). */
static size_t build_key(unsigned char *k, const char *node, size_t nodelen,
                        const char *service, const struct addrinfo *hints)
{
	unsigned char ns[SF_NS_ID_MAX];
	int nsl = sf_ns_identity(ns);
	if (nsl < 0)
		return 0;
	int32_t h[5] = { hints != NULL, 0, 0, 0, 0 };
	if (hints) {
		h[1] = hints->ai_flags;
		h[2] = hints->ai_family;
		h[3] = hints->ai_socktype;
		h[4] = hints->ai_protocol;
	}
	size_t nl = nodelen + 1;
	size_t sl = service ? strlen(service) + 1 : 0;
	size_t len = sizeof(h) + nl + 1 + sl + (size_t)nsl;
	if (len > GAI_KEY_MAX)
		return 0;
	memcpy(k, h, sizeof(h));
	memcpy(k + sizeof(h), node, nl);
	k[sizeof(h) + nl] = service != NULL;
	if (sl)
		memcpy(k + sizeof(h) + nl + 1, service, sl);
	if (nsl)
		memcpy(k + len - (size_t)nsl, ns, (size_t)nsl);
	return len;
}

SF_EXPORT int getaddrinfo(const char *node, const char *service,
                          const struct addrinfo *hints, struct addrinfo **res)
{
	sf_getaddrinfo_fn *real = sf_real_getaddrinfo();
	if (__builtin_expect(!real, 0)) {
		errno = ENOSYS; /* fail as getaddrinfo fails, never crash */
		return EAI_SYSTEM;
	}
	const struct sf_config *c = sf_config();
	uint64_t t0 = sf_trace_begin();
	enum sf_pass why;
	const char *cause = NULL; /* for sf_stats_pass_cause */
	size_t nodelen = 0;
	if (sf_guard_active())
		why = SF_PASS_REENTRANT;
	else if (!c->dns)
		why = SF_PASS_DISABLED;
	else if (!node || !res || !sf_real_libc_is_glibc()) {
		why = SF_PASS_UNSUPPORTED;
		cause = !node  ? "node NULL"
		        : !res ? "res NULL"
		               : "libc not glibc";
	} else
		why = classify(c, node, nodelen = strlen(node), hints, &cause);
	unsigned char key[GAI_KEY_MAX];
	size_t keylen = 0;
	if (why == SF_PASS_COUNT) {
		pthread_once(&group_once, make_group);
		keylen = build_key(key, node, nodelen, service, hints);
		if (!group || !keylen)
			why = SF_PASS_NOFLIGHT;
	}
	if (why != SF_PASS_COUNT) {
		sf_count_pass(SF_API_DNS, why);
		if (cause)
			sf_stats_pass_cause(SF_API_DNS, why, cause);
		int rc = real(node, service, hints, res);
		sf_trace_pass(t0, SF_API_DNS, why, node);
		return rc;
	}

	struct gai_call call = { real, node, service, hints,
		                 0,    key,  keylen,  .x = { 0 } };
	/* A thread that changed its namespaces keys its calls with them
	 * (sf_ns.h); the table belongs to the namespaces the process had when
	 * it attached: such calls stay in-process. */
	if (c->scope &&
	    !atomic_load_explicit(&sf_ns_changed, memory_order_relaxed) &&
	    (call.x.t = sf_scope_table())) {
		call.x.wait_ns = c->wait_ns;
		call.x.retry_errors = c->retry_errors;
		call.x.node = node;
		call.x.real = gai_real;
		call.x.arg = &call;
		call.x.judge = gai_judge_answer;
	}
	struct sf_dns_answer ans = { 0 };
	struct sf_do_info info;
	enum sf_path path = sf_do(group, key, keylen, &gai_ops, &call, &ans,
	                          c->wait_ns, c->retry_errors, &info);
	sf_count_path(SF_API_DNS, path);
	if (call.x.t)
		sf_dns_cross_count(&call.x);
	sf_trace_path(t0, SF_API_DNS, path, info.flight, node);
	if (path == SF_PATH_FOLLOWER)
		sf_log(SF_LOG_DEBUG, "getaddrinfo %s: shared (rc=%d)", node,
		       ans.rc);
	else if (path == SF_PATH_EXPIRED)
		sf_log(SF_LOG_INFO,
		       "getaddrinfo %s: waited past SFSHIM_WAIT_MS, "
		       "looked up alone",
		       node);
	else if (path == SF_PATH_PROMOTED)
		sf_log(SF_LOG_INFO, "getaddrinfo %s: leader gone, took over",
		       node);
	if (info.followers + call.x.served)
		sf_stats_flight(SF_API_DNS, node,
		                info.followers + call.x.served);
	if (ans.rc == 0)
		*res = ans.list;
	errno = ans.err;
	return ans.rc;
}
