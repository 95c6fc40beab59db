/* sf_log.h - one line per event on stderr, prefixed "sfshim[pid]: ". */
#ifndef SF_LOG_H
#define SF_LOG_H

enum sf_log_level {
	SF_LOG_OFF = 0,
	SF_LOG_ERROR = 1,
	SF_LOG_INFO = 2,
	SF_LOG_DEBUG = 3,
};

/* Read on every hooked call, written once by the configuration. */
extern int sf_log_level;

void sf_log_set_fd(int fd); /* tests capture the log through a pipe */
void sf_log_emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define sf_log(level, ...)                                        \
	do {                                                      \
		if (__builtin_expect((level) <= sf_log_level, 0)) \
			sf_log_emit(__VA_ARGS__);                 \
	} while (0)

#endif
