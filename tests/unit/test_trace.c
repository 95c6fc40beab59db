/* test_trace.c - the pieces of the flight trace and the JSON stats that
 * need no preloading: JSON escaping, key redaction, the new variables, the
 * "saved" bookkeeping, and the ring written as a trace document (in a
 * forked child, through a FIFO, as its exit handler writes it). */
#include "common/sf_config.h"
#include "common/sf_json.h"
#include "common/sf_log.h"
#include "common/sf_stats.h"
#include "common/sf_trace.h"
#include "sf_unit_main.h"

#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const *env;

static const char *fake_get(const char *name)
{
	for (const char *const *p = env; p && p[0]; p += 2)
		if (strcmp(p[0], name) == 0)
			return p[1];
	return NULL;
}

/* Lines the log got while loading env into c. */
static unsigned load(struct sf_config *c, const char *const *e)
{
	int p[2];
	ck_assert_int_eq(pipe2(p, O_NONBLOCK), 0);
	sf_log_set_fd(p[1]);
	env = e;
	sf_config_load(c, fake_get);
	sf_log_set_fd(STDERR_FILENO);
	char buf[4096];
	ssize_t n = read(p[0], buf, sizeof(buf));
	close(p[0]);
	close(p[1]);
	unsigned lines = 0;
	for (ssize_t i = 0; i < n; i++)
		lines += buf[i] == '\n';
	return lines;
}

static const char *json_of(const char *s)
{
	static char out[256];
	struct sf_json j;
	sf_json_init(&j, out, sizeof(out) - 1, -1);
	sf_json_str(&j, s);
	ck_assert(!j.full);
	out[j.len] = '\0';
	return out;
}

START_TEST(test_json_escapes)
{
	ck_assert_str_eq(json_of("plain.example"), "\"plain.example\"");
	ck_assert_str_eq(json_of("a\"b\\c\nd\te\x01\x7f\xc3\xa9"),
	                 "\"a\\\"b\\\\c\\nd\\te\\u0001\\u007f\\u00c3\\u00a9\"");
	ck_assert_str_eq(json_of(""), "\"\"");
	ck_assert_str_eq(json_of(NULL), "null");

	/* A fixed buffer that is too small says so. */
	char small[4];
	struct sf_json j;
	sf_json_init(&j, small, sizeof(small), -1);
	sf_json_str(&j, "abcdef");
	ck_assert(j.full);
	ck_assert_uint_eq(j.len, sizeof(small));
}
END_TEST

static const char *redact(const char *s)
{
	static char out[SF_TRACE_LABEL];
	size_t n = sf_redact_label(out, sizeof(out), s);
	ck_assert_uint_eq(n, strlen(out));
	return out;
}

