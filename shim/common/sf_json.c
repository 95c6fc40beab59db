/* sf_json.c - see sf_json.h. */
#include "common/sf_json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void sf_json_init(struct sf_json *j, char *buf, size_t cap, int fd)
{
	j->buf = buf;
	j->len = 0;
	j->cap = cap;
	j->fd = fd;
	j->full = false;
	j->failed = false;
}

bool sf_json_flush(struct sf_json *j)
{
	size_t off = 0;
	if (j->fd < 0)
		return !j->full;
	while (off < j->len && !j->failed) {
		ssize_t w = write(j->fd, j->buf + off, j->len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			j->failed = true;
		else
			off += (size_t)w;
	}
	j->len = 0;
	return !j->failed;
}

void sf_json_raw(struct sf_json *j, const char *s, size_t n)
{
	while (n) {
		size_t room = j->cap - j->len;
		if (!room) {
			if (j->fd < 0) {
				j->full = true;
				return;
			}
			sf_json_flush(j);
			if (j->failed)
				return;
			continue;
		}
		size_t k = n < room ? n : room;
		memcpy(j->buf + j->len, s, k);
		j->len += k;
		s += k;
		n -= k;
	}
}

void sf_json_puts(struct sf_json *j, const char *s)
{
	sf_json_raw(j, s, strlen(s));
}

void sf_json_printf(struct sf_json *j, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		j->full = true; /* callers format numbers only: never happens */
		return;
	}
	sf_json_raw(j, tmp, (size_t)n);
}

void sf_json_str(struct sf_json *j, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	if (!s) {
		sf_json_raw(j, "null", 4);
		return;
	}
	sf_json_raw(j, "\"", 1);
	const char *run = s;
	for (;; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			continue;
		sf_json_raw(j, run, (size_t)(s - run));
		if (!c)
			break;
		char esc[6] = { '\\', (char)c };
		size_t n = 2;
		if (c == '\n')
			esc[1] = 'n';
		else if (c == '\t')
			esc[1] = 't';
		else if (c != '"' && c != '\\') {
			esc[1] = 'u';
			esc[2] = esc[3] = '0';
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			n = 6;
		}
		sf_json_raw(j, esc, n);
		run = s + 1;
	}
	sf_json_raw(j, "\"", 1);
}
