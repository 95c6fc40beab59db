/* test_config.c - environment parsing (sf_config_load with a fake getenv),
 * the glob matcher and filters, and the stats summary's text.
 *
 * The log goes to a pipe so that each test sees exactly which lines a load
 * wrote: a malformed value must give one line naming the variable, the
 * value and what is assumed instead; a good or empty one, none. */
#include "common/sf_config.h"
#include "common/sf_log.h"
#include "common/sf_scope.h"
#include "common/sf_stats.h"
#include "common/sf_version.h"

#define SF_UNIT_LOGBUF_SIZE 8192
#include "sf_unit_log.h"
#include "sf_unit_main.h"

#include <check.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- fake environment and captured log -------------------------------- */

static const char *const *env; /* name, value, name, value, ..., NULL */

static const char *fake_get(const char *name)
{
	for (const char *const *p = env; p && p[0]; p += 2)
		if (strcmp(p[0], name) == 0)
			return p[1];
	return NULL;
}

static void load(struct sf_config *c, const char *const *table)
{
	env = table;
	sf_config_load(c, fake_get);
	read_log();
}

/* The configuration with nothing set: what malformed values fall back to. */
static struct sf_config defaults(void)
{
	static const char *const none[] = { NULL };
	struct sf_config d;
	load(&d, none);
	ck_assert_uint_eq(nlines, 0);
	return d;
}

static void load_one(struct sf_config *c, const char *var, const char *value)
{
	const char *const table[] = { var, value, NULL };
	load(c, table);
}

/* Exactly one line: "sfshim[pid]: VAR='value' ... assuming X". */
static void assert_one_warning(const char *var, const char *value,
                               const char *assumed)
{
	char want[512];
	ck_assert_msg(nlines == 1, "%s='%s': %u lines: %s", var, value, nlines,
	              logbuf);
	snprintf(want, sizeof(want), "sfshim[%d]: ", (int)getpid());
	ck_assert_msg(strncmp(logbuf, want, strlen(want)) == 0, "%s", logbuf);
	snprintf(want, sizeof(want), "%s='%s'", var, value);
	ck_assert_msg(strstr(logbuf, want) != NULL, "%s", logbuf);
	snprintf(want, sizeof(want), "assuming %s\n", assumed);
	size_t lw = strlen(want), ll = strlen(logbuf);
	ck_assert_msg(ll >= lw && strcmp(logbuf + ll - lw, want) == 0,
	              "wanted '%s' at the end of: %s", want, logbuf);
}

/* ---- defaults ----------------------------------------------------------- */

START_TEST(test_defaults_when_unset)
{
	struct sf_config c = defaults();
	ck_assert(c.dns);
	ck_assert(c.curl);
	ck_assert(!c.retry_errors);
	ck_assert_uint_eq(c.wait_ns, (uint64_t)SF_DEFAULT_WAIT_MS * 1000000u);
	ck_assert_uint_eq(c.spill_bytes, SF_DEFAULT_SPILL);
	ck_assert_int_eq(c.log_level, SF_LOG_ERROR);
	ck_assert_ptr_null(c.stats);
	ck_assert_uint_eq(c.hosts.n_include + c.hosts.n_exclude, 0);
	ck_assert_uint_eq(c.urls.n_include + c.urls.n_exclude, 0);
	sf_config_free(&c);
}
END_TEST

/* ---- booleans ------------------------------------------------------------ */

static const struct {
	const char *var;
	size_t off;
} bools[] = {
	{ "SFSHIM_DNS", offsetof(struct sf_config, dns) },
	{ "SFSHIM_CURL", offsetof(struct sf_config, curl) },
	{ "SFSHIM_RETRY_ERRORS", offsetof(struct sf_config, retry_errors) },
};

static bool field(const struct sf_config *c, size_t off)
{
	return *(const bool *)((const char *)c + off);
}

