/* test_stream.c - the append-only log that streaming flights share. */
#include "core/sf_stream.h"

#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Byte i of the test pattern: position-dependent, so misplaced bytes show. */
static unsigned char pat(size_t i)
{
	return (unsigned char)(i * 131u + (i >> 16));
}

static void fill(unsigned char *b, size_t off, size_t n)
{
	for (size_t i = 0; i < n; i++)
		b[i] = pat(off + i);
}

/* Reads [off, off+n) back, possibly over several calls. */
static void expect_range(const sf_stream *s, size_t off, size_t n)
{
	unsigned char *b = malloc(n);
	size_t got = 0;
	while (got < n) {
		ssize_t r = sf_stream_read(s, off + got, b + got, n - got);
		ck_assert_int_gt(r, 0);
		got += (size_t)r;
	}
	for (size_t i = 0; i < n; i++)
		ck_assert_uint_eq(b[i], pat(off + i));
	free(b);
}

static void append_pattern(sf_stream *s, size_t total, size_t piece)
{
	unsigned char *b = malloc(piece);
	for (size_t off = 0; off < total; off += piece) {
		size_t n = total - off < piece ? total - off : piece;
		fill(b, off, n);
		ck_assert_int_eq(sf_stream_append(s, b, n), 0);
	}
	free(b);
}

START_TEST(memory_only)
{
	sf_stream *s = sf_stream_new(1 << 20);
	append_pattern(s, 300000, 16384);
	ck_assert_uint_eq(sf_stream_length(s), 300000);
	expect_range(s, 0, 300000);
	expect_range(s, 65530, 20); /* across a chunk boundary */
	unsigned char b[8];
	ck_assert_int_eq(sf_stream_read(s, 300000, b, sizeof(b)), 0);
	sf_stream_free(s);
}
END_TEST

START_TEST(spills_to_file)
{
	/* 100 KiB in memory (rounded to whole chunks), the rest on disk. */
	sf_stream *s = sf_stream_new(100 * 1024);
	append_pattern(s, 3 * 1024 * 1024 + 7, 10000);
	ck_assert_uint_eq(sf_stream_length(s), 3 * 1024 * 1024 + 7);
	expect_range(s, 0, 3 * 1024 * 1024 + 7);
	expect_range(s, 131070, 10); /* straddles memory and file */
	sf_stream_free(s);
}
END_TEST

START_TEST(zero_spill_is_all_file)
{
	sf_stream *s = sf_stream_new(0);
	append_pattern(s, 50000, 999);
	expect_range(s, 0, 50000);
	sf_stream_free(s);
}
END_TEST

/* A reader that follows a writer must only ever see published, correct
 * bytes (TSan checks the publication order). */
struct reader_arg {
	sf_stream *s;
	size_t total;
	pthread_barrier_t *start;
};

static void *reader(void *p)
{
	struct reader_arg *a = p;
	unsigned char b[4096];
	size_t off = 0;
	pthread_barrier_wait(a->start);
	while (off < a->total) {
		ssize_t r = sf_stream_read(a->s, off, b, sizeof(b));
		ck_assert_int_ge(r, 0);
		for (ssize_t i = 0; i < r; i++)
			ck_assert_uint_eq(b[i], pat(off + (size_t)i));
		off += (size_t)r;
		if (!r)
			sched_yield();
	}
	return NULL;
}

START_TEST(concurrent_readers)
{
	enum { READERS = 4, TOTAL = 2 * 1024 * 1024 };
	sf_stream *s = sf_stream_new(256 * 1024);
	pthread_barrier_t start;
	pthread_barrier_init(&start, NULL, READERS + 1);
	struct reader_arg a = { s, TOTAL, &start };
	pthread_t t[READERS];
	for (int i = 0; i < READERS; i++)
		pthread_create(&t[i], NULL, reader, &a);
	pthread_barrier_wait(&start);
	append_pattern(s, TOTAL, 16384);
	for (int i = 0; i < READERS; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&start);
	sf_stream_free(s);
}
END_TEST

/* Peeking gives the in-memory bytes in place, chunk by chunk, and nothing
 * for the spilled part or past what is published. */
START_TEST(peek_memory_only)
{
	sf_stream *s = sf_stream_new(100 * 1024); /* two 64 KiB chunks */
	append_pattern(s, 200000, 7000);
	size_t n = 0, off = 0;
	while (off < 131072) {
		const unsigned char *p = sf_stream_peek(s, off, &n);
		ck_assert_ptr_nonnull(p);
		ck_assert_uint_le(n, 65536 - off % 65536);
		for (size_t i = 0; i < n; i++)
			ck_assert_uint_eq(p[i], pat(off + i));
		off += n;
	}
	ck_assert_uint_eq(off, 131072);
	ck_assert_ptr_null(sf_stream_peek(s, 131072, &n)); /* in the file */
	ck_assert_ptr_null(sf_stream_peek(s, 200000, &n)); /* not published */
	sf_stream_free(s);
}
END_TEST

START_TEST(empty_appends)
{
	sf_stream *s = sf_stream_new(1024);
	ck_assert_int_eq(sf_stream_append(s, "", 0), 0);
	ck_assert_uint_eq(sf_stream_length(s), 0);
	sf_stream_free(s);
	sf_stream_free(NULL);
}
END_TEST

int main(void)
{
	Suite *su = suite_create("stream");
	TCase *tc = tcase_create("stream");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, memory_only);
	tcase_add_test(tc, spills_to_file);
	tcase_add_test(tc, zero_spill_is_all_file);
	tcase_add_test(tc, concurrent_readers);
	tcase_add_test(tc, peek_memory_only);
	tcase_add_test(tc, empty_appends);
	suite_add_tcase(su, tc);
	SRunner *sr = srunner_create(su);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
