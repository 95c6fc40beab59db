/* sf_unit_log.h - the shim's log captured in a pipe, for unit tests that
 * assert exactly which lines a call wrote (test_config.c, test_safety.c).
 *
 * setup() points sf_log at a non-blocking pipe and sets the level a
 * process starts with; read_log() drains what was written into logbuf
 * (NUL-terminated) and counts its lines in nlines; teardown() puts stderr
 * back.  The including file may set SF_UNIT_LOGBUF_SIZE (default 16384):
 * past that, the rest of the log stays in the pipe. */
#ifndef SF_UNIT_LOG_H
#define SF_UNIT_LOG_H

#include "common/sf_log.h"

#include <check.h>
#include <fcntl.h>
#include <stddef.h>
#include <unistd.h>

#ifndef SF_UNIT_LOGBUF_SIZE
#define SF_UNIT_LOGBUF_SIZE 16384
#endif

static int logp[2];
static char logbuf[SF_UNIT_LOGBUF_SIZE];
static unsigned nlines;

static void setup(void)
{
	ck_assert_int_eq(pipe2(logp, O_NONBLOCK), 0);
	sf_log_set_fd(logp[1]);
	sf_log_level = SF_LOG_ERROR; /* the level a process starts with */
}

static void teardown(void)
{
	sf_log_set_fd(STDERR_FILENO);
	close(logp[0]);
	close(logp[1]);
}

/* Drains the pipe into logbuf and counts its lines. */
static void read_log(void)
{
	size_t n = 0;
	ssize_t r;
	while (n < sizeof(logbuf) - 1 &&
	       (r = read(logp[0], logbuf + n, sizeof(logbuf) - 1 - n)) > 0)
		n += (size_t)r;
	logbuf[n] = '\0';
	nlines = 0;
	for (size_t i = 0; i < n; i++)
		nlines += logbuf[i] == '\n';
}

#endif