/* Runs once per boolean variable (a loop test, _i is the index). */
START_TEST(test_bool_good)
{
	static const char *const yes[] = { "1",    "yes",  "on",
		                           "true", "TRUE", "Yes" };
	static const char *const no[] = { "0",     "no",  "off",
		                          "false", "OFF", "False" };
	const char *var = bools[_i].var;
	struct sf_config c;
	for (size_t i = 0; i < sizeof(yes) / sizeof(*yes); i++) {
		load_one(&c, var, yes[i]);
		ck_assert_msg(field(&c, bools[_i].off), "%s=%s", var, yes[i]);
		ck_assert_uint_eq(nlines, 0);
		sf_config_free(&c);
		load_one(&c, var, no[i]);
		ck_assert_msg(!field(&c, bools[_i].off), "%s=%s", var, no[i]);
		ck_assert_uint_eq(nlines, 0);
		sf_config_free(&c);
	}
	/* Empty counts as unset: the default, silently. */
	struct sf_config d = defaults();
	load_one(&c, var, "");
	ck_assert_int_eq(field(&c, bools[_i].off), field(&d, bools[_i].off));
	ck_assert_uint_eq(nlines, 0);
	sf_config_free(&c);
	sf_config_free(&d);
}
END_TEST

START_TEST(test_bool_malformed)
{
	static const char *const bad[] = { "2", "maybe", "yes please", " 1",
		                           "t" };
	const char *var = bools[_i].var;
	struct sf_config d = defaults(), c;
	char assumed[8];
	snprintf(assumed, sizeof(assumed), "%d", field(&d, bools[_i].off));
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		load_one(&c, var, bad[i]);
		ck_assert_int_eq(field(&c, bools[_i].off),
		                 field(&d, bools[_i].off));
		assert_one_warning(var, bad[i], assumed);
		sf_config_free(&c);
	}
	sf_config_free(&d);
}
END_TEST

/* ---- SFSHIM_WAIT_MS ------------------------------------------------------- */

START_TEST(test_wait_ms_good)
{
	static const struct {
		const char *v;
		uint64_t ms;
	} good[] = { { "0", 0 },
		     { "250", 250 },
		     { "007", 7 },
		     { "86400000", 86400000 } };
	struct sf_config c;
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
		load_one(&c, "SFSHIM_WAIT_MS", good[i].v);
		ck_assert_uint_eq(c.wait_ns, good[i].ms * 1000000u);
		ck_assert_uint_eq(nlines, 0);
		sf_config_free(&c);
	}
}
END_TEST

START_TEST(test_wait_ms_malformed)
{
	static const char *const bad[] = {
		"-1",
		"+5",
		" 5",
		"5ms",
		"abc",
		"1.5",
		"0x10",
		"86400001",             /* above the documented maximum */
		"18446744073709551616", /* overflows strtoull */
	};
	struct sf_config d = defaults(), c;
	char assumed[32];
	snprintf(assumed, sizeof(assumed), "%llu",
	         (unsigned long long)(d.wait_ns / 1000000u));
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		load_one(&c, "SFSHIM_WAIT_MS", bad[i]);
		ck_assert_uint_eq(c.wait_ns, d.wait_ns);
		assert_one_warning("SFSHIM_WAIT_MS", bad[i], assumed);
		sf_config_free(&c);
	}
	sf_config_free(&d);
}
END_TEST

/* ---- SFSHIM_SPILL --------------------------------------------------------- */

START_TEST(test_spill_good)
{
	static const struct {
		const char *v;
		uint64_t bytes;
	} good[] = {
		{ "0", 0 },
		{ "4096", 4096 },
		{ "512k", 512u << 10 },
		{ "512K", 512u << 10 },
		{ "8M", 8u << 20 },
		{ "8m", 8u << 20 },
		{ "8Mi", 8u << 20 },
		{ "8MiB", 8u << 20 },
		{ "8MB", 8u << 20 },
		{ "1g", 1u << 30 }, /* the maximum (test_safety: beyond it) */
		{ "1GiB", 1u << 30 },
	};
	struct sf_config c;
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
		load_one(&c, "SFSHIM_SPILL", good[i].v);
		ck_assert_msg(c.spill_bytes == good[i].bytes, "%s gave %zu",
		              good[i].v, c.spill_bytes);
		ck_assert_uint_eq(nlines, 0);
		sf_config_free(&c);
	}
}
END_TEST

START_TEST(test_spill_malformed)
{
	static const char *const bad[] = {
		"8x",
		"k",
		"-1",
		"+1",
		"1.5M",
		"8MiBs",
		"8 M",
		"8ib",
		"9223372036854775808", /* SIZE_MAX/2 + 1 */
		"20000000000g",        /* shifts past 64 bits */
	};
	struct sf_config d = defaults(), c;
	char assumed[32];
	snprintf(assumed, sizeof(assumed), "%zu", d.spill_bytes);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		load_one(&c, "SFSHIM_SPILL", bad[i]);
		ck_assert_uint_eq(c.spill_bytes, d.spill_bytes);
		assert_one_warning("SFSHIM_SPILL", bad[i], assumed);
		sf_config_free(&c);
	}
	sf_config_free(&d);
}
END_TEST

