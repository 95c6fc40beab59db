/* sf_log.c - formats a whole line first and writes it with one write(2), so
 * that lines from concurrent threads never interleave, and never touches
 * stdio: the host program owns stderr's FILE and its lock. */
#include "common/sf_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int sf_log_level = SF_LOG_ERROR;
static int log_fd = STDERR_FILENO;

void sf_log_set_fd(int fd)
{
	log_fd = fd;
}

void sf_log_emit(const char *fmt, ...)
{
	int saved = errno; /* logging must never change what the host sees */
	char line[1024];
	int n = snprintf(line, sizeof(line), "sfshim[%d]: ", (int)getpid());
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	size_t len = (size_t)n + (size_t)m;
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2; /* truncated, still one line */
	line[len++] = '\n';
	ssize_t w = write(log_fd, line, len);
	(void)w;
	errno = saved;
}
