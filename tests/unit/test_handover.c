/* test_handover.c - the hand-over harness: scripted sequences of leaders
 * and followers over the curl hook's response owner (sf_curl_response.c),
 * the code every follower and promoted leader delivers through.
 *
 * An origin serves versions of one resource: each request gets a version,
 * whose body changes between requests or not, and whose Date line always
 * changes.  A script says who leads, at which piece each leader fails, at
 * which byte the shared response can no longer be stored, when each
 * follower joins and reads, and who is promoted.  At the end every
 * caller's delivered header lines and body bytes are checked against the
 * origin's:
 *  - a caller that succeeded got exactly one version's body and that
 *    version's header block (a Date line may come from another version);
 *  - a caller that failed got a prefix of one version, never a byte more;
 *  - when the body never changes, nobody fails for a change.
 * A seeded randomized run of the same model follows, bounded in count and
 * time (SF_HANDOVER_SEED=n replays one seed). */
#include "core/sf_flight.h"
#include "curl/sf_curl_response.h"
#include "sf_unit_main.h"

#include <check.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char ALPHABET[] = "0123456789abcdefghijklmnopqrstuvwxyz";

#define PIECE 4096 /* body bytes per piece a leader receives */
/* Storing fails past a generation's memory part (its spill size, rounded up
 * to sf_stream's chunks), where it would need a spill file, which cannot be
 * made here. */
#define STORE_CHUNK 65536
#define MAXF 6 /* callers in one script */

/* ---- the origin --------------------------------------------------------- */

struct origin {
	size_t len;    /* body length */
	bool changing; /* the body differs between requests */
	unsigned requests;
};

/* Header line i of version v ("" past the block). */
static void header_line(const struct origin *o, unsigned v, int i, char *out)
{
	switch (i) {
	case 0:
		strcpy(out, "HTTP/1.1 200 OK\r\n");
		break;
	case 1:
		sprintf(out, "Content-Length: %zu\r\n", o->len);
		break;
	case 2:
		sprintf(out, "Date: Tue, 01 Dec 2026 14:%02u:00 GMT\r\n",
		        v % 60);
		break;
	case 3:
		strcpy(out, "\r\n");
		break;
	default:
		out[0] = '\0';
	}
}
#define NHDR 4

static char body_byte(const struct origin *o, unsigned v, size_t i)
{
	return ALPHABET[(i + (o->changing ? v : 0)) % 36];
}

/* ---- a caller ------------------------------------------------------------ */

enum end { RUNNING, OK, CHANGED, OWN_FAIL };

struct caller {
	bool joined, leading;
	enum end end;
	struct sf_curl_cursor cur;
	struct sf_curl_reader rd;
	char hdr[NHDR][64];
	int nhdr;
	char *body;
	size_t blen;
	bool fallback; /* could not get its copy: fetches alone */
};

static bool give(void *ctx, enum sf_curl_rec type, const char *data, size_t n)
{
	struct caller *c = ctx;
	if (type == SF_REC_HEADER) {
		ck_assert_int_lt(c->nhdr, NHDR);
		ck_assert_uint_lt(n, 64);
		memcpy(c->hdr[c->nhdr], data, n);
		c->hdr[c->nhdr++][n] = '\0';
	} else {
		c->body = realloc(c->body, c->blen + n + 1);
		memcpy(c->body + c->blen, data, n);
		c->blen += n;
	}
	return true;
}

/* ---- the flight ------------------------------------------------------------ */

struct world {
	struct origin o;
	sf_group *g;
	sf_flight *f;
	struct caller c[MAXF];
	int n;
	bool unshared; /* the flight ended without a result: fetch alone */
	bool done;     /* the last leader finished */
	char trace[4096];
};