/* ---- SFSHIM_LOG ----------------------------------------------------------- */

static const char *const level_names[] = { "off", "error", "info", "debug" };

START_TEST(test_log_good)
{
	static const char *const digits[] = { "0", "1", "2", "3" };
	static const char *const upper[] = { "OFF", "Error", "INFO", "Debug" };
	struct sf_config c;
	for (int lv = SF_LOG_OFF; lv <= SF_LOG_DEBUG; lv++) {
		const char *forms[] = { level_names[lv], upper[lv],
			                digits[lv] };
		for (size_t i = 0; i < 3; i++) {
			sf_log_level = SF_LOG_ERROR;
			load_one(&c, "SFSHIM_LOG", forms[i]);
			ck_assert_int_eq(c.log_level, lv);
			ck_assert_int_eq(sf_log_level,
			                 lv); /* load applies it */
			ck_assert_uint_eq(nlines, 0);
			sf_config_free(&c);
		}
	}
}
END_TEST

START_TEST(test_log_malformed)
{
	static const char *const bad[] = { "4", "-1", "10", "verbose",
		                           "info " };
	struct sf_config d = defaults(), c;
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		sf_log_level = SF_LOG_ERROR;
		load_one(&c, "SFSHIM_LOG", bad[i]);
		ck_assert_int_eq(c.log_level, d.log_level);
		assert_one_warning("SFSHIM_LOG", bad[i],
		                   level_names[d.log_level]);
		sf_config_free(&c);
	}
	sf_config_free(&d);
}
END_TEST

/* The level is read first: with SFSHIM_LOG=off, other warnings are
 * silent; several malformed values give one line each. */
START_TEST(test_log_level_governs_warnings)
{
	static const char *const quiet[] = {
		"SFSHIM_LOG",   "off", "SFSHIM_DNS", "maybe",
		"SFSHIM_SPILL", "8x",  NULL
	};
	static const char *const loud[] = {
		"SFSHIM_WAIT_MS", "soon", "SFSHIM_DNS", "maybe",
		"SFSHIM_SPILL",   "8x",   NULL
	};
	struct sf_config d = defaults(), c;
	load(&c, quiet);
	ck_assert_int_eq(c.log_level, SF_LOG_OFF);
	ck_assert_int_eq(c.dns, d.dns);
	ck_assert_uint_eq(c.spill_bytes, d.spill_bytes);
	ck_assert_uint_eq(nlines, 0);
	sf_config_free(&c);
	sf_log_level = SF_LOG_ERROR;
	load(&c, loud);
	ck_assert_uint_eq(nlines, 3);
	ck_assert_ptr_nonnull(strstr(logbuf, "SFSHIM_WAIT_MS='soon'"));
	ck_assert_ptr_nonnull(strstr(logbuf, "SFSHIM_DNS='maybe'"));
	ck_assert_ptr_nonnull(strstr(logbuf, "SFSHIM_SPILL='8x'"));
	sf_config_free(&c);
	sf_config_free(&d);
}
END_TEST

/* ---- SFSHIM_STATS: any other value is a path, so nothing is malformed --- */

START_TEST(test_stats_values)
{
	static const char *const off[] = { "", "0", "off", "OFF" };
	static const char *const err[] = { "1", "stderr", "STDERR" };
	const char *path = "/tmp/sfshim-stats.txt";
	struct sf_config c;
	for (size_t i = 0; i < sizeof(off) / sizeof(*off); i++) {
		load_one(&c, "SFSHIM_STATS", off[i]);
		ck_assert_ptr_null(c.stats);
		ck_assert_uint_eq(nlines, 0);
		sf_config_free(&c);
	}
	for (size_t i = 0; i < sizeof(err) / sizeof(*err); i++) {
		load_one(&c, "SFSHIM_STATS", err[i]);
		ck_assert_str_eq(c.stats, "stderr");
		ck_assert_uint_eq(nlines, 0);
		sf_config_free(&c);
	}
	load_one(&c, "SFSHIM_STATS", path);
	ck_assert_str_eq(c.stats, path);
	ck_assert_ptr_ne(c.stats, path); /* a copy the config owns */
	ck_assert_uint_eq(nlines, 0);
	sf_config_free(&c);
}
END_TEST

