/* test_stats_causes.c - sf_stats_pass_cause: each distinct cause is logged
 * once (at info) however many threads meet it at the same moment, every
 * call is counted, the summary lists the causes busiest first, per API, and
 * a full table counts the rest as "other". */
#include "common/sf_log.h"
#include "common/sf_stats.h"

#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define THREADS 8
#define CALLS 1000

static int logp[2];

static void setup(void)
{
	ck_assert_int_eq(pipe2(logp, O_NONBLOCK), 0);
	sf_log_set_fd(logp[1]);
	sf_log_level = SF_LOG_INFO;
}

/* Everything logged so far. */
static char *drain(void)
{
	static char buf[65536];
	ssize_t n = read(logp[0], buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static unsigned count(const char *hay, const char *needle)
{
	unsigned n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

static pthread_barrier_t barrier;

static void *hammer(void *arg)
{
	/* A copy of the literal at another address: compared by content. */
	char *copy = strdup("CURLOPT_SHARE set");
	const char *mine = ((uintptr_t)arg & 1) ? copy : "CURLOPT_SHARE set";
	pthread_barrier_wait(&barrier);
	for (int i = 0; i < CALLS; i++) {
		sf_stats_pass_cause(SF_API_CURL, SF_PASS_UNSUPPORTED, mine);
		if (i % 10 == 0)
			sf_stats_pass_cause(SF_API_CURL, SF_PASS_UNSUPPORTED,
			                    "CURLOPT_NOBODY set");
	}
	return copy; /* freed after the report: the table keeps the pointer */
}

START_TEST(once_per_cause_counted_exactly)
{
	pthread_t t[THREADS];
	pthread_barrier_init(&barrier, NULL, THREADS);
	for (uintptr_t i = 0; i < THREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, hammer, (void *)i),
		                 0);
	void *copies[THREADS];
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], &copies[i]);
	sf_stats_pass_cause(SF_API_DNS, SF_PASS_NUMERIC, "numeric host");

	char *log = drain();
	ck_assert_uint_eq(count(log, "curl: CURLOPT_SHARE set: passing through "
	                             "(unsupported)\n"),
	                  1);
	ck_assert_uint_eq(count(log, "curl: CURLOPT_NOBODY set: passing "
	                             "through"),
	                  1);
	ck_assert_uint_eq(count(log, "dns: numeric host: passing through "
	                             "(numeric)"),
	                  1);

	int fd = logp[1];
	sf_stats_report(fd);
	log = drain();
	char want[160];
	snprintf(want, sizeof(want),
	         "curl: passthrough causes: CURLOPT_SHARE set=%d, "
	         "CURLOPT_NOBODY set=%d\n",
	         THREADS * CALLS, THREADS * CALLS / 10);
	ck_assert_msg(strstr(log, want), "no '%s' in:\n%s", want, log);
	ck_assert_msg(strstr(log, "dns: passthrough causes: numeric host=1\n"),
	              "%s", log);
	for (int i = 0; i < THREADS; i++)
		free(copies[i]);
}
END_TEST

START_TEST(a_full_table_counts_other)
{
	/* Forked: a table of its own.  40 distinct causes, 32 slots. */
	static char names[40][16];
	for (int i = 0; i < 40; i++) {
		snprintf(names[i], sizeof(names[i]), "cause %02d", i);
		for (int k = 0; k <= i; k++)
			sf_stats_pass_cause(SF_API_DNS, SF_PASS_UNSUPPORTED,
			                    names[i]);
	}
	char *log = drain();
	ck_assert_uint_eq(count(log, ": passing through"), 32);
	sf_stats_report(logp[1]);
	log = drain();
	/* The top five of the 32 kept (causes 31..27), then the 8 left out,
	 * called 33..40 times. */
	ck_assert_msg(strstr(log, "dns: passthrough causes: cause 31=32, "
	                          "cause 30=31, cause 29=30, cause 28=29, "
	                          "cause 27=28, other=292\n"),
	              "%s", log);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("stats_causes");
	TCase *tc = tcase_create("stats_causes");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, once_per_cause_counted_exactly);
	tcase_add_test(tc, a_full_table_counts_other);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
