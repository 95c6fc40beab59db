/* test_stream.c - the append-only log that streaming flights share. */
#include "core/sf_stream.h"
#include "sf_unit_main.h"

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
 * for the spilled part or past what is published.  Memory is a 4 KiB
 * chunk, then 64 KiB chunks: 100 KiB takes 4 KiB + 2 x 64 KiB. */
START_TEST(peek_memory_only)
{
	enum { MEM = 4096 + 2 * 65536 };
	sf_stream *s = sf_stream_new(100 * 1024);
	append_pattern(s, 200000, 7000);
	size_t n = 0, off = 0;
	while (off < MEM) {
		const unsigned char *p = sf_stream_peek(s, off, &n);
		ck_assert_ptr_nonnull(p);
		size_t next =
		        off < 4096 ? 4096
		                   : 4096 + ((off - 4096) / 65536 + 1) * 65536;
		ck_assert_uint_le(n, next - off);
		for (size_t i = 0; i < n; i++)
			ck_assert_uint_eq(p[i], pat(off + i));
		off += n;
	}
	ck_assert_uint_eq(off, MEM);
	ck_assert_ptr_null(sf_stream_peek(s, MEM, &n));    /* in the file */
	ck_assert_ptr_null(sf_stream_peek(s, 200000, &n)); /* not published */
	sf_stream_free(s);
}
END_TEST

/* A short stream lives in its small first chunk. */
START_TEST(short_stream_first_chunk)
{
	sf_stream *s = sf_stream_new(256 * 1024);
	append_pattern(s, 5000, 700); /* crosses the 4 KiB boundary */
	expect_range(s, 0, 5000);
	expect_range(s, 4090, 12);
	size_t n;
	ck_assert_ptr_nonnull(sf_stream_peek(s, 4000, &n));
	ck_assert_uint_eq(n, 96);
	sf_stream_free(s);
}
END_TEST

/* No spill file can be made: appends fail past the memory part, and what
 * was published stays readable. */
START_TEST(spill_failure_keeps_published)
{
	setenv("TMPDIR", "/nonexistent-sfshim-stream", 1);
	sf_stream *s = sf_stream_new(4096);
	unsigned char b[3000];
	fill(b, 0, sizeof(b));
	ck_assert_int_eq(sf_stream_append(s, b, sizeof(b)), 0);
	fill(b, 3000, sizeof(b));
	ck_assert_int_eq(sf_stream_append(s, b, sizeof(b)), -1);
	ck_assert_uint_ge(sf_stream_length(s), 3000);
	ck_assert_uint_le(sf_stream_length(s), 4096);
	expect_range(s, 0, sf_stream_length(s));
	ck_assert_int_eq(sf_stream_append(s, b, 1), -1); /* stays broken */
	sf_stream_free(s);
	unsetenv("TMPDIR");
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
	tcase_add_test(tc, short_stream_first_chunk);
	tcase_add_test(tc, spill_failure_keeps_published);
	tcase_add_test(tc, empty_appends);
	suite_add_tcase(su, tc);
	return sf_unit_run(su);
}
