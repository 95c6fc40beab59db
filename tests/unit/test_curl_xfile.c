/* test_curl_xfile.c - the response file of curl flights across processes
 * (sf_curl_xfile.c) on its own: what a leader writes, a reader in another
 * process reads back record for record, only up to the published count,
 * and never past what is whole; the final records rebuild the getinfo and
 * header API answers; a file that is not one (bad magic, a symlink, a
 * record longer than any leader writes) is refused. */
#include "curl/sf_curl_xfile.h"

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

START_TEST(round_trip)
{
	struct sf_xfile_writer w;
	ck_assert_int_eq(sf_xfile_create(&w, dfd, "f", 3), 0);
	struct stat st;
	ck_assert_int_eq(fstatat(dfd, "f", &st, AT_SYMLINK_NOFOLLOW), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	ck_assert_uint_eq(w.len, SF_XFILE_HEAD);

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
	sf_xfile_close(&w);

	struct sf_xfile_reader r;
	sf_xfile_reader_init(&r);
	ck_assert_int_eq(sf_xfile_open(&r, dfd, "f"), 1);
	ck_assert_uint_eq(r.epoch, 3);
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
	sf_xfile_reader_close(&r);
	free(r.buf);
}
END_TEST

START_TEST(refusals)
{
	struct sf_xfile_reader r;
	sf_xfile_reader_init(&r);
	/* Not there yet. */
	ck_assert_int_eq(sf_xfile_open(&r, dfd, "f"), 0);
	/* Its header not written yet. */
	int fd = openat(dfd, "f", O_WRONLY | O_CREAT, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "SFXC", 4), 4);
	ck_assert_int_eq(sf_xfile_open(&r, dfd, "f"), 0);
	/* Not one of ours. */
	ck_assert_int_eq(write(fd, "xxxxxxxxxxxxxxxx", 16), 16);
	ck_assert_int_eq(pwrite(fd, "NOPE", 4, 0), 4);
	ck_assert_int_eq(sf_xfile_open(&r, dfd, "f"), -1);
	close(fd);
	/* Exclusive, and never through a symlink. */
	struct sf_xfile_writer w;
	ck_assert_int_eq(sf_xfile_create(&w, dfd, "f", 0), -1);
	ck_assert_int_eq(errno, EEXIST);
	unlinkat(dfd, "f", 0);
	ck_assert_int_eq(symlinkat("/tmp/sf_xfile_target", dfd, "link"), 0);
	ck_assert_int_eq(sf_xfile_create(&w, dfd, "link", 0), -1);
	ck_assert_int_eq(access("/tmp/sf_xfile_target", F_OK), -1);
	ck_assert_int_eq(sf_xfile_open(&r, dfd, "link"), -1);

	/* A record longer than any leader writes. */
	ck_assert_int_eq(sf_xfile_create(&w, dfd, "f", 1), 0);
	unsigned char head[5] = { 'B', 0xff, 0xff, 0xff, 0x7f };
	ck_assert_int_eq(write(w.fd, head, 5), 5);
	uint64_t total = w.len + 5;
	sf_xfile_close(&w);
	ck_assert_int_eq(sf_xfile_open(&r, dfd, "f"), 1);
	unsigned char type;
	const unsigned char *data;
	size_t len;
	ck_assert_int_eq(sf_xfile_next(&r, total, &type, &data, &len), -1);
	sf_xfile_reader_close(&r);

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
	free(r.buf);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("curl_xfile");
	TCase *tc = tcase_create("xfile");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, round_trip);
	tcase_add_test(tc, refusals);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
