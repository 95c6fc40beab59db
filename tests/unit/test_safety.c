/* test_safety.c - nothing the shim prints reveals a secret or forges a line.
 *
 *  - URLs in log lines and in the stats summary's busiest keys lose their
 *    userinfo, query and fragment (issue 7, defect 1);
 *  - a configuration value with control characters is echoed escaped, on
 *    one line (defect 3);
 *  - SFSHIM_SPILL is bounded, with one line saying so (defect 4).
 * The log goes to a pipe so that each test sees exactly what was written. */
#include "common/sf_config.h"
#include "common/sf_log.h"
#include "common/sf_stats.h"

#include "sf_unit_log.h"
#include "sf_unit_main.h"

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void assert_no(const char *needle)
{
	ck_assert_msg(strstr(logbuf, needle) == NULL, "'%s' leaked in: %s",
	              needle, logbuf);
}

static void assert_has(const char *needle)
{
	ck_assert_msg(strstr(logbuf, needle) != NULL, "'%s' missing in: %s",
	              needle, logbuf);
}

/* ---- redaction --------------------------------------------------------- */

static const char *const secret_urls[] = {
	"https://alice:hunter2@api.example/v1/items?token=s3cr3t&x=1#frag",
	"http://alice@api.example/v1/items?token=s3cr3t",
	"HTTP://alice:hunter2@api.example?token=s3cr3t",
	"https://api.example/v1/items#s3cr3t",
	"http://alice:hunter2@[::1]:8080/v1/items?token=s3cr3t",
	/* libcurl takes URLs without a scheme too */
	"alice:hunter2@api.example/v1/items?token=s3cr3t#frag",
	"api.example/v1/items?token=s3cr3t",
};

static void assert_redacted(void)
{
	assert_no("hunter2");
	assert_no("s3cr3t");
	assert_no("alice");
	assert_no("frag");
	assert_has("api.example");
	assert_has("[redacted]");
}

START_TEST(log_lines_redact_url_secrets)
{
	const char *url = secret_urls[_i];
	sf_log(SF_LOG_ERROR, "cannot store the response of %s (%s); go", url,
	       "No space");
	sf_log(SF_LOG_ERROR, "%s: leader failed on its own (%d)", url, 28);
	read_log();
	ck_assert_uint_eq(nlines, 2);
	if (strstr(url, "api.example"))
		assert_redacted();
	else {
		assert_no("hunter2");
		assert_no("s3cr3t");
	}
	/* What is not a secret stays: the text after the URL. */
	assert_has(" (No space); go\n");
	assert_has(": leader failed on its own (28)\n");
}
END_TEST

START_TEST(log_keeps_scheme_host_and_path)
{
	sf_log(SF_LOG_ERROR, "fetching %s now",
	       "https://u:p@h.example:8443/a/b.json?k=v#x");
	read_log();
	assert_has("fetching https://[redacted]@h.example:8443/a/b.json"
	           "?[redacted]#[redacted] now\n");
}
END_TEST

START_TEST(stats_busiest_keys_redact_url_secrets)
{
	for (size_t i = 0; i < sizeof(secret_urls) / sizeof(*secret_urls); i++)
		sf_stats_flight(SF_API_CURL, secret_urls[i], 3);
	sf_stats_report(logp[1]);
	read_log();
	assert_no("hunter2");
	assert_no("s3cr3t");
	assert_no("alice");
	assert_has("busiest curl https://[redacted]@api.example/v1/items"
	           "?[redacted]#[redacted]: flights=1 followers=3\n");
}
END_TEST

/* ---- control characters ------------------------------------------------ */

static const char *const *table_env;
static const char *table_get(const char *name)
{
	for (const char *const *q = table_env; q[0]; q += 2)
		if (strcmp(q[0], name) == 0)
			return q[1];
	return NULL;
}

START_TEST(config_value_cannot_forge_a_line)
{
	static const char forged[] = "5\nsfshim[1]: forged\r\x1b[2J\\";
	static const char *const table[] = { "SFSHIM_WAIT_MS", forged, NULL };
	struct sf_config c;
	table_env = table;
	sf_config_load(&c, table_get);
	read_log();
	ck_assert_msg(nlines == 1, "%u lines: %s", nlines, logbuf);
	assert_has("SFSHIM_WAIT_MS='5\\nsfshim[1]: forged\\r\\x1b[2J\\\\'");
	ck_assert_uint_eq(c.wait_ns, (uint64_t)SF_DEFAULT_WAIT_MS * 1000000u);
	sf_config_free(&c);
}
END_TEST

START_TEST(log_arguments_cannot_forge_a_line)
{
	sf_log(SF_LOG_ERROR, "getaddrinfo %s: joined flight",
	       "evil\nsfshim[1]: getaddrinfo x: joined flight");
	read_log();
	ck_assert_msg(nlines == 1, "%u lines: %s", nlines, logbuf);
	assert_has("evil\\nsfshim[1]");
}
END_TEST

/* ---- SFSHIM_SPILL ------------------------------------------------------ */

static const char *spill_value;
static const char *spill_get(const char *name)
{
	return strcmp(name, "SFSHIM_SPILL") == 0 ? spill_value : NULL;
}

START_TEST(spill_is_bounded)
{
	static const char *const huge[] = { "8589934591G", "2G", "1025M",
		                            "1073741825" };
	struct sf_config c;
	spill_value = huge[_i];
	sf_config_load(&c, spill_get);
	read_log();
	ck_assert_msg(nlines == 1, "SFSHIM_SPILL=%s: %u lines: %s", huge[_i],
	              nlines, logbuf);
	assert_has("SFSHIM_SPILL='");
	assert_has("1G");
	ck_assert_uint_eq(c.spill_bytes, (size_t)1 << 30);
	sf_config_free(&c);
}
END_TEST

START_TEST(spill_at_the_bound_is_quiet)
{
	struct sf_config c;
	spill_value = "1G";
	sf_config_load(&c, spill_get);
	read_log();
	ck_assert_msg(nlines == 0, "%s", logbuf);
	ck_assert_uint_eq(c.spill_bytes, (size_t)1 << 30);
	sf_config_free(&c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("safety");
	TCase *tc = tcase_create("safety");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, log_lines_redact_url_secrets, 0,
	                    sizeof(secret_urls) / sizeof(*secret_urls));
	tcase_add_test(tc, log_keeps_scheme_host_and_path);
	tcase_add_test(tc, stats_busiest_keys_redact_url_secrets);
	tcase_add_test(tc, config_value_cannot_forge_a_line);
	tcase_add_test(tc, log_arguments_cannot_forge_a_line);
	tcase_add_loop_test(tc, spill_is_bounded, 0, 4);
	tcase_add_test(tc, spill_at_the_bound_is_quiet);
	suite_add_tcase(s, tc);
	return sf_unit_run(s);
}