/* ---- the four pattern lists ---------------------------------------------- */

/* Items are trimmed of blanks and tabs; empty items vanish; order kept. */
START_TEST(test_lists_parsed)
{
	static const char *const table[] = {
		"SFSHIM_DNS_INCLUDE",
		" a.example ,*.B.example,,\t, c ",
		"SFSHIM_DNS_EXCLUDE",
		"bad.b.example",
		"SFSHIM_URL_INCLUDE",
		"https://*/api/*",
		"SFSHIM_URL_EXCLUDE",
		" , ,",
		NULL,
	};
	struct sf_config c;
	load(&c, table);
	ck_assert_uint_eq(nlines, 0);
	ck_assert_uint_eq(c.hosts.n_include, 3);
	ck_assert_str_eq(c.hosts.include[0], "a.example");
	ck_assert_str_eq(c.hosts.include[1], "*.B.example");
	ck_assert_str_eq(c.hosts.include[2], "c");
	ck_assert_uint_eq(c.hosts.n_exclude, 1);
	ck_assert_str_eq(c.hosts.exclude[0], "bad.b.example");
	ck_assert_uint_eq(c.urls.n_include, 1);
	ck_assert_str_eq(c.urls.include[0], "https://*/api/*");
	ck_assert_uint_eq(c.urls.n_exclude, 0);
	/* The lists as filters. */
	ck_assert(sf_filter_allows(&c.hosts, "www.b.example"));
	ck_assert(sf_filter_allows(&c.hosts, "A.EXAMPLE"));
	ck_assert(!sf_filter_allows(&c.hosts, "bad.b.example"));
	ck_assert(!sf_filter_allows(&c.hosts, "d.example"));
	ck_assert(sf_filter_allows(&c.urls, "https://h/api/v1"));
	ck_assert(!sf_filter_allows(&c.urls, "https://h/web/"));
	sf_config_free(&c);
	ck_assert_ptr_null(c.hosts.include); /* free resets the struct */
	ck_assert_uint_eq(c.hosts.n_include, 0);
}
END_TEST

/* ---- SFSHIM_SCOPE ------------------------------------------------------- */

/* 1-64 of [A-Za-z0-9._-] are kept as given, without a word in the log;
 * unset or empty is per-process mode, silently. */
START_TEST(test_scope_good)
{
	static const char *const good[] = {
		"a",
		"web",
		"php-fpm.pool_1",
		"A.b-C_9",
		".",
		"..",
		"-x",
		"0123456789012345678901234567890123456789012345678901234567890123",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
		struct sf_config c;
		ck_assert(sf_scope_name_ok(good[i]));
		load_one(&c, "SFSHIM_SCOPE", good[i]);
		ck_assert_msg(nlines == 0, "%s: %s", good[i], logbuf);
		ck_assert_str_eq(c.scope, good[i]);
		sf_config_free(&c);
	}
	struct sf_config c;
	load_one(&c, "SFSHIM_SCOPE", "");
	ck_assert_uint_eq(nlines, 0);
	ck_assert_ptr_null(c.scope);
	sf_config_free(&c);
	c = defaults();
	ck_assert_ptr_null(c.scope);
	sf_config_free(&c);
}
END_TEST

/* Anything else: exactly one line naming the variable and the mode the
 * process falls back to, never the value (it could be anything), and no
 * scope. */
START_TEST(test_scope_malformed)
{
	static const char *const bad[] = {
		"a/b",
		"../x",
		"a b",
		" a",
		"a\n",
		"caf\xc3\xa9",
		"a:b",
		"*",
		"01234567890123456789012345678901234567890123456789012345678901234",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct sf_config c;
		ck_assert(!sf_scope_name_ok(bad[i]));
		load_one(&c, "SFSHIM_SCOPE", bad[i]);
		ck_assert_msg(nlines == 1, "'%s': %u lines: %s", bad[i], nlines,
		              logbuf);
		ck_assert_ptr_nonnull(strstr(logbuf, "SFSHIM_SCOPE"));
		ck_assert_ptr_nonnull(
		        strstr(logbuf, "coalescing within this process only"));
		ck_assert_ptr_null(c.scope);
		sf_config_free(&c);
	}
	ck_assert(!sf_scope_name_ok(NULL));
	ck_assert(!sf_scope_name_ok(""));
}
END_TEST

