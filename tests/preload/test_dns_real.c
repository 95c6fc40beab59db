/* test_dns_real.c - the getaddrinfo hook against glibc's real stub resolver.
 *
 * Run by tests/integration/20-dns-real.sh inside a private network and
 * mount namespace: /etc/resolv.conf names 127.0.0.1, where sf_dnsd answers
 * the zone written by the script after a 300 ms delay and logs one
 * "name TYPE" line per query it receives (SF_DNS_LOG).  Counting log lines
 * before and after an operation tells how many queries it cost.
 *
 * Preloaded: [sanitizer runtime] libsfshim.so libsf_fakeres.so.  The fake
 * only counts and delegates to glibc here, but its gate holds a burst's
 * leader BEFORE glibc sends anything until every follower has joined (the
 * shim's "joined flight" debug lines), so query counts are exact, not a
 * matter of timing.  One test runs without the fake, where no gate is
 * possible and the server delay is what lets followers join (said there).
 *
 * Baselines come from this binary re-executed WITHOUT any LD_PRELOAD
 * (--lookup): how many queries glibc itself sends for one call (SERVFAIL is
 * tried twice, for instance) and the answer it gives, as text; a burst
 * through the shim must cost exactly one such call and give every caller
 * that same answer, byte for byte. */
#include "sf_preload_util.h"

#include <sys/wait.h>

#define N_BURST 50
#define LIMIT_MS SF_WAIT_LIMIT_MS

static const char *dns_log;

/* ---- the server's query log -------------------------------------------- */

/* Lines of the log that are exactly "name type". */
static unsigned long log_count(const char *name, const char *type)
{
	FILE *f = fopen(dns_log, "r");
	ck_assert_ptr_nonnull(f);
	char want[600], line[700];
	snprintf(want, sizeof(want), "%s %s\n", name, type);
	unsigned long n = 0;
	while (fgets(line, sizeof(line), f))
		n += strcmp(line, want) == 0;
	fclose(f);
	return n;
}

struct qcount {
	unsigned long a, aaaa;
};

static struct qcount queries(const char *name)
{
	/* The server logs names lower-case, without a final dot. */
	char low[256];
	size_t i = 0;
	for (; name[i] && i < sizeof(low) - 1; i++)
		low[i] = (char)((name[i] >= 'A' && name[i] <= 'Z')
		                        ? name[i] + 32
		                        : name[i]);
	if (i && low[i - 1] == '.')
		i--;
	low[i] = '\0';
	return (struct qcount){ log_count(low, "A"), log_count(low, "AAAA") };
}

/* ---- lookups in a process without the shim ----------------------------- */

struct lookup {
	const char *node, *service;
	struct addrinfo hints;
};

