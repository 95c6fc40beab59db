/* sf_log.c - formats a whole line first and writes it with one write(2), so
 * that lines from concurrent threads never interleave, and never touches
 * stdio: the host program owns stderr's FILE and its lock.  Every message
 * passes through sf_text_clean() on its way out: URL secrets are redacted
 * and control characters escaped here, once, whatever the call site. */
#include "common/sf_log.h"

#include "common/sf_text.h"

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
	char raw[1024], line[1024];
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	if ((size_t)m >= sizeof(raw))
		m = (int)sizeof(raw) - 1; /* truncated, still one line */
	int n = snprintf(line, sizeof(line), "sfshim[%d]: ", (int)getpid());
	size_t len = (size_t)n + sf_text_clean(line + n,
	                                       sizeof(line) - 1 - (size_t)n,
	                                       raw, (size_t)m);
	line[len++] = '\n';
	ssize_t w = write(log_fd, line, len);
	(void)w;
	errno = saved;
}
