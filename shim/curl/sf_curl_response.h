/* sf_curl_response.h - the one owner of a flight's shared response.
 *
 * A flight's response comes in generations: each leader (the first, then
 * every follower promoted after a leader failed on its own) records the
 * response it receives into a reply of its own (sf_curl_reply.h), from its
 * first header line.  This file owns
 *  - the generations of a flight (publish, newest);
 *  - the record format: writer (sf_curl_response_record) and reader
 *    (sf_curl_response_next);
 *  - the follower cursor: what the program was given, and the rule that
 *    keeps every byte right across hand-overs.
 *
 * The byte-exactness rule (README, "libcurl"): a program receives header
 * lines and body bytes of one response, in order, each once.  When a
 * caller moves to another response (a new generation, or its own request
 * after waiting too long or falling back), that response is read from its
 * start and everything the program already has is compared with it
 * instead of delivered: the header lines one by one (a "Date:" line may
 * differ), the body byte by byte, in the same order.  Only when the
 * overlap matches does delivery go on, from the new response.  When it
 * does not (the resource changed, or the new response is shorter), the
 * caller's perform fails with CURLE_RECV_ERROR and an ERRORBUFFER text
 * naming sfshim: never bytes of two responses with success. */
#ifndef SF_CURL_RESPONSE_H
#define SF_CURL_RESPONSE_H

#include "core/sf_flight.h"
#include "curl/sf_curl_reply.h"

#include <stdbool.h>
#include <stddef.h>

/* ---- generations ------------------------------------------------------- */

/* Leader: makes r the flight's newest generation (the flight keeps a
 * reference until it is freed).  False when the flight had too many
 * leaders: the caller then ends the flight for its followers. */
bool sf_curl_response_publish(sf_flight *f, struct sf_curl_reply *r);

/* The newest generation, NULL before the first leader published. */
struct sf_curl_reply *sf_curl_response_newest(sf_flight *f);

/* ---- records ----------------------------------------------------------- */

enum sf_curl_rec { SF_REC_HEADER = 'H', SF_REC_BODY = 'B' };

/* Leader: appends one record (a whole header line, or a body piece) and
 * publishes it.  -1 when it could not be stored (memory, disk): the
 * generation is then cut short at the last whole record. */
int sf_curl_response_record(struct sf_curl_reply *r, enum sf_curl_rec type,
                            const void *data, size_t len);

/* Reader: the record at *pos if all of it is published: its type, where
 * its data starts and how long it is; *pos moves past it.  False when no
 * whole record is published at *pos yet. */
bool sf_curl_response_next(const struct sf_curl_reply *r, size_t *pos,
                           enum sf_curl_rec *type, size_t *data_at,
                           size_t *len);

/* ---- the follower cursor ---------------------------------------------- */

struct sf_curl_cursor {
	/* What the program has: header lines and body bytes, all of them a
	 * prefix of base (which is NULL when the program has nothing, or
	 * once a live transfer took over past the overlap). */
	size_t hdrs, body;
	struct sf_curl_reply *base; /* a reference of the cursor's own */

	/* The response being read now, from its start. */
	size_t seen_h, seen_b; /* its header lines / body bytes so far */
	size_t h_pos;          /* base: next record to compare lines with */
	size_t b_pos, b_used;  /* base: body record, bytes of it compared */
	bool diverged;
};

void sf_curl_cursor_init(struct sf_curl_cursor *c);
void sf_curl_cursor_free(struct sf_curl_cursor *c);

/* Another response will be read from its start. */
void sf_curl_cursor_restart(struct sf_curl_cursor *c);

/* One header line / body piece of the response being read.  Returns how
 * many of its leading bytes the program already has (compared equal): the
 * caller delivers the rest, then calls sf_curl_cursor_gave().  Returns -1
 * when the response differs from what the program has (c->diverged). */
long sf_curl_cursor_header(struct sf_curl_cursor *c, const char *line,
                           size_t n);
long sf_curl_cursor_body(struct sf_curl_cursor *c, const char *data, size_t n);

/* The program was given n more bytes of a header line (one line) or of
 * body, read from from (a stored generation), or from a live transfer
 * (NULL). */
void sf_curl_cursor_gave(struct sf_curl_cursor *c, enum sf_curl_rec type,
                         size_t n, struct sf_curl_reply *from);

/* At the end of a response: did it cover everything the program has? */
bool sf_curl_cursor_covered(const struct sf_curl_cursor *c);

/* ---- driving a cursor ------------------------------------------------ */

/* Hands n bytes of a header line (whole) or of body to the program; false
 * when its callback refused them. */
typedef bool (*sf_curl_give_fn)(void *ctx, enum sf_curl_rec type,
                                const char *data, size_t n);

enum sf_curl_fed {
	SF_FED,        /* compared and/or given */
	SF_REFUSED,    /* the program's callback refused */
	SF_UNREADABLE, /* the caller cannot get its copy (memory, disk) */
	SF_DIVERGED,   /* differs from what the program has */
};

/* One piece of the response being read, from generation from (NULL: a
 * live transfer): what the program has is compared, the rest given. */
enum sf_curl_fed sf_curl_cursor_feed(struct sf_curl_cursor *c,
                                     enum sf_curl_rec type, const char *data,
                                     size_t n, struct sf_curl_reply *from,
                                     sf_curl_give_fn give, void *ctx);

/* A follower reading the flight's generations. */
struct sf_curl_reader {
	struct sf_curl_reply *gen; /* being read (the flight holds it) */
	size_t pos;                /* its next record */
	unsigned char *buf;        /* for bytes not contiguous in memory */
	size_t bufcap;
};

/* Moves to generation newest (if it is not the one being read): it is
 * read from its start. */
void sf_curl_reader_take(struct sf_curl_reader *rd, struct sf_curl_cursor *c,
                         struct sf_curl_reply *newest);

/* Feeds every whole record published so far. */
enum sf_curl_fed sf_curl_reader_drain(struct sf_curl_reader *rd,
                                      struct sf_curl_cursor *c,
                                      sf_curl_give_fn give, void *ctx);

void sf_curl_reader_free(struct sf_curl_reader *rd);

/* The ERRORBUFFER text for a caller whose new response differed. */
#define SF_CURL_CHANGED_MSG                                                   \
	"sfshim: the response changed during a hand-over (the bytes already " \
	"delivered differ)"

#endif
