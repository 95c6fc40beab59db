/* fuzz_config.c - configuration parsing and the host/URL filters.
 *
 * The input is a list of NUL-separated fields: the values of the SFSHIM_*
 * variables (in the order of vars[] below), then subjects to filter.  The
 * configuration must load and free cleanly whatever the values (ASan and
 * UBSan watch), and every filter verdict must equal the one of a reference
 * written here from the documented rules alone: comma-separated patterns,
 * blanks and tabs trimmed, empty ones dropped; `*` any run, `?` one byte,
 * ASCII case ignored; exclude wins, an empty include list includes all. */
#include "common/sf_config.h"
#include "common/sf_log.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const vars[] = {
	"SFSHIM_DNS_INCLUDE",  "SFSHIM_DNS_EXCLUDE", "SFSHIM_URL_INCLUDE",
	"SFSHIM_URL_EXCLUDE",  "SFSHIM_LOG",         "SFSHIM_WAIT_MS",
	"SFSHIM_SPILL",        "SFSHIM_DNS",         "SFSHIM_CURL",
	"SFSHIM_RETRY_ERRORS",
};
#define NVARS (sizeof(vars) / sizeof(vars[0]))
#define MAXFIELDS (NVARS + 8)

static const char *values[NVARS];

static const char *get(const char *name)
{
	for (size_t i = 0; i < NVARS; i++)
		if (strcmp(name, vars[i]) == 0)
			return values[i];
	return NULL; /* SFSHIM_STATS and anything new: unset */
}

static unsigned char lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* Reference glob: dynamic programming over (pattern, subject) prefixes,
 * obviously right rather than fast. */
static int ref_glob(const char *p, size_t np, const char *s, size_t ns)
{
	unsigned char *row = calloc(ns + 1, 1), *next = calloc(ns + 1, 1);
	if (!row || !next)
		abort();
	row[0] = 1; /* empty pattern matches the empty subject */
	for (size_t i = 0; i < np; i++) {
		unsigned char pc = (unsigned char)p[i];
		memset(next, 0, ns + 1);
		for (size_t j = 0; j <= ns; j++) {
			if (pc == '*')
				next[j] = row[j] || (j && next[j - 1]);
			else if (j && row[j - 1] &&
			         (pc == '?' ||
			          lower(pc) == lower((unsigned char)s[j - 1])))
				next[j] = 1;
		}
		unsigned char *t = row;
		row = next;
		next = t;
	}
	int r = row[ns];
	free(row);
	free(next);
	return r;
}

/* Does any pattern of the comma-separated list match?  *npats: how many
 * non-empty patterns the list holds. */
static int ref_any(const char *list, const char *s, size_t *npats)
{
	int hit = 0;
	*npats = 0;
	if (!list)
		return 0;
	const char *q = list;
	for (;;) {
		const char *end = strchr(q, ',');
		if (!end)
			end = q + strlen(q);
		const char *a = q, *b = end;
		while (a < b && (*a == ' ' || *a == '\t'))
			a++;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
			b--;
		if (b > a) {
			(*npats)++;
			hit |= ref_glob(a, (size_t)(b - a), s, strlen(s));
		}
		if (!*end)
			break;
		q = end + 1;
	}
	return hit;
}

static int ref_allows(const char *inc, const char *exc, const char *s)
{
	size_t ni, ne;
	int in = ref_any(inc, s, &ni), ex = ref_any(exc, s, &ne);
	if (ex)
		return 0;
	return ni == 0 || in;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* Warnings about bad values are expected by the thousand. */
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (fd >= 0)
		sf_log_set_fd(fd);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';

	const char *field[MAXFIELDS];
	size_t nf = 0;
	for (char *p = buf; nf < MAXFIELDS;) {
		field[nf++] = p;
		char *z = memchr(p, '\0', (size_t)(buf + size - p));
		if (!z || z == buf + size)
			break;
		p = z + 1;
	}
	for (size_t i = 0; i < NVARS; i++)
		values[i] = i < nf ? field[i] : NULL;

	struct sf_config c;
	sf_config_load(&c, get);
	/* The documented bounds of the scalar settings. */
	if (c.wait_ns > 86400000ull * 1000000ull)
		abort();
	if (c.log_level < SF_LOG_OFF || c.log_level > SF_LOG_DEBUG)
		abort();

	for (size_t i = NVARS; i < nf; i++) {
		const char *s = field[i];
		if (sf_filter_allows(&c.hosts, s) !=
		    ref_allows(values[0], values[1], s)) {
			fprintf(stderr, "hosts filter disagrees on '%s'\n", s);
			abort();
		}
		if (sf_filter_allows(&c.urls, s) !=
		    ref_allows(values[2], values[3], s)) {
			fprintf(stderr, "url filter disagrees on '%s'\n", s);
			abort();
		}
		/* The raw matcher, with every earlier field as a pattern. */
		for (size_t k = 0; k < i && k < NVARS; k++) {
			if (!values[k])
				continue;
			if (sf_glob_match(values[k], s) !=
			    ref_glob(values[k], strlen(values[k]), s,
			             strlen(s))) {
				fprintf(stderr, "glob '%s' disagrees on '%s'\n",
				        values[k], s);
				abort();
			}
		}
	}
	sf_config_free(&c);
	free(buf);
	return 0;
}