static void trace(struct world *w, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static void trace(struct world *w, const char *fmt, ...)
{
	size_t k = strlen(w->trace);
	va_list ap;
	va_start(ap, fmt);
	if (k < sizeof(w->trace) - 1)
		vsnprintf(w->trace + k, sizeof(w->trace) - k, fmt, ap);
	va_end(ap);
}

static void world_init(struct world *w, int n, size_t len, bool changing)
{
	memset(w, 0, sizeof(*w));
	w->o.len = len;
	w->o.changing = changing;
	w->n = n;
	w->g = sf_group_new();
	bool leader;
	w->f = sf_join(w->g, "k", 1, &leader);
	ck_assert(w->f && leader);
	for (int i = 0; i < n; i++)
		sf_curl_cursor_init(&w->c[i].cur);
}

static void world_free(struct world *w)
{
	if (w->f)
		sf_flight_finish(w->f, NULL, NULL);
	for (int i = 0; i < w->n; i++) {
		sf_curl_cursor_free(&w->c[i].cur);
		sf_curl_reader_free(&w->c[i].rd);
		free(w->c[i].body);
	}
	sf_group_free(w->g);
}

/* A follower reads what the newest generation has published. */
static void read_newest(struct world *w, int i)
{
	struct caller *c = &w->c[i];
	if (!c->joined || c->leading || c->end != RUNNING || w->unshared)
		return;
	sf_curl_reader_take(&c->rd, &c->cur, sf_curl_response_newest(w->f));
	switch (sf_curl_reader_drain(&c->rd, &c->cur, give, c)) {
	case SF_DIVERGED:
		c->end = CHANGED;
		break;
	case SF_UNREADABLE:
		c->fallback = true;
		break;
	case SF_REFUSED:
		ck_abort_msg("refused");
		break;
	case SF_FED:
		break;
	}
}

/* A request for real on behalf of caller i: its live data goes through its
 * own cursor; with record, it is also the flight's new generation.  It
 * fails on its own before piece fail_piece (-1: never); storing fails past
 * store_limit bytes (0: never).  Returns true when it completed. */
static bool request(struct world *w, int i, bool record, int fail_piece,
                    size_t store_limit)
{
	struct caller *c = &w->c[i];
	unsigned v = ++w->o.requests;
	struct sf_curl_reply *r = NULL;
	if (record) {
		r = sf_curl_reply_new(store_limit ? store_limit : 1u << 20);
		ck_assert_ptr_nonnull(r);
		if (!sf_curl_response_publish(w->f, r)) {
			w->unshared = true; /* too many leaders */
			trace(w, " too-many-generations");
		}
	}
	trace(w, " req(%d,v%u)", i, v);
	sf_curl_cursor_restart(&c->cur);
	int piece = 0;
	size_t nitems = NHDR + (w->o.len + PIECE - 1) / PIECE;
	for (size_t it = 0; it < nitems; it++, piece++) {
		if (piece == fail_piece) {
			trace(w, " fail@%d", piece);
			c->end = OWN_FAIL;
			sf_curl_reply_unref(r);
			return false;
		}
		char line[64];
		const char *data;
		size_t n;
		enum sf_curl_rec type;
		static __thread char bodybuf[PIECE];
		if (it < NHDR) {
			header_line(&w->o, v, (int)it, line);
			data = line;
			n = strlen(line);
			type = SF_REC_HEADER;
		} else {
			size_t off = (it - NHDR) * PIECE;
			n = w->o.len - off < PIECE ? w->o.len - off : PIECE;
			for (size_t b = 0; b < n; b++)
				bodybuf[b] = body_byte(&w->o, v, off + b);
			data = bodybuf;
			type = SF_REC_BODY;
		}
		if (r && !w->unshared &&
		    sf_curl_response_record(r, type, data, n) < 0) {
			/* Cannot be stored: the followers fetch alone. */
			trace(w, " unstored@%d", piece);
			w->unshared = true;
		}
		enum sf_curl_fed fed = sf_curl_cursor_feed(&c->cur, type, data,
		                                           n, NULL, give, c);
		if (fed == SF_DIVERGED) {
			c->end = CHANGED;
			sf_curl_reply_unref(r);
			return false;
		}
		ck_assert_int_eq(fed, SF_FED);
	}
	sf_curl_reply_unref(r);
	c->end = sf_curl_cursor_covered(&c->cur) ? OK : CHANGED;
	return c->end == OK;
}

/* Everyone still running finishes: from the final generation, or alone. */
static void finish_all(struct world *w)
{
	for (int i = 0; i < w->n; i++) {
		struct caller *c = &w->c[i];
		if (!c->joined || c->end != RUNNING)
			continue;
		read_newest(w, i);
		if (c->end != RUNNING)
			continue;
		if (w->unshared || c->fallback || !w->done) {
			trace(w, " alone(%d)", i);
			request(w, i, false, -1, 0);
		} else {
			c->end = sf_curl_cursor_covered(&c->cur) ? OK : CHANGED;
		}
	}
}

/* ---- the check ------------------------------------------------------------ */

/* Does c's delivery match version v: whole (complete) or a prefix? */
static bool matches(const struct world *w, const struct caller *c, unsigned v,
                    bool complete)
{
	for (int i = 0; i < c->nhdr; i++) {
		char want[64];
		header_line(&w->o, v, i, want);
		bool date = strncmp(want, "Date:", 5) == 0 &&
		            strncmp(c->hdr[i], "Date:", 5) == 0;
		if (!date && strcmp(want, c->hdr[i]) != 0)
			return false;
	}
	if (c->blen && c->nhdr < NHDR)
		return false; /* body before the header block ended */
	if (complete && (c->nhdr != NHDR || c->blen != w->o.len))
		return false;
	if (c->blen > w->o.len)
		return false;
	for (size_t b = 0; b < c->blen; b++)
		if (c->body[b] != body_byte(&w->o, v, b))
			return false;
	return true;
}

static void check_world(const struct world *w, const char *what)
{
	for (int i = 0; i < w->n; i++) {
		const struct caller *c = &w->c[i];
		if (!c->joined)
			continue;
		ck_assert_msg(c->end != RUNNING, "%s: [%d] never ended;%s",
		              what, i, w->trace);
		bool any = false;
		for (unsigned v = 1; v <= w->o.requests && !any; v++)
			any = matches(w, c, v, c->end == OK);
		ck_assert_msg(
		        any,
		        "%s: [%d] (end %d) got %d lines and %zu bytes that "
		        "are no single response;%s",
		        what, i, c->end, c->nhdr, c->blen, w->trace);
		ck_assert_msg(
		        w->o.changing || c->end != CHANGED,
		        "%s: [%d] failed for a change that did not happen;%s",
		        what, i, w->trace);
	}
}

/* ---- scripts ----------------------------------------------------------- */

/* A script: ops run in order.
 *  J i      caller i joins
 *  R i      caller i reads what is published
 *  L i f s  caller i leads (records), failing before piece f (-1 never),
 *           storing failing past s bytes (0 never)
 */
struct op {
	char op;
	int i, f;
	size_t s;
};

static void run_script(struct world *w, const struct op *ops, size_t nops)
{
	for (size_t k = 0; k < nops; k++) {
		const struct op *o = &ops[k];
		struct caller *c = &w->c[o->i];
		switch (o->op) {
		case 'J':
			c->joined = true;
			trace(w, " J%d", o->i);
			break;
		case 'R':
			read_newest(w, o->i);
			break;
		case 'L':
			if (!c->joined || c->end != RUNNING)
				break;
			/* A promoted follower first has what it had. */
			c->leading = true;
			if (request(w, o->i, !w->unshared, o->f, o->s) &&
			    !w->unshared)
				w->done = true;
			c->leading = false;
			break;
		}
		if (w->done)
			break;
	}
	finish_all(w);
}

#define J(i)                 \
	{                    \
		'J', i, 0, 0 \
	}
#define R(i)                 \
	{                    \
		'R', i, 0, 0 \
	}
#define L(i, f, s)           \
	{                    \
		'L', i, f, s \
	}

struct script {
	const char *name;
	size_t len;
	struct op ops[24];
	size_t nops;
};

#define S(nm, ln, ...)                                         \
	{                                                      \
		nm, ln, { __VA_ARGS__ },                       \
		        sizeof((struct op[]){ __VA_ARGS__ }) / \
		                sizeof(struct op)              \
	}

static const struct script scripts[] = {
	/* one leader, followers joining before and mid-way */
	S("plain", 90000, J(0), J(1), L(0, -1, 0), R(1), J(2)),
	/* the leader fails mid-body; a follower that read part takes over */
	S("one-handover", 90000, J(0), J(1), J(2), L(0, 6, 0), R(1), R(2),
	  L(1, -1, 0)),
	/* two hand-overs before follower 3 catches up */
	S("two-handovers-behind", 150000, J(0), J(1), J(2), J(3), L(0, 8, 0),
	  R(3), R(1), R(2), L(1, 10, 0), R(2), L(2, -1, 0)),
	/* three hand-overs, the last follower never read in between */
	S("three-handovers", 150000, J(0), J(1), J(2), J(3), J(4), L(0, 7, 0),
	  R(4), R(1), L(1, 9, 0), R(2), L(2, 5, 0), R(3), L(3, -1, 0)),
	/* followers read different amounts, then the leader fails early */
	S("uneven-readers", 150000, J(0), J(1), J(2), L(0, 11, 0), R(1),
	  L(1, 2, 0), R(2), L(2, -1, 0)),
	/* storing fails mid-body: the followers fetch alone */
	S("storage-fails", 150000, J(0), J(1), J(2), L(0, -1, STORE_CHUNK),
	  R(1)),
	/* storing fails in the second generation */
	S("storage-fails-second", 150000, J(0), J(1), J(2), L(0, 6, 0), R(1),
	  R(2), L(1, -1, 2 * STORE_CHUNK), R(2)),
	/* a follower joins after the first hand-over */
	S("late-joiner", 110000, J(0), J(1), L(0, 5, 0), R(1), J(2),
	  L(1, -1, 0), R(2)),
	/* the leader fails in the header block */
	S("fail-in-headers", 70000, J(0), J(1), L(0, 2, 0), R(1), L(1, -1, 0)),
};

static void run_named(const struct script *s, bool changing)
{
	struct world w;
	world_init(&w, MAXF, s->len, changing);
	run_script(&w, s->ops, s->nops);
	char what[128];
	snprintf(what, sizeof(what), "%s%s", s->name,
	         changing ? " (changing)" : "");
	check_world(&w, what);
	world_free(&w);
}

START_TEST(scripted_same_response)
{
	run_named(&scripts[_i], false);
}
END_TEST

START_TEST(scripted_changing_response)
{
	run_named(&scripts[_i], true);
}
END_TEST

/* Spliced bodies would pass unseen if the changing origin never made a
 * follower fail: in "one-handover", follower 1 had part of version 1 and
 * leads version 2. */
START_TEST(change_is_detected)
{
	struct world w;
	world_init(&w, MAXF, scripts[1].len, true);
	run_script(&w, scripts[1].ops, scripts[1].nops);
	check_world(&w, "one-handover");
	ck_assert_int_eq(w.c[1].end, CHANGED);
	ck_assert_int_eq(w.c[2].end, CHANGED);
	world_free(&w);
}
END_TEST

/* ---- randomized ----------------------------------------------------------- */

static uint64_t rng;
static unsigned rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

static void random_world(uint64_t seed)
{
	rng = seed * 2654435761u + 1;
	struct world w;
	int n = 2 + (int)rnd(MAXF - 1);
	size_t len = 1 + rnd(150000);
	world_init(&w, n, len, rnd(2));
	struct op ops[64];
	size_t k = 0;
	int leader = 0;
	ops[k++] = (struct op)J(0);
	for (int i = 1; i < n; i++)
		if (rnd(3))
			ops[k++] = (struct op){ 'J', i, 0, 0 };
	while (k < 60) {
		unsigned what = rnd(10);
		if (what < 5) {
			ops[k++] =
			        (struct op){ 'R', (int)rnd((unsigned)n), 0, 0 };
		} else if (what < 7) {
			ops[k++] =
			        (struct op){ 'J', (int)rnd((unsigned)n), 0, 0 };
		} else {
			bool last = rnd(4) == 0;
			int fail = last ? -1 : (int)rnd(42);
			size_t store = rnd(6) == 0 ? STORE_CHUNK * (1 + rnd(2))
			                           : 0;
			ops[k++] = (struct op){ 'L', leader, fail, store };
			leader = (int)rnd((unsigned)n);
			if (last)
				break;
		}
	}
	run_script(&w, ops, k);
	char what[64];
	snprintf(what, sizeof(what), "seed %llu", (unsigned long long)seed);
	check_world(&w, what);
	world_free(&w);
}

#define RANDOM_RUNS 3000
#define RANDOM_SECONDS 2

START_TEST(randomized)
{
	const char *one = getenv("SF_HANDOVER_SEED");
	if (one && *one) {
		random_world(strtoull(one, NULL, 10));
		return;
	}
	time_t until = time(NULL) + RANDOM_SECONDS;
	for (uint64_t seed = 1; seed <= RANDOM_RUNS && time(NULL) < until;
	     seed++)
		random_world(seed);
}
END_TEST

int main(void)
{
	/* Storage fails for real: no temporary directory for the spill. */
	setenv("TMPDIR", "/nonexistent-sfshim-harness", 1);
	Suite *s = suite_create("handover");
	TCase *tc = tcase_create("handover");
	int n = (int)(sizeof(scripts) / sizeof(scripts[0]));
	tcase_add_loop_test(tc, scripted_same_response, 0, n);
	tcase_add_loop_test(tc, scripted_changing_response, 0, n);
	tcase_add_test(tc, change_is_detected);
	tcase_add_test(tc, randomized);
	suite_add_tcase(s, tc);
	return sf_unit_run(s);
}
