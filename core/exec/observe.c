/* observe.c - live counters and the trace-event recorder (see observe.h). */
#include "exec/observe.h"

#include <stdlib.h>
#include <string.h>

/* ---- counters --------------------------------------------------------------- */

/* The block of every thread that is not a bound worker (main, its Python
 * threads, foreign threads): process-global because those threads share it. */
static boc_counters_t shared_counters = {.shared = 1};
/* The calling thread's block; a thread-local because each worker thread
 * counts into its own. */
static _Thread_local boc_counters_t *tls_counters;

void boc_observe_bind(boc_counters_t *c) { tls_counters = c; }

boc_counters_t *boc_observe_counters(void) {
  return tls_counters != NULL ? tls_counters : &shared_counters;
}

boc_counters_t *boc_observe_shared_counters(void) { return &shared_counters; }

/* ---- trace ------------------------------------------------------------------ */

_Atomic int boc_trace_on;

/* One buffer per thread that recorded something; kept (and reused) for
 * the life of the process, because worker threads are pooled and live that
 * long anyway.  The mutex is uncontended except while events are taken. */
typedef struct tbuf {
  struct tbuf *next; /* in the list of all buffers (guarded by list_mu) */
  boc_mutex_t mu;
  boc_trace_event_t *evs; /* guarded by mu */
  size_t n, cap;          /* guarded by mu */
} tbuf_t;

static _Thread_local tbuf_t *tls_buf; /* this thread's buffer */
static boc_mutex_t list_mu;            /* guards `buffers` */
static tbuf_t *buffers;                /* every buffer (process-global) */
static boc_once_t list_once = BOC_ONCE_INIT;
/* Events kept per thread (about 180 MB at most); later ones are not
 * recorded, so a forgotten trace cannot exhaust memory. */
enum { TRACE_MAX_PER_THREAD = 1 << 20 };

static void list_init(void) { boc_mutex_init(&list_mu); }

static tbuf_t *my_buffer(void) {
  if (tls_buf != NULL) {
    return tls_buf;
  }
  tbuf_t *b = calloc(1, sizeof(*b));
  if (b == NULL) {
    return NULL;
  }
  boc_mutex_init(&b->mu);
  boc_once(&list_once, list_init);
  boc_mutex_lock(&list_mu);
  b->next = buffers;
  buffers = b;
  boc_mutex_unlock(&list_mu);
  tls_buf = b;
  return b;
}

static void drop_events(boc_trace_event_t *evs, size_t n,
                        boc_trace_release_fn release) {
  for (size_t i = 0; i < n; i++) {
    if (evs[i].code != NULL) {
      release(evs[i].code);
    }
  }
}

int boc_trace_record(const boc_trace_event_t *ev) {
  tbuf_t *b = my_buffer();
  if (b == NULL) {
    return -1; /* out of memory: the event is lost, the program goes on */
  }
  boc_mutex_lock(&b->mu);
  if (b->n == b->cap) {
    size_t cap = b->cap != 0 ? b->cap * 2 : 1024;
    boc_trace_event_t *grown =
        cap <= TRACE_MAX_PER_THREAD ? realloc(b->evs, cap * sizeof(*grown))
                                    : NULL;
    if (grown == NULL) {
      boc_mutex_unlock(&b->mu);
      return -1;
    }
    b->evs = grown;
    b->cap = cap;
  }
  b->evs[b->n] = *ev;
  b->n++;
  boc_mutex_unlock(&b->mu);
  return 0;
}

/* Moves out (keep) or drops (with release) every buffered event. */
static boc_trace_event_t *take_all(size_t *count, int keep,
                                   boc_trace_release_fn release) {
  boc_once(&list_once, list_init);
  boc_mutex_lock(&list_mu);
  size_t total = 0;
  for (tbuf_t *b = buffers; b != NULL; b = b->next) {
    boc_mutex_lock(&b->mu);
    total += b->n;
    boc_mutex_unlock(&b->mu);
  }
  /* Events recorded between the count and the copy wait for the next take:
   * the copy below takes at most `total`. */
  boc_trace_event_t *out =
      keep && total > 0 ? malloc(total * sizeof(*out)) : NULL;
  size_t n = 0;
  for (tbuf_t *b = buffers; b != NULL; b = b->next) {
    boc_mutex_lock(&b->mu);
    size_t m = b->n;
    if (out != NULL && n + m > total) {
      m = total - n;
    }
    if (out != NULL) {
      memcpy(out + n, b->evs, m * sizeof(*out));
      memmove(b->evs, b->evs + m, (b->n - m) * sizeof(*out));
      b->n -= m;
      n += m;
    } else {
      if (release != NULL) {
        drop_events(b->evs, b->n, release);
        b->n = 0;
      }
    }
    boc_mutex_unlock(&b->mu);
  }
  boc_mutex_unlock(&list_mu);
  *count = n;
  return out;
}

void boc_trace_start(boc_trace_release_fn release) {
  size_t n;
  take_all(&n, 0, release);
  /* relaxed: see boc_trace_on */
  atomic_store_explicit(&boc_trace_on, 1, BOC_RELAXED);
}

void boc_trace_stop(void) {
  atomic_store_explicit(&boc_trace_on, 0, BOC_RELAXED);
}

boc_trace_event_t *boc_trace_take(size_t *n) {
  return take_all(n, 1, NULL);
}

void boc_trace_free(boc_trace_event_t *evs, size_t n,
                    boc_trace_release_fn release) {
  if (evs != NULL) {
    drop_events(evs, n, release);
    free(evs);
  }
}