static char *run_self(char *const argv[], const char *preload)
{
	int p[2];
	ck_assert_int_eq(pipe(p), 0);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		if (preload)
			setenv("LD_PRELOAD", preload, 1);
		else
			unsetenv("LD_PRELOAD");
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	close(p[1]);
	size_t cap = 4096, len = 0;
	char *out = malloc(cap);
	ck_assert_ptr_nonnull(out);
	for (;;) {
		if (len + 1 == cap) {
			out = realloc(out, cap *= 2);
			ck_assert_ptr_nonnull(out);
		}
		ssize_t r = read(p[0], out + len, cap - 1 - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	out[len] = '\0';
	close(p[0]);
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s %s: status %d",
	              argv[1], argv[2], st);
	return out;
}

/* glibc's answer to one call, from a process without any preload, and the
 * queries that one call cost. */
static char *unshimmed(const struct lookup *l, struct qcount *cost)
{
	char fam[16], st[16], fl[16];
	snprintf(fam, sizeof(fam), "%d", l->hints.ai_family);
	snprintf(st, sizeof(st), "%d", l->hints.ai_socktype);
	snprintf(fl, sizeof(fl), "%d", l->hints.ai_flags);
	char *argv[] = { "test_dns_real",
		         "--lookup",
		         (char *)l->node,
		         (char *)(l->service ? l->service : "-"),
		         fam,
		         st,
		         fl,
		         NULL };
	struct qcount before = queries(l->node);
	char *out = run_self(argv, NULL);
	struct qcount after = queries(l->node);
	if (cost)
		*cost = (struct qcount){ after.a - before.a,
			                 after.aaaa - before.aaaa };
	size_t n = strlen(out);
	if (n && out[n - 1] == '\n')
		out[n - 1] = '\0';
	return out;
}

static int child_lookup(char **argv)
{
	struct addrinfo h = { .ai_family = atoi(argv[3]),
		              .ai_socktype = atoi(argv[4]),
		              .ai_flags = atoi(argv[5]) };
	const char *service = strcmp(argv[2], "-") ? argv[2] : NULL;
	char *t = sf_lookup_text(getaddrinfo, argv[1], service, &h);
	printf("%s\n", t);
	free(t);
	return 0;
}

/* ---- fixture ----------------------------------------------------------- */

static void setup(void)
{
	dns_log = getenv("SF_DNS_LOG");
	ck_assert_msg(dns_log != NULL, "SF_DNS_LOG unset (see 20-dns-real.sh)");
	ck_assert_msg(sf_fake_load(&fake) == 0,
	              "libsf_fakeres.so is not preloaded");
	sf_default_gai = shim_getaddrinfo();
	ck_assert_msg(sf_default_gai != NULL, "libsfshim.so is not preloaded");
	fake.sf_fake_reset();
	setenv("SFSHIM_LOG", "debug", 1);
	logcap_start();
	libc_gai = libc_getaddrinfo();
}

static void teardown(void)
{
	fake.sf_fake_gate_open();
	logcap_stop();
}

/* n callers of l through the shim, held until all joined; asserts that the
 * burst cost exactly what one call costs without the shim (times n when
 * the calls must pass through) and that each caller got that answer. */
static void real_burst(const struct lookup *l, unsigned n, bool coalesce)
{
	struct qcount one;
	struct group g = G(l->node, l->service, &l->hints, n, coalesce);
	g.ref = unshimmed(l, &one);
	struct qcount before = queries(l->node);
	burst(&g, 1);
	struct qcount after = queries(l->node);
	unsigned k = coalesce ? 1 : n;
	ck_assert_msg(after.a - before.a == k * one.a &&
	                      after.aaaa - before.aaaa == k * one.aaaa,
	              "%s: %u callers sent %lu A + %lu AAAA queries; one call "
	              "without the shim sends %lu A + %lu AAAA",
	              l->node, n, after.a - before.a, after.aaaa - before.aaaa,
	              one.a, one.aaaa);
	assert_answers_are_ref(&g, 1);
	groups_free(&g, 1);
}

#define LOOKUP(node_, service_, family_, socktype_, flags_)      \
	((struct lookup){ .node = (node_),                       \
	                  .service = (service_),                 \
	                  .hints = { .ai_family = (family_),     \
	                             .ai_socktype = (socktype_), \
	                             .ai_flags = (flags_) } })

/* ---- query counts ------------------------------------------------------ */

START_TEST(burst_af_inet_sends_one_a_query)
{
	struct lookup l = LOOKUP("burst4.test", NULL, AF_INET, 0, 0);
	struct qcount one;
	free(unshimmed(&l, &one));
	ck_assert_uint_eq(one.a, 1); /* glibc: one A query, nothing else */
	ck_assert_uint_eq(one.aaaa, 0);
	real_burst(&l, N_BURST, true);
}
END_TEST

START_TEST(burst_af_unspec_sends_one_a_and_one_aaaa)
{
	struct lookup l =
	        LOOKUP("burstu.test", NULL, AF_UNSPEC, SOCK_STREAM, 0);
	struct qcount one;
	free(unshimmed(&l, &one));
	ck_assert_uint_eq(one.a, 1);
	ck_assert_uint_eq(one.aaaa, 1);
	real_burst(&l, N_BURST, true);
}
END_TEST

START_TEST(distinct_names_one_query_each)
{
	static const struct addrinfo h = { .ai_family = AF_INET };
	const char *names[] = { "d1.test", "d2.test", "d3.test", "D1.test" };
	struct group g[4];
	struct qcount before[4];
	for (int i = 0; i < 4; i++) {
		g[i] = G(names[i], NULL, &h, 10, true);
		struct lookup l = { names[i], NULL, h };
		g[i].ref = unshimmed(&l, NULL);
	}
	for (int i = 0; i < 4; i++)
		before[i] = queries(names[i]);
	burst(g, 4);
	/* d1.test and D1.test are two keys and two queries (the server logs
	 * both as d1.test). */
	for (int i = 0; i < 4; i++) {
		struct qcount after = queries(names[i]);
		ck_assert_uint_eq(after.a - before[i].a,
		                  i == 0 || i == 3 ? 2 : 1);
		ck_assert_uint_eq(after.aaaa, before[i].aaaa);
	}
	assert_answers_are_ref(g, 4);
	groups_free(g, 4);
}
END_TEST

START_TEST(nxdomain_is_shared)
{
	struct lookup l4 = LOOKUP("nx.test", NULL, AF_INET, 0, 0);
	struct lookup lu = LOOKUP("nx.test", NULL, AF_UNSPEC, 0, AI_CANONNAME);
	real_burst(&l4, N_BURST, true);
	real_burst(&lu, N_BURST, true);
	char *t = unshimmed(&l4, NULL);
	ck_assert_str_eq(t, "rc=-2"); /* EAI_NONAME */
	free(t);
}
END_TEST

/* glibc tries a SERVFAIL twice (attempts:2): the burst must cost those two
 * queries, not one, and not 2 x N. */
START_TEST(servfail_is_shared)
{
	struct lookup l4 = LOOKUP("sf.test", NULL, AF_INET, 0, 0);
	struct lookup lu = LOOKUP("sf.test", NULL, AF_UNSPEC, 0, 0);
	struct qcount one;
	char *t = unshimmed(&l4, &one);
	ck_assert_str_eq(t, "rc=-3"); /* EAI_AGAIN */
	free(t);
	ck_assert_uint_ge(one.a, 1);
	real_burst(&l4, N_BURST, true);
	real_burst(&lu, N_BURST, true);
}
END_TEST

START_TEST(excluded_host_costs_one_call_per_caller)
{
	setenv("SFSHIM_DNS_EXCLUDE", "excl.*", 1);
	struct lookup l = LOOKUP("excl.test", NULL, AF_INET, 0, 0);
	real_burst(&l, 10, false);
	/* The filter does not leak to other names. */
	struct lookup o = LOOKUP("incl.test", NULL, AF_INET, 0, 0);
	real_burst(&o, 10, true);
}
END_TEST

/* ---- answers ------------------------------------------------------------ */

START_TEST(answers_match_glibc_without_shim)
{
	const struct {
		struct lookup l;
		bool coalesce;
	} cases[] = {
		/* /etc/hosts (private copy) */
		{ LOOKUP("hosts.test", NULL, AF_UNSPEC, 0, AI_CANONNAME),
		  true },
		{ LOOKUP("hostsalias", "80", AF_INET, SOCK_STREAM,
		         AI_CANONNAME),
		  true },
		/* numeric: passed through, each call its own */
		{ LOOKUP("10.9.8.7", NULL, AF_UNSPEC, 0, 0), false },
		{ LOOKUP("2001:db8::5", "443", AF_INET6, 0, 0), false },
		{ LOOKUP("10.9.8.7", NULL, AF_INET, 0, AI_NUMERICHOST), false },
		/* DNS: a CNAME chain with the canonical name */
		{ LOOKUP("alias.test", NULL, AF_UNSPEC, 0, AI_CANONNAME),
		  true },
		{ LOOKUP("alias.test", NULL, AF_INET, SOCK_DGRAM, AI_CANONNAME),
		  true },
		/* several addresses of both families, in glibc's sorted order */
		{ LOOKUP("multi.test", NULL, AF_UNSPEC, 0, 0), true },
		{ LOOKUP("multi.test", "http", AF_UNSPEC, SOCK_STREAM, 0),
		  true },
		{ LOOKUP("multi.test", NULL, AF_INET6, 0, AI_CANONNAME), true },
		{ LOOKUP("v4only.test", NULL, AF_INET6, 0, AI_V4MAPPED), true },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		real_burst(&cases[i].l, 8, cases[i].coalesce);
	/* The texts really carry what they claim to. */
	struct lookup l =
	        LOOKUP("alias.test", NULL, AF_UNSPEC, 0, AI_CANONNAME);
	char *t = unshimmed(&l, NULL);
	ck_assert_ptr_nonnull(strstr(t, ",target.test}"));
	free(t);
}
END_TEST

/* ---- without the fake: the shim straight on glibc ---------------------- */

/* --burst NODE N in a process that preloads only the shim: N threads
 * released together look NODE up (AF_INET); prints "joined J" and each
 * answer.  The plain getaddrinfo is called (under TSan that means its
 * interceptor, which ignores accesses inside: glibc's internals would
 * otherwise be reported). */
struct bchild {
	pthread_barrier_t *start;
	const char *node;
	char *text;
};

static void *bchild_main(void *p)
{
	struct bchild *b = p;
	struct addrinfo h = { .ai_family = AF_INET }, *res = NULL;
	pthread_barrier_wait(b->start);
	int rc = getaddrinfo(b->node, NULL, &h, &res);
	b->text = sf_ai_text(rc, errno, res);
	if (rc == 0)
		freeaddrinfo(res);
	return NULL;
}

static int child_burst(const char *node, int n)
{
	if (logcap_try_start() != 0)
		return 3;
	pthread_barrier_t start;
	pthread_barrier_init(&start, NULL, (unsigned)n);
	struct bchild *b = calloc((size_t)n, sizeof(*b));
	pthread_t *t = calloc((size_t)n, sizeof(*t));
	if (!b || !t)
		return 4;
	for (int i = 0; i < n; i++) {
		b[i] = (struct bchild){ &start, node, NULL };
		if (pthread_create(&t[i], NULL, bchild_main, &b[i]) != 0)
			return 5;
	}
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	logcap_stop();
	printf("joined %u\n", logcap.joined);
	for (int i = 0; i < n; i++) {
		printf("%s\n", b[i].text);
		free(b[i].text);
	}
	free(b);
	free(t);
	pthread_barrier_destroy(&start);
	return 0;
}

/* No gate can hold glibc here: followers join while the server sits on
 * the leader's query for 300 ms, which dwarfs the time threads released by
 * one barrier take to reach the shim.  "joined N-1" proves they did; if
 * the machine were ever too slow for that, this fails loudly rather than
 * counting wrong. */
START_TEST(shim_alone_burst_relies_on_server_delay)
{
	enum { N = 20 };
	const char *preload = getenv("SF_PRELOAD_SHIM_ONLY");
	ck_assert_msg(preload != NULL, "SF_PRELOAD_SHIM_ONLY unset");
	struct lookup l = LOOKUP("alone.test", NULL, AF_INET, 0, 0);
	struct qcount one;
	char *ref = unshimmed(&l, &one);
	char n[8];
	snprintf(n, sizeof(n), "%d", N);
	char *argv[] = { "test_dns_real", "--burst", "alone.test", n, NULL };
	struct qcount before = queries("alone.test");
	char *out = run_self(argv, preload);
	struct qcount after = queries("alone.test");
	ck_assert_uint_eq(after.a - before.a, one.a);
	ck_assert_uint_eq(after.aaaa - before.aaaa, one.aaaa);
	char *line = strtok(out, "\n");
	ck_assert_ptr_nonnull(line);
	ck_assert_int_eq(strncmp(line, "joined ", 7), 0);
	ck_assert_int_eq(atoi(line + 7), N - 1);
	int answers = 0;
	while ((line = strtok(NULL, "\n"))) {
		ck_assert_str_eq(line, ref);
		answers++;
	}
	ck_assert_int_eq(answers, N);
	free(out);
	free(ref);
}
END_TEST

/* ---- runner ------------------------------------------------------------ */

int main(int argc, char **argv)
{
	if (argc == 7 && strcmp(argv[1], "--lookup") == 0)
		return child_lookup(argv + 1);
	if (argc == 4 && strcmp(argv[1], "--burst") == 0)
		return child_burst(argv[2], atoi(argv[3]));
	Suite *s = suite_create("dns_real");
	TCase *tc = tcase_create("dns_real");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, burst_af_inet_sends_one_a_query);
	tcase_add_test(tc, burst_af_unspec_sends_one_a_and_one_aaaa);
	tcase_add_test(tc, distinct_names_one_query_each);
	tcase_add_test(tc, nxdomain_is_shared);
	tcase_add_test(tc, servfail_is_shared);
	tcase_add_test(tc, excluded_host_costs_one_call_per_caller);
	tcase_add_test(tc, answers_match_glibc_without_shim);
	tcase_add_test(tc, shim_alone_burst_relies_on_server_delay);
	suite_add_tcase(s, tc);
	int failed = sf_run_suite(s);
	return failed ? 1 : 0;
}