START_TEST(test_redaction)
{
	/* common's sf_text_clean() does the work... */
	ck_assert_str_eq(redact("www.example.org"), "www.example.org");
	ck_assert_str_eq(redact("http://example.org/a/b"),
	                 "http://example.org/a/b");
	ck_assert_str_eq(redact("https://user:pw@example.org:8443/p?tok=s#f"),
	                 "https://[redacted]@example.org:8443/p?[redacted]"
	                 "#[redacted]");
	ck_assert_str_eq(redact("http://a@b@example.org"),
	                 "http://[redacted]@example.org");
	ck_assert_str_eq(redact("http://example.org/x@y"),
	                 "http://example.org/x@y");
	ck_assert_str_eq(redact("evil\nname\x1b"), "evil\\nname\\x1b");
	ck_assert_str_eq(redact(NULL), "");
	/* ...and libcurl's scheme-less URLs are cleaned too. */
	ck_assert_str_eq(redact("user:pw@h.example/p?tok=s"),
	                 "[redacted]@h.example/p?[redacted]");
	ck_assert_str_eq(redact("h.example/p#frag"), "h.example/p#[redacted]");
	ck_assert_str_eq(redact("h.example:8080"), "h.example:8080");
	char big[6000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "user:", 5);
	big[5500] = '@';
	/* A long password is gone whole, however far its '@' lies. */
	ck_assert(strncmp(redact(big), "[redacted]@x", 12) == 0);
	ck_assert_ptr_null(strstr(redact(big), "user"));
	/* Cut to the room given, NUL included. */
	char out[8];
	ck_assert_uint_eq(sf_redact_label(out, sizeof(out), "abcdefghij"), 7);
	ck_assert_str_eq(out, "abcdefg");
	ck_assert_uint_eq(sf_redact_label(out, 1, "abc"), 0);
	ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(test_trace_variables)
{
	struct sf_config c;
	ck_assert_uint_eq(load(&c, (const char *const[]){ NULL }), 0);
	ck_assert_ptr_null(c.trace);
	ck_assert_uint_eq(c.trace_events, SF_TRACE_EVENTS_DEFAULT);
	sf_config_free(&c);

	ck_assert_uint_eq(load(&c, (const char *const[]){ "SFSHIM_TRACE",
	                                                  "/tmp/t-%p.json",
	                                                  "SFSHIM_TRACE_EVENTS",
	                                                  "1k", NULL }),
	                  0);
	ck_assert_str_eq(c.trace, "/tmp/t-%p.json");
	ck_assert_uint_eq(c.trace_events, 1024);
	sf_config_free(&c);

	static const char *const bad[] = { "abc", "8", "-5", "99999999999",
		                           "16x" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_uint_eq(
		        load(&c, (const char *const[]){ "SFSHIM_TRACE_EVENTS",
		                                        bad[i], NULL }),
		        1);
		ck_assert_uint_eq(c.trace_events, SF_TRACE_EVENTS_DEFAULT);
		sf_config_free(&c);
	}

	ck_assert_uint_eq(
	        load(&c, (const char *const[]){ "SFSHIM_TRACE", "off", NULL }),
	        0);
	ck_assert_ptr_null(c.trace);
	sf_config_free(&c);

	ck_assert_uint_eq(load(&c, (const char *const[]){ "SFSHIM_STATS",
	                                                  "json:/tmp/s.jsonl",
	                                                  NULL }),
	                  0);
	ck_assert_str_eq(c.stats, "json:/tmp/s.jsonl");
	sf_config_free(&c);

	ck_assert_uint_eq(load(&c, (const char *const[]){ "SFSHIM_STATS",
	                                                  "json:", NULL }),
	                  1);
	ck_assert_ptr_null(c.stats);
	sf_config_free(&c);
}
END_TEST

static unsigned long long json_number(const char *doc, const char *api,
                                      const char *name)
{
	char pat[64];
	const char *a = strstr(doc, api);
	ck_assert_ptr_nonnull(a);
	snprintf(pat, sizeof(pat), "\"%s\":", name);
	const char *p = strstr(a, pat);
	ck_assert_ptr_nonnull(p);
	return strtoull(p + strlen(pat), NULL, 10);
}

/* "saved": for each follower that got the answer, the duration of the
 * leader's call, whichever of the two ends first. */
START_TEST(test_saved_time)
{
	/* Flight 7: one follower ends before its leader, one after. */
	sf_stats_timed(SF_API_DNS, SF_PATH_FOLLOWER, 7, 30);
	sf_stats_timed(SF_API_DNS, SF_PATH_LEADER, 7, 100);
	sf_stats_timed(SF_API_DNS, SF_PATH_FOLLOWER, 7, 40);
	/* A follower that gave up saves nothing, nor waited for an answer. */
	sf_stats_timed(SF_API_DNS, SF_PATH_EXPIRED, 7, 500);
	/* Flight 9 (curl): a leader that quit, then a promoted follower whose
	 * answer the last follower got. */
	sf_stats_timed(SF_API_CURL, SF_PATH_LEADER, 9, 1000);
	sf_stats_timed(SF_API_CURL, SF_PATH_PROMOTED, 9, 3000);
	sf_stats_timed(SF_API_CURL, SF_PATH_FOLLOWER, 9, 2000);
	/* No flight: nothing to meet. */
	sf_stats_timed(SF_API_CURL, SF_PATH_FOLLOWER, 0, 5);
	/* Counters: 1 leader and 2 followers, one of them expired. */
	sf_count_path(SF_API_DNS, SF_PATH_LEADER);
	sf_count_path(SF_API_DNS, SF_PATH_FOLLOWER);
	sf_count_path(SF_API_DNS, SF_PATH_EXPIRED);

	char buf[16384];
	size_t n = sf_stats_json(buf, sizeof(buf) - 1);
	ck_assert_uint_gt(n, 0);
	buf[n] = '\0';
	ck_assert_int_eq(buf[0], '{');
	ck_assert_int_eq(buf[n - 1], '\n');
	ck_assert_ptr_null(memchr(buf, '\n', n - 1)); /* one line */
	ck_assert_uint_eq(json_number(buf, "\"dns\"", "waited_ns"), 70);
	ck_assert_uint_eq(json_number(buf, "\"dns\"", "saved_ns"), 200);
	ck_assert_uint_eq(json_number(buf, "\"curl\"", "waited_ns"), 2005);
	ck_assert_uint_eq(json_number(buf, "\"curl\"", "saved_ns"), 3000);
	ck_assert_ptr_nonnull(
	        strstr(buf, "\"dns\":{\"calls\":3,\"flights\":1,"));
	ck_assert_ptr_nonnull(
	        strstr(buf, "\"saved_calls\":1,\"dedup\":0.3333,"));

	/* Too small a buffer: nothing rather than half an object. */
	ck_assert_uint_eq(sf_stats_json(buf, 100), 0);
}
END_TEST

/* A busiest key is redacted before it is cut to the table's width: a
 * password longer than the width must not leak its first bytes. */
START_TEST(test_busiest_redacted_whole)
{
	char url[512];
	char pw[301];
	memset(pw, 'x', 300);
	pw[300] = '\0';
	snprintf(url, sizeof(url), "http://user:%s@h.example/p?tok=secret", pw);
	sf_stats_flight(SF_API_CURL, url, 3);
	char buf[16384];
	size_t n = sf_stats_json(buf, sizeof(buf) - 1);
	ck_assert_uint_gt(n, 0);
	buf[n] = '\0';
	ck_assert_ptr_null(strstr(buf, "xxxx"));
	ck_assert_ptr_null(strstr(buf, "secret"));
	ck_assert_ptr_nonnull(strstr(buf, "{\"api\":\"curl\",\"key\":\"http://"
	                                  "[redacted]@h.example/p?[redacted]\","
	                                  "\"flights\":1,\"followers\":3}"));
}
END_TEST

/* A child with a ring of 16 records 20 calls and exits; its exit handler
 * writes the trace: private, whole, redacted. */
START_TEST(test_ring_document)
{
	char dir[] = "/tmp/sf-trace-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char path[64];
	snprintf(path, sizeof(path), "%s/trace.json", dir);

	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct sf_config c = { 0 };
		c.trace = path;
		c.trace_events = 16;
		sf_trace_configure(&c);
		if (!sf_trace_on)
			_exit(3);
		uint64_t t = sf_trace_begin();
		/* 4 calls that fall out of the ring, then 1 leader, 12
		 * followers, a retried follower and two pass-throughs. */
		for (int i = 0; i < 4; i++)
			sf_trace_path(t, SF_API_DNS, SF_PATH_LEADER, 100 + i,
			              "old.example");
		sf_trace_path(t, SF_API_CURL, SF_PATH_LEADER, 5,
		              "http://u:secret@h.example/p?token=secret");
		for (int i = 0; i < 12; i++)
			sf_trace_path(
			        t, SF_API_CURL, SF_PATH_FOLLOWER, 5,
			        "http://u:secret@h.example/p?token=secret");
		sf_trace_path(t, SF_API_CURL, SF_PATH_RETRIED, 5,
		              "http://h.example/p");
		sf_trace_pass(t, SF_API_DNS, SF_PASS_NUMERIC, "127.0.0.1");
		sf_trace_pass(t, SF_API_CURL, SF_PASS_UNSUPPORTED,
		              "ftp://h.example/\"q\"");
		exit(0); /* the exit handler writes the trace */
	}
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	struct stat sb;
	ck_assert_int_eq(lstat(path, &sb), 0);
	ck_assert(S_ISREG(sb.st_mode));
	ck_assert_uint_eq(sb.st_mode & 0777, 0600);
	int fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	static char doc[65536];
	size_t n = 0;
	ssize_t r;
	while ((r = read(fd, doc + n, sizeof(doc) - 1 - n)) > 0)
		n += (size_t)r;
	doc[n] = '\0';
	close(fd);
	unlink(path);
	ck_assert_int_eq(rmdir(dir), 0); /* no temporary file left */

	ck_assert_ptr_nonnull(strstr(doc, "\"events\":16,\"dropped\":4,"
	                                  "\"lost\":0,\"capacity\":16,"
	                                  "\"flows\":12"));
	ck_assert_ptr_null(strstr(doc, "old.example"));
	ck_assert_ptr_null(strstr(doc, "secret"));
	ck_assert_ptr_nonnull(strstr(doc,
	                             "\"key\":\"http://[redacted]@h.example/p?"
	                             "[redacted]\""));
	ck_assert_ptr_nonnull(strstr(doc, "\"cause\":\"numeric\""));
	ck_assert_ptr_nonnull(strstr(doc, "\"cause\":\"unsupported\""));
	ck_assert_ptr_nonnull(strstr(doc, "ftp://h.example/\\\"q\\\""));
	unsigned x = 0, s = 0, f = 0;
	for (const char *p = doc; (p = strstr(p, "{\"ph\":\"")); p++) {
		x += p[7] == 'X';
		s += p[7] == 's';
		f += p[7] == 'f';
	}
	ck_assert_uint_eq(x, 16);
	ck_assert_uint_eq(s, 12);
	ck_assert_uint_eq(f, 12);
}
END_TEST

