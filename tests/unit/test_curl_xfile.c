/* test_curl_xfile.c - the response file of curl flights across processes
 * (sf_curl_xfile.c) on its own: what a leader writes, a reader in another
 * process reads back record for record, only up to the published count,
 * and never past what is whole; the final records rebuild the getinfo and
 * header API answers; a file that is not one (bad magic, a symlink, a
 * record longer than any leader writes) is refused. */
#include "curl/sf_curl_xfile.h"
#include "sf_unit_main.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/sf_xfile.XXXXXX";
static int dfd = -1;

static void setup(void)
{
	strcpy(dir, "/tmp/sf_xfile.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	ck_assert_int_ge(dfd, 0);
}

static void teardown(void)
{
	unlinkat(dfd, "f", 0);
	unlinkat(dfd, "link", 0);
	close(dfd);
	rmdir(dir);
}

static const struct sf_xowner me = { .pid = 1, .start = 7 };

START_TEST(round_trip)
{
	struct sf_xfile w;
	sf_xfile_init(&w);
	ck_assert_int_eq(sf_xfile_open(&w, dfd, "f", true), 1);
	struct stat st;
	ck_assert_int_eq(fstatat(dfd, "f", &st, AT_SYMLINK_NOFOLLOW), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	uint64_t at = sf_xfile_begin(&w, 0, &me);
	ck_assert_uint_eq(at, SF_XFILE_HEAD);

	static const char status[] = "HTTP/1.1 200 OK\r\n";
	char body[16384];
	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (char)(i * 7);
	ck_assert_int_eq(sf_xfile_put(&w, 'H', status, strlen(status)), 0);
	uint64_t after_status = w.len;
	ck_assert_int_eq(sf_xfile_put(&w, 'B', body, sizeof(body)), 0);
	uint64_t after_body = w.len;

	/* The leader's answers. */
	struct sf_curl_reply *snap = sf_curl_reply_new_live(true);
	ck_assert_ptr_nonnull(snap);
	ck_assert_int_eq(sf_curl_reply_add_line(snap, status, strlen(status)),
	                 0);
	ck_assert_int_eq(sf_curl_reply_add_line(snap, "X-A: one\r\n", 10), 0);
	ck_assert_int_eq(sf_curl_reply_add_line(snap, "X-A: two\r\n", 10), 0);
	snap->info = calloc(1, sizeof(*snap->info));
	ck_assert_ptr_nonnull(snap->info);
	snap->info->have[SF_INFO_LONG][2] = 1; /* RESPONSE_CODE */
	snap->info->lng[2] = 200;
	snap->info->have[SF_INFO_STRING][18] = 1; /* CONTENT_TYPE */
	snap->info->str[18] = strdup("text/plain");
	snap->info->have[SF_INFO_STRING][1] = 1; /* a NULL answer */
	snap->info->have[SF_INFO_DOUBLE][3] = 1;
	snap->info->dbl[3] = 0.25;
	snap->info->have[SF_INFO_OFF][8] = 1;
	snap->info->off[8] = (curl_off_t)1 << 40;
	ck_assert_int_eq(sf_xfile_put_final(&w, CURLE_HTTP_RETURNED_ERROR,
	                                    "boom", true, snap),
	                 0);
	uint64_t total = w.len;

	struct sf_xfile r;
	sf_xfile_init(&r);
	ck_assert_int_eq(sf_xfile_open(&r, dfd, "f", false), 1);
	ck_assert(!sf_xfile_seek_epoch(&r, 1));
	ck_assert(sf_xfile_seek_epoch(&r, 0));
	unsigned char type;
	const unsigned char *data;
	size_t len;
	/* Nothing past what was published, and never half a record. */
	ck_assert_int_eq(sf_xfile_next(&r, SF_XFILE_HEAD, &type, &data, &len),
	                 0);
	ck_assert_int_eq(
	        sf_xfile_next(&r, after_status - 1, &type, &data, &len), 0);
	ck_assert_int_eq(sf_xfile_next(&r, after_status, &type, &data, &len),
	                 1);
	ck_assert_int_eq(type, 'H');
	ck_assert_uint_eq(len, strlen(status));
	ck_assert_mem_eq(data, status, len);
	ck_assert_int_eq(sf_xfile_next(&r, after_body - 1, &type, &data, &len),
	                 0);
	ck_assert_int_eq(sf_xfile_next(&r, total, &type, &data, &len), 1);
	ck_assert_int_eq(type, 'B');
	ck_assert_uint_eq(len, sizeof(body));
	ck_assert_mem_eq(data, body, len);

	struct sf_curl_reply *got = sf_curl_reply_new(4096);
	ck_assert_ptr_nonnull(got);
	int k, ends = 0;
	while ((k = sf_xfile_next(&r, total, &type, &data, &len)) > 0) {
		if (type == SF_XREC_END)
			ends++;
		else
			ck_assert_int_eq(
			        sf_xfile_apply_final(got, type, data, len), 0);
	}
	ck_assert_int_eq(k, 0);
	ck_assert_int_eq(ends, 1);
	ck_assert_int_eq(got->code, CURLE_HTTP_RETURNED_ERROR);
	ck_assert_str_eq(got->errmsg, "boom");
	ck_assert(got->retry);
	ck_assert(got->header_api);
	ck_assert_int_eq(got->requests, snap->requests);
	ck_assert_uint_eq(got->nhdrs, 2);
	ck_assert_str_eq(got->hdrs[1].name, "X-A");
	ck_assert_str_eq(got->hdrs[1].value, "two");
	ck_assert_uint_eq(got->hdrs[1].type, snap->hdrs[1].type);
	ck_assert(got->info->have[SF_INFO_LONG][2]);
	ck_assert_int_eq(got->info->lng[2], 200);
	ck_assert_str_eq(got->info->str[18], "text/plain");
	ck_assert(got->info->have[SF_INFO_STRING][1]);
	ck_assert_ptr_null(got->info->str[1]);
	ck_assert(got->info->dbl[3] == 0.25);
	ck_assert(got->info->off[8] == (curl_off_t)1 << 40);
	ck_assert(!got->info->have[SF_INFO_LONG][3]);
	sf_curl_reply_unref(got);
	sf_curl_reply_unref(snap);

	/* A leader that takes over appends a new epoch: readers start it
	 * from where the header says, past the old one's bytes. */
	struct sf_xowner next = { .pid = 2, .start = 9 };
	uint64_t at2 = sf_xfile_begin(&r, 1, &next);
	ck_assert_uint_eq(at2, (uint64_t)1 << SF_XFILE_EPOCH_SHIFT | total);
	ck_assert_int_eq(sf_xfile_put(&r, 'H', "x\r\n", 3), 0);
	ck_assert(sf_xfile_seek_epoch(&w, 1));
	ck_assert_int_eq(sf_xfile_next(&w, r.len, &type, &data, &len), 1);
	ck_assert_int_eq(type, 'H');
	ck_assert_mem_eq(data, "x\r\n", 3);
	sf_xfile_close(&r);
	sf_xfile_close(&w);
}
END_TEST

/* The name goes when the flight is over and every follower is counted,
 * whoever comes last: the leader, or a follower. */
START_TEST(name_life)
{
	struct sf_xfile l, a, b;
	sf_xfile_init(&l);
	sf_xfile_init(&a);
	sf_xfile_init(&b);
	ck_assert_int_eq(sf_xfile_open(&l, dfd, "f", true), 1);
	ck_assert_int_eq(sf_xfile_open(&a, dfd, "f", false), 1);
	ck_assert(!sf_xfile_count(&a));
	ck_assert(!sf_xfile_count(&a)); /* once */
	ck_assert(!sf_xfile_all_counted(&l, 2));
	ck_assert(!sf_xfile_finish(&l, 2)); /* b not yet */
	ck_assert_int_eq(sf_xfile_open(&b, dfd, "f", false), 1);
	ck_assert(sf_xfile_count(&b)); /* b last: it removes the name */
	sf_xfile_close(&b);
	sf_xfile_close(&a);
	sf_xfile_close(&l);
	unlinkat(dfd, "f", 0);

	/* The leader last.  (A hold counts once, across close and reopen:
	 * these are new holds.) */
	sf_xfile_init(&l);
	sf_xfile_init(&a);
	ck_assert_int_eq(sf_xfile_open(&l, dfd, "f", true), 1);
	ck_assert_int_eq(sf_xfile_open(&a, dfd, "f", false), 1);
	ck_assert(!sf_xfile_count(&a));
	ck_assert(sf_xfile_all_counted(&l, 1));
	ck_assert(sf_xfile_finish(&l, 1));
	sf_xfile_close(&a);
	sf_xfile_close(&l);

	/* A file whose leader is gone is an orphan; one being set up is
	 * not. */
	ck_assert(!sf_xfile_orphaned(dfd, "f"));
	struct sf_xowner gone = { .pid = 0x3fffffff, .start = 1 };
	ck_assert_int_eq(sf_xfile_open(&l, dfd, "f", false), 1);
	ck_assert_uint_ne(sf_xfile_begin(&l, 0, &gone), 0);
	ck_assert(sf_xfile_orphaned(dfd, "f"));
	struct sf_xowner self = sf_xowner_self();
	sf_xfile_begin(&l, 1, &self);
	ck_assert(!sf_xfile_orphaned(dfd, "f"));
	sf_xfile_close(&l);
}
END_TEST

START_TEST(refusals)
{
	struct sf_xfile r;
	sf_xfile_init(&r);
	/* Not there yet. */
	ck_assert_int_eq(sf_xfile_open(&r, dfd, "f", false), 0);
	/* Its header not written yet. */
	int fd = openat(dfd, "f", O_WRONLY | O_CREAT, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "SFXC", 4), 4);
	ck_assert_int_eq(sf_xfile_open(&r, dfd, "f", false), 0);
	/* Not one of ours. */
	char junk[64];
	memset(junk, 'x', sizeof(junk));
	ck_assert_int_eq(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	ck_assert_int_eq(pwrite(fd, "NOPE", 4, 0), 4);
	ck_assert_int_eq(sf_xfile_open(&r, dfd, "f", false), -1);
	ck_assert_int_eq(sf_xfile_open(&r, dfd, "f", true), -1);
	close(fd);
	unlinkat(dfd, "f", 0);
	/* Never through a symlink. */
	ck_assert_int_eq(symlinkat("/tmp/sf_xfile_target", dfd, "link"), 0);
	ck_assert_int_eq(sf_xfile_open(&r, dfd, "link", true), -1);
	ck_assert_int_eq(access("/tmp/sf_xfile_target", F_OK), -1);
	ck_assert_int_eq(sf_xfile_open(&r, dfd, "link", false), -1);

	/* A record longer than any leader writes. */
	struct sf_xfile w;
	sf_xfile_init(&w);
	ck_assert_int_eq(sf_xfile_open(&w, dfd, "f", true), 1);
	ck_assert_uint_ne(sf_xfile_begin(&w, 0, &me), 0);
	unsigned char head[5] = { 'B', 0xff, 0xff, 0xff, 0x7f };
	ck_assert_int_eq(pwrite(w.fd, head, 5, (off_t)w.len), 5);
	uint64_t total = w.len + 5;
	sf_xfile_close(&w);
	ck_assert_int_eq(sf_xfile_open(&r, dfd, "f", false), 1);
	ck_assert(sf_xfile_seek_epoch(&r, 0));
	unsigned char type;
	const unsigned char *data;
	size_t len;
	ck_assert_int_eq(sf_xfile_next(&r, total, &type, &data, &len), -1);
	sf_xfile_close(&r);

	/* Malformed final records. */
	struct sf_curl_reply *got = sf_curl_reply_new(4096);
	ck_assert_int_eq(sf_xfile_apply_final(got, 'I',
	                                      (const void *)"\x09\x01", 2),
	                 -1);
	ck_assert_int_eq(sf_xfile_apply_final(got, 'X',
	                                      (const void *)"123456789", 9),
	                 -1);
	ck_assert_int_eq(sf_xfile_apply_final(got, 'Q', NULL, 0), -1);
	sf_curl_reply_unref(got);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("curl_xfile");
	TCase *tc = tcase_create("xfile");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, round_trip);
	tcase_add_test(tc, name_life);
	tcase_add_test(tc, refusals);
	suite_add_tcase(s, tc);
	return sf_unit_run(s);
}