/* ---- globs and filters --------------------------------------------------- */

START_TEST(test_glob_match)
{
	static const struct {
		const char *pat, *subj;
		bool match;
	} cases[] = {
		{ "", "", true },
		{ "", "a", false },
		{ "*", "", true },
		{ "*", "anything at all", true },
		{ "?", "a", true },
		{ "?", "", false },
		{ "?", "ab", false },
		{ "a?c", "abc", true },
		{ "a?c", "ac", false },
		{ "abc", "ABC", true }, /* ASCII case folds both ways */
		{ "ABC", "abc", true },
		{ "abc", "abd", false },
		{ "abc", "abcd", false },
		{ "abcd", "abc", false },
		{ "*.example.com", "www.EXAMPLE.com", true },
		{ "*.example.com", "example.com", false },
		{ "*.example.com", "www.example.com.evil", false },
		{ "a*b*c", "aXXbYYc", true },
		{ "a*b*c", "aXXbYY", false },
		{ "*ab", "aab", true }, /* needs a backtrack */
		{ "*x", "abc", false },
		{ "abc**", "abc", true },
		{ "**", "", true },
		{ "*?", "", false },
		{ "*?", "z", true },
		{ "\xc3\x89", "\xc3\xa9", false }, /* no folding beyond ASCII */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
		ck_assert_msg(sf_glob_match(cases[i].pat, cases[i].subj) ==
		                      cases[i].match,
		              "'%s' vs '%s'", cases[i].pat, cases[i].subj);
}
END_TEST

/* A backtracking matcher takes exponential time here; the test's timeout
 * (check kills it) is what catches that. */
START_TEST(test_glob_pathological)
{
	enum { LEN = 100000 };
	char *s = malloc(LEN + 2);
	ck_assert_ptr_nonnull(s);
	memset(s, 'a', LEN);
	s[LEN] = '\0';
	ck_assert(!sf_glob_match("*a*a*a*a*b", s));
	ck_assert(!sf_glob_match("*a*a*a*a*a*a*a*a*a*a*b", s));
	s[LEN] = 'b';
	s[LEN + 1] = '\0';
	ck_assert(sf_glob_match("*a*a*a*a*b", s));
	free(s);
}
END_TEST

START_TEST(test_filter_allows)
{
	char *inc[] = { "*.example.com", "api.test" };
	char *exc[] = { "bad.example.com" };
	struct sf_filter none = { 0 };
	struct sf_filter only_exc = { .exclude = exc, .n_exclude = 1 };
	struct sf_filter both = {
		.include = inc, .n_include = 2, .exclude = exc, .n_exclude = 1
	};
	/* Empty lists: everything passes. */
	ck_assert(sf_filter_allows(&none, "anything"));
	ck_assert(sf_filter_allows(&none, ""));
	/* Empty include means all, minus the excluded. */
	ck_assert(sf_filter_allows(&only_exc, "good.example.com"));
	ck_assert(!sf_filter_allows(&only_exc, "BAD.example.com"));
	/* Exclude wins over a matching include. */
	ck_assert(sf_filter_allows(&both, "www.example.com"));
	ck_assert(sf_filter_allows(&both, "API.test"));
	ck_assert(!sf_filter_allows(&both, "bad.example.com"));
	ck_assert(!sf_filter_allows(&both, "other.org"));
}
END_TEST

/* ---- the stats summary ----------------------------------------------------- */

/* Splits the report into lines (at most 8). */
static unsigned report_lines(char lines[][512])
{
	unsigned n = 0;
	char *save = NULL;
	for (char *l = strtok_r(logbuf, "\n", &save); l && n < 8;
	     l = strtok_r(NULL, "\n", &save))
		snprintf(lines[n++], 512, "%s", l);
	return n;
}

static void assert_token(const char *line, const char *key, unsigned long v)
{
	char want[64];
	snprintf(want, sizeof(want), " %s=%lu", key, v);
	size_t lw = strlen(want);
	const char *p = strstr(line, want);
	ck_assert_msg(p && (p[lw] == ' ' || p[lw] == ')' || p[lw] == '\0'),
	              "no '%s' in: %s", want + 1, line);
}

static void bump(enum sf_api api, enum sf_stat s, unsigned n)
{
	while (n--)
		sf_count(api, s);
}

START_TEST(test_stats_report)
{
	memset(&sf_stats, 0, sizeof(sf_stats));
	/* dns: 3 flights led, 5 followers (1 promoted, 2 expired, 1 retried
	 * among the calls), one numeric pass-through. */
	const unsigned dl = 3, df = 5, dp = 1, de = 2, dr = 1, dnum = 1;
	bump(SF_API_DNS, SF_STAT_LEADERS, dl);
	bump(SF_API_DNS, SF_STAT_FOLLOWERS, df);
	bump(SF_API_DNS, SF_STAT_PROMOTIONS, dp);
	bump(SF_API_DNS, SF_STAT_EXPIRED, de);
	bump(SF_API_DNS, SF_STAT_RETRIED, dr);
	for (unsigned i = 0; i < dnum; i++)
		sf_count_pass(SF_API_DNS, SF_PASS_NUMERIC);
	/* curl: one flight alone, 2 filtered and 1 unsupported. */
	const unsigned cl = 1, cfilt = 2, cuns = 1;
	bump(SF_API_CURL, SF_STAT_LEADERS, cl);
	for (unsigned i = 0; i < cfilt; i++)
		sf_count_pass(SF_API_CURL, SF_PASS_FILTERED);
	for (unsigned i = 0; i < cuns; i++)
		sf_count_pass(SF_API_CURL, SF_PASS_UNSUPPORTED);
	/* Busiest keys: b twice (2+2), a once (3), a curl URL once (1); a
	 * flight without followers is not recorded. */
	sf_stats_flight(SF_API_DNS, "b.example", 2);
	sf_stats_flight(SF_API_DNS, "a.example", 3);
	sf_stats_flight(SF_API_DNS, "b.example", 2);
	sf_stats_flight(SF_API_CURL, "https://c.example/x", 1);
	sf_stats_flight(SF_API_DNS, "lonely.example", 0);

	sf_stats_report(logp[1]);
	read_log();
	char lines[8][512], prefix[64];
	ck_assert_uint_eq(report_lines(lines), 6);
	snprintf(prefix, sizeof(prefix), "sfshim[%d]: ", (int)getpid());
	/* A header naming the library's version, then the API lines. */
	ck_assert_str_eq(lines[0] + strlen(prefix),
	                 "libsfshim " SF_VERSION " summary");
	memmove(lines[0], lines[1], sizeof(lines) - sizeof(lines[0]));
	for (int i = 0; i < 5; i++)
		ck_assert_msg(strncmp(lines[i], prefix, strlen(prefix)) == 0,
		              "%s", lines[i]);
	const char *dns = lines[0] + strlen(prefix);
	const char *curl = lines[1] + strlen(prefix);
	ck_assert_msg(strncmp(dns, "dns: ", 5) == 0, "%s", dns);
	ck_assert_msg(strncmp(curl, "curl: ", 6) == 0, "%s", curl);

	assert_token(dns, "calls", dl + df + dnum);
	assert_token(dns, "leaders", dl);
	assert_token(dns, "followers", df);
	assert_token(dns, "promotions", dp);
	assert_token(dns, "expired", de);
	assert_token(dns, "retried", dr);
	assert_token(dns, "passthrough", dnum);
	assert_token(dns, "numeric", dnum);
	assert_token(dns, "filtered", 0);
	/* Promoted, expired and retried followers made calls of their own. */
	assert_token(dns, "saved", df - dp - de - dr);
	char dedup[32];
	snprintf(dedup, sizeof(dedup), " dedup=%.1f%%",
	         100.0 * (df - dp - de - dr) / (dl + df));
	ck_assert_msg(strstr(dns, dedup), "no '%s' in: %s", dedup, dns);

	assert_token(curl, "calls", cl + cfilt + cuns);
	assert_token(curl, "leaders", cl);
	assert_token(curl, "followers", 0);
	assert_token(curl, "passthrough", cfilt + cuns);
	assert_token(curl, "filtered", cfilt);
	assert_token(curl, "unsupported", cuns);
	assert_token(curl, "numeric", 0);
	ck_assert_msg(strstr(curl, " dedup=0.0%"), "%s", curl);

	/* Busiest first. */
	ck_assert_str_eq(lines[2] + strlen(prefix),
	                 "busiest dns b.example: flights=2 followers=4");
	ck_assert_str_eq(lines[3] + strlen(prefix),
	                 "busiest dns a.example: flights=1 followers=3");
	ck_assert_str_eq(
	        lines[4] + strlen(prefix),
	        "busiest curl https://c.example/x: flights=1 followers=1");
}
END_TEST

/* With a scope: one more line per API, after the API lines, with the
 * cross-process counters; the JSON has them under "crossed" and names the
 * scope.  (Runs in its own process: the process configuration is read
 * once, here with SFSHIM_SCOPE set.) */
START_TEST(test_stats_crossed)
{
	memset(&sf_stats, 0, sizeof(sf_stats));
	ck_assert_int_eq(setenv("SFSHIM_SCOPE", "pool", 1), 0);
	ck_assert_str_eq(sf_config()->scope, "pool");
	sf_count_cross(SF_API_DNS, SF_XSTAT_LED, 1);
	sf_count_cross(SF_API_DNS, SF_XSTAT_ANSWERED, 2);
	sf_count_cross(SF_API_DNS, SF_XSTAT_SERVED, 15);
	sf_count_cross(SF_API_DNS, SF_XSTAT_ALONE, 1);
	sf_count_cross(SF_API_DNS, SF_XSTAT_ALONE, 0);
	sf_count_cross(SF_API_CURL, SF_XSTAT_PROMOTED, 1);
	read_log();
	sf_stats_report(logp[1]);
	read_log();
	char want[256];
	snprintf(want, sizeof(want),
	         "sfshim[%d]: dns: crossed processes (scope pool): led=1 "
	         "answered=2 served=15 promoted=0 alone=1\n",
	         (int)getpid());
	ck_assert_msg(strstr(logbuf, want), "no '%s' in:\n%s", want, logbuf);
	snprintf(want, sizeof(want),
	         "sfshim[%d]: curl: crossed processes (scope pool): led=0 "
	         "answered=0 served=0 promoted=1 alone=0\n",
	         (int)getpid());
	ck_assert_msg(strstr(logbuf, want), "no '%s' in:\n%s", want, logbuf);
	char json[16384];
	ck_assert_uint_gt(sf_stats_json(json, sizeof(json)), 0);
	ck_assert_ptr_nonnull(strstr(json, ",\"scope\":\"pool\","));
	ck_assert_ptr_nonnull(
	        strstr(json, "\"crossed\":{\"led\":1,\"answered\":2,"
	                     "\"served\":15,\"promoted\":0,\"alone\":1}"));
	ck_assert_ptr_nonnull(
	        strstr(json, "\"crossed\":{\"led\":0,\"answered\":0,"
	                     "\"served\":0,\"promoted\":1,\"alone\":0}"));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_defaults_when_unset);
	tcase_add_loop_test(tc, test_bool_good, 0,
	                    sizeof(bools) / sizeof(*bools));
	tcase_add_loop_test(tc, test_bool_malformed, 0,
	                    sizeof(bools) / sizeof(*bools));
	tcase_add_test(tc, test_wait_ms_good);
	tcase_add_test(tc, test_wait_ms_malformed);
	tcase_add_test(tc, test_spill_good);
	tcase_add_test(tc, test_spill_malformed);
	tcase_add_test(tc, test_log_good);
	tcase_add_test(tc, test_log_malformed);
	tcase_add_test(tc, test_log_level_governs_warnings);
	tcase_add_test(tc, test_stats_values);
	tcase_add_test(tc, test_lists_parsed);
	tcase_add_test(tc, test_scope_good);
	tcase_add_test(tc, test_scope_malformed);
	suite_add_tcase(s, tc);
	TCase *tg = tcase_create("filters");
	tcase_add_test(tg, test_glob_match);
	tcase_add_test(tg, test_glob_pathological);
	tcase_add_test(tg, test_filter_allows);
	suite_add_tcase(s, tg);
	TCase *ts = tcase_create("stats");
	tcase_add_checked_fixture(ts, setup, teardown);
	tcase_add_test(ts, test_stats_report);
	tcase_add_test(ts, test_stats_crossed);
	suite_add_tcase(s, ts);
	return sf_unit_run(s);
}