/* A trace name that is a FIFO or a device is left alone (the exit must not
 * hang on it, nor replace it); one that is a symbolic link is replaced as
 * a link, never written through. */
static int trace_one_call(const char *path)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		struct sf_config c = { 0 };
		c.trace = (char *)path;
		c.trace_events = 16;
		int null = open("/dev/null", O_WRONLY);
		sf_log_set_fd(null); /* the one line saying why not */
		sf_trace_configure(&c);
		sf_trace_path(sf_trace_begin(), SF_API_DNS, SF_PATH_LEADER, 1,
		              "h.example");
		exit(0);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

START_TEST(test_trace_file_safety)
{
	char dir[] = "/tmp/sf-trace-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char fifo[64], link[64], victim[64];
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	snprintf(link, sizeof(link), "%s/link", dir);
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	ck_assert_int_eq(trace_one_call(fifo), 0); /* returns: no hang */
	struct stat sb;
	ck_assert_int_eq(lstat(fifo, &sb), 0);
	ck_assert(S_ISFIFO(sb.st_mode));

	int v = open(victim, O_WRONLY | O_CREAT, 0644);
	ck_assert_int_ge(v, 0);
	ck_assert_int_eq(write(v, "keep", 4), 4);
	close(v);
	ck_assert_int_eq(symlink(victim, link), 0);
	ck_assert_int_eq(trace_one_call(link), 0);
	ck_assert_int_eq(lstat(link, &sb), 0);
	ck_assert(S_ISREG(sb.st_mode)); /* the link itself was replaced */
	ck_assert_int_eq(stat(victim, &sb), 0);
	ck_assert_int_eq(sb.st_size, 4); /* and its target left alone */

	unlink(fifo);
	unlink(link);
	unlink(victim);
	ck_assert_int_eq(rmdir(dir), 0); /* no temporary file left */
}
END_TEST

/* Writers a whole ring apart never mix their fields in one slot: 8 threads
 * record 20000 calls each into a ring of 16, every call's fields derived
 * from one number; each event in the document must be whole.  (A stress
 * test: on two cores the window in which two writers meet in one slot is
 * a few stores wide, so without the slot claim it rarely fails.) */
enum { WRITERS = 8, PER_WRITER = 20000 };

static void *writer_main(void *p)
{
	uint64_t base = (uint64_t)(uintptr_t)p * PER_WRITER;
	for (uint64_t v = base + 1; v <= base + PER_WRITER; v++) {
		char key[32];
		snprintf(key, sizeof(key), "k%llx", (unsigned long long)v);
		/* t0 = v us: the slice says "ts":v.000 */
		sf_trace_end(v * 1000, SF_API_DNS, SF_PATH_LEADER, v, key);
	}
	return NULL;
}

static int check_whole(void)
{
	struct sf_config c = { 0 };
	c.trace = "/nonexistent/never-written";
	c.trace_events = 16;
	sf_trace_configure(&c);
	pthread_t t[WRITERS];
	for (uintptr_t i = 0; i < WRITERS; i++)
		if (pthread_create(&t[i], NULL, writer_main, (void *)i))
			return 10;
	for (int i = 0; i < WRITERS; i++)
		pthread_join(t[i], NULL);
	FILE *f = tmpfile();
	if (!f || !sf_trace_write(fileno(f)))
		return 11;
	rewind(f);
	char line[1024];
	unsigned events = 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strstr(line, "\"ph\":\"X\""))
			continue;
		unsigned long long ts, key, flight;
		const char *p = strstr(line, "\"ts\":");
		const char *k = strstr(line, "\"key\":\"k");
		const char *fl = strstr(line, "\"flight\":\"");
		if (!p || !k || !fl ||
		    sscanf(p, "\"ts\":%llu.000,", &ts) != 1 ||
		    sscanf(k, "\"key\":\"k%llx\"", &key) != 1 ||
		    sscanf(fl, "\"flight\":\"%llx\"", &flight) != 1)
			return 12;
		if (ts != key || key != flight)
			return 13; /* fields of two calls in one event */
		events++;
	}
	fclose(f);
	return events >= 1 && events <= 16 ? 0 : 14;
}

START_TEST(test_ring_writers_never_mix)
{
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(check_whole());
	int st;
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st));
	ck_assert_int_eq(WEXITSTATUS(st), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("trace");
	TCase *tc = tcase_create("trace");
	tcase_add_test(tc, test_json_escapes);
	tcase_add_test(tc, test_redaction);
	tcase_add_test(tc, test_trace_variables);
	tcase_add_test(tc, test_saved_time);
	tcase_add_test(tc, test_busiest_redacted_whole);
	tcase_add_test(tc, test_ring_document);
	tcase_add_test(tc, test_trace_file_safety);
	tcase_add_test(tc, test_ring_writers_never_mix);
	suite_add_tcase(s, tc);
	return sf_unit_run(s);
}
